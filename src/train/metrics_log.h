// RUN_DIR/metrics.jsonl and the progress line on stderr, written by rank 0: one record per logging
// window (mean loss, bpc or ppl, lr, tokens/s, elapsed, and the caller's extras: gradient norm, RSA
// gates) and one per evaluation; with log.tensorboard the same values as scalars in RUN/tb/.
// Invariant: a resumed run's log reads exactly like an uninterrupted run's (records after the resumed
// checkpoint's step are dropped; the open window is restored from the checkpoint).
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "train/task.h"
#include "train/tensorboard.h"

namespace recur::train {

struct LogWindow {
  double loss = 0.0;       // sum of the steps' mean losses (over ranks)
  double positions = 0.0;  // counted positions, all ranks
  int64_t steps = 0;
};

class MetricsLog {
 public:
  // `enabled`: this rank writes (rank 0). The log is first truncated to `resumed_step` (0: a fresh start
  // drops the records of an attempt killed before its first checkpoint).
  // `tensorboard`: also write RUN/tb/ event files (a new file per session).
  MetricsLog(const std::string& run_dir, bool enabled, Task task, bool word_level, int64_t total_steps, int64_t resumed_step,
             bool tensorboard = false);

  // Writes the window's record (with the fields of `extra` added) and progress line after `step`
  // steps, then resets the window.
  void log(int64_t step, double lr, LogWindow* window, const nlohmann::json& extra = nlohmann::json::object());
  void eval(int64_t step, const nlohmann::json& result);
  double elapsed_s() const;

 private:
  bool enabled_;
  Task task_;
  bool word_;
  int64_t total_, start_step_;
  std::ofstream out_;
  std::unique_ptr<TensorBoardWriter> tb_;
  std::chrono::steady_clock::time_point start_, window_start_;
};

// Drops the records of `path` after `step` (and a torn last line).
void truncate_metrics(const std::string& path, int64_t step);

}  // namespace recur::train
