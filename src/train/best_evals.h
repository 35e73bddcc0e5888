// The paper's protocol for the formal languages (Bhattamishra et al.'s code): each split's best
// evaluation during training, kept per split (so bins may come from different steps), and the stop
// once the mean sequence accuracy over the splits reaches a threshold.
// Invariant: everything here is a function of the evaluation records, so a resumed run re-derives it
// exactly from metrics.jsonl (which holds the records up to the resumed checkpoint's step).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace recur::train {

class BestEvals {
 public:
  // `stop_at`: train.stop_at_mean_accuracy (0 = no stop rule).
  explicit BestEvals(double stop_at = 0.0) : stop_at_(stop_at) {}
  // One evaluation during training after `step` steps, as metrics.jsonl's "eval" holds it: valid's
  // metrics, and the other splits' under "splits".NAME. A split's evaluation replaces its best only when
  // strictly better (sequence accuracy when it has one, else lower loss), so ties keep the earliest step.
  // Returns whether this evaluation meets the stop rule (the first such step is kept in stop_step()).
  bool add(int64_t step, const nlohmann::json& eval);
  // Replays RUN_DIR/metrics.jsonl's evaluation records (a missing file: none).
  void add_metrics(const std::string& run_dir);
  // {"valid": {..., "step": N}, "test": {...}}: each split's best evaluation with its step.
  nlohmann::json to_json() const;
  // The first step whose evaluation met the stop rule (0 = none yet), and its mean sequence accuracy.
  int64_t stop_step() const { return stop_step_; }
  double stop_mean() const { return stop_mean_; }

 private:
  double stop_at_;
  int64_t stop_step_ = 0;
  double stop_mean_ = 0.0;
  std::map<std::string, nlohmann::json> best_;
};

// The mean over the record's splits (valid and each of "splits") of sequence_accuracy; -1 when a split
// has none (streams).
double mean_sequence_accuracy(const nlohmann::json& eval);

}  // namespace recur::train
