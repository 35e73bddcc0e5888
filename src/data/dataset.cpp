// See dataset.h. Shards are mapped read-only once at open; reads never call HDF5, so any number of
// loader threads may read concurrently.
#include "data/dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/progress.h"
#include "data/h5.h"

namespace recur::data {

using nlohmann::json;

void MappedArray::read(uint64_t begin, uint64_t count, int64_t* out) const {
  while (count > 0) {
    uint64_t c = begin / chunk_elems;
    uint64_t within = begin % chunk_elems;
    uint64_t n = std::min(count, chunk_elems - within);
    const uint8_t* src = base + chunk_offsets[c] + within * elem_bytes;
    switch (elem_bytes) {
      case 1: for (uint64_t i = 0; i < n; ++i) out[i] = src[i]; break;
      case 2: {
        const auto* p = reinterpret_cast<const uint16_t*>(src);
        for (uint64_t i = 0; i < n; ++i) out[i] = p[i];
        break;
      }
      case 4: {
        const auto* p = reinterpret_cast<const uint32_t*>(src);
        for (uint64_t i = 0; i < n; ++i) out[i] = p[i];
        break;
      }
      default: {
        const auto* p = reinterpret_cast<const uint64_t*>(src);
        for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<int64_t>(p[i]);
      }
    }
    out += n;
    begin += n;
    count -= n;
  }
}

size_t Split::shard_of_token(uint64_t global) const {
  auto it = std::upper_bound(shards_.begin(), shards_.end(), global,
                             [](uint64_t g, const Shard& s) { return g < s.info->first_token; });
  return static_cast<size_t>(it - shards_.begin()) - 1;
}

size_t Split::shard_of_example(uint64_t index) const {
  auto it = std::upper_bound(shards_.begin(), shards_.end(), index,
                             [](uint64_t g, const Shard& s) { return g < s.info->first_example; });
  return static_cast<size_t>(it - shards_.begin()) - 1;
}

void Split::read_tokens(uint64_t begin, uint64_t count, int64_t* out) const {
  if (begin + count > info_->tokens || begin + count < begin) {
    fail("read of tokens [{}, {}) is outside split '{}' of {} tokens", begin, begin + count, name_, info_->tokens);
  }
  while (count > 0) {
    const Shard& s = shards_[shard_of_token(begin)];
    uint64_t local = begin - s.info->first_token;
    uint64_t n = std::min(count, s.info->tokens - local);
    s.tokens.read(local, n, out);
    out += n;
    begin += n;
    count -= n;
  }
}

uint64_t Split::example_length(uint64_t index) const {
  if (index >= info_->examples) fail("example {} is outside split '{}' of {} examples", index, name_, info_->examples);
  const Shard& s = shards_[shard_of_example(index)];
  uint64_t local = index - s.info->first_example;
  return s.offsets[local + 1] - s.offsets[local];
}

ExampleView Split::read_example(uint64_t index) const {
  if (index >= info_->examples) fail("example {} is outside split '{}' of {} examples", index, name_, info_->examples);
  const Shard& s = shards_[shard_of_example(index)];
  uint64_t local = index - s.info->first_example;
  uint64_t begin = s.offsets[local], n = s.offsets[local + 1] - begin;
  ExampleView v;
  v.tokens.resize(n);
  s.tokens.read(begin, n, v.tokens.data());
  if (s.label_sets.base) {
    v.label_sets.resize(n);
    s.label_sets.read(begin, n, v.label_sets.data());
  }
  if (s.loss_mask.base) {
    v.loss_mask.resize(n);
    s.loss_mask.read(begin, n, v.loss_mask.data());
  }
  return v;
}

namespace {

Manifest read_manifest(const std::string& dir) {
  if (!is_directory(dir)) fail("{} is not a dataset directory (it does not exist or is not a directory)", dir);
  std::string path = dir + "/manifest.json";
  if (!path_exists(path)) {
    fail("{} is not a dataset: {} is missing (create one with `recur shard` or `recur gen`)", dir, path);
  }
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::parse_error& e) {
    fail("{}: manifest is not valid JSON: {}", path, e.what());
  }
  return Manifest::from_json(j, path);
}

MappedArray map_array(hid_t file, const std::string& name, const uint8_t* base, size_t map_size, uint64_t expected,
                      const std::string& path) {
  h5::Handle ds = h5::open_dataset(file, name, path);
  std::string what = path + ":/" + name;
  uint64_t length = h5::extent_1d(ds.get(), what);
  if (length != expected) fail("{}: holds {} elements, the manifest says {}", what, length, expected);
  h5::ChunkMap cm = h5::chunk_map(ds.get(), what);
  MappedArray a;
  a.base = base;
  a.length = length;
  a.chunk_elems = cm.chunk_elems;
  a.elem_bytes = cm.elem_bytes;
  a.chunk_offsets = cm.file_offsets;
  for (uint64_t off : a.chunk_offsets) {
    if (off + a.chunk_elems * a.elem_bytes > map_size) fail("{}: chunk lies beyond the end of the file (truncated?)", what);
  }
  return a;
}

}  // namespace

Dataset::~Dataset() {
  for (auto& [name, split] : splits_) {
    for (auto& s : split.shards_) {
      if (s.map) ::munmap(s.map, s.map_size);
    }
  }
}

std::shared_ptr<Dataset> Dataset::open(const std::string& dir, bool verify_checksums) {
  std::shared_ptr<Dataset> ds(new Dataset());
  ds->dir_ = dir;
  ds->manifest_ = read_manifest(dir);
  const Manifest& m = ds->manifest_;
  if (!m.vocab.file.empty()) {
    std::string vpath = dir + "/" + m.vocab.file;
    std::string text = read_file(vpath);
    if (checksum_bytes(text.data(), text.size()) != m.vocab.file_checksum) {
      fail("{}: checksum does not match the manifest (damaged vocabulary file)", vpath);
    }
  }
  for (const auto& [name, info] : m.splits) {
    Split& split = ds->splits_[name];
    split.name_ = name;
    split.info_ = &info;
    for (size_t i = 0; i < info.shards.size(); ++i) {
      const ShardInfo& si = info.shards[i];
      Split::Shard s;
      s.path = dir + "/" + si.file;
      s.info = &si;
      if (!path_exists(s.path)) fail("{}: shard file is missing (listed in {}/manifest.json)", s.path, dir);
      uint64_t size = file_size(s.path);
      if (size != si.file_size) {
        fail("{}: file is {} bytes, the manifest says {} (truncated or replaced shard)", s.path, size, si.file_size);
      }
      h5::Handle f = h5::open_file(s.path, false);
      {
        h5::Handle tokens = h5::open_dataset(f.get(), "tokens", s.path);
        std::string what = s.path + ":/tokens";
        if (h5::read_attr_string(tokens.get(), "split", what) != name ||
            h5::read_attr_u64(tokens.get(), "shard_index", what) != i ||
            h5::read_attr_u64(tokens.get(), "first_token", what) != si.first_token ||
            h5::read_attr_u64(tokens.get(), "token_count", what) != si.tokens ||
            h5::read_attr_string(tokens.get(), "checksum", what) != si.checksum) {
          fail("{}: shard attributes do not match the manifest entry for split '{}' shard {}", s.path, name, i);
        }
      }
      int fd = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) fail("cannot open {}: {}", s.path, std::strerror(errno));
      s.map_size = size;
      s.map = size ? ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0) : nullptr;
      ::close(fd);
      if (s.map == MAP_FAILED) fail("cannot map {}: {}", s.path, std::strerror(errno));
      ::madvise(s.map, size, MADV_WILLNEED);
      const auto* base = static_cast<const uint8_t*>(s.map);
      split.shards_.push_back(std::move(s));
      Split::Shard& shard = split.shards_.back();
      shard.tokens = map_array(f.get(), "tokens", base, size, si.tokens, shard.path);
      if (shard.tokens.elem_bytes != m.token_bytes) {
        fail("{}: tokens are uint{}, the manifest says uint{}", shard.path, 8 * shard.tokens.elem_bytes, 8 * m.token_bytes);
      }
      if (m.layout == Layout::kExamples) {
        h5::Handle off = h5::open_dataset(f.get(), "offsets", shard.path);
        shard.offsets.resize(si.examples + 1);
        h5::read_1d(off.get(), H5T_NATIVE_UINT64, shard.offsets.data(), shard.offsets.size(), shard.path + ":/offsets");
        if (shard.offsets.front() != 0 || shard.offsets.back() != si.tokens ||
            !std::is_sorted(shard.offsets.begin(), shard.offsets.end())) {
          fail("{}:/offsets are not a valid example index for {} tokens", shard.path, si.tokens);
        }
        for (const auto& field : m.example_fields) {
          MappedArray a = map_array(f.get(), field, base, size, si.tokens, shard.path);
          (field == "label_sets" ? shard.label_sets : shard.loss_mask) = a;
        }
      }
    }
  }
  if (verify_checksums) {
    auto problems = verify_dataset(dir, false);
    if (!problems.empty()) fail("dataset {} failed verification: {}", dir, problems.front());
  }
  return ds;
}

const Split& Dataset::split(const std::string& name) const {
  manifest_.split(name, dir_ + "/manifest.json");
  return splits_.at(name);
}

std::vector<std::string> Dataset::symbols() const {
  if (manifest_.vocab.bytes) {
    std::vector<std::string> out(256);
    for (int b = 0; b < 256; ++b) out[b] = std::string(1, static_cast<char>(b));
    return out;
  }
  if (manifest_.vocab.file.empty()) return manifest_.vocab.symbols;
  std::vector<std::string> out;
  std::string text = read_file(dir_ + "/" + manifest_.vocab.file);
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  if (out.size() != manifest_.vocab.size) {
    fail("{}/{}: holds {} symbols, the manifest says {}", dir_, manifest_.vocab.file, out.size(), manifest_.vocab.size);
  }
  return out;
}

std::vector<std::string> verify_dataset(const std::string& dir, bool progress) {
  std::vector<std::string> problems;
  Manifest m;
  try {
    m = read_manifest(dir);
  } catch (const Error& e) {
    return {e.what()};
  }
  uint64_t total = 0;
  for (const auto& [name, info] : m.splits) {
    for (const auto& sh : info.shards) total += sh.file_size;
  }
  Progress bar("verify " + dir, total, "B");
  uint64_t done = 0;
  if (!m.vocab.file.empty()) {
    try {
      std::string text = read_file(dir + "/" + m.vocab.file);
      if (checksum_bytes(text.data(), text.size()) != m.vocab.file_checksum) {
        problems.push_back(fmt::format("{}/{}: checksum mismatch (damaged vocabulary file)", dir, m.vocab.file));
      }
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  for (const auto& [name, info] : m.splits) {
    for (const auto& sh : info.shards) {
      std::string path = dir + "/" + sh.file;
      try {
        if (!path_exists(path)) fail("{}: shard file is missing", path);
        uint64_t size = 0;
        std::string file_sum = checksum_file(path, &size);
        if (size != sh.file_size) fail("{}: file is {} bytes, the manifest says {} (truncated?)", path, size, sh.file_size);
        if (file_sum != sh.file_checksum) {
          fail("{}: file checksum {} does not match the manifest's {} (damaged shard)", path, file_sum, sh.file_checksum);
        }
        h5::Handle f = h5::open_file(path, false);
        h5::Handle tokens = h5::open_dataset(f.get(), "tokens", path);
        std::string what = path + ":/tokens";
        if (h5::extent_1d(tokens.get(), what) != sh.tokens) fail("{}: token count differs from the manifest", what);
        std::vector<uint8_t> buf;
        if (sh.tokens) {
          buf.resize(sh.tokens * m.token_bytes);
          if (H5Dread(tokens.get(), h5::unsigned_le_type(m.token_bytes), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0) {
            fail("{}: cannot read tokens", what);
          }
        }
        std::string token_sum = checksum_bytes(buf.data(), buf.size());
        if (token_sum != sh.checksum) fail("{}: token checksum {} does not match the manifest's {}", what, token_sum, sh.checksum);
        if (h5::read_attr_string(tokens.get(), "checksum", what) != sh.checksum) {
          fail("{}: checksum attribute does not match the manifest", what);
        }
      } catch (const Error& e) {
        problems.push_back(e.what());
      }
      done += sh.file_size;
      if (progress) bar.update(done);
    }
  }
  if (progress) bar.finish();
  return problems;
}

}  // namespace recur::data
