// Reads a dataset directory: checks the manifest against the shard files, then serves any global token
// range (or example) of a split by copying straight from memory-mapped HDF5 chunks (O(1) seek).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/manifest.h"

namespace recur::data {

// One 1-D unsigned dataset inside a mapped shard file.
struct MappedArray {
  std::string path;                 // the shard file, named in errors
  const uint8_t* base = nullptr;    // start of the mapped file (null: the array is not stored)
  size_t map_size = 0;
  uint64_t length = 0;
  uint64_t chunk_elems = 0;
  int elem_bytes = 0;
  uint64_t limit = 0;               // every element must be < limit (0 = no bound): the vocabulary
  std::vector<uint64_t> chunk_offsets;
  // Copies elements [begin, begin + count) widened to int64. Throws naming the file when an element
  // is not below `limit`, or when the file shrank under the mapping (the SIGBUS is caught).
  void read(uint64_t begin, uint64_t count, int64_t* out) const;
};

struct ExampleView {
  std::vector<int64_t> tokens;
  std::vector<int64_t> label_sets;  // empty unless the dataset has them
  std::vector<int64_t> loss_mask;   // empty unless the dataset has them
};

class Split {
 public:
  uint64_t tokens() const { return info_->tokens; }
  uint64_t examples() const { return info_->examples; }
  const std::string& name() const { return name_; }
  // Copies global tokens [begin, begin + count) of the split (may cross shards) into `out`.
  void read_tokens(uint64_t begin, uint64_t count, int64_t* out) const;
  ExampleView read_example(uint64_t index) const;      // examples layout only
  uint64_t example_length(uint64_t index) const;

 private:
  friend class Dataset;
  struct Shard {
    std::string path;
    const ShardInfo* info = nullptr;
    void* map = nullptr;
    size_t map_size = 0;
    MappedArray tokens, label_sets, loss_mask;
    std::vector<uint64_t> offsets;  // examples layout: n+1 offsets relative to the shard
  };
  size_t shard_of_token(uint64_t global) const;
  size_t shard_of_example(uint64_t index) const;
  std::string name_;
  const SplitInfo* info_ = nullptr;
  std::vector<Shard> shards_;
};

class Dataset {
 public:
  // Opens DIR/manifest.json and every shard. Sizes, attributes and chunk layout are always checked;
  // with verify_checksums the token and file checksums of every shard are recomputed too.
  static std::shared_ptr<Dataset> open(const std::string& dir, bool verify_checksums);
  ~Dataset();
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  const Manifest& manifest() const { return manifest_; }
  const std::string& dir() const { return dir_; }
  bool has_split(const std::string& name) const { return splits_.count(name) > 0; }
  const Split& split(const std::string& name) const;
  // The symbol of every token id (bytes are rendered as themselves).
  std::vector<std::string> symbols() const;

 private:
  Dataset() = default;
  std::string dir_;
  Manifest manifest_;
  std::map<std::string, Split> splits_;
};

// Recomputes every checksum of the dataset at `dir`. Returns one line per problem (empty = valid);
// reports progress on stderr when `progress` is set.
std::vector<std::string> verify_dataset(const std::string& dir, bool progress);

}  // namespace recur::data
