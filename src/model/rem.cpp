// See rem.h. f is evaluated once per distinct lag for all heads at once ([h, q + k - 1] values, by
// broadcasting), then spread over the [q, k] grid as windows of one vector (unfold); nothing loops over i, j or heads.
#include "model/rem.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace recur::model {

namespace {

const char* kind_name(RemKind kind) {
  switch (kind) {
    case RemKind::kParametric: return "parametric REMs";
    case RemKind::kToeplitz: return "TL (learnable Toeplitz) REMs";
    case RemKind::kFull: return "FL (fully learnable) REMs";
  }
  return "REMs";
}

// n values evenly spread over [lo, hi]; the midpoint when n = 1.
std::vector<double> spread(int64_t n, double lo, double hi) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(n == 1 ? (lo + hi) / 2 : lo + (hi - lo) * static_cast<double>(i) / (n - 1));
  return v;
}

// A 1-d parameter holding `values`, in the default dtype like every other parameter of the model.
torch::Tensor vector_tensor(const std::vector<double>& values) {
  return torch::tensor(values, torch::kFloat64).reshape({-1}).to(c10::get_default_dtype_as_scalartype());
}

}  // namespace

void validate(const RemOptions& o) {
  if (!std::isfinite(o.mu_init)) fail("REM gate mu_init must be finite, got {}", o.mu_init);
  if (o.kind != RemKind::kParametric) {
    if (o.n_heads < 1) fail("{} need n_heads >= 1, got {}", kind_name(o.kind), o.n_heads);
    bool typed = std::any_of(o.counts.begin(), o.counts.end(), [](int64_t c) { return c != 0; });
    if (typed || !o.dilations.empty()) {
      fail("{} take n_heads only; REM type counts (k1..k6) and dilations belong to parametric REMs", kind_name(o.kind));
    }
    if (o.kind == RemKind::kToeplitz && o.truncation < 1) {
      fail("TL REMs need truncation K >= 1 (the number of lag weights), got {}", o.truncation);
    }
    if (o.kind == RemKind::kFull && (o.max_qlen < 1 || o.max_klen < o.max_qlen)) {
      fail("FL REMs need max_qlen >= 1 and max_klen >= max_qlen (the learnable matrix is max_qlen x max_klen), "
           "got max_qlen {} and max_klen {}", o.max_qlen, o.max_klen);
    }
    return;
  }
  if (o.truncation < 1) fail("REM truncation K must be at least 1, got {}", o.truncation);
  if (o.counts.size() != 6) fail("REM type counts need six entries (k1..k6), got {}", o.counts.size());
  for (size_t t = 0; t < 6; ++t) {
    if (o.counts[t] < 0) fail("REM type count k{} is negative ({})", t + 1, o.counts[t]);
  }
  const int64_t sum = std::accumulate(o.counts.begin(), o.counts.end(), int64_t{0});
  if (sum < 1) fail("RSA needs at least one REM head: the type counts k1..k6 are all 0");
  if (o.n_heads != 0 && o.n_heads != sum) {
    fail("REM type counts k1..k6 sum to {} but n_heads = {} RSA heads are configured", sum, o.n_heads);
  }
  const int64_t dilated = o.counts[3] + o.counts[4] + o.counts[5];
  const auto given = static_cast<int64_t>(o.dilations.size());
  if (given != dilated) {
    fail("{} dilated REM heads (k4+k5+k6) need {} dilations, {} given ({})", dilated, dilated, given,
         given < dilated ? "missing dilations" : "too many dilations");
  }
  for (size_t h = 0; h < o.dilations.size(); ++h) {
    if (o.dilations[h] < 1) fail("REM dilation {} (dilated head {}) must be at least 1", o.dilations[h], h);
  }
}

RemImpl::RemImpl(RemOptions o) : options_(std::move(o)) {
  validate(options_);
  mu = register_parameter("mu", torch::full({1}, options_.mu_init));
  // TL and FL start at 0: the layer starts as its base attention scaled by 1 - sigmoid(mu), and the REM
  // part grows only where the data asks for it (the gradient of P is sigmoid(mu) dL/dO V^T, not 0).
  if (options_.kind == RemKind::kToeplitz) {
    n_heads_ = options_.n_heads;
    weights = register_parameter("weights", torch::zeros({n_heads_, options_.truncation}));
    return;
  }
  if (options_.kind == RemKind::kFull) {
    n_heads_ = options_.n_heads;
    weights = register_parameter("weights", torch::zeros({n_heads_, options_.max_qlen, options_.max_klen}));
    return;
  }
  const auto& c = options_.counts;
  n_heads_ = std::accumulate(c.begin(), c.end(), int64_t{0});
  // Paper §3: eta spread over [-2,-1] ∪ [1,2], nu over [1,2], theta = pi/4. Spreads are per type. eta:
  // magnitudes evenly over [1, 2] with alternating signs (+1, -1.33, +1.67, -2 for four heads), so both
  // decaying (lambda > 0) and oscillating (lambda < 0) recurrences are present; one head gets +1.5.
  // nu: evenly over [1, 2] within each cyclical type, so the k-th cos and the k-th sin head of a family
  // start with the same (nu, theta): a complex-eigenvalue pair, as in Proposition 2.
  std::vector<double> eta0, nu0;
  for (int t : {0, 3}) {
    std::vector<double> v = spread(c[t], 1.0, 2.0);
    for (size_t i = 0; i < v.size(); ++i) eta0.push_back(i % 2 == 0 ? v[i] : -v[i]);
  }
  // Cyclical heads: per (cos, sin) family, cos head i and sin head i form pair i.
  for (int f : {0, 1}) {
    const int64_t kc = c[f == 0 ? 1 : 4], ks = c[f == 0 ? 2 : 5];
    if (options_.cyclical == CyclicalParams::kSharedPair) {
      std::vector<double> v = spread(std::max(kc, ks), 1.0, 2.0);
      nu0.insert(nu0.end(), v.begin(), v.end());
    } else {
      for (int64_t k : {kc, ks}) {
        std::vector<double> v = spread(k, 1.0, 2.0);
        nu0.insert(nu0.end(), v.begin(), v.end());
      }
    }
  }
  eta = register_parameter("eta", vector_tensor(eta0));
  nu = register_parameter("nu", vector_tensor(nu0));
  auto theta0 = torch::full({static_cast<int64_t>(nu0.size())}, M_PI / 4);
  if (options_.cyclical == CyclicalParams::kFixedTheta) theta = register_buffer("theta", theta0);
  else theta = register_parameter("theta", theta0);
  place_constants(torch::kCPU);
}

torch::Tensor RemImpl::gate() { return torch::sigmoid(mu).squeeze(0); }

torch::Tensor RemImpl::matrices(int64_t qlen, int64_t mlen) {
  if (qlen < 1 || mlen < 0) fail("REM matrices need qlen >= 1 and mlen >= 0, got qlen {} and mlen {}", qlen, mlen);
  if (options_.kind == RemKind::kFull) return full_matrices(qlen, mlen);
  const int64_t klen = qlen + mlen;
  // values[:, t] is f at lag t - (qlen - 1): every lag that occurs, from -(qlen - 1) (the first query
  // against the last key) up to klen - 1 (the last query against the first key).
  torch::Tensor values;  // [h, qlen + klen - 1]
  if (options_.kind == RemKind::kToeplitz) {
    values = toeplitz_values(qlen, klen);
  } else {
    values = parametric_values(torch::arange(-(qlen - 1), klen, mu.options().dtype(torch::kInt64)));
  }
  // P[:, i, j] = values[:, (klen - 1) + i - j] (lag i + mlen - j): row r of the windows of the reversed
  // values is rev[r .. r + klen), i.e. query qlen - 1 - r, so one row flip gives P. unfold's backward sums
  // each diagonal within one thread, where an index_select's (index_add_) uses atomics on CUDA: this
  // keeps RSA gradients bitwise reproducible on GPUs.
  return values.flip(1).unfold(/*dimension=*/1, /*size=*/klen, /*step=*/1).flip(1);
}

torch::Tensor RemImpl::parametric_values(const torch::Tensor& lags) {
  const auto& c = options_.counts;
  if (head_dilation_.device() != lags.device()) place_constants(lags.device());  // moved other than by to()
  const int64_t K = options_.truncation;
  auto valid = (options_.masked ? lags.ge(1) : lags.ne(0)).unsqueeze(0);  // [1, n]
  auto dist = lags.abs().unsqueeze(0);                                      // [1, n]
  auto keep = valid & dist.remainder(head_dilation_).eq(0) & dist.le(head_dilation_ * K);  // [h, n]
  // Power l/d where kept; 1 elsewhere, so pow stays finite in value and gradient (no 0^0, no 0^-1) even
  // for lambda = tanh(0) = 0. pow with an integer-valued exponent keeps the sign of a negative lambda.
  auto power = torch::where(keep, torch::div(dist, head_dilation_, "floor"), 1).to(mu.scalar_type());
  // Per-head base and angle in head order (k1 | k2 k3 | k4 | k5 k6); regular heads get angle 0, so
  // their cos factor is exactly 1.
  const int64_t k1 = c[0], k23 = c[1] + c[2];
  auto lambda = torch::tanh(eta), gamma = torch::sigmoid(nu);
  // Cyclical heads in head order (k2 k3 | k5 k6); shared pairs spread one (nu, theta) to their two heads
  // by slices, whose backward has no atomics (see matrices()).
  gamma = cyclical_per_head(gamma);
  torch::Tensor angles = cyclical_per_head(theta);
  auto base = torch::cat({lambda.slice(0, 0, k1), gamma.slice(0, 0, k23), lambda.slice(0, k1), gamma.slice(0, k23)});
  auto angle = torch::cat({angles.new_zeros({k1}), angles.slice(0, 0, k23), angles.new_zeros({c[3]}), angles.slice(0, k23)});
  auto phase = power * angle.unsqueeze(1);
  auto wave = torch::where(head_is_sin_, torch::sin(phase), torch::cos(phase));
  return (torch::pow(base.unsqueeze(1), power) * wave).masked_fill(keep.logical_not(), 0.0);
}

torch::Tensor RemImpl::toeplitz_values(int64_t qlen, int64_t klen) {
  // Lags -(qlen - 1) .. klen - 1 from slices of the weights (column l - 1 is lag l), no gather: lag 0 and
  // lags beyond K are 0, negative lags are 0 (masked) or mirror the positive ones (unmasked).
  const int64_t K = options_.truncation;
  const int64_t ahead = std::min(K, klen - 1), behind = options_.masked ? 0 : std::min(K, qlen - 1);
  auto zeros = [&](int64_t n) { return weights.new_zeros({n_heads_, n}); };
  return torch::cat({zeros(qlen - 1 - behind), weights.slice(1, 0, behind).flip(1), zeros(1),
                     weights.slice(1, 0, ahead), zeros(klen - 1 - ahead)}, /*dim=*/1);
}

torch::Tensor RemImpl::cyclical_per_head(const torch::Tensor& t) const {
  if (options_.cyclical != CyclicalParams::kSharedPair) return t;
  const auto& c = options_.counts;
  const int64_t second = std::max(c[1], c[2]);  // the dilated family's pairs follow the non-dilated ones
  return torch::cat({t.slice(0, 0, c[1]), t.slice(0, 0, c[2]), t.slice(0, second, second + c[4]),
                     t.slice(0, second, second + c[5])});
}

void RemImpl::place_constants(torch::Device device) {
  if (options_.kind != RemKind::kParametric) return;
  const auto& c = options_.counts;
  std::vector<int64_t> dilation(static_cast<size_t>(c[0] + c[1] + c[2]), 1);
  dilation.insert(dilation.end(), options_.dilations.begin(), options_.dilations.end());
  std::vector<int64_t> is_sin;
  for (int t = 0; t < 6; ++t) is_sin.insert(is_sin.end(), static_cast<size_t>(c[t]), t == 2 || t == 5 ? 1 : 0);
  head_dilation_ = torch::tensor(dilation, torch::kInt64).view({n_heads_, 1}).to(device);
  head_is_sin_ = torch::tensor(is_sin, torch::kInt64).view({n_heads_, 1}).to(device).to(torch::kBool);
}

void RemImpl::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
  torch::nn::Module::to(device, dtype, non_blocking);
  place_constants(device);
}

void RemImpl::to(torch::Dtype dtype, bool non_blocking) { torch::nn::Module::to(dtype, non_blocking); }

void RemImpl::to(torch::Device device, bool non_blocking) {
  torch::nn::Module::to(device, non_blocking);
  place_constants(device);
}

torch::Tensor RemImpl::full_matrices(int64_t qlen, int64_t mlen) {
  const int64_t klen = qlen + mlen;
  if (qlen > options_.max_qlen) {
    fail("FL REMs hold a {} x {} matrix per head (one row per query of the training segment); a segment of {} "
         "queries does not fit: evaluate with eval.tgt_len <= {}", options_.max_qlen, options_.max_klen, qlen,
         options_.max_qlen);
  }
  // Bottom-right block: query i -> row max_qlen - qlen + i, key j -> column max_klen - klen + j. An entry
  // (r, c) then always means lag r - c + (max_klen - max_qlen), whatever qlen and mlen are. Keys before
  // column 0 (a memory longer than in training) have lags the matrix never learned: 0.
  auto w = weights.slice(1, options_.max_qlen - qlen).slice(2, std::max<int64_t>(0, options_.max_klen - klen));
  if (klen > options_.max_klen) {
    w = torch::cat({torch::zeros({n_heads_, qlen, klen - options_.max_klen}, w.options()), w}, /*dim=*/2);
  }
  auto long_options = mu.options().dtype(torch::kInt64);
  auto lag = torch::arange(qlen, long_options).unsqueeze(1) + mlen - torch::arange(klen, long_options).unsqueeze(0);
  auto keep = options_.masked ? lag.ge(1) : lag.ne(0);
  return w.masked_fill(keep.logical_not().unsqueeze(0), 0.0);
}

torch::Tensor rem_apply(const torch::Tensor& P, const torch::Tensor& V) {
  if (P.dim() != 3 || V.dim() != 4 || P.size(0) != V.size(1) || P.size(2) != V.size(2)) {
    fail("rem_apply needs P [h, q, k] and V [B, h, k, dh] with the same h and k, got P {} and V {}",
         fmt::join(P.sizes(), "x"), fmt::join(V.sizes(), "x"));
  }
  const int64_t B = V.size(0), h = V.size(1), k = V.size(2), dh = V.size(3), q = P.size(1);
  auto folded = V.permute({1, 2, 0, 3}).reshape({h, k, B * dh});  // copies V once, never P
  return torch::bmm(P, folded).view({h, q, B, dh}).permute({2, 0, 1, 3});
}

torch::Tensor rsa_combine(const torch::Tensor& attn_out, const torch::Tensor& P, const torch::Tensor& V,
                          const torch::Tensor& gate) {
  return (1 - gate) * attn_out + gate * rem_apply(P, V);
}

}  // namespace recur::model
