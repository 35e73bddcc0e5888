// Helpers shared by the data-layer tests: scratch directories under /tmp, small files, damaging files
// on purpose, and capturing recur::Error messages. Invariant: every scratch path is removed by its owner.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "data/corpora.h"
#include "data/dataset.h"

namespace recur::test {

// Compare a list of problems or directory entries against this to see them printed on failure.
inline const std::vector<std::string> kNoLines;

// A fresh directory /tmp/recur-test-<tag>-<pid>-<n>, removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path_ = "/tmp/recur-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    remove_tree(path_);
    make_dirs(path_);
  }
  ~TempDir() { remove_tree(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The names in `dir` (not "." or ".."), sorted.
inline std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// Names in `dir` that contain `part` (e.g. ".tmp." for leftover staging directories).
inline std::vector<std::string> entries_containing(const std::string& dir, const std::string& part) {
  std::vector<std::string> out;
  for (const auto& n : list_dir(dir)) {
    if (n.find(part) != std::string::npos) out.push_back(n);
  }
  return out;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size()) << path;
  ASSERT_EQ(std::fclose(f), 0) << path;
}

// XORs the byte at `offset` of `path` with `mask` in place; returns the new value.
inline uint8_t flip_byte(const std::string& path, uint64_t offset, uint8_t mask = 0x5a) {
  std::FILE* f = std::fopen(path.c_str(), "r+b");
  if (!f) throw Error("flip_byte: cannot open " + path);
  std::fseek(f, static_cast<long>(offset), SEEK_SET);
  int old = std::fgetc(f);
  if (old == EOF) {
    std::fclose(f);
    throw Error("flip_byte: offset beyond the end of " + path);
  }
  uint8_t now = static_cast<uint8_t>(old ^ mask);
  std::fseek(f, static_cast<long>(offset), SEEK_SET);
  std::fputc(now, f);
  std::fclose(f);
  return now;
}

inline void truncate_file(const std::string& path, uint64_t size) {
  if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) throw Error("truncate_file: cannot truncate " + path);
}

// The message of the recur::Error `fn` throws, or a marker that no (or another) exception came,
// so that HasSubstr assertions on the result fail with a readable message.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<not a recur::Error: ") + e.what() + ">";
  }
  return "<no error thrown>";
}

// Everything dump_split writes for one split.
inline std::string dump_to_string(const data::Dataset& ds, const std::string& split) {
  char* buf = nullptr;
  size_t size = 0;
  std::FILE* f = ::open_memstream(&buf, &size);
  if (!f) throw Error("open_memstream failed");
  try {
    data::dump_split(ds, split, f);
  } catch (...) {
    std::fclose(f);
    std::free(buf);
    throw;
  }
  std::fclose(f);
  std::string out(buf, size);
  std::free(buf);
  return out;
}

inline std::string dump_all_splits(const std::string& dir) {
  auto ds = data::Dataset::open(dir, true);
  return dump_to_string(*ds, "train") + dump_to_string(*ds, "valid") + dump_to_string(*ds, "test");
}

inline std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

}  // namespace recur::test
