// XXH3-64 streaming wrapper; see hash.h for the textual form.
#include "core/hash.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include <xxhash.h>

#include "core/error.h"

namespace recur {

struct Hasher::State {
  XXH3_state_t* xxh = XXH3_createState();
};

Hasher::Hasher() : state_(std::make_unique<State>()) { XXH3_64bits_reset(state_->xxh); }
Hasher::~Hasher() { XXH3_freeState(state_->xxh); }
void Hasher::update(const void* data, size_t size) { XXH3_64bits_update(state_->xxh, data, size); }
uint64_t Hasher::digest() const { return XXH3_64bits_digest(state_->xxh); }
std::string Hasher::hex() const { return format_checksum(digest()); }

std::string format_checksum(uint64_t digest) { return fmt::format("xxh3:{:016x}", digest); }

std::string checksum_bytes(const void* data, size_t size) {
  return format_checksum(XXH3_64bits(data, size));
}

std::string checksum_file(const std::string& path, uint64_t* size_out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("cannot open {} for reading: {}", path, std::strerror(errno));
  Hasher hasher;
  std::vector<char> buffer(1 << 20);
  uint64_t total = 0;
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), f)) > 0) {
    hasher.update(buffer.data(), n);
    total += n;
  }
  bool bad = std::ferror(f);
  std::fclose(f);
  if (bad) fail("read error on {}", path);
  if (size_out) *size_out = total;
  return hasher.hex();
}

}  // namespace recur
