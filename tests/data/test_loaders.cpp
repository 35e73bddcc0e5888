// Batch sources against a real sharded split: the ordered loader and the random-crop sampler are pure
// functions of the step whose rank shards tile the 1-rank batch (acceptance item 3); the prefetcher
// delivers consecutive steps in order and surfaces reader errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "data/loaders.h"
#include "data/manifest.h"
#include "data/prefetcher.h"
#include "data/shard_writer.h"
#include "test_util.h"

namespace recur::data {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kBatch = 8;    // G: global rows
constexpr int64_t kSeqLen = 16;  // T
constexpr uint64_t kVocab = 300;

// One train split of 8 * 300 + 5 tokens over a 300-symbol vocabulary (uint16), in shards of 97 tokens,
// so almost every window crosses a shard boundary somewhere in the batch.
class LoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir("loaders");
    std::mt19937 rng(9);
    source_ = new std::vector<uint32_t>(kBatch * 300 + 5);
    for (auto& t : *source_) t = rng() % kVocab;
    Manifest m;
    m.corpus = "bytes";
    m.tool_version = "test";
    m.vocab.size = kVocab;
    for (uint64_t i = 0; i < kVocab; ++i) m.vocab.symbols.push_back("w" + std::to_string(i));
    m.token_bytes = token_bytes_for_vocab(kVocab);
    DatasetWriter w(*tmp_ / "ds", m, false);
    w.begin_split("train", 97);
    w.append_tokens(source_->data(), source_->size());
    w.end_split();
    w.begin_split("tiny", 97);
    w.append_tokens(source_->data(), 100);
    w.end_split();
    w.finish();
    dataset_ = new std::shared_ptr<Dataset>(Dataset::open(*tmp_ / "ds", true));
  }
  static void TearDownTestSuite() {
    delete dataset_;
    delete source_;
    delete tmp_;
  }

  const Split& split() const { return (*dataset_)->split("train"); }
  uint64_t tokens() const { return source_->size(); }
  std::vector<int64_t> direct(uint64_t begin, uint64_t count) const {
    return std::vector<int64_t>(source_->begin() + static_cast<long>(begin),
                                source_->begin() + static_cast<long>(begin + count));
  }
  std::vector<int64_t> row(const TokenBatch& b, int64_t r) const {
    return std::vector<int64_t>(b.tokens.begin() + r * b.cols, b.tokens.begin() + (r + 1) * b.cols);
  }

  static test::TempDir* tmp_;
  static std::vector<uint32_t>* source_;
  static std::shared_ptr<Dataset>* dataset_;
};

test::TempDir* LoaderTest::tmp_ = nullptr;
std::vector<uint32_t>* LoaderTest::source_ = nullptr;
std::shared_ptr<Dataset>* LoaderTest::dataset_ = nullptr;

// Concatenates the batches of every rank of `world` for `step`, in rank order, checking row bookkeeping.
template <typename MakeSource>
TokenBatch union_of_ranks(int world, int64_t step, MakeSource&& make) {
  TokenBatch all;
  for (int r = 0; r < world; ++r) {
    auto src = make(r, world);
    TokenBatch b = src.batch(step);
    EXPECT_EQ(b.step, step);
    EXPECT_EQ(b.rows, kBatch / world);
    EXPECT_EQ(b.first_row, r * kBatch / world);
    EXPECT_EQ(b.cols, kSeqLen + 1);
    if (r == 0) {
      all = b;
    } else {
      all.rows += b.rows;
      all.tokens.insert(all.tokens.end(), b.tokens.begin(), b.tokens.end());
      EXPECT_EQ(b.epoch_start, all.epoch_start);
    }
  }
  return all;
}

// ---- ordered loader --------------------------------------------------------------------------

TEST_F(LoaderTest, OrderedLoaderGeometry) {
  OrderedLoader l(split(), kBatch, kSeqLen, 0, 1, tokens());
  EXPECT_EQ(l.stream_length(), 300);
  EXPECT_EQ(l.steps_per_epoch(), (300 - 1) / kSeqLen);  // 18 full windows of T+1 per stream
}

TEST_F(LoaderTest, OrderedLoaderWindowsAreTheStreamsReadDirectly) {
  OrderedLoader l(split(), kBatch, kSeqLen, 0, 1, tokens());
  const int64_t spe = l.steps_per_epoch(), len = l.stream_length();
  for (int64_t k : {int64_t{0}, int64_t{1}, int64_t{7}, spe - 1, spe, spe + 1, 2 * spe, 3 * spe + 5, int64_t{1000003}}) {
    TokenBatch b = l.batch(k);
    ASSERT_EQ(b.rows, kBatch);
    ASSERT_EQ(b.cols, kSeqLen + 1);
    ASSERT_EQ(b.tokens.size(), static_cast<size_t>(kBatch * (kSeqLen + 1)));
    EXPECT_EQ(b.epoch_start, k % spe == 0) << "step " << k;
    for (int64_t s = 0; s < kBatch; ++s) {
      uint64_t start = static_cast<uint64_t>(s * len + (k % spe) * kSeqLen);
      EXPECT_EQ(row(b, s), direct(start, kSeqLen + 1)) << "step " << k << " stream " << s;
    }
  }
  // Consecutive windows of a stream overlap by one token: the last target is the next first input.
  TokenBatch b0 = l.batch(3), b1 = l.batch(4);
  for (int64_t s = 0; s < kBatch; ++s) EXPECT_EQ(row(b0, s).back(), row(b1, s).front());
}

TEST_F(LoaderTest, OrderedLoaderRanksTogetherEqualTheOneRankBatch) {
  auto make = [&](int rank, int world) { return OrderedLoader(split(), kBatch, kSeqLen, rank, world, tokens()); };
  const int64_t spe = make(0, 1).steps_per_epoch();
  for (int64_t k : {int64_t{0}, int64_t{1}, int64_t{5}, spe - 1, spe, spe + 2, 4 * spe + 3}) {
    TokenBatch one = make(0, 1).batch(k);
    for (int world : {2, 4}) {
      TokenBatch all = union_of_ranks(world, k, make);
      EXPECT_EQ(all.rows, one.rows);
      EXPECT_EQ(all.tokens, one.tokens) << "world " << world << " step " << k;
      EXPECT_EQ(all.epoch_start, one.epoch_start);
    }
  }
}

TEST_F(LoaderTest, OrderedLoaderIsAPureFunctionOfTheStep) {
  OrderedLoader l(split(), kBatch, kSeqLen, 1, 2, tokens());
  TokenBatch later_first = l.batch(12);  // computed before step 11 ever was
  TokenBatch b11 = l.batch(11);
  EXPECT_EQ(l.batch(12).tokens, later_first.tokens);
  EXPECT_EQ(l.batch(11).tokens, b11.tokens);
  EXPECT_NE(b11.tokens, later_first.tokens);
  // fill() into a batch holding another step gives the same as batch().
  TokenBatch reused = l.batch(2);
  l.fill(12, &reused);
  EXPECT_EQ(reused.tokens, later_first.tokens);
  EXPECT_EQ(reused.step, 12);
  // A fresh loader (a resumed run) agrees.
  EXPECT_EQ(OrderedLoader(split(), kBatch, kSeqLen, 1, 2, tokens()).batch(12).tokens, later_first.tokens);
  EXPECT_THAT(test::error_of([&] { l.batch(-1); }), HasSubstr("negative step"));
}

TEST_F(LoaderTest, OrderedLoaderUsesOnlyTheUsableTokens) {
  const uint64_t usable = usable_tokens(tokens(), 0.5);
  EXPECT_EQ(usable, tokens() / 2);
  OrderedLoader l(split(), kBatch, kSeqLen, 0, 1, usable);
  EXPECT_EQ(l.stream_length(), static_cast<int64_t>(usable / kBatch));
  const int64_t spe = l.steps_per_epoch();
  for (int64_t k = 0; k < 2 * spe; ++k) {
    TokenBatch b = l.batch(k);
    for (int64_t s = 0; s < kBatch; ++s) {
      uint64_t start = static_cast<uint64_t>(s * l.stream_length() + (k % spe) * kSeqLen);
      ASSERT_LE(start + kSeqLen + 1, usable);
      ASSERT_EQ(row(b, s), direct(start, kSeqLen + 1));
    }
  }
}

TEST_F(LoaderTest, OrderedLoaderRejectsAnIndivisibleBatch) {
  std::string msg = test::error_of([&] { OrderedLoader(split(), 6, kSeqLen, 0, 4, tokens()); });
  EXPECT_THAT(msg, HasSubstr("global batch size 6"));
  EXPECT_THAT(msg, HasSubstr("world size 4"));
  EXPECT_THAT(test::error_of([&] { OrderedLoader(split(), kBatch, kSeqLen, 4, 4, tokens()); }), HasSubstr("invalid rank 4"));
}

TEST_F(LoaderTest, OrderedLoaderRejectsASplitTooSmall) {
  // 100 tokens in 8 streams of 12 tokens: not one window of T + 1 = 17.
  std::string msg = test::error_of([&] { OrderedLoader((*dataset_)->split("tiny"), kBatch, kSeqLen, 0, 1, 100); });
  EXPECT_THAT(msg, HasSubstr("split 'tiny' is too small"));
  EXPECT_THAT(msg, HasSubstr("12 tokens each"));
  EXPECT_THAT(msg, HasSubstr("at least 17"));
  EXPECT_THAT(test::error_of([&] { OrderedLoader(split(), kBatch, 0, 0, 1, tokens()); }), HasSubstr("segment length"));
}

// ---- random-crop sampler ---------------------------------------------------------------------

TEST_F(LoaderTest, RandomCropRanksTogetherEqualTheOneRankBatch) {
  auto make = [&](int rank, int world) { return RandomCropSampler(split(), kBatch, kSeqLen, rank, world, 7, tokens()); };
  for (int64_t k : {0, 1, 2, 17, 1000}) {
    TokenBatch one = make(0, 1).batch(k);
    for (int world : {2, 4}) {
      TokenBatch all = union_of_ranks(world, k, make);
      EXPECT_EQ(all.tokens, one.tokens) << "world " << world << " step " << k;
    }
  }
}

TEST_F(LoaderTest, RandomCropWindowsAreReadFromTheirStarts) {
  RandomCropSampler s(split(), kBatch, kSeqLen, 0, 1, 7, tokens());
  std::set<uint64_t> starts;
  for (int64_t k = 0; k < 50; ++k) {
    TokenBatch b = s.batch(k);
    EXPECT_FALSE(b.epoch_start);
    for (int64_t r = 0; r < kBatch; ++r) {
      uint64_t start = s.window_start(k, r);
      ASSERT_LE(start + kSeqLen + 1, tokens());
      ASSERT_EQ(row(b, r), direct(start, kSeqLen + 1)) << "step " << k << " row " << r;
      starts.insert(start);
    }
  }
  EXPECT_GT(starts.size(), 300u);  // 400 samples: starts are spread, not repeated
  EXPECT_EQ(s.batch(3).tokens, RandomCropSampler(split(), kBatch, kSeqLen, 0, 1, 7, tokens()).batch(3).tokens);
}

TEST_F(LoaderTest, RandomCropSeedsGiveDifferentSamples) {
  RandomCropSampler a(split(), kBatch, kSeqLen, 0, 1, 7, tokens());
  RandomCropSampler b(split(), kBatch, kSeqLen, 0, 1, 8, tokens());
  EXPECT_NE(a.batch(0).tokens, b.batch(0).tokens);
  EXPECT_NE(a.batch(0).tokens, a.batch(1).tokens);
  int same = 0;
  for (int64_t r = 0; r < kBatch; ++r) same += a.window_start(5, r) == b.window_start(5, r);
  EXPECT_LT(same, 2);
}

TEST_F(LoaderTest, RandomCropStaysInsideTheDataFraction) {
  const uint64_t usable = usable_tokens(tokens(), 0.25);
  RandomCropSampler s(split(), kBatch, kSeqLen, 0, 1, 3, usable);
  uint64_t max_end = 0;
  for (int64_t k = 0; k < 200; ++k) {
    TokenBatch b = s.batch(k);
    for (int64_t r = 0; r < kBatch; ++r) {
      uint64_t start = s.window_start(k, r);
      ASSERT_LE(start + kSeqLen + 1, usable) << "step " << k << " row " << r;
      ASSERT_EQ(row(b, r), direct(start, kSeqLen + 1));
      max_end = std::max(max_end, start + kSeqLen + 1);
    }
  }
  EXPECT_GT(max_end, usable - 20);  // the whole fraction is used, up to its end
  EXPECT_THAT(test::error_of([&] { usable_tokens(tokens(), 0.0); }), HasSubstr("data.fraction"));
  EXPECT_THAT(test::error_of([&] { usable_tokens(tokens(), 1.5); }), HasSubstr("data.fraction"));
  EXPECT_EQ(usable_tokens(tokens(), 1.0), tokens());
}

TEST_F(LoaderTest, RandomCropRejectsASplitTooSmall) {
  std::string msg = test::error_of([&] { RandomCropSampler(split(), kBatch, kSeqLen, 0, 1, 1, kSeqLen); });
  EXPECT_THAT(msg, HasSubstr("split 'train'"));
  EXPECT_THAT(msg, HasSubstr("fewer than one window of 17"));
  EXPECT_THAT(test::error_of([&] { RandomCropSampler(split(), 6, kSeqLen, 0, 4, 1, tokens()); }),
              HasSubstr("not divisible"));
}

// ---- prefetcher ------------------------------------------------------------------------------

TEST_F(LoaderTest, PrefetcherDeliversConsecutiveStepsInOrder) {
  OrderedLoader l(split(), kBatch, kSeqLen, 0, 1, tokens());
  Prefetcher p([&](int64_t step, TokenBatch* out) { l.fill(step, out); }, /*start_step=*/5, /*depth=*/3);
  for (int64_t k = 5; k < 5 + 3 * l.steps_per_epoch(); ++k) {
    TokenBatch b = p.next();
    ASSERT_EQ(b.step, k);
    ASSERT_EQ(b.tokens, l.batch(k).tokens) << "step " << k;
    ASSERT_EQ(b.epoch_start, k % l.steps_per_epoch() == 0);
  }
}

TEST_F(LoaderTest, PrefetcherRethrowsTheSourcesError) {
  Prefetcher p(
      [](int64_t step, TokenBatch* out) {
        if (step == 7) throw Error("shard train-00003.h5 went away at step 7");
        out->step = step;
      },
      /*start_step=*/5, /*depth=*/2);
  EXPECT_EQ(p.next().step, 5);
  EXPECT_EQ(p.next().step, 6);
  EXPECT_THAT(test::error_of([&] { p.next(); }), HasSubstr("train-00003.h5 went away at step 7"));
}

TEST_F(LoaderTest, PrefetcherStopsCleanlyWithBatchesPending) {
  std::atomic<int64_t> calls{0};
  {
    Prefetcher p([&](int64_t step, TokenBatch* out) { out->step = step, ++calls; }, 0, 4);
    EXPECT_EQ(p.next().step, 0);
  }  // destroyed while the worker may be blocked on a full queue
  EXPECT_LE(calls.load(), 6);
}

}  // namespace
}  // namespace recur::data
