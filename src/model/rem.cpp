// See rem.h. Everything is vectorised over (i, j) from one lag matrix; the loop over heads is short.
#include "model/rem.h"

#include <torch/torch.h>

#include <cmath>
#include <numeric>

#include "core/error.h"

namespace recur::model {

void validate(const RemOptions& o) {
  if (o.truncation < 1) fail("REM truncation K must be at least 1, got {}", o.truncation);
  if (o.kind == RemKind::kParametric) {
    if (o.counts.size() != 6) fail("REM types need six counts (k1..k6), got {}", o.counts.size());
    for (size_t t = 0; t < 6; ++t) {
      if (o.counts[t] < 0) fail("REM type count k{} is negative ({})", t + 1, o.counts[t]);
    }
    int64_t sum = std::accumulate(o.counts.begin(), o.counts.end(), int64_t{0});
    if (sum < 1) fail("RSA needs at least one REM head (all of k1..k6 are 0)");
    if (o.n_heads != 0 && o.n_heads != sum) fail("REM type counts sum to {} but {} RSA heads are configured", sum, o.n_heads);
    int64_t dilated = o.counts[3] + o.counts[4] + o.counts[5];
    if (static_cast<int64_t>(o.dilations.size()) != dilated) {
      fail("{} dilated REM heads (k4+k5+k6) need {} dilations, {} given (missing dilations?)", dilated, dilated,
           o.dilations.size());
    }
    for (int64_t d : o.dilations) {
      if (d < 1) fail("REM dilation must be at least 1, got {}", d);
    }
  } else {
    if (o.n_heads < 1) fail("{} needs at least one head", o.kind == RemKind::kToeplitz ? "TL" : "FL");
    if (o.kind == RemKind::kFull && (o.max_qlen < 1 || o.max_klen < o.max_qlen)) {
      fail("FL needs max_qlen >= 1 and max_klen >= max_qlen, got {} and {}", o.max_qlen, o.max_klen);
    }
  }
}

namespace {

// Evenly spread values over [lo, hi] (the midpoint for one value).
std::vector<double> spread(int64_t n, double lo, double hi) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = n == 1 ? (lo + hi) / 2 : lo + (hi - lo) * i / (n - 1);
  return v;
}

}  // namespace

RemImpl::RemImpl(RemOptions o) : options_(std::move(o)) {
  validate(options_);
  mu = register_parameter("mu", torch::full({1}, options_.mu_init));
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
  int64_t n_eta = 0, n_cyc = 0;
  size_t next_dilation = 0;
  for (int t = 0; t < 6; ++t) {
    for (int64_t c = 0; c < options_.counts[static_cast<size_t>(t)]; ++c) {
      auto type = static_cast<RemType>(t);
      types_.push_back(type);
      bool dilated = t >= 3;
      dilation_.push_back(dilated ? options_.dilations[next_dilation++] : 1);
      bool regular = type == RemType::kRegular || type == RemType::kDilatedRegular;
      param_index_.push_back(regular ? n_eta++ : n_cyc++);
    }
  }
  n_heads_ = static_cast<int64_t>(types_.size());
  // eta over [-2,-1] ∪ [1,2]: magnitudes spread over [1,2], signs alternating (+, -, +, ...), so
  // lambda = tanh(eta) covers both decaying and oscillating recurrences.
  std::vector<double> eta0 = spread(n_eta, 1.0, 2.0);
  for (size_t i = 0; i < eta0.size(); ++i) eta0[i] *= (i % 2 == 0) ? 1.0 : -1.0;
  eta = register_parameter("eta", torch::tensor(eta0.empty() ? std::vector<double>{} : eta0, torch::kFloat32).reshape({n_eta}));
  std::vector<double> nu0 = spread(n_cyc, 1.0, 2.0);
  nu = register_parameter("nu", torch::tensor(nu0, torch::kFloat32).reshape({n_cyc}));
  theta = register_parameter("theta", torch::full({n_cyc}, M_PI / 4));
}

torch::Tensor RemImpl::gate() { return torch::sigmoid(mu).squeeze(0); }

torch::Tensor RemImpl::matrices(int64_t qlen, int64_t mlen) {
  const int64_t klen = qlen + mlen, K = options_.truncation;
  auto opts = mu.options();
  auto i = torch::arange(qlen, opts.dtype(torch::kInt64)).unsqueeze(1);
  auto j = torch::arange(klen, opts.dtype(torch::kInt64)).unsqueeze(0);
  auto lag = i + mlen - j;  // [q, k], from -(q-1) to m+q-1

  if (options_.kind == RemKind::kFull) {
    if (qlen > options_.max_qlen || klen > options_.max_klen) {
      fail("FL REM holds {} x {} entries; a segment of {} queries over {} keys does not fit (raise model.fl_max_len)",
           options_.max_qlen, options_.max_klen, qlen, klen);
    }
    // Bottom-right aligned: the last query and the last key always use the matrix's last row and column.
    auto w = weights.slice(1, options_.max_qlen - qlen).slice(2, options_.max_klen - klen);
    auto valid = options_.masked ? lag.ge(1) : lag.ne(0);
    return torch::where(valid.unsqueeze(0), w, torch::zeros_like(w));
  }
  // P depends on the lag only: evaluate f once per distinct lag ([h, q+k-1] values), then spread it
  // over the [q, k] grid with one gather. This is what keeps REMs cheap next to attention.
  auto lags = torch::arange(-(qlen - 1), klen, opts.dtype(torch::kInt64));  // every lag that occurs
  auto valid = options_.masked ? lags.ge(1) : lags.ne(0);
  auto dist = lags.abs();
  torch::Tensor per_lag;  // [h, n_lags]
  if (options_.kind == RemKind::kToeplitz) {
    auto ok = valid & dist.le(K);
    auto w = weights.index_select(1, (dist - 1).clamp(0, K - 1));
    per_lag = torch::where(ok.unsqueeze(0), w, torch::zeros_like(w));
  } else {
    std::vector<torch::Tensor> heads;
    heads.reserve(static_cast<size_t>(n_heads_));
    for (int64_t h = 0; h < n_heads_; ++h) {
      const int64_t d = dilation_[static_cast<size_t>(h)];
      auto ok = valid & dist.remainder(d).eq(0) & dist.le(K * d);
      // Exponent l/d; masked-out lags get exponent 1 so pow stays finite in value and gradient.
      auto power = torch::where(ok, dist.div(d, "floor"), torch::ones_like(dist)).to(opts.dtype());
      const RemType type = types_[static_cast<size_t>(h)];
      const int64_t p = param_index_[static_cast<size_t>(h)];
      torch::Tensor value;
      if (type == RemType::kRegular || type == RemType::kDilatedRegular) {
        value = torch::pow(torch::tanh(eta[p]), power);
      } else {
        auto angle = power * theta[p];
        bool cosine = type == RemType::kCyclicalCos || type == RemType::kDilatedCos;
        value = torch::pow(torch::sigmoid(nu[p]), power) * (cosine ? torch::cos(angle) : torch::sin(angle));
      }
      heads.push_back(torch::where(ok, value, torch::zeros_like(value)));
    }
    per_lag = torch::stack(heads);
  }
  auto index = (lag + (qlen - 1)).reshape({-1});
  return per_lag.index_select(1, index).view({n_heads_, qlen, klen});
}

torch::Tensor rem_apply(const torch::Tensor& P, const torch::Tensor& V) {
  const int64_t B = V.size(0), h = V.size(1), k = V.size(2), dh = V.size(3), q = P.size(1);
  auto folded = V.permute({1, 2, 0, 3}).reshape({h, k, B * dh});
  return torch::bmm(P, folded).view({h, q, B, dh}).permute({2, 0, 1, 3});
}

torch::Tensor rsa_combine(const torch::Tensor& attn_out, const torch::Tensor& P, const torch::Tensor& V,
                          const torch::Tensor& gate) {
  return (1 - gate) * attn_out + gate * rem_apply(P, V);
}

}  // namespace recur::model
