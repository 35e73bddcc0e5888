// Training's data entry point refuses damaged datasets when data.verify is on (acceptance item 4).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <random>

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/corpora.h"
#include "data/dataset.h"
#include "data/training_data.h"

namespace recur::data {
namespace {

using ::testing::HasSubstr;

TEST(TrainingData, RefusesAFlippedShardWhenVerifying) {
  std::string root = "/tmp/recur-test-training-data-" + std::to_string(::getpid());
  make_dirs(root);
  std::string raw(200000, '\0');
  std::mt19937 rng(3);
  for (auto& c : raw) c = static_cast<char>(rng());
  write_file_atomic(root + "/corpus.bin", raw);
  ShardOptions o;
  o.corpus = "bytes";
  o.inputs = {root + "/corpus.bin"};
  o.out_dir = root + "/ds";
  o.progress = false;
  Manifest m = shard_corpus(o);

  Config ok = Config::from_overrides({"data.path=" + o.out_dir, "data.fraction=0.5"});
  TrainingData td = open_training_data(ok);
  EXPECT_EQ(td.train_tokens, m.splits.at("train").tokens / 2);

  // Flip one byte inside the train shard's token data (the last bytes of the file are tokens' chunk).
  std::string shard = o.out_dir + "/" + m.splits.at("train").shards[0].file;
  std::string bytes = read_file(shard);
  size_t at = bytes.size() / 2;
  bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
  std::FILE* f = std::fopen(shard.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  std::fseek(f, static_cast<long>(at), SEEK_SET);
  std::fputc(static_cast<unsigned char>(bytes[at]), f);
  std::fclose(f);

  try {
    open_training_data(Config::from_overrides({"data.path=" + o.out_dir, "data.verify=true"}));
    FAIL() << "training data opened despite a flipped byte";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("refusing to start training"));
    EXPECT_THAT(e.what(), HasSubstr(m.splits.at("train").shards[0].file));
  }
  // With verification off the (sizes-only) open succeeds: the flip is inside the data.
  EXPECT_NO_THROW(open_training_data(Config::from_overrides({"data.path=" + o.out_dir, "data.verify=false"})));
  EXPECT_THAT([&] {
    try {
      open_training_data(Config::from_overrides({"data.path=" + root}));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }(), HasSubstr("not a dataset"));
  remove_tree(root);
}

}  // namespace
}  // namespace recur::data
