// Recurrence Encoding Matrices (RSA paper §3, appendix D; reference notes §1): per-head matrices P over
// [memory ‖ segment] that depend only on the lag l = i + M - j, the layer's gate, and the TL/FL ablations.
// Invariant: masked REMs are 0 for l <= 0 (diagonal included) and wherever the power (l, or l/d) exceeds K.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace recur::model {

// The six REM types of the paper, in the order of the counts k1..k6 (heads are laid out in this order).
enum class RemType { kRegular, kCyclicalCos, kCyclicalSin, kDilatedRegular, kDilatedCos, kDilatedSin };
// kParametric: the RSA REMs. kToeplitz (TL): one learnable weight per lag 1..K. kFull (FL): a learnable
// max_qlen x max_klen matrix per head (paper §4.4 ablations; both replace the parametric f).
enum class RemKind { kParametric, kToeplitz, kFull };
// How cyclical heads hold (nu, theta). kSharedPair (the default, Table 7's counts): the k-th cos head
// and the k-th sin head of a family (k2/k3, and k5/k6) share one (nu, theta), the complex eigenvalue
// pair gamma e^{±i theta} of Proposition 2. kFixedTheta: each cyclical head has its own nu, theta is a
// constant pi/4 (the other reading that gives Table 7's counts). kPerHead: each cyclical head has its
// own nu and theta (before 2026-12-01; 4 more parameters per layer at (0,0,0,0,2,2)).
enum class CyclicalParams { kSharedPair, kFixedTheta, kPerHead };

struct RemOptions {
  RemKind kind = RemKind::kParametric;
  // Parametric: heads of each type k1..k6; their sum is the number of RSA heads.
  std::vector<int64_t> counts = {0, 0, 0, 0, 0, 0};
  // TL/FL: the number of heads. Parametric: 0 (derived) or equal to sum(counts).
  int64_t n_heads = 0;
  // Parametric: one dilation >= 1 per dilated head (k4 + k5 + k6 entries, in head order). Not learned.
  std::vector<int64_t> dilations;
  // K. Parametric: entries whose power (l, or l/d when dilated) exceeds K are 0. TL: the number of lag
  // weights (lags beyond K are 0). FL: unused.
  int64_t truncation = 200;
  // true: causal, f(l) for l >= 1 and 0 elsewhere. false: f(|l|) for l != 0 (P + P^T of the masked REM).
  bool masked = true;
  CyclicalParams cyclical = CyclicalParams::kSharedPair;
  // Gate pre-activation; gate = sigmoid(mu), one mu per layer (one Rem module is one layer's RSA heads).
  double mu_init = 0.0;
  // FL: the learnable matrix is [max_qlen, max_klen] (the training segment T against T + M keys); a
  // call matrices(q, m) needs q <= max_qlen and uses the bottom-right q x (m + q) block, so an entry
  // always means the same (query, lag) pair. Keys beyond max_klen (a longer memory at evaluation)
  // get 0: lags the training window never saw contribute nothing.
  int64_t max_qlen = 0, max_klen = 0;
};

// Throws recur::Error naming the inconsistency (counts vs heads, missing dilations, bad K, ...).
void validate(const RemOptions& options);

class RemImpl : public torch::nn::Module {
 public:
  explicit RemImpl(RemOptions options);

  // [n_heads, qlen, mlen + qlen]: query i in [0, qlen) of the segment against key j in [0, mlen + qlen)
  // of [memory ‖ segment], lag l = i + mlen - j. dtype and device of the parameters; differentiable.
  torch::Tensor matrices(int64_t qlen, int64_t mlen);
  torch::Tensor gate();  // sigmoid(mu), 0-dim
  int64_t n_heads() const { return n_heads_; }
  const RemOptions& options() const { return options_; }

  // Registered under these names. Parametric: eta [k1 + k4] (regular heads then dilated regular heads),
  // nu and theta: kSharedPair [max(k2,k3) + max(k5,k6)] (one per cos/sin pair, non-dilated pairs
  // first); kFixedTheta nu [k2 + k3 + k5 + k6] and theta a buffer; kPerHead both [k2 + k3 + k5 + k6]
  // (cyclical heads in head order); mu [1]. TL: weights [n_heads, K]
  // (column l - 1 is lag l), mu. FL: weights [n_heads, max_qlen, max_klen], mu. Unused ones are undefined.
  torch::Tensor eta, nu, theta, weights, mu;

  // Moving the module moves the per-head constants with it, so a forward pass never copies from the host
  // (a copy inside a forward stalls the stream and cannot be captured in a CUDA graph).
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Device device, bool non_blocking = false) override;

 private:
  torch::Tensor parametric_values(const torch::Tensor& lags);
  torch::Tensor toeplitz_values(int64_t qlen, int64_t klen);
  // theta or sigmoid(nu) per cyclical head in head order (k2 k3 | k5 k6): shared pairs give their one
  // value to both heads.
  torch::Tensor cyclical_per_head(const torch::Tensor& t) const;
  void place_constants(torch::Device device);
  torch::Tensor full_matrices(int64_t qlen, int64_t mlen);

  RemOptions options_;
  int64_t n_heads_ = 0;
  // Per-head constants of the parametric kind, [n_heads, 1], on the parameters' device (see to()).
  torch::Tensor head_dilation_, head_is_sin_;
};
TORCH_MODULE(Rem);

// P [h, q, k] (shared by the batch) times V [B, h, k, dh] -> [B, h, q, dh], as one batched matmul over the
// heads with the batch folded into the columns: P is never copied per batch element.
torch::Tensor rem_apply(const torch::Tensor& P, const torch::Tensor& V);

// The RSA head output (1 - g) * attn_out + g * P V for the heads of P; attn_out already holds
// dropout(softmax(S)) V for those heads, gate g is 0-dim.
torch::Tensor rsa_combine(const torch::Tensor& attn_out, const torch::Tensor& P, const torch::Tensor& V,
                          const torch::Tensor& gate);

}  // namespace recur::model
