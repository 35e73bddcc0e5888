// See optimizer.h.
#include "train/optimizer.h"

#include <torch/torch.h>

#include "core/error.h"
#include "train/options.h"

namespace recur::train {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainOptions& o, std::vector<torch::Tensor> params) {
  auto betas = std::make_tuple(o.beta1, o.beta2);
  if (o.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(std::move(params), torch::optim::SGDOptions(o.lr).weight_decay(o.weight_decay));
  }
  if (o.optimizer == "adamw") {
    return std::make_unique<torch::optim::AdamW>(std::move(params),
                                                 torch::optim::AdamWOptions(o.lr).betas(betas).weight_decay(o.weight_decay));
  }
  if (o.optimizer == "adam") {
    return std::make_unique<torch::optim::Adam>(std::move(params),
                                                torch::optim::AdamOptions(o.lr).betas(betas).weight_decay(o.weight_decay));
  }
  fail("config error: train.optimizer = '{}' (adam, adamw, sgd)", o.optimizer);
}

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

}  // namespace recur::train
