// RUN/metrics.jsonl read back (core/metrics_file.h): what MetricsLog writes reads back as training and
// evaluation records, and a torn or garbled line (a run still appending) is skipped.
#include <gtest/gtest.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/metrics_file.h"
#include "train/metrics_log.h"

namespace recur {
namespace {

TEST(MetricsFile, WrittenRecordsReadBackAndTornLinesAreSkipped) {
  const std::string run = "/tmp/recur-test-metrics-file-" + std::to_string(::getpid());
  make_dirs(run);
  EXPECT_TRUE(read_metrics(run).train.empty());  // no file yet
  {
    train::MetricsLog log(run, /*enabled=*/true, train::Task::kStream, /*word_level=*/false, /*total_steps=*/4,
                          /*resumed_step=*/0);
    train::LogWindow w{/*loss=*/2.0, /*positions=*/10.0, /*steps=*/2};
    log.log(2, 1e-3, &w, {{"grad_norm", 0.5}, {"rsa_gates", {0.25, 0.75}}});
    log.eval(2, {{"loss", 1.5}});
    w = train::LogWindow{3.0, 10.0, 1};
    log.log(4, 1e-3, &w);
  }
  write_file_atomic(run + "/metrics.jsonl", read_file(run + "/metrics.jsonl") + "not json\n{\"step\": 5, \"lo");
  const MetricsFile m = read_metrics(run);
  ASSERT_EQ(m.train.size(), 2u);
  ASSERT_EQ(m.evals.size(), 1u);
  EXPECT_EQ(m.train[0]["step"], 2);
  EXPECT_DOUBLE_EQ(m.train[0]["loss"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(m.train[0]["grad_norm"].get<double>(), 0.5);
  EXPECT_EQ(m.train[0]["rsa_gates"], nlohmann::json({0.25, 0.75}));
  EXPECT_DOUBLE_EQ(m.train[1]["loss"].get<double>(), 3.0);
  EXPECT_FALSE(m.train[1].contains("grad_norm"));
  EXPECT_DOUBLE_EQ(m.evals[0]["eval"]["loss"].get<double>(), 1.5);
  remove_tree(run);
}

}  // namespace
}  // namespace recur
