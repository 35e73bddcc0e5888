// See fs.h. Uses POSIX calls directly because std::filesystem has no fsync.
#include "core/fs.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <mutex>
#include <vector>

#include "core/error.h"

// No std::filesystem here on purpose: libtorch.so exports its own copies of some std::filesystem
// symbols, which interpose on libstdc++'s in every binary that links LibTorch and crash
// (seen with remove_all). POSIX calls avoid the clash.

namespace recur {

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open {} to fsync: {}", path, std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) fail("fsync failed on {}: {}", path, std::strerror(err));
}

namespace {
std::vector<std::string>* g_walk = nullptr;  // nftw has no user pointer; only used under walk()

std::vector<std::string> walk(const std::string& dir, bool depth_first) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::vector<std::string> out;
  g_walk = &out;
  ::nftw(dir.c_str(), [](const char* p, const struct stat*, int type, struct FTW*) {
    if (type == FTW_F || type == FTW_D || type == FTW_DP || type == FTW_SL) g_walk->push_back(p);
    return 0;
  }, 32, FTW_PHYS | (depth_first ? FTW_DEPTH : 0));
  g_walk = nullptr;
  return out;
}
}  // namespace

void fsync_tree(const std::string& dir) {
  for (const auto& p : walk(dir, false)) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) fsync_path(p);
  }
  fsync_path(dir);
}

std::string expand_user(const std::string& path) {
  const char* home = std::getenv("HOME");
  if (home && (path == "~" || path.rfind("~/", 0) == 0)) return std::string(home) + path.substr(1);
  return path;
}

std::string absolute_path(const std::string& path) {
  std::string p = path;
  if (p.empty() || p[0] != '/') {
    char cwd[PATH_MAX];
    if (!::getcwd(cwd, sizeof cwd)) fail("cannot determine the current directory: {}", std::strerror(errno));
    p = std::string(cwd) + "/" + p;
  }
  // Normalise "//", "/./" and "/../" lexically.
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string part = p.substr(i, j - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = j + 1;
  }
  std::string out;
  for (const auto& part : parts) out += "/" + part;
  return out.empty() ? "/" : out;
}

std::string parent_dir(const std::string& path) {
  std::string p = absolute_path(path);
  size_t slash = p.rfind('/');
  return slash == 0 ? "/" : p.substr(0, slash);
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (!name.empty() && name[0] == '/') return name;
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void make_dirs(const std::string& path) {
  std::string p = absolute_path(path);
  for (size_t i = 1; i <= p.size(); ++i) {
    if (i == p.size() || p[i] == '/') {
      std::string prefix = p.substr(0, i);
      if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
        fail("cannot create directory {}: {}", prefix, std::strerror(errno));
      }
    }
  }
  if (!is_directory(p)) fail("cannot create directory {}: a file is in the way", p);
}

void remove_tree(const std::string& path) noexcept {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISDIR(st.st_mode)) {
    ::unlink(path.c_str());
    return;
  }
  try {
    for (const auto& p : walk(path, true)) {
      if (::rmdir(p.c_str()) != 0) ::unlink(p.c_str());
    }
  } catch (...) {
  }
}

uint64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("cannot stat {}: {}", path, std::strerror(errno));
  return static_cast<uint64_t>(st.st_size);
}

std::string read_file(const std::string& path) {
  struct stat st {};
  // A device never ends (/dev/zero): refuse it rather than read until memory runs out.
  if (::stat(path.c_str(), &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
    fail("{} is a device, not a file", path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {} for reading: {}", path, std::strerror(errno));
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) fail("read error on {}", path);
  return out.str();
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("cannot create {}: {}", tmp, std::strerror(errno));
    size_t done = 0;
    while (done < contents.size()) {
      ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        fail("cannot write {}: {}", tmp, std::strerror(err));
      }
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      fail("cannot flush {}: {}", tmp, std::strerror(err));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot rename {} to {}: {}", tmp, path, std::strerror(err));
  }
  fsync_path(parent_dir(path));
}

StagingDir::StagingDir(std::string final_path, bool replace_existing)
    : final_(absolute_path(final_path)), replace_(replace_existing) {
  if (path_exists(final_) && !replace_) {
    fail("{} already exists; remove it or pass --force to replace it", final_);
  }
  make_dirs(parent_dir(final_));
  tmp_ = final_ + ".tmp." + std::to_string(::getpid());
  remove_tree(tmp_);
  make_dirs(tmp_);
}

StagingDir::~StagingDir() {
  if (!committed_) remove_tree(tmp_);
}

void StagingDir::commit() {
  fsync_tree(tmp_);
  std::string old;
  if (path_exists(final_)) {
    // Move the old version aside first so that a crash between the two renames keeps one of them.
    old = final_ + ".old." + std::to_string(::getpid());
    if (::rename(final_.c_str(), old.c_str()) != 0)
      fail("cannot move {} aside: {}", final_, std::strerror(errno));
  }
  if (::rename(tmp_.c_str(), final_.c_str()) != 0) fail("cannot rename {} to {}: {}", tmp_, final_, std::strerror(errno));
  committed_ = true;
  fsync_path(parent_dir(final_));
  if (!old.empty()) remove_tree(old);
}

}  // namespace recur
