// Shard writer and reader on real HDF5 files: round trips for every token width and both layouts,
// integrity checks against damaged files, and the staging-directory guarantee of DatasetWriter.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "data/dataset.h"
#include "data/gen.h"
#include "data/h5.h"
#include "data/manifest.h"
#include "data/shard_writer.h"
#include "data/synthetic.h"
#include "test_util.h"

namespace recur::data {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using test::error_of;
using test::TempDir;

// ---- helpers ---------------------------------------------------------------------------------

// A stream manifest whose vocabulary has `vocab_size` symbols: bytes for 256, listed symbols up to
// 65536; larger ones must be given to DatasetWriter::write_vocab_file (see vocab_symbols).
Manifest stream_manifest(uint64_t vocab_size) {
  Manifest m;
  m.corpus = "bytes";
  m.tool_version = "test";
  m.token_bytes = token_bytes_for_vocab(vocab_size);
  m.vocab.size = vocab_size;
  if (vocab_size == 256) {
    m.vocab.bytes = true;
  } else if (vocab_size <= 65536) {
    for (uint64_t i = 0; i < vocab_size; ++i) m.vocab.symbols.push_back("w" + std::to_string(i));
  }
  return m;
}

std::vector<std::string> vocab_symbols(uint64_t n) {
  std::vector<std::string> s;
  for (uint64_t i = 0; i < n; ++i) s.push_back("sym" + std::to_string(i));
  return s;
}

std::vector<uint32_t> random_tokens(size_t n, uint64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<uint32_t> pick(0, static_cast<uint32_t>(vocab - 1));
  std::vector<uint32_t> t(n);
  for (auto& x : t) x = pick(rng);
  if (n > 1) {
    t[0] = static_cast<uint32_t>(vocab - 1);  // the widest value the token type must hold
    t[n - 1] = 0;
  }
  return t;
}

struct SplitSpec {
  std::vector<uint32_t> tokens;
  uint64_t shard_tokens;
};

Manifest write_stream_dataset(const std::string& dir, uint64_t vocab_size, const std::map<std::string, SplitSpec>& splits,
                              bool force = false) {
  DatasetWriter w(dir, stream_manifest(vocab_size), force);
  if (vocab_size > 65536) w.write_vocab_file(vocab_symbols(vocab_size));
  for (const auto& [name, spec] : splits) {
    w.begin_split(name, spec.shard_tokens);
    // Append in uneven pieces so that shard and buffer boundaries fall inside append calls.
    size_t done = 0, piece = 1;
    while (done < spec.tokens.size()) {
      size_t n = std::min(piece, spec.tokens.size() - done);
      w.append_tokens(spec.tokens.data() + done, n);
      done += n;
      piece = piece * 3 + 1;
    }
    w.end_split();
  }
  return w.finish();
}

std::vector<int64_t> read_range(const Split& s, uint64_t begin, uint64_t count) {
  std::vector<int64_t> out(count, -1);
  s.read_tokens(begin, count, out.data());
  return out;
}

std::vector<int64_t> expected_range(const std::vector<uint32_t>& src, uint64_t begin, uint64_t count) {
  return std::vector<int64_t>(src.begin() + static_cast<long>(begin), src.begin() + static_cast<long>(begin + count));
}

// File offset of the first stored token of a shard (start of its first HDF5 chunk).
uint64_t token_data_offset(const std::string& shard_path) {
  h5::Handle f = h5::open_file(shard_path, false);
  h5::Handle ds = h5::open_dataset(f.get(), "tokens", shard_path);
  h5::ChunkMap cm = h5::chunk_map(ds.get(), shard_path);
  if (cm.file_offsets.empty()) throw Error(shard_path + " has no chunks");
  return cm.file_offsets[0];
}

// ---- stream layout: every token width --------------------------------------------------------

struct WidthCase {
  const char* name;
  uint64_t vocab;
  int width;
};

class StreamRoundTrip : public ::testing::TestWithParam<WidthCase> {};

TEST_P(StreamRoundTrip, RandomRangesAcrossShardsAndChunksMatchTheSource) {
  const WidthCase& c = GetParam();
  TempDir tmp(std::string("stream-") + c.name);
  const std::string dir = tmp / "ds";
  // train: many small shards; valid: one shard larger than an HDF5 chunk plus a short last shard;
  // test: a split smaller than one shard.
  const uint64_t big_shard = 2 * kTokenChunk;
  std::map<std::string, SplitSpec> splits = {
      {"train", {random_tokens(20500, c.vocab, 1), 1000}},
      {"valid", {random_tokens(big_shard + kTokenChunk / 2 + 123, c.vocab, 2), big_shard}},
      {"test", {random_tokens(7, c.vocab, 3), 1000}},
  };
  Manifest m = write_stream_dataset(dir, c.vocab, splits);

  EXPECT_EQ(m.token_bytes, c.width);
  EXPECT_EQ(m.vocab.size, c.vocab);
  EXPECT_THAT(m.splits.at("train").shards, SizeIs(21));
  EXPECT_THAT(m.splits.at("valid").shards, SizeIs(2));
  EXPECT_THAT(m.splits.at("test").shards, SizeIs(1));
  for (const auto& [name, info] : m.splits) {
    uint64_t next = 0;
    for (size_t i = 0; i < info.shards.size(); ++i) {
      EXPECT_EQ(info.shards[i].file, fmt::format("{}-{:05d}.h5", name, i));
      EXPECT_EQ(info.shards[i].first_token, next);
      EXPECT_TRUE(path_exists(dir + "/" + info.shards[i].file));
      next += info.shards[i].tokens;
    }
    EXPECT_EQ(next, splits.at(name).tokens.size()) << name;
    EXPECT_EQ(info.tokens, splits.at(name).tokens.size()) << name;
  }
  EXPECT_EQ(verify_dataset(dir, false), test::kNoLines);

  auto ds = Dataset::open(dir, /*verify_checksums=*/true);
  EXPECT_EQ(ds->manifest().token_bytes, c.width);
  std::vector<std::string> symbols = ds->symbols();
  ASSERT_THAT(symbols, SizeIs(c.vocab));
  if (c.vocab > 65536) {
    EXPECT_EQ(ds->manifest().vocab.file, "vocab.txt");
    EXPECT_EQ(symbols, vocab_symbols(c.vocab));
  }

  std::mt19937_64 rng(42);
  for (const auto& [name, spec] : splits) {
    const Split& s = ds->split(name);
    const std::vector<uint32_t>& src = spec.tokens;
    const uint64_t n = src.size();
    ASSERT_EQ(s.tokens(), n);
    EXPECT_EQ(read_range(s, 0, n), expected_range(src, 0, n)) << name << ": whole split";

    // Ranges straddling every shard boundary and every chunk boundary inside a shard.
    std::vector<uint64_t> edges;
    for (const auto& sh : m.splits.at(name).shards) {
      edges.push_back(sh.first_token);
      for (uint64_t c0 = kTokenChunk; c0 < sh.tokens; c0 += kTokenChunk) edges.push_back(sh.first_token + c0);
    }
    for (uint64_t e : edges) {
      uint64_t b = e >= 3 ? e - 3 : 0, cnt = std::min<uint64_t>(7, n - b);
      EXPECT_EQ(read_range(s, b, cnt), expected_range(src, b, cnt)) << name << " edge " << e;
    }
    // Random ranges, short and long.
    for (int i = 0; i < 300; ++i) {
      uint64_t max_len = i % 10 == 0 ? n : std::min<uint64_t>(n, 5000);
      uint64_t cnt = rng() % (max_len + 1);
      uint64_t b = rng() % (n - cnt + 1);
      ASSERT_EQ(read_range(s, b, cnt), expected_range(src, b, cnt)) << name << " [" << b << ", +" << cnt << ")";
    }
    EXPECT_TRUE(read_range(s, n, 0).empty());
    EXPECT_THAT(error_of([&] { read_range(s, n - 1, 2); }), HasSubstr("outside split '" + name + "'"));
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, StreamRoundTrip,
                         ::testing::Values(WidthCase{"uint8", 256, 1}, WidthCase{"uint16", 300, 2},
                                           WidthCase{"uint32", 70000, 4}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Manifest, TokenWidthIsTheSmallestThatFits) {
  EXPECT_EQ(token_bytes_for_vocab(2), 1);
  EXPECT_EQ(token_bytes_for_vocab(256), 1);
  EXPECT_EQ(token_bytes_for_vocab(257), 2);
  EXPECT_EQ(token_bytes_for_vocab(65536), 2);
  EXPECT_EQ(token_bytes_for_vocab(65537), 4);
}

TEST(Dataset, UnknownSplitNamesTheSplitsThatExist) {
  TempDir tmp("unknown-split");
  write_stream_dataset(tmp / "ds", 256, {{"train", {random_tokens(10, 256, 1), 100}}, {"valid", {random_tokens(5, 256, 2), 100}}});
  auto ds = Dataset::open(tmp / "ds", false);
  EXPECT_FALSE(ds->has_split("test"));
  std::string msg = error_of([&] { ds->split("test"); });
  EXPECT_THAT(msg, HasSubstr("no split 'test'"));
  EXPECT_THAT(msg, HasSubstr("train, valid"));
}

// ---- examples layout -------------------------------------------------------------------------

TEST(ExamplesLayout, ExamplesWithLabelSetsAndLossMaskRoundTrip) {
  TempDir tmp("examples");
  Manifest m;
  m.corpus = "formal";
  m.tool_version = "test";
  m.layout = Layout::kExamples;
  m.example_fields = {"label_sets", "loss_mask"};
  m.vocab.symbols = {"a", "b", "c", "<eos>"};
  m.vocab.size = 4;
  m.token_bytes = 1;
  m.label_bytes = 2;

  std::mt19937 rng(5);
  std::vector<Example> examples(500);
  for (size_t i = 0; i < examples.size(); ++i) {
    size_t len = i == 17 ? 0 : 1 + rng() % 40;  // one empty example in the middle
    for (size_t t = 0; t < len; ++t) {
      examples[i].tokens.push_back(rng() % 4);
      examples[i].label_sets.push_back(rng() & 0xffff);
      examples[i].loss_mask.push_back(rng() & 1);
    }
  }
  uint64_t total = 0;
  {
    DatasetWriter w(tmp / "ds", m, false);
    w.begin_split("train", 300);  // examples are never cut: shards end after the example that crosses 300
    for (const auto& e : examples) {
      w.append_example(e);
      total += e.tokens.size();
    }
    w.end_split();
    w.begin_split("valid", 300);
    w.append_example(examples[3]);
    w.end_split();
    w.finish();
  }
  auto ds = Dataset::open(tmp / "ds", true);
  EXPECT_EQ(verify_dataset(tmp / "ds", false), test::kNoLines);
  const Manifest& got = ds->manifest();
  EXPECT_EQ(got.layout, Layout::kExamples);
  EXPECT_EQ(got.example_fields, m.example_fields);
  EXPECT_EQ(got.label_bytes, 2);
  const SplitInfo& info = got.splits.at("train");
  EXPECT_GT(info.shards.size(), 5u);
  for (size_t i = 0; i + 1 < info.shards.size(); ++i) EXPECT_GE(info.shards[i].tokens, 300u) << "shard " << i;

  const Split& s = ds->split("train");
  ASSERT_EQ(s.examples(), examples.size());
  ASSERT_EQ(s.tokens(), total);
  uint64_t offset = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    const Example& e = examples[i];
    ExampleView v = s.read_example(i);
    ASSERT_THAT(v.tokens, ElementsAreArray(e.tokens.begin(), e.tokens.end())) << "example " << i;
    ASSERT_THAT(v.label_sets, ElementsAreArray(e.label_sets.begin(), e.label_sets.end())) << "example " << i;
    ASSERT_THAT(v.loss_mask, ElementsAreArray(e.loss_mask.begin(), e.loss_mask.end())) << "example " << i;
    EXPECT_EQ(s.example_length(i), e.tokens.size());
    // The examples are also one contiguous token stream in order.
    std::vector<int64_t> flat(e.tokens.size());
    s.read_tokens(offset, flat.size(), flat.data());
    EXPECT_THAT(flat, ElementsAreArray(e.tokens.begin(), e.tokens.end()));
    offset += e.tokens.size();
  }
  EXPECT_EQ(ds->split("valid").examples(), 1u);
  EXPECT_THAT(ds->split("valid").read_example(0).tokens, ElementsAreArray(examples[3].tokens.begin(), examples[3].tokens.end()));
  EXPECT_THAT(error_of([&] { s.read_example(examples.size()); }), HasSubstr("outside split 'train'"));
  EXPECT_THAT(error_of([&] { s.example_length(examples.size()); }), HasSubstr("outside split 'train'"));
}

TEST(ExamplesLayout, FieldsNotStoredReadBackEmpty) {
  TempDir tmp("examples-mask");
  Manifest m;
  m.corpus = "copy";
  m.tool_version = "test";
  m.layout = Layout::kExamples;
  m.example_fields = {"loss_mask"};
  m.vocab.symbols = {"x", "y"};
  m.vocab.size = 2;
  Example e;
  e.tokens = {1, 0, 1};
  e.loss_mask = {0, 1, 0};
  DatasetWriter w(tmp / "ds", m, false);
  w.begin_split("train", 100);
  w.append_example(e);
  w.end_split();
  w.finish();
  auto ds = Dataset::open(tmp / "ds", true);
  ExampleView v = ds->split("train").read_example(0);
  EXPECT_THAT(v.tokens, ElementsAreArray({1, 0, 1}));
  EXPECT_THAT(v.loss_mask, ElementsAreArray({0, 1, 0}));
  EXPECT_TRUE(v.label_sets.empty());
}

// ---- integrity -------------------------------------------------------------------------------

// A byte dataset: train = 3 shards of 1000 tokens, valid = 1 shard of 500.
class Integrity : public ::testing::Test {
 protected:
  void SetUp() override {
    train_ = random_tokens(3000, 256, 11);
    m_ = write_stream_dataset(dir_, 256, {{"train", {train_, 1000}}, {"valid", {random_tokens(500, 256, 12), 1000}}});
    ASSERT_THAT(m_.splits.at("train").shards, SizeIs(3));
  }
  std::string shard(const std::string& file) const { return dir_ + "/" + file; }
  void edit_manifest(const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = nlohmann::json::parse(read_file(dir_ + "/manifest.json"));
    edit(j);
    write_file_atomic(dir_ + "/manifest.json", j.dump(2));
  }
  // Asserts that verify, a verifying open and (if `sizes_catch_it`) a plain open all name `file`.
  void expect_reported(const std::string& file, bool sizes_catch_it) {
    std::vector<std::string> problems = verify_dataset(dir_, false);
    ASSERT_THAT(problems, SizeIs(1));
    EXPECT_THAT(problems[0], HasSubstr(file));
    EXPECT_THAT(error_of([&] { Dataset::open(dir_, true); }), HasSubstr(file));
    if (sizes_catch_it) {
      EXPECT_THAT(error_of([&] { Dataset::open(dir_, false); }), HasSubstr(file));
    }
  }

  TempDir tmp_{"integrity"};
  std::string dir_ = tmp_ / "ds";
  std::vector<uint32_t> train_;
  Manifest m_;
};

TEST_F(Integrity, FreshDatasetVerifies) {
  EXPECT_EQ(verify_dataset(dir_, false), test::kNoLines);
  EXPECT_NO_THROW(Dataset::open(dir_, true));
}

TEST_F(Integrity, FlippedTokenByteIsFoundByChecksumsOnly) {
  const std::string file = "train-00001.h5";
  uint64_t at = token_data_offset(shard(file)) + 10;
  uint8_t now = test::flip_byte(shard(file), at);
  std::vector<std::string> problems = verify_dataset(dir_, false);
  ASSERT_THAT(problems, SizeIs(1));
  EXPECT_THAT(problems[0], HasSubstr(file));
  EXPECT_THAT(problems[0], HasSubstr("checksum"));
  std::string msg = error_of([&] { Dataset::open(dir_, true); });
  EXPECT_THAT(msg, HasSubstr(file));
  EXPECT_THAT(msg, HasSubstr("failed verification"));
  // Without checksums the open succeeds, and the reader really maps the damaged byte (so the flip was
  // in the token data): global token 1000 + 10.
  auto ds = Dataset::open(dir_, false);
  EXPECT_EQ(read_range(ds->split("train"), 1010, 1)[0], now);
  EXPECT_NE(static_cast<uint32_t>(now), train_[1010]);
}

TEST_F(Integrity, FlippedHeaderByteIsReportedEvenWithoutChecksums) {
  const std::string file = "train-00002.h5";
  test::flip_byte(shard(file), 1);  // inside the HDF5 superblock signature
  expect_reported(file, /*sizes_catch_it=*/true);
}

TEST_F(Integrity, FlippedAttributeByteIsReportedEvenWithoutChecksums) {
  // The token checksum attribute lives in the dataset's object header (HDF5 metadata).
  const std::string file = "train-00000.h5";
  std::string bytes = read_file(shard(file));
  const std::string& sum = m_.splits.at("train").shards[0].checksum;
  size_t at = bytes.find(sum);
  ASSERT_NE(at, std::string::npos) << "checksum attribute not found in " << file;
  ASSERT_LT(at, token_data_offset(shard(file)));
  test::flip_byte(shard(file), at + sum.size() - 1, 0x01);
  expect_reported(file, /*sizes_catch_it=*/true);
  EXPECT_THAT(error_of([&] { Dataset::open(dir_, false); }), HasSubstr("attributes do not match"));
}

TEST_F(Integrity, TruncatedShardFailsTheSizeCheck) {
  const std::string file = "train-00001.h5";
  uint64_t size = file_size(shard(file));
  test::truncate_file(shard(file), size - 100);
  expect_reported(file, true);
  std::string msg = error_of([&] { Dataset::open(dir_, false); });
  EXPECT_THAT(msg, HasSubstr(std::to_string(size - 100)));
  EXPECT_THAT(msg, HasSubstr(std::to_string(size)));
  EXPECT_THAT(msg, HasSubstr("truncated"));
}

TEST_F(Integrity, DeletedShardIsNamedAsMissing) {
  const std::string file = "train-00002.h5";
  ASSERT_EQ(::unlink(shard(file).c_str()), 0);
  expect_reported(file, true);
  EXPECT_THAT(error_of([&] { Dataset::open(dir_, false); }), HasSubstr("missing"));
}

TEST_F(Integrity, ManifestNamingAMissingShard) {
  edit_manifest([](nlohmann::json& j) { j["splits"]["train"]["shards"][1]["file"] = "train-00042.h5"; });
  std::string msg = error_of([&] { Dataset::open(dir_, false); });
  EXPECT_THAT(msg, HasSubstr("train-00042.h5"));
  EXPECT_THAT(msg, HasSubstr("missing"));
  std::vector<std::string> problems = verify_dataset(dir_, false);
  ASSERT_THAT(problems, SizeIs(1));
  EXPECT_THAT(problems[0], HasSubstr("train-00042.h5"));
}

TEST_F(Integrity, ManifestWithAShardPathOutsideTheDirectoryIsRejected) {
  edit_manifest([](nlohmann::json& j) { j["splits"]["train"]["shards"][0]["file"] = "../elsewhere.h5"; });
  std::string msg = error_of([&] { Dataset::open(dir_, false); });
  EXPECT_THAT(msg, HasSubstr("manifest.json"));
  EXPECT_THAT(msg, HasSubstr("../elsewhere.h5"));
}

TEST_F(Integrity, ManifestWithGappedShardOffsetsIsRejected) {
  edit_manifest([](nlohmann::json& j) { j["splits"]["train"]["shards"][1]["first_token"] = 999; });
  std::string msg = error_of([&] { Dataset::open(dir_, false); });
  EXPECT_THAT(msg, HasSubstr("manifest.json"));
  EXPECT_THAT(msg, HasSubstr("first_token"));
}

TEST_F(Integrity, ManifestThatIsNotJson) {
  write_file_atomic(dir_ + "/manifest.json", "{\"format\": \"recur-dataset\", oops");
  std::string msg = error_of([&] { Dataset::open(dir_, false); });
  EXPECT_THAT(msg, HasSubstr(dir_ + "/manifest.json"));
  EXPECT_THAT(msg, HasSubstr("not valid JSON"));
  std::vector<std::string> problems = verify_dataset(dir_, false);
  ASSERT_THAT(problems, SizeIs(1));
  EXPECT_THAT(problems[0], HasSubstr("manifest.json"));
}

TEST_F(Integrity, ManifestWithAnotherFormatVersion) {
  edit_manifest([](nlohmann::json& j) { j["format_version"] = 99; });
  std::string msg = error_of([&] { Dataset::open(dir_, false); });
  EXPECT_THAT(msg, HasSubstr("manifest.json"));
  EXPECT_THAT(msg, HasSubstr("format version 99"));
}

TEST_F(Integrity, ManifestOfAnotherKind) {
  edit_manifest([](nlohmann::json& j) { j.erase("format"); });
  EXPECT_THAT(error_of([&] { Dataset::open(dir_, false); }), HasSubstr("not a Recur dataset manifest"));
}

TEST_F(Integrity, ManifestWithAMissingField) {
  edit_manifest([](nlohmann::json& j) { j["splits"]["valid"]["shards"][0].erase("checksum"); });
  std::string msg = error_of([&] { Dataset::open(dir_, false); });
  EXPECT_THAT(msg, HasSubstr("manifest.json"));
  EXPECT_THAT(msg, HasSubstr("splits.valid.shards[0].checksum"));
}

TEST(DatasetPath, DirectoryWithoutManifestIsNotADataset) {
  TempDir tmp("not-a-dataset");
  std::string msg = error_of([&] { Dataset::open(tmp.path(), false); });
  EXPECT_THAT(msg, HasSubstr("is not a dataset"));
  EXPECT_THAT(msg, HasSubstr("manifest.json"));
  std::vector<std::string> problems = verify_dataset(tmp.path(), false);
  ASSERT_THAT(problems, SizeIs(1));
  EXPECT_THAT(problems[0], HasSubstr("is not a dataset"));
  std::string missing = tmp / "nowhere";
  EXPECT_THAT(error_of([&] { Dataset::open(missing, false); }), HasSubstr(missing + " is not a dataset"));
}

TEST(DatasetPath, DamagedVocabularyFileIsNamed) {
  TempDir tmp("vocab");
  write_stream_dataset(tmp / "ds", 70000, {{"train", {random_tokens(100, 70000, 1), 1000}}});
  std::string vocab = tmp / "ds/vocab.txt";
  test::flip_byte(vocab, 3);
  EXPECT_THAT(error_of([&] { Dataset::open(tmp / "ds", false); }), HasSubstr("vocab.txt"));
  std::vector<std::string> problems = verify_dataset(tmp / "ds", false);
  ASSERT_THAT(problems, SizeIs(1));
  EXPECT_THAT(problems[0], HasSubstr("vocab.txt"));
}

// ---- DatasetWriter: staging and replacement ---------------------------------------------------

TEST(DatasetWriter, AbandonedWriterLeavesNothingBehind) {
  TempDir tmp("abandoned");
  const std::string out = tmp / "ds";
  std::vector<uint32_t> tokens = random_tokens(2500, 256, 4);
  {
    DatasetWriter w(out, stream_manifest(256), false);
    EXPECT_TRUE(is_directory(w.staging_path()));
    EXPECT_THAT(w.staging_path(), HasSubstr(".tmp."));
    w.begin_split("train", 1000);
    w.append_tokens(tokens.data(), tokens.size());
    w.end_split();
    w.begin_split("valid", 1000);
    w.append_tokens(tokens.data(), 10);  // a split still open when the writer goes away
    EXPECT_FALSE(path_exists(out));
  }
  EXPECT_FALSE(path_exists(out));
  EXPECT_EQ(test::list_dir(tmp.path()), test::kNoLines);
}

TEST(DatasetWriter, ExistingOutputIsRefusedWithoutForce) {
  TempDir tmp("exists");
  const std::string out = tmp / "ds";
  std::vector<uint32_t> first = random_tokens(100, 256, 1);
  write_stream_dataset(out, 256, {{"train", {first, 1000}}});
  std::string msg = error_of([&] { DatasetWriter w(out, stream_manifest(256), false); });
  EXPECT_THAT(msg, HasSubstr(out));
  EXPECT_THAT(msg, HasSubstr("already exists"));
  EXPECT_THAT(msg, HasSubstr("--force"));
  auto ds = Dataset::open(out, true);  // untouched
  EXPECT_EQ(read_range(ds->split("train"), 0, 100), expected_range(first, 0, 100));
  EXPECT_THAT(test::list_dir(tmp.path()), ElementsAreArray({"ds"}));
}

TEST(DatasetWriter, ForceReplacesTheOldDatasetOnlyWhenTheNewOneIsComplete) {
  TempDir tmp("force");
  const std::string out = tmp / "ds";
  std::vector<uint32_t> first = random_tokens(3000, 256, 1), second = random_tokens(200, 256, 2);
  write_stream_dataset(out, 256, {{"train", {first, 1000}}, {"valid", {first, 1000}}});
  {
    // Abandoned with force: the old dataset must survive intact.
    DatasetWriter w(out, stream_manifest(256), true);
    w.begin_split("train", 1000);
    w.append_tokens(second.data(), second.size());
  }
  EXPECT_EQ(verify_dataset(out, false), test::kNoLines);
  EXPECT_EQ(Dataset::open(out, false)->split("train").tokens(), first.size());

  write_stream_dataset(out, 256, {{"train", {second, 1000}}}, /*force=*/true);
  auto ds = Dataset::open(out, true);
  EXPECT_FALSE(ds->has_split("valid"));
  EXPECT_EQ(read_range(ds->split("train"), 0, second.size()), expected_range(second, 0, second.size()));
  // Old shards are gone, and nothing was left beside the dataset.
  EXPECT_THAT(test::list_dir(out), ElementsAreArray({"manifest.json", "train-00000.h5"}));
  EXPECT_THAT(test::list_dir(tmp.path()), ElementsAreArray({"ds"}));
}

// ---- hardening: faults under a running reader, and verify checking what readers rely on (#17) --------

// Runs `body` (returning 0 when all is as expected) in a child process (the death-test machinery), so
// that a signal death or a hang (SIGALRM after `seconds`) fails the test instead of ending the test
// binary. The child removes its own scratch directory `tmp`.
[[noreturn]] void run_child(unsigned seconds, const std::function<int()>& body, const std::string& tmp) {
  ::alarm(seconds);
  int code = body();
  remove_tree(tmp);
  std::_Exit(code);
}
#define EXPECT_IN_CHILD(seconds, tmp, ...)                                                               \
  do {                                                                                                   \
    std::function<int()> child_body = [&]() -> int __VA_ARGS__;                                          \
    EXPECT_EXIT(run_child(seconds, child_body, (tmp).path()), ::testing::ExitedWithCode(0), "");         \
  } while (0)

// 0 when `message` contains every part; prints what is missing otherwise.
int contains_all(const std::string& message, const std::vector<std::string>& parts) {
  std::fprintf(stderr, "message: %s\n", message.c_str());
  for (const auto& p : parts) {
    if (message.find(p) == std::string::npos) {
      std::fprintf(stderr, "missing: %s\n", p.c_str());
      return 1;
    }
  }
  return 0;
}

TEST(MappedShard, TruncatedWhileReadingIsAnErrorNamingTheShard) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir tmp("sigbus");
  const std::string dir = tmp / "ds";
  std::vector<uint32_t> tokens = random_tokens(300000, 256, 5);
  write_stream_dataset(dir, 256, {{"train", {tokens, 200000}}});
  const std::string shard = dir + "/train-00000.h5";
  // The reader is open and has read once when the shard shrinks under it (`truncate -s 2000`); the next
  // read, on the main thread or a loader thread, touches pages past the new end.
  for (bool on_thread : {false, true}) {
    EXPECT_IN_CHILD(20, tmp, {
      auto ds = Dataset::open(dir, true);
      const Split& train = ds->split("train");
      if (read_range(train, 0, 100) != expected_range(tokens, 0, 100)) return 2;
      test::truncate_file(shard, 2000);
      std::string msg;
      auto read = [&] { msg = error_of([&] { read_range(train, 150000, 1000); }); };
      if (on_thread) {
        std::thread t(read);
        t.join();
      } else {
        read();
      }
      return contains_all(msg, {shard, "changed while it was being read", "truncated or overwritten"});
    });
  }
}

TEST(MappedShard, OtherBusErrorsStillEndTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir tmp("sigbus-other");
  write_stream_dataset(tmp / "ds", 256, {{"train", {random_tokens(1000, 256, 5), 1000}}});
  EXPECT_EXIT(
      {
        auto ds = Dataset::open(tmp / "ds", false);  // installs the guard
        remove_tree(tmp.path());
        std::raise(SIGBUS);
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

TEST(DatasetWriter, SmallShardsAreSmallFiles) {
  TempDir tmp("small-shards");
  std::vector<uint32_t> tokens = random_tokens(2000, 256, 6);
  Manifest m = write_stream_dataset(tmp / "ds", 256, {{"train", {tokens, 10}}});
  ASSERT_THAT(m.splits.at("train").shards, SizeIs(200));
  // HDF5 allocates whole chunks: a 10-token shard with the 1 Mi-element chunk took over 1 MiB.
  for (const auto& sh : m.splits.at("train").shards) EXPECT_LT(sh.file_size, 16u << 10) << sh.file;
  auto ds = Dataset::open(tmp / "ds", true);
  EXPECT_EQ(read_range(ds->split("train"), 0, tokens.size()), expected_range(tokens, 0, tokens.size()));
}

TEST(Generators, SizesBeyondTheMachinesMemoryAreRefusedBeforeWriting) {
  TempDir tmp("gen-bounds");
  CopyDatasetSpec copy;
  copy.base = {/*count=*/0, /*max_len=*/1000000, /*min_len=*/1000000, /*pattern_len=*/10, /*alphabet=*/10, /*seed=*/1};
  copy.train = 1000000000;
  std::string msg = error_of([&] { write_copy_dataset(copy, tmp / "copy", false); });
  EXPECT_THAT(msg, HasSubstr("recur gen copy: the requested examples hold up to 1e+15 tokens"));
  EXPECT_THAT(msg, HasSubstr("of memory"));
  copy.train = 10;
  copy.base.max_len = copy.base.min_len = 20;
  copy.base.alphabet = 1 << 20;
  EXPECT_THAT(error_of([&] { write_copy_dataset(copy, tmp / "copy", false); }), HasSubstr("alphabet 1048576 is larger"));
  FormalSpec formal = default_formal_spec(FormalLanguage::kParity, 1);
  formal.train.count = 1000000000;
  formal.train.max_len = 1000000;
  EXPECT_THAT(error_of([&] { write_formal_dataset(formal, tmp / "formal", false); }), HasSubstr("recur gen formal"));
  EXPECT_EQ(test::list_dir(tmp.path()), test::kNoLines);
}

TEST_F(Integrity, DuplicatedShardEntryIsRejectedByVerifyAndOpen) {
  edit_manifest([](nlohmann::json& j) {
    auto& train = j["splits"]["train"];
    nlohmann::json dup = train["shards"][2];
    dup["first_token"] = 3000;
    train["shards"].push_back(dup);
    train["tokens"] = 4000;
  });
  std::vector<std::string> problems = verify_dataset(dir_, false);
  ASSERT_THAT(problems, SizeIs(1));
  EXPECT_THAT(problems[0], HasSubstr("train-00002.h5' is listed twice"));
  EXPECT_THAT(error_of([&] { Dataset::open(dir_, false); }), HasSubstr("listed twice"));
}

TEST_F(Integrity, TokensOutsideTheVocabularyAreFoundByVerifyReadsAndDump) {
  // Shard bytes untouched (every checksum still matches); the manifest now claims 200 symbols.
  edit_manifest([](nlohmann::json& j) {
    j["vocab"] = {{"kind", "symbols"}, {"size", 200}, {"symbols", std::vector<std::string>(200, "s")}};
  });
  uint64_t first_bad = std::find_if(train_.begin(), train_.end(), [](uint32_t t) { return t >= 200; }) - train_.begin();
  std::vector<std::string> problems = verify_dataset(dir_, false);
  ASSERT_FALSE(problems.empty());
  EXPECT_THAT(problems[0], HasSubstr("train-00000.h5:/tokens: token " + std::to_string(train_[first_bad]) +
                                     " at position " + std::to_string(first_bad)));
  EXPECT_THAT(problems[0], HasSubstr("outside the vocabulary of 200 symbols"));
  EXPECT_THAT(error_of([&] { Dataset::open(dir_, true); }), HasSubstr("outside the vocabulary"));
  auto ds = Dataset::open(dir_, false);
  std::string msg = error_of([&] { read_range(ds->split("train"), 0, 3000); });
  EXPECT_THAT(msg, HasSubstr(shard("train-00000.h5")));
  EXPECT_THAT(msg, HasSubstr("at position " + std::to_string(first_bad) + " of the shard is outside the vocabulary of 200"));
  EXPECT_THAT(error_of([&] { test::dump_to_string(*ds, "train"); }), HasSubstr("outside the vocabulary"));
}

TEST_F(Integrity, ShardThatIsADeviceIsRefusedWithoutReadingIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string file = shard("train-00001.h5");
  ASSERT_EQ(::unlink(file.c_str()), 0);
  ASSERT_EQ(::symlink("/dev/zero", file.c_str()), 0);
  EXPECT_IN_CHILD(20, tmp_, {
    std::vector<std::string> problems = verify_dataset(dir_, false);
    return contains_all(problems.size() == 1 ? problems[0] : "", {file, "not a regular file"});
  });
  EXPECT_THAT(error_of([&] { Dataset::open(dir_, false); }), HasSubstr("not a regular file"));
}

TEST_F(Integrity, ManifestWithAVocabularyFileOutsideTheDirectoryIsRejected) {
  write_file_atomic(tmp_ / "outside.txt", "secret\n");
  edit_manifest([](nlohmann::json& j) {
    j["vocab"] = {{"kind", "file"}, {"size", 256}, {"file", "../outside.txt"}, {"checksum", "xxh3:0"}};
  });
  std::string msg = error_of([&] { Dataset::open(dir_, false); });
  EXPECT_THAT(msg, HasSubstr("vocab.file '../outside.txt' must be a plain file name inside the dataset directory"));
  std::vector<std::string> problems = verify_dataset(dir_, false);
  ASSERT_THAT(problems, SizeIs(1));
  EXPECT_THAT(problems[0], HasSubstr("must be a plain file name"));
}

TEST_F(Integrity, ManifestCountsMustBeNonNegativeIntegers) {
  for (nlohmann::json bad : {nlohmann::json(3000.5), nlohmann::json(-3000), nlohmann::json("3000")}) {
    edit_manifest([&](nlohmann::json& j) { j["splits"]["train"]["tokens"] = bad; });
    std::string msg = error_of([&] { Dataset::open(dir_, false); });
    EXPECT_THAT(msg, HasSubstr("splits.train.tokens")) << bad;
    EXPECT_THAT(msg, HasSubstr("must be a non-negative integer")) << bad;
  }
}

TEST(ExamplesLayout, ShardWithoutOffsetsIsRejectedByVerify) {
  TempDir tmp("no-offsets");
  const std::string dir = tmp / "ds";
  Manifest m = stream_manifest(256);
  m.layout = Layout::kExamples;
  DatasetWriter w(dir, m, false);
  w.begin_split("train", 100);
  for (uint32_t i = 0; i < 5; ++i) {
    Example e;
    e.tokens = {i, i + 1, i + 2};
    w.append_example(e);
  }
  w.end_split();
  w.finish();
  // Remove /offsets and make the manifest agree with the new file, as a hand-made dataset would.
  const std::string path = dir + "/train-00000.h5";
  {
    h5::Handle f = h5::open_file(path, true);
    ASSERT_GE(H5Ldelete(f.get(), "offsets", H5P_DEFAULT), 0);
  }
  nlohmann::json j = nlohmann::json::parse(read_file(dir + "/manifest.json"));
  uint64_t size = 0;
  j["splits"]["train"]["shards"][0]["file_checksum"] = checksum_file(path, &size);
  j["splits"]["train"]["shards"][0]["file_size"] = size;
  write_file_atomic(dir + "/manifest.json", j.dump(2));
  std::vector<std::string> problems = verify_dataset(dir, false);
  ASSERT_THAT(problems, SizeIs(1));
  EXPECT_THAT(problems[0], HasSubstr(path + ": /offsets is missing"));
  EXPECT_THAT(error_of([&] { Dataset::open(dir, false); }), HasSubstr("/offsets is missing"));
}

}  // namespace
}  // namespace recur::data
