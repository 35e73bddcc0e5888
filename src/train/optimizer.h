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

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainOptions& options, std::vector<torch::Tensor> params);

// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace recur::train
