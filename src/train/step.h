// One optimizer step of data-parallel training, the same for `recur train` and `recur bench step`:
//   1. split the rank's rows into train.grad_accum micro-batches of whole streams;
//   2. forward each under bf16 autocast when train.precision = bf16 (fp32 master weights, loss in fp32);
//   3. backward; the reducer all-reduces gradients during the last micro-batch's backward only;
//   4. carry the recurrent state (fp32, detached) to the next segment;
//   5. clip the global gradient norm, set the learning rate, update, zero the gradients.
// Invariant: nothing here reads a device value back to the host, so on a GPU the CPU runs ahead of the
// device; the step's loss comes back as a device tensor that the caller reads when it needs it. (The one
// exception is a model's own: adaptive softmax reads its cluster sizes, model/adaptive.h.)
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "model/model.h"
#include "train/task.h"

namespace torch::optim {
class Optimizer;
}
namespace recur::parallel {
class Reducer;
}

namespace recur::train {

struct StepOptions {
  Task task = Task::kStream;
  int64_t grad_accum = 1;  // micro-batches per step (the rows must divide)
  bool bf16 = false;       // autocast the forward to bf16
  double clip = 0.0;       // global gradient-norm clip (0 = off)
  LabelLoss label_loss = LabelLoss::kBce;  // train.label_loss (label-set task only)
};

class Step {
 public:
  // `reducer` may be null (one rank). The references must outlive the Step.
  Step(model::LanguageModel& model, torch::optim::Optimizer& optimizer, parallel::Reducer* reducer, StepOptions options);

  // Phases 1-4 on this rank's rows of `batch` (on the model's device), carrying `*state` (replaced by
  // the state after the segment). Returns the mean loss over the micro-batches as a 0-dim fp64 tensor
  // on the device; gradients are left in the parameters (reduced over ranks when a reducer is set).
  torch::Tensor forward_backward(const Batch& batch, model::State* state);
  // Phase 5: clip, learning rate, update, zero the gradients. Returns the global gradient norm before
  // clipping as a device tensor when clipping (train.clip > 0) or when `want_norm`, else undefined.
  torch::Tensor update(double lr, bool want_norm = false);
  // Drops the gradients of a step that is not applied (train.nan_policy = skip).
  void skip();

  const StepOptions& options() const { return options_; }

 private:
  model::LanguageModel& model_;
  torch::optim::Optimizer& optimizer_;
  parallel::Reducer* reducer_;
  StepOptions options_;
  std::vector<torch::Tensor> params_;
};

// The global 2-norm of the parameters' gradients (a 0-dim tensor on their device; undefined when no
// parameter has a gradient), not read back to the host.
torch::Tensor grad_norm_async(const std::vector<torch::Tensor>& params);

// Scales the gradients so that their global 2-norm is at most max_norm, as torch::nn::utils::
// clip_grad_norm_ does, without reading the norm back to the host. Returns the norm before clipping
// (a 0-dim tensor on the gradients' device; undefined when no parameter has a gradient).
torch::Tensor clip_grad_norm_async(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace recur::train
