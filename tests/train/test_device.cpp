// Device placement, checked on PyTorch's `meta` device: every tensor that the loss, evaluation,
// label-set and loss-mask helpers, the training Step and every model family create must take the
// device of the tensors they meet. A tensor created on the CPU beside `meta` data throws ("Expected
// all tensors to be on the same device"), exactly as it would beside CUDA data on a GPU; and a
// read-back to the host (.item()) throws on `meta` too, which catches host synchronisations in a step.
#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>
#include <torch/library.h>
#include <torch/torch.h>

#include "core/config.h"
#include "core/error.h"
#include "model/adaptive.h"
#include "model/model.h"
#include "train/flops.h"
#include "train/optimizer.h"
#include "train/options.h"
#include "train/step.h"
#include "train/task.h"
#include "train/trainer.h"

namespace recur::train {
namespace {

const torch::Device kMeta(torch::kMeta);

void expect_meta(const at::Tensor& t, const char* op) {
  TORCH_CHECK(t.device().is_meta(), op, ": expected a meta tensor, got one on ", t.device());
}

// LibTorch's C++ library lacks Meta kernels for some operators (Python adds them from
// torch/_meta_registrations.py). For those, this boxed kernel checks that every tensor argument is on
// `meta` (the device check a real kernel makes), runs the operator on zero-filled CPU tensors of the
// same shapes (zero is a valid index), and returns empty `meta` tensors of the results' shapes.
void cpu_shape_kernel(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& schema = op.schema();
  const size_t n = schema.arguments().size(), first = stack->size() - n;
  auto to_cpu = [&](const at::Tensor& t) {
    expect_meta(t, schema.name().c_str());
    return at::empty_strided(t.sizes(), t.strides(), t.options().device(torch::kCPU)).zero_();
  };
  std::vector<std::pair<at::Tensor, at::Tensor>> written;  // out= arguments: (meta, CPU stand-in)
  for (size_t i = first; i < stack->size(); ++i) {
    auto& v = (*stack)[i];
    const auto* alias = schema.arguments()[i - first].alias_info();
    if (v.isTensor() && v.toTensor().defined()) {
      at::Tensor meta = v.toTensor(), cpu = to_cpu(meta);
      if (alias && alias->isWrite()) written.emplace_back(meta, cpu);
      v = cpu;
    } else if (v.isTensorList()) {
      std::vector<at::Tensor> list;
      for (const at::Tensor& t : v.toTensorList()) list.push_back(t.defined() ? to_cpu(t) : t);
      v = list;
    } else if (v.isOptionalTensorList()) {
      c10::List<std::optional<at::Tensor>> list;
      for (std::optional<at::Tensor> t : v.toOptionalTensorList()) list.push_back(t && t->defined() ? std::optional<at::Tensor>(to_cpu(*t)) : t);
      v = list;
    }
  }
  op.redispatchBoxed(c10::DispatchKeySet(c10::DispatchKey::CPU), stack);
  for (auto& [meta, cpu] : written) meta.resize_(cpu.sizes());
  for (size_t i = stack->size() - schema.returns().size(); i < stack->size(); ++i) {
    auto& v = (*stack)[i];
    if (!v.isTensor() || !v.toTensor().defined()) continue;
    const at::Tensor r = v.toTensor();
    bool replaced = false;
    for (auto& [meta, cpu] : written) {
      if (r.is_same(cpu)) {
        v = meta;
        replaced = true;
      }
    }
    if (!replaced) v = at::empty(r.sizes(), r.options().device(kMeta));
  }
}

TORCH_LIBRARY_IMPL(aten, Meta, m) {
  for (const char* op : {"where.self", "unfold_backward", "embedding_dense_backward", "relu", "native_layer_norm_backward", "native_batch_norm", "abs.out", "log_sigmoid_forward", "logical_not", "index_select", "flip"}) {
    m.impl(op, torch::CppFunction::makeFromBoxedFunction<&cpu_shape_kernel>());
  }
}

// Moves a module's parameters and buffers onto `meta` in place, keeping every handle the model holds
// (Module::to refuses meta: set_data checks for a "compatible" dense backend, and meta is not one).
void to_meta(torch::nn::Module& module) {
  auto move = [](torch::Tensor& t) {
    torch::NoGradGuard no_grad;
    auto m = torch::empty_strided(t.sizes(), t.strides(), t.options().device(kMeta));
    t.unsafeGetTensorImpl()->shallow_copy_from(m.getIntrusivePtr());
  };
  for (auto& p : module.parameters()) move(p);
  for (auto& b : module.buffers()) move(b);
}

torch::TensorOptions meta(torch::ScalarType t) { return torch::TensorOptions().dtype(t).device(kMeta); }

Batch meta_batch(Task task, int64_t rows, int64_t cols, int64_t vocab) {
  Batch b;
  b.input = torch::zeros({rows, cols}, meta(torch::kInt64));
  b.target = torch::zeros({rows, cols}, meta(torch::kInt64));
  if (task != Task::kStream) b.weight = torch::ones({rows, cols}, meta(torch::kFloat32));
  b.positions = static_cast<double>(rows * cols);
  return b;
}

// train.tf32 (issue 19): TF32 for CUDA matmuls and convolutions when on, or auto on a CUDA device.
TEST(DeviceTest, Tf32FollowsTheSettingAndTheDevice) {
  auto precision = [](at::Float32Op op) { return at::globalContext().float32Precision(at::Float32Backend::CUDA, op); };
  const torch::Device cpu(torch::kCPU), cuda(torch::kCUDA, 0);
  struct Case {
    std::string setting;
    torch::Device device;
    at::Float32Precision expected;
  };
  for (const Case& k : {Case{"auto", cuda, at::Float32Precision::TF32}, Case{"auto", cpu, at::Float32Precision::IEEE},
                        Case{"on", cpu, at::Float32Precision::TF32}, Case{"off", cuda, at::Float32Precision::IEEE},
                        Case{"on", cuda, at::Float32Precision::TF32}}) {
    Config c = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/xl.yaml", {"train.tf32=" + k.setting});
    set_tf32(c, k.device);
    EXPECT_EQ(precision(at::Float32Op::MATMUL), k.expected) << k.setting << " on " << k.device;
    EXPECT_EQ(precision(at::Float32Op::CONV), k.expected) << k.setting << " on " << k.device;
  }
  EXPECT_THROW(Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/xl.yaml", {"train.tf32=yes"}), Error);
  set_tf32(Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/xl.yaml", {}), cpu);  // leave IEEE behind
}

TEST(DeviceTest, LabelBitsStayOnTheDeviceOfTheLabelSets) {
  auto sets = torch::zeros({2, 5}, meta(torch::kInt64));
  auto bits = label_bits(sets, 7);
  EXPECT_EQ(bits.device(), kMeta);
  EXPECT_EQ(bits.sizes(), (std::vector<int64_t>{2, 5, 7}));
  // And the values on the CPU: bit v of the set.
  auto cpu = label_bits(torch::tensor({{5}}, torch::kInt64), 3);
  EXPECT_TRUE(cpu.equal(torch::tensor({{{1.f, 0.f, 1.f}}})));
}

TEST(DeviceTest, LossMaskOfTheLastPositionsIsBuiltOnTheTargetsDevice) {
  Batch b = meta_batch(Task::kStream, 3, 8, 11);
  weight_last_positions(&b, 5);
  EXPECT_EQ(b.weight.device(), kMeta);
  EXPECT_EQ(b.positions, 15.0);
  Batch c;
  c.target = torch::zeros({2, 4}, torch::kInt64);
  weight_last_positions(&c, 3);
  EXPECT_TRUE(c.weight.equal(torch::tensor({{0.f, 1.f, 1.f, 1.f}, {0.f, 1.f, 1.f, 1.f}})));
}

TEST(DeviceTest, TaskLossesStayOnTheDevice) {
  const int64_t V = 6;
  for (Task task : {Task::kStream, Task::kExamples, Task::kLabelSets}) {
    Batch b = meta_batch(task, 2, 4, V);
    auto logits = torch::zeros({2, 4, V}, meta(torch::kFloat32));
    EXPECT_EQ(task_loss(task, logits, b).device(), kMeta) << static_cast<int>(task);
  }
  Batch b = meta_batch(Task::kStream, 2, 4, V);
  weight_last_positions(&b, 2);
  EXPECT_EQ(task_loss(Task::kStream, torch::zeros({2, 4, V}, meta(torch::kFloat32)), b).device(), kMeta);
}

TEST(DeviceTest, EvaluationSumsStayOnTheDevice) {
  const int64_t V = 6;
  for (Task task : {Task::kStream, Task::kExamples, Task::kLabelSets}) {
    EvalSums sums;
    Batch b = meta_batch(task, 2, 4, V);
    auto logits = torch::zeros({2, 4, V}, meta(torch::kFloat32));
    sums.add(task, logits, b);
    sums.add(task, logits, b);
    ASSERT_TRUE(sums.sums().defined());
    EXPECT_EQ(sums.sums().device(), kMeta) << static_cast<int>(task);
    EXPECT_EQ(sums.sums().scalar_type(), torch::kFloat64);
  }
}

TEST(DeviceTest, EvaluationSumsMatchANaiveLoop) {
  // Stream task, every position counted: loss = mean over positions of -log softmax(target).
  torch::manual_seed(3);
  auto logits = torch::randn({2, 3, 5});
  Batch b;
  b.target = torch::tensor({{1, 4, 0}, {2, 2, 3}}, torch::kInt64);
  EvalSums sums;
  sums.add(Task::kStream, logits, b);
  double naive = 0, correct = 0;
  for (int r = 0; r < 2; ++r) {
    for (int t = 0; t < 3; ++t) {
      auto row = logits[r][t].to(torch::kFloat64);
      int64_t y = b.target[r][t].item<int64_t>();
      naive += (row.exp().sum().log() - row[y]).item<double>();
      correct += row.argmax().item<int64_t>() == y ? 1 : 0;
    }
  }
  auto j = sums.result(Task::kStream, /*word_level=*/false);
  EXPECT_NEAR(j["loss"].get<double>(), naive / 6, 1e-12);
  EXPECT_EQ(j["positions"].get<double>(), 6.0);
  EXPECT_NEAR(j["token_accuracy"].get<double>(), correct / 6, 1e-12);
  EXPECT_NEAR(j["bpc"].get<double>(), naive / 6 / std::log(2.0), 1e-12);
}

// One forward + backward through the training Step of every model family, with parameters and data
// on `meta`: a tensor a model creates on the CPU, or a read-back to the host, fails here.
class ModelFamilyDeviceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelFamilyDeviceTest, ForwardAndBackwardStayOnTheDevice) {
  Config c = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/" + GetParam() + ".yaml", {});
  const int64_t V = 13;
  auto model = model::make_model(c, V);
  to_meta(*model);
  for (const auto& p : model->named_parameters()) ASSERT_EQ(p.value().device(), kMeta) << p.key();
  model->train();
  TrainOptions o = TrainOptions::from(c);
  o.optimizer = "sgd";
  auto opt = make_optimizer(o, model->parameters());
  Step step(*model, *opt, nullptr, StepOptions{Task::kStream, /*grad_accum=*/2, /*bf16=*/false, /*clip=*/0.25});
  const int64_t T = c.get_int("train.tgt_len");
  Batch b = meta_batch(Task::kStream, 4, T, V);
  model::State state;
  for (int seg = 0; seg < 2; ++seg) {  // the second segment carries the first one's state
    auto loss = step.forward_backward(b, &state);
    EXPECT_EQ(loss.device(), kMeta);
    for (const auto& p : model->named_parameters()) {
      if (p.value().grad().defined()) EXPECT_EQ(p.value().grad().device(), kMeta) << p.key();
    }
    for (const auto& [k, v] : state.tensors) EXPECT_EQ(v.device(), kMeta) << k;
    step.update(1e-3);
  }
  // Evaluation mode (XL evaluation settings) on the device as well.
  model->eval();
  model->set_eval_settings(c.get_int("model.mem_len"), true, -1);
  torch::NoGradGuard no_grad;
  EvalSums sums;
  auto out = model->forward(b.input, model::State());
  sums.add(Task::kStream, out.logits, b);
  EXPECT_EQ(sums.sums().device(), kMeta);
}

INSTANTIATE_TEST_SUITE_P(EveryFamily, ModelFamilyDeviceTest,
                         ::testing::Values("xl", "rsa_xl", "tl_xl", "fl_xl", "brt", "rsa_brt", "transformer",
                                           "rsa_transformer", "r_transformer", "recurrent_transformer", "gpt"));

}  // namespace
}  // namespace recur::train

namespace recur::train {
namespace {

// Model FLOPs per token against the formula written out by hand for the tiny XL (flops.h): 2 layers,
// d 32, 4 heads of 8, d_inner 64, T 16, memory 16, vocabulary 256 (untied output layer).
TEST(FlopsTest, TinyXlMatchesTheHandCount) {
  Config c = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/xl.yaml", {});
  auto model = model::make_model(c, 256);
  const double per_layer = 3 * 32 * 32 + 32 * 32 + 32 * 32 /* r_net */ + 2 * 32 * 64;
  const double dense = 2 * per_layer + 256 * 32;
  const double attention = 2.0 * 2 * 4 * 8 * (16 + 16) * 3;
  const FlopCount f = model_flops_per_token(*model, c, 256);
  EXPECT_EQ(f.dense_params, dense);
  EXPECT_EQ(f.attention, attention);
  EXPECT_EQ(f.train, 3 * (2 * dense + attention));
  EXPECT_EQ(peak_tflops("NVIDIA H200", "bf16"), 989.4);
  EXPECT_EQ(peak_tflops("NVIDIA H100 80GB HBM3", "fp32"), 66.9);
  EXPECT_EQ(peak_tflops("NVIDIA H100 80GB HBM3", "tf32"), 494.7);
  EXPECT_EQ(peak_tflops("NVIDIA A100-SXM4-80GB", "tf32"), 156.0);
  EXPECT_EQ(peak_tflops("Tesla T4", "bf16"), 0.0);
}

}  // namespace
}  // namespace recur::train

namespace recur::train {
namespace {

// Under bf16 autocast the output layer stays in fp32 (model/precision.h): logits are fp32, and
// equal to the fp32 output layer applied to the same hidden states up to fp32 rounding.
class Bf16LogitsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(Bf16LogitsTest, LogitsAreFp32UnderAutocast) {
  Config c = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/" + GetParam() + ".yaml", {});
  torch::manual_seed(5);
  auto model = model::make_model(c, 13);
  model->eval();
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(13, {2, c.get_int("train.tgt_len")}, torch::kInt64);
  at::autocast::set_autocast_enabled(torch::kCPU, true);
  at::autocast::set_autocast_dtype(torch::kCPU, torch::kBFloat16);
  at::autocast::increment_nesting();
  torch::Tensor logits;
  try {
    logits = model->forward(tokens, model::State()).logits;
  } catch (...) {
    at::autocast::decrement_nesting();
    at::autocast::set_autocast_enabled(torch::kCPU, false);
    throw;
  }
  at::autocast::decrement_nesting();
  at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(torch::kCPU, false);
  EXPECT_EQ(logits.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  // Close to the fp32 forward (bf16 inside the layers), not rounded to bf16's 8 bits at the output.
  auto ref = model->forward(tokens, model::State()).logits;
  EXPECT_LT((logits - ref).abs().max().item<double>(), 0.5);
}

INSTANTIATE_TEST_SUITE_P(Families, Bf16LogitsTest,
                         ::testing::Values("xl", "rsa_xl", "brt", "transformer", "r_transformer", "recurrent_transformer", "gpt"));

}  // namespace
}  // namespace recur::train

namespace recur::train {
namespace {

// Adaptive softmax (model.cutoffs): the model returns hidden states, not logits; the training loss and
// the evaluation sums come from its per-position NLL. (Not run on `meta`: the softmax reads its cluster
// sizes back to the host, which `meta` cannot.)
TEST(AdaptiveSoftmaxTaskTest, LossAndEvaluationComeFromTheModelsNll) {
  Config c = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/xl.yaml", {"model.cutoffs=[5,8,11]"});
  const int64_t V = 13, T = c.get_int("train.tgt_len");
  auto model = model::make_model(c, V);
  torch::manual_seed(4);
  Batch b;
  b.input = torch::randint(V, {4, T}, torch::kInt64);
  b.target = torch::randint(V, {4, T}, torch::kInt64);
  b.positions = static_cast<double>(4 * T);
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    auto out = model->forward(b.input, model::State());
    ASSERT_FALSE(out.logits.defined());
    expected = model->output_nll(out, b.target);
    EvalSums sums;
    sums.add(Task::kStream, *model, out, b);
    sums.add(Task::kStream, *model, out, b);
    auto j = sums.result(Task::kStream, /*word_level=*/true);
    EXPECT_NEAR(j["loss"].get<double>(), expected.mean().item<double>(), 1e-6);
    EXPECT_NEAR(j["ppl"].get<double>(), std::exp(expected.mean().item<double>()), 1e-4);
    EXPECT_EQ(j["positions"].get<double>(), 2.0 * 4 * T);
    EXPECT_FALSE(j.contains("token_accuracy"));
    EXPECT_THROW(sums.add(Task::kLabelSets, *model, out, b), Error);
    // A weighted batch counts only its weighted positions.
    Batch last = b;
    weight_last_positions(&last, 3);
    EXPECT_NEAR(task_loss(Task::kStream, *model, out, last).item<double>(), expected.slice(1, T - 3).mean().item<double>(), 1e-6);
  }
  TrainOptions o = TrainOptions::from(c);
  o.optimizer = "sgd";
  auto opt = make_optimizer(o, model->parameters());
  Step step(*model, *opt, nullptr, StepOptions{Task::kStream, /*grad_accum=*/2, /*bf16=*/false, /*clip=*/0.25});
  model::State state;
  EXPECT_NEAR(step.forward_backward(b, &state).item<double>(), expected.mean().item<double>(), 1e-5);
  for (const auto& p : model->named_parameters()) EXPECT_TRUE(p.value().grad().defined()) << p.key();
  step.skip();
  // Under bf16 autocast the NLL is computed in fp32 from bf16 hidden states: close, finite.
  Step bf16(*model, *opt, nullptr, StepOptions{Task::kStream, /*grad_accum=*/1, /*bf16=*/true, /*clip=*/0.25});
  model::State fresh;
  EXPECT_NEAR(bf16.forward_backward(b, &fresh).item<double>(), expected.mean().item<double>(), 0.05);
}

// The adaptive input with narrower tail tables (div_val > 1) has no data-dependent shapes: it runs on
// `meta`, forward and backward.
TEST(AdaptiveSoftmaxTaskTest, AdaptiveInputStaysOnTheDevice) {
  model::AdaptiveOptions o;
  o.vocab = 13;
  o.d_proj = 8;
  o.d_embed = 8;
  o.cutoffs = {5, 9};
  o.div_val = 2;
  model::AdaptiveEmbedding emb(o);
  to_meta(*emb);
  auto out = emb->forward(torch::zeros({2, 3}, meta(torch::kInt64)));
  EXPECT_EQ(out.device(), kMeta);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 8}));
  out.sum().backward();
  for (const auto& p : emb->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_EQ(p.value().grad().device(), kMeta) << p.key();
  }
}

// FLOPs with adaptive softmax: the output layer counts its head only (shortlist + one logit per cluster).
TEST(FlopsTest, AdaptiveSoftmaxCountsItsHead) {
  Config c = Config::load(std::string(RECUR_SOURCE_DIR) + "/configs/tiny/xl.yaml", {"model.cutoffs=[100,200]"});
  auto model = model::make_model(c, 256);
  const double per_layer = 3 * 32 * 32 + 32 * 32 + 32 * 32 + 2 * 32 * 64;
  EXPECT_EQ(model_flops_per_token(*model, c, 256).dense_params, 2 * per_layer + (100 + 2) * 32);
}

}  // namespace
}  // namespace recur::train
