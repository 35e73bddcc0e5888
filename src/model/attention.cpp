// See attention.h. Layout is batch-first throughout: [B, H, T, dh].
#include "model/attention.h"

#include <torch/torch.h>

#include <map>

#include <cmath>
#include <limits>

#include "core/error.h"

namespace recur::model {

torch::Tensor rel_shift(const torch::Tensor& x) {
  auto sizes = x.sizes();
  int64_t B = sizes[0], H = sizes[1], q = sizes[2], k = sizes[3];
  auto padded = torch::cat({torch::zeros({B, H, q, 1}, x.options()), x}, /*dim=*/3);  // [B,H,q,k+1]
  padded = padded.view({B, H, k + 1, q});
  return padded.slice(/*dim=*/2, 1).reshape({B, H, q, k});
}

AttentionKernel attention_kernel_from_string(const std::string& name) {
  if (name == "auto") return AttentionKernel::kAuto;
  if (name == "math") return AttentionKernel::kMath;
  if (name == "sdpa") return AttentionKernel::kSdpa;
  fail("model.attention_kernel: '{}' is not one of auto, math, sdpa", name);
}

torch::Tensor causal_mask(int64_t T, const torch::Device& device) {
  auto build = [&] { return torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(device)).triu(1); };
  if (!device.is_cpu() || T > kCachedMaskMax) return build();
  // Per thread, so no lock; never freed (a few lengths of at most kCachedMaskMax^2 bytes each), so nothing
  // is destroyed after LibTorch at exit. Callers only read the mask.
  thread_local auto* masks = new std::map<int64_t, torch::Tensor>();
  auto it = masks->find(T);
  if (it == masks->end()) it = masks->emplace(T, build()).first;
  return it->second;
}

namespace {

// scores with -inf where mask (bool, [T,K], true = hidden) is set. In float32/64 by adding a 0/-inf
// [T,K] matrix (built per call: T*K elements, against B*H*T*K in the add): a vectorised add whose
// backward passes the gradient through, where masked_fill with a broadcast mask runs a scalar loop
// forward and again backward (about 3x slower on a CPU at the formal-language sizes, B 32 x 5 heads
// x 50 x 50). The values are the same wherever the scores are finite. Half types keep masked_fill: an
// overflowed +inf score would turn into NaN under the add.
torch::Tensor hide(const torch::Tensor& scores, const torch::Tensor& mask) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const auto dtype = scores.scalar_type();
  if (dtype != torch::kFloat && dtype != torch::kDouble) return scores.masked_fill(mask.view({1, 1, mask.size(0), mask.size(1)}), -kInf);
  return scores + torch::zeros(mask.sizes(), scores.options()).masked_fill_(mask, -kInf);
}

}  // namespace

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               torch::nn::Dropout& drop, AttentionKernel kernel) {
  const int64_t T = q.size(2), dh = q.size(3);
  const bool sdpa = kernel == AttentionKernel::kSdpa || (kernel == AttentionKernel::kAuto && q.device().is_cuda());
  if (sdpa) {
    const double p = drop->is_training() ? drop->options.p() : 0.0;
    return at::scaled_dot_product_attention(q, k, v, {}, p, /*is_causal=*/T > 1, 1.0 / std::sqrt(static_cast<double>(dh)));
  }
  auto scores = torch::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(dh));
  if (T > 1) scores = hide(scores, causal_mask(T, q.device()));
  return torch::matmul(drop(torch::softmax(scores, -1)), v);
}

torch::Tensor make_inv_freq(int64_t d_model) {
  return 1.0 / torch::pow(10000.0, torch::arange(0.0, static_cast<double>(d_model), 2.0) / static_cast<double>(d_model));
}

torch::Tensor sinusoid(const torch::Tensor& positions, const torch::Tensor& inv_freq) {
  auto angles = torch::outer(positions.to(inv_freq.dtype()), inv_freq);
  return torch::cat({angles.sin(), angles.cos()}, /*dim=*/-1);
}

AttentionImpl::AttentionImpl(const AttentionOptions& o) : options_(o) {
  if (o.d_head * o.n_head <= 0) fail("attention needs positive heads and head size");
  qkv_net = register_module("qkv_net", torch::nn::Linear(torch::nn::LinearOptions(o.d_model, 3 * o.n_head * o.d_head).bias(false)));
  if (o.project_out) {
    o_net = register_module("o_net", torch::nn::Linear(torch::nn::LinearOptions(o.n_head * o.d_head, o.d_model).bias(false)));
  }
  if (o.project_out || o.pre_ln) {
    layer_norm = register_module("layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
  }
  if (o.relative) {
    r_net = register_module("r_net", torch::nn::Linear(torch::nn::LinearOptions(o.d_model, o.n_head * o.d_head).bias(false)));
  }
  drop = register_module("drop", torch::nn::Dropout(o.dropout));
  dropatt = register_module("dropatt", torch::nn::Dropout(o.dropatt));
  if (o.rem) {
    rem = register_module("rem", Rem(*o.rem));
    n_rsa_ = rem->n_heads();
    if (n_rsa_ > o.n_head) fail("n_rsa_heads ({}) exceeds the number of heads ({})", n_rsa_, o.n_head);
  }
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& mem, const torch::Tensor& pos_emb,
                                     const torch::Tensor& r_w_bias, const torch::Tensor& r_r_bias,
                                     const torch::Tensor& mask) {
  auto attn_out = drop(o_net(attend(h, mem, pos_emb, r_w_bias, r_r_bias, mask)));
  return options_.pre_ln ? h + attn_out : layer_norm(h + attn_out);
}

torch::Tensor AttentionImpl::attend(const torch::Tensor& h, const torch::Tensor& mem, const torch::Tensor& pos_emb,
                                    const torch::Tensor& r_w_bias, const torch::Tensor& r_r_bias,
                                    const torch::Tensor& mask) {
  const int64_t B = h.size(0), T = h.size(1), H = options_.n_head, dh = options_.d_head;
  const int64_t M = mem.defined() ? mem.size(1) : 0, K = M + T;
  torch::Tensor cat = M > 0 ? torch::cat({mem, h}, /*dim=*/1) : h;
  if (options_.pre_ln) cat = layer_norm(cat);
  auto heads = qkv_net(cat).view({B, K, 3, H, dh});
  auto q = heads.select(2, 0).slice(1, M).transpose(1, 2);  // [B,H,T,dh]
  auto k = heads.select(2, 1).transpose(1, 2);              // [B,H,K,dh]
  auto v = heads.select(2, 2).transpose(1, 2);              // [B,H,K,dh]
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));

  const bool sdpa = options_.kernel == AttentionKernel::kSdpa ||
                    (options_.kernel == AttentionKernel::kAuto && h.device().is_cuda());
  if (!mask.defined() && M > 0) fail("internal error: attention over {} memory positions without a mask", M);
  // The plain causal mask, built only where an expression needs it as a tensor.
  auto full_mask = [&] {
    return mask.defined() ? mask
                          : torch::triu(torch::ones({T, K}, torch::TensorOptions().dtype(torch::kBool).device(h.device())), 1);
  };

  torch::Tensor q_ac = q, bd;  // the query of the content term; the position term (relative only), unscaled
  if (options_.relative) {
    auto r_head_k = r_net(pos_emb).view({K, H, dh});  // [K,H,dh]
    q_ac = q + r_w_bias.view({1, H, 1, dh});
    bd = rel_shift(torch::einsum("bhid,jhd->bhij", {q + r_r_bias.view({1, H, 1, dh}), r_head_k}));  // [B,H,T,K]
    if (n_rsa_ > 0 && options_.rsa_drop_rel_pos) {
      bd = torch::cat({torch::zeros_like(bd.slice(1, 0, n_rsa_)), bd.slice(1, n_rsa_)}, /*dim=*/1);
    }
  }
  torch::Tensor out;
  if (sdpa) {
    // softmax(q_ac k^T * scale + bias) v, with bias = BD * scale and -inf where masked: the same sum the
    // math path forms, in one kernel. Without a position term, a bool mask (true = visible) or is_causal.
    const double p = is_training() ? options_.dropatt : 0.0;
    if (bd.defined()) {
      auto bias = (bd * scale).masked_fill(full_mask().view({1, 1, T, K}), -std::numeric_limits<float>::infinity());
      out = at::scaled_dot_product_attention(q_ac, k, v, bias.to(q_ac.dtype()), p, /*is_causal=*/false, scale);
    } else if (!mask.defined()) {
      out = at::scaled_dot_product_attention(q_ac, k, v, {}, p, /*is_causal=*/true, scale);
    } else {
      out = at::scaled_dot_product_attention(q_ac, k, v, mask.logical_not().view({1, 1, T, K}), p, false, scale);
    }
  } else {
    auto scores = torch::matmul(q_ac, k.transpose(2, 3));  // [B,H,T,K]
    scores = (bd.defined() ? scores + bd : scores) * scale;
    scores = hide(scores, full_mask());
    auto prob = dropatt(torch::softmax(scores, /*dim=*/-1));
    out = torch::matmul(prob, v);  // [B,H,T,dh]
  }
  if (n_rsa_ > 0) {
    // The REM part sees the keys the attention sees: the mask is causal (where P is 0 already) and,
    // with same_length, also hides the keys beyond the memory length from every query.
    auto P = rem->matrices(T, M).masked_fill(full_mask().view({1, T, K}), 0.0).to(out.dtype());
    auto rsa = rsa_combine(out.slice(1, 0, n_rsa_), P, v.slice(1, 0, n_rsa_), rem->gate().to(out.dtype()));
    out = torch::cat({rsa, out.slice(1, n_rsa_)}, /*dim=*/1);
  }
  return out.transpose(1, 2).reshape({B, T, H * dh});
}

PositionwiseFFImpl::PositionwiseFFImpl(int64_t d_model, int64_t d_inner, double dropout, bool pre_ln) : pre_ln_(pre_ln) {
  CoreNet = register_module("CoreNet", torch::nn::Sequential(torch::nn::Linear(d_model, d_inner), torch::nn::ReLU(),
                                                             torch::nn::Dropout(dropout), torch::nn::Linear(d_inner, d_model),
                                                             torch::nn::Dropout(dropout)));
  layer_norm = register_module("layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
}

torch::Tensor PositionwiseFFImpl::forward(const torch::Tensor& x) {
  if (pre_ln_) return x + CoreNet->forward(layer_norm(x));
  return layer_norm(x + CoreNet->forward(x));
}

DecoderLayerImpl::DecoderLayerImpl(const AttentionOptions& attn, int64_t d_inner) {
  dec_attn = register_module("dec_attn", Attention(attn));
  pos_ff = register_module("pos_ff", PositionwiseFF(attn.d_model, d_inner, attn.dropout, attn.pre_ln));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& h, const torch::Tensor& mem, const torch::Tensor& pos_emb,
                                        const torch::Tensor& r_w_bias, const torch::Tensor& r_r_bias,
                                        const torch::Tensor& mask) {
  return pos_ff(dec_attn(h, mem, pos_emb, r_w_bias, r_r_bias, mask));
}

}  // namespace recur::model
