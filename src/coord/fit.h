// Power-law fits of scaling results, L = a·x^(−α) + c, with bootstrap intervals over seeds: the
// analysis the RSA paper's §4.4 ablations end in (`recur sweep results ID --fit power`).
// Invariant: the fit is the least-squares optimum over α > 0 (a and c solved exactly for each α), so
// it needs no starting point and gives the closed form's answer on noiseless data.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace recur::coord {

struct PowerLaw {
  double a = 0, alpha = 0, c = 0;
  double rss = 0;  // residual sum of squares at the optimum
  double operator()(double x) const;
};

// Least squares over the (x, y) pairs, several y per x allowed (seeds). x must be positive, with at
// least 3 distinct values; throws recur::Error otherwise. α is searched in [1e-4, 10].
PowerLaw fit_power_law(const std::vector<double>& x, const std::vector<double>& y);

struct Interval {
  double lo = 0, hi = 0;
};

struct PowerLawFit {
  PowerLaw fit;
  // 95% percentile intervals from resampling the y values within each x (with replacement); absent
  // when no x has two values, so there is nothing to resample.
  std::optional<Interval> a, alpha, c;
  int64_t resamples = 0;  // bootstrap fits that converged, out of those asked for
};

// `resamples` bootstrap refits with a fixed seed: the same data give the same intervals.
PowerLawFit fit_power_law_bootstrap(const std::vector<double>& x, const std::vector<double>& y, int64_t resamples = 1000,
                                    uint64_t seed = 1);

// The power-law fits of a sweep (GET /api/sweeps/ID: its axes, metric and trials): one per series, a
// series being a value of every axis but the last (e.g. a model), along the last axis. x is the
// trials' parameter count (eval.json's "parameters") when it varies along the series (model scaling),
// else the last axis' value, which must then be a number. Every succeeded trial is one (x, y) pair.
// `x_source`: "auto" (as above), "parameters" or "axis". Returns {"x": what x is, "fits": [{"series",
// "points" (per x: "x", "mean", "n", "values", and "sd" when n > 1), "a", "alpha", "c", "rss", "a_ci",
// "alpha_ci", "c_ci", "resamples"}], "skipped": [series without any result yet]}; throws recur::Error naming the series when x is not numeric or a series
// with results has fewer than 3 distinct x, and when no series has results.
nlohmann::json fit_sweep(const nlohmann::json& sweep, const std::string& x_source = "auto", int64_t resamples = 1000);

}  // namespace recur::coord
