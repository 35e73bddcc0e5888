// See options.h.
#include "train/options.h"

#include "core/config.h"
#include "core/error.h"

namespace recur::train {

TrainOptions TrainOptions::from(const Config& c) {
  TrainOptions o;
  o.steps = c.get_int("train.steps");
  o.batch_size = c.get_int("train.batch_size");
  o.tgt_len = c.get_int("train.tgt_len");
  o.grad_accum = c.get_int("train.grad_accum");
  o.seed = c.get_int("train.seed");
  o.threads = c.get_int("train.threads");
  o.log_every = c.get_int("train.log_every");
  o.eval_every = c.get_int("train.eval_every");
  o.loss_last = c.get_int("train.loss_last");
  o.optimizer = c.get_string("train.optimizer");
  o.optimizer_kernel = c.get_string("train.optimizer_kernel");
  o.lr = c.get_float("train.lr");
  o.weight_decay = c.get_float("train.weight_decay");
  o.beta1 = c.get_float("train.beta1");
  o.beta2 = c.get_float("train.beta2");
  o.clip = c.get_float("train.clip");
  o.bf16 = c.get_string("train.precision") == "bf16";
  o.reduce_bf16 = c.get_string("train.reduce_dtype") == "bf16";
  o.skip_nan = c.get_string("train.nan_policy") == "skip";
  o.sampler = c.get_string("train.sampler");
  o.device = c.get_string("train.device");
  o.backend = c.get_string("train.backend");
  o.first_bucket_mb = c.get_float("train.first_bucket_mb");
  o.bucket_mb = c.get_float("train.bucket_mb");
  if (c.has("train.collective_timeout_s")) o.collective_timeout_s = c.get_float("train.collective_timeout_s");
  return o;
}

void TrainOptions::check(int world) const {
  if (batch_size % world != 0) {
    fail("config error: train.batch_size = {} (global) is not divisible by the {} ranks", batch_size, world);
  }
  const int64_t local_rows = batch_size / world;
  if (local_rows % grad_accum != 0) {
    fail("config error: the {} rows per rank (train.batch_size / ranks) are not divisible by train.grad_accum = {}",
         local_rows, grad_accum);
  }
  if (loss_last > tgt_len) fail("config error: train.loss_last = {} exceeds train.tgt_len = {}", loss_last, tgt_len);
}

}  // namespace recur::train
