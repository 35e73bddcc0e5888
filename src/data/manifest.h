// The dataset manifest (DIR/manifest.json): vocabulary, splits, ordered shards with counts and checksums.
// Invariant: shards of a split are listed in global order and their first_token values are contiguous.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace recur::data {

constexpr int kDatasetFormatVersion = 1;

enum class Layout { kStream, kExamples };  // one long token stream, or variable-length examples

struct ShardInfo {
  std::string file;            // relative to the dataset directory
  uint64_t first_token = 0;    // global offset of the shard's first token within its split
  uint64_t tokens = 0;
  uint64_t first_example = 0;  // examples layout only
  uint64_t examples = 0;
  std::string checksum;        // of the stored token bytes
  std::string file_checksum;   // of the whole file
  uint64_t file_size = 0;
};

struct SplitInfo {
  uint64_t tokens = 0;
  uint64_t examples = 0;
  std::vector<ShardInfo> shards;
};

struct SourceInfo {
  std::string path;
  uint64_t size = 0;
  std::string checksum;
};

struct Vocabulary {
  uint64_t size = 0;
  bool bytes = false;                 // identity over byte values 0..255 (symbols not listed)
  std::vector<std::string> symbols;   // small vocabularies, listed inline
  std::string file;                   // large vocabularies: one symbol per line in this file
  std::string file_checksum;
};

struct Manifest {
  int format_version = kDatasetFormatVersion;
  std::string corpus;                 // enwik8, text8, wikitext103, bytes, lines, formal, copy
  std::string tool_version;
  int token_bytes = 1;                // width of the stored unsigned tokens
  Layout layout = Layout::kStream;
  std::vector<std::string> example_fields;  // per-token arrays stored beside tokens (examples layout)
  int label_bytes = 0;                // width of label_sets when present
  Vocabulary vocab;
  std::map<std::string, SplitInfo> splits;
  std::vector<SourceInfo> sources;
  nlohmann::json params = nlohmann::json::object();  // corpus / generator options

  nlohmann::json to_json() const;
  // Validates structure and invariants; `origin` names the file in errors.
  static Manifest from_json(const nlohmann::json& j, const std::string& origin);
  const SplitInfo& split(const std::string& name, const std::string& origin) const;
};

int token_bytes_for_vocab(uint64_t vocab_size);  // smallest unsigned width that fits

}  // namespace recur::data
