// The optimizer a run trains with (train.optimizer): Adam, AdamW (decoupled weight decay on parameters of
// two or more dimensions, as nanoGPT) or plain SGD (the R-Transformer's: no momentum, no state to checkpoint).
#pragma once

#include <memory>
#include <vector>

#include <torch/types.h>

namespace torch::optim {
class Optimizer;
}

namespace recur::train {

struct TrainOptions;

// train.optimizer_kernel: "fused" (the default, "auto") updates each parameter group with ATen's fused
// Adam/AdamW kernel (one call over all its tensors, on the CPU or a GPU); "loop" is LibTorch's
// torch::optim::Adam/AdamW, one parameter at a time. Both keep the same state (AdamParamState /
// AdamWParamState: step, exp_avg, exp_avg_sq), so checkpoints move between them; they agree to 1e-6
// (tests/train/test_optimizer.cpp).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainOptions& options, std::vector<torch::Tensor> params);

// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace recur::train
