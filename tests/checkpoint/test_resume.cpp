// Checkpoints and exact resume with real processes: an interrupted run (stopped after a checkpoint,
// killed with SIGKILL, or stopped by SIGTERM) continues to exactly the uninterrupted run, on 1 and 2
// MPI ranks; a checkpoint moves between world sizes and from GPUs to the CPU; every flipped byte is
// detected.
#include <dirent.h>
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
#include "core/metrics_file.h"
#include "core/hash.h"
#include "data/corpora.h"
#include "data/h5.h"
#include "model/model.h"
#include "../common/runs.h"

namespace recur {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
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
  for (const auto& r : read_metrics(run_dir).train) out.push_back(r["loss"].get<double>());
  return out;
}

// Recomputes a checkpoint's manifest after a test edited its files, as the commit step records it.
void reseal(const std::string& dir) {
  auto manifest = nlohmann::json::parse(read_file(dir + "/manifest.json"));
  for (auto& [name, info] : manifest["files"].items()) {
    uint64_t size = 0;
    info["checksum"] = checksum_file(dir + "/" + name, &size);
    info["size"] = size;
  }
  write_file_atomic(dir + "/manifest.json", manifest.dump(2) + "\n");
}

// Makes a CPU run's checkpoint look like one written on GPUs (docs/checkpoints.md): every rank file
// gains rng/cuda (a CUDA generator state — seed and offset, 16 bytes — with its device_index) and the
// saved config says train.device: cuda. The manifest is left as it was.
void as_if_trained_on_gpus(const std::string& dir) {
  auto meta = checkpoint::read_meta(dir);
  for (int r = 0; r < meta["world_size"].get<int>(); ++r) {
    char name[32];
    std::snprintf(name, sizeof name, "/rank-%04d.h5", r);
    const std::string path = dir + name;
    auto f = h5::open_file(path, /*writable=*/true);
    std::vector<uint8_t> state(16, static_cast<uint8_t>(r + 1));
    h5::write_array(f.get(), "rng/cuda", h5::ElemType::kU8, {state.size()}, state.data(), path);
    {
      auto d = h5::open_dataset(f.get(), "rng/cuda", path);
      h5::write_attr_u64(d.get(), "device_index", static_cast<uint64_t>(r), path);
    }
    h5::close_file(f, path);
  }
  Config saved = Config::parse(meta["config"].get<std::string>(), dir + "/meta.json");
  saved.set("train.device", "cuda");
  meta["config"] = saved.to_yaml();
  write_file_atomic(dir + "/meta.json", meta.dump(2) + "\n");
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

// eval.json's train_seconds is the whole run's training time: a resumed run adds the time of the attempts
// before it, kept in the checkpoint's meta.json (a checkpoint from before that field counts 0).
TEST_F(Resume, TrainSecondsSumOverEveryAttempt) {
  const std::string dir = g_root + "/seconds";
  ASSERT_EQ(run(train_cmd(1, "xl", dir, 8, "")), 0);
  const double first = nlohmann::json::parse(read_file(dir + "/eval.json"))["train_seconds"];
  const double at8 = checkpoint::read_meta(checkpoint::list_checkpoints(dir).back())["train_seconds"];
  EXPECT_GT(at8, 0.0);
  EXPECT_LE(at8, first);
  ASSERT_EQ(run(train_cmd(1, "xl", dir, 16, "")), 0);
  const double total = nlohmann::json::parse(read_file(dir + "/eval.json"))["train_seconds"];
  const double second = read_metrics(dir).train.back()["elapsed_s"];  // the second attempt's own clock
  EXPECT_GE(total, at8 + second);
  EXPECT_GE(checkpoint::read_meta(checkpoint::list_checkpoints(dir).back())["train_seconds"].get<double>(), at8 + second);
  checkpoint::Progress old = nlohmann::json{{"step", 3}, {"tokens", 10}};
  EXPECT_EQ(old.train_seconds, 0.0);
  checkpoint::Progress back = nlohmann::json(checkpoint::Progress{5, 1, 0.5, 0, 0, 0, 12.5});
  EXPECT_EQ(back.train_seconds, 12.5);
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

// A checkpoint written on GPUs (a CUDA random state per rank, train.device: cuda in its config) is
// listed, verified and inspected on a CPU-only machine, and resuming it on the CPU (2 ranks) continues
// the CPU random streams: bitwise the uninterrupted CPU run.
TEST_F(Resume, GpuCheckpointIsCheckedAndResumedOnCpu) {
  const std::string small = "--set model.d_model=8 --set model.d_inner=8 --set model.n_head=2";
  const std::string full = g_root + "/gpu-full", split = g_root + "/gpu-split";
  ASSERT_EQ(run(train_cmd(2, "xl", full, 12, small)), 0);
  ASSERT_EQ(run(train_cmd(2, "xl", split, 8, small)), 0);
  const std::string ckpt = checkpoint::list_checkpoints(split).back();
  EXPECT_EQ(checkpoint::read_meta(ckpt)["format_version"], 2);
  {
    const std::string path = ckpt + "/rank-0000.h5";
    auto f = h5::open_file(path, /*writable=*/false);
    EXPECT_TRUE(h5::has_object(f.get(), "rng/cpu"));
    EXPECT_FALSE(h5::has_object(f.get(), "rng/cuda")) << "a CPU run saves no CUDA random state";
  }
  as_if_trained_on_gpus(ckpt);
  bool rank_file_named = false;  // the checksums cover the rank files, CUDA state included
  for (const auto& p : checkpoint::verify_checkpoint(ckpt)) rank_file_named |= p.find("rank-0001.h5") != std::string::npos;
  EXPECT_TRUE(rank_file_named);
  reseal(ckpt);

  const std::string cli = std::string(RECUR_BINARY) + " ckpt ";
  EXPECT_EQ(run(cli + "verify " + ckpt), 0);
  const std::string listed = g_root + "/gpu-list.txt", inspected = g_root + "/gpu-inspect.json";
  ASSERT_EQ(std::system((cli + "list " + split + " > " + listed).c_str()), 0);
  EXPECT_THAT(read_file(listed), HasSubstr("step-00000008"));
  EXPECT_THAT(read_file(listed), Not(HasSubstr("DAMAGED")));
  ASSERT_EQ(std::system((cli + "inspect " + ckpt + " --config " + RECUR_SOURCE_DIR + "/configs/tiny/xl.yaml > " + inspected).c_str()), 0);
  auto info = nlohmann::json::parse(read_file(inspected));
  EXPECT_EQ(info["checksums"], "ok");
  EXPECT_THAT(info["config_diff"]["train.device"]["checkpoint"].dump(), HasSubstr("cuda"));

  const std::string log = g_root + "/gpu-resume.log";
  ASSERT_EQ(std::system((train_cmd(2, "xl", split, 12, small) + " > " + log + " 2>&1").c_str()), 0);
  EXPECT_THAT(read_file(log), HasSubstr("resuming on the CPU continues the CPU random streams"));
  expect_same_parameters(full, split, 0.0);
  EXPECT_EQ(losses(full), losses(split));
}

// A checkpoint of a newer format than this Recur knows is refused with its version, not misread.
TEST_F(Resume, NewerFormatIsRefused) {
  const std::string small = "--set model.d_model=8 --set model.d_inner=8 --set model.n_head=2";
  const std::string dir = g_root + "/newer";
  ASSERT_EQ(run(train_cmd(1, "xl", dir, 4, small)), 0);
  const std::string ckpt = checkpoint::list_checkpoints(dir).back();
  auto meta = checkpoint::read_meta(ckpt);
  meta["format_version"] = 99;
  write_file_atomic(ckpt + "/meta.json", meta.dump(2) + "\n");
  reseal(ckpt);
  const std::string log = g_root + "/newer.log";
  EXPECT_NE(std::system((train_cmd(1, "xl", dir, 8, small) + " > " + log + " 2>&1").c_str()), 0);
  EXPECT_THAT(read_file(log), HasSubstr("checkpoint format version 99"));
}

// Rank files holding recurrent state must name it (state_names): the nameless layout of before
// 2026-11-23 is refused with a clear error, not guessed at.
TEST_F(Resume, StateWithoutNamesIsRefused) {
  const std::string small = "--set model.d_model=8 --set model.d_inner=8 --set model.n_head=2";
  const std::string dir = g_root + "/nameless";
  ASSERT_EQ(run(train_cmd(1, "xl", dir, 4, small)), 0);
  const std::string ckpt = checkpoint::list_checkpoints(dir).back(), path = ckpt + "/rank-0000.h5";
  {
    auto f = h5::open_file(path, /*writable=*/true);
    ASSERT_GE(H5Ldelete(f.get(), "state_names", H5P_DEFAULT), 0);
    h5::close_file(f, path);
  }
  reseal(ckpt);
  const std::string log = g_root + "/nameless.log";
  EXPECT_NE(std::system((train_cmd(1, "xl", dir, 8, small) + " > " + log + " 2>&1").c_str()), 0);
  EXPECT_THAT(read_file(log), HasSubstr("recurrent state without state_names"));
}

// Entries of RUN_DIR/checkpoints other than committed step-XXXXXXXX directories and `latest`.
std::vector<std::string> leftovers(const std::string& run_dir) {
  std::vector<std::string> out;
  const std::string root = run_dir + "/checkpoints";
  DIR* d = ::opendir(root.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == ".." || name == "latest") continue;
    if (name.size() == 13 && name.rfind("step-", 0) == 0) continue;
    out.push_back(name);
  }
  ::closedir(d);
  return out;
}

// What runs killed while pruning or saving leave behind is finished at the next start (issue 17,
// finding 10): a checkpoint renamed for deletion and half deleted is removed; an uncommitted save is
// removed; a re-save killed between its two renames (old copy moved aside, new one sealed but not yet
// renamed) is committed. The run then resumes from it.
TEST_F(Resume, KilledPruneAndSaveLeftoversAreFinishedAtTheNextStart) {
  const std::string small = "--set model.d_model=8 --set model.d_inner=8 --set model.n_head=2";
  const std::string dir = g_root + "/leftovers", root = dir + "/checkpoints";
  ASSERT_EQ(run(train_cmd(1, "xl", dir, 8, small)), 0);
  ASSERT_EQ(checkpoint::list_checkpoints(dir).size(), 2u);
  // Pruning step 4, killed midway through the deletion.
  ASSERT_EQ(::rename((root + "/step-00000004").c_str(), (root + "/step-00000004.deleting").c_str()), 0);
  ASSERT_EQ(::unlink((root + "/step-00000004.deleting/model.h5").c_str()), 0);
  // Re-saving step 8, killed after moving the old copy aside and before renaming the new one.
  ASSERT_EQ(::rename((root + "/step-00000008").c_str(), (root + "/step-00000008.deleting").c_str()), 0);
  ASSERT_EQ(std::system(("cp -r " + root + "/step-00000008.deleting " + root + "/step-00000008.tmp").c_str()), 0);
  // A save of step 12 killed before its manifest.
  make_dirs(root + "/step-00000012.tmp");
  write_file_atomic(root + "/step-00000012.tmp/rank-0000.h5", "partial");
  ASSERT_EQ(leftovers(dir).size(), 4u);

  const std::string log = g_root + "/leftovers.log";
  ASSERT_EQ(std::system((train_cmd(1, "xl", dir, 8, small) + " > " + log + " 2>&1").c_str()), 0);
  EXPECT_THAT(leftovers(dir), ::testing::IsEmpty());
  EXPECT_THAT(read_file(log), HasSubstr("resuming from " + root + "/step-00000008"));
  for (const auto& ckpt : checkpoint::list_checkpoints(dir)) EXPECT_TRUE(checkpoint::verify_checkpoint(ckpt).empty()) << ckpt;
  EXPECT_EQ(read_file(root + "/latest"), "step-00000008\n");
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

// Ctrl-C saves like SIGTERM: exit 75 with a checkpoint, and the run continued from it ends bitwise
// where an uninterrupted run of as many steps does.
TEST_F(Resume, InterruptCheckpointsAndResumesBitExact) {
  const std::string dir = g_root + "/sigint", full = g_root + "/sigint-full";
  const std::string every = "--set checkpoint.every_steps=1000";
  pid_t pid = fork();
  if (pid == 0) {
    std::string cmd = train_cmd(1, "xl", dir, 4000, every) + " >> " + g_root + "/log.txt 2>&1";
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 300 && !path_exists(dir + "/metrics.jsonl"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), checkpoint::kExitCheckpointed);
  auto saved = checkpoint::list_checkpoints(dir);
  ASSERT_FALSE(saved.empty());
  const int at = static_cast<int>(checkpoint::read_meta(saved.back())["step"].get<int64_t>());
  ASSERT_GT(at, 0);
  ASSERT_EQ(run(train_cmd(1, "xl", dir, at + 4, every)), 0);
  ASSERT_EQ(run(train_cmd(1, "xl", full, at + 4, every)), 0);
  expect_same_parameters(full, dir, 0.0);
  EXPECT_EQ(losses(full), losses(dir));
}

// A resume refused (here for a changed model.n_layer) leaves RUN_DIR/config.yaml byte-identical, so
// `recur eval` still works; an accepted one with changed keys names them and then rewrites it.
TEST_F(Resume, RefusedResumeLeavesConfigAndAcceptedOneNamesChanges) {
  const std::string dir = g_root + "/refused", log = g_root + "/refused.log";
  ASSERT_EQ(run(train_cmd(1, "transformer", dir, 4, "")), 0);
  const std::string before = read_file(dir + "/config.yaml");
  EXPECT_EQ(run(train_cmd(1, "transformer", dir, 8, "--set model.n_layer=3")), 1);
  EXPECT_EQ(read_file(dir + "/config.yaml"), before);
  EXPECT_EQ(run(std::string(RECUR_BINARY) + " eval --run-dir " + dir), 0);

  const std::string cmd = train_cmd(1, "transformer", dir, 8, "--set train.lr=1e-4");
  ASSERT_EQ(std::system((cmd + " > " + log + " 2>&1").c_str()), 0);
  const std::string out = read_file(log);
  EXPECT_THAT(out, HasSubstr("config changed since the run's config.yaml: train.lr: "));
  EXPECT_THAT(out, HasSubstr("config changed since the run's config.yaml: train.steps: 4 -> 8"));
  EXPECT_THAT(out, Not(HasSubstr("model.n_layer")));
  EXPECT_EQ(Config::load(dir + "/config.yaml").get_float("train.lr"), 1e-4);
}

// A failed `recur train` into a directory it created removes it again; a directory that existed
// before, or holds a previous run's checkpoints, is left alone.
TEST_F(Resume, FailedTrainLeavesNoEmptyRunDirectory) {
  const std::string fresh = g_root + "/failed/new", kept = g_root + "/failed-kept";
  EXPECT_EQ(run(train_cmd(1, "transformer", fresh, 4, "--set eval.extra_splits=[nosuch]")), 1);
  EXPECT_FALSE(path_exists(fresh));
  EXPECT_TRUE(path_exists(g_root + "/failed"));  // only the run directory itself goes
  make_dirs(kept);
  EXPECT_EQ(run(train_cmd(1, "transformer", kept, 4, "--set eval.extra_splits=[nosuch]")), 1);
  EXPECT_TRUE(path_exists(kept));
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
