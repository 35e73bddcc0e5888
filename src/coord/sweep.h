// Sweep specs: a base config, axes to cross, seeds per point, resources and retries per trial, and the
// metric to collect. Expansion happens where the spec is submitted, so the coordinator stores
// self-contained trials (the resolved base config and each trial's overrides).
// Invariant: every expanded trial's config passed the strict config checks before it is submitted.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace recur {
class Config;
}

namespace recur::coord {

struct TrialSpec {
  nlohmann::json point;                // axis key -> value (the seed excluded)
  int64_t seed = 1;
  std::vector<std::string> overrides;  // --set KEY=VALUE, applied to the base config
};

struct SweepSpec {
  std::string name;
  std::string base_yaml;               // the resolved base config
  std::vector<std::string> axes;       // axis keys in spec order
  std::string metric = "loss";         // a key of the trial's final evaluation (eval.json)
  std::string direction = "min";       // min | max: which end of the metric is better
  // Per trial: `ranks` processes (mpirun or srun) on one agent, and `gpus` GPUs in all, an equal share
  // per rank (CUDA_VISIBLE_DEVICES holds the trial's GPUs; rank k trains on the k-th).
  int64_t ranks = 1, gpus = 0, retries = 2;
  std::vector<TrialSpec> trials;
  nlohmann::json to_json() const;
  static SweepSpec from_json(const nlohmann::json& j);  // throws recur::Error naming the bad field
};

// Why `gpus` GPUs cannot be split over `ranks` ranks (negative, or not a multiple); empty when they can.
std::string check_gpus(int64_t ranks, int64_t gpus);

// Reads and expands a sweep spec file (YAML). `base` is resolved relative to the spec file. Axis keys
// that are config keys become overrides; other axis keys (e.g. task.max_len) are variables for
// "{key}" placeholders in the spec's `set` values. An axis value may be a mapping — settings that
// change together, e.g. model: [{label: xl, type: xl, n_rsa_heads: 0}, {label: rsa_xl, type: rsa_xl}].
// In such a mapping, a key that is another axis holds a list zipped with that axis: for this value
// only, the other axis takes the list's values position by position (parameter-matched designs:
// {label: fl_xl, type: fl_xl, n_layer: [8, 10, 12, 14]} beside model.n_layer: [10, 12, 14, 16]); the
// trial's point records the value it runs with.
// Every trial's config is checked, and `metric` against the keys the trials' eval.json will have
// (see metric_keys); `direction` defaults to default_direction(metric).
SweepSpec load_sweep_spec(const std::string& path);

// The metrics a trial of this config reports in eval.json: loss, token_accuracy, bpc (bytes, characters)
// or ppl (word-level corpora), sequence_accuracy (example datasets), and each of them as
// splits.NAME.KEY for eval.extra_splits. The dataset decides bpc, ppl and sequence_accuracy: when its
// manifest cannot be read here (the data lives where the agents run, or data.path is unset), all of
// them are allowed.
std::set<std::string> metric_keys(const Config& trial);
// max for accuracies, min for loss, bpc, ppl and anything else.
std::string default_direction(const std::string& metric);

// A point as people read it, the axes in spec order: "model=xl, model.n_layer=10".
std::string point_label(const nlohmann::json& point, const std::vector<std::string>& axes);

// The metric's value in a trial's result (eval.json); the metric may be a path: splits.test.bpc.
std::optional<double> metric_value(const nlohmann::json& result, const std::string& metric);

}  // namespace recur::coord
