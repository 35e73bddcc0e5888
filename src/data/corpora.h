// Turns raw corpora (enwik8, text8, WikiText-103, any bytes, lines of text) into a sharded dataset.
// Invariant: concatenating `recur shard dump` of every split reproduces the corpus (bytes exactly).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/manifest.h"

namespace recur::data {

// Most shards per split `recur shard --shards` accepts: bounds the files (and inodes) one run creates.
constexpr int64_t kMaxShards = 10000;

struct ShardOptions {
  std::string corpus;                 // enwik8, text8, wikitext103, bytes, lines
  std::vector<std::string> inputs;
  std::string out_dir;
  int64_t shards = 0;                 // shards per split; 0 = as many as needed for <= 64 Mi tokens each
  std::vector<double> ratios = {0.9, 0.05, 0.05};  // bytes/lines (and small enwik8/text8 files)
  bool force = false;                 // replace an existing dataset
  bool progress = true;
};

const std::vector<std::string>& corpus_kinds();
Manifest shard_corpus(const ShardOptions& options);

// Writes the split's content to `out` in the corpus's own form: original bytes for byte corpora,
// symbols for text8, words separated by spaces with one line per <eos> for WikiText, a line per example.
class Dataset;
void dump_split(const Dataset& dataset, const std::string& split, std::FILE* out);

}  // namespace recur::data
