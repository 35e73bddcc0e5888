// The attention language models: Transformer-XL (xl, rsa_xl, tl_xl, fl_xl), the Block-Recurrent
// Transformer as an XL stack with one block-recurrent layer (brt, rsa_brt) and the decoder-only
// Transformer (transformer, rsa_transformer). Invariant: names follow the reference MemTransformerLM
// state_dict (word_emb.emb_layers.N, r_w_bias, r_r_bias, layers.N.dec_attn/pos_ff, crit.out_layers.N.bias).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>

#include "model/adaptive.h"
#include "model/attention.h"
#include "model/brt.h"
#include "model/model.h"

namespace recur::model {

enum class PosEncoding { kSinusoidal, kLearned, kNone };
// model.init: the Transformer-XL reference's N(0, init_std), or Bhattamishra et al.'s formal-language
// Transformer (embedding and output weights U(-0.1, 0.1), the rest PyTorch's module defaults).
enum class InitScheme { kNormal, kBhattamishra };

struct LmOptions {
  std::string type = "xl";
  int64_t vocab_size = 256;
  int64_t n_layer = 12;
  int64_t d_inner = 2048;
  int64_t init_seed = 1;
  double init_std = 0.02;
  InitScheme init = InitScheme::kNormal;
  bool tie_output = true;              // false: the output layer has its own weight (crit.out_layers.0.weight)
  AttentionOptions attn;               // per layer; attn.rem is filled per layer by rem_for_layer
  std::function<std::optional<RemOptions>(int64_t layer)> rem_for_layer;
  // Transformer-XL
  int64_t mem_len = 512;
  int64_t clamp_len = -1;              // <= 0: no clamping
  bool same_length = false;
  bool zero_initial_memory = false;    // model.initial_memory = zeros: no state means mem_len zero hidden states
  int64_t eval_mem_len = -1;           // < 0: mem_len
  bool eval_same_length = true;
  int64_t eval_clamp_len = -1;
  // Decoder-only Transformer
  PosEncoding pos_encoding = PosEncoding::kSinusoidal;
  int64_t max_len = 1024;              // learned positions
  // Block-Recurrent Transformer: the index of the block-recurrent layer (< 0: none)
  int64_t brt_layer = -1;
  BrtOptions brt;
  // Adaptive input and softmax (adaptive.h); the defaults are one tied d_model table and a full softmax.
  std::vector<int64_t> cutoffs;
  int64_t div_val = 1;
  int64_t d_embed = 0;                 // 0: attn.d_model
  bool tie_projs = true;
};

class TransformerLm : public LanguageModel {
 public:
  explicit TransformerLm(LmOptions options);
  ForwardResult forward(const torch::Tensor& tokens, const State& state) override;
  std::string type() const override { return options_.type; }
  bool carries_state() const override {
    return (options_.attn.relative && options_.mem_len > 0) || options_.brt_layer >= 0;
  }
  void set_eval_settings(int64_t mem_len, bool same_length, int64_t clamp_len) override;
  std::vector<double> rsa_gates() override;
  // With tail clusters the forward returns the hidden states and the loss comes from here.
  torch::Tensor output_nll(const ForwardResult& out, const torch::Tensor& target) override;
  const LmOptions& options() const { return options_; }

 private:
  void reset_parameters();
  LmOptions options_;
  AdaptiveEmbedding word_emb{nullptr};
  ProjectedAdaptiveLogSoftmax crit{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::Tensor r_w_bias, r_r_bias, pos_weight, inv_freq;
  torch::nn::LayerNorm ln_f{nullptr};  // pre-LN decoder-only Transformer only
};

// The causal mask over [memory ‖ segment]: key j visible to query i iff j <= i + M; with
// same_length every query sees exactly mem_len keys. true = hidden.
torch::Tensor attention_mask(int64_t qlen, int64_t mlen, int64_t mem_len, bool same_length, const torch::Device& device);

}  // namespace recur::model
