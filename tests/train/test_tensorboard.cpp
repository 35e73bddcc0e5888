// TensorBoard event files (src/train/tensorboard.*): CRC32C against its check value, the TFRecord
// framing, and a tiny rsa_xl run whose RUN/tb/ events, read back by the `tensorboard` package's
// EventAccumulator in the project's venv, hold the same scalars at the same steps as metrics.jsonl.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <map>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/fs.h"
#include "core/metrics_file.h"
#include "core/process.h"
#include "train/tensorboard.h"
#include "train/trainer.h"
#include "../common/runs.h"

namespace recur::train {
namespace {

uint64_t read_le(const std::string& s, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

TEST(TensorBoard, Crc32cMatchesCheckValue) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
  const uint32_t c = 0xE3069283u;
  EXPECT_EQ(masked_crc32c("123456789"), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TensorBoard, RecordFramesLengthDataAndCrcs) {
  const std::string data = scalar_event(1.5, 300, {{"loss", 2.0f}});
  const std::string rec = tfrecord(data);
  ASSERT_EQ(rec.size(), 8 + 4 + data.size() + 4);
  EXPECT_EQ(read_le(rec, 0, 8), data.size());
  EXPECT_EQ(read_le(rec, 8, 4), masked_crc32c(rec.substr(0, 8)));
  EXPECT_EQ(rec.substr(12, data.size()), data);
  EXPECT_EQ(read_le(rec, 12 + data.size(), 4), masked_crc32c(data));
  // Event: wall_time (field 1, fixed64) then step (field 2, varint 300 = 0xac 0x02).
  EXPECT_EQ(static_cast<unsigned char>(data[0]), 0x09);
  EXPECT_EQ(data.substr(9, 3), std::string("\x10\xac\x02", 3));
}

std::string venv_python() {
  const char* home = std::getenv("RECUR_HOME");
  const char* user = std::getenv("HOME");
  std::string root = home && *home ? home : std::string(user ? user : "") + "/.cache/recur";
  return root + "/venv/bin/python";
}

// Prints {"file_version": ..., "scalars": {tag: [[step, value], ...]}} for the event files in argv[1].
const char* kReadEvents = R"(
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
out = {"file_version": acc.file_version, "scalars": {}}
for tag in acc.Tags()["scalars"]:
    out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
print(json.dumps(out))
)";

TEST(TensorBoard, EventsReadBackEqualMetricsJsonl) {
  const std::string python = venv_python();
  ASSERT_TRUE(path_exists(python)) << python << " is missing: run scripts/setup (the venv with tensorboard)";
  const std::string dir = "/tmp/recur-test-tensorboard-" + std::to_string(::getpid());
  make_dirs(dir);
  test::make_word_dataset(dir, {"the ", "cat ", "sees ", "a ", "ball. ", "dog\n"}, 20000, 5);
  const std::string run = dir + "/run";
  Config c = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/rsa_xl.yaml",
                          {"data.path=" + dir + "/data", "train.steps=12", "train.log_every=4", "train.eval_every=8",
                           "log.tensorboard=true"});
  run_training(c, run);

  // metrics.jsonl: the expected scalars, tagged as the writer tags them.
  std::map<std::string, std::vector<std::pair<int64_t, double>>> expected;
  const MetricsFile metrics = read_metrics(run);
  EXPECT_EQ(metrics.train.size(), 3u);
  EXPECT_EQ(metrics.evals.size(), 1u);
  std::vector<nlohmann::json> records = metrics.train;
  records.insert(records.end(), metrics.evals.begin(), metrics.evals.end());
  for (const auto& rec : records) {
    const int64_t step = rec["step"];
    const bool is_eval = rec.contains("eval");
    const nlohmann::json& fields = is_eval ? rec["eval"] : rec;
    if (!is_eval) {
      ASSERT_TRUE(rec.contains("grad_norm")) << rec;
      ASSERT_EQ(rec["rsa_gates"].size(), 2u) << rec;
    }
    const std::string prefix = is_eval ? "eval/" : "";
    for (const auto& [key, v] : fields.items()) {
      if (key == "step") continue;
      if (v.is_number()) expected[prefix + key].emplace_back(step, v.get<double>());
      if (v.is_array()) {
        const std::string base = key == "rsa_gates" ? "rsa_gate" : key;
        for (size_t i = 0; i < v.size(); ++i) {
          expected[prefix + base + "/layer_" + std::to_string(i)].emplace_back(step, v[i].get<double>());
        }
      }
    }
  }
  for (const char* tag : {"loss", "bpc", "lr", "tokens_per_s", "grad_norm", "rsa_gate/layer_0", "rsa_gate/layer_1",
                          "eval/loss", "eval/bpc"}) {
    EXPECT_TRUE(expected.count(tag)) << tag;
  }

  auto read = run_process({python, "-c", kReadEvents, run + "/tb"});
  ASSERT_EQ(read.exit_code, 0) << read.output;
  auto got = nlohmann::json::parse(read.output.substr(read.output.find('{')));
  EXPECT_EQ(got["file_version"].get<double>(), 2.0);
  for (const auto& [tag, points] : expected) {
    SCOPED_TRACE(tag);
    ASSERT_TRUE(got["scalars"].contains(tag)) << read.output;
    const auto& events = got["scalars"][tag];
    ASSERT_EQ(events.size(), points.size());
    for (size_t i = 0; i < points.size(); ++i) {
      EXPECT_EQ(events[i][0].get<int64_t>(), points[i].first);
      // TensorBoard scalars are float32: equal to the record's value rounded to float.
      EXPECT_EQ(events[i][1].get<double>(), static_cast<double>(static_cast<float>(points[i].second)));
    }
  }
  EXPECT_EQ(got["scalars"].size(), expected.size());

  // Without clipping the norm is computed at log steps only for the record.
  Config unclipped = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/rsa_xl.yaml",
                                  {"data.path=" + dir + "/data", "train.steps=2", "train.clip=0"});
  run_training(unclipped, dir + "/run-noclip");
  const MetricsFile noclip = read_metrics(dir + "/run-noclip");
  ASSERT_FALSE(noclip.train.empty());
  EXPECT_GT(noclip.train.front()["grad_norm"].get<double>(), 0.0);
  EXPECT_FALSE(path_exists(dir + "/run-noclip/tb"));
  remove_tree(dir);
}

}  // namespace
}  // namespace recur::train
