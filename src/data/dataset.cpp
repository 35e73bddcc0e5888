// See dataset.h. Shards are mapped read-only once at open; reads never call HDF5, so any number of
// loader threads may read concurrently. A shard truncated under the mapping raises SIGBUS on the
// reading thread: the copy runs under a per-thread guard that turns it into an Error naming the file.
#include "data/dataset.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/progress.h"
#include "data/h5.h"

namespace recur::data {

using nlohmann::json;

namespace {

// The mapped range this thread is copying from, and where to return if the file shrinks under it.
struct MapGuard {
  sigjmp_buf jump;
  const uint8_t* begin;
  const uint8_t* end;
};
thread_local MapGuard* t_map_guard = nullptr;
struct sigaction g_previous_sigbus;

void on_sigbus(int, siginfo_t* info, void*) {
  MapGuard* g = t_map_guard;
  const auto* addr = static_cast<const uint8_t*>(info->si_addr);
  if (g && addr >= g->begin && addr < g->end) siglongjmp(g->jump, 1);
  // Not a guarded read: put the previous disposition back and meet it (raised again for a SIGBUS that
  // was sent rather than caused by an access, which would not repeat).
  ::sigaction(SIGBUS, &g_previous_sigbus, nullptr);
  ::raise(SIGBUS);
}

void install_sigbus_guard() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_previous_sigbus);
  });
}

template <typename T>
uint64_t widen(const uint8_t* src, uint64_t n, int64_t* out) {
  const auto* p = reinterpret_cast<const T*>(src);
  uint64_t hi = 0;
  for (uint64_t i = 0; i < n; ++i) {
    out[i] = static_cast<int64_t>(p[i]);
    hi = std::max<uint64_t>(hi, p[i]);
  }
  return hi;
}

// Copies `n` elements and returns the largest; kept free of objects with destructors because a
// SIGBUS inside it leaves by siglongjmp.
uint64_t copy_elements(const uint8_t* src, int elem_bytes, uint64_t n, int64_t* out) {
  switch (elem_bytes) {
    case 1: return widen<uint8_t>(src, n, out);
    case 2: return widen<uint16_t>(src, n, out);
    case 4: return widen<uint32_t>(src, n, out);
    default: return widen<uint64_t>(src, n, out);
  }
}

// Names the first of `tokens[0, n)` that is not below `vocab`; `first` is the shard position of tokens[0].
[[noreturn]] void fail_outside_vocabulary(const std::string& where, const int64_t* tokens, uint64_t n, uint64_t first,
                                          uint64_t vocab) {
  const int64_t* bad = std::find_if(tokens, tokens + n, [&](int64_t v) { return static_cast<uint64_t>(v) >= vocab; });
  fail("{}: token {} at position {} of the shard is outside the vocabulary of {} symbols (damaged or edited shard, or "
       "manifest)", where, *bad, first + static_cast<uint64_t>(bad - tokens), vocab);
}

}  // namespace

void MappedArray::read(uint64_t begin, uint64_t count, int64_t* out) const {
  MapGuard guard;
  guard.begin = base;
  guard.end = base + map_size;
  MapGuard* const outer = t_map_guard;
  if (sigsetjmp(guard.jump, 1)) {
    t_map_guard = outer;
    uint64_t now = path_exists(path) ? file_size(path) : 0;
    fail("{}: the shard changed while it was being read (now {} bytes, {} when opened): it was truncated or "
         "overwritten during the run; restore it (e.g. recreate the dataset) and resume",
         path, now, map_size);
  }
  t_map_guard = &guard;
  uint64_t hi = 0, first = begin;
  int64_t* dst = out;
  while (count > 0) {
    uint64_t c = begin / chunk_elems;
    uint64_t within = begin % chunk_elems;
    uint64_t n = std::min(count, chunk_elems - within);
    hi = std::max(hi, copy_elements(base + chunk_offsets[c] + within * elem_bytes, elem_bytes, n, dst));
    dst += n;
    begin += n;
    count -= n;
  }
  t_map_guard = outer;
  if (limit && hi >= limit && dst > out) fail_outside_vocabulary(path, out, static_cast<uint64_t>(dst - out), first, limit);
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

// Reads a small file of the dataset (manifest, vocabulary), refusing devices and FIFOs that would
// never end.
std::string read_dataset_file(const std::string& path, const std::string& what) {
  if (!path_exists(path)) fail("{}: {} is missing", path, what);
  if (!is_regular_file(path)) fail("{}: {} is not a regular file (a device, FIFO or directory?)", path, what);
  return read_file(path);
}

Manifest read_manifest(const std::string& dir) {
  if (!is_directory(dir)) fail("{} is not a dataset directory (it does not exist or is not a directory)", dir);
  std::string path = dir + "/manifest.json";
  if (!path_exists(path)) {
    fail("{} is not a dataset: {} is missing (create one with `recur shard` or `recur gen`)", dir, path);
  }
  json j;
  try {
    j = json::parse(read_dataset_file(path, "manifest"));
  } catch (const json::parse_error& e) {
    fail("{}: manifest is not valid JSON: {}", path, e.what());
  }
  return Manifest::from_json(j, path);
}

std::string read_vocab_file(const std::string& dir, const Manifest& m) {
  std::string path = dir + "/" + m.vocab.file;
  std::string text = read_dataset_file(path, "vocabulary file");
  if (checksum_bytes(text.data(), text.size()) != m.vocab.file_checksum) {
    fail("{}: checksum does not match the manifest (damaged vocabulary file)", path);
  }
  return text;
}

// A shard must be a regular file of the listed size before anything reads it.
void check_shard_file(const std::string& path, const ShardInfo& si) {
  if (!path_exists(path)) fail("{}: shard file is missing", path);
  if (!is_regular_file(path)) fail("{}: shard is not a regular file (a device, FIFO or directory?)", path);
  uint64_t size = file_size(path);
  if (size != si.file_size) {
    fail("{}: file is {} bytes, the manifest says {} (truncated or replaced shard)", path, size, si.file_size);
  }
}

MappedArray map_array(hid_t file, const std::string& name, size_t map_size, uint64_t expected, const std::string& path) {
  h5::Handle ds = h5::open_dataset(file, name, path);
  std::string what = path + ":/" + name;
  uint64_t length = h5::extent_1d(ds.get(), what);
  if (length != expected) fail("{}: holds {} elements, the manifest says {}", what, length, expected);
  h5::ChunkMap cm = h5::chunk_map(ds.get(), what);
  MappedArray a;
  a.path = path;
  a.map_size = map_size;
  a.length = length;
  a.chunk_elems = cm.chunk_elems;
  a.elem_bytes = cm.elem_bytes;
  a.chunk_offsets = cm.file_offsets;
  for (uint64_t off : a.chunk_offsets) {
    if (off + a.chunk_elems * a.elem_bytes > map_size) fail("{}: chunk lies beyond the end of the file (truncated?)", what);
  }
  return a;
}

// What a reader relies on in one shard, checked without reading its tokens: attributes naming this
// split and position, chunk layout and width of every array, and (examples layout) a valid /offsets.
struct ShardLayout {
  MappedArray tokens, label_sets, loss_mask;
  std::vector<uint64_t> offsets;
};

ShardLayout check_shard_layout(hid_t f, const std::string& path, const Manifest& m, const std::string& split, size_t i,
                               const ShardInfo& si) {
  {
    h5::Handle tokens = h5::open_dataset(f, "tokens", path);
    std::string what = path + ":/tokens";
    if (h5::read_attr_string(tokens.get(), "split", what) != split ||
        h5::read_attr_u64(tokens.get(), "shard_index", what) != i ||
        h5::read_attr_u64(tokens.get(), "first_token", what) != si.first_token ||
        h5::read_attr_u64(tokens.get(), "token_count", what) != si.tokens ||
        h5::read_attr_string(tokens.get(), "checksum", what) != si.checksum) {
      fail("{}: shard attributes do not match the manifest entry for split '{}' shard {}", path, split, i);
    }
  }
  ShardLayout l;
  l.tokens = map_array(f, "tokens", si.file_size, si.tokens, path);
  l.tokens.limit = m.vocab.size;
  if (l.tokens.elem_bytes != m.token_bytes) {
    fail("{}: tokens are uint{}, the manifest says uint{}", path, 8 * l.tokens.elem_bytes, 8 * m.token_bytes);
  }
  if (m.layout != Layout::kExamples) return l;
  if (!h5::has_object(f, "offsets")) fail("{}: /offsets is missing (an examples dataset needs one per shard)", path);
  h5::Handle off = h5::open_dataset(f, "offsets", path);
  l.offsets.resize(si.examples + 1);
  h5::read_1d(off.get(), H5T_NATIVE_UINT64, l.offsets.data(), l.offsets.size(), path + ":/offsets");
  if (l.offsets.front() != 0 || l.offsets.back() != si.tokens || !std::is_sorted(l.offsets.begin(), l.offsets.end())) {
    fail("{}:/offsets are not a valid example index for {} tokens", path, si.tokens);
  }
  for (const auto& field : m.example_fields) {
    (field == "label_sets" ? l.label_sets : l.loss_mask) = map_array(f, field, si.file_size, si.tokens, path);
  }
  return l;
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
  install_sigbus_guard();
  std::shared_ptr<Dataset> ds(new Dataset());
  ds->dir_ = dir;
  ds->manifest_ = read_manifest(dir);
  const Manifest& m = ds->manifest_;
  if (!m.vocab.file.empty()) read_vocab_file(dir, m);
  for (const auto& [name, info] : m.splits) {
    Split& split = ds->splits_[name];
    split.name_ = name;
    split.info_ = &info;
    for (size_t i = 0; i < info.shards.size(); ++i) {
      const ShardInfo& si = info.shards[i];
      split.shards_.emplace_back();
      Split::Shard& s = split.shards_.back();
      s.path = dir + "/" + si.file;
      s.info = &si;
      check_shard_file(s.path, si);
      ShardLayout layout;
      {
        h5::Handle f = h5::open_file(s.path, false);
        layout = check_shard_layout(f.get(), s.path, m, name, i, si);
      }
      int fd = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) fail("cannot open {}: {}", s.path, std::strerror(errno));
      s.map_size = si.file_size;
      void* map = s.map_size ? ::mmap(nullptr, s.map_size, PROT_READ, MAP_SHARED, fd, 0) : nullptr;
      ::close(fd);
      if (map == MAP_FAILED) fail("cannot map {}: {}", s.path, std::strerror(errno));
      s.map = map;
      ::madvise(s.map, s.map_size, MADV_WILLNEED);
      const auto* base = static_cast<const uint8_t*>(s.map);
      for (MappedArray* a : {&layout.tokens, &layout.label_sets, &layout.loss_mask}) {
        if (a->elem_bytes) a->base = base;
      }
      s.tokens = std::move(layout.tokens);
      s.label_sets = std::move(layout.label_sets);
      s.loss_mask = std::move(layout.loss_mask);
      s.offsets = std::move(layout.offsets);
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
  std::string text = read_vocab_file(dir_, manifest_);
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
      read_vocab_file(dir, m);
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  for (const auto& [name, info] : m.splits) {
    for (size_t i = 0; i < info.shards.size(); ++i) {
      const ShardInfo& sh = info.shards[i];
      std::string path = dir + "/" + sh.file;
      try {
        check_shard_file(path, sh);
        uint64_t size = 0;
        std::string file_sum = checksum_file(path, &size);
        if (size != sh.file_size) fail("{}: file is {} bytes, the manifest says {} (truncated?)", path, size, sh.file_size);
        if (file_sum != sh.file_checksum) {
          fail("{}: file checksum {} does not match the manifest's {} (damaged shard)", path, file_sum, sh.file_checksum);
        }
        h5::Handle f = h5::open_file(path, false);
        check_shard_layout(f.get(), path, m, name, i, sh);
        h5::Handle tokens = h5::open_dataset(f.get(), "tokens", path);
        std::string what = path + ":/tokens";
        std::vector<uint8_t> buf;
        if (sh.tokens) {
          buf.resize(sh.tokens * m.token_bytes);
          if (H5Dread(tokens.get(), h5::unsigned_le_type(m.token_bytes), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0) {
            fail("{}: cannot read tokens", what);
          }
        }
        std::string token_sum = checksum_bytes(buf.data(), buf.size());
        if (token_sum != sh.checksum) fail("{}: token checksum {} does not match the manifest's {}", what, token_sum, sh.checksum);
        // The same range check a training read makes, over the whole shard.
        std::vector<int64_t> block(std::min<uint64_t>(sh.tokens, 1u << 20));
        for (uint64_t pos = 0; pos < sh.tokens; pos += block.size()) {
          uint64_t n = std::min<uint64_t>(block.size(), sh.tokens - pos);
          if (copy_elements(buf.data() + pos * m.token_bytes, m.token_bytes, n, block.data()) >= m.vocab.size) {
            fail_outside_vocabulary(what, block.data(), n, pos, m.vocab.size);
          }
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
