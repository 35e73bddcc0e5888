// The train.* settings a run uses, read and checked once from the config (typed, no string lookups
// in the step). Cross-field checks that need the world size live in check().
#pragma once

#include <cstdint>
#include <string>

namespace recur {
class Config;
}

namespace recur::train {

struct TrainOptions {
  int64_t steps = 0, batch_size = 0, tgt_len = 0, grad_accum = 1, seed = 1, threads = 0;
  int64_t log_every = 10, eval_every = 0, loss_last = 0;
  std::string optimizer = "adam";  // adam | adamw | sgd
  std::string optimizer_kernel = "auto";  // auto (= fused) | fused | loop: see optimizer.h
  double lr = 2.5e-4, weight_decay = 0.0, beta1 = 0.9, beta2 = 0.999, clip = 0.25;
  bool bf16 = false;               // train.precision = bf16 (autocast of the forward)
  bool reduce_bf16 = false;        // train.reduce_dtype = bf16
  bool skip_nan = false;           // train.nan_policy = skip
  std::string sampler = "auto";
  std::string device = "auto";
  std::string backend = "auto";
  double first_bucket_mb = 1.0, bucket_mb = 25.0;
  double collective_timeout_s = 600.0;

  static TrainOptions from(const Config& config);
  // Throws a config error when the global batch does not split over `world` ranks and grad_accum
  // micro-batches, or train.loss_last exceeds the segment.
  void check(int world) const;
  std::string precision() const { return bf16 ? "bf16" : "fp32"; }
  std::string reduce_dtype() const { return reduce_bf16 ? "bf16" : "fp32"; }
};

}  // namespace recur::train
