// The coordinator with real parts: a real `recur coordinator` process on a loopback socket, real
// SQLite files, real HTTP. Protocol errors are 4xx with a message and the service keeps serving; the
// store's reports are idempotent, stale attempts change nothing, expired leases requeue, and a
// reopened state file holds everything.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>

#include <chrono>
#include <thread>

#include "coord/http.h"
#include "coord/store.h"
#include "coord/sweep.h"
#include "core/error.h"
#include "core/fs.h"

namespace recur::coord {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

SweepSpec tiny_spec(int trials, int64_t retries = 1) {
  SweepSpec s;
  s.name = "t";
  s.base_yaml = "model:\n  type: xl\n";
  s.axes = {"model.n_layer"};
  s.metric = "bpc";
  s.retries = retries;
  for (int i = 0; i < trials; ++i) {
    TrialSpec t;
    t.point = {{"model.n_layer", i + 1}};
    t.overrides = {"model.n_layer=" + std::to_string(i + 1)};
    s.trials.push_back(t);
  }
  return s;
}

class CoordinatorProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/recur-test-coord-" + std::to_string(::getpid()) + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    remove_tree(dir_);
    make_dirs(dir_);
    start();
  }
  void TearDown() override {
    stop();
    remove_tree(dir_);
  }
  void start() {
    ::unlink((dir_ + "/port").c_str());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string log = dir_ + "/coord.log";
      freopen(log.c_str(), "a", stderr);
      execl(RECUR_BINARY, RECUR_BINARY, "coordinator", "--state", (dir_ + "/state.db").c_str(), "--listen", "127.0.0.1:0",
            "--port-file", (dir_ + "/port").c_str(), "--lease-seconds", "2", static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 200 && !path_exists(dir_ + "/port"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(path_exists(dir_ + "/port")) << read_file(dir_ + "/coord.log");
    url_ = "http://127.0.0.1:" + read_file(dir_ + "/port").substr(0, read_file(dir_ + "/port").find('\n'));
    token_ = read_file(dir_ + "/state.db.token");
    token_.pop_back();
  }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = 0;
    }
  }
  HttpResponse req(const std::string& method, const std::string& target, const std::string& body = "", const std::string& token = "-") {
    return http_request(url_, method, target, token == "-" ? token_ : token, body, 10);
  }
  std::string dir_, url_, token_;
  pid_t pid_ = 0;
};

TEST_F(CoordinatorProcess, TokenFileIsPrivateAndRequired) {
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/state.db.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(req("GET", "/api/sweeps", "", "").status, 401);
  auto wrong = req("GET", "/api/sweeps", "", "not-the-token");
  EXPECT_EQ(wrong.status, 403);
  EXPECT_THAT(wrong.body["error"].get<std::string>(), HasSubstr("token"));
  EXPECT_EQ(req("GET", "/api/sweeps").status, 200);
  // the page takes the token in the query string
  auto page = http_request(url_, "GET", "/?token=" + token_, "", "", 10);
  EXPECT_EQ(page.status, 200);
}

TEST_F(CoordinatorProcess, BadRequestsGet4xxAndTheServiceKeepsServing) {
  auto malformed = req("POST", "/api/sweeps", "{\"name\": ");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_THAT(malformed.body["error"].get<std::string>(), HasSubstr("malformed JSON"));
  auto incomplete = req("POST", "/api/sweeps", "{\"name\": \"x\"}");
  EXPECT_EQ(incomplete.status, 400);
  EXPECT_THAT(incomplete.body["error"].get<std::string>(), HasSubstr("sweep"));
  EXPECT_EQ(req("POST", "/api/sweeps", "[1, 2]").status, 400);
  auto unknown = req("GET", "/api/sweeps/999");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_THAT(unknown.body["error"].get<std::string>(), HasSubstr("999"));
  EXPECT_EQ(req("GET", "/api/sweeps/abc").status, 400);
  EXPECT_EQ(req("GET", "/api/nothing").status, 404);
  EXPECT_EQ(req("POST", "/api/trials/5/report", "{\"agent\": 1, \"attempt\": 1, \"status\": \"succeeded\"}").status, 404);
  EXPECT_EQ(req("POST", "/api/agents", "{\"name\": \"a\", \"slots\": 0, \"workdir\": \"/tmp\"}").status, 400);
  EXPECT_EQ(req("POST", "/api/agents", "{\"name\": 5, \"slots\": 1, \"workdir\": \"/tmp\"}").status, 400);
  auto big = req("POST", "/api/sweeps", std::string(2 << 20, 'x'));
  EXPECT_EQ(big.status, 413);
  // raw garbage on the socket
  {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket s(io);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(std::stoi(url_.substr(url_.rfind(':') + 1)))});
    std::string junk = "NOT HTTP AT ALL\r\n\r\n";
    boost::asio::write(s, boost::asio::buffer(junk));
    char buf[512];
    boost::system::error_code ec;
    size_t n = s.read_some(boost::asio::buffer(buf), ec);
    EXPECT_THAT(std::string(buf, n), HasSubstr("400"));
  }
  auto ok = req("POST", "/api/sweeps", tiny_spec(2).to_json().dump());
  ASSERT_EQ(ok.status, 200) << ok.body.dump();
  EXPECT_EQ(req("GET", "/api/health").status, 200);
  EXPECT_EQ(req("GET", "/api/sweeps/" + std::to_string(ok.body["id"].get<int64_t>())).body["trials"].size(), 2u);
}

TEST_F(CoordinatorProcess, RestartKeepsSweepsTrialsAndLeases) {
  auto id = req("POST", "/api/sweeps", tiny_spec(3).to_json().dump()).body["id"].get<int64_t>();
  auto agent = req("POST", "/api/agents", "{\"name\": \"a\", \"slots\": 1, \"workdir\": \"/w\"}").body["id"].get<int64_t>();
  auto lease = req("POST", "/api/agents/" + std::to_string(agent) + "/lease", "{\"free_slots\": 1}").body["trial"];
  ASSERT_TRUE(lease.is_object());
  EXPECT_EQ(lease["run_dir"], "/w/sweep-" + std::to_string(id) + "/trial-" + std::to_string(lease["id"].get<int64_t>()));
  stop();  // kill -9
  start();
  auto sw = req("GET", "/api/sweeps/" + std::to_string(id)).body;
  EXPECT_EQ(sw["trials"].size(), 3u);
  EXPECT_EQ(sw["trials"][0]["state"], "running");
  // the agent re-attaches: its heartbeat still holds the lease, its report lands once
  std::string t = std::to_string(lease["id"].get<int64_t>());
  std::string who = "\"agent\": " + std::to_string(agent) + ", \"attempt\": 1";
  EXPECT_TRUE(req("POST", "/api/trials/" + t + "/heartbeat", "{" + who + ", \"progress\": {\"step\": 3}}").body["ok"].get<bool>());
  auto r1 = req("POST", "/api/trials/" + t + "/report", "{" + who + ", \"status\": \"succeeded\", \"result\": {\"bpc\": 1.5}}").body;
  auto r2 = req("POST", "/api/trials/" + t + "/report", "{" + who + ", \"status\": \"succeeded\", \"result\": {\"bpc\": 9}}").body;
  EXPECT_TRUE(r1["applied"].get<bool>());
  EXPECT_FALSE(r2["applied"].get<bool>());
  auto res = req("GET", "/api/sweeps/" + std::to_string(id) + "/results").body;
  EXPECT_DOUBLE_EQ(res["rows"][0]["mean"].get<double>(), 1.5);
}

TEST_F(CoordinatorProcess, LostHeartbeatRequeuesAndTheStaleAttemptIsStopped) {
  req("POST", "/api/sweeps", tiny_spec(1).to_json().dump());
  auto a = req("POST", "/api/agents", "{\"name\": \"a\", \"slots\": 1, \"workdir\": \"/w\"}").body["id"].get<int64_t>();
  auto b = req("POST", "/api/agents", "{\"name\": \"b\", \"slots\": 1, \"workdir\": \"/v\"}").body["id"].get<int64_t>();
  auto first = req("POST", "/api/agents/" + std::to_string(a) + "/lease", "{\"free_slots\": 1}").body["trial"];
  ASSERT_TRUE(first.is_object());
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));  // lease 2 s, no heartbeat
  auto second = req("POST", "/api/agents/" + std::to_string(b) + "/lease", "{\"free_slots\": 1}").body["trial"];
  ASSERT_TRUE(second.is_object());
  EXPECT_EQ(second["id"], first["id"]);
  EXPECT_EQ(second["attempt"], 2);
  EXPECT_EQ(second["run_dir"], first["run_dir"]);  // same run directory: it resumes from its checkpoint
  std::string t = std::to_string(first["id"].get<int64_t>());
  auto hb = req("POST", "/api/trials/" + t + "/heartbeat", "{\"agent\": " + std::to_string(a) + ", \"attempt\": 1}").body;
  EXPECT_TRUE(hb["stop"].get<bool>());
  auto stale = req("POST", "/api/trials/" + t + "/report",
                   "{\"agent\": " + std::to_string(a) + ", \"attempt\": 1, \"status\": \"succeeded\", \"result\": {}}").body;
  EXPECT_FALSE(stale["applied"].get<bool>());
}

// Store semantics on a real SQLite file: failures retry up to the limit; a requeue (checkpointed stop)
// does not count; cancel stops everything; the file reopened holds the same state.
TEST(Store, RetriesRequeuesCancelAndReopen) {
  std::string dir = "/tmp/recur-test-store-" + std::to_string(::getpid());
  remove_tree(dir);
  make_dirs(dir);
  {
    Store s(dir + "/s.db");
    int64_t id = s.create_sweep(tiny_spec(2, /*retries=*/1));
    int64_t a = s.register_agent("a", 1, "", "/w");
    auto t = s.lease(a, 1, 60);
    int64_t tid = t["id"];
    s.report(tid, a, 1, "failed", nullptr, "boom");
    EXPECT_EQ(s.sweep(id)["trials"][0]["state"], "pending");  // retry 1 of 1
    t = s.lease(a, 1, 60);
    EXPECT_EQ(t["id"], tid);
    s.report(tid, a, 2, "requeue", nullptr, "");
    EXPECT_EQ(s.sweep(id)["trials"][0]["attempts"], 1);  // requeue does not count
    t = s.lease(a, 1, 60);
    s.report(tid, a, 2, "failed", nullptr, "boom again");
    EXPECT_EQ(s.sweep(id)["trials"][0]["state"], "failed");
    EXPECT_EQ(s.sweep(id)["trials"][0]["error"], "boom again");
    EXPECT_TRUE(s.lease(a, 1, 60).is_object());  // the second trial
    EXPECT_EQ(s.sweep(id)["state"], "running");
    s.cancel_sweep(id);
    EXPECT_EQ(s.sweep(id)["state"], "cancelled");
    EXPECT_TRUE(s.lease(a, 1, 60).is_null());
    EXPECT_THROW(s.sweep(42), NotFound);
    EXPECT_THROW(s.report(tid, a, 1, "done", nullptr, ""), Error);
  }
  Store again(dir + "/s.db");
  EXPECT_EQ(again.sweeps().size(), 1u);
  EXPECT_EQ(again.sweep(1)["state"], "cancelled");
  remove_tree(dir);
}

// A sweep spec expands to the cartesian product x seeds, with bundles, placeholders and checks.
TEST(SweepSpec, ExpandsAxesSeedsBundlesAndPlaceholders) {
  std::string dir = "/tmp/recur-test-spec-" + std::to_string(::getpid());
  make_dirs(dir);
  write_file_atomic(dir + "/base.yaml", "model:\n  type: rsa_xl\n  n_rsa_heads: 1\n  rem_types: [1, 0, 0, 0, 0, 0]\n");
  write_file_atomic(dir + "/spec.yaml",
                    "name: s\nbase: base.yaml\nset:\n  data.path: /data/copy-{task.max_len}\naxes:\n"
                    "  model:\n    - {label: xl, type: xl, n_rsa_heads: 0}\n    - {label: rsa, type: rsa_xl}\n"
                    "  task.max_len: [64, 128, 256]\nseeds: 2\nretries: 3\nmetric: sequence_accuracy\n");
  auto s = load_sweep_spec(dir + "/spec.yaml");
  ASSERT_EQ(s.trials.size(), 12u);
  EXPECT_EQ(s.trials[0].point, (json{{"model", "xl"}, {"task.max_len", 64}}));
  EXPECT_THAT(s.trials[0].overrides, ::testing::Contains("data.path=/data/copy-64"));
  EXPECT_THAT(s.trials[0].overrides, ::testing::Contains("model.n_rsa_heads=0"));
  EXPECT_THAT(s.trials[1].overrides, ::testing::Contains("train.seed=2"));
  EXPECT_EQ(s.trials[11].point, (json{{"model", "rsa"}, {"task.max_len", 256}}));
  EXPECT_EQ(s.retries, 3);
  // errors name the file and the problem
  write_file_atomic(dir + "/bad.yaml", "base: base.yaml\naxes:\n  model.n_layr: [1, 2]\n");
  try {
    load_sweep_spec(dir + "/bad.yaml");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("model.n_layr"));
  }
  write_file_atomic(dir + "/bad2.yaml", "base: base.yaml\naxes:\n  model.n_layer: [1, -2]\n");
  try {
    load_sweep_spec(dir + "/bad2.yaml");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("invalid config"));
  }
  remove_tree(dir);
}

}  // namespace
}  // namespace recur::coord

namespace recur::coord {
namespace {

// Every shipped sweep spec expands and every trial's config passes the checks.
TEST(SweepSpec, EveryShippedSpecExpands) {
  for (const std::string name : {"tiny-2x2", "tiny-copy-length", "model-scaling-gcide", "data-scaling-gcide", "copy-length"}) {
    SCOPED_TRACE(name);
    SweepSpec s;
    ASSERT_NO_THROW(s = load_sweep_spec(std::string(RECUR_SOURCE_DIR) + "/configs/sweeps/" + name + ".yaml"));
    EXPECT_GE(s.trials.size(), 4u);
  }
  EXPECT_EQ(load_sweep_spec(std::string(RECUR_SOURCE_DIR) + "/configs/sweeps/model-scaling-gcide.yaml").trials.size(), 48u);
  EXPECT_EQ(load_sweep_spec(std::string(RECUR_SOURCE_DIR) + "/configs/sweeps/copy-length.yaml").trials.size(), 16u);
}

}  // namespace
}  // namespace recur::coord
