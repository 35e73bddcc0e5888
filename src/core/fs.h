// Crash-safe file-system helpers: build output in a temporary sibling, fsync, then rename into place.
// Invariant: a path that exists under its final name is complete; partial work only ever lives in *.tmp.*.
#pragma once

#include <cstdint>
#include <string>

namespace recur {

// A directory named "<final>.tmp.<pid>" that is removed on destruction unless commit() succeeded.
class StagingDir {
 public:
  explicit StagingDir(std::string final_path, bool replace_existing = false);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::string& path() const { return tmp_; }
  const std::string& final_path() const { return final_; }
  // fsyncs every file, renames the directory to its final name and fsyncs the parent.
  void commit();

 private:
  std::string final_;
  std::string tmp_;
  bool replace_;
  bool committed_ = false;
};

void fsync_path(const std::string& path);              // file or directory
void fsync_tree(const std::string& dir);               // every regular file below dir, then dir itself
void write_file_atomic(const std::string& path, const std::string& contents);
std::string read_file(const std::string& path);        // throws naming the path
uint64_t file_size(const std::string& path);           // throws naming the path
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);          // follows symlinks; false for devices, FIFOs, sockets
std::string parent_dir(const std::string& path);
std::string expand_user(const std::string& path);       // leading "~/" -> $HOME/
std::string absolute_path(const std::string& path);     // lexically normalised, need not exist
std::string join_path(const std::string& dir, const std::string& name);  // name if absolute
void make_dirs(const std::string& path);
void remove_tree(const std::string& path) noexcept;

}  // namespace recur
