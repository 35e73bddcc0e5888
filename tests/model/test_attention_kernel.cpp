// model.attention_kernel: the SDPA path equals the math path (the reference's expressions) in logits and
// gradients for every model family built on model/attention, over two segments with state carried; with
// attention dropout on, both have the same mean output over many draws.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "model/attention.h"
#include "model/model.h"

namespace recur::model {
namespace {

Config tiny(const std::string& type, const std::string& kernel, std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {"model.type=" + type, "model.n_layer=3", "model.n_head=4", "model.d_model=32",
                                   "model.d_inner=64", "model.dropout=0.0", "model.mem_len=8", "train.tgt_len=8",
                                   "model.attention_kernel=" + kernel, "train.seed=5"};
  if (type == "rsa_xl" || type == "rsa_transformer" || type == "rsa_brt") {
    sets.insert(sets.end(), {"model.n_rsa_heads=3", "model.rem_types=[1,1,0,0,1,0]", "model.dilations=[2]"});
  }
  if (type == "tl_xl" || type == "fl_xl") sets.insert(sets.end(), {"model.n_rsa_heads=2", "model.rem_truncation=12"});
  if (type == "fl_xl") sets.push_back("model.fl_max_len=40");
  if (type == "brt" || type == "rsa_brt") sets.insert(sets.end(), {"model.brt_window=4", "model.brt_states=4", "model.mem_len=0"});
  if (type == "r_transformer") sets.insert(sets.end(), {"model.pos_enc=none", "model.mem_len=0", "model.local_window=3"});
  if (type == "gpt" || type == "recurrent_transformer") sets.insert(sets.end(), {"model.pos_enc=learned", "model.mem_len=0"});
  sets.insert(sets.end(), extra.begin(), extra.end());
  return Config::from_overrides(sets);
}

// Logits of two consecutive segments (state carried) and the gradients of their summed loss.
struct Outcome {
  std::vector<torch::Tensor> logits;
  std::vector<std::pair<std::string, torch::Tensor>> grads;
};

Outcome run_two_segments(LanguageModel& model, const torch::Tensor& tokens) {
  Outcome r;
  State state;
  torch::Tensor loss = torch::zeros({});
  for (int64_t s = 0; s < 2; ++s) {
    auto out = model.forward(tokens.slice(1, 8 * s, 8 * s + 8), state);
    state = out.state;
    r.logits.push_back(out.logits.detach());
    loss = loss + out.logits.logsumexp(-1).mean() - out.logits.select(-1, 3).mean();
  }
  loss.backward();
  for (const auto& p : model.named_parameters()) {
    if (p.value().grad().defined()) r.grads.emplace_back(p.key(), p.value().grad().clone());
  }
  return r;
}

TEST(AttentionKernel, SdpaEqualsMathInLogitsAndGradientsForEveryFamily) {
  for (const std::string type : {"transformer", "rsa_transformer", "xl", "rsa_xl", "tl_xl", "fl_xl", "brt", "rsa_brt",
                                 "r_transformer", "gpt", "recurrent_transformer"}) {
    torch::manual_seed(7);
    auto tokens = torch::randint(50, {2, 16}, torch::kInt64);
    auto math = make_model(tiny(type, "math"), 50);
    auto sdpa = make_model(tiny(type, "sdpa"), 50);
    math->train();
    sdpa->train();
    const Outcome a = run_two_segments(*math, tokens), b = run_two_segments(*sdpa, tokens);
    for (size_t s = 0; s < a.logits.size(); ++s) {
      EXPECT_TRUE(torch::allclose(a.logits[s], b.logits[s], 1e-5, 1e-5))
          << type << " segment " << s << ": max |diff| " << (a.logits[s] - b.logits[s]).abs().max().item<double>();
    }
    ASSERT_EQ(a.grads.size(), b.grads.size()) << type;
    ASSERT_GT(a.grads.size(), 0u) << type;
    for (size_t i = 0; i < a.grads.size(); ++i) {
      EXPECT_EQ(a.grads[i].first, b.grads[i].first);
      EXPECT_TRUE(torch::allclose(a.grads[i].second, b.grads[i].second, 1e-5, 1e-6))
          << type << " " << a.grads[i].first << ": max |diff| "
          << (a.grads[i].second - b.grads[i].second).abs().max().item<double>();
    }
  }
}

// Attention dropout is inside the SDPA kernel: not the same draws as nn::Dropout, but the same law. Over
// many training-mode draws both kernels' outputs have the dropout-free output as their mean (inverted
// dropout keeps the expectation) and the same spread around it, which is far from zero (so dropout
// does happen in both).
TEST(AttentionKernel, DropoutHasTheSameMeanAndSpread) {
  for (const bool relative : {false, true}) {
    torch::NoGradGuard no_grad;
    AttentionOptions o;
    o.d_model = 32;
    o.n_head = 4;
    o.d_head = 8;
    o.dropout = 0.0;
    o.dropatt = 0.3;
    o.relative = relative;
    torch::manual_seed(3);
    o.kernel = AttentionKernel::kMath;
    Attention math(o);
    o.kernel = AttentionKernel::kSdpa;
    Attention sdpa(o);
    auto from = math->named_parameters();
    for (auto& p : sdpa->named_parameters()) p.value().copy_(from[p.key()]);  // same weights
    const int64_t T = 8;
    auto h = torch::randn({2, T, 32});
    torch::Tensor pos = relative ? torch::randn({T, 32}) : torch::Tensor();
    torch::Tensor rw = relative ? torch::randn({4, 8}) * 0.1 : torch::Tensor();
    torch::Tensor rr = relative ? torch::randn({4, 8}) * 0.1 : torch::Tensor();
    torch::Tensor mask = relative ? torch::triu(torch::ones({T, T}, torch::kBool), 1) : torch::Tensor();
    math->eval();
    const auto clean = math->attend(h, {}, pos, rw, rr, mask);
    math->train();
    sdpa->train();
    const int draws = 3000;
    torch::Tensor mean_a = torch::zeros_like(clean), mean_b = torch::zeros_like(clean);
    torch::Tensor sq_a = torch::zeros_like(clean), sq_b = torch::zeros_like(clean);
    for (int i = 0; i < draws; ++i) {
      auto a = math->attend(h, {}, pos, rw, rr, mask), b = sdpa->attend(h, {}, pos, rw, rr, mask);
      mean_a += a / draws;
      mean_b += b / draws;
      sq_a += (a - clean).pow(2) / draws;
      sq_b += (b - clean).pow(2) / draws;
    }
    const double spread_a = sq_a.mean().sqrt().item<double>(), spread_b = sq_b.mean().sqrt().item<double>();
    EXPECT_GT(spread_a, 0.05) << relative;
    EXPECT_NEAR(spread_b / spread_a, 1.0, 0.05) << relative << ": spreads " << spread_a << " vs " << spread_b;
    // the standard error of a mean over 3000 draws is spread/55; allow 5 of them
    EXPECT_LT((mean_a - clean).abs().max().item<double>(), 5 * spread_a / std::sqrt(draws) * 3) << relative;
    EXPECT_LT((mean_b - clean).abs().max().item<double>(), 5 * spread_a / std::sqrt(draws) * 3) << relative;
  }
}

TEST(AttentionKernel, UnknownKernelIsAClearError) {
  try {
    make_model(tiny("xl", "flash"), 50);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention_kernel"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace recur::model
