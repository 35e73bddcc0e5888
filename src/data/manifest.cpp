// See manifest.h. Parsing is defensive: a manifest is user-editable input.
#include "data/manifest.h"

#include <set>
#include <type_traits>

#include "core/error.h"

namespace recur::data {

using nlohmann::json;

int token_bytes_for_vocab(uint64_t vocab_size) {
  if (vocab_size <= (1ull << 8)) return 1;
  if (vocab_size <= (1ull << 16)) return 2;
  return 4;
}

json Manifest::to_json() const {
  json j;
  j["format"] = "recur-dataset";
  j["format_version"] = format_version;
  j["corpus"] = corpus;
  j["tool_version"] = tool_version;
  j["token_type"] = "uint" + std::to_string(8 * token_bytes);
  j["layout"] = layout == Layout::kStream ? "stream" : "examples";
  if (layout == Layout::kExamples) {
    j["example_fields"] = example_fields;
    if (label_bytes) j["label_type"] = "uint" + std::to_string(8 * label_bytes);
  }
  json v;
  v["size"] = vocab.size;
  if (vocab.bytes) v["kind"] = "bytes";
  else if (!vocab.file.empty()) {
    v["kind"] = "file";
    v["file"] = vocab.file;
    v["checksum"] = vocab.file_checksum;
  } else {
    v["kind"] = "symbols";
    v["symbols"] = vocab.symbols;
  }
  j["vocab"] = v;
  json splits_json = json::object();
  for (const auto& [name, s] : splits) {
    json sj;
    sj["tokens"] = s.tokens;
    sj["examples"] = s.examples;
    sj["shards"] = json::array();
    for (const auto& sh : s.shards) {
      json x = {{"file", sh.file}, {"first_token", sh.first_token}, {"tokens", sh.tokens},
                {"checksum", sh.checksum}, {"file_checksum", sh.file_checksum}, {"file_size", sh.file_size}};
      if (layout == Layout::kExamples) {
        x["first_example"] = sh.first_example;
        x["examples"] = sh.examples;
      }
      sj["shards"].push_back(x);
    }
    splits_json[name] = sj;
  }
  j["splits"] = splits_json;
  j["sources"] = json::array();
  for (const auto& s : sources) j["sources"].push_back({{"path", s.path}, {"size", s.size}, {"checksum", s.checksum}});
  j["params"] = params;
  return j;
}

namespace {

template <typename T>
T need(const json& j, const char* key, const std::string& origin, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) fail("{}: manifest field '{}{}' is missing", origin, where, key);
  const json& v = j.at(key);
  // nlohmann converts 90000.5 or -1 to an integer silently; a count must be written as one.
  if constexpr (std::is_integral_v<T>) {
    bool ok = std::is_unsigned_v<T> ? v.is_number_unsigned() : v.is_number_integer();
    if (!ok) {
      fail("{}: manifest field '{}{}' must be a{} integer, got {}", origin, where, key,
           std::is_unsigned_v<T> ? " non-negative" : "n", v.dump());
    }
  }
  try {
    return v.get<T>();
  } catch (const json::exception&) {
    fail("{}: manifest field '{}{}' has the wrong type", origin, where, key);
  }
}

// Shard and vocabulary files are plain names inside the dataset directory: no path, no hidden file.
std::string need_file_name(const json& j, const char* key, const std::string& origin, const std::string& where) {
  std::string file = need<std::string>(j, key, origin, where);
  if (file.empty() || file.find('/') != std::string::npos || file[0] == '.') {
    fail("{}: {}{} '{}' must be a plain file name inside the dataset directory", origin, where, key, file);
  }
  return file;
}

int width_of(const std::string& type, const std::string& origin) {
  if (type == "uint8") return 1;
  if (type == "uint16") return 2;
  if (type == "uint32") return 4;
  fail("{}: unknown token type '{}' (expected uint8, uint16 or uint32)", origin, type);
}

}  // namespace

Manifest Manifest::from_json(const json& j, const std::string& origin) {
  Manifest m;
  if (!j.is_object() || j.value("format", "") != "recur-dataset") {
    fail("{}: not a Recur dataset manifest (missing \"format\": \"recur-dataset\")", origin);
  }
  m.format_version = need<int>(j, "format_version", origin, "");
  if (m.format_version != kDatasetFormatVersion) {
    fail("{}: dataset format version {} is not supported by this build (expects {}); re-create it with `recur shard`",
         origin, m.format_version, kDatasetFormatVersion);
  }
  m.corpus = need<std::string>(j, "corpus", origin, "");
  m.tool_version = need<std::string>(j, "tool_version", origin, "");
  m.token_bytes = width_of(need<std::string>(j, "token_type", origin, ""), origin);
  std::string layout = need<std::string>(j, "layout", origin, "");
  if (layout == "stream") m.layout = Layout::kStream;
  else if (layout == "examples") m.layout = Layout::kExamples;
  else fail("{}: unknown layout '{}'", origin, layout);
  if (m.layout == Layout::kExamples) {
    m.example_fields = need<std::vector<std::string>>(j, "example_fields", origin, "");
    for (const auto& f : m.example_fields) {
      if (f != "label_sets" && f != "loss_mask") fail("{}: unknown example field '{}'", origin, f);
      if (f == "label_sets") m.label_bytes = width_of(need<std::string>(j, "label_type", origin, ""), origin);
    }
  }
  const json& v = j.contains("vocab") ? j["vocab"] : json();
  m.vocab.size = need<uint64_t>(v, "size", origin, "vocab.");
  std::string kind = need<std::string>(v, "kind", origin, "vocab.");
  if (kind == "bytes") {
    m.vocab.bytes = true;
    if (m.vocab.size != 256) fail("{}: a byte vocabulary has 256 symbols, manifest says {}", origin, m.vocab.size);
  } else if (kind == "symbols") {
    m.vocab.symbols = need<std::vector<std::string>>(v, "symbols", origin, "vocab.");
    if (m.vocab.symbols.size() != m.vocab.size) {
      fail("{}: vocab.size is {} but {} symbols are listed", origin, m.vocab.size, m.vocab.symbols.size());
    }
  } else if (kind == "file") {
    m.vocab.file = need_file_name(v, "file", origin, "vocab.");
    m.vocab.file_checksum = need<std::string>(v, "checksum", origin, "vocab.");
  } else {
    fail("{}: unknown vocab.kind '{}'", origin, kind);
  }
  if (m.vocab.size == 0 || token_bytes_for_vocab(m.vocab.size) > m.token_bytes) {
    fail("{}: vocabulary of {} symbols does not fit token type uint{}", origin, m.vocab.size, 8 * m.token_bytes);
  }
  const json& splits = j.contains("splits") ? j["splits"] : json();
  if (!splits.is_object() || splits.empty()) fail("{}: manifest has no splits", origin);
  std::set<std::string> files{m.vocab.file};  // every file is listed once
  for (const auto& [name, sj] : splits.items()) {
    std::string where = "splits." + name + ".";
    SplitInfo s;
    s.tokens = need<uint64_t>(sj, "tokens", origin, where);
    s.examples = need<uint64_t>(sj, "examples", origin, where);
    if (!sj.contains("shards") || !sj["shards"].is_array()) fail("{}: manifest field '{}shards' is missing", origin, where);
    uint64_t next_token = 0, next_example = 0;
    for (size_t i = 0; i < sj["shards"].size(); ++i) {
      const json& x = sj["shards"][i];
      std::string w = where + "shards[" + std::to_string(i) + "].";
      ShardInfo sh;
      sh.file = need_file_name(x, "file", origin, w);
      if (!files.insert(sh.file).second) fail("{}: {}file '{}' is listed twice in the manifest", origin, w, sh.file);
      sh.first_token = need<uint64_t>(x, "first_token", origin, w);
      sh.tokens = need<uint64_t>(x, "tokens", origin, w);
      sh.checksum = need<std::string>(x, "checksum", origin, w);
      sh.file_checksum = need<std::string>(x, "file_checksum", origin, w);
      sh.file_size = need<uint64_t>(x, "file_size", origin, w);
      if (sh.first_token != next_token) {
        fail("{}: {}first_token is {} but the previous shards end at {}", origin, w, sh.first_token, next_token);
      }
      next_token += sh.tokens;
      if (m.layout == Layout::kExamples) {
        sh.first_example = need<uint64_t>(x, "first_example", origin, w);
        sh.examples = need<uint64_t>(x, "examples", origin, w);
        if (sh.first_example != next_example) fail("{}: {}first_example does not follow the previous shard", origin, w);
        next_example += sh.examples;
      }
      s.shards.push_back(sh);
    }
    if (next_token != s.tokens) fail("{}: {}tokens is {} but its shards hold {}", origin, where, s.tokens, next_token);
    if (m.layout == Layout::kExamples && next_example != s.examples) {
      fail("{}: {}examples is {} but its shards hold {}", origin, where, s.examples, next_example);
    }
    m.splits[name] = std::move(s);
  }
  if (j.contains("sources") && j["sources"].is_array()) {
    for (const auto& s : j["sources"]) {
      m.sources.push_back({s.value("path", ""), s.value("size", uint64_t{0}), s.value("checksum", "")});
    }
  }
  if (j.contains("params")) m.params = j["params"];
  return m;
}

const SplitInfo& Manifest::split(const std::string& name, const std::string& origin) const {
  auto it = splits.find(name);
  if (it == splits.end()) {
    std::string names;
    for (const auto& [n, s] : splits) names += (names.empty() ? "" : ", ") + n;
    fail("{}: dataset has no split '{}' (it has: {})", origin, name, names);
  }
  return it->second;
}

}  // namespace recur::data
