// See best_evals.h.
#include "train/best_evals.h"

#include "core/metrics_file.h"

namespace recur::train {
namespace {

// Higher is better: sequence accuracy where the split has one (examples, label sets), else -loss.
double score(const nlohmann::json& e) {
  if (e.contains("sequence_accuracy")) return e["sequence_accuracy"].get<double>();
  return -e.value("loss", 0.0);
}

}  // namespace

bool BestEvals::add(int64_t step, const nlohmann::json& eval) {
  auto consider = [&](const std::string& name, nlohmann::json e) {
    e.erase("splits");
    e["step"] = step;
    auto it = best_.find(name);
    if (it == best_.end() || score(e) > score(it->second)) best_[name] = std::move(e);
  };
  consider("valid", eval);
  if (eval.contains("splits")) {
    for (const auto& [name, e] : eval["splits"].items()) consider(name, e);
  }
  const double mean = mean_sequence_accuracy(eval);
  const bool met = stop_at_ > 0 && mean >= stop_at_;
  if (met && stop_step_ == 0) {
    stop_step_ = step;
    stop_mean_ = mean;
  }
  return met;
}

void BestEvals::add_metrics(const std::string& run_dir) {
  for (const auto& r : read_metrics(run_dir).evals) add(r["step"].get<int64_t>(), r["eval"]);
}

nlohmann::json BestEvals::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, e] : best_) j[name] = e;
  return j;
}

double mean_sequence_accuracy(const nlohmann::json& eval) {
  if (!eval.contains("sequence_accuracy")) return -1.0;
  double sum = eval["sequence_accuracy"].get<double>();
  int n = 1;
  if (eval.contains("splits")) {
    for (const auto& [name, e] : eval["splits"].items()) {
      if (!e.contains("sequence_accuracy")) return -1.0;
      sum += e["sequence_accuracy"].get<double>();
      ++n;
    }
  }
  return sum / n;
}

}  // namespace recur::train
