// Staging directories commit atomically or vanish; checksums are stable and stream-equivalent.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"

namespace recur {
namespace {

std::string temp_root() { return "/tmp/recur-test-fs-" + std::to_string(::getpid()); }

TEST(StagingDir, CommitRenamesIntoPlace) {
  std::string root = temp_root();
  {
    StagingDir s(root + "/out");
    EXPECT_NE(s.path(), root + "/out");
    write_file_atomic(s.path() + "/a.txt", "hello");
    EXPECT_FALSE(path_exists(root + "/out"));
    s.commit();
  }
  EXPECT_EQ(read_file(root + "/out/a.txt"), "hello");
  remove_tree(root);
}

TEST(StagingDir, AbandonedStagingLeavesNothing) {
  std::string root = temp_root();
  std::string tmp;
  {
    StagingDir s(root + "/out");
    tmp = s.path();
    write_file_atomic(tmp + "/a.txt", "partial");
  }
  EXPECT_FALSE(path_exists(tmp));
  EXPECT_FALSE(path_exists(root + "/out"));
  remove_tree(root);
}

TEST(StagingDir, ExistingTargetIsKeptUnlessReplaced) {
  std::string root = temp_root();
  make_dirs(root + "/out");
  write_file_atomic(root + "/out/old.txt", "old");
  EXPECT_THROW(StagingDir(root + "/out"), Error);
  EXPECT_EQ(read_file(root + "/out/old.txt"), "old");
  {
    StagingDir s(root + "/out", /*replace_existing=*/true);
    write_file_atomic(s.path() + "/new.txt", "new");
    EXPECT_TRUE(path_exists(root + "/out/old.txt"));  // untouched until commit
    s.commit();
  }
  EXPECT_FALSE(path_exists(root + "/out/old.txt"));
  EXPECT_EQ(read_file(root + "/out/new.txt"), "new");
  remove_tree(root);
}

TEST(Paths, AbsoluteAndParentAreLexical) {
  EXPECT_EQ(absolute_path("/a/b/../c/./d/"), "/a/c/d");
  EXPECT_EQ(parent_dir("/a/b/c"), "/a/b");
  EXPECT_EQ(join_path("/a", "b"), "/a/b");
  EXPECT_EQ(join_path("/a", "/b"), "/b");
}

TEST(Hash, KnownValueAndStreamingAgree) {
  // XXH3-64 of the empty input is a published constant.
  EXPECT_EQ(checksum_bytes("", 0), "xxh3:2d06800538d394c2");
  std::string data(100000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 % 251);
  Hasher h;
  h.update(data.data(), 12345);
  h.update(data.data() + 12345, data.size() - 12345);
  EXPECT_EQ(h.hex(), checksum_bytes(data.data(), data.size()));
  std::string root = temp_root();
  make_dirs(root);
  write_file_atomic(root + "/f", data);
  uint64_t size = 0;
  EXPECT_EQ(checksum_file(root + "/f", &size), h.hex());
  EXPECT_EQ(size, data.size());
  EXPECT_THROW(checksum_file(root + "/missing"), Error);
  remove_tree(root);
}

}  // namespace
}  // namespace recur
