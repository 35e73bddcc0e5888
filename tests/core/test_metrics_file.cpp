// RUN/metrics.jsonl read back (core/metrics_file.h): what MetricsLog writes reads back as training and
// evaluation records, and a torn or garbled line (a run still appending) is skipped.
#include <gtest/gtest.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/metrics_file.h"
#include "core/process.h"
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

// The Python reader (python/recur_metrics.py: experiment tables, plots, tests) and this one keep and
// drop the same lines of a hostile file, and read the same values.
TEST(MetricsFile, PythonReaderAgreesOnAHostileFile) {
  const std::string run = "/tmp/recur-test-metrics-python-" + std::to_string(::getpid());
  make_dirs(run);
  const std::string lines[] = {
      R"({"step": 1, "loss": 2.5, "lr": 0.001, "rsa_gates": [0.25, 0.5]})",
      R"({"step": 2, "eval": {"loss": 1.25, "bpc": 1.8}})",
      R"({"step": 3, "loss": NaN})",                  // not JSON
      R"({"step": 4, "loss": Infinity})",             // not JSON
      R"([{"step": 5, "loss": 1}])",                  // not an object
      R"({"loss": 1.5})",                             // no step
      R"({"step": 6, "bpc": 1.0})",                   // neither loss nor eval
      "{\"step\": 7, \"loss\": 1.0, \"note\": \"\xff\xfe\"}",  // invalid UTF-8
      R"({"step": 8, "loss": 0.1, "loss": 0.2})",     // duplicate key: the last wins in both
      R"({"step": 9, "loss": 3} trailing)",           // trailing garbage
      R"(  {"step": 10, "loss": 1e-7, "tokens_per_s": 123456789012}  )",
      "",
      R"({"step": 11, "eval": null, "loss": 4})",     // "eval" present: an evaluation record
      R"({"step": 12, "lo)",                          // torn last line
  };
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  text.pop_back();  // the torn line has no newline
  write_file_atomic(run + "/metrics.jsonl", text);

  const MetricsFile cpp = read_metrics(run);
  const ProcessResult py = run_process({"python3", std::string(RECUR_SOURCE_DIR) + "/python/recur_metrics.py", run});
  ASSERT_EQ(py.exit_code, 0) << py.output;
  const nlohmann::json got = nlohmann::json::parse(py.output);
  EXPECT_EQ(got["train"], nlohmann::json(cpp.train)) << py.output;
  EXPECT_EQ(got["evals"], nlohmann::json(cpp.evals)) << py.output;
  // What both must have read, so that agreeing on nothing cannot pass.
  ASSERT_EQ(cpp.train.size(), 3u);
  EXPECT_EQ(cpp.train[0]["step"], 1);
  EXPECT_DOUBLE_EQ(cpp.train[1]["loss"].get<double>(), 0.2);
  EXPECT_EQ(cpp.train[2]["step"], 10);
  ASSERT_EQ(cpp.evals.size(), 2u);
  EXPECT_EQ(cpp.evals[1]["step"], 11);
  remove_tree(run);
}

}  // namespace
}  // namespace recur
