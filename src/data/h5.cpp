// See h5.h.
#include "data/h5.h"

#include <mutex>

#include "core/error.h"

namespace recur::h5 {

// HDF5's automatic error printing is a per-thread setting in a thread-safe build (Debian's is one), so
// every thread that calls HDF5 turns it off once.
void silence_errors() {
  thread_local bool silenced = false;
  if (silenced) return;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  silenced = true;
}

Handle create_file(const std::string& path) {
  silence_errors();
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) fail("cannot create HDF5 file {}", path);
  return Handle(id, H5Fclose);
}

void close_file(Handle& file, const std::string& path) {
  hid_t id = file.get();
  if (id < 0) return;
  bool ok = H5Fflush(id, H5F_SCOPE_GLOBAL) >= 0;
  file.reset();
  if (!ok) fail("cannot write {} (disk full?)", path);
}

Handle open_file(const std::string& path, bool writable) {
  silence_errors();
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    fail("{} is not a readable HDF5 file (missing, truncated or damaged header)", path);
  }
  hid_t id = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) fail("cannot open HDF5 file {}", path);
  return Handle(id, H5Fclose);
}

bool has_object(hid_t file, const std::string& name) {
  return H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0;
}

Handle open_dataset(hid_t file, const std::string& name, const std::string& file_path) {
  if (!has_object(file, name)) fail("{}: dataset '{}' is missing", file_path, name);
  hid_t id = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (id < 0) fail("{}: cannot open dataset '{}'", file_path, name);
  return Handle(id, H5Dclose);
}

hid_t unsigned_le_type(int bytes) {
  switch (bytes) {
    case 1: return H5T_STD_U8LE;
    case 2: return H5T_STD_U16LE;
    case 4: return H5T_STD_U32LE;
    case 8: return H5T_STD_U64LE;
  }
  fail("internal error: no unsigned type of {} bytes", bytes);
}

Handle create_extendible_1d(hid_t file, const std::string& name, hid_t type, uint64_t chunk, const std::string& file_path) {
  hsize_t dims[1] = {0};
  hsize_t maxdims[1] = {H5S_UNLIMITED};
  Handle space(H5Screate_simple(1, dims, maxdims), H5Sclose);
  Handle plist(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  hsize_t chunk_dims[1] = {chunk};
  if (space.get() < 0 || plist.get() < 0 || H5Pset_chunk(plist.get(), 1, chunk_dims) < 0) {
    fail("{}: cannot set up dataset '{}'", file_path, name);
  }
  hid_t id = H5Dcreate2(file, name.c_str(), type, space.get(), H5P_DEFAULT, plist.get(), H5P_DEFAULT);
  if (id < 0) fail("{}: cannot create dataset '{}'", file_path, name);
  return Handle(id, H5Dclose);
}

uint64_t extent_1d(hid_t dataset, const std::string& what) {
  Handle space(H5Dget_space(dataset), H5Sclose);
  if (space.get() < 0 || H5Sget_simple_extent_ndims(space.get()) != 1) fail("{}: expected a 1-D dataset", what);
  hsize_t dims[1];
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  return dims[0];
}

void append_1d(hid_t dataset, hid_t mem_type, const void* data, uint64_t count, const std::string& what) {
  if (count == 0) return;
  uint64_t old = extent_1d(dataset, what);
  hsize_t new_dims[1] = {old + count};
  if (H5Dset_extent(dataset, new_dims) < 0) fail("{}: cannot grow dataset (disk full?)", what);
  Handle file_space(H5Dget_space(dataset), H5Sclose);
  hsize_t start[1] = {old}, n[1] = {count};
  Handle mem_space(H5Screate_simple(1, n, nullptr), H5Sclose);
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, n, nullptr) < 0 ||
      H5Dwrite(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data) < 0) {
    fail("{}: write failed (disk full?)", what);
  }
}

void write_1d(hid_t file, const std::string& name, hid_t file_type, hid_t mem_type, const void* data, uint64_t count,
              const std::string& file_path) {
  hsize_t dims[1] = {count};
  Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  Handle ds(H5Dcreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (ds.get() < 0) fail("{}: cannot create dataset '{}'", file_path, name);
  if (count && H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    fail("{}: cannot write dataset '{}' (disk full?)", file_path, name);
  }
}

void read_1d(hid_t dataset, hid_t mem_type, void* out, uint64_t count, const std::string& what) {
  if (extent_1d(dataset, what) != count) fail("{}: expected {} elements, found {}", what, count, extent_1d(dataset, what));
  if (count && H5Dread(dataset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) fail("{}: read failed", what);
}

void write_attr_u64(hid_t obj, const std::string& name, uint64_t value, const std::string& what) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name.c_str(), H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (attr.get() < 0 || H5Awrite(attr.get(), H5T_NATIVE_UINT64, &value) < 0) fail("{}: cannot write attribute '{}'", what, name);
}

void write_attr_string(hid_t obj, const std::string& name, const std::string& value, const std::string& what) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), value.empty() ? 1 : value.size());
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  if (attr.get() < 0 || H5Awrite(attr.get(), type.get(), padded.data()) < 0) {
    fail("{}: cannot write attribute '{}'", what, name);
  }
}

uint64_t read_attr_u64(hid_t obj, const std::string& name, const std::string& what) {
  if (H5Aexists(obj, name.c_str()) <= 0) fail("{}: attribute '{}' is missing", what, name);
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  uint64_t value = 0;
  if (attr.get() < 0 || H5Aread(attr.get(), H5T_NATIVE_UINT64, &value) < 0) fail("{}: cannot read attribute '{}'", what, name);
  return value;
}

std::string read_attr_string(hid_t obj, const std::string& name, const std::string& what) {
  if (H5Aexists(obj, name.c_str()) <= 0) fail("{}: attribute '{}' is missing", what, name);
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  if (attr.get() < 0 || type.get() < 0 || H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0) {
    fail("{}: attribute '{}' is not a fixed-length string", what, name);
  }
  std::string value(H5Tget_size(type.get()), '\0');
  if (H5Aread(attr.get(), type.get(), value.data()) < 0) fail("{}: cannot read attribute '{}'", what, name);
  value.resize(value.find('\0') == std::string::npos ? value.size() : value.find('\0'));
  return value;
}

namespace {
hid_t file_type_of(ElemType t) {
  switch (t) {
    case ElemType::kF32: return H5T_IEEE_F32LE;
    case ElemType::kF64: return H5T_IEEE_F64LE;
    case ElemType::kI64: return H5T_STD_I64LE;
    default: return H5T_STD_U8LE;
  }
}
hid_t mem_type_of(ElemType t) {
  switch (t) {
    case ElemType::kF32: return H5T_NATIVE_FLOAT;
    case ElemType::kF64: return H5T_NATIVE_DOUBLE;
    case ElemType::kI64: return H5T_NATIVE_INT64;
    default: return H5T_NATIVE_UINT8;
  }
}
}  // namespace

void write_array(hid_t file, const std::string& name, ElemType type, const std::vector<uint64_t>& dims, const void* data,
                 const std::string& file_path) {
  std::vector<hsize_t> d(dims.begin(), dims.end());
  if (d.empty()) d.push_back(1);
  Handle space(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), H5Sclose);
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  Handle ds(H5Dcreate2(file, name.c_str(), file_type_of(type), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (ds.get() < 0) fail("{}: cannot create dataset '{}'", file_path, name);
  if (H5Dwrite(ds.get(), mem_type_of(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    fail("{}: cannot write dataset '{}' (disk full?)", file_path, name);
  }
}

std::vector<uint64_t> array_dims(hid_t file, const std::string& name, const std::string& file_path) {
  Handle ds = open_dataset(file, name, file_path);
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail("{}: dataset '{}' has no readable shape", file_path, name);
  std::vector<hsize_t> d(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), d.data(), nullptr);
  return std::vector<uint64_t>(d.begin(), d.end());
}

std::vector<uint64_t> read_array(hid_t file, const std::string& name, ElemType type, void* out, uint64_t count,
                                 const std::string& file_path) {
  auto dims = array_dims(file, name, file_path);
  uint64_t n = 1;
  for (auto x : dims) n *= x;
  if (n != count) fail("{}: dataset '{}' holds {} elements, expected {}", file_path, name, n, count);
  Handle ds = open_dataset(file, name, file_path);
  if (count && H5Dread(ds.get(), mem_type_of(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
    fail("{}: cannot read dataset '{}'", file_path, name);
  }
  return dims;
}

ChunkMap chunk_map(hid_t dataset, const std::string& what) {
  ChunkMap map;
  Handle plist(H5Dget_create_plist(dataset), H5Pclose);
  if (plist.get() < 0 || H5Pget_layout(plist.get()) != H5D_CHUNKED) fail("{}: expected a chunked dataset", what);
  if (H5Pget_nfilters(plist.get()) != 0) fail("{}: compressed or filtered shards are not supported", what);
  hsize_t chunk[1];
  if (H5Pget_chunk(plist.get(), 1, chunk) != 1 || chunk[0] == 0) fail("{}: expected a 1-D chunked dataset", what);
  Handle type(H5Dget_type(dataset), H5Tclose);
  map.chunk_elems = chunk[0];
  map.elem_bytes = static_cast<int>(H5Tget_size(type.get()));
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_sign(type.get()) != H5T_SGN_NONE ||
      H5Tget_order(type.get()) != H5T_ORDER_LE) {
    fail("{}: expected little-endian unsigned integers", what);
  }
  uint64_t n = extent_1d(dataset, what);
  uint64_t chunks = (n + map.chunk_elems - 1) / map.chunk_elems;
  map.file_offsets.resize(chunks);
  for (uint64_t c = 0; c < chunks; ++c) {
    hsize_t coord[1] = {c * map.chunk_elems};
    unsigned filter_mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(dataset, coord, &filter_mask, &addr, &size) < 0 || addr == HADDR_UNDEF ||
        size != map.chunk_elems * map.elem_bytes) {
      fail("{}: chunk {} is missing or has the wrong size (truncated or damaged file)", what, c);
    }
    map.file_offsets[c] = addr;
  }
  return map;
}

}  // namespace recur::h5
