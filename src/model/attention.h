// Multi-head attention for every attention-based model: plain (absolute positions) or Transformer-XL
// relative attention, over [memory ‖ segment], with optional RSA heads (the first n_rsa_heads heads).
// Invariant: parameter names (qkv_net, o_net, r_net, layer_norm) match the reference Transformer-XL.
#pragma once

#include <optional>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "model/rem.h"

namespace recur::model {

// How the softmax part of attention is computed. kMath: matmul, masked_fill, softmax, dropout, matmul
// (the reference's expressions). kSdpa: at::scaled_dot_product_attention, the XL position term (BD) and
// the mask as one additive float mask, attention dropout inside; a causal-only mask as is_causal, which
// lets a GPU use its flash kernels. kAuto: kSdpa on CUDA tensors, kMath elsewhere (docs/benchmarks.md).
enum class AttentionKernel { kAuto, kMath, kSdpa };
AttentionKernel attention_kernel_from_string(const std::string& name);  // "auto" | "math" | "sdpa"

struct AttentionOptions {
  int64_t d_model = 512;
  int64_t n_head = 8;
  int64_t d_head = 64;
  double dropout = 0.1;
  double dropatt = 0.0;
  bool pre_ln = false;
  bool relative = true;                 // Transformer-XL relative attention (r_net, shared biases)
  std::optional<RemOptions> rem;        // RSA heads: the first rem->n_heads heads
  bool rsa_drop_rel_pos = false;        // RSA heads drop the BD (relative position) term: REMs replace it
  bool project_out = true;              // false: no o_net (a caller combines attend() outputs itself)
  AttentionKernel kernel = AttentionKernel::kAuto;
};

// [T, T] bool, true above the diagonal (the keys a query must not see). On the CPU, built once per
// length up to kCachedMaskMax per thread and shared: callers must not write to it.
constexpr int64_t kCachedMaskMax = 1024;
torch::Tensor causal_mask(int64_t T, const torch::Device& device);

// Causal multi-head attention of q, k, v [B, H, T, dh] (scale 1/sqrt(dh)) for the models with their own
// projections (R-Transformer, GPT, recurrent transformer). kMath: matmul, masked_fill, softmax, `drop`,
// matmul, the expressions those models always used; kSdpa: at::scaled_dot_product_attention with
// is_causal and dropout `drop`'s p inside; kAuto: kSdpa on CUDA tensors.
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               torch::nn::Dropout& drop, AttentionKernel kernel);

// rel_shift of the reference: [B, H, q, k] scores against relative positions k-1 .. 0 become scores
// indexed by key j (entry (i, j) holds relative distance M + i - j; entries above the band are junk
// and must be masked).
torch::Tensor rel_shift(const torch::Tensor& x);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& options);
  // h: [B, T, d]; mem: [B, M, d] or undefined; pos_emb: [M+T, d] (relative only; positions M+T-1..0);
  // r_w_bias, r_r_bias: [H, dh] (relative only); mask: [T, M+T] bool, true = not visible, or undefined
  // for the plain causal mask (no memory: M = 0).
  // Returns the layer output after the residual (and LayerNorm when post-LN).
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& mem, const torch::Tensor& pos_emb,
                        const torch::Tensor& r_w_bias, const torch::Tensor& r_r_bias, const torch::Tensor& mask);
  // The heads' outputs before the output projection: [B, T, H*dh] (RSA heads already combined).
  torch::Tensor attend(const torch::Tensor& h, const torch::Tensor& mem, const torch::Tensor& pos_emb,
                       const torch::Tensor& r_w_bias, const torch::Tensor& r_r_bias, const torch::Tensor& mask);
  torch::Tensor norm(const torch::Tensor& x) { return layer_norm(x); }  // the pre-LN input norm
  bool has_rem() const { return !rem.is_empty(); }
  Rem rem{nullptr};

 private:
  AttentionOptions options_;
  int64_t n_rsa_ = 0;
  torch::nn::Linear qkv_net{nullptr}, o_net{nullptr}, r_net{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::nn::Dropout drop{nullptr}, dropatt{nullptr};
};
TORCH_MODULE(Attention);

// Position-wise feed-forward of the reference: CoreNet = Linear-ReLU-Dropout-Linear-Dropout, with
// residual and LayerNorm (post-LN) or LayerNorm first (pre-LN).
class PositionwiseFFImpl : public torch::nn::Module {
 public:
  PositionwiseFFImpl(int64_t d_model, int64_t d_inner, double dropout, bool pre_ln);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  bool pre_ln_;
  torch::nn::Sequential CoreNet{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
};
TORCH_MODULE(PositionwiseFF);

// One decoder layer: dec_attn then pos_ff (reference names).
class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const AttentionOptions& attn, int64_t d_inner);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& mem, const torch::Tensor& pos_emb,
                        const torch::Tensor& r_w_bias, const torch::Tensor& r_r_bias, const torch::Tensor& mask);
  Attention dec_attn{nullptr};
  PositionwiseFF pos_ff{nullptr};
};
TORCH_MODULE(DecoderLayer);

// Sinusoidal embedding of (relative or absolute) positions: [sin ‖ cos] with inv_freq = 1/10000^(2i/d).
torch::Tensor sinusoid(const torch::Tensor& positions, const torch::Tensor& inv_freq);
torch::Tensor make_inv_freq(int64_t d_model);

}  // namespace recur::model
