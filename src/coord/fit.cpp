// See fit.h. For a fixed α the model is linear in (a, c), so the fit is a one-dimensional search over α
// of the residual left by the exact linear solve (variable projection): a log-spaced grid finds the
// basin, golden-section search refines it. x is scaled by its geometric mean, so that x^(−α) stays
// within double range for parameter counts in the billions.
#include "coord/fit.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "coord/sweep.h"
#include "core/error.h"

namespace recur::coord {

using nlohmann::json;

double PowerLaw::operator()(double x) const { return a * std::pow(x, -alpha) + c; }

namespace {

constexpr double kAlphaMin = 1e-4, kAlphaMax = 10.0;
constexpr int kGrid = 200;

// The (a, c, rss) that fit y = a·z + c best for z = (x/x0)^(−α), and the rss.
struct Linear {
  double a = 0, c = 0, rss = 0;
};

Linear solve_linear(const std::vector<double>& u, const std::vector<double>& y, double alpha) {
  const double n = static_cast<double>(u.size());
  std::vector<double> z(u.size());
  double zm = 0, ym = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    z[i] = std::exp(-alpha * u[i]);
    zm += z[i] / n;
    ym += y[i] / n;
  }
  double szz = 0, szy = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    szz += (z[i] - zm) * (z[i] - zm);
    szy += (z[i] - zm) * (y[i] - ym);
  }
  Linear l;
  l.a = szz > 0 ? szy / szz : 0.0;
  l.c = ym - l.a * zm;
  for (size_t i = 0; i < u.size(); ++i) {
    const double r = y[i] - (l.a * z[i] + l.c);
    l.rss += r * r;
  }
  return l;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

}  // namespace

PowerLaw fit_power_law(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) fail("power-law fit: {} x values but {} y values", x.size(), y.size());
  std::set<double> distinct;
  double log_mean = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(x[i] > 0) || !std::isfinite(x[i])) fail("power-law fit: x must be positive and finite (got {})", x[i]);
    if (!std::isfinite(y[i])) fail("power-law fit: y must be finite (got {} at x = {})", y[i], x[i]);
    distinct.insert(x[i]);
    log_mean += std::log(x[i]) / static_cast<double>(x.size());
  }
  if (distinct.size() < 3) {
    fail("power-law fit: L = a·x^(−α) + c has 3 parameters and needs at least 3 distinct x (got {})", distinct.size());
  }
  std::vector<double> u(x.size());
  for (size_t i = 0; i < x.size(); ++i) u[i] = std::log(x[i]) - log_mean;
  auto rss = [&](double alpha) { return solve_linear(u, y, alpha).rss; };
  const double step = std::log(kAlphaMax / kAlphaMin) / (kGrid - 1);
  auto grid = [&](int k) { return kAlphaMin * std::exp(step * k); };
  int best = 0;
  double best_rss = rss(grid(0));
  for (int k = 1; k < kGrid; ++k) {
    const double r = rss(grid(k));
    if (r < best_rss) best_rss = r, best = k;
  }
  // Golden section between the grid neighbours of the best grid point.
  double lo = grid(std::max(best - 1, 0)), hi = grid(std::min(best + 1, kGrid - 1));
  const double g = (std::sqrt(5.0) - 1) / 2;
  double p = hi - g * (hi - lo), q = lo + g * (hi - lo);
  double rp = rss(p), rq = rss(q);
  for (int it = 0; it < 200 && hi - lo > 1e-12 * hi; ++it) {
    if (rp < rq) {
      hi = q, q = p, rq = rp;
      p = hi - g * (hi - lo), rp = rss(p);
    } else {
      lo = p, p = q, rp = rq;
      q = lo + g * (hi - lo), rq = rss(q);
    }
  }
  double alpha = (lo + hi) / 2;
  Linear l = solve_linear(u, y, alpha);
  if (best_rss < l.rss) alpha = grid(best), l = solve_linear(u, y, alpha);  // a flat valley: keep the grid's
  PowerLaw out;
  out.alpha = alpha;
  out.a = l.a * std::exp(alpha * log_mean);  // (x/x0)^(−α) = x0^α · x^(−α)
  out.c = l.c;
  out.rss = l.rss;
  return out;
}

PowerLawFit fit_power_law_bootstrap(const std::vector<double>& x, const std::vector<double>& y, int64_t resamples, uint64_t seed) {
  PowerLawFit out;
  out.fit = fit_power_law(x, y);
  std::map<double, std::vector<double>> by_x;
  for (size_t i = 0; i < x.size(); ++i) by_x[x[i]].push_back(y[i]);
  const bool replicated = std::any_of(by_x.begin(), by_x.end(), [](const auto& kv) { return kv.second.size() > 1; });
  if (!replicated || resamples < 1) return out;
  std::mt19937_64 rng(seed);
  std::vector<double> as, alphas, cs, bx, by;
  for (int64_t r = 0; r < resamples; ++r) {
    bx.clear();
    by.clear();
    for (const auto& [xv, ys] : by_x) {
      std::uniform_int_distribution<size_t> pick(0, ys.size() - 1);
      for (size_t k = 0; k < ys.size(); ++k) {
        bx.push_back(xv);
        by.push_back(ys[pick(rng)]);
      }
    }
    const PowerLaw f = fit_power_law(bx, by);
    as.push_back(f.a);
    alphas.push_back(f.alpha);
    cs.push_back(f.c);
  }
  out.resamples = static_cast<int64_t>(alphas.size());
  auto interval = [](const std::vector<double>& v) { return Interval{percentile(v, 0.025), percentile(v, 0.975)}; };
  out.a = interval(as);
  out.alpha = interval(alphas);
  out.c = interval(cs);
  return out;
}

json fit_sweep(const json& sweep, const std::string& x_source, int64_t resamples) {
  if (x_source != "auto" && x_source != "parameters" && x_source != "axis") {
    fail("power-law fit: x must be auto, parameters or axis (got '{}')", x_source);
  }
  const auto axes = sweep.at("axes").get<std::vector<std::string>>();
  if (axes.empty()) fail("power-law fit: the sweep has no axes; it fits along the last axis");
  const std::string metric = sweep.at("metric"), last = axes.back();
  const std::vector<std::string> series_axes(axes.begin(), axes.end() - 1);
  struct Series {
    std::string label;
    std::vector<double> axis_x, params, y;
    bool all_params = true, axis_numeric = true;
    std::string not_numeric;
  };
  std::vector<std::string> order;
  std::map<std::string, Series> series;
  for (const auto& t : sweep.at("trials")) {
    json key = json::object();
    for (const auto& a : series_axes) key[a] = t.at("point").value(a, json(nullptr));
    const std::string k = key.dump();
    if (!series.count(k)) {
      order.push_back(k);
      series[k].label = series_axes.empty() ? metric : point_label(t.at("point"), series_axes);
    }
    const json result = t.value("result", json(nullptr));
    if (t.value("state", "") != "succeeded" || !result.is_object()) continue;
    const auto y = metric_value(result, metric);
    if (!y) continue;
    Series& s = series[k];
    const json& xv = t.at("point").value(last, json(nullptr));
    if (xv.is_number()) s.axis_x.push_back(xv.get<double>());
    else if (s.axis_numeric) s.axis_numeric = false, s.not_numeric = xv.is_string() ? xv.get<std::string>() : xv.dump();
    const json& p = result.value("parameters", json(nullptr));
    if (p.is_number()) s.params.push_back(p.get<double>());
    else s.all_params = false;
    s.y.push_back(*y);
  }
  json fits = json::array(), skipped = json::array();
  std::string x_name;
  for (const auto& k : order) {
    const Series& s = series[k];
    if (s.y.empty()) {  // nothing finished yet, or every trial failed: nothing to fit, nothing wrong
      skipped.push_back(s.label);
      continue;
    }
    const bool params_vary = s.all_params && !s.params.empty() && std::set<double>(s.params.begin(), s.params.end()).size() > 1;
    const bool model_axis = last == "model" || last.rfind("model.", 0) == 0;
    bool use_params = x_source == "parameters" || (x_source == "auto" && params_vary && (model_axis || !s.axis_numeric));
    if (use_params && !(s.all_params && !s.params.empty())) {
      fail("power-law fit: series '{}': its trials' results do not record the parameter count", s.label);
    }
    if (!use_params && !s.axis_numeric) {
      fail("power-law fit: series '{}': the last axis '{}' is not numeric (value '{}'); x must be a number, or the "
           "parameter count varying along the axis",
           s.label, last, s.not_numeric);
    }
    const std::vector<double>& x = use_params ? s.params : s.axis_x;
    const size_t distinct = std::set<double>(x.begin(), x.end()).size();
    if (distinct < 3) {
      fail("power-law fit: series '{}' has {} distinct x along '{}' with results ({} succeeded trials); the fit needs "
           "at least 3",
           s.label, distinct, last, s.y.size());
    }
    const std::string this_x = use_params ? "parameters" : last;
    if (x_name.empty()) x_name = this_x;
    else if (x_name != this_x) x_name = "mixed";
    const PowerLawFit f = fit_power_law_bootstrap(x, s.y, resamples);
    std::map<double, std::vector<double>> by_x;
    for (size_t i = 0; i < x.size(); ++i) by_x[x[i]].push_back(s.y[i]);
    json points = json::array();
    for (const auto& [xv, ys] : by_x) {
      double mean = 0, var = 0;
      for (double v : ys) mean += v / static_cast<double>(ys.size());
      for (double v : ys) var += (v - mean) * (v - mean);
      json point = {{"x", xv}, {"mean", mean}, {"n", ys.size()}, {"values", ys}};
      if (ys.size() > 1) point["sd"] = std::sqrt(var / static_cast<double>(ys.size() - 1));  // as in results: none for one value
      points.push_back(point);
    }
    json row = {{"series", s.label}, {"x", this_x}, {"points", points}, {"n", s.y.size()},  {"a", f.fit.a},
                {"alpha", f.fit.alpha}, {"c", f.fit.c}, {"rss", f.fit.rss}, {"resamples", f.resamples}};
    auto ci = [](const std::optional<Interval>& i) { return i ? json::array({i->lo, i->hi}) : json(nullptr); };
    row["a_ci"] = ci(f.a);
    row["alpha_ci"] = ci(f.alpha);
    row["c_ci"] = ci(f.c);
    fits.push_back(row);
  }
  if (fits.empty()) fail("power-law fit: no succeeded trial reports the metric '{}' yet", metric);
  return {{"model", "L = a * x^(-alpha) + c"}, {"x", x_name}, {"along", last}, {"fits", fits}, {"skipped", skipped}};
}

}  // namespace recur::coord
