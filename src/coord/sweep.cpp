// See sweep.h.
#include "coord/sweep.h"

#include <yaml-cpp/yaml.h>

#include <set>

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/manifest.h"

namespace recur::coord {

using nlohmann::json;

json SweepSpec::to_json() const {
  json t = json::array();
  for (const auto& tr : trials) t.push_back({{"point", tr.point}, {"seed", tr.seed}, {"overrides", tr.overrides}});
  return {{"name", name}, {"base_yaml", base_yaml}, {"axes", axes}, {"metric", metric}, {"direction", direction}, {"ranks", ranks},
          {"gpus", gpus}, {"retries", retries}, {"trials", t}};
}

std::string check_gpus(int64_t ranks, int64_t gpus) {
  if (gpus < 0) return fmt::format("resources.gpus must be >= 0 (got {})", gpus);
  if (gpus % ranks != 0) {
    return fmt::format("resources.gpus ({}) is per trial and must be 0 or a multiple of resources.ranks ({}): "
                       "every rank gets the same number", gpus, ranks);
  }
  return "";
}

SweepSpec SweepSpec::from_json(const json& j) {
  SweepSpec s;
  try {
    s.name = j.at("name").get<std::string>();
    s.base_yaml = j.at("base_yaml").get<std::string>();
    s.axes = j.at("axes").get<std::vector<std::string>>();
    s.metric = j.at("metric").get<std::string>();
    s.direction = j.value("direction", default_direction(s.metric));  // absent in sweeps stored before it
    s.ranks = j.at("ranks").get<int64_t>();
    s.gpus = j.value("gpus", int64_t{0});
    s.retries = j.at("retries").get<int64_t>();
    for (const auto& t : j.at("trials")) {
      TrialSpec tr;
      tr.point = t.at("point");
      tr.seed = t.at("seed").get<int64_t>();
      tr.overrides = t.at("overrides").get<std::vector<std::string>>();
      s.trials.push_back(std::move(tr));
    }
  } catch (const json::exception& e) {
    fail("sweep: malformed sweep description: {}", e.what());
  }
  if (s.trials.empty()) fail("sweep: no trials");
  if (s.ranks < 1 || s.retries < 0) fail("sweep: ranks must be >= 1 and retries >= 0");
  if (const std::string why = check_gpus(s.ranks, s.gpus); !why.empty()) fail("sweep: {}", why);
  if (s.direction != "min" && s.direction != "max") fail("sweep: direction must be min or max, not '{}'", s.direction);
  return s;
}

std::string default_direction(const std::string& metric) {
  const std::string tail = "accuracy";
  const bool accuracy = metric.size() >= tail.size() && metric.compare(metric.size() - tail.size(), tail.size(), tail) == 0;
  return accuracy ? "max" : "min";
}

std::string point_label(const json& point, const std::vector<std::string>& axes) {
  std::string out;
  for (const auto& a : axes) {
    if (!point.is_object() || !point.contains(a)) continue;
    const json& v = point[a];
    out += (out.empty() ? "" : ", ") + a + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

std::optional<double> metric_value(const json& result, const std::string& metric) {
  const json* m = &result;
  for (size_t b = 0; m && b <= metric.size();) {
    size_t e = metric.find('.', b);
    if (e == std::string::npos) e = metric.size();
    const std::string part = metric.substr(b, e - b);
    m = m->is_object() && m->contains(part) ? &(*m)[part] : nullptr;
    b = e + 1;
  }
  if (m && m->is_number()) return m->get<double>();
  return std::nullopt;
}

std::set<std::string> metric_keys(const Config& trial) {
  std::set<std::string> top = {"loss", "token_accuracy"};
  const std::string manifest = trial.has("data.path") ? expand_user(trial.get_string("data.path")) + "/manifest.json" : "";
  try {
    const data::Manifest m = data::Manifest::from_json(json::parse(read_file(manifest)), manifest);
    if (m.layout == data::Layout::kStream) top.insert(m.corpus == "wikitext103" ? "ppl" : "bpc");
    else top.insert("sequence_accuracy");
  } catch (const std::exception&) {
    top.insert({"bpc", "ppl", "sequence_accuracy"});
  }
  std::set<std::string> keys = top;
  const auto extra = trial.get_string_list("eval.extra_splits");
  for (const auto& split : extra) {
    for (const auto& k : top) keys.insert("splits." + split + "." + k);
  }
  // eval.every_epoch: each split's best over the epochs too (the reference protocol), under best.SPLIT.
  if (trial.get_bool("eval.every_epoch")) {
    for (const auto& k : top) keys.insert("best.valid." + k);
    for (const auto& split : extra) {
      for (const auto& k : top) keys.insert("best." + split + "." + k);
    }
  }
  return keys;
}

namespace {

std::string scalar_text(const YAML::Node& n, const std::string& where) {
  if (!n.IsScalar()) fail("{}: expected a scalar value", where);
  return n.Scalar();
}

json scalar_json(const YAML::Node& n) {
  const std::string& t = n.Scalar();
  try {
    size_t pos = 0;
    long long v = std::stoll(t, &pos);
    if (pos == t.size()) return v;
    double d = std::stod(t, &pos);
    if (pos == t.size()) return d;
  } catch (const std::exception&) {
  }
  return t;
}

std::string substitute(std::string text, const std::map<std::string, std::string>& vars, std::set<std::string>* used) {
  for (const auto& [k, v] : vars) {
    const std::string pat = "{" + k + "}";
    for (size_t p; (p = text.find(pat)) != std::string::npos;) {
      text.replace(p, pat.size(), v);
      used->insert(k);
    }
  }
  return text;
}

}  // namespace

// More trials than any cluster runs; a typo (seeds: 1000000000) must not expand in memory for minutes.
constexpr int64_t kMaxTrials = 100000;

SweepSpec load_sweep_spec(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail("{}: not valid YAML: {}", path, e.what());
  }
  if (!root.IsMap()) fail("{}: a sweep spec is a mapping (name, base, axes, seeds, ...)", path);
  static const std::set<std::string> known = {"name", "base", "set", "axes", "seeds", "resources", "retries", "metric",
                                               "direction"};
  for (const auto& kv : root) {
    std::string k = kv.first.Scalar();
    if (!known.count(k)) {
      fail("{}: unknown key '{}' (known: name, base, set, axes, seeds, resources, retries, metric, direction)", path, k);
    }
  }
  SweepSpec s;
  s.name = root["name"] ? scalar_text(root["name"], path + ": name") : path;
  if (!root["base"]) fail("{}: 'base' (the base config file) is required", path);
  std::string base = scalar_text(root["base"], path + ": base");
  if (!base.empty() && base[0] != '/' && base[0] != '~') {
    auto slash = path.rfind('/');
    base = (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/" + base;
  }
  Config base_config = Config::load(expand_user(base));
  s.base_yaml = base_config.to_yaml();
  if (root["metric"]) s.metric = scalar_text(root["metric"], path + ": metric");
  s.direction = root["direction"] ? scalar_text(root["direction"], path + ": direction") : default_direction(s.metric);
  if (s.direction != "min" && s.direction != "max") fail("{}: direction must be min or max, not '{}'", path, s.direction);
  if (root["retries"]) s.retries = std::stoll(scalar_text(root["retries"], path + ": retries"));
  if (root["resources"]) {
    const auto& r = root["resources"];
    if (!r.IsMap()) fail("{}: resources must be a mapping (ranks, gpus)", path);
    if (r["ranks"]) s.ranks = std::stoll(scalar_text(r["ranks"], path + ": resources.ranks"));
    if (r["gpus"]) s.gpus = std::stoll(scalar_text(r["gpus"], path + ": resources.gpus"));
  }
  if (s.ranks < 1) fail("{}: resources.ranks must be at least 1", path);
  if (const std::string why = check_gpus(s.ranks, s.gpus); !why.empty()) fail("{}: {}", path, why);
  if (s.retries < 0) fail("{}: retries must be >= 0", path);
  std::vector<int64_t> seeds{1};
  if (root["seeds"]) {
    const auto& n = root["seeds"];
    seeds.clear();
    if (n.IsSequence()) {
      for (const auto& x : n) seeds.push_back(std::stoll(x.Scalar()));
    } else {
      int64_t k = std::stoll(scalar_text(n, path + ": seeds"));
      if (k < 1) fail("{}: seeds must be at least 1", path);
      if (k > kMaxTrials) fail("{}: seeds = {} exceeds the {} trials a sweep may hold", path, k, kMaxTrials);
      for (int64_t i = 1; i <= k; ++i) seeds.push_back(i);
    }
  }
  std::vector<std::pair<std::string, std::string>> fixed;
  if (root["set"]) {
    if (!root["set"].IsMap()) fail("{}: 'set' must be a mapping of config keys to values", path);
    for (const auto& kv : root["set"]) fixed.emplace_back(kv.first.Scalar(), scalar_text(kv.second, path + ": set." + kv.first.Scalar()));
  }
  std::vector<std::pair<std::string, std::vector<YAML::Node>>> axes;
  if (root["axes"]) {
    if (!root["axes"].IsMap()) fail("{}: 'axes' must map keys to lists of values", path);
    for (const auto& kv : root["axes"]) {
      std::string key = kv.first.Scalar();
      if (!kv.second.IsSequence() || kv.second.size() == 0) fail("{}: axis '{}' must be a non-empty list", path, key);
      std::vector<YAML::Node> values(kv.second.begin(), kv.second.end());
      axes.emplace_back(key, values);
      s.axes.push_back(key);
    }
  }
  auto is_config_key = [](const std::string& k) { return find_key_spec(k) != nullptr; };
  // Bounded before anything is expanded: the product of the axes' sizes times the seeds.
  double product = static_cast<double>(seeds.size());
  for (const auto& [key, values] : axes) product *= static_cast<double>(values.size());
  if (product > static_cast<double>(kMaxTrials)) {
    fail("{}: the sweep expands to {:.0f} trials (axes x seeds); a sweep may hold at most {}", path, product, kMaxTrials);
  }
  // Per-value lists zipped with another axis (parameter-matched designs): in a bundle, a key that is
  // itself an axis and holds a list gives that axis' value at each of its positions for this bundle
  // only, e.g. model: [{label: fl_xl, type: fl_xl, n_layer: [8, 10, 12, 14]}] with model.n_layer:
  // [10, 12, 14, 16]. zipped[a][v] maps axis b to that list, for value v of axis a.
  std::map<std::string, size_t> axis_index;
  for (size_t a = 0; a < axes.size(); ++a) axis_index[axes[a].first] = a;
  auto full_key = [](const std::string& axis, const std::string& k) { return k.find('.') == std::string::npos ? axis + "." + k : k; };
  std::vector<std::vector<std::map<size_t, YAML::Node>>> zipped(axes.size());
  for (size_t a = 0; a < axes.size(); ++a) {
    const auto& [key, values] = axes[a];
    zipped[a].resize(values.size());
    for (size_t v = 0; v < values.size(); ++v) {
      if (!values[v].IsMap()) continue;
      for (const auto& kv : values[v]) {
        const std::string k = kv.first.Scalar();
        auto b = axis_index.find(full_key(key, k));
        if (k == "label" || b == axis_index.end() || b->second == a) continue;
        const auto& other = axes[b->second];
        if (!kv.second.IsSequence() || kv.second.size() != other.second.size()) {
          fail("{}: axis '{}': '{}' is the axis '{}', so it is zipped with it: give a list of {} values, one per value "
               "of '{}' (got {})",
               path, key, k, other.first, other.second.size(), other.first, YAML::Dump(kv.second));
        }
        for (size_t c = 0; c < a; ++c) {
          for (const auto& bundle : zipped[c]) {
            if (bundle.count(b->second)) fail("{}: axes '{}' and '{}' both zip a list with axis '{}'", path, axes[c].first, key, other.first);
          }
        }
        zipped[a][v][b->second] = kv.second;
      }
    }
  }
  // The cartesian product, first axis slowest.
  std::vector<size_t> idx(axes.size(), 0);
  std::set<std::string> used_vars, checked_metric, seen_points;
  while (true) {
    json point = json::object();
    std::map<std::string, std::string> vars;
    std::vector<std::string> axis_sets;
    std::map<size_t, YAML::Node> replaced;  // axis -> its value zipped from another axis' bundle
    for (size_t a = 0; a < axes.size(); ++a) {
      for (const auto& [b, list] : zipped[a][idx[a]]) replaced[b] = list[idx[b]];
    }
    for (size_t a = 0; a < axes.size(); ++a) {
      const std::string& key = axes[a].first;
      const YAML::Node& v = replaced.count(a) ? replaced[a] : axes[a].second[idx[a]];
      if (v.IsMap()) {
        // A bundle of settings that change together, e.g. model: {label: xl, type: xl, n_rsa_heads: 0}:
        // keys without a dot belong to the axis' section; `label` names the value in results.
        std::string label;
        for (const auto& kv : v) {
          std::string k = kv.first.Scalar();
          std::string text = kv.second.IsScalar() ? kv.second.Scalar() : YAML::Dump(kv.second);
          if (k == "label") {
            label = text;
            continue;
          }
          std::string full = full_key(key, k);
          if (full != key && axis_index.count(full)) continue;  // zipped: set as that axis' value, above
          if (!is_config_key(full)) fail("{}: axis '{}': '{}' is not a config key", path, key, full);
          axis_sets.push_back(full + "=" + text);
        }
        if (label.empty()) {
          YAML::Emitter e;
          e << YAML::Flow << v;
          label = e.c_str();
        }
        point[key] = label;
        vars[key] = label;
        used_vars.insert(key);
        continue;
      }
      std::string text = v.IsScalar() ? v.Scalar() : YAML::Dump(v);
      point[key] = v.IsScalar() ? scalar_json(v) : json(text);
      vars[key] = text;
      if (is_config_key(key)) axis_sets.push_back(key + "=" + text);
    }
    // Results are told apart by their point alone: two values of an axis with one label (or one
    // value twice) would give trials that no table, plot or fit can separate.
    if (!seen_points.insert(point.dump()).second) {
      fail("{}: two trials would have the same point ({}): give every value of an axis its own label", path,
           point_label(point, s.axes));
    }
    for (int64_t seed : seeds) {
      TrialSpec t;
      t.point = point;
      t.seed = seed;
      for (const auto& [k, v] : fixed) t.overrides.push_back(k + "=" + substitute(v, vars, &used_vars));
      t.overrides.insert(t.overrides.end(), axis_sets.begin(), axis_sets.end());
      t.overrides.push_back("train.seed=" + std::to_string(seed));
      Config trial;
      try {
        trial = Config::parse(s.base_yaml, s.name + " (base config)", t.overrides);
      } catch (const Error& e) {
        fail("{}: trial {} (seed {}) has an invalid config: {}", path, point_label(point, s.axes), seed, e.what());
      }
      // Each dataset and set of extra splits once: the metric must be a key of every trial's eval.json.
      if (checked_metric.insert(trial.value_text("data.path") + "|" + trial.value_text("eval.extra_splits")).second) {
        const auto keys = metric_keys(trial);
        if (!keys.count(s.metric)) {
          std::string list;
          for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
          fail("{}: metric '{}' is not in the eval.json of trial {} (it will have: {})", path, s.metric, point_label(point, s.axes), list);
        }
      }
      s.trials.push_back(std::move(t));
    }
    // advance the odometer, last axis fastest
    bool wrapped = true;
    for (size_t k = axes.size(); k-- > 0;) {
      if (++idx[k] < axes[k].second.size()) {
        wrapped = false;
        break;
      }
      idx[k] = 0;
    }
    if (wrapped) break;
  }
  for (const auto& [key, values] : axes) {
    if (!is_config_key(key) && !used_vars.count(key)) {
      fail("{}: axis '{}' is neither a config key nor used as {{{}}} in 'set' (typo?)", path, key, key);
    }
  }
  return s;
}

}  // namespace recur::coord
