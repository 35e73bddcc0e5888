// REMs against their closed forms and naive loops (RSA paper §3, appendix C/D; reference notes §1):
// entries, Propositions 1-2, finite-difference gradients, rem_apply, validation, save -> load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <complex>

#include "core/error.h"
#include "model/rem.h"

namespace recur::model {
namespace {

using ::testing::HasSubstr;
using torch::indexing::Slice;

RemOptions parametric(std::vector<int64_t> counts, std::vector<int64_t> dilations, int64_t K = 200, bool masked = true) {
  RemOptions o;
  o.counts = counts;
  o.dilations = dilations;
  o.truncation = K;
  o.masked = masked;
  return o;
}

// f(l) of a head by the formula, computed with scalars.
double formula(RemType type, double eta, double nu, double theta, int64_t d, int64_t K, bool masked, int64_t lag) {
  if (masked ? lag < 1 : lag == 0) return 0.0;
  int64_t l = std::abs(lag);
  if (l % d != 0) return 0.0;
  int64_t p = l / d;
  if (p > K) return 0.0;
  switch (type) {
    case RemType::kRegular:
    case RemType::kDilatedRegular: return std::pow(std::tanh(eta), static_cast<double>(p));
    case RemType::kCyclicalCos:
    case RemType::kDilatedCos: return std::pow(1.0 / (1.0 + std::exp(-nu)), static_cast<double>(p)) * std::cos(p * theta);
    default: return std::pow(1.0 / (1.0 + std::exp(-nu)), static_cast<double>(p)) * std::sin(p * theta);
  }
}

TEST(Rem, EntriesMatchTheFormulaForEveryTypeMaskDilationAndTruncation) {
  for (bool masked : {true, false}) {
    for (int64_t K : {200, 3}) {
      // One head of each type; dilations 2 and 3 and 1 for the dilated ones.
      Rem rem(parametric({1, 1, 1, 1, 1, 1}, {2, 3, 1}, K, masked));
      rem->to(torch::kFloat64);
      {
        torch::NoGradGuard g;
        rem->eta.copy_(torch::tensor({-0.7, 1.3}, torch::kFloat64));  // negative lambda for the regular head
        rem->nu.copy_(torch::tensor({0.4, 1.1, -0.3, 2.0}, torch::kFloat64));
        rem->theta.copy_(torch::tensor({0.9, 0.3, 1.7, 0.25}, torch::kFloat64));
      }
      const RemType types[6] = {RemType::kRegular, RemType::kCyclicalCos, RemType::kCyclicalSin,
                                RemType::kDilatedRegular, RemType::kDilatedCos, RemType::kDilatedSin};
      const int64_t dil[6] = {1, 1, 1, 2, 3, 1};
      const int64_t eta_i[6] = {0, -1, -1, 1, -1, -1}, cyc_i[6] = {-1, 0, 1, -1, 2, 3};
      for (auto [q, m] : std::vector<std::pair<int64_t, int64_t>>{{7, 0}, {5, 6}}) {
        auto P = rem->matrices(q, m);
        ASSERT_EQ(P.sizes(), (std::vector<int64_t>{6, q, q + m}));
        for (int h = 0; h < 6; ++h) {
          double eta = eta_i[h] >= 0 ? rem->eta[eta_i[h]].item<double>() : 0;
          double nu = cyc_i[h] >= 0 ? rem->nu[cyc_i[h]].item<double>() : 0;
          double th = cyc_i[h] >= 0 ? rem->theta[cyc_i[h]].item<double>() : 0;
          for (int64_t i = 0; i < q; ++i) {
            for (int64_t j = 0; j < q + m; ++j) {
              double want = formula(types[h], eta, nu, th, dil[h], K, masked, i + m - j);
              EXPECT_NEAR(P[h][i][j].item<double>(), want, 1e-12)
                  << "head " << h << " i=" << i << " j=" << j << " masked=" << masked << " K=" << K << " m=" << m;
            }
          }
        }
      }
    }
  }
}

TEST(Rem, UnmaskedIsTheMaskedPlusItsTranspose) {
  Rem masked(parametric({1, 1, 1, 0, 0, 0}, {}, 200, true));
  Rem unmasked(parametric({1, 1, 1, 0, 0, 0}, {}, 200, false));
  auto a = masked->matrices(9, 0), b = unmasked->matrices(9, 0);
  EXPECT_TRUE(torch::allclose(b, a + a.transpose(1, 2)));
}

// Proposition 1: with gate 1 a regular REM head is the linear recurrence s_i = lambda (s_{i-1} + v_{i-1}).
TEST(Rem, RegularHeadIsTheLinearRecurrence) {
  Rem rem(parametric({1, 0, 0, 0, 0, 0}, {}));
  rem->to(torch::kFloat64);
  const int64_t T = 12, dh = 3;
  auto V = torch::randn({2, 1, T, dh}, torch::kFloat64);
  auto attn = torch::randn({2, 1, T, dh}, torch::kFloat64);
  auto out = rsa_combine(attn, rem->matrices(T, 0), V, torch::tensor(1.0, torch::kFloat64));
  double lambda = std::tanh(rem->eta[0].item<double>());
  for (int64_t b = 0; b < 2; ++b) {
    auto s = torch::zeros({dh}, torch::kFloat64);
    for (int64_t i = 0; i < T; ++i) {
      if (i > 0) s = lambda * (s + V[b][0][i - 1]);
      EXPECT_TRUE(torch::allclose(out[b][0][i], s, 1e-10, 1e-12)) << "i=" << i;
    }
  }
}

// Proposition 2: a cos/sin pair with the same (nu, theta) gives the real and imaginary parts of the
// recurrence with the complex weight gamma e^{i theta}.
TEST(Rem, CyclicalPairIsTheComplexRecurrence) {
  Rem rem(parametric({0, 1, 1, 0, 0, 0}, {}));
  rem->to(torch::kFloat64);
  {
    torch::NoGradGuard g;
    rem->nu.fill_(0.8);
    rem->theta.fill_(0.6);
  }
  const int64_t T = 15;
  auto v = torch::randn({T}, torch::kFloat64);
  auto P = rem->matrices(T, 0);
  auto re = torch::mv(P[0], v), im = torch::mv(P[1], v);
  const std::complex<double> w = std::polar(1.0 / (1.0 + std::exp(-0.8)), 0.6);
  std::complex<double> s = 0;
  for (int64_t i = 0; i < T; ++i) {
    if (i > 0) s = w * (s + v[i - 1].item<double>());
    EXPECT_NEAR(re[i].item<double>(), s.real(), 1e-12);
    EXPECT_NEAR(im[i].item<double>(), s.imag(), 1e-12);
  }
}

// The RNN h_t = W_h h_{t-1} + W_x x_t (h_0 = 0) with W_h = Q D Q^{-1}, D holding r real eigenvalues and s
// rotation-scaling blocks gamma [[cos, -sin], [sin, cos]], equals W_x x_t plus Q times REM outputs:
// h_t = W_x x_t + Q sum_{j<t} D^{t-j} u_j with u_j = Q^{-1} W_x x_j, where each real eigenvalue is one
// regular head on u_k and each block is a cos head C and a sin head S on (a, b) = (u_k, u_{k+1}):
// D^l (a, b) = gamma^l (cos(l theta) a - sin(l theta) b, sin(l theta) a + cos(l theta) b). That is
// r + 2s REM heads plus the identity path for the current input (the "+1").
TEST(Rem, LinearRnnWithDistinctEigenvaluesIsAnRsaOfREMHeads) {
  torch::manual_seed(3);
  const int64_t T = 14, n_in = 3;
  const std::vector<double> lambdas = {0.7, -0.5};     // r = 2 real eigenvalues
  const std::vector<std::pair<double, double>> blocks = {{0.8, 0.9}};  // s = 1: (gamma, theta)
  const int64_t n = 4;
  auto D = torch::zeros({n, n}, torch::kFloat64);
  D[0][0] = lambdas[0];
  D[1][1] = lambdas[1];
  double g = blocks[0].first, th = blocks[0].second;
  D[2][2] = g * std::cos(th);
  D[2][3] = -g * std::sin(th);
  D[3][2] = g * std::sin(th);
  D[3][3] = g * std::cos(th);
  auto Q = torch::randn({n, n}, torch::kFloat64) + 2 * torch::eye(n, torch::kFloat64);
  auto Wh = Q.mm(D).mm(torch::inverse(Q));
  auto Wx = torch::randn({n, n_in}, torch::kFloat64);
  auto x = torch::randn({T, n_in}, torch::kFloat64);
  // The RNN by a loop.
  auto h = torch::zeros({n}, torch::kFloat64);
  std::vector<torch::Tensor> rnn;
  for (int64_t t = 0; t < T; ++t) {
    h = Wh.mv(h) + Wx.mv(x[t]);
    rnn.push_back(h);
  }
  // The same with REM heads: eta = atanh(lambda), nu = logit(gamma).
  Rem rem(parametric({2, 1, 1, 0, 0, 0}, {}));
  rem->to(torch::kFloat64);
  {
    torch::NoGradGuard ng;
    rem->eta.copy_(torch::tensor({std::atanh(lambdas[0]), std::atanh(lambdas[1])}, torch::kFloat64));
    rem->nu.fill_(std::log(g / (1 - g)));
    rem->theta.fill_(th);
  }
  auto P = rem->matrices(T, 0);                            // heads: reg, reg, cos, sin
  auto u = torch::inverse(Q).mm(Wx).mm(x.t()).t();         // [T, n]
  auto z0 = P[0].mv(u.select(1, 0)), z1 = P[1].mv(u.select(1, 1));
  auto ab = u.slice(1, 2, 4);                              // [T, 2]
  auto C = P[2].mm(ab), S = P[3].mm(ab);
  auto z2 = C.select(1, 0) - S.select(1, 1), z3 = S.select(1, 0) + C.select(1, 1);
  auto z = torch::stack({z0, z1, z2, z3}, 1);               // [T, n]
  auto rsa = x.mm(Wx.t()) + z.mm(Q.t());
  for (int64_t t = 0; t < T; ++t) EXPECT_TRUE(torch::allclose(rsa[t], rnn[static_cast<size_t>(t)], 1e-9, 1e-10)) << t;
}

// Central finite differences of a scalar loss through rsa_combine, in double precision.
void expect_gradients_match(Rem& rem, torch::Tensor& param, int64_t q, int64_t m) {
  rem->to(torch::kFloat64);
  torch::manual_seed(5);
  auto V = torch::randn({2, rem->n_heads(), q + m, 3}, torch::kFloat64);
  auto attn = torch::randn({2, rem->n_heads(), q, 3}, torch::kFloat64);
  auto R = torch::randn({2, rem->n_heads(), q, 3}, torch::kFloat64);
  auto loss_fn = [&] { return (rsa_combine(attn, rem->matrices(q, m), V, rem->gate()) * R).sum(); };
  for (auto& p : rem->parameters()) p.mutable_grad() = torch::Tensor();
  loss_fn().backward();
  auto analytic = param.grad().clone();
  auto flat = param.data().view({-1});
  const double eps = 1e-6;
  for (int64_t k = 0; k < flat.numel(); k += std::max<int64_t>(1, flat.numel() / 25)) {
    double orig = flat[k].item<double>();
    torch::NoGradGuard ng;
    flat[k] = orig + eps;
    double up = loss_fn().item<double>();
    flat[k] = orig - eps;
    double down = loss_fn().item<double>();
    flat[k] = orig;
    double numeric = (up - down) / (2 * eps);
    EXPECT_NEAR(analytic.view({-1})[k].item<double>(), numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << "index " << k;
  }
}

TEST(Rem, GradientsOfEtaNuThetaMuMatchFiniteDifferences) {
  Rem rem(parametric({1, 1, 1, 1, 0, 1}, {2, 3}));
  expect_gradients_match(rem, rem->eta, 6, 4);
  expect_gradients_match(rem, rem->nu, 6, 4);
  expect_gradients_match(rem, rem->theta, 6, 4);
  expect_gradients_match(rem, rem->mu, 6, 4);
}

TEST(Rem, GradientsOfToeplitzAndFullWeightsMatchFiniteDifferences) {
  RemOptions tl;
  tl.kind = RemKind::kToeplitz;
  tl.n_heads = 2;
  tl.truncation = 6;
  Rem t(tl);
  {
    torch::NoGradGuard g;
    t->weights.normal_();
  }
  expect_gradients_match(t, t->weights, 5, 3);
  RemOptions fl;
  fl.kind = RemKind::kFull;
  fl.n_heads = 2;
  fl.max_qlen = 6;
  fl.max_klen = 10;
  Rem f(fl);
  {
    torch::NoGradGuard g;
    f->weights.normal_();
  }
  expect_gradients_match(f, f->weights, 5, 3);
}

TEST(Rem, ToeplitzAndFullHaveTheirShapes) {
  RemOptions tl;
  tl.kind = RemKind::kToeplitz;
  tl.n_heads = 1;
  tl.truncation = 3;
  Rem t(tl);
  {
    torch::NoGradGuard g;
    t->weights.copy_(torch::tensor({{1.0f, 2.0f, 3.0f}}));
  }
  auto P = t->matrices(4, 2)[0];  // lag = i + 2 - j
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t j = 0; j < 6; ++j) {
      int64_t l = i + 2 - j;
      EXPECT_FLOAT_EQ(P[i][j].item<float>(), l >= 1 && l <= 3 ? static_cast<float>(l) : 0.0f);
    }
  }
  RemOptions fl;
  fl.kind = RemKind::kFull;
  fl.n_heads = 1;
  fl.max_qlen = 4;
  fl.max_klen = 8;
  Rem f(fl);
  {
    torch::NoGradGuard g;
    f->weights.copy_(torch::arange(32, torch::kFloat32).view({1, 4, 8}));
  }
  auto F = f->matrices(3, 2)[0];  // bottom-right aligned: rows 1..3, columns 3..7 of the matrix
  EXPECT_FLOAT_EQ(F[2][3].item<float>(), 3 * 8 + 6);  // lag 1
  EXPECT_FLOAT_EQ(F[2][4].item<float>(), 0.0f);        // lag 0: masked
  EXPECT_THROW(f->matrices(5, 0), Error);
}

TEST(Rem, ApplyEqualsTheBroadcastProduct) {
  auto P = torch::randn({3, 5, 9}, torch::kFloat64);
  auto V = torch::randn({4, 3, 9, 6}, torch::kFloat64);
  auto naive = torch::einsum("hij,bhjd->bhid", {P, V});
  EXPECT_TRUE(torch::allclose(rem_apply(P, V), naive, 1e-12, 1e-12));
}

TEST(Rem, ValidationNamesTheProblem) {
  auto error_of = [](const RemOptions& o) {
    try {
      validate(o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_THAT(error_of(parametric({1, 0, 0, 1, 0, 0}, {})), HasSubstr("missing dilations"));
  EXPECT_THAT(error_of(parametric({1, 0, 0, 0, 0, 0}, {}, 0)), HasSubstr("truncation"));
  EXPECT_THAT(error_of(parametric({0, 0, 0, 0, 0, 0}, {})), HasSubstr("at least one"));
  EXPECT_THAT(error_of(parametric({-1, 2, 0, 0, 0, 0}, {})), HasSubstr("negative"));
  EXPECT_THAT(error_of(parametric({0, 0, 0, 1, 0, 0}, {0})), HasSubstr("dilation must be at least 1"));
  RemOptions o = parametric({2, 0, 0, 0, 0, 0}, {});
  o.n_heads = 3;
  EXPECT_THAT(error_of(o), HasSubstr("sum to 2"));
}

TEST(Rem, SaveLoadRoundTrip) {
  std::string path = "/tmp/recur-test-rem-" + std::to_string(::getpid()) + ".pt";
  Rem a(parametric({1, 1, 1, 0, 1, 0}, {4}));
  {
    torch::NoGradGuard g;
    for (auto& p : a->parameters()) p.add_(torch::randn_like(p));
  }
  torch::save(a, path);
  Rem b(parametric({1, 1, 1, 0, 1, 0}, {4}));
  torch::load(b, path);
  EXPECT_TRUE(torch::equal(a->matrices(6, 3), b->matrices(6, 3)));
  EXPECT_TRUE(torch::equal(a->gate(), b->gate()));
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace recur::model
