// See loaders.h.
#include "data/loaders.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/dataset.h"

namespace recur::data {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t usable_tokens(uint64_t split_tokens, double fraction) {
  if (!(fraction > 0 && fraction <= 1)) fail("data.fraction must be in (0, 1], got {}", fraction);
  return static_cast<uint64_t>(std::floor(static_cast<double>(split_tokens) * fraction));
}

RowRange rank_rows(int64_t global_rows, int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world) fail("invalid rank {} of world size {}", rank, world);
  if (global_rows < 1) fail("global batch size must be at least 1, got {}", global_rows);
  if (global_rows % world != 0) {
    fail("global batch size {} is not divisible by the world size {}; choose a batch that every rank can share equally",
         global_rows, world);
  }
  int64_t per = global_rows / world;
  return {rank * per, (rank + 1) * per};
}

OrderedLoader::OrderedLoader(const Split& split, int64_t global_batch, int64_t seq_len, int rank, int world,
                             uint64_t usable)
    : split_(split), global_batch_(global_batch), seq_len_(seq_len), rows_(rank_rows(global_batch, rank, world)) {
  if (seq_len < 1) fail("segment length must be positive, got {}", seq_len);
  if (usable > split.tokens()) usable = split.tokens();
  stream_len_ = static_cast<int64_t>(usable / static_cast<uint64_t>(global_batch));
  steps_per_epoch_ = stream_len_ > 0 ? (stream_len_ - 1) / seq_len : 0;
  if (steps_per_epoch_ < 1) {
    fail("split '{}' is too small for the ordered loader: {} usable tokens cut into {} streams of {} tokens each; a stream "
         "needs at least {} (segment length + 1). Use a smaller batch or segment length, or more data",
         split.name(), usable, global_batch, stream_len_, seq_len + 1);
  }
}

TokenBatch OrderedLoader::batch(int64_t step) const {
  TokenBatch b;
  fill(step, &b);
  return b;
}

void OrderedLoader::fill(int64_t step, TokenBatch* out) const {
  if (step < 0) fail("negative step {}", step);
  int64_t within = step % steps_per_epoch_;
  out->step = step;
  out->rows = rows_.end - rows_.begin;
  out->cols = seq_len_ + 1;
  out->first_row = rows_.begin;
  out->epoch_start = within == 0;
  out->tokens.resize(static_cast<size_t>(out->rows * out->cols));
  for (int64_t r = 0; r < out->rows; ++r) {
    uint64_t start = static_cast<uint64_t>((rows_.begin + r) * stream_len_ + within * seq_len_);
    split_.read_tokens(start, static_cast<uint64_t>(out->cols), out->tokens.data() + r * out->cols);
  }
}

RandomCropSampler::RandomCropSampler(const Split& split, int64_t global_batch, int64_t seq_len, int rank, int world,
                                     uint64_t seed, uint64_t usable)
    : split_(split), global_batch_(global_batch), seq_len_(seq_len), rows_(rank_rows(global_batch, rank, world)),
      seed_(seed) {
  if (seq_len < 1) fail("segment length must be positive, got {}", seq_len);
  if (usable > split.tokens()) usable = split.tokens();
  if (usable < static_cast<uint64_t>(seq_len) + 1) {
    fail("split '{}' has {} usable tokens, fewer than one window of {} (segment length + 1)", split.name(), usable,
         seq_len + 1);
  }
  positions_ = usable - static_cast<uint64_t>(seq_len);
}

uint64_t RandomCropSampler::window_start(int64_t step, int64_t global_row) const {
  uint64_t h = mix64(mix64(seed_ ^ 0x5eed) ^ mix64(static_cast<uint64_t>(step) * 0x100000001b3ull + static_cast<uint64_t>(global_row)));
  return h % positions_;
}

TokenBatch RandomCropSampler::batch(int64_t step) const {
  TokenBatch b;
  fill(step, &b);
  return b;
}

void RandomCropSampler::fill(int64_t step, TokenBatch* out) const {
  out->step = step;
  out->rows = rows_.end - rows_.begin;
  out->cols = seq_len_ + 1;
  out->first_row = rows_.begin;
  out->epoch_start = false;
  out->tokens.resize(static_cast<size_t>(out->rows * out->cols));
  for (int64_t r = 0; r < out->rows; ++r) {
    split_.read_tokens(window_start(step, rows_.begin + r), static_cast<uint64_t>(out->cols),
                       out->tokens.data() + r * out->cols);
  }
}

}  // namespace recur::data

namespace recur::data {

uint64_t permute_index(uint64_t index, uint64_t n, uint64_t key) {
  if (n <= 1) return 0;
  // Balanced Feistel network over the smallest even number of bits covering n, then cycle-walk
  // until the value lands in [0, n): a bijection of [0, n) for any n.
  int bits = 2;
  while ((1ull << bits) < n) bits += 2;
  const int half = bits / 2;
  const uint64_t mask = (1ull << half) - 1;
  uint64_t x = index;
  do {
    uint64_t left = x >> half, right = x & mask;
    for (int round = 0; round < 4; ++round) {
      uint64_t f = mix64(right ^ mix64(key + static_cast<uint64_t>(round))) & mask;
      uint64_t next = left ^ f;
      left = right;
      right = next;
    }
    x = (left << half) | right;
  } while (x >= n);
  return x;
}

ExampleSampler::ExampleSampler(const Split& split, int64_t global_batch, int rank, int world, uint64_t seed, bool shuffle,
                               uint64_t usable_examples)
    : split_(split), global_batch_(global_batch), rows_(rank_rows(global_batch, rank, world)), seed_(seed),
      n_(std::min<uint64_t>(usable_examples, split.examples())), shuffle_(shuffle) {
  if (n_ == 0) fail("split '{}' has no examples to sample", split.name());
}

int64_t ExampleSampler::steps_per_epoch() const {
  return static_cast<int64_t>((n_ + static_cast<uint64_t>(global_batch_) - 1) / static_cast<uint64_t>(global_batch_));
}

uint64_t ExampleSampler::example_index(int64_t step, int64_t global_row) const {
  uint64_t i = static_cast<uint64_t>(step) * static_cast<uint64_t>(global_batch_) + static_cast<uint64_t>(global_row);
  uint64_t epoch = i / n_, pos = i % n_;
  return shuffle_ ? permute_index(pos, n_, mix64(seed_) ^ mix64(epoch + 0x9e37)) : pos;
}

TokenBatch ExampleSampler::batch(int64_t step) const {
  TokenBatch b;
  fill(step, &b);
  return b;
}

void ExampleSampler::fill(int64_t step, TokenBatch* out) const {
  std::vector<uint64_t> indices;
  for (int64_t r = rows_.begin; r < rows_.end; ++r) indices.push_back(example_index(step, r));
  fill_examples(split_, indices, out);
  out->step = step;
  out->first_row = rows_.begin;
}

void fill_examples(const Split& split, const std::vector<uint64_t>& indices, TokenBatch* out) {
  out->step = 0;
  out->rows = static_cast<int64_t>(indices.size());
  out->first_row = 0;
  out->epoch_start = false;
  std::vector<ExampleView> views;
  int64_t cols = 0;
  for (uint64_t i : indices) {
    views.push_back(split.read_example(i));
    cols = std::max<int64_t>(cols, static_cast<int64_t>(views.back().tokens.size()));
  }
  out->cols = cols;
  const size_t cells = static_cast<size_t>(out->rows * cols);
  out->tokens.assign(cells, 0);
  out->lengths.assign(static_cast<size_t>(out->rows), 0);
  out->label_sets.assign(views.empty() || views.front().label_sets.empty() ? 0 : cells, 0);
  out->loss_mask.assign(views.empty() || views.front().loss_mask.empty() ? 0 : cells, 0);
  for (int64_t r = 0; r < out->rows; ++r) {
    const ExampleView& v = views[static_cast<size_t>(r)];
    std::copy(v.tokens.begin(), v.tokens.end(), out->tokens.begin() + r * cols);
    out->lengths[static_cast<size_t>(r)] = static_cast<int64_t>(v.tokens.size());
    if (!out->label_sets.empty()) std::copy(v.label_sets.begin(), v.label_sets.end(), out->label_sets.begin() + r * cols);
    if (!out->loss_mask.empty()) std::copy(v.loss_mask.begin(), v.loss_mask.end(), out->loss_mask.begin() + r * cols);
  }
}

}  // namespace recur::data
