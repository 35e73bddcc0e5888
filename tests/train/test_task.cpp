// The label-set losses (train.label_loss) against hand loops over positions and symbols: bce on the
// logits and mse on their sigmoid, each averaged over the symbols and then over the counted positions;
// and the evaluation sums report the same loss the training step minimises, and per-bit, per-position
// and per-sequence accuracies that match hand counts.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "train/task.h"

namespace recur::train {
namespace {

// Two rows of four positions over V = 3 symbols; row 1's last position is padding.
struct LabelCase {
  torch::Tensor logits = torch::tensor({{{0.3, -1.2, 2.0}, {-0.5, 0.0, 0.7}, {1.5, 1.1, -2.2}, {0.2, -0.1, 0.4}},
                                        {{-0.9, 0.8, 0.1}, {2.5, -0.3, -1.0}, {0.0, 0.6, 1.3}, {9.0, 9.0, 9.0}}});
  torch::Tensor sets = torch::tensor({{5, 2, 7, 0}, {1, 6, 3, 4}}, torch::kInt64);
  torch::Tensor weight = torch::tensor({{1.f, 1.f, 1.f, 1.f}, {1.f, 1.f, 1.f, 0.f}});
  Batch batch() const { return {torch::Tensor(), sets, weight, 7.0}; }
};

double naive(const LabelCase& c, LabelLoss kind) {
  double sum = 0.0, counted = 0.0;
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t t = 0; t < 4; ++t) {
      if (c.weight[r][t].item<float>() == 0.f) continue;
      double per = 0.0;
      for (int64_t v = 0; v < 3; ++v) {
        const double x = c.logits[r][t][v].item<double>();
        const double y = (c.sets[r][t].item<int64_t>() >> v) & 1;
        const double p = 1.0 / (1.0 + std::exp(-x));
        per += kind == LabelLoss::kMse ? (p - y) * (p - y) : -(y * std::log(p) + (1 - y) * std::log(1 - p));
      }
      sum += per / 3.0;
      counted += 1.0;
    }
  }
  return sum / counted;
}

TEST(LabelLoss, MseAndBceAndAccuraciesMatchHandLoops) {
  LabelCase c;
  for (LabelLoss kind : {LabelLoss::kBce, LabelLoss::kMse}) {
    const double want = naive(c, kind);
    EXPECT_NEAR(task_loss(Task::kLabelSets, c.logits, c.batch(), kind).item<double>(), want, 1e-6);
    EvalSums sums(kind);
    sums.add(Task::kLabelSets, c.logits, c.batch());
    auto r = sums.result(Task::kLabelSets, false);
    EXPECT_NEAR(r["loss"].get<double>(), want, 1e-9);
    EXPECT_EQ(r["positions"].get<double>(), 7.0);
  }
  // Per symbol, the share of counted positions whose bit is right (predicted set: positive logits).
  EvalSums sums;
  sums.add(Task::kLabelSets, c.logits, c.batch());
  sums.add(Task::kLabelSets, c.logits, c.batch());  // sums over batches: the shares stay the same
  auto r = sums.result(Task::kLabelSets, false);
  ASSERT_EQ(r["bit_accuracy"].size(), 3u);
  int64_t all_right = 0, seqs_right = 0;
  for (int64_t v = 0; v < 3; ++v) {
    int64_t right = 0;
    for (int64_t row = 0; row < 2; ++row) {
      for (int64_t t = 0; t < 4; ++t) {
        if (c.weight[row][t].item<float>() == 0.f) continue;
        right += (c.logits[row][t][v].item<double>() > 0) == (((c.sets[row][t].item<int64_t>() >> v) & 1) == 1);
      }
    }
    EXPECT_DOUBLE_EQ(r["bit_accuracy"][v].get<double>(), right / 7.0) << v;
  }
  for (int64_t row = 0; row < 2; ++row) {
    bool ok = true;
    for (int64_t t = 0; t < 4; ++t) {
      if (c.weight[row][t].item<float>() == 0.f) continue;
      bool pos_ok = true;
      for (int64_t v = 0; v < 3; ++v)
        pos_ok &= (c.logits[row][t][v].item<double>() > 0) == (((c.sets[row][t].item<int64_t>() >> v) & 1) == 1);
      all_right += pos_ok;
      ok &= pos_ok;
    }
    seqs_right += ok;
  }
  EXPECT_DOUBLE_EQ(r["token_accuracy"].get<double>(), all_right / 7.0);
  EXPECT_DOUBLE_EQ(r["sequence_accuracy"].get<double>(), seqs_right / 2.0);
  // next-token tasks have no bits
  EvalSums tokens;
  Batch next{torch::Tensor(), torch::tensor({{2, 0}}, torch::kInt64), torch::Tensor(), 2.0};
  tokens.add(Task::kExamples, c.logits.slice(0, 0, 1).slice(1, 0, 2), next);
  EXPECT_FALSE(tokens.result(Task::kExamples, false).contains("bit_accuracy"));
  // The default stays bce, so runs from before train.label_loss reproduce.
  EXPECT_NEAR(task_loss(Task::kLabelSets, c.logits, c.batch()).item<double>(), naive(c, LabelLoss::kBce), 1e-6);
  EXPECT_NE(naive(c, LabelLoss::kBce), naive(c, LabelLoss::kMse));
}

TEST(LabelLoss, MseGradientIsTheSigmoidChainRule) {
  // d/dx mean_v (sigmoid(x) - y)^2 = 2 (p - y) p (1 - p) / V for one counted position.
  auto x = torch::tensor({{{0.4, -1.0, 2.0}}}, torch::requires_grad());
  Batch b{torch::Tensor(), torch::tensor({{5}}, torch::kInt64), torch::ones({1, 1}), 1.0};
  task_loss(Task::kLabelSets, x, b, LabelLoss::kMse).backward();
  const double xs[] = {0.4, -1.0, 2.0}, ys[] = {1, 0, 1};
  for (int v = 0; v < 3; ++v) {
    const double p = 1.0 / (1.0 + std::exp(-xs[v]));
    EXPECT_NEAR(x.grad()[0][0][v].item<double>(), 2.0 * (p - ys[v]) * p * (1 - p) / 3.0, 1e-6) << v;
  }
}

TEST(LabelLoss, NamesAreBceAndMse) {
  EXPECT_EQ(label_loss_of("bce"), LabelLoss::kBce);
  EXPECT_EQ(label_loss_of("mse"), LabelLoss::kMse);
  EXPECT_THROW(label_loss_of("l1"), Error);
}

}  // namespace
}  // namespace recur::train
