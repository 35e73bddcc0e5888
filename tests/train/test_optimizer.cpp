// train.optimizer_kernel: the fused Adam/AdamW (ATen's _fused_adam_/_fused_adamw_ per parameter group)
// against LibTorch's torch::optim::Adam/AdamW over 20 steps, and the state both keep.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "train/optimizer.h"
#include "train/options.h"

namespace recur::train {
namespace {

std::vector<torch::Tensor> make_params() {
  torch::manual_seed(11);
  std::vector<torch::Tensor> ps = {torch::randn({16, 8}), torch::randn({8}), torch::randn({4, 3, 5}), torch::randn({1})};
  for (auto& p : ps) p.set_requires_grad(true);
  return ps;
}

// 20 steps with the same pseudo-random gradients (one parameter without a gradient at every third
// step, as LibTorch skips it); returns the final parameters.
std::vector<torch::Tensor> train(const TrainOptions& o) {
  auto params = make_params();
  auto opt = make_optimizer(o, params);
  torch::manual_seed(12);
  for (int step = 0; step < 20; ++step) {
    opt->zero_grad();
    for (size_t i = 0; i < params.size(); ++i) {
      auto g = torch::randn(params[i].sizes());
      if (i == 1 && step % 3 == 2) continue;
      params[i].mutable_grad() = g;
    }
    set_learning_rate(*opt, o.lr * (1.0 + 0.1 * step));
    opt->step();
  }
  std::vector<torch::Tensor> out;
  for (auto& p : params) out.push_back(p.detach().clone());
  return out;
}

TEST(FusedOptimizer, EqualsLibTorchsAdamAndAdamWOver20Steps) {
  for (const std::string name : {"adam", "adamw"}) {
    for (double wd : {0.0, 0.1}) {
      TrainOptions o;
      o.optimizer = name;
      o.lr = 1e-2;
      o.weight_decay = wd;
      o.beta1 = 0.8;
      o.beta2 = 0.95;
      o.optimizer_kernel = "loop";
      const auto loop = train(o);
      o.optimizer_kernel = "fused";
      const auto fused = train(o);
      const auto start = make_params();
      for (size_t i = 0; i < loop.size(); ++i) {
        const double diff = (loop[i] - fused[i]).abs().max().item<double>();
        EXPECT_LE(diff, 1e-6) << name << " wd " << wd << " parameter " << i;
        // and the 20 steps did move it (the comparison is not of two untouched tensors)
        EXPECT_GT((loop[i] - start[i].detach()).abs().max().item<double>(), 1e-3) << name << " parameter " << i;
      }
    }
  }
}

TEST(FusedOptimizer, KeepsLibTorchsStateSoCheckpointsRead) {
  TrainOptions o;
  o.optimizer = "adam";
  o.optimizer_kernel = "fused";
  auto params = make_params();
  auto opt = make_optimizer(o, params);
  ASSERT_NE(dynamic_cast<torch::optim::Adam*>(opt.get()), nullptr);
  for (int step = 0; step < 3; ++step) {
    for (auto& p : params) p.mutable_grad() = torch::ones_like(p);
    opt->step();
  }
  auto& st = static_cast<torch::optim::AdamParamState&>(*opt->state().at(params[0].unsafeGetTensorImpl()));
  EXPECT_EQ(st.step(), 3);
  EXPECT_TRUE(torch::allclose(st.exp_avg(), torch::full_like(params[0], 1 - 0.9 * 0.9 * 0.9)));
  o.optimizer = "adamw";
  EXPECT_NE(dynamic_cast<torch::optim::AdamW*>(make_optimizer(o, make_params()).get()), nullptr);
}

TEST(FusedOptimizer, UnknownKernelIsAConfigError) {
  TrainOptions o;
  o.optimizer_kernel = "foreach";
  EXPECT_THROW(make_optimizer(o, make_params()), Error);
}

}  // namespace
}  // namespace recur::train
