// RUN/metrics.jsonl read back: the one C++ reader of the records train/metrics_log.h writes (training
// records {"step", "loss", ...}; evaluations {"step", "eval": {...}}), for run progress and tests.
// Invariant: a torn or unparsable line is skipped, never fatal: the file is read while a run appends.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace recur {

struct MetricsFile {
  std::vector<nlohmann::json> train;  // training records, in file order
  std::vector<nlohmann::json> evals;  // evaluation records, in file order
};

// Reads RUN_DIR/metrics.jsonl; a missing file reads as empty.
MetricsFile read_metrics(const std::string& run_dir);

}  // namespace recur
