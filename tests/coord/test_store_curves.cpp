// Loss curves from heartbeats (Store::heartbeat, Store::curves) on a real SQLite file: valid points are
// kept per attempt in step order, hostile progress never becomes a point, and a curve stays bounded.
// Also the scaling specs the page test and the docs' figure run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "coord/store.h"
#include "coord/sweep.h"
#include "core/fs.h"

namespace recur::coord {
namespace {

using nlohmann::json;

class StoreCurves : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/recur-test-curves-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    remove_tree(dir_);
    make_dirs(dir_);
    store_ = std::make_unique<Store>(dir_ + "/s.db");
    SweepSpec s;
    s.name = "curves";
    s.base_yaml = "model:\n  type: xl\n";
    s.axes = {"model.n_layer"};
    s.metric = "bpc";
    s.retries = 2;
    for (int i = 1; i <= 2; ++i) {
      TrialSpec t;
      t.point = {{"model.n_layer", i}};
      t.overrides = {"model.n_layer=" + std::to_string(i)};
      s.trials.push_back(t);
    }
    sweep_ = store_->create_sweep(s);
    agent_ = store_->register_agent("a", 2, "", "/w");
    trial_ = store_->lease(agent_, 1, 60)["id"];
  }
  void TearDown() override {
    store_.reset();
    remove_tree(dir_);
  }
  bool beat(const json& progress, int64_t attempt = 1) { return store_->heartbeat(trial_, agent_, attempt, progress, 60); }
  std::string dir_;
  std::unique_ptr<Store> store_;
  int64_t sweep_ = 0, agent_ = 0, trial_ = 0;
};

TEST_F(StoreCurves, HeartbeatsMakeOneCurvePerAttemptInStepOrder) {
  EXPECT_TRUE(beat({{"step", 10}, {"loss", 3.5}, {"steps", 100}}));
  EXPECT_TRUE(beat({{"step", 10}, {"loss", 3.5}}));  // no progress since: no second point
  EXPECT_TRUE(beat({{"step", 30}, {"loss", 2.5}}));
  EXPECT_TRUE(beat({{"step", 20}, {"loss", 3.0}}));
  EXPECT_TRUE(beat({{"steps", 100}}));  // nothing logged yet (a resumed run's first heartbeat)
  json c = store_->curves(Store::Scope::kTrial, trial_);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0]["trial"], trial_);
  EXPECT_EQ(c[0]["attempt"], 1);
  EXPECT_EQ(c[0]["step"], json({10, 20, 30}));
  EXPECT_EQ(c[0]["loss"], json({3.5, 3.0, 2.5}));
  EXPECT_EQ(c[0]["t"].size(), 3u);
  // the lease lost, the stale attempt's heartbeats add nothing; the next attempt has its own curve
  store_->report(trial_, agent_, 1, "failed", nullptr, "boom");
  EXPECT_FALSE(beat({{"step", 40}, {"loss", 2.0}}));
  ASSERT_EQ(store_->lease(agent_, 1, 60)["id"], trial_);
  EXPECT_TRUE(beat({{"step", 20}, {"loss", 2.9}}, 2));
  c = store_->curves(Store::Scope::kSweep, sweep_);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0]["step"], json({10, 20, 30}));
  EXPECT_EQ(c[1]["attempt"], 2);
  EXPECT_EQ(c[1]["step"], json({20}));
  // the other trial of the sweep has no curve yet; unknown ids are NotFound
  const int64_t other = store_->lease(agent_, 1, 60)["id"];
  EXPECT_TRUE(store_->curves(Store::Scope::kTrial, other).empty());
  EXPECT_THROW(store_->curves(Store::Scope::kTrial, 99), NotFound);
  EXPECT_THROW(store_->curves(Store::Scope::kSweep, 99), NotFound);
}

// Any token holder writes progress: only an integer step (0 to 2^53) and a finite number as loss make
// a point; the heartbeat itself is still taken (it renews the lease).
TEST_F(StoreCurves, HostileProgressNeverBecomesAPoint) {
  const json big_array = json(std::vector<int>(10000, 1));
  const json hostile[] = {
      {{"step", "<img src=x onerror=alert(1)>"}, {"loss", 1.0}},
      {{"step", 5}, {"loss", "<script>alert(1)</script>"}},
      {{"step", 5.5}, {"loss", 1.0}},
      {{"step", -5}, {"loss", 1.0}},
      {{"step", 18446744073709551615ull}, {"loss", 1.0}},
      {{"step", (int64_t{1} << 53) + 1}, {"loss", 1.0}},
      {{"step", 5}, {"loss", std::numeric_limits<double>::quiet_NaN()}},
      {{"step", 5}, {"loss", std::numeric_limits<double>::infinity()}},
      {{"step", big_array}, {"loss", big_array}},
      {{"step", 5}, {"loss", nullptr}},
      {{"step", true}, {"loss", 1.0}},
      {{"step", {{"x", 1}}}, {"loss", 1.0}},
      json::array({1, 2}),
  };
  for (const json& p : hostile) EXPECT_TRUE(beat(p)) << p.dump().substr(0, 80);
  EXPECT_TRUE(store_->curves(Store::Scope::kTrial, trial_).empty());
  EXPECT_TRUE(beat({{"step", int64_t{1} << 53}, {"loss", -1e300}}));  // extreme but valid: kept exactly
  const json c = store_->curves(Store::Scope::kTrial, trial_);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0]["step"][0].get<int64_t>(), int64_t{1} << 53);
  EXPECT_EQ(c[0]["loss"][0].get<double>(), -1e300);
}

// Past kCurvePoints points the curve is thinned to about half as many, evenly spaced in steps: it stays
// bounded, keeps its first and newest points and its shape over the whole run, and stays in step order.
TEST_F(StoreCurves, ALongRunsCurveIsThinnedNotTruncated) {
  const int64_t n = 5 * Store::kCurvePoints + 7;
  for (int64_t step = 1; step <= n; ++step) ASSERT_TRUE(beat({{"step", step}, {"loss", 10.0 / static_cast<double>(step)}}));
  const json c = store_->curves(Store::Scope::kTrial, trial_);
  ASSERT_EQ(c.size(), 1u);
  const auto steps = c[0]["step"].get<std::vector<int64_t>>();
  EXPECT_LE(static_cast<int64_t>(steps.size()), Store::kCurvePoints);
  EXPECT_GE(static_cast<int64_t>(steps.size()), Store::kCurvePoints / 2);
  EXPECT_EQ(steps.front(), 1);
  EXPECT_EQ(steps.back(), n);
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()));
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_DOUBLE_EQ(c[0]["loss"][i].get<double>(), 10.0 / static_cast<double>(steps[i]));
  }
  // evenly over the whole span: no gap much wider than the span over half the points
  for (size_t i = 1; i < steps.size(); ++i) EXPECT_LE(steps[i] - steps[i - 1], 2 * n / (Store::kCurvePoints / 2) + 1);
}

TEST_F(StoreCurves, CurvesSurviveReopening) {
  EXPECT_TRUE(beat({{"step", 7}, {"loss", 1.25}}));
  store_ = std::make_unique<Store>(dir_ + "/s.db");
  EXPECT_EQ(store_->curves(Store::Scope::kSweep, sweep_)[0]["loss"], json({1.25}));
}

// The sweeps behind the page's curves and the figure in docs/cluster.md: model scaling along the layer
// count, so that the fit's x is the parameter count, with seeds to resample.
TEST(SweepSpec, TheScalingSpecsOfThePageTestAndTheFigureExpand) {
  const SweepSpec tiny = load_sweep_spec(std::string(RECUR_SOURCE_DIR) + "/configs/sweeps/tiny-scaling.yaml");
  EXPECT_EQ(tiny.trials.size(), 6u);
  EXPECT_EQ(tiny.axes, (std::vector<std::string>{"model", "model.n_layer"}));
  const SweepSpec cpu = load_sweep_spec(std::string(RECUR_SOURCE_DIR) + "/configs/sweeps/model-scaling-gcide-cpu.yaml");
  EXPECT_EQ(cpu.trials.size(), 24u);
  EXPECT_EQ(cpu.trials.front().point, json({{"model", "xl"}, {"model.n_layer", 1}}));
  EXPECT_EQ(cpu.trials.back().point, json({{"model", "rsa_xl"}, {"model.n_layer", 8}}));
}

}  // namespace
}  // namespace recur::coord
