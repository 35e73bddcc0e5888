// See brt.h. Batch-first throughout; H heads of dh over d_model.
#include "model/brt.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "model/lm.h"

namespace recur::model {

BrtGateImpl::BrtGateImpl(int64_t hidden, int64_t d_model, bool lstm) {
  if (lstm) {
    input = register_module("input", torch::nn::Linear(hidden, d_model));
    forget = register_module("forget", torch::nn::Linear(hidden, d_model));
  } else {
    bias = register_parameter("bias", torch::zeros({d_model}));
  }
}

torch::Tensor BrtGateImpl::forward(const torch::Tensor& a, const torch::Tensor& s, const torch::Tensor& y) {
  if (input.is_empty()) {
    auto g = torch::sigmoid(bias);
    return s * g + y * (1.0 - g);
  }
  return s * torch::sigmoid(forget(a) + 1.0) + y * torch::sigmoid(input(a) - 1.0);
}

BlockRecurrentLayerImpl::BlockRecurrentLayerImpl(const AttentionOptions& attn, int64_t d_inner, const BrtOptions& brt)
    : attn_(attn), brt_(brt) {
  if (brt.window < 1 || brt.states < 1) fail("block-recurrent layer needs a window and states of at least 1");
  if (attn.rem) fail("block-recurrent layer: RSA heads are not supported in the recurrent layer (RSA-BRT keeps them plain)");
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
  state_q_cross = lin("state_q_cross", d, hd);
  o_net = lin("o_net", 2 * hd, d);
  state_o = lin("state_o", 2 * hd, d);
  if (!attn.pre_ln) layer_norm = register_module("layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  state_layer_norm = register_module("state_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  pos_ff = register_module("pos_ff", PositionwiseFF(d, d_inner, attn.dropout, attn.pre_ln));
  gate = register_module("gate", BrtGate(2 * hd, d, brt.lstm_gate));
  if (brt.state_ffn) {
    state_ff_layer_norm = register_module("state_ff_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
    state_ff_in = lin("state_ff_in", d, d_inner);
    state_ff_out = lin("state_ff_out", d_inner, d);
    ff_gate = register_module("ff_gate", BrtGate(d_inner, d, brt.lstm_gate));
  }
  initial_state = register_parameter("initial_state", torch::empty({brt.states, d}));
  state_pos = register_parameter("state_pos", torch::empty({brt.states, d}));
  reset_state_parameters();
  drop = register_module("drop", torch::nn::Dropout(attn.dropout));
}

void BlockRecurrentLayerImpl::reset_state_parameters() {
  torch::NoGradGuard no_grad;
  initial_state.normal_(0.0, 0.1);
  state_pos.normal_(0.0, 1.0);
}

// Unmasked multi-head attention without attention dropout (meliad has none on the state side or on the
// cross-attention): q [B, Tq, H*dh], k and v [B, Tk, H*dh] -> [B, Tq, H*dh].
torch::Tensor BlockRecurrentLayerImpl::heads_attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t B = q.size(0), Tq = q.size(1), Tk = k.size(1), H = attn_.n_head, dh = attn_.d_head;
  auto qh = q.view({B, Tq, H, dh}).transpose(1, 2);
  auto kh = k.view({B, Tk, H, dh}).transpose(1, 2);
  auto vh = v.view({B, Tk, H, dh}).transpose(1, 2);
  auto prob = torch::softmax(torch::matmul(qh, kh.transpose(2, 3)) / std::sqrt(static_cast<double>(dh)), -1);
  return torch::matmul(prob, vh).transpose(1, 2).reshape({B, Tq, H * dh});
}

torch::Tensor BlockRecurrentLayerImpl::forward(const torch::Tensor& h, BrtCarry* carry, const torch::Tensor& inv_freq,
                                               const torch::Tensor& r_w_bias, const torch::Tensor& r_r_bias) {
  const int64_t B = h.size(0), T = h.size(1), W = brt_.window, hd = attn_.n_head * attn_.d_head;
  torch::Tensor s = carry->state.defined() ? carry->state : initial_state.unsqueeze(0).expand({B, -1, -1});
  torch::Tensor prev = carry->prev;
  if (s.size(0) != B || s.size(1) != brt_.states) {
    fail("block-recurrent state has shape {}x{}, the model expects {}x{} (state from another model?)", s.size(0), s.size(1), B,
         brt_.states);
  }
  // The states cross-attend to the keys and values of the tokens' self-attention (meliad): rows k and v
  // of its qkv_net, applied to the same (pre-LN: normalised) [previous window ‖ current window].
  const torch::Tensor token_kv_weight = self_attn->named_parameters()["qkv_net.weight"].slice(0, hd, 3 * hd);
  std::vector<torch::Tensor> outs;
  for (int64_t t0 = 0; t0 < T; t0 += W) {
    const int64_t Wi = std::min(W, T - t0);
    auto x = h.slice(1, t0, t0 + Wi);
    const int64_t P = prev.defined() ? prev.size(1) : 0, K = P + Wi;
    auto pos_seq = torch::arange(static_cast<double>(K - 1), -1.0, -1.0, inv_freq.options());
    auto pos_emb = drop(sinusoid(pos_seq, inv_freq).to(h.dtype()));
    auto mask = attention_mask(Wi, P, 0, false, h.device());
    // token side: [self-attention over (previous ‖ current window) ‖ cross-attention to the states]
    auto self = self_attn->attend(x, prev, pos_emb, r_w_bias, r_r_bias, mask);
    auto context = P > 0 ? torch::cat({prev, x}, 1) : x;
    if (attn_.pre_ln) context = self_attn->norm(context);
    auto xin = context.slice(1, P);
    auto sn = state_layer_norm(s) + state_pos;
    auto skv = state_kv(sn).chunk(2, -1);
    auto cross = heads_attend(q_cross(xin), skv[0], skv[1]);
    auto y = drop(o_net(torch::cat({self, cross}, -1)));
    auto xo = attn_.pre_ln ? x + y : layer_norm(x + y);
    outs.push_back(pos_ff(xo));
    // state side: self-attention among the states and cross-attention to the tokens, then the gate;
    // the new state is read, with gradient, by the next window of this segment
    auto tkv = torch::nn::functional::linear(context, token_kv_weight).chunk(2, -1);
    auto a = torch::cat({heads_attend(state_q(sn), skv[0], skv[1]), heads_attend(state_q_cross(sn), tkv[0], tkv[1])}, -1);
    s = gate(a, s, state_o(a));
    if (brt_.state_ffn) {
      auto hidden = torch::relu(state_ff_in(state_ff_layer_norm(s)));
      s = ff_gate(hidden, s, state_ff_out(hidden));
    }
    prev = x;
  }
  carry->state = s.detach();
  carry->prev = prev.detach();
  return outs.size() == 1 ? outs[0] : torch::cat(outs, 1);
}

}  // namespace recur::model
