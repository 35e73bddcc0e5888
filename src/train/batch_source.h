// Where a rank's training batches come from: the sampler choice (train.sampler: ordered XL streams,
// random crops, or shuffled examples), data.fraction, and a prefetch thread ahead of the step.
// Invariant: batch k is a pure function of (config, k, rank, world), so resume starts at any step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/loaders.h"
#include "train/task.h"

namespace recur {
class Config;
}
namespace recur::data {
class Prefetcher;
struct TrainingData;
}  // namespace recur::data

namespace recur::train {

class BatchSource {
 public:
  // `carries_state`: the model carries state across segments (auto sampler → ordered streams).
  BatchSource(const Config& config, const data::TrainingData& data, Task task, bool carries_state, int rank, int world);
  ~BatchSource();
  BatchSource(const BatchSource&) = delete;
  BatchSource& operator=(const BatchSource&) = delete;

  // The sampler in use, in words ("ordered", "crop", "shuffled examples").
  const std::string& sampler() const { return sampler_; }
  // Whether rows are persistent streams whose recurrent state is carried (and checkpointed).
  bool ordered() const { return ordered_ != nullptr; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // Starts reading ahead from `step` with data.prefetch batches in flight; then next() returns the
  // batches of step, step+1, ... in order.
  void start(int64_t step);
  data::TokenBatch next();
  // Batch k directly (no prefetch).
  void fill(int64_t step, data::TokenBatch* out) const;

 private:
  std::string sampler_;
  int prefetch_depth_ = 2;
  int64_t steps_per_epoch_ = 1;
  std::unique_ptr<data::OrderedLoader> ordered_;
  std::unique_ptr<data::RandomCropSampler> crop_;
  std::unique_ptr<data::ExampleSampler> examples_;
  std::unique_ptr<data::Prefetcher> prefetch_;
};

}  // namespace recur::train
