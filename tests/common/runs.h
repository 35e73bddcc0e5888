// Helpers shared by the tests that train real runs: a small word corpus sharded as bytes, and a
// run directory's final parameters loaded back into its model.
#pragma once

#include <torch/torch.h>

#include <random>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/fs.h"
#include "data/corpora.h"
#include "model/model.h"

namespace recur::test {

// Writes DIR/corpus.txt (random words until `bytes` long) and shards it into DIR/data.
inline void make_word_dataset(const std::string& dir, const std::vector<const char*>& words, size_t bytes, uint32_t seed) {
  std::string text;
  std::mt19937 rng(seed);
  while (text.size() < bytes) text += words[rng() % words.size()];
  write_file_atomic(dir + "/corpus.txt", text);
  data::ShardOptions o;
  o.corpus = "bytes";
  o.inputs = {dir + "/corpus.txt"};
  o.out_dir = dir + "/data";
  o.progress = false;
  data::shard_corpus(o);
}

// The model a run directory describes (config.yaml), with its final parameters (model.pt).
inline std::shared_ptr<model::LanguageModel> load_run(const std::string& run, int64_t vocab = 256) {
  Config c = Config::load(run + "/config.yaml");
  auto m = model::make_model(c, vocab);
  torch::load(m, run + "/model.pt");
  return m;
}

}  // namespace recur::test
