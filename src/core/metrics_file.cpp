// See metrics_file.h.
#include "core/metrics_file.h"

#include <fstream>

namespace recur {

MetricsFile read_metrics(const std::string& run_dir) {
  MetricsFile m;
  std::ifstream in(run_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json r = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!r.is_object() || !r.contains("step")) continue;
    if (r.contains("eval")) {
      m.evals.push_back(std::move(r));
    } else if (r.contains("loss")) {
      m.train.push_back(std::move(r));
    }
  }
  return m;
}

}  // namespace recur
