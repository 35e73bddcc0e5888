// nanoGPT's GPT (Karpathy; bias = False) and the recurrent transformer of seed 001 built from the same
// pre-LN causal block T. GPT (model.type gpt, seed 001's Transformer baseline) runs T over the segment;
// the recurrent transformer applies T per layer to windows of w positions:
//   h_1 = T(x_1);   (y_i, h_{i+1}) = T([h_i ‖ x_{i+1}]);   y_N = T(h_N)
// w = 1 is the paper; the outputs y feed the next layer. Batched over the batch, sequential over time,
// full backpropagation through the recurrence; no state between samples.
// Invariant: parameter names follow nanoGPT (transformer.wte, transformer.h.N.attn.c_attn, ...), and
// no Linear or LayerNorm has a bias, so the counts equal nanoGPT's; with pos_enc none there is no
// position parameter and no position input.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "model/attention.h"
#include "model/model.h"

namespace recur::model {

struct RecurrentTransformerOptions {
  int64_t vocab_size = 256;
  int64_t d_model = 384;
  int64_t n_layer = 1;
  int64_t n_head = 6;
  bool recurrent = true;          // false: nanoGPT's GPT, every block over the whole segment
  int64_t window = 1;             // w (recurrent only)
  bool learned_positions = true;  // absolute embedding added once, before the blocks
  int64_t max_len = 256;
  double dropout = 0.2;  // after the embedding, on attention probabilities, after each residual branch
  int64_t init_seed = 1;
  AttentionKernel kernel = AttentionKernel::kAuto;  // model.attention_kernel (see attention.h)
};

// nanoGPT's LayerNorm with bias = False: a gain (initialised to 1) and no shift.
class BiasFreeLayerNormImpl : public torch::nn::Module {
 public:
  explicit BiasFreeLayerNormImpl(int64_t d);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
};
TORCH_MODULE(BiasFreeLayerNorm);

// nanoGPT's Block: x + attn(ln_1(x)), then + mlp(ln_2(x)); causal over its input positions.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t d_model, int64_t n_head, double dropout, AttentionKernel kernel = AttentionKernel::kAuto);
  torch::Tensor forward(const torch::Tensor& x);  // [B, L, d]

 private:
  int64_t n_head_;
  AttentionKernel kernel_;
  BiasFreeLayerNorm ln_1{nullptr}, ln_2{nullptr};
  std::shared_ptr<torch::nn::Module> attn, mlp;
  torch::nn::Linear c_attn{nullptr}, attn_proj{nullptr}, c_fc{nullptr}, mlp_proj{nullptr};
  torch::nn::Dropout attn_dropout{nullptr}, resid_dropout{nullptr}, mlp_dropout{nullptr};
};
TORCH_MODULE(Block);

class RecurrentTransformerLm : public LanguageModel {
 public:
  explicit RecurrentTransformerLm(const RecurrentTransformerOptions& options);
  ForwardResult forward(const torch::Tensor& tokens, const State& state) override;
  std::string type() const override { return o_.recurrent ? "recurrent_transformer" : "gpt"; }
  Block block(int64_t layer);
  // One layer's recurrence over x [B, N, d] with window w (the efficient form used by forward).
  static torch::Tensor recur_layer(Block& block, const torch::Tensor& x, int64_t w);

 private:
  RecurrentTransformerOptions o_;
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  BiasFreeLayerNorm ln_f{nullptr};
  torch::nn::Dropout drop{nullptr};
};

}  // namespace recur::model
