// See optimizer.h.
#include "train/optimizer.h"

#include <torch/torch.h>

#include "core/error.h"
#include "train/options.h"

namespace recur::train {
namespace {

// One fused update per parameter group, with the state LibTorch's optimizer keeps (so checkpoints and
// the "loop" optimizer read it unchanged). Parameters without a gradient are skipped, as LibTorch does.
template <class State, class Options>
void fused_step(torch::optim::Optimizer& opt, bool decoupled) {
  torch::NoGradGuard no_grad;
  for (auto& group : opt.param_groups()) {
    const auto& o = static_cast<const Options&>(group.options());
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps;
    // The kernel reads each parameter's step count (already advanced) from a 0-dim tensor on its device, and
    // only reads it: parameters with the same count share one, so a step makes one such tensor per distinct
    // count (normally one), not one small fill per parameter.
    std::vector<std::pair<int64_t, torch::Tensor>> counts;
    auto count_tensor = [&counts](int64_t step, const torch::Tensor& p) {
      for (const auto& [n, t] : counts) {
        if (n == step && t.device() == p.device()) return t;
      }
      counts.emplace_back(step, torch::full({}, static_cast<double>(step), p.options().dtype(torch::kFloat32)));
      return counts.back().second;
    };
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = opt.state()[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto st = std::make_unique<State>();
        st->step(0);
        st->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        st->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        if (o.amsgrad()) st->max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(st);
      }
      auto& st = static_cast<State&>(*slot);
      st.step(st.step() + 1);
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avgs.push_back(st.exp_avg());
      exp_avg_sqs.push_back(st.exp_avg_sq());
      if (o.amsgrad()) max_exp_avg_sqs.push_back(st.max_exp_avg_sq());
      steps.push_back(count_tensor(st.step(), p));
    }
    if (params.empty()) continue;
    const auto [beta1, beta2] = o.betas();
    if (decoupled) {
      at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, o.lr(), beta1, beta2,
                        o.weight_decay(), o.eps(), o.amsgrad(), /*maximize=*/false);
    } else {
      at::_fused_adam_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, o.lr(), beta1, beta2,
                       o.weight_decay(), o.eps(), o.amsgrad(), /*maximize=*/false);
    }
  }
}

// LibTorch's Adam or AdamW (same state, same checkpoints) whose step is one fused call per group.
template <class Base, class State, class Options, bool kDecoupled>
class Fused : public Base {
 public:
  using Base::Base;
  torch::Tensor step(torch::optim::Optimizer::LossClosure closure = nullptr) override {
    if (closure) fail("internal error: the fused Adam/AdamW takes no closure");
    fused_step<State, Options>(*this, kDecoupled);
    return {};
  }
};
using FusedAdam = Fused<torch::optim::Adam, torch::optim::AdamParamState, torch::optim::AdamOptions, false>;
using FusedAdamW = Fused<torch::optim::AdamW, torch::optim::AdamWParamState, torch::optim::AdamWOptions, true>;

}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainOptions& o, std::vector<torch::Tensor> params) {
  auto betas = std::make_tuple(o.beta1, o.beta2);
  if (o.optimizer_kernel != "auto" && o.optimizer_kernel != "fused" && o.optimizer_kernel != "loop") {
    fail("config error: train.optimizer_kernel = '{}' (auto, fused, loop)", o.optimizer_kernel);
  }
  const bool fused = o.optimizer_kernel != "loop";
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
    if (fused) return std::make_unique<FusedAdamW>(std::move(groups), decay);
    return std::make_unique<torch::optim::AdamW>(std::move(groups), decay);
  }
  if (o.optimizer == "adam") {
    const auto options = torch::optim::AdamOptions(o.lr).betas(betas).weight_decay(o.weight_decay);
    if (fused) return std::make_unique<FusedAdam>(std::move(params), options);
    return std::make_unique<torch::optim::Adam>(std::move(params), options);
  }
  fail("config error: train.optimizer = '{}' (adam, adamw, sgd)", o.optimizer);
}

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

}  // namespace recur::train
