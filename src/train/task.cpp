// See task.h.
#include "train/task.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "data/dataset.h"
#include "data/loaders.h"
#include "model/model.h"

namespace recur::train {
namespace {

constexpr double kLn2 = 0.69314718055994530942;

torch::Tensor as_tensor(const std::vector<int64_t>& v, int64_t rows, int64_t cols) {
  return torch::from_blob(const_cast<int64_t*>(v.data()), {rows, cols}, torch::kInt64).clone();
}

torch::Tensor weighted_mean(const torch::Tensor& per, const torch::Tensor& weight) {
  return (per * weight).sum() / weight.sum().clamp_min(1.0);
}

void require_next_token(Task task) {
  if (task == Task::kLabelSets) {
    fail("config error: the label-set task scores every symbol and needs logits; adaptive softmax (model.cutoffs) "
         "scores next tokens only");
  }
}

}  // namespace

Task task_of(const data::Dataset& ds) {
  const auto& m = ds.manifest();
  if (m.layout == data::Layout::kStream) return Task::kStream;
  for (const auto& f : m.example_fields) {
    if (f == "label_sets") return Task::kLabelSets;
  }
  return Task::kExamples;
}

bool word_level(const data::Dataset& ds) { return ds.manifest().corpus == "wikitext103"; }

Batch Batch::to(const torch::Device& d) const {
  if (input.device() == d) return *this;
  return {input.to(d), target.to(d), weight.defined() ? weight.to(d) : weight, positions};
}

Batch Batch::rows(int64_t r0, int64_t r1) const {
  Batch b{input.slice(0, r0, r1), target.slice(0, r0, r1), weight.defined() ? weight.slice(0, r0, r1) : weight, 0.0};
  // With a weight the count would need a read of the device; micro-batches only use the total.
  b.positions = weight.defined() ? -1.0 : static_cast<double>(b.target.numel());
  return b;
}

Batch make_batch(const data::TokenBatch& b, Task task) {
  auto tokens = as_tensor(b.tokens, b.rows, b.cols);
  if (task == Task::kStream) {
    return {tokens.slice(1, 0, b.cols - 1), tokens.slice(1, 1), torch::Tensor(), static_cast<double>(b.rows * (b.cols - 1))};
  }
  auto lengths = torch::from_blob(const_cast<int64_t*>(b.lengths.data()), {b.rows}, torch::kInt64).clone();
  auto positions = torch::arange(b.cols, torch::kInt64).unsqueeze(0);
  torch::Tensor valid;
  Batch out;
  if (task == Task::kLabelSets) {
    valid = positions.lt(lengths.unsqueeze(1)).to(torch::kFloat32);
    out = {tokens, as_tensor(b.label_sets, b.rows, b.cols), valid, 0.0};
  } else {
    // Next-token prediction inside each example: position t predicts token t+1 < length.
    valid = positions.slice(1, 0, b.cols - 1).add(1).lt(lengths.unsqueeze(1)).to(torch::kFloat32);
    if (!b.loss_mask.empty()) valid = valid * as_tensor(b.loss_mask, b.rows, b.cols).slice(1, 0, b.cols - 1).to(torch::kFloat32);
    out = {tokens.slice(1, 0, b.cols - 1), tokens.slice(1, 1), valid, 0.0};
  }
  out.positions = valid.sum().item<double>();  // on the CPU: no device synchronisation
  return out;
}

void weight_last_positions(Batch* b, int64_t last) {
  const int64_t R = b->target.size(0), T = b->target.size(1);
  b->weight = torch::arange(T, b->target.options().dtype(torch::kInt64))
                  .ge(T - last)
                  .to(torch::kFloat32)
                  .unsqueeze(0)
                  .expand({R, -1})
                  .contiguous();
  b->positions = static_cast<double>(R * std::min(last, T));
}

torch::Tensor label_bits(const torch::Tensor& sets, int64_t vocab) {
  auto bit = torch::pow(2, torch::arange(vocab, sets.options().dtype(torch::kInt64)));
  return sets.unsqueeze(-1).bitwise_and(bit).ne(0).to(torch::kFloat32);  // [R, T, V]
}

LabelLoss label_loss_of(const std::string& name) {
  if (name == "bce") return LabelLoss::kBce;
  if (name == "mse") return LabelLoss::kMse;
  fail("config error: train.label_loss = '{}' (bce or mse)", name);
}

torch::Tensor label_loss_per_position(const torch::Tensor& logits, const torch::Tensor& sets, LabelLoss loss) {
  namespace F = torch::nn::functional;
  auto bits = label_bits(sets, logits.size(-1)).to(logits.dtype());
  if (loss == LabelLoss::kMse) return (torch::sigmoid(logits) - bits).square().mean(-1);
  return F::binary_cross_entropy_with_logits(logits, bits, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone))
      .mean(-1);
}

torch::Tensor task_loss(Task task, const torch::Tensor& logits, const Batch& b, LabelLoss label) {
  const int64_t V = logits.size(-1);
  namespace F = torch::nn::functional;
  if (task == Task::kStream && !b.weight.defined()) return F::cross_entropy(logits.reshape({-1, V}), b.target.reshape({-1}));
  if (task == Task::kLabelSets) return weighted_mean(label_loss_per_position(logits, b.target, label), b.weight);
  auto per = F::cross_entropy(logits.reshape({-1, V}), b.target.reshape({-1}),
                              F::CrossEntropyFuncOptions().reduction(torch::kNone));
  return weighted_mean(per, b.weight.reshape({-1}));
}

torch::Tensor task_loss(Task task, model::LanguageModel& model, const model::ForwardResult& out, const Batch& b,
                        LabelLoss label) {
  if (out.logits.defined()) return task_loss(task, out.logits.to(torch::kFloat32), b, label);
  require_next_token(task);
  auto per = model.output_nll(out, b.target);
  return b.weight.defined() ? weighted_mean(per, b.weight) : per.mean();
}

void EvalSums::add(Task task, const torch::Tensor& logits, const Batch& b) {
  const int64_t V = logits.size(-1);
  namespace F = torch::nn::functional;
  auto l64 = logits.to(torch::kFloat64);
  if (task == Task::kLabelSets) {
    auto bits = label_bits(b.target, V);
    auto bit_ok = l64.gt(0).eq(bits.gt(0.5));  // [R, T, V]
    auto counted = b.weight.defined() ? b.weight.gt(0) : torch::ones(b.target.sizes(), bit_ok.options());
    auto per_bit = (bit_ok & counted.unsqueeze(-1)).sum(std::vector<int64_t>{0, 1}).to(torch::kFloat64);
    bit_sums_ = bit_sums_.defined() ? bit_sums_ + per_bit : per_bit;
    accumulate(task, label_loss_per_position(l64, b.target, label_), b, bit_ok.all(-1));
    return;
  }
  auto per = F::cross_entropy(l64.reshape({-1, V}), b.target.reshape({-1}),
                              F::CrossEntropyFuncOptions().reduction(torch::kNone)).view(b.target.sizes());
  accumulate(task, per, b, l64.argmax(-1).eq(b.target));
}

void EvalSums::add(Task task, model::LanguageModel& model, const model::ForwardResult& out, const Batch& b) {
  if (out.logits.defined()) return add(task, out.logits, b);
  require_next_token(task);
  accumulate(task, model.output_nll(out, b.target).to(torch::kFloat64), b, torch::Tensor());
}

void EvalSums::accumulate(Task task, const torch::Tensor& per, const Batch& b, const torch::Tensor& pos_ok) {
  auto weight = b.weight.defined() ? b.weight : torch::ones(b.target.sizes(), per.options().dtype(torch::kFloat32));
  auto loss = (per * weight.to(torch::kFloat64)).sum();
  auto counted = weight.gt(0);
  auto f64 = [](const torch::Tensor& t) { return t.to(torch::kFloat64); };
  torch::Tensor correct = torch::zeros({}, loss.options()), seqs = correct, seqs_ok = correct;
  if (!pos_ok.defined()) {
    accuracy_ = false;
  } else {
    correct = f64((pos_ok & counted).sum());
    if (task != Task::kStream) {
      auto seq_ok = (pos_ok | counted.logical_not()).all(-1);
      seqs = torch::full({}, static_cast<double>(seq_ok.size(0)), loss.options());
      seqs_ok = f64(seq_ok.sum());
    }
  }
  auto s = torch::stack({loss, f64(counted.sum()), correct, seqs, seqs_ok});
  sums_ = sums_.defined() ? sums_ + s : s;
}

nlohmann::json EvalSums::result(Task task, bool word) const {
  std::vector<double> v(5, 0.0), bit;
  if (sums_.defined()) {  // one host synchronisation: the label sets' per-bit sums travel with the rest
    auto h = (bit_sums_.defined() ? torch::cat({sums_, bit_sums_}) : sums_).to(torch::kCPU).contiguous();
    v.assign(h.data_ptr<double>(), h.data_ptr<double>() + 5);
    bit.assign(h.data_ptr<double>() + 5, h.data_ptr<double>() + h.numel());
  }
  const double loss = v[0] / std::max(1.0, v[1]);
  nlohmann::json j = {{"positions", v[1]}, {"loss", loss}};
  if (accuracy_) j["token_accuracy"] = v[2] / std::max(1.0, v[1]);
  if (task == Task::kStream) {
    if (word) j["ppl"] = std::exp(loss);
    else j["bpc"] = loss / kLn2;
  } else if (accuracy_) {
    j["sequence_accuracy"] = v[4] / std::max(1.0, v[3]);
    j["sequences"] = v[3];
  }
  if (!bit.empty()) {
    for (double& x : bit) x /= std::max(1.0, v[1]);
    j["bit_accuracy"] = bit;
  }
  return j;
}

}  // namespace recur::train
