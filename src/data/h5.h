// Thin RAII wrappers over the HDF5 C API, used by shard and checkpoint files.
// Every failing call throws recur::Error naming the file and object; HDF5's own stack printing is off.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace recur::h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      closer_ = o.closer_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  void reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

void silence_errors();  // turns off HDF5's automatic error printing (idempotent)

Handle create_file(const std::string& path);             // truncates
// Flushes and closes a file written by us, failing (disk full, I/O error) instead of losing the error
// in a destructor.
void close_file(Handle& file, const std::string& path);
Handle open_file(const std::string& path, bool writable);
Handle open_dataset(hid_t file, const std::string& name, const std::string& file_path);
bool has_object(hid_t file, const std::string& name);

// A little-endian unsigned integer type of the given width in bytes (1, 2, 4 or 8).
hid_t unsigned_le_type(int bytes);

// Creates an extendible, chunked, uncompressed 1-D dataset of `type`.
Handle create_extendible_1d(hid_t file, const std::string& name, hid_t type, uint64_t chunk, const std::string& file_path);
// Appends `count` elements of `mem_type` at the end of a 1-D dataset (growing it).
void append_1d(hid_t dataset, hid_t mem_type, const void* data, uint64_t count, const std::string& what);
// Writes a whole fixed-size 1-D dataset.
void write_1d(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type, const void* data, uint64_t count,
              const std::string& file_path);
uint64_t extent_1d(hid_t dataset, const std::string& what);
void read_1d(hid_t dataset, hid_t mem_type, void* out, uint64_t count, const std::string& what);

void write_attr_u64(hid_t obj, const std::string& name, uint64_t value, const std::string& what);
void write_attr_string(hid_t obj, const std::string& name, const std::string& value, const std::string& what);
uint64_t read_attr_u64(hid_t obj, const std::string& name, const std::string& what);
std::string read_attr_string(hid_t obj, const std::string& name, const std::string& what);

// Whole n-d arrays of float32/float64/int64/uint8 (checkpoints): `name` may contain '/' (groups are
// created as needed). `dims` empty means a scalar stored as a 1-element array.
enum class ElemType { kF32, kF64, kI64, kU8 };
void write_array(hid_t file, const std::string& name, ElemType type, const std::vector<uint64_t>& dims, const void* data,
                 const std::string& file_path);
// Reads into `out` (whose size must match the stored element count); returns the stored dims.
std::vector<uint64_t> read_array(hid_t file, const std::string& name, ElemType type, void* out, uint64_t count,
                                 const std::string& file_path);
std::vector<uint64_t> array_dims(hid_t file, const std::string& name, const std::string& file_path);

// File offsets of the chunks of an uncompressed chunked 1-D dataset, in element order, so readers can
// mmap the file and copy tokens without going through HDF5 on the hot path.
struct ChunkMap {
  uint64_t chunk_elems = 0;
  int elem_bytes = 0;
  std::vector<uint64_t> file_offsets;
};
ChunkMap chunk_map(hid_t dataset, const std::string& what);

}  // namespace recur::h5
