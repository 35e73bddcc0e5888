// The block-recurrent layer of the Block-Recurrent Transformer (Hutchins et al. 2022; reference code
// google-research/meliad) as the RSA paper uses it inside an XL stack. A segment is cut into windows of
// W tokens processed in order: tokens attend causally over [previous window ‖ current window] (relative
// attention) and cross-attend to S recurrent state vectors; the states self-attend, cross-attend to the
// tokens' keys and values, and update through a fixed or LSTM-style gate.
// Invariant: tokens of window k see only states updated by windows < k (causal); the state and the
// previous window flow with gradient inside a segment and leave the layer detached, so the state update
// learns only from segments of two or more windows (make_model refuses fewer).
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
  bool lstm_gate = false;   // false: fixed gate s' = s σ(b) + y (1 − σ(b))
  bool state_ffn = false;   // false: "skip" (no feed-forward on the state update)
};

struct BrtCarry {
  torch::Tensor state;  // [B, S, d] (undefined: the learned initial state)
  torch::Tensor prev;   // [B, W', d] the previous window's layer input (undefined: none)
};

// meliad's gate between the state s and an update y computed from a hidden vector a (the concatenated
// attention outputs, or the state feed-forward's hidden layer): fixed, s σ(b) + y (1 − σ(b)); LSTM,
// s σ(W_f a + b_f + 1) + y σ(W_i a + b_i − 1). Every bias starts at 0.
class BrtGateImpl : public torch::nn::Module {
 public:
  BrtGateImpl(int64_t hidden, int64_t d_model, bool lstm);
  torch::Tensor forward(const torch::Tensor& a, const torch::Tensor& s, const torch::Tensor& y);

 private:
  torch::Tensor bias;                                     // fixed gate
  torch::nn::Linear input{nullptr}, forget{nullptr};      // LSTM gate
};
TORCH_MODULE(BrtGate);

class BlockRecurrentLayerImpl : public torch::nn::Module {
 public:
  BlockRecurrentLayerImpl(const AttentionOptions& attn, int64_t d_inner, const BrtOptions& brt);
  // h: [B, T, d] the layer input; inv_freq, r_w_bias, r_r_bias: the XL stack's. Returns the layer
  // output; `carry` is read and replaced by the state after the segment (detached).
  torch::Tensor forward(const torch::Tensor& h, BrtCarry* carry, const torch::Tensor& inv_freq,
                        const torch::Tensor& r_w_bias, const torch::Tensor& r_r_bias);
  // meliad's scales for the state parameters, applied after the stack's reference initialisation:
  // initial state N(0, 0.1), state position embeddings N(0, 1) (they are added after a LayerNorm).
  void reset_state_parameters();
  Attention self_attn{nullptr};
  const BrtOptions& options() const { return brt_; }

 private:
  torch::Tensor heads_attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);
  AttentionOptions attn_;
  BrtOptions brt_;
  // q_cross: the tokens' queries to the states; state_kv: the states' keys and values (read by both
  // the states' self-attention and the tokens' cross-attention); state_q, state_q_cross: the states'
  // queries for their self-attention and for their cross-attention to the tokens' keys and values.
  torch::nn::Linear q_cross{nullptr}, state_kv{nullptr}, state_q{nullptr}, state_q_cross{nullptr}, o_net{nullptr},
      state_o{nullptr}, state_ff_in{nullptr}, state_ff_out{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr}, state_layer_norm{nullptr}, state_ff_layer_norm{nullptr};
  PositionwiseFF pos_ff{nullptr};
  BrtGate gate{nullptr}, ff_gate{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::Tensor initial_state, state_pos;
};
TORCH_MODULE(BlockRecurrentLayer);

}  // namespace recur::model
