// What the data asks the model to do, as tensors: batches, the training loss and the evaluation sums.
// Invariant: every tensor these helpers create takes the device (and, where it is data, the dtype) of
// the tensors they are given, so the same code runs on the CPU, a GPU, or PyTorch's `meta` device
// (tests/train/test_device.cpp runs them there to catch a tensor created on the wrong device).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/types.h>

namespace recur::data {
class Dataset;
struct TokenBatch;
}  // namespace recur::data
namespace recur::model {
class LanguageModel;
struct ForwardResult;
}  // namespace recur::model

namespace recur::train {

// Next-token prediction over a stream, over whole examples (optionally only where loss_mask says the
// next token is determined), or the formal languages' multi-label task (the set of symbols that may
// follow each prefix).
enum class Task { kStream, kExamples, kLabelSets };
// train.label_loss, per symbol of a label set: binary cross-entropy on the logit, or the squared error of
// sigmoid(logit) against the 0/1 label (Bhattamishra et al.'s code); both averaged over the symbols.
enum class LabelLoss { kBce, kMse };
LabelLoss label_loss_of(const std::string& name);  // "bce" | "mse"

Task task_of(const data::Dataset& dataset);
// WikiText-103 reports perplexity; every other corpus bits per character.
bool word_level(const data::Dataset& dataset);

// A batch as model input plus what the loss needs.
struct Batch {
  torch::Tensor input;   // [R, T] int64
  torch::Tensor target;  // kStream/kExamples: next tokens [R, T]; kLabelSets: label bit masks [R, T]
  torch::Tensor weight;  // [R, T] float, 1 where the position counts; undefined = every position
  double positions = 0;  // counted positions (the sum of weight, or R*T), known on the host

  Batch to(const torch::Device& device) const;
  // Rows [r0, r1) (a micro-batch); `positions` is recounted on the host only when no weight is set.
  Batch rows(int64_t r0, int64_t r1) const;
};

// Builds the tensors of a loader batch on the CPU (move them with Batch::to).
Batch make_batch(const data::TokenBatch& tokens, Task task);

// train.loss_last: weight 1 on the last `last` positions of each row, on target's device.
void weight_last_positions(Batch* batch, int64_t last);

// Label sets (bit masks over the vocabulary, [R, T] int64) as {0,1} floats [R, T, V] on their device.
torch::Tensor label_bits(const torch::Tensor& sets, int64_t vocab);

// Label sets: the loss per position [R, T] (the mean over the V symbols), in the logits' dtype.
torch::Tensor label_loss_per_position(const torch::Tensor& logits, const torch::Tensor& sets, LabelLoss loss);

// Mean loss over the counted positions (a 0-dim tensor on the logits' device). `label` is the label-set
// task's loss (ignored by the others).
torch::Tensor task_loss(Task task, const torch::Tensor& logits, const Batch& batch, LabelLoss label = LabelLoss::kBce);
// The same for a forward's result: from its logits, or, where the model leaves them undefined (adaptive
// softmax), from model.output_nll (next-token tasks only).
torch::Tensor task_loss(Task task, model::LanguageModel& model, const model::ForwardResult& out, const Batch& batch,
                        LabelLoss label = LabelLoss::kBce);

// Running evaluation sums, kept as fp64 tensors on the device of the logits: nothing is read back to
// the host until result().
class EvalSums {
 public:
  // `label`: the loss summed for label sets (the training loss's kind, so the two compare).
  explicit EvalSums(LabelLoss label = LabelLoss::kBce) : label_(label) {}
  void add(Task task, const torch::Tensor& logits, const Batch& batch);
  // The same for a forward's result. Without logits (adaptive softmax) only the loss is summed: the
  // split then reports no token or sequence accuracy (an argmax would need every word's probability).
  void add(Task task, model::LanguageModel& model, const model::ForwardResult& out, const Batch& batch);
  // The sums as a device tensor [loss, positions, correct, sequences, sequences_correct] (undefined
  // before the first add).
  const torch::Tensor& sums() const { return sums_; }
  // Label sets only: per symbol v, the counted positions whose bit v is predicted right, as a device
  // tensor [V] (undefined otherwise). result() reports it as `bit_accuracy`, so a model that is
  // right on some outputs and stuck on others shows which.
  const torch::Tensor& bit_sums() const { return bit_sums_; }
  // Reads the sums (one host synchronisation) and forms the split's metrics.
  nlohmann::json result(Task task, bool word_level) const;

 private:
  // per: fp64 loss per position [R, T]; correct: per-position correctness (undefined = not known).
  void accumulate(Task task, const torch::Tensor& per, const Batch& batch, const torch::Tensor& correct);
  LabelLoss label_;
  torch::Tensor sums_, bit_sums_;
  bool accuracy_ = true;
};

}  // namespace recur::train
