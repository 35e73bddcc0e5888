// Sweep specs: a base config, axes to cross, seeds per point, resources and retries per trial, and the
// metric to collect. Expansion happens where the spec is submitted, so the coordinator stores
// self-contained trials (the resolved base config and each trial's overrides).
// Invariant: every expanded trial's config passed the strict config checks before it is submitted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
  int64_t ranks = 1, gpus = 0, retries = 2;
  std::vector<TrialSpec> trials;
  nlohmann::json to_json() const;
  static SweepSpec from_json(const nlohmann::json& j);  // throws recur::Error naming the bad field
};

// Reads and expands a sweep spec file (YAML). `base` is resolved relative to the spec file. Axis keys
// that are config keys become overrides; other axis keys (e.g. task.max_len) are variables for
// "{key}" placeholders in the spec's `set` values. An axis value may be a mapping — settings that
// change together, e.g. model: [{label: xl, type: xl, n_rsa_heads: 0}, {label: rsa_xl, type: rsa_xl}].
// Every trial's config is checked.
SweepSpec load_sweep_spec(const std::string& path);

}  // namespace recur::coord
