// The coordinator with real parts: a real `recur coordinator` process on a loopback socket, real
// SQLite files, real HTTP. Protocol errors are 4xx with a message and the service keeps serving; the
// store's reports are idempotent, stale attempts change nothing, expired leases requeue, and a
// reopened state file holds everything.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>

#include <chrono>
#include <sstream>
#include <thread>

#include "coord/http.h"
#include "coord/store.h"
#include "coord/sweep.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/process.h"
#include "data/corpora.h"

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
    prepare();
    start();
  }
  // Derived fixtures set extra_args_, path_prefix_ or nofile_ here, before the first start.
  virtual void prepare() {}
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
      std::vector<std::string> args = {RECUR_BINARY, "coordinator", "--state", dir_ + "/state.db", "--listen", "127.0.0.1:0",
                                        "--port-file", dir_ + "/port", "--lease-seconds", "2"};
      args.insert(args.end(), extra_args_.begin(), extra_args_.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      if (!path_prefix_.empty()) ::setenv("PATH", (path_prefix_ + ":" + std::getenv("PATH")).c_str(), 1);
      if (nofile_ > 0) {
        struct rlimit rl {nofile_, nofile_};
        ::setrlimit(RLIMIT_NOFILE, &rl);
      }
      execv(RECUR_BINARY, argv.data());
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
  std::vector<std::string> extra_args_;
  std::string path_prefix_;
  rlim_t nofile_ = 0;
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
  EXPECT_TRUE(req("POST", "/api/trials/" + t + "/heartbeat", "{" + who + ", \"progress\": {\"step\": 3, \"loss\": 2.5}}").body["ok"].get<bool>());
  // the report's progress (the trial's last step) ends the loss curve; a hostile one is refused whole
  EXPECT_EQ(req("POST", "/api/trials/" + t + "/report", "{" + who + ", \"status\": \"succeeded\", \"progress\": [1]}").status, 400);
  auto r1 = req("POST", "/api/trials/" + t + "/report",
                "{" + who + ", \"status\": \"succeeded\", \"result\": {\"bpc\": 1.5}, \"progress\": {\"step\": 8, \"loss\": 1.25}}").body;
  auto r2 = req("POST", "/api/trials/" + t + "/report",
                "{" + who + ", \"status\": \"succeeded\", \"result\": {\"bpc\": 9}, \"progress\": {\"step\": 9, \"loss\": 9}}").body;
  EXPECT_TRUE(r1["applied"].get<bool>());
  EXPECT_FALSE(r2["applied"].get<bool>());
  auto curve = req("GET", "/api/trials/" + t + "/curve").body;
  ASSERT_EQ(curve.size(), 1u) << curve.dump();
  EXPECT_EQ(curve[0]["step"], json({3, 8}));  // the repeated report, after the trial ended, adds nothing
  EXPECT_EQ(curve[0]["loss"], json({2.5, 1.25}));
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

// An agent's heartbeat interval is checked before it contacts anything: 0 would spin, NaN never beat.
TEST(AgentOptions, HeartbeatOutOfRangeIsAUsageError) {
  for (const char* bad : {"0", "-1", "nan", "1e9"}) {
    auto r = run_process({RECUR_BINARY, "agent", "--coordinator", "http://127.0.0.1:9", "--token", "t", "--workdir",
                          "/tmp/recur-agent-never", "--heartbeat", bad});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.output;
    EXPECT_THAT(r.output, HasSubstr("--heartbeat: ")) << bad;
  }
}

// Operations (issue 21): `recur sweep hold|release|priority` over real sockets. A held trial is never
// leased (a running one finishes; requeued, it waits); higher priority is leased first, then the oldest;
// both survive a restart.
class LongLeases : public CoordinatorProcess {
 protected:
  void prepare() override { extra_args_ = {"--lease-seconds", "600"}; }  // the last --lease-seconds wins
};

TEST_F(LongLeases, HoldReleaseAndPriorityDecideWhatIsLeased) {
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {RECUR_BINARY, "sweep"});
    args.insert(args.end(), {"--coordinator", url_, "--token", token_});
    return run_process(args);
  };
  auto ok = [&](std::vector<std::string> args) {
    auto r = cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  };
  ASSERT_EQ(req("POST", "/api/sweeps", tiny_spec(3).to_json().dump()).status, 200);  // trials 1-3
  ASSERT_EQ(req("POST", "/api/sweeps", tiny_spec(2).to_json().dump()).status, 200);  // trials 4-5
  const std::string agent = std::to_string(req("POST", "/api/agents", R"({"name": "a", "slots": 1, "workdir": "/w"})").body["id"].get<int64_t>());
  auto lease = [&]() {
    json t = req("POST", "/api/agents/" + agent + "/lease", R"({"free_slots": 1})").body["trial"];
    return t.is_null() ? int64_t{0} : t["id"].get<int64_t>();
  };
  EXPECT_THAT(ok({"hold", "1"}), HasSubstr("sweep 1: pending, 3 trials held"));
  EXPECT_EQ(lease(), 4);
  EXPECT_THAT(ok({"priority", "--trial", "5", "3"}), HasSubstr("trial 5: pending, priority 3"));
  ok({"release", "1"});
  EXPECT_THAT(ok({"hold", "--trial", "1"}), HasSubstr("trial 1: pending, held, priority 0"));
  EXPECT_THAT(ok({"status", "1"}), HasSubstr("(1 trials held)"));
  stop();  // kill -9: held and priority are in the state file
  start();
  EXPECT_THAT(ok({"status", "2"}), HasSubstr("priority 3  model.n_layer=2, seed 1"));
  EXPECT_EQ(lease(), 5);  // priority first
  EXPECT_EQ(lease(), 2);  // then the oldest unheld
  // a running trial that is held finishes its attempt; requeued, it waits
  ok({"hold", "--trial", "2"});
  EXPECT_TRUE(req("POST", "/api/trials/2/heartbeat", "{\"agent\": " + agent + ", \"attempt\": 1}").body["ok"].get<bool>());
  req("POST", "/api/trials/2/report", "{\"agent\": " + agent + R"(, "attempt": 1, "status": "requeue"})");
  EXPECT_EQ(lease(), 3);
  EXPECT_EQ(lease(), 0);  // 1 and 2 are held
  ok({"priority", "1", "-1"});
  ok({"release", "--trial", "2"});
  ok({"release", "--trial", "1"});
  EXPECT_EQ(lease(), 1);
  EXPECT_EQ(req("GET", "/api/sweeps/1").body["trials"][1]["priority"], -1);
  // errors: unknown ids, a priority that is not an integer, a missing N
  auto unknown = cli({"hold", "99"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(unknown.output, HasSubstr("no sweep 99"));
  EXPECT_EQ(req("POST", "/api/trials/99/release").status, 404);
  EXPECT_EQ(req("POST", "/api/trials/1/priority", R"({"priority": 1.5})").status, 400);
  EXPECT_EQ(req("POST", "/api/sweeps/1/priority", "{}").status, 400);
  EXPECT_NE(cli({"priority", "--trial", "1"}).exit_code, 0);
  EXPECT_THAT(ok({"hold", "--help"}), HasSubstr("never handed to an agent"));
}

// `recur sweep results --fit power` against a real coordinator: trials reported with their parameter
// counts give back the exponent they were made with; labels read as text and sd is blank for one seed.
TEST_F(LongLeases, ResultsFitAPowerLawPerModel) {
  SweepSpec s = tiny_spec(0);
  s.axes = {"model", "model.n_layer"};
  for (const std::string model : {"xl", "rsa_xl"}) {
    for (int layers : {2, 4, 8, 16}) {
      for (int64_t seed : {1, 2}) {
        TrialSpec t;
        t.point = {{"model", model}, {"model.n_layer", layers}};
        t.seed = seed;
        t.overrides = {"model.n_layer=" + std::to_string(layers)};
        s.trials.push_back(t);
      }
    }
  }
  TrialSpec lone;  // one seed only
  lone.point = {{"model", "tl_xl"}, {"model.n_layer", 2}};
  s.trials.push_back(lone);
  ASSERT_EQ(req("POST", "/api/sweeps", s.to_json().dump()).status, 200);
  const std::string agent = std::to_string(req("POST", "/api/agents", R"({"name": "a", "slots": 1, "workdir": "/w"})").body["id"].get<int64_t>());
  for (size_t i = 0; i < s.trials.size(); ++i) {
    json t = req("POST", "/api/agents/" + agent + "/lease", R"({"free_slots": 1})").body["trial"];
    ASSERT_TRUE(t.is_object());
    const double params = 1000.0 * t["point"]["model.n_layer"].get<int>();
    const double alpha = t["point"]["model"] == "xl" ? 0.5 : 0.25;
    const double bpc = 30 * std::pow(params, -alpha) + 1 + 0.002 * (t["seed"].get<int>() == 1 ? 1 : -1);
    json report = {{"agent", std::stoll(agent)}, {"attempt", 1}, {"status", "succeeded"}, {"result", {{"bpc", bpc}, {"parameters", params}}}};
    ASSERT_EQ(req("POST", "/api/trials/" + std::to_string(t["id"].get<int64_t>()) + "/report", report.dump()).status, 200);
  }
  auto results = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {RECUR_BINARY, "sweep", "results", "1", "--coordinator", url_, "--token", token_};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_process(args);
  };
  // tl_xl has one x: the fit refuses it by name
  auto refused = results({"--fit", "power"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.output, HasSubstr("series 'model=tl_xl' has 1 distinct x"));
  auto plain = results({"--format", "json"});
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  const json rows = json::parse(plain.output)["rows"];
  EXPECT_EQ(rows[0]["label"], "model=xl, model.n_layer=2");
  EXPECT_TRUE(rows[0].contains("sd"));
  EXPECT_FALSE(rows.back().contains("sd"));  // n = 1
  auto table = results({});
  EXPECT_THAT(table.output, ::testing::ContainsRegex("tl_xl \\| 2 \\| [0-9.]+ \\|  \\| 1 \\|"));  // sd blank
  // once tl_xl's lone trial has failed, the series has no results and is left out
  const int64_t lone_id = req("GET", "/api/sweeps/1").body["trials"].back()["id"];
  {
    stop();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/state.db").c_str(), &db), SQLITE_OK);
    const std::string sql = "UPDATE trials SET state = 'failed' WHERE id = " + std::to_string(lone_id);
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    start();
  }
  auto fit = results({"--fit", "power", "--format", "json", "--bootstrap", "200"});
  ASSERT_EQ(fit.exit_code, 0) << fit.output;
  const json f = json::parse(fit.output)["fit"];
  EXPECT_EQ(f["x"], "parameters");
  ASSERT_EQ(f["fits"].size(), 2u);
  EXPECT_EQ(f["fits"][0]["series"], "model=xl");
  EXPECT_NEAR(f["fits"][0]["alpha"].get<double>(), 0.5, 0.05);
  EXPECT_NEAR(f["fits"][1]["alpha"].get<double>(), 0.25, 0.05);
  EXPECT_LE(f["fits"][0]["alpha_ci"][0].get<double>(), 0.5);
  EXPECT_GE(f["fits"][0]["alpha_ci"][1].get<double>(), 0.5);
  auto fit_table = results({"--fit", "power", "--bootstrap", "50"});
  EXPECT_THAT(fit_table.output, HasSubstr("fit: L = a * x^(-alpha) + c, x = parameters"));
  EXPECT_THAT(fit_table.output, HasSubstr("model=rsa_xl | parameters | 8 |"));
  EXPECT_THAT(fit_table.output, HasSubstr("not fitted (no succeeded trials yet): model=tl_xl"));
  auto bad = results({"--fit", "linear"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.output, HasSubstr("--fit must be power"));
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
  // A typo in the size (issue 17, a new kind of bad input): refused before anything expands, not
  // minutes of expansion until memory runs out.
  write_file_atomic(dir + "/huge.yaml", "base: base.yaml\nseeds: 1000000000\n");
  EXPECT_THAT([&] { load_sweep_spec(dir + "/huge.yaml"); }, ::testing::ThrowsMessage<Error>(HasSubstr("exceeds")));
  write_file_atomic(dir + "/huge2.yaml", "base: base.yaml\nseeds: 1000\naxes:\n  model.n_layer: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
                                         "  train.lr: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\n");
  EXPECT_THAT([&] { load_sweep_spec(dir + "/huge2.yaml"); }, ::testing::ThrowsMessage<Error>(HasSubstr("110000 trials")));
  // Two values with one label, or one value twice: their trials could not be told apart in results.
  for (const std::string axes : {"  model:\n    - {label: xl, type: xl, n_rsa_heads: 0}\n    - {label: xl, type: rsa_xl}\n",
                                 "  model.n_layer: [2, 3, 2]\n"}) {
    write_file_atomic(dir + "/dup.yaml", "base: base.yaml\naxes:\n" + axes);
    EXPECT_THAT([&] { load_sweep_spec(dir + "/dup.yaml"); },
                ::testing::ThrowsMessage<Error>(HasSubstr("two trials would have the same point"))) << axes;
  }
  write_file_atomic(dir + "/dup.yaml", "base: base.yaml\naxes:\n  model:\n    - {label: xl, type: xl, n_rsa_heads: 0}\n"
                                       "    - {label: xl, type: rsa_xl}\n  model.n_layer: [2, 3]\n");
  EXPECT_THAT([&] { load_sweep_spec(dir + "/dup.yaml"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("(model=xl, model.n_layer=2)")));
  remove_tree(dir);
}

// Parameter-matched designs (RSA §4.4): a list in a bundle under a key that is another axis is zipped
// with that axis, for that bundle only. The point records the value the trial runs with, the label
// reads as text, and the resulting config has it.
TEST(SweepSpec, PerValueListsZipWithAnotherAxis) {
  std::string dir = "/tmp/recur-test-zip-" + std::to_string(::getpid());
  make_dirs(dir);
  write_file_atomic(dir + "/base.yaml", "model:\n  type: rsa_xl\n  n_rsa_heads: 1\n  rem_types: [1, 0, 0, 0, 0, 0]\n");
  write_file_atomic(dir + "/spec.yaml",
                    "base: base.yaml\naxes:\n  model:\n    - {label: xl, type: xl, n_rsa_heads: 0}\n"
                    "    - {label: fl, type: fl_xl, n_layer: [1, 2, 3], train.lr: 0.002}\n"
                    "  model.n_layer: [3, 4, 5]\nseeds: 2\n");
  auto s = load_sweep_spec(dir + "/spec.yaml");
  ASSERT_EQ(s.trials.size(), 12u);
  std::vector<std::pair<std::string, int64_t>> points;
  for (const auto& t : s.trials) points.emplace_back(t.point["model"].get<std::string>(), t.point["model.n_layer"].get<int64_t>());
  EXPECT_EQ(points, (std::vector<std::pair<std::string, int64_t>>{
                        {"xl", 3}, {"xl", 3}, {"xl", 4}, {"xl", 4}, {"xl", 5}, {"xl", 5},
                        {"fl", 1}, {"fl", 1}, {"fl", 2}, {"fl", 2}, {"fl", 3}, {"fl", 3}}));
  EXPECT_EQ(point_label(s.trials[8].point, s.axes), "model=fl, model.n_layer=2");
  auto config = [&](size_t i) { return Config::parse(s.base_yaml, "base", s.trials[i].overrides); };
  EXPECT_EQ(config(2).get_int("model.n_layer"), 4);
  EXPECT_EQ(config(2).get_string("model.type"), "xl");
  EXPECT_EQ(config(8).get_int("model.n_layer"), 2);
  EXPECT_EQ(config(8).get_string("model.type"), "fl_xl");
  EXPECT_DOUBLE_EQ(config(8).get_float("train.lr"), 0.002);
  EXPECT_EQ(std::count_if(s.trials[8].overrides.begin(), s.trials[8].overrides.end(),
                          [](const std::string& o) { return o.rfind("model.n_layer=", 0) == 0; }),
            1);
  // The list must have one value per value of the axis it zips with; a scalar would duplicate trials.
  auto refused = [&](const std::string& model, const std::string& want) {
    write_file_atomic(dir + "/bad.yaml", "base: base.yaml\naxes:\n  model:\n    - {label: xl, type: xl, n_rsa_heads: 0}\n    - " + model +
                                             "\n  model.n_layer: [3, 4, 5]\n");
    EXPECT_THAT([&] { load_sweep_spec(dir + "/bad.yaml"); }, ::testing::ThrowsMessage<Error>(HasSubstr(want))) << model;
  };
  refused("{label: fl, type: fl_xl, n_layer: [1, 2]}", "give a list of 3 values, one per value of 'model.n_layer'");
  refused("{label: fl, type: fl_xl, n_layer: 2}", "zipped with it");
  refused("{label: fl, type: fl_xl, n_layer: [1, -2, 3]}", "invalid config");
  write_file_atomic(dir + "/bad.yaml", "base: base.yaml\naxes:\n  model:\n    - {label: a, type: xl, n_rsa_heads: 0, n_head: [1, 2]}\n"
                                       "  size:\n    - {label: s, model.n_layer: 2, model.n_head: [4, 8]}\n    - {label: l, model.n_layer: 4}\n"
                                       "  model.n_head: [2, 4]\n");
  EXPECT_THAT([&] { load_sweep_spec(dir + "/bad.yaml"); }, ::testing::ThrowsMessage<Error>(HasSubstr("both zip a list with axis 'model.n_head'")));
  remove_tree(dir);
}

// The shipped model-scaling sweep follows §4.4: FL-XL runs 8-14 layers, the others 10-16.
TEST(SweepSpec, ModelScalingIsParameterMatched) {
  auto s = load_sweep_spec(std::string(RECUR_SOURCE_DIR) + "/configs/sweeps/model-scaling-gcide.yaml");
  std::map<std::string, std::set<int64_t>> layers;
  for (const auto& t : s.trials) {
    const Config c = Config::parse(s.base_yaml, "base", t.overrides);
    EXPECT_EQ(c.get_int("model.n_layer"), t.point["model.n_layer"].get<int64_t>());
    layers[c.get_string("model.type")].insert(c.get_int("model.n_layer"));
  }
  EXPECT_EQ(layers["fl_xl"], (std::set<int64_t>{8, 10, 12, 14}));
  for (const char* m : {"xl", "rsa_xl", "tl_xl"}) EXPECT_EQ(layers[m], (std::set<int64_t>{10, 12, 14, 16})) << m;
}

}  // namespace
}  // namespace recur::coord

namespace recur::coord {
namespace {

// Every shipped sweep spec expands and every trial's config passes the checks.
// The metric must be a key of the trials' eval.json: bpc for a byte corpus, sequence_accuracy for an
// example dataset, splits.NAME.* for eval.extra_splits; anything goes among them when the dataset is
// not readable at submit. direction defaults to min for losses, max for accuracies.
TEST(SweepSpec, MetricIsAKeyOfEvalJsonWithADirection) {
  std::string dir = "/tmp/recur-test-metric-" + std::to_string(::getpid());
  make_dirs(dir);
  write_file_atomic(dir + "/corpus.txt", std::string(20000, 'a'));
  data::ShardOptions o;
  o.corpus = "bytes";
  o.inputs = {dir + "/corpus.txt"};
  o.out_dir = dir + "/bytes";
  o.progress = false;
  data::shard_corpus(o);
  ASSERT_EQ(std::system((std::string(RECUR_BINARY) + " gen copy --max-len 16 --out " + dir +
                         "/copy --train 20 --valid 5 --test 5 > /dev/null 2>&1").c_str()), 0);
  auto spec = [&](const std::string& data, const std::string& rest) {
    write_file_atomic(dir + "/spec.yaml", "base: base.yaml\nset:\n  data.path: " + data + "\n" + rest);
    return load_sweep_spec(dir + "/spec.yaml");
  };
  auto refused = [&](const std::string& data, const std::string& rest, const std::string& want) {
    EXPECT_THAT([&] { spec(data, rest); }, ::testing::ThrowsMessage<Error>(HasSubstr(want))) << rest;
  };
  write_file_atomic(dir + "/base.yaml", "model:\n  type: transformer\n");
  EXPECT_EQ(spec(dir + "/bytes", "metric: bpc\n").direction, "min");
  EXPECT_EQ(spec(dir + "/bytes", "").metric, "loss");
  refused(dir + "/bytes", "metric: ppl\n", "metric 'ppl' is not in the eval.json");
  refused(dir + "/bytes", "metric: bcp\n", "it will have: bpc, loss, token_accuracy");
  refused(dir + "/bytes", "metric: sequence_accuracy\n", "sequence_accuracy");
  EXPECT_EQ(spec(dir + "/copy", "metric: sequence_accuracy\n").direction, "max");
  EXPECT_EQ(spec(dir + "/copy", "metric: token_accuracy\ndirection: min\n").direction, "min");
  refused(dir + "/copy", "metric: bpc\n", "metric 'bpc'");
  refused(dir + "/copy", "metric: loss\ndirection: up\n", "direction must be min or max");
  // extra splits
  write_file_atomic(dir + "/spec.yaml", "base: base.yaml\nset:\n  data.path: " + dir + "/copy\n  eval.extra_splits: '[test]'\n"
                                        "metric: splits.test.sequence_accuracy\n");
  EXPECT_EQ(load_sweep_spec(dir + "/spec.yaml").direction, "max");
  refused(dir + "/copy", "metric: splits.tset.sequence_accuracy\n", "splits.tset");
  // eval.every_epoch: each split's best over the epochs, under best.SPLIT (the reference protocol)
  refused(dir + "/copy", "metric: best.test.sequence_accuracy\n", "metric 'best.test.sequence_accuracy'");
  write_file_atomic(dir + "/spec.yaml", "base: base.yaml\nset:\n  data.path: " + dir + "/copy\n  eval.extra_splits: '[test]'\n"
                                        "  eval.every_epoch: true\nmetric: best.test.sequence_accuracy\n");
  EXPECT_EQ(load_sweep_spec(dir + "/spec.yaml").direction, "max");
  // data where the agents run: permissive among the keys any dataset gives, still strict for typos
  EXPECT_EQ(spec("/nowhere/data", "metric: ppl\n").metric, "ppl");
  refused("/nowhere/data", "metric: accuracy\n", "metric 'accuracy'");
  // stored before direction existed: derived from the metric
  json j = spec("/nowhere/data", "metric: token_accuracy\n").to_json();
  j.erase("direction");
  EXPECT_EQ(SweepSpec::from_json(j).direction, "max");
  remove_tree(dir);
}

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

// Hardening (issue 17): a hostile token holder, hostile paths and hostile or merely many clients.
namespace recur::coord {
namespace {

// Polls `ready` for up to `seconds`; true once it holds.
template <typename F>
bool eventually(double seconds, F ready) {
  for (int i = 0; i < seconds * 10; ++i) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return ready();
}

// The Slurm executor against fake sbatch/squeue/scontrol/scancel (shell scripts first in PATH): a job
// is RUNNING while FAKE/jobs/ID exists, and then COMPLETED; sbatch hands out 101, 102, ...
class FakeSlurm : public CoordinatorProcess {
 protected:
  void prepare() override {
    const std::string bin = dir_ + "/bin";
    make_dirs(bin + "/jobs");
    auto script = [&](const std::string& name, const std::string& body) {
      write_file_atomic(bin + "/" + name, "#!/bin/sh\nd=" + bin + "\n" + body);
      ::chmod((bin + "/" + name).c_str(), 0755);
    };
    script("sbatch", "n=$(( $(cat $d/count 2>/dev/null || echo 0) + 1 )); echo $n > $d/count; echo \"$*\" >> $d/args; touch $d/jobs/$((100 + n)); echo $((100 + n))\n");
    script("squeue", "[ -f \"$d/jobs/$3\" ] && echo RUNNING; exit 0\n");
    script("scontrol", "echo \"JobId=$3 JobState=COMPLETED Reason=None\"\n");
    script("scancel", "rm -f \"$d/jobs/$1\"\n");
    path_prefix_ = bin;
    extra_args_ = {"--executor", "slurm", "--slurm-workdir", dir_ + "/work"};
  }
  json trial() { return req("GET", "/api/sweeps/1").body["trials"][0]; }
  std::string job() { return trial()["progress"].value("slurm_job", ""); }
};

// Finding 2: the executor's jobs are re-attached after a restart. The old test never restarted the
// coordinator, so the re-attach loop (which iterated a destroyed temporary) never ran on a trial.
TEST_F(FakeSlurm, ARestartedCoordinatorReattachesToItsJobs) {
  ASSERT_EQ(req("POST", "/api/sweeps", tiny_spec(1).to_json().dump()).status, 200);
  ASSERT_TRUE(eventually(15, [&] { return job() == "101"; })) << trial().dump();
  stop();  // kill -9
  start();
  const std::string run_dir = trial()["run_dir"];
  ::unlink((dir_ + "/bin/jobs/101").c_str());  // the job finishes while the coordinator was away
  write_file_atomic(run_dir + "/eval.json", "{\"bpc\": 1.25}\n");
  EXPECT_TRUE(eventually(15, [&] { return trial()["state"] == "succeeded"; })) << trial().dump() << read_file(dir_ + "/coord.log");
  EXPECT_EQ(read_file(dir_ + "/bin/count"), "1\n");  // followed, not submitted again
}

// Finding 3: a job id in the state file is written by any token holder (heartbeat progress); it is
// never handed to a shell, and one that is not a number is refused.
TEST_F(FakeSlurm, AHostileJobIdInTheStateNeverReachesAShell) {
  ASSERT_EQ(req("POST", "/api/sweeps", tiny_spec(1).to_json().dump()).status, 200);
  ASSERT_TRUE(eventually(15, [&] { return job() == "101"; })) << trial().dump();
  const int64_t id = trial()["id"];
  // through the API, such an id is refused outright
  EXPECT_EQ(req("POST", "/api/trials/" + std::to_string(id) + "/heartbeat",
                R"({"agent": 1, "attempt": 1, "progress": {"slurm_job": "101;true"}})").status, 400);
  stop();
  {
    Store s(dir_ + "/state.db");
    const int64_t me = std::stoll(read_file(dir_ + "/state.db.slurm-agent"));
    const std::string hostile = "101;touch " + dir_ + "/pwned;true";
    ASSERT_TRUE(s.heartbeat(id, me, 1, json{{"slurm_job", hostile}}, 1e6));
  }
  start();
  // The trial's attempt fails with a clear error and is retried as a new job.
  EXPECT_TRUE(eventually(15, [&] { return job() == "102"; })) << trial().dump();
  EXPECT_FALSE(path_exists(dir_ + "/pwned"));
  EXPECT_THAT(read_file(dir_ + "/coord.log"), HasSubstr("not a Slurm job id"));
}

// GPU placement (issue 21): a trial's GPUs reach Slurm as --gpus-per-task (resources.gpus is per
// trial, split evenly over its ranks); a trial without GPUs asks for none.
TEST_F(FakeSlurm, SbatchAsksForTheTrialsGpusPerTask) {
  SweepSpec s = tiny_spec(1);
  s.ranks = 2;
  s.gpus = 4;
  ASSERT_EQ(req("POST", "/api/sweeps", s.to_json().dump()).status, 200);
  ASSERT_EQ(req("POST", "/api/sweeps", tiny_spec(1).to_json().dump()).status, 200);
  ASSERT_TRUE(eventually(15, [&] { return path_exists(dir_ + "/bin/count") && read_file(dir_ + "/bin/count") == "2\n"; }));
  const std::string args = read_file(dir_ + "/bin/args");
  const std::string first = args.substr(0, args.find('\n')), second = args.substr(args.find('\n') + 1);
  EXPECT_THAT(first, HasSubstr("-n 2 -o "));
  EXPECT_THAT(first, HasSubstr(" --gpus-per-task=2 "));
  EXPECT_THAT(second, ::testing::Not(HasSubstr("gpus")));
  s.gpus = 3;  // not a multiple of the ranks: refused at the door
  auto refused = req("POST", "/api/sweeps", s.to_json().dump());
  EXPECT_EQ(refused.status, 400);
  EXPECT_THAT(refused.body["error"].get<std::string>(), HasSubstr("multiple of resources.ranks"));
}

// Agents advertise their GPUs over the API; `sweep status` lists the live agents with their GPUs and
// shows why a trial too large for all of them waits.
TEST_F(LongLeases, StatusShowsAgentsGpusAndWhyATrialWaits) {
  SweepSpec s = tiny_spec(2);
  s.gpus = 4;
  ASSERT_EQ(req("POST", "/api/sweeps", s.to_json().dump()).status, 200);
  const json gpus = json::array({{{"index", 0}, {"name", "NVIDIA H100 80GB HBM3"}, {"memory_mib", 81559}}, {{"index", 1}}});
  auto reg = req("POST", "/api/agents", json{{"name", "node1"}, {"slots", 2}, {"gpus", gpus}, {"workdir", "/w"}}.dump());
  ASSERT_EQ(reg.status, 200) << reg.body.dump();
  const std::string agent = std::to_string(reg.body["id"].get<int64_t>());
  EXPECT_TRUE(req("POST", "/api/agents/" + agent + "/lease", R"({"free_slots": 2, "free_gpus": [0, 1]})").body["trial"].is_null());
  EXPECT_EQ(req("POST", "/api/agents/" + agent + "/lease", R"({"free_slots": 2, "free_gpus": [0, "x"]})").status, 400);
  EXPECT_EQ(req("POST", "/api/agents/" + agent + "/lease", R"({"free_slots": 2, "free_gpus": 3})").status, 400);
  auto bad = req("POST", "/api/agents", R"({"name": "n", "slots": 1, "workdir": "/w", "gpus": [{"index": 0}, {"index": 0}]})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body["error"].get<std::string>(), HasSubstr("GPU 0 is listed twice"));
  // an agent from before GPU placement ("0,1") still registers
  EXPECT_EQ(req("POST", "/api/agents", R"({"name": "old", "slots": 1, "workdir": "/w", "gpus": "0,1"})").status, 200);
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {RECUR_BINARY, "sweep", "status"});
    args.insert(args.end(), {"--coordinator", url_, "--token", token_});
    return run_process(args);
  };
  auto one = cli({"1"});
  EXPECT_EQ(one.exit_code, 0) << one.output;
  EXPECT_THAT(one.output, HasSubstr("pending    attempts 0  model.n_layer=1, seed 1  (waiting: needs 4 GPUs; the largest agent has 2)"));
  auto all = cli({});
  EXPECT_THAT(all.output, HasSubstr("node1                2 slots, 2 GPUs: 0 (NVIDIA H100 80GB HBM3, 81559 MiB); 1"));
  EXPECT_THAT(all.output, HasSubstr("old                  1 slots, 2 GPUs: 0; 1"));
}

// Operations (issue 21): `sweep status` shows a finished trial's final metric and none of its stale
// progress; `sweep trials --csv` writes one row per trial with its cost in GPU-hours.
TEST_F(LongLeases, FinishedTrialsShowTheirMetricAndTrialsGoToCsv) {
  SweepSpec s = tiny_spec(3);
  s.axes = {"model", "model.n_layer"};
  for (auto& t : s.trials) t.point["model"] = "xl";
  s.gpus = 2;
  ASSERT_EQ(req("POST", "/api/sweeps", s.to_json().dump()).status, 200);
  const std::string agent = std::to_string(
      req("POST", "/api/agents", R"({"name": "a", "slots": 4, "workdir": "/w", "gpus": [{"index": 0}, {"index": 1}, {"index": 2}, {"index": 3}]})")
          .body["id"]
          .get<int64_t>());
  auto lease = [&] { return req("POST", "/api/agents/" + agent + "/lease", R"({"free_slots": 4, "free_gpus": [0, 1, 2, 3]})").body["trial"]; };
  auto beat = [&](int64_t trial, int64_t step) {
    json b = {{"agent", std::stoll(agent)}, {"attempt", 1}, {"progress", {{"step", step}, {"steps", 100}, {"loss", 2.5}, {"eta_s", 9.0}}}};
    EXPECT_TRUE(req("POST", "/api/trials/" + std::to_string(trial) + "/heartbeat", b.dump()).body["ok"].get<bool>());
  };
  const json t1 = lease(), t2 = lease();
  ASSERT_TRUE(t1.is_object() && t2.is_object());
  beat(1, 40);
  beat(2, 10);
  json done = {{"agent", std::stoll(agent)}, {"attempt", 1}, {"status", "succeeded"}, {"result", {{"bpc", 1.25}, {"step", 100}, {"train_seconds", 1800.0}}}};
  ASSERT_EQ(req("POST", "/api/trials/1/report", done.dump()).status, 200);
  EXPECT_EQ(req("GET", "/api/sweeps/1").body["trials"][0]["progress"], json::object());  // cleared
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {RECUR_BINARY, "sweep"});
    args.insert(args.end(), {"--coordinator", url_, "--token", token_});
    return run_process(args);
  };
  auto status = cli({"status", "1"});
  ASSERT_EQ(status.exit_code, 0) << status.output;
  EXPECT_THAT(status.output, HasSubstr("succeeded  attempts 1  model=xl, model.n_layer=1, seed 1  bpc 1.25\n"));
  EXPECT_THAT(status.output, HasSubstr("running    attempts 1  model=xl, model.n_layer=2, seed 1  step 10/100 loss 2.5000 [GPUs 2,3]"));
  EXPECT_THAT(status.output, ::testing::Not(HasSubstr("step 40")));
  auto csv = cli({"trials", "1", "--csv", dir_ + "/trials.csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv.output;
  EXPECT_EQ(read_file(dir_ + "/trials.csv"),
            "trial,point,seed,state,run_dir,bpc,steps,wall_seconds,gpu_hours\n"
            "1,\"model=xl, model.n_layer=1\",1,succeeded,/w/sweep-1/trial-1,1.25,100,1800.0,1.0000\n"
            "2,\"model=xl, model.n_layer=2\",1,running,/w/sweep-1/trial-2,,,,\n"
            "3,\"model=xl, model.n_layer=3\",1,pending,,,,,\n");
  auto table = cli({"trials", "1"});
  EXPECT_THAT(table.output, HasSubstr("1 | model=xl, model.n_layer=1 | 1 | succeeded | /w/sweep-1/trial-1 | 1.25 | 100 | 1800.0 | 1.0000"));
  EXPECT_NE(cli({"trials"}).exit_code, 0);
}

// Trial states are an enum; the state file and the JSON keep their names.
TEST(Store, TrialStatesRoundTripThroughTheirNames) {
  for (TrialState st : {TrialState::kPending, TrialState::kRunning, TrialState::kSucceeded, TrialState::kFailed, TrialState::kCancelled}) {
    EXPECT_EQ(parse_trial_state(state_name(st)), st);
  }
  EXPECT_FALSE(is_finished(TrialState::kRunning));
  EXPECT_TRUE(is_finished(TrialState::kCancelled));
  EXPECT_THAT([] { parse_trial_state("done"); }, ::testing::ThrowsMessage<Error>(HasSubstr("unknown trial state 'done'")));
}

// Finding 3: `sweep results --plot DIR` runs the plot script without a shell, whatever DIR and
// RECUR_ROOT hold.
TEST_F(CoordinatorProcess, PlotRunsNoShellWhateverTheDirectoryOrRoot) {
  ASSERT_EQ(req("POST", "/api/sweeps", tiny_spec(2).to_json().dump()).status, 200);
  const std::string dir = dir_ + "/plots'; touch " + dir_ + "/pwned; '";
  auto r = run_process({RECUR_BINARY, "sweep", "results", "1", "--plot", dir, "--coordinator", url_, "--token", token_},
                       {{"RECUR_ROOT", RECUR_SOURCE_DIR}});
  EXPECT_FALSE(path_exists(dir_ + "/pwned")) << r.output;
  EXPECT_TRUE(path_exists(dir + "/sweep-1-results.json")) << r.output;
  r = run_process({RECUR_BINARY, "sweep", "results", "1", "--plot", dir_ + "/p2", "--coordinator", url_, "--token", token_},
                  {{"RECUR_ROOT", dir_ + "/x'; touch " + dir_ + "/pwned2; '"}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(path_exists(dir_ + "/pwned2")) << r.output;
}

// Finding 5: with few descriptors, many idle unauthenticated sockets neither starve the service nor
// make it spin: accept errors back off, a reserve descriptor sheds the excess, idle strangers are capped.
class FewDescriptors : public CoordinatorProcess {
 protected:
  void prepare() override { nofile_ = 100; }
};

double cpu_seconds(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream in(stat.substr(stat.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

TEST_F(FewDescriptors, IdleSocketsNeitherStarveHealthChecksNorSpin) {
  boost::asio::io_context io;
  const boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"),
                                          static_cast<uint16_t>(std::stoi(url_.substr(url_.rfind(':') + 1))));
  std::vector<std::unique_ptr<boost::asio::ip::tcp::socket>> idle;
  for (int i = 0; i < 200; ++i) {
    idle.push_back(std::make_unique<boost::asio::ip::tcp::socket>(io));
    idle.back()->connect(ep);
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const double cpu0 = cpu_seconds(pid_);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {  // each gives up after 5 s
    HttpResponse h;
    ASSERT_NO_THROW(h = http_request(url_, "GET", "/api/health", token_, "", 5)) << "health check " << i;
    EXPECT_EQ(h.status, 200);
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(cpu_seconds(pid_) - cpu0, 0.25 * wall) << "the coordinator spins";
}

// Finding 13: the API takes the token only in the Authorization header; ?token= is for the page.
TEST_F(CoordinatorProcess, TheApiTakesTheTokenOnlyInTheHeader) {
  EXPECT_EQ(http_request(url_, "GET", "/api/health?token=" + token_, "", "", 10).status, 401);
  EXPECT_EQ(http_request(url_, "GET", "/api/sweeps?token=" + token_, "", "", 10).status, 401);
  EXPECT_EQ(http_request(url_, "GET", "/?token=" + token_, "", "", 10).status, 200);
  EXPECT_EQ(http_request(url_, "GET", "/?token=" + token_ + "x", "", "", 10).status, 403);
  EXPECT_EQ(req("GET", "/api/health", "", token_.substr(0, token_.size() - 1)).status, 403);
  EXPECT_EQ(req("GET", "/api/health").status, 200);
}

// Finding 14: a second coordinator on the same state file is refused, naming the file.
TEST_F(CoordinatorProcess, ASecondCoordinatorOnTheSameStateIsRefused) {
  auto r = run_process({"timeout", "10", RECUR_BINARY, "coordinator", "--state", dir_ + "/state.db", "--listen", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("another coordinator"));
  EXPECT_THAT(r.output, HasSubstr(dir_ + "/state.db"));
  EXPECT_EQ(req("GET", "/api/health").status, 200);
  stop();  // once the first one is gone, the state is free again
  start();
  EXPECT_EQ(req("GET", "/api/health").status, 200);
}

// A server-side failure (here: the state database lost a table under the service) is a 500, not a
// 400 that blames the client; the service keeps serving.
TEST_F(CoordinatorProcess, ServerSideFailuresAre500) {
  ASSERT_EQ(req("POST", "/api/sweeps", tiny_spec(1).to_json().dump()).status, 200);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/state.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE trials RENAME TO moved", nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  auto broken = req("GET", "/api/sweeps/1");
  EXPECT_EQ(broken.status, 500) << broken.body.dump();
  EXPECT_THAT(broken.body["error"].get<std::string>(), HasSubstr("trials"));
  // client errors stay 4xx
  EXPECT_EQ(req("POST", "/api/trials/1/report", "{\"agent\": 1, \"attempt\": 1, \"status\": \"done\"}").status, 400);
  ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE moved RENAME TO trials", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(req("GET", "/api/sweeps/1").status, 200);
}

// The client gives up on a coordinator that accepted the connection but never answers (an agent must
// not hang on it for ever).
TEST(HttpClient, GivesUpOnACoordinatorThatNeverAnswers) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor mute(io, {boost::asio::ip::make_address("127.0.0.1"), 0});  // listens, never accepts
  const std::string url = "http://127.0.0.1:" + std::to_string(mute.local_endpoint().port());
  try {
    http_request(url, "GET", "/api/health", "t", "", 1);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no answer"));
  }
}

// A state file from before held and priority existed gains them when opened: its trials are unheld,
// of priority 0, and lease as before.
// The sweep's direction ranks the points: bpc (min) puts the lowest mean first, token_accuracy (max) the
// highest; equal means share a rank; a point without results has none. The best is named.
TEST(Store, ResultsRankPointsByTheSweepsDirection) {
  std::string dir = "/tmp/recur-test-store-rank-" + std::to_string(::getpid());
  remove_tree(dir);
  make_dirs(dir);
  {
    Store s(dir + "/s.db");
    for (const std::string metric : {"bpc", "token_accuracy"}) {
      SweepSpec spec = tiny_spec(4);
      spec.metric = metric;
      spec.direction = default_direction(metric);
      const int64_t id = s.create_sweep(spec);
      const int64_t a = s.register_agent("a", 1, "", "/w");
      const double values[] = {0.5, 0.25, 0.5};  // trial 4 gets no result
      for (double v : values) {
        const json t = s.lease(a, 1, 60);
        s.report(t["id"], a, 1, "succeeded", json{{metric, v}}, "");
      }
      const json r = s.results(id);
      EXPECT_EQ(r["direction"], spec.direction);
      const json& rows = r["rows"];
      ASSERT_EQ(rows.size(), 4u);
      if (metric == "bpc") {
        EXPECT_EQ(rows[1]["rank"], 1);
        EXPECT_EQ(rows[0]["rank"], 2);
        EXPECT_EQ(rows[2]["rank"], 2);
        EXPECT_EQ(r["best"]["label"], "model.n_layer=2");
      } else {
        EXPECT_EQ(rows[0]["rank"], 1);
        EXPECT_EQ(rows[2]["rank"], 1);
        EXPECT_EQ(rows[1]["rank"], 3);
        EXPECT_EQ(r["best"]["label"], "model.n_layer=1");
      }
      EXPECT_FALSE(rows[3].contains("rank"));
      s.cancel_sweep(id);  // its pending trial must not be leased in place of the next sweep's
    }
  }
  remove_tree(dir);
}

TEST(Store, AStateFileFromBeforeHoldAndPriorityOpens) {
  std::string dir = "/tmp/recur-test-store-old-" + std::to_string(::getpid());
  remove_tree(dir);
  make_dirs(dir);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir + "/s.db").c_str(), &db), SQLITE_OK);
  const char* old_schema =
      "CREATE TABLE sweeps (id INTEGER PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL, metric TEXT NOT NULL, axes TEXT NOT NULL, "
      "cancelled INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);"
      "CREATE TABLE trials (id INTEGER PRIMARY KEY, sweep_id INTEGER NOT NULL REFERENCES sweeps(id), idx INTEGER NOT NULL, "
      "point TEXT NOT NULL, seed INTEGER NOT NULL, overrides TEXT NOT NULL, ranks INTEGER NOT NULL, max_retries INTEGER NOT NULL, "
      "attempts INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'pending', agent_id INTEGER, lease_expires REAL, "
      "run_dir TEXT NOT NULL DEFAULT '', progress TEXT NOT NULL DEFAULT '{}', result TEXT NOT NULL DEFAULT '', "
      "error TEXT NOT NULL DEFAULT '', completions INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL);"
      "INSERT INTO sweeps (name, spec, metric, axes, created) VALUES ('old', '{}', 'bpc', '[\"model.n_layer\"]', 0);"
      "INSERT INTO trials (sweep_id, idx, point, seed, overrides, ranks, max_retries, updated) "
      "VALUES (1, 0, '{\"model.n_layer\": 2}', 1, '[]', 1, 1, 0);";
  ASSERT_EQ(sqlite3_exec(db, old_schema, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
  {
    Store s(dir + "/s.db");
    json t = s.sweep(1)["trials"][0];
    EXPECT_EQ(t["held"], false);
    EXPECT_EQ(t["priority"], 0);
    EXPECT_EQ(t["label"], "model.n_layer=2");
    const int64_t a = s.register_agent("a", 1, "", "/w");
    EXPECT_EQ(s.set_held(Store::Scope::kTrial, 1, true), 1);
    EXPECT_TRUE(s.lease(a, 1, 60).is_null());
    EXPECT_EQ(s.set_held(Store::Scope::kSweep, 1, false), 1);
    EXPECT_EQ(s.lease(a, 1, 60)["id"], 1);
    EXPECT_THROW(s.set_priority(Store::Scope::kSweep, 5, 1), NotFound);
  }
  Store again(dir + "/s.db");  // the second open finds the columns
  EXPECT_EQ(again.trial(1)["state"], "running");
  remove_tree(dir);
}

TEST(Store, NotFoundIsAnError) {
  std::string dir = "/tmp/recur-test-store-nf-" + std::to_string(::getpid());
  remove_tree(dir);
  make_dirs(dir);
  {
    Store s(dir + "/s.db");
    try {
      s.sweep(7);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("no sweep 7"));
    } catch (...) {
      ADD_FAILURE() << "NotFound is not a recur::Error";
    }
  }
  remove_tree(dir);
}

}  // namespace
}  // namespace recur::coord
