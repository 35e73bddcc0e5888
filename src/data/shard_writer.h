// Writes a dataset directory: HDF5 shard files per split plus manifest.json, built in a staging
// directory and renamed into place by finish(), so an interrupted run never leaves a valid-looking dataset.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/fs.h"
#include "data/manifest.h"

namespace recur::data {

struct Example;  // synthetic.h

class DatasetWriter {
 public:
  // `manifest` carries corpus, vocabulary, layout, sources and params; splits are filled in here.
  DatasetWriter(const std::string& out_dir, Manifest manifest, bool force);
  ~DatasetWriter();

  // Starts a split whose shards hold about `shard_tokens` tokens each (examples are never cut).
  void begin_split(const std::string& name, uint64_t shard_tokens);
  void append_tokens(const uint32_t* tokens, size_t count);   // stream layout
  void append_example(const Example& example);                // examples layout
  void end_split();
  // Writes a large vocabulary (one symbol per line) as vocab.txt and records it in the manifest.
  void write_vocab_file(const std::vector<std::string>& symbols);
  // Writes the manifest, fsyncs everything and renames the staging directory to out_dir.
  Manifest finish();

  const std::string& staging_path() const { return staging_.path(); }

 private:
  void open_shard();
  void close_shard();
  void flush_buffers();

  StagingDir staging_;
  Manifest manifest_;
  std::string split_;
  uint64_t shard_tokens_ = 0;
  uint64_t split_tokens_ = 0, split_examples_ = 0;
  struct Shard;
  std::unique_ptr<Shard> shard_;
  std::vector<ShardInfo> shards_;
};

// Default shard size: at most 64 Mi tokens per shard.
constexpr uint64_t kDefaultShardTokens = 64ull << 20;
// HDF5 chunk length (elements) of token datasets; readers copy from chunks, so keep them large. A
// shard smaller than this gets a chunk of its own size (HDF5 allocates whole chunks).
constexpr uint64_t kTokenChunk = 1ull << 20;

}  // namespace recur::data
