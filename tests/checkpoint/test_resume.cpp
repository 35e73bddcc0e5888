// Checkpoints and exact resume with real processes: an interrupted run (stopped after a checkpoint,
// killed with SIGKILL, or stopped by SIGTERM) continues to exactly the uninterrupted run, on 1 and 2
// MPI ranks; a checkpoint moves between world sizes; every flipped byte is detected.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "core/config.h"
#include "core/fs.h"
#include "core/hash.h"
#include "data/corpora.h"
#include "model/model.h"
#include "../common/runs.h"

namespace recur {
namespace {

using ::testing::HasSubstr;
std::string g_root;

std::string train_cmd(int ranks, const std::string& tiny, const std::string& run, int steps, const std::string& extra) {
  std::string cmd = std::string(RECUR_BINARY) + " train --config " + RECUR_SOURCE_DIR + "/configs/tiny/" + tiny +
                    ".yaml --run-dir " + run + " --set data.path=" + g_root + "/data --set train.steps=" +
                    std::to_string(steps) + " --set train.log_every=2 --set checkpoint.every_steps=4 " +
                    "--set model.dropout=0.1 --set train.lr=2.5e-4 " + extra;
  if (ranks > 1) cmd = "mpirun -np " + std::to_string(ranks) + " --allow-run-as-root --oversubscribe --bind-to none " + cmd;
  return cmd;
}

int run(const std::string& cmd) {
  int rc = std::system((cmd + " >> " + g_root + "/log.txt 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

void expect_same_parameters(const std::string& a, const std::string& b, double tolerance) {
  auto x = test::load_run(a), y = test::load_run(b);
  auto py = y->named_parameters();
  for (const auto& item : x->named_parameters()) {
    if (tolerance == 0) {
      EXPECT_TRUE(torch::equal(item.value(), py[item.key()])) << item.key() << " differs between " << a << " and " << b;
    } else {
      double rel = (item.value() - py[item.key()]).norm().item<double>() / item.value().norm().item<double>();
      EXPECT_LT(rel, tolerance) << item.key();
    }
  }
}

std::vector<double> losses(const std::string& run_dir) {
  std::vector<double> out;
  std::ifstream in(run_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return out;
}

class Resume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_root = "/tmp/recur-test-resume-" + std::to_string(::getpid());
    make_dirs(g_root);
    test::make_word_dataset(g_root, {"one ", "two ", "three ", "four ", "five\n"}, 150000, 5);
  }
  static void TearDownTestSuite() { remove_tree(g_root); }
};

// Stop after step N's checkpoint, resume to 2N: bitwise the uninterrupted run, for xl (memory carried)
// and a stateless model, on 1 and on 2 ranks, with dropout on (RNG state restored).
TEST_F(Resume, ResumedRunIsBitExact) {
  for (int ranks : {1, 2}) {
    for (const std::string tiny : {"xl", "transformer"}) {
      std::string tag = tiny + "-" + std::to_string(ranks);
      std::string full = g_root + "/full-" + tag, split = g_root + "/split-" + tag;
      ASSERT_EQ(run(train_cmd(ranks, tiny, full, 16, "")), 0);
      ASSERT_EQ(run(train_cmd(ranks, tiny, split, 8, "")), 0);
      ASSERT_EQ(run(train_cmd(ranks, tiny, split, 16, "")), 0);
      expect_same_parameters(full, split, 0.0);
      EXPECT_EQ(losses(full), losses(split)) << tag;
    }
  }
}

// The other model families train data-parallel on 2 ranks through the same trainer and checkpoints,
// and resume bitwise: brt and rsa_brt carry their block-recurrent state per stream.
TEST_F(Resume, OtherModelsTrainOnTwoRanksAndResumeBitExact) {
  for (const std::string tiny : {"brt", "rsa_brt", "r_transformer", "recurrent_transformer"}) {
    std::string full = g_root + "/full2-" + tiny, split = g_root + "/split2-" + tiny;
    ASSERT_EQ(run(train_cmd(2, tiny, full, 12, "")), 0) << tiny;
    ASSERT_EQ(run(train_cmd(2, tiny, split, 4, "")), 0) << tiny;
    ASSERT_EQ(run(train_cmd(2, tiny, split, 12, "")), 0) << tiny;
    expect_same_parameters(full, split, 0.0);
    EXPECT_EQ(losses(full), losses(split)) << tiny;
    auto eval = nlohmann::json::parse(read_file(full + "/eval.json"));
    EXPECT_EQ(eval["ranks"], 2);
    EXPECT_TRUE(eval["ranks_identical"].get<bool>()) << tiny;
    if (tiny.find("brt") != std::string::npos) {
      auto meta = checkpoint::read_meta(checkpoint::list_checkpoints(full).back());
      EXPECT_EQ(meta["model"], tiny);
    }
  }
}

// Asynchronous saves (a host copy written by a background thread while training goes on) hold exactly
// what synchronous ones do: stop after step N, resume with async saves, end bitwise on the sync run.
TEST_F(Resume, AsyncCheckpointsResumeBitExact) {
  for (int ranks : {1, 2}) {
    std::string tag = "async-" + std::to_string(ranks);
    std::string full = g_root + "/full-" + tag, split = g_root + "/split-" + tag;
    ASSERT_EQ(run(train_cmd(ranks, "xl", full, 16, "--set checkpoint.every_steps=2")), 0);
    const std::string async = "--set checkpoint.every_steps=2 --set checkpoint.async=true";
    ASSERT_EQ(run(train_cmd(ranks, "xl", split, 8, async)), 0);
    ASSERT_EQ(run(train_cmd(ranks, "xl", split, 16, async)), 0);
    expect_same_parameters(full, split, 0.0);
    EXPECT_EQ(losses(full), losses(split)) << tag;
    auto all = checkpoint::list_checkpoints(split);
    ASSERT_EQ(all.size(), 2u) << "keep_last = 2 applies to background saves too";
    for (const auto& dir : all) EXPECT_TRUE(checkpoint::verify_checkpoint(dir).empty()) << dir;
  }
}

// SIGKILL at random moments (during steps and during saves) and resume each time: the final
// parameters equal the uninterrupted run's, bitwise.
TEST_F(Resume, RandomKillsThenResumeEndBitExact) {
  const std::string full = g_root + "/kill-full", victim = g_root + "/kill-victim";
  const int steps = 1500;  // long enough that ten random strikes land before the victim finishes
  ASSERT_EQ(run(train_cmd(1, "xl", full, steps, "--set checkpoint.every_steps=2")), 0);
  std::mt19937 rng(17);
  int kills = 0;
  for (int attempt = 0; attempt < 40 && kills < 10; ++attempt) {
    pid_t pid = fork();
    if (pid == 0) {
      // Every other attempt writes its checkpoints from the background thread (checkpoint.async).
      std::string extra = std::string("--set checkpoint.every_steps=2 --set checkpoint.async=") + (attempt % 2 ? "true" : "false");
      std::string cmd = train_cmd(1, "xl", victim, steps, extra) + " >> " + g_root + "/log.txt 2>&1";
      execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250 + rng() % 600));
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) break;  // it finished before we struck
      continue;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ++kills;
  }
  EXPECT_GE(kills, 10);
  ASSERT_EQ(run(train_cmd(1, "xl", victim, steps, "--set checkpoint.every_steps=2")), 0);
  expect_same_parameters(full, victim, 0.0);
  EXPECT_EQ(losses(full), losses(victim));
}

// A checkpoint written by 2 ranks resumes on 1 and vice versa: same global data order, recurrent
// state redistributed by stream; the result matches the uninterrupted 1-rank run to fp32 summation order.
TEST_F(Resume, WorldSizeChanges) {
  const std::string one = g_root + "/ws-one";
  ASSERT_EQ(run(train_cmd(1, "xl", one, 16, "--set model.dropout=0")), 0);
  for (auto [first, second] : std::vector<std::pair<int, int>>{{2, 1}, {1, 2}}) {
    std::string dir = g_root + "/ws-" + std::to_string(first) + "-" + std::to_string(second);
    ASSERT_EQ(run(train_cmd(first, "xl", dir, 8, "--set model.dropout=0")), 0);
    ASSERT_EQ(run(train_cmd(second, "xl", dir, 16, "--set model.dropout=0")), 0);
    expect_same_parameters(one, dir, 1e-5);
    auto a = losses(one), b = losses(dir);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * std::abs(a[i])) << dir << " record " << i;
  }
}

// SIGTERM on a rank: all ranks agree at the next step, save, and exit 75; running again completes the
// run exactly like an uninterrupted one.
TEST_F(Resume, StopSignalCheckpointsAndExits75) {
  for (int ranks : {1, 2}) {
    std::string dir = g_root + "/sig-" + std::to_string(ranks);
    const int steps = 4000;
    pid_t pid = fork();
    if (pid == 0) {
      std::string cmd = train_cmd(ranks, "xl", dir, steps, "--set checkpoint.every_steps=1000") + " >> " + g_root + "/log.txt 2>&1";
      execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 300 && !path_exists(dir + "/metrics.jsonl"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // Signal one rank process (mpirun forwards SIGTERM to all ranks; signalling a rank directly
    // exercises the agreement between ranks).
    std::string pids = g_root + "/pids";
    std::system(("pgrep -f -- '^" + std::string(RECUR_BINARY) + " train .*--run-dir " + dir + " ' > " + pids).c_str());
    std::ifstream in(pids);
    pid_t target = 0;
    for (pid_t p; in >> p;) target = p;
    ASSERT_GT(target, 0);
    kill(target, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), checkpoint::kExitCheckpointed) << "ranks=" << ranks;
    auto saved = checkpoint::list_checkpoints(dir);
    ASSERT_FALSE(saved.empty());
    int64_t at = checkpoint::read_meta(saved.back())["step"].get<int64_t>();
    EXPECT_GT(at, 0);
    EXPECT_LT(at, steps);
    // Running the same command again continues from there (a few more steps are enough to show it).
    ASSERT_EQ(run(train_cmd(ranks, "xl", dir, static_cast<int>(at) + 2, "--set checkpoint.every_steps=1000")), 0);
    EXPECT_EQ(checkpoint::read_meta(checkpoint::list_checkpoints(dir).back())["step"].get<int64_t>(), at + 2);
  }
}

TEST_F(Resume, EveryFlippedByteIsDetectedAndAutoFallsBack) {
  const std::string dir = g_root + "/flip";
  ASSERT_EQ(run(train_cmd(1, "xl", dir, 8, "--set model.d_model=8 --set model.d_inner=8 --set model.n_head=2")), 0);
  auto all = checkpoint::list_checkpoints(dir);
  ASSERT_EQ(all.size(), 2u);
  const std::string newest = all.back();
  auto manifest = nlohmann::json::parse(read_file(newest + "/manifest.json"));
  size_t flips = 0;
  for (const auto& [name, info] : manifest["files"].items()) {
    std::string bytes = read_file(newest + "/" + name);
    for (size_t i = 0; i < bytes.size(); ++i) {
      bytes[i] = static_cast<char>(bytes[i] ^ 0x01);
      EXPECT_NE(checksum_bytes(bytes.data(), bytes.size()), info["checksum"].get<std::string>()) << name << " byte " << i;
      bytes[i] = static_cast<char>(bytes[i] ^ 0x01);
      ++flips;
    }
    // Through the real verification path for a sample of positions (every 97th byte).
    for (size_t i = 0; i < bytes.size(); i += 97) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ 0x80);
      write_file_atomic(newest + "/" + name, damaged);
      auto problems = checkpoint::verify_checkpoint(newest);
      ASSERT_FALSE(problems.empty()) << name << " byte " << i;
      EXPECT_THAT(problems.front(), HasSubstr(name));
    }
    write_file_atomic(newest + "/" + name, bytes);
  }
  EXPECT_GT(flips, 1000u);
  EXPECT_TRUE(checkpoint::verify_checkpoint(newest).empty());
  // Damage the newest: --resume auto warns and continues from the one before.
  std::string model = read_file(newest + "/model.h5");
  model[model.size() / 2] ^= 0x10;
  write_file_atomic(newest + "/model.h5", model);
  std::string log = g_root + "/fallback.log";
  std::string cmd = train_cmd(1, "xl", dir, 12, "--set model.d_model=8 --set model.d_inner=8 --set model.n_head=2");
  ASSERT_EQ(std::system((cmd + " > " + log + " 2>&1").c_str()), 0);
  EXPECT_THAT(read_file(log), HasSubstr("skipping damaged checkpoint"));
  EXPECT_THAT(read_file(log), HasSubstr("step-00000004"));
  // Truncated and missing files are named too.
  auto latest = checkpoint::list_checkpoints(dir).back();
  std::string opt = read_file(latest + "/optimizer.h5");
  write_file_atomic(latest + "/optimizer.h5", opt.substr(0, opt.size() / 2));
  EXPECT_THAT(checkpoint::verify_checkpoint(latest).front(), HasSubstr("optimizer.h5"));
  ::unlink((latest + "/meta.json").c_str());
  bool named = false;
  for (const auto& p : checkpoint::verify_checkpoint(latest)) named |= p.find("meta.json") != std::string::npos;
  EXPECT_TRUE(named);
}

}  // namespace
}  // namespace recur
