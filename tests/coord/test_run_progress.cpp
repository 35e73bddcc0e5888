// trial_outcome: the one rule by which agents and the Slurm executor judge an attempt, on real run
// directories: a final eval.json succeeds, exit 75 requeues, anything else fails with the reason and
// the end of the attempt's output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "coord/run_progress.h"
#include "core/config.h"
#include "core/fs.h"

namespace recur::coord {
namespace {

using ::testing::HasSubstr;

TEST(TrialOutcome, OneRuleForAgentsAndSlurm) {
  const std::string run = "/tmp/recur-test-outcome-" + std::to_string(::getpid());
  remove_tree(run);
  make_dirs(run);
  write_file_atomic(run + "/train.log", std::string(3000, 'x') + "the end\n");
  // no eval.json: failed, whatever the exit code, with the log's end
  auto none = trial_outcome(run, 0, run + "/train.log");
  EXPECT_EQ(none.status, "failed");
  EXPECT_THAT(none.error, HasSubstr("no final evaluation (" + run + "/eval.json); end of " + run + "/train.log:\n"));
  EXPECT_THAT(none.error, HasSubstr("the end"));
  EXPECT_LT(none.error.size(), 2300u);
  EXPECT_EQ(trial_outcome(run, 75, run + "/train.log").status, "requeue");
  // an eval.json from an earlier, shorter run is not the final one
  write_file_atomic(run + "/config.yaml", Config::from_overrides({"train.steps=100"}).to_yaml());
  write_file_atomic(run + "/eval.json", R"({"bpc": 1.5, "step": 50})");
  auto early = trial_outcome(run, -1, run + "/slurm-7.out");
  EXPECT_EQ(early.status, "failed");
  EXPECT_THAT(early.error, HasSubstr("is from step 50, not the last step 100"));
  EXPECT_THAT(early.error, ::testing::Not(HasSubstr("end of")));  // no such output file
  // the stop rule ended it at its step: final
  write_file_atomic(run + "/eval.json", R"({"bpc": 1.5, "step": 50, "stopped_early": {"step": 50, "steps": 100}})");
  EXPECT_EQ(trial_outcome(run, 0, "").status, "succeeded");
  write_file_atomic(run + "/eval.json", R"({"bpc": 1.25, "step": 100})");
  for (int code : {0, -1}) {  // an agent's exit 0, or a Slurm job whose exit code is gone
    auto done = trial_outcome(run, code, "");
    EXPECT_EQ(done.status, "succeeded");
    EXPECT_EQ(done.result["bpc"], 1.25);
  }
  auto crashed = trial_outcome(run, 134, run + "/train.log");  // the final eval.json does not save a crash
  EXPECT_EQ(crashed.status, "failed");
  EXPECT_THAT(crashed.error, HasSubstr("recur train exited with 134"));
  write_file_atomic(run + "/eval.json", "{\"bpc\": ");
  EXPECT_THAT(trial_outcome(run, 0, "").error, HasSubstr("unreadable " + run + "/eval.json"));
  remove_tree(run);
}

}  // namespace
}  // namespace recur::coord
