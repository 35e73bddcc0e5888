// Recurrence Encoding Matrices (RSA paper): per-head T x (M+T) matrices P over [memory ‖ segment] that
// depend only on the lag l = i + M - j, plus the layer's gate sigmoid(mu). Also the TL/FL ablations.
// Invariant: masked REMs are 0 on and above the diagonal (l <= 0) and beyond the truncation K.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace recur::model {

enum class RemType { kRegular, kCyclicalCos, kCyclicalSin, kDilatedRegular, kDilatedCos, kDilatedSin };  // k1..k6
enum class RemKind { kParametric, kToeplitz, kFull };  // RSA REMs; TL (one weight per lag 1..K); FL (free matrix)

struct RemOptions {
  RemKind kind = RemKind::kParametric;
  std::vector<int64_t> counts = {0, 0, 0, 0, 0, 0};  // heads of each type k1..k6 (parametric)
  int64_t n_heads = 0;              // TL/FL: heads; parametric: sum(counts) (0 = derive it)
  std::vector<int64_t> dilations;   // one per dilated head (k4+k5+k6), in head order
  int64_t truncation = 200;         // K
  bool masked = true;               // causal f(l), l >= 1; else f(|l|), l != 0
  double mu_init = 0.0;             // gate pre-activation
  int64_t max_qlen = 0, max_klen = 0;  // FL: size of the learnable matrix
};

// Throws recur::Error naming the inconsistency (counts vs heads, missing dilations, bad K, ...).
void validate(const RemOptions& options);

class RemImpl : public torch::nn::Module {
 public:
  explicit RemImpl(RemOptions options);
  // [n_heads, qlen, mlen + qlen]: query i (in the segment) against key j of [memory ‖ segment].
  torch::Tensor matrices(int64_t qlen, int64_t mlen);
  torch::Tensor gate();  // sigmoid(mu), 0-dim
  int64_t n_heads() const { return n_heads_; }
  const RemOptions& options() const { return options_; }

  // Parametric: eta (regular and dilated regular heads, in head order), nu and theta (cyclical heads).
  // TL: weights [n_heads, K]. FL: weights [n_heads, max_qlen, max_klen]. All kinds: mu [1].
  torch::Tensor eta, nu, theta, weights, mu;

 private:
  RemOptions options_;
  int64_t n_heads_ = 0;
  std::vector<RemType> types_;      // per head
  std::vector<int64_t> dilation_;   // per head (1 when not dilated)
  std::vector<int64_t> param_index_;  // per head: index into eta (regular) or nu/theta (cyclical)
};
TORCH_MODULE(Rem);

// P [h, q, k] (shared by the batch) times V [B, h, k, dh] -> [B, h, q, dh], as one batched matmul over
// the heads with the batch folded into the columns: P is never copied per batch element.
torch::Tensor rem_apply(const torch::Tensor& P, const torch::Tensor& V);
// The RSA head output: (1 - g) * attn_out + g * P V; attn_out already holds dropout(softmax(S)) V.
torch::Tensor rsa_combine(const torch::Tensor& attn_out, const torch::Tensor& P, const torch::Tensor& V,
                          const torch::Tensor& gate);

}  // namespace recur::model
