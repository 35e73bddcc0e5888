// See config.h. Values are kept as canonical YAML text once validated, so to_yaml() round-trips.
#include "core/config.h"

#include <algorithm>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/fs.h"

namespace recur {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

namespace {

bool parse_int(const std::string& text, int64_t* out) {
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used, 10);
    if (used != text.size()) return false;
    *out = v;
    return true;
  } catch (...) {
    return false;
  }
}

bool parse_float(const std::string& text, double* out) {
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used != text.size()) return false;
    *out = v;
    return true;
  } catch (...) {
    return false;
  }
}

bool parse_bool(const std::string& text, bool* out) {
  if (text == "true" || text == "True" || text == "yes" || text == "on") return *out = true, true;
  if (text == "false" || text == "False" || text == "no" || text == "off") return *out = false, true;
  return false;
}

std::string where(const std::string& origin) { return origin; }

// Checks one scalar against a type and the spec's bounds; returns its canonical YAML text.
std::string check_scalar(const KeySpec& spec, ValueType type, const YAML::Node& node, const std::string& origin) {
  if (!node.IsScalar()) {
    fail("config error in {}: key '{}' expects {}, got a {}", where(origin), spec.key, value_type_name(spec.type),
         node.IsSequence() ? "list" : "mapping");
  }
  const std::string text = node.Scalar();
  auto bounds = [&](double v) {
    if ((spec.min && v < *spec.min) || (spec.max && v > *spec.max)) {
      std::string range = fmt::format("[{}, {}]", spec.min ? fmt::format("{}", *spec.min) : "-inf",
                                      spec.max ? fmt::format("{}", *spec.max) : "inf");
      fail("config error in {}: key '{}' = {} is outside the allowed range {}", where(origin), spec.key, text, range);
    }
  };
  switch (type) {
    case ValueType::kInt: {
      int64_t v;
      if (!parse_int(text, &v)) fail("config error in {}: key '{}' expects an integer, got '{}'", where(origin), spec.key, text);
      bounds(static_cast<double>(v));
      return std::to_string(v);
    }
    case ValueType::kFloat: {
      double v;
      if (!parse_float(text, &v)) fail("config error in {}: key '{}' expects a number, got '{}'", where(origin), spec.key, text);
      bounds(v);
      YAML::Emitter e;
      e << v;
      return e.c_str();
    }
    case ValueType::kBool: {
      bool v;
      if (!parse_bool(text, &v)) fail("config error in {}: key '{}' expects true or false, got '{}'", where(origin), spec.key, text);
      return v ? "true" : "false";
    }
    default: {
      if (!spec.choices.empty() && std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end()) {
        std::string all;
        for (const auto& c : spec.choices) all += (all.empty() ? "" : ", ") + c;
        fail("config error in {}: key '{}' = '{}' is not one of: {}", where(origin), spec.key, text, all);
      }
      YAML::Emitter e;
      e << YAML::DoubleQuoted << text;
      return e.c_str();
    }
  }
}

ValueType element_type(ValueType t) {
  switch (t) {
    case ValueType::kIntList: return ValueType::kInt;
    case ValueType::kFloatList: return ValueType::kFloat;
    case ValueType::kStringList: return ValueType::kString;
    default: return t;
  }
}

bool is_list(ValueType t) {
  return t == ValueType::kIntList || t == ValueType::kFloatList || t == ValueType::kStringList;
}

std::string check_value(const KeySpec& spec, const YAML::Node& node, const std::string& origin) {
  if (node.IsNull()) return "null";
  if (!is_list(spec.type)) return check_scalar(spec, spec.type, node, origin);
  if (!node.IsSequence()) {
    fail("config error in {}: key '{}' expects a list ({}), e.g. [1, 2]", where(origin), spec.key, value_type_name(spec.type));
  }
  std::string out = "[";
  for (size_t i = 0; i < node.size(); ++i) {
    out += (i ? ", " : "") + check_scalar(spec, element_type(spec.type), node[i], origin);
  }
  return out + "]";
}

[[noreturn]] void unknown_key(const std::string& key, const std::string& origin) {
  std::string near = closest_key(key);
  if (!near.empty()) fail("config error in {}: unknown key '{}' (did you mean '{}'?)", where(origin), key, near);
  fail("config error in {}: unknown key '{}' (`recur config keys` lists every key)", where(origin), key);
}

void flatten(const YAML::Node& node, const std::string& prefix, const std::string& origin,
             std::map<std::string, std::string>* out) {
  std::set<std::string> seen;  // yaml-cpp keeps duplicate keys of a mapping; the last would win silently
  for (const auto& item : node) {
    std::string name = item.first.as<std::string>();
    std::string key = prefix.empty() ? name : prefix + "." + name;
    if (!seen.insert(name).second) {
      fail("config error in {}: key '{}' is given twice (line {})", where(origin), key, item.first.Mark().line + 1);
    }
    if (prefix.empty() && name == "base") continue;  // handled by the loader
    const KeySpec* spec = find_key_spec(key);
    if (!spec) {
      if (item.second.IsMap()) {
        bool is_section = false;
        for (const auto& s : config_schema()) is_section |= s.key.rfind(key + ".", 0) == 0;
        if (is_section) {
          flatten(item.second, key, origin, out);
          continue;
        }
      }
      unknown_key(key, origin);
    }
    (*out)[key] = check_value(*spec, item.second, origin);
  }
}

// A config is exactly one YAML document: a second one after `---` would otherwise be ignored.
YAML::Node load_document(const std::string& text, const std::string& origin) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    fail("config error in {}: invalid YAML at line {}, column {}: {}", origin, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  if (docs.size() > 1) {
    fail("config error in {}: holds {} YAML documents (separated by '---'); a config is one document", origin, docs.size());
  }
  return docs.empty() ? YAML::Node() : docs[0];
}

void load_file(const std::string& path, std::map<std::string, std::string>* out, int depth) {
  if (depth > 8) fail("config error in {}: 'base' chain is deeper than 8 files (a cycle?)", path);
  if (!path_exists(path)) fail("config file {} does not exist", path);
  if (!is_regular_file(path)) fail("config file {} is not a regular file (a device, FIFO or directory?)", path);
  YAML::Node root = load_document(read_file(path), path);
  if (root.IsNull()) return;
  if (!root.IsMap()) fail("config error in {}: the top level must be a mapping of sections", path);
  if (root["base"]) {
    if (!root["base"].IsScalar()) fail("config error in {}: 'base' must be a path", path);
    std::string base = join_path(parent_dir(path), root["base"].as<std::string>());
    load_file(base, out, depth + 1);
  }
  flatten(root, "", path, out);
}

void apply_override(const std::string& text, std::map<std::string, std::string>* out) {
  auto eq = text.find('=');
  std::string origin = "--set " + text;
  if (eq == std::string::npos || eq == 0) fail("config error in {}: expected section.key=value", origin);
  std::string key = text.substr(0, eq);
  const KeySpec* spec = find_key_spec(key);
  if (!spec) unknown_key(key, origin);
  YAML::Node node;
  try {
    node = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    fail("config error in {}: invalid YAML value: {}", origin, e.msg);
  }
  (*out)[key] = check_value(*spec, node, origin);
}

Config finish(std::map<std::string, std::string> values) {
  for (const auto& spec : config_schema()) {
    if (!values.count(spec.key)) values[spec.key] = check_value(spec, YAML::Load(spec.default_yaml), "defaults");
  }
  Config c;
  for (auto& [k, v] : values) c.set(k, v, "resolved config");
  return c;
}

}  // namespace

std::string value_type_name(ValueType type) {
  switch (type) {
    case ValueType::kInt: return "integer";
    case ValueType::kFloat: return "number";
    case ValueType::kBool: return "boolean";
    case ValueType::kString: return "string";
    case ValueType::kIntList: return "list of integers";
    case ValueType::kFloatList: return "list of numbers";
    case ValueType::kStringList: return "list of strings";
  }
  return "?";
}

const KeySpec* find_key_spec(const std::string& key) {
  for (const auto& s : config_schema()) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

std::string closest_key(const std::string& key) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& s : config_schema()) {
    size_t d = edit_distance(key, s.key);
    // Also compare the last component alone, so "steps" finds "train.steps".
    auto dot = s.key.rfind('.');
    if (dot != std::string::npos) d = std::min(d, edit_distance(key, s.key.substr(dot + 1)) + 1);
    if (d < best_d) best_d = d, best = s.key;
  }
  size_t limit = std::max<size_t>(2, key.size() / 3);
  return best_d <= limit ? best : "";
}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> values;
  load_file(path, &values, 0);
  for (const auto& o : overrides) apply_override(o, &values);
  return finish(std::move(values));
}

Config Config::from_overrides(const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> values;
  for (const auto& o : overrides) apply_override(o, &values);
  return finish(std::move(values));
}

Config Config::parse(const std::string& yaml_text, const std::string& origin, const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> values;
  YAML::Node root = load_document(yaml_text, origin);
  if (!root.IsNull()) {
    if (!root.IsMap()) fail("config error in {}: the top level must be a mapping of sections", origin);
    if (root["base"]) fail("config error in {}: 'base' is only allowed in config files", origin);
    flatten(root, "", origin, &values);
  }
  for (const auto& o : overrides) apply_override(o, &values);
  return finish(std::move(values));
}

void Config::set(const std::string& key, const std::string& yaml_value, const std::string& origin) {
  const KeySpec* spec = find_key_spec(key);
  if (!spec) unknown_key(key, origin);
  values_[key] = check_value(*spec, YAML::Load(yaml_value), origin);
}

bool Config::has(const std::string& key) const {
  auto it = values_.find(key);
  return it != values_.end() && it->second != "null";
}

const std::string& Config::raw(const std::string& key, ValueType expected) const {
  const KeySpec* spec = find_key_spec(key);
  if (!spec) fail("internal error: config key '{}' is not in the schema", key);
  if (spec->type != expected) {
    fail("internal error: config key '{}' is a {}, read as {}", key, value_type_name(spec->type), value_type_name(expected));
  }
  auto it = values_.find(key);
  if (it == values_.end() || it->second == "null") {
    fail("config error: key '{}' is required ({}); set it in the config or with --set {}=...", key, spec->help, key);
  }
  return it->second;
}

int64_t Config::get_int(const std::string& key) const { return YAML::Load(raw(key, ValueType::kInt)).as<int64_t>(); }
double Config::get_float(const std::string& key) const { return YAML::Load(raw(key, ValueType::kFloat)).as<double>(); }
bool Config::get_bool(const std::string& key) const { return raw(key, ValueType::kBool) == "true"; }
std::string Config::get_string(const std::string& key) const {
  return YAML::Load(raw(key, ValueType::kString)).as<std::string>();
}
std::vector<int64_t> Config::get_int_list(const std::string& key) const {
  return YAML::Load(raw(key, ValueType::kIntList)).as<std::vector<int64_t>>();
}
std::vector<double> Config::get_float_list(const std::string& key) const {
  return YAML::Load(raw(key, ValueType::kFloatList)).as<std::vector<double>>();
}
std::vector<std::string> Config::get_string_list(const std::string& key) const {
  return YAML::Load(raw(key, ValueType::kStringList)).as<std::vector<std::string>>();
}

std::string Config::value_text(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? "null" : it->second;
}

std::string Config::to_yaml() const {
  std::ostringstream out;
  std::string section;
  for (const auto& spec : config_schema()) {
    auto dot = spec.key.find('.');
    std::string sec = spec.key.substr(0, dot);
    if (sec != section) {
      out << sec << ":\n";
      section = sec;
    }
    auto it = values_.find(spec.key);
    out << "  " << spec.key.substr(dot + 1) << ": " << (it == values_.end() ? "null" : it->second) << "\n";
  }
  return out.str();
}

void Config::save(const std::string& path) const { write_file_atomic(path, to_yaml()); }

std::vector<std::string> Config::diff(const Config& other) const {
  std::vector<std::string> keys;
  for (const auto& spec : config_schema()) {
    auto a = values_.find(spec.key);
    auto b = other.values_.find(spec.key);
    std::string va = a == values_.end() ? "null" : a->second;
    std::string vb = b == other.values_.end() ? "null" : b->second;
    if (va != vb) keys.push_back(spec.key);
  }
  return keys;
}

}  // namespace recur
