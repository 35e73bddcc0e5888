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
    // nanoGPT's two groups: weight decay on matrices and embeddings (two or more dimensions), none on
    // biases, gains and other vectors.
    auto decay = torch::optim::AdamWOptions(o.lr).betas(betas).weight_decay(o.weight_decay);
    auto none = decay;
    none.weight_decay(0.0);
    std::vector<torch::Tensor> matrices, vectors;
    for (auto& p : params) (p.dim() >= 2 ? matrices : vectors).push_back(p);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    if (!matrices.empty()) groups.emplace_back(matrices, std::make_unique<torch::optim::AdamWOptions>(decay));
    if (!vectors.empty()) groups.emplace_back(vectors, std::make_unique<torch::optim::AdamWOptions>(none));
    return std::make_unique<torch::optim::AdamW>(std::move(groups), decay);
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
