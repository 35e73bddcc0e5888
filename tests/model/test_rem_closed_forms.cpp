// REMs against closed forms and naive loops (RSA paper §3, appendix C/D; reference notes §1): entries,
// Propositions 1, 2 and 4, finite-difference gradients, rem_apply, validation, save -> load. Double precision.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <complex>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/rem.h"

namespace recur::model {
namespace {

using ::testing::HasSubstr;

// Per-head cyclical parameters, so that the closed-form tests can give every head its own (nu, theta);
// the default pairing (kSharedPair) is tested against this layout in CyclicalPairsShareNuAndTheta.
RemOptions parametric(std::vector<int64_t> counts, std::vector<int64_t> dilations, int64_t K = 200, bool masked = true,
                      CyclicalParams cyclical = CyclicalParams::kPerHead) {
  RemOptions o;
  o.cyclical = cyclical;
  o.counts = std::move(counts);
  o.dilations = std::move(dilations);
  o.truncation = K;
  o.masked = masked;
  return o;
}

RemOptions toeplitz(int64_t heads, int64_t K, bool masked = true) {
  RemOptions o;
  o.kind = RemKind::kToeplitz;
  o.n_heads = heads;
  o.truncation = K;
  o.masked = masked;
  return o;
}

RemOptions full(int64_t heads, int64_t max_qlen, int64_t max_klen, bool masked = true) {
  RemOptions o;
  o.kind = RemKind::kFull;
  o.n_heads = heads;
  o.max_qlen = max_qlen;
  o.max_klen = max_klen;
  o.masked = masked;
  return o;
}

void set(torch::Tensor& param, const std::vector<double>& values) {
  torch::NoGradGuard no_grad;
  param.copy_(torch::tensor(values, torch::kFloat64).view_as(param));
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double logit(double p) { return std::log(p / (1.0 - p)); }

// One head as the test reads it from the documented layout: heads in type order k1..k6, eta over the
// k1 then k4 heads, nu/theta over the k2, k3, k5, k6 heads, dilations over the k4..k6 heads.
struct Head {
  RemType type;
  double eta = 0, nu = 0, theta = 0;
  int64_t d = 1;
};

std::vector<Head> heads_of(Rem& rem) {
  const auto& o = rem->options();
  std::vector<Head> heads;
  int64_t e = 0, c = 0, dil = 0;
  for (int t = 0; t < 6; ++t) {
    for (int64_t n = 0; n < o.counts[t]; ++n) {
      Head h{static_cast<RemType>(t)};
      if (t == 0 || t == 3) {
        h.eta = rem->eta[e++].item<double>();
      } else {
        h.nu = rem->nu[c].item<double>();
        h.theta = rem->theta[c++].item<double>();
      }
      if (t >= 3) h.d = o.dilations[static_cast<size_t>(dil++)];
      heads.push_back(h);
    }
  }
  return heads;
}

// f of one head at one lag, straight from the definitions (reference notes §1).
double closed_form(const Head& h, int64_t K, bool masked, int64_t lag) {
  if (masked ? lag < 1 : lag == 0) return 0.0;
  const int64_t l = std::abs(lag);
  if (l % h.d != 0 || l / h.d > K) return 0.0;
  const double p = static_cast<double>(l / h.d);
  switch (h.type) {
    case RemType::kRegular:
    case RemType::kDilatedRegular: return std::pow(std::tanh(h.eta), p);
    case RemType::kCyclicalCos:
    case RemType::kDilatedCos: return std::pow(sigmoid(h.nu), p) * std::cos(p * h.theta);
    case RemType::kCyclicalSin:
    case RemType::kDilatedSin: return std::pow(sigmoid(h.nu), p) * std::sin(p * h.theta);
  }
  return 0.0;
}

// The expected [h, q, m + q] REMs, entry by entry.
torch::Tensor closed_form_matrices(Rem& rem, int64_t q, int64_t m) {
  auto heads = heads_of(rem);
  auto P = torch::zeros({static_cast<int64_t>(heads.size()), q, q + m}, torch::kFloat64);
  auto a = P.accessor<double, 3>();
  for (size_t h = 0; h < heads.size(); ++h) {
    for (int64_t i = 0; i < q; ++i) {
      for (int64_t j = 0; j < q + m; ++j) {
        a[static_cast<int64_t>(h)][i][j] =
            closed_form(heads[h], rem->options().truncation, rem->options().masked, i + m - j);
      }
    }
  }
  return P;
}

TEST(Rem, EntriesMatchTheClosedFormForEveryTypeMaskDilationAndTruncation) {
  struct Layout {
    std::vector<int64_t> counts, dilations;
    std::vector<double> eta, nu, theta;
  };
  const std::vector<Layout> layouts = {
      // One head of each type; the regular head has a negative lambda, one dilated head has d = 1.
      {{1, 1, 1, 1, 1, 1}, {2, 3, 1}, {-0.7, 1.3}, {0.4, 1.1, -0.3, 2.0}, {0.9, 0.3, 1.7, 0.25}},
      {{1, 1, 1, 1, 1, 1}, {4, 1, 2}, {0.5, -1.6}, {1.4, 0.2, 0.8, -1.0}, {2.5, -0.4, 0.6, 1.2}},
      // Several heads per type, to pin the parameter and dilation layout.
      {{2, 1, 2, 1, 2, 1}, {2, 5, 3, 1}, {-1.2, 0.3, 0.9}, {0.1, 0.5, 0.9, 1.3, 1.7, 2.1}, {0.2, 0.4, 0.6, 0.8, 1.0, 1.2}},
  };
  for (const auto& layout : layouts) {
    for (bool masked : {true, false}) {
      for (int64_t K : {200, 3, 1}) {
        Rem rem(parametric(layout.counts, layout.dilations, K, masked));
        rem->to(torch::kFloat64);
        set(rem->eta, layout.eta);
        set(rem->nu, layout.nu);
        set(rem->theta, layout.theta);
        for (auto [q, m] : std::vector<std::pair<int64_t, int64_t>>{{7, 0}, {5, 6}, {1, 8}, {4, 2}}) {
          auto P = rem->matrices(q, m);
          auto want = closed_form_matrices(rem, q, m);
          ASSERT_EQ(P.sizes(), want.sizes());
          EXPECT_TRUE(torch::allclose(P, want, 1e-13, 1e-15))
              << "masked=" << masked << " K=" << K << " q=" << q << " m=" << m
              << " max error " << (P - want).abs().max().item<double>();
        }
      }
    }
  }
}

// The paper defines the unmasked REM as P_mask + P_mask^T (square case).
TEST(Rem, UnmaskedIsTheMaskedPlusItsTranspose) {
  Rem masked(parametric({1, 1, 1, 1, 1, 1}, {2, 3, 2}, 4, true));
  Rem unmasked(parametric({1, 1, 1, 1, 1, 1}, {2, 3, 2}, 4, false));
  auto a = masked->matrices(11, 0), b = unmasked->matrices(11, 0);
  EXPECT_TRUE(torch::allclose(b, a + a.transpose(1, 2)));
  EXPECT_TRUE(torch::equal(torch::diagonal(b, 0, 1, 2), torch::zeros({6, 11})));
}

TEST(Rem, InitialisationFollowsThePaper) {
  RemOptions o = parametric({4, 2, 2, 2, 1, 1}, {3, 6, 9, 12});
  o.mu_init = -1.0;
  Rem rem(o);
  EXPECT_EQ(rem->n_heads(), 12);
  // eta: per type, magnitudes spread over [1, 2], signs alternating.
  EXPECT_TRUE(torch::allclose(rem->eta, torch::tensor({1.0, -4.0 / 3, 5.0 / 3, -2.0, 1.0, -2.0})));
  // nu: per cyclical type over [1, 2]; the k-th cos and sin heads match; theta = pi/4.
  EXPECT_TRUE(torch::allclose(rem->nu, torch::tensor({1.0, 2.0, 1.0, 2.0, 1.5, 1.5})));
  EXPECT_TRUE(torch::allclose(rem->theta, torch::full({6}, M_PI / 4)));
  EXPECT_FLOAT_EQ(rem->mu.item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(rem->gate().item<float>(), static_cast<float>(sigmoid(-1.0)));
  EXPECT_EQ(rem->gate().dim(), 0);
  std::vector<std::string> names;
  for (const auto& p : rem->named_parameters()) names.push_back(p.key());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("mu", "eta", "nu", "theta"));
  EXPECT_EQ(rem->matrices(3, 2).scalar_type(), torch::kFloat32);
  rem->to(torch::kFloat64);
  EXPECT_EQ(rem->matrices(3, 2).scalar_type(), torch::kFloat64);

  Rem tl(toeplitz(3, 7));
  EXPECT_EQ(tl->weights.sizes(), (std::vector<int64_t>{3, 7}));
  EXPECT_TRUE(torch::equal(tl->weights, torch::zeros({3, 7})));
  Rem fl(full(2, 4, 9));
  EXPECT_EQ(fl->weights.sizes(), (std::vector<int64_t>{2, 4, 9}));
  EXPECT_TRUE(torch::equal(fl->weights, torch::zeros({2, 4, 9})));
  names.clear();
  for (const auto& p : fl->named_parameters()) names.push_back(p.key());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("mu", "weights"));
}

// Proposition 1, one real eigenvalue: with gate 1, a regular REM head over [memory ‖ segment] is the
// linear recurrence s_t = lambda (s_{t-1} + v_{t-1}), s_0 = 0, run over the whole key sequence; query i
// reads s at key position M + i. Init gives lambda = tanh(1) > 0 and tanh(-2) < 0.
TEST(Rem, RegularHeadsAreTheLinearRecurrence) {
  torch::manual_seed(1);
  Rem rem(parametric({2, 0, 0, 0, 0, 0}, {}));
  rem->to(torch::kFloat64);
  const int64_t B = 2, T = 12, M = 5, dh = 3;
  auto V = torch::randn({B, 2, M + T, dh}, torch::kFloat64);
  auto attn = torch::randn({B, 2, T, dh}, torch::kFloat64);  // must drop out at gate 1
  auto out = rsa_combine(attn, rem->matrices(T, M), V, torch::tensor(1.0, torch::kFloat64));
  for (int64_t h = 0; h < 2; ++h) {
    const double lambda = std::tanh(rem->eta[h].item<double>());
    for (int64_t b = 0; b < B; ++b) {
      auto s = torch::zeros({dh}, torch::kFloat64);
      for (int64_t t = 0; t < M + T; ++t) {
        if (t > 0) s = lambda * (s + V[b][h][t - 1]);
        if (t >= M) EXPECT_TRUE(torch::allclose(out[b][h][t - M], s, 1e-12, 1e-14)) << "h=" << h << " t=" << t;
      }
    }
  }
}

// Proposition 1, a complex pair: a cos head and a sin head with the same (nu, theta), on the same values,
// are the real and imaginary parts of s_t = w (s_{t-1} + v_{t-1}) with w = gamma e^{i theta}.
TEST(Rem, CyclicalPairIsTheComplexRecurrence) {
  torch::manual_seed(2);
  Rem rem(parametric({0, 1, 1, 0, 0, 0}, {}));
  rem->to(torch::kFloat64);
  set(rem->nu, {0.8, 0.8});
  set(rem->theta, {0.6, 0.6});
  const int64_t T = 15, M = 4;
  auto v = torch::randn({M + T}, torch::kFloat64);
  auto V = v.view({1, 1, M + T, 1}).expand({1, 2, M + T, 1});
  auto out = rem_apply(rem->matrices(T, M), V);  // [1, 2, T, 1]
  const std::complex<double> w = std::polar(sigmoid(0.8), 0.6);
  std::complex<double> s = 0;
  for (int64_t t = 0; t < M + T; ++t) {
    if (t > 0) s = w * (s + v[t - 1].item<double>());
    if (t < M) continue;
    EXPECT_NEAR(out[0][0][t - M][0].item<double>(), s.real(), 1e-12) << t;
    EXPECT_NEAR(out[0][1][t - M][0].item<double>(), s.imag(), 1e-12) << t;
  }
}

// Proposition 4, scalar form: dilated heads with factor d are the recurrences s_t = w (s_{t-d} + v_{t-d})
// (s_t = 0 for t < d), real w = lambda for the dilated regular head, complex w for the cos/sin pair.
TEST(Rem, DilatedHeadsAreTheDilatedRecurrence) {
  torch::manual_seed(3);
  const int64_t d = 3, T = 20;
  Rem rem(parametric({0, 0, 0, 1, 1, 1}, {d, d, d}));
  rem->to(torch::kFloat64);
  set(rem->eta, {-0.9});
  set(rem->nu, {1.2, 1.2});
  set(rem->theta, {2.2, 2.2});
  auto v = torch::randn({T}, torch::kFloat64);
  auto out = rem_apply(rem->matrices(T, 0), v.view({1, 1, T, 1}).expand({1, 3, T, 1}));
  const double lambda = std::tanh(-0.9);
  const std::complex<double> w = std::polar(sigmoid(1.2), 2.2);
  std::vector<double> real(T, 0.0);
  std::vector<std::complex<double>> cplx(T, 0.0);
  for (int64_t t = d; t < T; ++t) {
    real[t] = lambda * (real[t - d] + v[t - d].item<double>());
    cplx[t] = w * (cplx[t - d] + v[t - d].item<double>());
  }
  for (int64_t t = 0; t < T; ++t) {
    EXPECT_NEAR(out[0][0][t][0].item<double>(), real[t], 1e-12) << t;
    EXPECT_NEAR(out[0][1][t][0].item<double>(), cplx[t].real(), 1e-12) << t;
    EXPECT_NEAR(out[0][2][t][0].item<double>(), cplx[t].imag(), 1e-12) << t;
  }
}

// Propositions 1, 2 (d = 1) and 4 (d > 1), appendix C. The linear RNN h_t = W_h h_{t-d} + W_x x_t (h = 0
// before the start), i.e. h_t = sum_{j >= 0} W_h^j W_x x_{t - j d}, with W_h = Q J Q^{-1} and the real Jordan
// form J = diag(lambda_1, lambda_2, C_1, C_2, 0), C_k = gamma_k [[cos th_k, sin th_k], [-sin th_k, cos th_k]]
// (rank R = r + 2s = 6 < 7, distinct nonzero eigenvalues). For l >= 1,
//   W_h^l = sum_k lambda_k^l G_k^R + sum_k gamma_k^l (cos(l th_k) G_k^C1 + sin(l th_k) G_k^C2),
// with G_k^R = Q E_kk Q^{-1} (E_kk: 1 at (k, k)) and, for the 2x2 block of C_k, G_k^C1 = Q [I_2] Q^{-1} and
// G_k^C2 = Q [[0, 1], [-1, 0]] Q^{-1} placed on that block (C_k^l = gamma^l (cos(l th) I + sin(l th) A)).
// So h_t is an MHSA of r + 2s + 1 = 7 heads with zero queries/keys (gate 1 removes the softmax part): head
// "G" has REM P(lambda_k) or P^Ci(gamma_k, th_k) (dilated by d) and value projection W_V = G W_x; the
// last head has the identity matrix and W_V = W_x (the current input h_{0,t}); W_o sums the heads.
TEST(Rem, LinearRnnIsAnMhsaOfRemHeadsAndAnIdentityHead) {
  for (int64_t d : {1, 3}) {
    torch::manual_seed(4);
    const int64_t T = 16, n = 7, n_in = 4;
    const std::vector<double> lambdas = {0.8, -0.6};
    const std::vector<double> gammas = {0.9, 0.75}, thetas = {0.7, 2.1};
    auto J = torch::zeros({n, n}, torch::kFloat64);
    auto A = torch::tensor({{0.0, 1.0}, {-1.0, 0.0}}, torch::kFloat64);
    auto I2 = torch::eye(2, torch::kFloat64);
    for (int64_t k = 0; k < 2; ++k) J[k][k] = lambdas[k];
    for (int64_t k = 0; k < 2; ++k) {
      J.slice(0, 2 + 2 * k, 4 + 2 * k).slice(1, 2 + 2 * k, 4 + 2 * k) =
          gammas[k] * (std::cos(thetas[k]) * I2 + std::sin(thetas[k]) * A);
    }
    auto Q = torch::randn({n, n}, torch::kFloat64) + 3 * torch::eye(n, torch::kFloat64);
    auto Qinv = torch::inverse(Q);
    auto Wh = Q.mm(J).mm(Qinv);
    auto Wx = torch::randn({n, n_in}, torch::kFloat64);
    auto x = torch::randn({T, n_in}, torch::kFloat64);

    std::vector<torch::Tensor> h(T);
    for (int64_t t = 0; t < T; ++t) h[t] = Wx.mv(x[t]) + (t >= d ? Wh.mv(h[t - d]) : torch::zeros({n}, torch::kFloat64));
    auto rnn = torch::stack(h);  // [T, n]

    // Heads in RemType order: 2 regular, 2 cos, 2 sin (the dilated types when d > 1).
    Rem rem(d == 1 ? parametric({2, 2, 2, 0, 0, 0}, {}) : parametric({0, 0, 0, 2, 2, 2}, {d, d, d, d, d, d}));
    rem->to(torch::kFloat64);
    set(rem->eta, {std::atanh(lambdas[0]), std::atanh(lambdas[1])});
    set(rem->nu, {logit(gammas[0]), logit(gammas[1]), logit(gammas[0]), logit(gammas[1])});
    set(rem->theta, {thetas[0], thetas[1], thetas[0], thetas[1]});
    auto on_block = [&](int64_t k, const torch::Tensor& m) {
      auto E = torch::zeros({n, n}, torch::kFloat64);
      E.slice(0, 2 + 2 * k, 4 + 2 * k).slice(1, 2 + 2 * k, 4 + 2 * k) = m;
      return Q.mm(E).mm(Qinv);
    };
    std::vector<torch::Tensor> G;
    for (int64_t k = 0; k < 2; ++k) {
      auto E = torch::zeros({n, n}, torch::kFloat64);
      E[k][k] = 1.0;
      G.push_back(Q.mm(E).mm(Qinv));
    }
    for (int64_t k = 0; k < 2; ++k) G.push_back(on_block(k, I2));
    for (int64_t k = 0; k < 2; ++k) G.push_back(on_block(k, A));
    G.push_back(torch::eye(n, torch::kFloat64));  // identity head: W_V = W_x

    std::vector<torch::Tensor> values;
    for (const auto& g : G) values.push_back(x.mm(g.mm(Wx).t()));      // V = X W_V^T, [T, n]
    auto V = torch::stack(values).unsqueeze(0);                            // [1, 7, T, n]
    auto P = torch::cat({rem->matrices(T, 0), torch::eye(T, torch::kFloat64).unsqueeze(0)});  // [7, T, T]
    auto attn = torch::randn({1, 7, T, n}, torch::kFloat64);
    auto mhsa = rsa_combine(attn, P, V, torch::tensor(1.0, torch::kFloat64)).sum(1)[0];  // W_o = [I; ...; I]
    EXPECT_TRUE(torch::allclose(mhsa, rnn, 1e-10, 1e-11))
        << "d=" << d << " max error " << (mhsa - rnn).abs().max().item<double>();
  }
}

// Central finite differences of sum(R * rsa_combine(attn, P, V, gate)) with respect to every entry of
// `param` (up to ~30 of them), in double precision.
void expect_gradients_match(Rem& rem, torch::Tensor& param, int64_t q, int64_t m) {
  torch::manual_seed(5);
  const int64_t h = rem->n_heads();
  auto V = torch::randn({2, h, q + m, 3}, torch::kFloat64);
  auto attn = torch::randn({2, h, q, 3}, torch::kFloat64);
  auto R = torch::randn({2, h, q, 3}, torch::kFloat64);
  auto loss = [&] { return (rsa_combine(attn, rem->matrices(q, m), V, rem->gate()) * R).sum(); };
  for (auto& p : rem->parameters()) p.mutable_grad() = torch::Tensor();
  loss().backward();
  ASSERT_TRUE(param.grad().defined());
  auto analytic = param.grad().reshape({-1});
  ASSERT_TRUE(torch::isfinite(analytic).all().item<bool>());
  auto flat = param.data().view({-1});
  const double eps = 1e-6;
  torch::NoGradGuard no_grad;
  for (int64_t k = 0; k < flat.numel(); k += std::max<int64_t>(1, flat.numel() / 30)) {
    const double orig = flat[k].item<double>();
    flat[k] = orig + eps;
    const double up = loss().item<double>();
    flat[k] = orig - eps;
    const double down = loss().item<double>();
    flat[k] = orig;
    const double numeric = (up - down) / (2 * eps);
    EXPECT_NEAR(analytic[k].item<double>(), numeric, 1e-7 * std::max(1.0, std::abs(numeric))) << "entry " << k;
  }
}

TEST(Rem, GradientsOfEtaNuThetaMuMatchFiniteDifferences) {
  for (bool masked : {true, false}) {
    // K = 3 keeps truncation inside the graph; eta = 0 (lambda = 0) must still give a finite gradient.
    for (const std::vector<double>& eta : {std::vector<double>{-0.7, 1.3}, std::vector<double>{0.0, -0.4}}) {
      Rem rem(parametric({1, 1, 1, 1, 1, 1}, {2, 3, 1}, 3, masked));
      rem->to(torch::kFloat64);
      set(rem->eta, eta);
      set(rem->mu, {0.3});
      for (torch::Tensor* p : {&rem->eta, &rem->nu, &rem->theta, &rem->mu}) expect_gradients_match(rem, *p, 6, 4);
    }
  }
}

TEST(Rem, GradientsOfToeplitzAndFullWeightsMatchFiniteDifferences) {
  for (bool masked : {true, false}) {
    torch::manual_seed(6);
    Rem tl(toeplitz(2, 6, masked));
    tl->to(torch::kFloat64);
    {
      torch::NoGradGuard no_grad;
      tl->weights.normal_();
    }
    expect_gradients_match(tl, tl->weights, 5, 3);
    expect_gradients_match(tl, tl->mu, 5, 3);
    Rem fl(full(2, 6, 10, masked));
    fl->to(torch::kFloat64);
    {
      torch::NoGradGuard no_grad;
      fl->weights.normal_();
    }
    expect_gradients_match(fl, fl->weights, 5, 3);
  }
}

TEST(Rem, ToeplitzEntriesAreTheLagWeights) {
  for (bool masked : {true, false}) {
    Rem tl(toeplitz(2, 3, masked));
    tl->to(torch::kFloat64);
    set(tl->weights, {1.0, 2.0, 3.0, -1.0, -2.0, -3.0});
    auto P = tl->matrices(4, 2);  // lags from -3 to 5: K = 3 cuts the longest ones
    for (int64_t h = 0; h < 2; ++h) {
      for (int64_t i = 0; i < 4; ++i) {
        for (int64_t j = 0; j < 6; ++j) {
          const int64_t l = i + 2 - j, a = std::abs(l);
          const bool kept = (masked ? l >= 1 : l != 0) && a <= 3;
          EXPECT_EQ(P[h][i][j].item<double>(), kept ? (h == 0 ? 1.0 : -1.0) * static_cast<double>(a) : 0.0)
              << "h=" << h << " i=" << i << " j=" << j << " masked=" << masked;
        }
      }
    }
  }
}

TEST(Rem, FullUsesTheBottomRightBlockAndRefusesLongerSpans) {
  for (bool masked : {true, false}) {
    Rem fl(full(2, 5, 9, masked));
    fl->to(torch::kFloat64);
    {
      torch::NoGradGuard no_grad;
      fl->weights.copy_(torch::arange(90, torch::kFloat64).view({2, 5, 9}) + 1);
    }
    for (auto [q, m] : std::vector<std::pair<int64_t, int64_t>>{{3, 2}, {5, 4}, {1, 0}, {2, 7}}) {
      auto P = fl->matrices(q, m);
      ASSERT_EQ(P.sizes(), (std::vector<int64_t>{2, q, q + m}));
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t i = 0; i < q; ++i) {
          for (int64_t j = 0; j < q + m; ++j) {
            const int64_t l = i + m - j, r = 5 - q + i, c = 9 - (q + m) + j;
            const bool kept = masked ? l >= 1 : l != 0;
            EXPECT_EQ(P[h][i][j].item<double>(), kept ? fl->weights[h][r][c].item<double>() : 0.0);
            EXPECT_EQ(r - c + (9 - 5), l);  // an FL entry always stands for the same lag
          }
        }
      }
    }
    EXPECT_THAT([&] { fl->matrices(6, 0); }, ::testing::ThrowsMessage<Error>(HasSubstr("does not fit")));
    // A memory longer than in training: the keys beyond the learned span (lags never seen) get 0, the
    // others the same entries as before.
    for (auto [q, m] : std::vector<std::pair<int64_t, int64_t>>{{3, 7}, {5, 20}, {1, 30}}) {
      auto P = fl->matrices(q, m);
      ASSERT_EQ(P.sizes(), (std::vector<int64_t>{2, q, q + m}));
      const int64_t extra = q + m - 9;
      EXPECT_TRUE(torch::equal(P.slice(2, 0, extra), torch::zeros({2, q, extra}, torch::kFloat64)));
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t i = 0; i < q; ++i) {
          for (int64_t j = extra; j < q + m; ++j) {
            const int64_t l = i + m - j, r = 5 - q + i, c = j - extra;
            const bool kept = masked ? l >= 1 : l != 0;
            EXPECT_EQ(P[h][i][j].item<double>(), kept ? fl->weights[h][r][c].item<double>() : 0.0);
          }
        }
      }
    }
  }
}

// Table 7: RSA-XL adds 5 parameters per layer at (0,0,0,0,2,2) and 7 at (0,0,0,2,2,2). With the default
// pairing the k-th cos and k-th sin head of a family share (nu, theta) (Proposition 2's eigenvalue pair
// gamma e^{±i theta}); the matrices equal the per-head layout with each pair's values copied to both heads.
TEST(Rem, CyclicalPairsShareNuAndTheta) {
  auto count = [](Rem& r) {
    int64_t n = 0;
    for (const auto& p : r->parameters()) n += p.numel();
    return n;
  };
  Rem text8(parametric({0, 0, 0, 0, 2, 2}, {3, 6, 9, 12}, 200, true, CyclicalParams::kSharedPair));
  EXPECT_EQ(count(text8), 5);
  EXPECT_EQ(text8->nu.numel(), 2);
  Rem wt103(parametric({0, 0, 0, 2, 2, 2}, {12, 24, 12, 24, 12, 24}, 200, true, CyclicalParams::kSharedPair));
  EXPECT_EQ(count(wt103), 7);
  Rem per_head(parametric({0, 0, 0, 0, 2, 2}, {3, 6, 9, 12}, 200, true, CyclicalParams::kPerHead));
  EXPECT_EQ(count(per_head), 9);
  RemOptions fixed = parametric({0, 0, 0, 0, 2, 2}, {3, 6, 9, 12}, 200, true, CyclicalParams::kFixedTheta);
  Rem fixed_theta(fixed);
  EXPECT_EQ(count(fixed_theta), 5);
  EXPECT_EQ(fixed_theta->nu.numel(), 4);
  EXPECT_FALSE(fixed_theta->theta.requires_grad());
  // Pairs with unequal family sizes: (k2, k3) = (2, 1), (k5, k6) = (1, 2): pairs 0,1 | 2,3.
  for (auto counts : std::vector<std::vector<int64_t>>{{1, 2, 1, 0, 1, 2}, {0, 1, 1, 1, 2, 2}}) {
    std::vector<int64_t> dil(static_cast<size_t>(counts[3] + counts[4] + counts[5]), 2);
    Rem shared(parametric(counts, dil, 200, true, CyclicalParams::kSharedPair));
    Rem wide(parametric(counts, dil, 200, true, CyclicalParams::kPerHead));
    shared->to(torch::kFloat64);
    wide->to(torch::kFloat64);
    const int64_t f0 = std::max(counts[1], counts[2]), f1 = std::max(counts[4], counts[5]);
    ASSERT_EQ(shared->nu.numel(), f0 + f1);
    std::vector<double> nu, theta, wide_nu, wide_theta;
    for (int64_t p = 0; p < f0 + f1; ++p) {
      nu.push_back(0.3 + 0.4 * p);
      theta.push_back(0.2 + 0.5 * p);
    }
    set(shared->nu, nu);
    set(shared->theta, theta);
    set(shared->eta, std::vector<double>(static_cast<size_t>(counts[0] + counts[3]), 0.7));
    set(wide->eta, std::vector<double>(static_cast<size_t>(counts[0] + counts[3]), 0.7));
    for (int64_t f = 0; f < 2; ++f) {
      const int64_t offset = f == 0 ? 0 : f0;
      for (int64_t k : {counts[f == 0 ? 1 : 4], counts[f == 0 ? 2 : 5]}) {
        for (int64_t i = 0; i < k; ++i) {
          wide_nu.push_back(nu[static_cast<size_t>(offset + i)]);
          wide_theta.push_back(theta[static_cast<size_t>(offset + i)]);
        }
      }
    }
    set(wide->nu, wide_nu);
    set(wide->theta, wide_theta);
    EXPECT_TRUE(torch::allclose(shared->matrices(9, 4), wide->matrices(9, 4), 1e-14, 1e-15));
  }
}

TEST(Rem, ApplyEqualsTheBroadcastProduct) {
  torch::manual_seed(7);
  for (auto [B, h, q, m, dh] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>>{
           {4, 3, 5, 4, 6}, {1, 1, 7, 0, 2}, {3, 2, 1, 9, 5}}) {
    auto P = torch::randn({h, q, q + m}, torch::kFloat64);
    auto V = torch::randn({B, h, q + m, dh}, torch::kFloat64);
    auto out = rem_apply(P, V);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{B, h, q, dh}));
    auto naive = (P.unsqueeze(0).unsqueeze(-1) * V.unsqueeze(2)).sum(3);  // [B, h, q, k, dh] summed over k
    EXPECT_TRUE(torch::allclose(out, naive, 1e-12, 1e-12));
    EXPECT_TRUE(torch::allclose(out, torch::einsum("hij,bhjd->bhid", {P, V}), 1e-12, 1e-12));
    auto attn = torch::randn({B, h, q, dh}, torch::kFloat64);
    auto g = torch::tensor(0.3, torch::kFloat64);
    EXPECT_TRUE(torch::allclose(rsa_combine(attn, P, V, g), 0.7 * attn + 0.3 * naive, 1e-12, 1e-12));
  }
  EXPECT_THAT([] { rem_apply(torch::zeros({2, 3, 4}), torch::zeros({1, 3, 4, 5})); },
              ::testing::ThrowsMessage<Error>(HasSubstr("same h and k")));
}

// Every backward node from P to the parameters, by name.
std::set<std::string> backward_nodes(const torch::Tensor& P) {
  std::set<std::string> names;
  std::vector<torch::autograd::Node*> todo{P.grad_fn().get()};
  while (!todo.empty()) {
    torch::autograd::Node* node = todo.back();
    todo.pop_back();
    if (node == nullptr || !names.insert(node->name()).second) continue;
    for (const auto& edge : node->next_edges()) todo.push_back(edge.function.get());
  }
  return names;
}

// Issue 19 item 3: on CUDA the backward of index_select / gather / index / as_strided with repeated
// indices is index_add_ or index_put_ with atomics, so RSA gradients would differ run to run. P must be
// built from elementwise ops, slices, flips and unfold (whose backward sums each entry in one thread).
TEST(Rem, MatricesHaveNoAtomicScatterInTheirBackward) {
  std::vector<RemOptions> kinds;
  for (bool masked : {true, false}) {
    for (CyclicalParams cyc : {CyclicalParams::kSharedPair, CyclicalParams::kFixedTheta, CyclicalParams::kPerHead}) {
      kinds.push_back(parametric({1, 2, 1, 1, 1, 2}, {2, 3, 2, 4}, 5, masked, cyc));
    }
    kinds.push_back(toeplitz(2, 4, masked));
    kinds.push_back(full(2, 6, 10, masked));
  }
  for (const RemOptions& o : kinds) {
    Rem rem(o);
    auto P = rem->matrices(5, 3);
    ASSERT_TRUE(P.requires_grad());
    for (const std::string& name : backward_nodes(P)) {
      for (const char* atomic : {"IndexSelect", "Gather", "Scatter", "IndexBackward", "IndexPut", "IndexAdd", "AsStrided"}) {
        EXPECT_EQ(name.find(atomic), std::string::npos) << name << " in the backward of " << int(o.kind) << " REMs";
      }
    }
  }
}

std::string error_of(const RemOptions& o) {
  try {
    validate(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Rem, ValidationNamesTheProblem) {
  EXPECT_EQ(error_of(parametric({1, 1, 1, 1, 1, 1}, {1, 2, 3})), "");
  EXPECT_THAT(error_of(parametric({1, 0, 0, 1, 0, 0}, {})), HasSubstr("missing dilations"));
  EXPECT_THAT(error_of(parametric({1, 0, 0, 1, 0, 1}, {2})), HasSubstr("missing dilations"));
  EXPECT_THAT(error_of(parametric({1, 0, 0, 0, 0, 0}, {3})), HasSubstr("too many dilations"));
  EXPECT_THAT(error_of(parametric({0, 0, 0, 1, 0, 0}, {0})), HasSubstr("must be at least 1"));
  EXPECT_THAT(error_of(parametric({1, 0, 0, 0, 0, 0}, {}, 0)), HasSubstr("truncation K must be at least 1"));
  EXPECT_THAT(error_of(parametric({0, 0, 0, 0, 0, 0}, {})), HasSubstr("at least one REM head"));
  EXPECT_THAT(error_of(parametric({-1, 2, 0, 0, 0, 0}, {})), HasSubstr("k1 is negative"));
  EXPECT_THAT(error_of(parametric({1, 2, 0}, {})), HasSubstr("six entries"));
  RemOptions o = parametric({2, 0, 0, 0, 0, 0}, {});
  o.n_heads = 3;
  EXPECT_THAT(error_of(o), HasSubstr("sum to 2 but n_heads = 3"));
  o.n_heads = 2;
  EXPECT_EQ(error_of(o), "");
  o.mu_init = std::nan("");
  EXPECT_THAT(error_of(o), HasSubstr("mu_init must be finite"));
  EXPECT_THAT(error_of(toeplitz(0, 5)), HasSubstr("TL (learnable Toeplitz) REMs need n_heads >= 1"));
  EXPECT_THAT(error_of(toeplitz(2, 0)), HasSubstr("number of lag weights"));
  RemOptions typed = toeplitz(2, 5);
  typed.counts = {2, 0, 0, 0, 0, 0};
  EXPECT_THAT(error_of(typed), HasSubstr("take n_heads only"));
  EXPECT_THAT(error_of(full(2, 0, 4)), HasSubstr("max_qlen >= 1"));
  EXPECT_THAT(error_of(full(2, 5, 4)), HasSubstr("max_klen >= max_qlen"));
  EXPECT_THROW(Rem(parametric({1, 0, 0, 1, 0, 0}, {})), Error);  // the constructor validates
  Rem rem(parametric({1, 0, 0, 0, 0, 0}, {}));
  EXPECT_THAT([&] { rem->matrices(0, 3); }, ::testing::ThrowsMessage<Error>(HasSubstr("qlen >= 1")));
}

TEST(Rem, SaveLoadRoundTripReproducesTheMatrices) {
  const std::string path = "/tmp/recur-test-rem-" + std::to_string(::getpid()) + ".pt";
  // The second layout has no regular head: an empty eta must round-trip too.
  for (const RemOptions& o : {parametric({1, 1, 1, 0, 1, 0}, {4}), parametric({0, 0, 0, 0, 2, 2}, {3, 6, 9, 12}),
                              toeplitz(2, 5), full(2, 4, 7)}) {
    Rem a(o);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : a->parameters()) p.add_(torch::randn_like(p));
    }
    torch::save(a, path);
    Rem b(o);
    torch::load(b, path);
    EXPECT_TRUE(torch::equal(a->matrices(4, 3), b->matrices(4, 3)));
    EXPECT_TRUE(torch::equal(a->gate(), b->gate()));
  }
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace recur::model
