// Regions that stay in fp32 under train.precision = bf16 autocast.
// - the output layer: logits rounded to bf16 lose the BPC differences the papers report (0.006);
// - recurrent cells: ATen's CUDA autocast runs cuDNN RNNs in fp16 whatever the autocast dtype, and fp16
//   without loss scaling underflows.
#pragma once

#include <c10/core/DispatchKeySet.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/types.h>

namespace recur::model {

// Autocast is off for the lifetime of this object (on every device type).
class Fp32Region {
 public:
  Fp32Region() : guard_(c10::autocast_dispatch_keyset) {}

 private:
  c10::impl::ExcludeDispatchKeyGuard guard_;
};

// x W^T + b in fp32 whatever the autocast state; x is cast up when autocast made it bf16.
torch::Tensor linear_fp32(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias = {});

}  // namespace recur::model
