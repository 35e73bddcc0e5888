// The block-recurrent layer of the Block-Recurrent Transformer (Hutchins et al. 2022) as the RSA paper
// uses it inside an XL stack. A segment is cut into windows of W tokens processed in order: tokens
// attend causally over [previous window ‖ current window] (relative attention, optionally with RSA
// heads) and cross-attend to S recurrent state vectors; the states self-attend, cross-attend to the
// window's tokens, and update through a fixed or LSTM-style gate.
// Invariant: tokens of window k see only states updated by windows < k (causal); the state and the
// previous window flow with gradient inside a segment and leave the layer detached.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "model/attention.h"

namespace recur::model {

struct BrtOptions {
  int64_t window = 512;     // W tokens per window
  int64_t states = 512;     // S state vectors
  bool lstm_gate = false;   // false: fixed gate s' = s σ(b) + u (1 − σ(b))
  bool state_ffn = false;   // false: "skip" (no feed-forward on the state update)
};

struct BrtCarry {
  torch::Tensor state;  // [B, S, d] (undefined: the learned initial state)
  torch::Tensor prev;   // [B, W', d] the previous window's layer input (undefined: none)
};

class BlockRecurrentLayerImpl : public torch::nn::Module {
 public:
  BlockRecurrentLayerImpl(const AttentionOptions& attn, int64_t d_inner, const BrtOptions& brt);
  // h: [B, T, d] the layer input; inv_freq, r_w_bias, r_r_bias: the XL stack's. Returns the layer
  // output; `carry` is read and replaced by the state after the segment (detached).
  torch::Tensor forward(const torch::Tensor& h, BrtCarry* carry, const torch::Tensor& inv_freq,
                        const torch::Tensor& r_w_bias, const torch::Tensor& r_r_bias);
  Attention self_attn{nullptr};
  const BrtOptions& options() const { return brt_; }

 private:
  torch::Tensor heads_attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);
  AttentionOptions attn_;
  BrtOptions brt_;
  torch::nn::Linear q_cross{nullptr}, state_kv{nullptr}, state_q{nullptr}, token_kv{nullptr}, o_net{nullptr},
      state_o{nullptr}, gate_z{nullptr}, gate_i{nullptr}, gate_f{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr}, state_layer_norm{nullptr}, state_ff_layer_norm{nullptr};
  PositionwiseFF pos_ff{nullptr};
  torch::nn::Sequential state_ff{nullptr};
  torch::nn::Dropout drop{nullptr}, dropatt{nullptr};
  torch::Tensor initial_state, state_pos, gate_bias;
};
TORCH_MODULE(BlockRecurrentLayer);

}  // namespace recur::model
