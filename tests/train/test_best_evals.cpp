// The paper's protocol from evaluation records: each split's best over steps, kept per split (the bins
// may come from different steps, ties keep the earliest), and the stop rule on the mean sequence
// accuracy; replayed from a metrics.jsonl it gives the same as when fed live.
#include <gtest/gtest.h>
#include <unistd.h>

#include "core/fs.h"
#include "train/best_evals.h"

namespace recur::train {
namespace {

nlohmann::json record(double valid, double test) {
  return {{"sequence_accuracy", valid}, {"loss", 1.0 - valid}, {"splits", {{"test", {{"sequence_accuracy", test}, {"loss", 1.0 - test}}}}}};
}

TEST(BestEvals, EachSplitKeepsItsOwnBestStep) {
  BestEvals best(0.9);
  EXPECT_FALSE(best.add(10, record(0.5, 0.7)));
  EXPECT_FALSE(best.add(20, record(0.8, 0.2)));
  EXPECT_FALSE(best.add(30, record(0.8, 0.6)));  // ties valid's best: the earlier step stays
  auto j = best.to_json();
  EXPECT_EQ(j["valid"]["step"], 20);
  EXPECT_EQ(j["valid"]["sequence_accuracy"], 0.8);
  EXPECT_EQ(j["test"]["step"], 10);
  EXPECT_EQ(j["test"]["sequence_accuracy"], 0.7);
  EXPECT_FALSE(j["valid"].contains("splits"));
  EXPECT_EQ(best.stop_step(), 0);
  EXPECT_TRUE(best.add(40, record(1.0, 0.8)));  // mean 0.9 reaches 0.9
  EXPECT_TRUE(best.add(50, record(1.0, 1.0)));
  EXPECT_EQ(best.stop_step(), 40);              // the first step that met it
  EXPECT_DOUBLE_EQ(best.stop_mean(), 0.9);
}

TEST(BestEvals, StreamsKeepTheLowestLossAndNeverStop) {
  BestEvals best(0.5);
  EXPECT_FALSE(best.add(1, {{"loss", 2.0}}));
  EXPECT_FALSE(best.add(2, {{"loss", 1.5}}));
  EXPECT_FALSE(best.add(3, {{"loss", 1.7}}));
  EXPECT_EQ(best.to_json()["valid"]["step"], 2);
  EXPECT_EQ(mean_sequence_accuracy({{"loss", 1.0}}), -1.0);
  BestEvals off;  // 0 = no stop rule
  EXPECT_FALSE(off.add(1, record(1.0, 1.0)));
}

TEST(BestEvals, ReplayedFromMetricsEqualsLive) {
  const std::string dir = "/tmp/recur-test-best-" + std::to_string(::getpid());
  make_dirs(dir);
  BestEvals live(0.95);
  std::string text = "{\"step\": 5, \"loss\": 0.3, \"lr\": 0.1}\n";
  const std::vector<std::pair<int64_t, nlohmann::json>> evals = {{5, record(0.3, 0.9)}, {10, record(0.9, 0.1)}, {15, record(1.0, 0.95)}};
  for (const auto& [step, e] : evals) {
    live.add(step, e);
    text += nlohmann::json{{"step", step}, {"eval", e}}.dump() + "\n";
  }
  write_file_atomic(dir + "/metrics.jsonl", text + "{\"step\": 20, \"ev");  // a torn last line is skipped
  BestEvals replayed(0.95);
  replayed.add_metrics(dir);
  EXPECT_EQ(replayed.to_json(), live.to_json());
  EXPECT_EQ(replayed.stop_step(), 15);
  remove_tree(dir);
}

}  // namespace
}  // namespace recur::train
