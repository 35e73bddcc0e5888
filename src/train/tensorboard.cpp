// See tensorboard.h. Protobuf fields are written by hand: varint tags, length-delimited strings and
// messages, fixed64 doubles and fixed32 floats, all little-endian as the wire format requires.
#include "train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "core/fs.h"

namespace recur::train {
namespace {

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli polynomial
      t[i] = c;
    }
    return t;
  }();
  return table;
}

template <typename T>
void put_le(std::string* out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out->push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
}

void put_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void put_tag(std::string* out, int field, int wire_type) { put_varint(out, static_cast<uint64_t>(field) << 3 | wire_type); }

void put_bytes(std::string* out, int field, const std::string& bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  *out += bytes;
}

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const std::string& bytes) {
  const auto& t = crc_table();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) c = t[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const std::string& bytes) {
  const uint32_t c = crc32c(bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& data) {
  std::string len, out;
  put_le<uint64_t>(&len, data.size());
  out = len;
  put_le<uint32_t>(&out, masked_crc32c(len));
  out += data;
  put_le<uint32_t>(&out, masked_crc32c(data));
  return out;
}

namespace {
// Event{wall_time, step} and then either file_version (field 3) or summary (field 5).
std::string event_head(double wall, int64_t step) {
  std::string e;
  put_tag(&e, 1, 1);
  uint64_t bits = 0;
  std::memcpy(&bits, &wall, sizeof bits);
  put_le<uint64_t>(&e, bits);
  put_tag(&e, 2, 0);
  put_varint(&e, static_cast<uint64_t>(step));  // int64: negative values as 10-byte two's complement
  return e;
}
}  // namespace

std::string scalar_event(double wall, int64_t step, const std::vector<std::pair<std::string, float>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    put_bytes(&v, 1, tag);
    put_tag(&v, 2, 5);
    uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    put_le<uint32_t>(&v, bits);
    put_bytes(&summary, 1, v);
  }
  std::string e = event_head(wall, step);
  put_bytes(&e, 5, summary);
  return e;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  make_dirs(dir);
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  const double wall = wall_time();
  path_ = dir + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(wall)) + "." + host;
  // A second session started within the same second (a quick resume) appends to the same file: a later
  // file_version record mid-file is accepted by TensorBoard's reader.
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) fail("cannot write the TensorBoard event file {}", path_);
  std::string first = event_head(wall, 0);
  put_bytes(&first, 3, "brain.Event:2");
  out_ << tfrecord(first);
  out_.flush();
  if (!out_) fail("cannot write the TensorBoard event file {}", path_);
}

void TensorBoardWriter::scalars(int64_t step, const std::vector<std::pair<std::string, float>>& values) {
  out_ << tfrecord(scalar_event(wall_time(), step, values));
  out_.flush();
  if (!out_) fail("cannot write the TensorBoard event file {}", path_);
}

}  // namespace recur::train
