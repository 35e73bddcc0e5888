// See step.h. The phases below are numbered as in the header.
#include "train/step.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "core/error.h"
#include "parallel/reducer.h"
#include "train/optimizer.h"

namespace recur::train {
namespace {

// Enables autocast to bf16 for the device's type for its lifetime (train.precision = bf16).
class Autocast {
 public:
  Autocast(bool on, const torch::Device& device) : on_(on), type_(device.type()) {
    if (!on_) return;
    prev_enabled_ = at::autocast::is_autocast_enabled(type_);
    prev_dtype_ = at::autocast::get_autocast_dtype(type_);
    at::autocast::set_autocast_enabled(type_, true);
    at::autocast::set_autocast_dtype(type_, torch::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~Autocast() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(type_, prev_enabled_);
    at::autocast::set_autocast_dtype(type_, prev_dtype_);
  }
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool on_;
  c10::DeviceType type_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

}  // namespace

torch::Tensor grad_norm_async(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> norms;
  for (const auto& p : params) {
    if (p.grad().defined()) norms.push_back(p.grad().data().norm(2.0));
  }
  if (norms.empty()) return torch::Tensor();
  return norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2.0);
}

torch::Tensor clip_grad_norm_async(const std::vector<torch::Tensor>& params, double max_norm) {
  auto total = grad_norm_async(params);
  if (!total.defined()) return total;
  auto coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  for (const auto& p : params) {
    if (p.grad().defined()) p.grad().data().mul_(coef);
  }
  return total;
}

Step::Step(model::LanguageModel& model, torch::optim::Optimizer& optimizer, parallel::Reducer* reducer, StepOptions options)
    : model_(model), optimizer_(optimizer), reducer_(reducer), options_(options), params_(model.parameters()) {
  if (options_.grad_accum < 1) fail("internal error: grad_accum = {}", options_.grad_accum);
}

torch::Tensor Step::forward_backward(const Batch& all, model::State* state) {
  // 1. micro-batches of whole streams
  const int64_t accum = options_.grad_accum, rows = all.input.size(0);
  if (rows % accum != 0) fail("internal error: {} rows do not split into {} micro-batches", rows, accum);
  const int64_t micro = rows / accum;
  torch::Tensor step_loss;
  model::State next;
  for (int64_t m = 0; m < accum; ++m) {
    Batch b = accum == 1 ? all : all.rows(m * micro, (m + 1) * micro);
    model::ForwardResult out;
    torch::Tensor loss;
    {
      // 2. forward; bf16 autocast where safe, parameters (master weights), gradients, optimizer in fp32
      Autocast autocast(options_.bf16, all.input.device());
      const model::State in = state->empty() || accum == 1 ? *state : state->rows(m * micro, (m + 1) * micro);
      out = model_.forward(b.input, in);
      loss = task_loss(options_.task, model_, out, b, options_.label_loss);  // from the logits, or the model's adaptive softmax
    }
    // 3. backward; the reducer communicates during the last micro-batch's backward
    if (reducer_ && m + 1 == accum) reducer_->prepare_for_sync();
    (loss / static_cast<double>(accum)).backward();
    if (reducer_ && m + 1 == accum) reducer_->finalize();
    auto l = loss.detach().to(torch::kFloat64) / static_cast<double>(accum);
    step_loss = step_loss.defined() ? step_loss + l : l;
    // 4. carried state, kept in fp32
    for (auto& [k, v] : out.state.tensors) {
      if (v.scalar_type() != torch::kFloat32) v = v.to(torch::kFloat32);
      auto& dst = next.tensors[k];
      dst = dst.defined() ? torch::cat({dst, v}, 0) : v;
    }
  }
  *state = std::move(next);
  return step_loss;
}

torch::Tensor Step::update(double lr, bool want_norm) {
  // 5. clip, schedule, update
  torch::Tensor norm;
  if (options_.clip > 0) {
    norm = clip_grad_norm_async(params_, options_.clip);
  } else if (want_norm) {
    norm = grad_norm_async(params_);
  }
  set_learning_rate(optimizer_, lr);
  optimizer_.step();
  optimizer_.zero_grad();
  return norm;
}

void Step::skip() { optimizer_.zero_grad(); }

}  // namespace recur::train
