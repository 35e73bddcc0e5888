// See brt.h. Batch-first throughout; H heads of dh over d_model.
#include "model/brt.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "model/lm.h"

namespace recur::model {

BlockRecurrentLayerImpl::BlockRecurrentLayerImpl(const AttentionOptions& attn, int64_t d_inner, const BrtOptions& brt)
    : attn_(attn), brt_(brt) {
  if (brt.window < 1 || brt.states < 1) fail("block-recurrent layer needs a window and states of at least 1");
  const int64_t d = attn.d_model, hd = attn.n_head * attn.d_head;
  AttentionOptions self = attn;
  self.project_out = false;  // combined with the cross-attention by this layer's o_net
  self_attn = register_module("self_attn", Attention(self));
  auto lin = [&](const char* name, int64_t in, int64_t out) {
    return register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)));
  };
  q_cross = lin("q_cross", d, hd);
  state_kv = lin("state_kv", d, 2 * hd);
  state_q = lin("state_q", d, hd);
  token_kv = lin("token_kv", d, 2 * hd);
  o_net = lin("o_net", 2 * hd, d);
  state_o = lin("state_o", 2 * hd, d);
  if (!attn.pre_ln) layer_norm = register_module("layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  state_layer_norm = register_module("state_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  pos_ff = register_module("pos_ff", PositionwiseFF(d, d_inner, attn.dropout, attn.pre_ln));
  if (brt.state_ffn) {
    state_ff_layer_norm = register_module("state_ff_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    state_ff = register_module("state_ff", torch::nn::Sequential(torch::nn::Linear(d, d_inner), torch::nn::ReLU(),
                                                                 torch::nn::Dropout(attn.dropout), torch::nn::Linear(d_inner, d)));
  }
  if (brt.lstm_gate) {
    gate_z = register_module("gate_z", torch::nn::Linear(d, d));
    gate_i = register_module("gate_i", torch::nn::Linear(d, d));
    gate_f = register_module("gate_f", torch::nn::Linear(d, d));
  } else {
    gate_bias = register_parameter("gate_bias", torch::zeros({d}));
  }
  initial_state = register_parameter("initial_state", torch::randn({brt.states, d}) * 0.02);
  state_pos = register_parameter("state_pos", torch::randn({brt.states, d}) * 0.02);
  drop = register_module("drop", torch::nn::Dropout(attn.dropout));
  dropatt = register_module("dropatt", torch::nn::Dropout(attn.dropatt));
}

// Unmasked multi-head attention: q [B, Tq, H*dh], k and v [B, Tk, H*dh] -> [B, Tq, H*dh].
torch::Tensor BlockRecurrentLayerImpl::heads_attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t B = q.size(0), Tq = q.size(1), Tk = k.size(1), H = attn_.n_head, dh = attn_.d_head;
  auto qh = q.view({B, Tq, H, dh}).transpose(1, 2);
  auto kh = k.view({B, Tk, H, dh}).transpose(1, 2);
  auto vh = v.view({B, Tk, H, dh}).transpose(1, 2);
  auto prob = dropatt(torch::softmax(torch::matmul(qh, kh.transpose(2, 3)) / std::sqrt(static_cast<double>(dh)), -1));
  return torch::matmul(prob, vh).transpose(1, 2).reshape({B, Tq, H * dh});
}

torch::Tensor BlockRecurrentLayerImpl::forward(const torch::Tensor& h, BrtCarry* carry, const torch::Tensor& inv_freq,
                                               const torch::Tensor& r_w_bias, const torch::Tensor& r_r_bias) {
  const int64_t B = h.size(0), T = h.size(1), W = brt_.window;
  torch::Tensor s = carry->state.defined() ? carry->state : initial_state.unsqueeze(0).expand({B, -1, -1});
  torch::Tensor prev = carry->prev;
  if (s.size(0) != B || s.size(1) != brt_.states) {
    fail("block-recurrent state has shape {}x{}, the model expects {}x{} (state from another model?)", s.size(0), s.size(1), B,
         brt_.states);
  }
  std::vector<torch::Tensor> outs;
  for (int64_t t0 = 0; t0 < T; t0 += W) {
    const int64_t Wi = std::min(W, T - t0);
    auto x = h.slice(1, t0, t0 + Wi);
    const int64_t P = prev.defined() ? prev.size(1) : 0, K = P + Wi;
    auto pos_seq = torch::arange(static_cast<double>(K - 1), -1.0, -1.0, inv_freq.options());
    auto pos_emb = sinusoid(pos_seq, inv_freq).to(h.dtype());
    auto mask = attention_mask(Wi, P, 0, false, h.device());
    // token side: [self-attention over (previous ‖ current window) ‖ cross-attention to the states]
    auto self = self_attn->attend(x, prev, pos_emb, r_w_bias, r_r_bias, mask);
    auto xin = attn_.pre_ln ? self_attn->norm(x) : x;
    auto sn = state_layer_norm(s) + state_pos;
    auto skv = state_kv(sn).chunk(2, -1);
    auto cross = heads_attend(q_cross(xin), skv[0], skv[1]);
    auto y = drop(o_net(torch::cat({self, cross}, -1)));
    auto xo = attn_.pre_ln ? x + y : layer_norm(x + y);
    outs.push_back(pos_ff(xo));
    // state side: self-attention among the states and cross-attention to the window, then the gate
    auto sq = state_q(sn);
    auto tkv = token_kv(xin).chunk(2, -1);
    auto u = state_o(torch::cat({heads_attend(sq, skv[0], skv[1]), heads_attend(sq, tkv[0], tkv[1])}, -1));
    if (brt_.state_ffn) u = u + state_ff->forward(state_ff_layer_norm(u));
    if (brt_.lstm_gate) {
      auto z = torch::tanh(gate_z(u));
      auto i = torch::sigmoid(gate_i(u) - 1.0);
      auto f = torch::sigmoid(gate_f(u) + 1.0);
      s = s * f + z * i;
    } else {
      auto g = torch::sigmoid(gate_bias);
      s = s * g + u * (1.0 - g);
    }
    prev = x;
  }
  carry->state = s.detach();
  carry->prev = prev.detach();
  return outs.size() == 1 ? outs[0] : torch::cat(outs, 1);
}

}  // namespace recur::model
