// Batch sources for training: the ordered (Transformer-XL) loader and the random-crop sampler.
// Invariant: a batch is a pure function of (step, rank, world) — so any world size sees the same global
// batch, and a resumed run can start at any step. Never keep cursor state in these classes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace recur::data {

class Split;

// rows x (seq_len + 1) tokens, row-major; inputs are columns [0, seq_len), targets [1, seq_len].
struct TokenBatch {
  int64_t step = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t first_row = 0;      // global index of row 0 (stream or sample index)
  bool epoch_start = false;   // ordered loader: streams restart here, carried state must be reset
  std::vector<int64_t> tokens;
  // Example batches only (rows padded with 0 to the longest example, cols = that length):
  std::vector<int64_t> lengths;     // per row
  std::vector<int64_t> label_sets;  // rows x cols, when the dataset has label sets
  std::vector<int64_t> loss_mask;   // rows x cols, when the dataset has a loss mask
};

// Rank r of W owns the global rows [r*G/W, (r+1)*G/W); G must be divisible by W.
struct RowRange {
  int64_t begin;
  int64_t end;
};
RowRange rank_rows(int64_t global_rows, int rank, int world);

// Cuts the first `usable_tokens` of a split into G contiguous streams; step k yields the window
// [k*T, k*T + T + 1) of every stream (wrapping to the start after the last full window: next epoch).
class OrderedLoader {
 public:
  OrderedLoader(const Split& split, int64_t global_batch, int64_t seq_len, int rank, int world, uint64_t usable_tokens);
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t stream_length() const { return stream_len_; }
  TokenBatch batch(int64_t step) const;
  void fill(int64_t step, TokenBatch* out) const;  // reuses out's storage

 private:
  const Split& split_;
  int64_t global_batch_, seq_len_;
  RowRange rows_;
  int64_t stream_len_ = 0, steps_per_epoch_ = 0;
};

// Random windows of T+1 tokens: the start of global sample g at step k is a hash of (seed, k, g),
// so samples do not depend on how many ranks share the batch.
class RandomCropSampler {
 public:
  RandomCropSampler(const Split& split, int64_t global_batch, int64_t seq_len, int rank, int world, uint64_t seed,
                    uint64_t usable_tokens);
  TokenBatch batch(int64_t step) const;
  void fill(int64_t step, TokenBatch* out) const;
  uint64_t window_start(int64_t step, int64_t global_row) const;

 private:
  const Split& split_;
  int64_t global_batch_, seq_len_;
  RowRange rows_;
  uint64_t seed_, positions_;
};

// Whole examples of an examples-layout split. Each epoch visits every example once in a seeded
// pseudo-random order: global sample g of step k is example perm_e((k*G + g) mod n), e = (k*G + g) / n,
// where perm_e is a bijection of [0, n) (a keyed Feistel network with cycle walking). With shuffle
// off the order is the stored one (evaluation).
class ExampleSampler {
 public:
  ExampleSampler(const Split& split, int64_t global_batch, int rank, int world, uint64_t seed, bool shuffle,
                 uint64_t usable_examples);
  TokenBatch batch(int64_t step) const;
  void fill(int64_t step, TokenBatch* out) const;
  uint64_t example_index(int64_t step, int64_t global_row) const;
  int64_t steps_per_epoch() const;

 private:
  const Split& split_;
  int64_t global_batch_;
  RowRange rows_;
  uint64_t seed_, n_;
  bool shuffle_;
};

// The given examples of a split as one padded batch (evaluation reads examples in stored order).
void fill_examples(const Split& split, const std::vector<uint64_t>& indices, TokenBatch* out);

// A keyed pseudo-random bijection of [0, n).
uint64_t permute_index(uint64_t index, uint64_t n, uint64_t key);

uint64_t mix64(uint64_t x);  // splitmix64 finaliser, used for every derived seed and index hash
// Tokens of the train split actually used under data.fraction (whole tokens, at least one window).
uint64_t usable_tokens(uint64_t split_tokens, double fraction);

}  // namespace recur::data
