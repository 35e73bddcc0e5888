// Power-law fits (coord/fit.h): against the closed form on noiseless data, a known exponent recovered
// from noisy seeds within its bootstrap interval, and a sweep's trials grouped into series with x
// chosen as fit_sweep documents.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "coord/fit.h"
#include "core/error.h"

namespace recur::coord {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// Three points at x, r·x, r²·x determine a·x^(−α) + c: (y2 − y3)/(y1 − y2) = r^(−α).
TEST(PowerLawFit, NoiselessThreePointsMatchTheClosedForm) {
  const double a = 40, alpha = 0.3, c = 1.1, x1 = 2e5, r = 4;
  const std::vector<double> x = {x1, r * x1, r * r * x1};
  std::vector<double> y;
  for (double v : x) y.push_back(a * std::pow(v, -alpha) + c);
  const double closed_alpha = -std::log((y[1] - y[2]) / (y[0] - y[1])) / std::log(r);
  const double closed_a = (y[0] - y[1]) / (std::pow(x[0], -closed_alpha) - std::pow(x[1], -closed_alpha));
  const double closed_c = y[0] - closed_a * std::pow(x[0], -closed_alpha);
  const PowerLaw f = fit_power_law(x, y);
  EXPECT_NEAR(f.alpha, closed_alpha, 1e-6);
  EXPECT_NEAR(f.a, closed_a, 1e-4 * closed_a);
  EXPECT_NEAR(f.c, closed_c, 1e-6);
  EXPECT_NEAR(f.alpha, alpha, 1e-6);
  EXPECT_LT(f.rss, 1e-16);
}

// Noiseless, many points, parameter counts in the billions, and c = 0 (where log y is linear in log x).
TEST(PowerLawFit, NoiselessCurvesAreRecoveredExactly) {
  for (const auto& [a, alpha, c, x0] : std::vector<std::tuple<double, double, double, double>>{
           {3.0, 0.076, 0.0, 1e6}, {250.0, 0.5, 0.9, 1e3}, {1e4, 1.7, -2.0, 10.0}, {12.0, 0.05, 1.3, 1e8}}) {
    std::vector<double> x, y;
    for (int k = 0; k < 7; ++k) {
      x.push_back(x0 * std::pow(2.5, k));
      y.push_back(a * std::pow(x.back(), -alpha) + c);
    }
    const PowerLaw f = fit_power_law(x, y);
    EXPECT_NEAR(f.alpha, alpha, 1e-5 * alpha) << a << " " << alpha << " " << c;
    EXPECT_NEAR(f.a, a, 1e-4 * a);
    EXPECT_NEAR(f.c, c, 1e-6 * (1 + std::abs(c)));
    if (c == 0) {  // the naive log-log line: slope −α
      double mx = 0, my = 0, sxy = 0, sxx = 0;
      for (size_t i = 0; i < x.size(); ++i) mx += std::log(x[i]) / 7, my += std::log(y[i]) / 7;
      for (size_t i = 0; i < x.size(); ++i) {
        sxy += (std::log(x[i]) - mx) * (std::log(y[i]) - my);
        sxx += (std::log(x[i]) - mx) * (std::log(x[i]) - mx);
      }
      EXPECT_NEAR(f.alpha, -sxy / sxx, 1e-6);
    }
  }
}

// Five seeds per x with noise: the known exponent (and a, c) lie within their bootstrap 95% intervals,
// which are narrow, and the same data give the same intervals.
TEST(PowerLawFit, RecoversAKnownExponentFromNoisySeedsWithinItsInterval) {
  const double a = 30, alpha = 0.35, c = 1.2;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 0.004);
  std::vector<double> x, y;
  for (double n : {1e5, 3e5, 1e6, 3e6, 1e7, 3e7}) {
    for (int seed = 0; seed < 5; ++seed) {
      x.push_back(n);
      y.push_back(a * std::pow(n, -alpha) + c + noise(rng));
    }
  }
  const PowerLawFit f = fit_power_law_bootstrap(x, y, 1000);
  ASSERT_TRUE(f.alpha && f.a && f.c);
  EXPECT_EQ(f.resamples, 1000);
  EXPECT_LE(f.alpha->lo, alpha);
  EXPECT_GE(f.alpha->hi, alpha);
  EXPECT_LE(f.alpha->lo, f.fit.alpha);
  EXPECT_GE(f.alpha->hi, f.fit.alpha);
  EXPECT_LT(f.alpha->hi - f.alpha->lo, 0.1);
  EXPECT_NEAR(f.fit.alpha, alpha, 0.05);
  EXPECT_LE(f.c->lo, c);
  EXPECT_GE(f.c->hi, c);
  EXPECT_LE(f.a->lo, a);
  EXPECT_GE(f.a->hi, a);
  const PowerLawFit again = fit_power_law_bootstrap(x, y, 1000);
  EXPECT_EQ(again.alpha->lo, f.alpha->lo);
  EXPECT_EQ(again.alpha->hi, f.alpha->hi);
}

TEST(PowerLawFit, RefusesTooFewDistinctXAndBadValues) {
  EXPECT_THAT([] { fit_power_law({1, 1, 2, 2}, {3, 3.1, 2, 2.1}); },
              ::testing::ThrowsMessage<Error>(HasSubstr("at least 3 distinct x (got 2)")));
  EXPECT_THAT([] { fit_power_law({1, 0, 2}, {3, 2, 1}); }, ::testing::ThrowsMessage<Error>(HasSubstr("positive")));
  EXPECT_THAT([] { fit_power_law({1, 2, 3}, {3, NAN, 1}); }, ::testing::ThrowsMessage<Error>(HasSubstr("finite")));
  EXPECT_THAT([] { fit_power_law({1, 2, 3}, {3, 2}); }, ::testing::ThrowsMessage<Error>(HasSubstr("3 x values but 2")));
  // One value per x: nothing to resample, so no intervals
  const PowerLawFit f = fit_power_law_bootstrap({1, 2, 4, 8}, {2, 1.5, 1.25, 1.125}, 100);
  EXPECT_FALSE(f.alpha.has_value());
  EXPECT_NEAR(f.fit.alpha, 1.0, 1e-6);
}

json trial(const json& point, const std::string& state, const json& result) {
  return {{"point", point}, {"state", state}, {"result", result}};
}

// A model-scaling sweep: x is the parameter count (it varies along model.n_layer); FL-XL's points
// carry other layer counts (parameter-matched), which is why x is not the axis value. One series per
// model; failed trials and trials without the metric are left out.
TEST(FitSweep, ModelScalingFitsPerModelAlongTheParameterCount) {
  json sweep = {{"axes", {"model", "model.n_layer"}}, {"metric", "bpc"}, {"trials", json::array()}};
  const std::vector<std::pair<std::string, std::pair<double, int>>> models = {{"xl", {0.3, 0}}, {"fl_xl", {0.2, -2}}};
  for (const auto& [model, spec] : models) {
    for (int layers : {10, 12, 14, 16}) {
      const int n_layer = layers + spec.second;
      const double params = 1e5 * n_layer + 3e4;
      for (int seed = 0; seed < 3; ++seed) {
        const double bpc = 20 * std::pow(params, -spec.first) + 1 + 0.001 * (seed - 1);
        sweep["trials"].push_back(trial({{"model", model}, {"model.n_layer", n_layer}}, "succeeded", {{"bpc", bpc}, {"parameters", params}}));
      }
    }
  }
  sweep["trials"].push_back(trial({{"model", "xl"}, {"model.n_layer", 10}}, "failed", nullptr));
  sweep["trials"].push_back(trial({{"model", "xl"}, {"model.n_layer", 10}}, "succeeded", {{"loss", 3}, {"parameters", 1}}));
  const json r = fit_sweep(sweep, "auto", 200);
  EXPECT_EQ(r["x"], "parameters");
  ASSERT_EQ(r["fits"].size(), 2u);
  EXPECT_EQ(r["fits"][0]["series"], "model=xl");  // in the order the series first appear
  EXPECT_EQ(r["fits"][1]["series"], "model=fl_xl");
  EXPECT_NEAR(r["fits"][0]["alpha"].get<double>(), 0.3, 0.03);
  EXPECT_NEAR(r["fits"][1]["alpha"].get<double>(), 0.2, 0.03);
  EXPECT_EQ(r["fits"][0]["n"], 12);
  EXPECT_EQ(r["fits"][1]["points"][0]["x"].get<double>(), 1e5 * 8 + 3e4);
  EXPECT_TRUE(r["fits"][0]["alpha_ci"].is_array());
  // x = the axis value when asked
  EXPECT_EQ(fit_sweep(sweep, "axis", 0)["x"], "model.n_layer");
}

// Data scaling: the parameter count does not vary, so x is the last axis' value; a non-numeric last
// axis and a series with fewer than 3 distinct x are refused with the series named.
TEST(FitSweep, AxisValuesWhenTheModelIsFixedAndClearErrors) {
  json sweep = {{"axes", {"model", "data.fraction"}}, {"metric", "bpc"}, {"trials", json::array()}};
  for (double f : {0.2, 0.4, 0.6, 0.8, 1.0}) {
    sweep["trials"].push_back(trial({{"model", "rsa_xl"}, {"data.fraction", f}}, "succeeded",
                                    {{"bpc", 2 * std::pow(f, -0.4) + 0.5}, {"parameters", 1000}}));
  }
  json r = fit_sweep(sweep, "auto", 0);
  EXPECT_EQ(r["x"], "data.fraction");
  EXPECT_NEAR(r["fits"][0]["alpha"].get<double>(), 0.4, 1e-5);
  EXPECT_TRUE(r["fits"][0]["alpha_ci"].is_null());
  EXPECT_THAT([&] { fit_sweep(sweep, "parameters", 0); }, ::testing::ThrowsMessage<Error>(HasSubstr("at least 3")));
  json few = sweep;
  few["trials"].push_back(trial({{"model", "xl"}, {"data.fraction", 0.2}}, "succeeded", {{"bpc", 3}}));
  few["trials"].push_back(trial({{"model", "xl"}, {"data.fraction", 0.4}}, "succeeded", {{"bpc", 2}}));
  few["trials"].push_back(trial({{"model", "xl"}, {"data.fraction", 0.6}}, "running", nullptr));
  json later = sweep;  // a series with no results yet is skipped, not an error
  later["trials"].push_back(trial({{"model", "xl"}, {"data.fraction", 0.6}}, "failed", nullptr));
  EXPECT_EQ(fit_sweep(later, "auto", 0)["skipped"], json({"model=xl"}));
  EXPECT_EQ(fit_sweep(later, "auto", 0)["fits"].size(), 1u);
  json none = later;
  none["trials"] = json::array({later["trials"].back()});
  EXPECT_THAT([&] { fit_sweep(none, "auto", 0); }, ::testing::ThrowsMessage<Error>(HasSubstr("no succeeded trial reports the metric 'bpc'")));
  EXPECT_THAT([&] { fit_sweep(few, "auto", 0); },
              ::testing::ThrowsMessage<Error>(HasSubstr("series 'model=xl' has 2 distinct x along 'data.fraction'")));
  json words = {{"axes", {"size"}}, {"metric", "bpc"}, {"trials", json::array()}};
  for (const char* s : {"small", "medium", "large"}) words["trials"].push_back(trial({{"size", s}}, "succeeded", {{"bpc", 1}}));
  EXPECT_THAT([&] { fit_sweep(words, "auto", 0); }, ::testing::ThrowsMessage<Error>(HasSubstr("'size' is not numeric (value 'small')")));
}

}  // namespace
}  // namespace recur::coord
