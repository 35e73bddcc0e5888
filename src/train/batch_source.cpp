// See batch_source.h.
#include "train/batch_source.h"

#include <algorithm>
#include <cmath>

#include "core/config.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/prefetcher.h"
#include "data/training_data.h"

namespace recur::train {

BatchSource::BatchSource(const Config& c, const data::TrainingData& td, Task task, bool carries_state, int rank, int world)
    : prefetch_depth_(static_cast<int>(c.get_int("data.prefetch"))) {
  const int64_t G = c.get_int("train.batch_size"), T = c.get_int("train.tgt_len");
  const auto seed = static_cast<uint64_t>(c.get_int("train.seed"));
  const data::Split& train = td.dataset->split("train");
  sampler_ = c.get_string("train.sampler");
  if (sampler_ == "auto") sampler_ = task != Task::kStream ? "examples" : carries_state ? "ordered" : "crop";
  if (task != Task::kStream) {
    auto usable = static_cast<uint64_t>(std::ceil(static_cast<double>(train.examples()) * c.get_float("data.fraction")));
    examples_ = std::make_unique<data::ExampleSampler>(train, G, rank, world, seed, /*shuffle=*/true, usable);
    steps_per_epoch_ = examples_->steps_per_epoch();
    sampler_ = "shuffled examples";
  } else if (sampler_ == "ordered") {
    ordered_ = std::make_unique<data::OrderedLoader>(train, G, T, rank, world, td.train_tokens);
    steps_per_epoch_ = ordered_->steps_per_epoch();
  } else if (sampler_ == "crop") {
    crop_ = std::make_unique<data::RandomCropSampler>(train, G, T, rank, world, seed, td.train_tokens);
    steps_per_epoch_ = std::max<int64_t>(1, static_cast<int64_t>(td.train_tokens) / (G * T));
  } else {
    fail("config error: train.sampler = '{}' is not valid for a token stream (auto, ordered, crop)", sampler_);
  }
}

BatchSource::~BatchSource() = default;

void BatchSource::fill(int64_t step, data::TokenBatch* out) const {
  if (examples_) examples_->fill(step, out);
  else if (ordered_) ordered_->fill(step, out);
  else crop_->fill(step, out);
}

void BatchSource::start(int64_t step) {
  prefetch_ = std::make_unique<data::Prefetcher>([this](int64_t k, data::TokenBatch* out) { fill(k, out); }, step,
                                                 prefetch_depth_);
}

data::TokenBatch BatchSource::next() {
  if (!prefetch_) fail("internal error: BatchSource::next() before start()");
  return prefetch_->next();
}

}  // namespace recur::train
