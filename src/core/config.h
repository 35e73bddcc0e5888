// Strict YAML configs: every key must be declared in the schema (config_schema.cpp) with a type.
// Unknown keys and wrong types are errors naming the key, the file and the closest valid key.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace recur {

// Levenshtein distance (insertions, deletions, substitutions), for "did you mean ...?" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);

enum class ValueType { kInt, kFloat, kBool, kString, kIntList, kFloatList, kStringList };

struct KeySpec {
  std::string key;             // "section.name"
  ValueType type;
  std::string default_yaml;    // YAML text of the default; "null" means unset (required when read)
  std::string help;
  std::vector<std::string> choices = {};  // for strings: the allowed values (empty = any)
  std::optional<double> min = {};        // for numbers (and every element of numeric lists)
  std::optional<double> max = {};
};

const std::vector<KeySpec>& config_schema();
const KeySpec* find_key_spec(const std::string& key);
std::string value_type_name(ValueType type);

class Config {
 public:
  // Reads `path` (following `base:` links, relative to the including file), applies `--set` style
  // overrides ("section.key=value", value in YAML syntax), fills defaults and validates everything.
  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});
  // Defaults plus overrides, with no file.
  static Config from_overrides(const std::vector<std::string>& overrides);
  // Parses YAML text as if it were a file called `origin`.
  static Config parse(const std::string& yaml_text, const std::string& origin,
                      const std::vector<std::string>& overrides = {});

  bool has(const std::string& key) const;   // declared and not null
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;
  std::vector<double> get_float_list(const std::string& key) const;
  std::vector<std::string> get_string_list(const std::string& key) const;

  // Sets a value from YAML text, validated like an override.
  void set(const std::string& key, const std::string& yaml_value, const std::string& origin = "code");

  std::string value_text(const std::string& key) const;  // the value as YAML text ("null" when unset)
  std::string to_yaml() const;              // the resolved config, nested by section, schema order
  void save(const std::string& path) const; // atomic write of to_yaml()
  // Keys whose values differ from `other` (for `recur ckpt inspect` and resume checks).
  std::vector<std::string> diff(const Config& other) const;

 private:
  std::map<std::string, std::string> values_;  // key -> canonical YAML text of a validated value
  const std::string& raw(const std::string& key, ValueType expected) const;
};

// Closest schema key to `key` by edit distance, or "" if nothing is close.
std::string closest_key(const std::string& key);

}  // namespace recur
