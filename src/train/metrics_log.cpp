// See metrics_log.h.
#include "train/metrics_log.h"

#include <cmath>
#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"

namespace recur::train {
namespace {
constexpr double kLn2 = 0.69314718055994530942;

// A record's numbers as TensorBoard scalars: `prefix` + key; a list of numbers becomes one scalar per
// element, tagged by layer ("rsa_gates": [..] -> rsa_gate/layer_0, ...) or, for "bit_accuracy", by
// symbol (bit_accuracy/symbol_0, ...). Nested objects are skipped.
std::vector<std::pair<std::string, float>> tb_scalars(const nlohmann::json& rec, const std::string& prefix) {
  std::vector<std::pair<std::string, float>> out;
  for (const auto& [key, v] : rec.items()) {
    if (key == "step") continue;
    if (v.is_number()) out.emplace_back(prefix + key, v.get<float>());
    if (v.is_array()) {
      const std::string base = key == "rsa_gates" ? "rsa_gate" : key;
      const std::string element = key == "bit_accuracy" ? "/symbol_" : "/layer_";
      for (size_t i = 0; i < v.size(); ++i) {
        if (v[i].is_number()) out.emplace_back(prefix + base + element + std::to_string(i), v[i].get<float>());
      }
    }
  }
  return out;
}
}

void truncate_metrics(const std::string& path, int64_t step) {
  if (!path_exists(path)) return;
  std::string text = read_file(path), kept;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) break;  // a torn last line is dropped
    std::string line = text.substr(start, nl - start);
    start = nl + 1;
    try {
      if (nlohmann::json::parse(line).value("step", int64_t{0}) <= step) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {
    }
  }
  write_file_atomic(path, kept);
}

MetricsLog::MetricsLog(const std::string& run_dir, bool enabled, Task task, bool word_level, int64_t total_steps,
                       int64_t resumed_step, bool tensorboard)
    : enabled_(enabled), task_(task), word_(word_level), total_(total_steps), start_step_(resumed_step) {
  start_ = window_start_ = std::chrono::steady_clock::now();
  if (!enabled_) return;
  const std::string path = run_dir + "/metrics.jsonl";
  // A run restarted from step 0 (killed before its first checkpoint) drops the killed attempt's records too.
  truncate_metrics(path, resumed_step);
  out_.open(path, std::ios::app);
  if (!out_) fail("cannot write {}", path);
  if (tensorboard) tb_ = std::make_unique<TensorBoardWriter>(run_dir + "/tb");
}

double MetricsLog::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void MetricsLog::log(int64_t step, double lr, LogWindow* w, const nlohmann::json& extra) {
  if (enabled_) {
    auto now = std::chrono::steady_clock::now();
    double secs = std::chrono::duration<double>(now - window_start_).count();
    double tok_s = w->positions / std::max(secs, 1e-9);
    double elapsed = std::chrono::duration<double>(now - start_).count();
    // The ETA from this session's pace (a resumed run does not count the steps it skipped).
    double done = static_cast<double>(std::max<int64_t>(1, step - start_step_));
    double eta = elapsed / done * static_cast<double>(total_ - step);
    double mean = w->loss / static_cast<double>(std::max<int64_t>(1, w->steps));
    nlohmann::json rec = {{"step", step}, {"loss", mean}, {"lr", lr}, {"tokens_per_s", tok_s}, {"elapsed_s", elapsed}};
    if (task_ == Task::kStream) rec[word_ ? "ppl" : "bpc"] = word_ ? std::exp(mean) : mean / kLn2;
    rec.update(extra);
    out_ << rec.dump() << "\n";
    out_.flush();
    if (tb_) tb_->scalars(step, tb_scalars(rec, ""));
    std::string metric = task_ != Task::kStream ? "" : word_ ? fmt::format(" | ppl {:.2f}", std::exp(mean))
                                                             : fmt::format(" | bpc {:.4f}", mean / kLn2);
    std::fprintf(stderr, "step %lld/%lld | loss %.4f%s | lr %.3g | %s tok/s | ETA %s\n", static_cast<long long>(step),
                 static_cast<long long>(total_), mean, metric.c_str(), lr, format_count(tok_s).c_str(),
                 format_duration(eta).c_str());
    window_start_ = now;
  }
  *w = LogWindow();
}

void MetricsLog::eval(int64_t step, const nlohmann::json& e) {
  if (!enabled_) return;
  out_ << nlohmann::json{{"step", step}, {"eval", e}}.dump() << "\n";
  out_.flush();
  if (tb_) {
    auto scalars = tb_scalars(e, "eval/");
    if (e.contains("splits")) {  // eval.every_epoch: the other splits as eval/NAME/...
      for (const auto& [name, split] : e["splits"].items()) {
        auto more = tb_scalars(split, "eval/" + name + "/");
        scalars.insert(scalars.end(), more.begin(), more.end());
      }
    }
    tb_->scalars(step, scalars);
  }
  spdlog::info("eval at step {}: {}", step, e.dump());
}

}  // namespace recur::train
