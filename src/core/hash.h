// Content checksums used by shards, manifests and checkpoints: XXH3-64, written as "xxh3:<16 hex>".
// The textual form is part of the on-disk formats; never change it without bumping format versions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace recur {

class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void update(const void* data, size_t size);
  uint64_t digest() const;
  std::string hex() const;  // "xxh3:..." form

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string format_checksum(uint64_t digest);
std::string checksum_bytes(const void* data, size_t size);
// Streams the file; throws recur::Error naming the file if it cannot be read.
std::string checksum_file(const std::string& path, uint64_t* size_out = nullptr);

}  // namespace recur
