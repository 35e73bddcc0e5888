// See trainer.h. The step reads top to bottom: fetch, forward, backward, clip, step, schedule, log, evaluate.
#include "train/trainer.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include <spdlog/spdlog.h>

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
#include "data/dataset.h"
#include "data/loaders.h"
#include "data/prefetcher.h"
#include "data/training_data.h"
#include "checkpoint/checkpoint.h"
#include "model/model.h"
#include "parallel/communicator.h"
#include "parallel/launch.h"
#include "parallel/model_sync.h"
#include "parallel/reducer.h"

namespace recur::train {
namespace {

constexpr double kLn2 = 0.69314718055994530942;

// What the data asks the model to do: next-token prediction over a stream, over whole examples
// (optionally only where loss_mask says the next token is determined), or the formal languages'
// multi-label task (the set of symbols that may follow each prefix).
enum class Task { kStream, kExamples, kLabelSets };

Task task_of(const data::Dataset& ds) {
  const auto& m = ds.manifest();
  if (m.layout == data::Layout::kStream) return Task::kStream;
  for (const auto& f : m.example_fields) {
    if (f == "label_sets") return Task::kLabelSets;
  }
  return Task::kExamples;
}

bool word_level(const data::Dataset& ds) { return ds.manifest().corpus == "wikitext103"; }

torch::Tensor as_tensor(const std::vector<int64_t>& v, int64_t rows, int64_t cols) {
  return torch::from_blob(const_cast<int64_t*>(v.data()), {rows, cols}, torch::kInt64).clone();
}

// A batch as model input plus what the loss needs; rows [r0, r1) of it for gradient accumulation.
struct Batch {
  torch::Tensor input;    // [R, T]
  torch::Tensor target;   // kStream/kExamples: next tokens [R, T]; kLabelSets: label bit masks [R, T]
  torch::Tensor weight;   // [R, T] 1 where the position counts (kStream: undefined = all, or train.loss_last)
  Batch to(const torch::Device& d) const {
    if (d.is_cpu()) return *this;
    return {input.to(d), target.to(d), weight.defined() ? weight.to(d) : weight};
  }
  Batch rows(int64_t r0, int64_t r1) const {
    return {input.slice(0, r0, r1), target.slice(0, r0, r1), weight.defined() ? weight.slice(0, r0, r1) : weight};
  }
};

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

Batch make_batch(const data::TokenBatch& b, Task task) {
  auto tokens = as_tensor(b.tokens, b.rows, b.cols);
  if (task == Task::kStream) return {tokens.slice(1, 0, b.cols - 1), tokens.slice(1, 1), torch::Tensor()};
  auto lengths = torch::from_blob(const_cast<int64_t*>(b.lengths.data()), {b.rows}, torch::kInt64).clone();
  auto positions = torch::arange(b.cols, torch::kInt64).unsqueeze(0);
  if (task == Task::kLabelSets) {
    auto valid = positions.lt(lengths.unsqueeze(1)).to(torch::kFloat32);
    return {tokens, as_tensor(b.label_sets, b.rows, b.cols), valid};
  }
  // Next-token prediction inside each example: position t predicts token t+1 < length.
  auto valid = positions.slice(1, 0, b.cols - 1).add(1).lt(lengths.unsqueeze(1)).to(torch::kFloat32);
  if (!b.loss_mask.empty()) valid = valid * as_tensor(b.loss_mask, b.rows, b.cols).slice(1, 0, b.cols - 1).to(torch::kFloat32);
  return {tokens.slice(1, 0, b.cols - 1), tokens.slice(1, 1), valid};
}

torch::Tensor label_bits(const torch::Tensor& sets, int64_t vocab) {
  auto bit = torch::pow(2, torch::arange(vocab, torch::kInt64));
  return sets.unsqueeze(-1).bitwise_and(bit).ne(0).to(torch::kFloat32);  // [R, T, V]
}

// Mean loss over the counted positions.
torch::Tensor task_loss(Task task, const torch::Tensor& logits, const Batch& b) {
  const int64_t V = logits.size(-1);
  namespace F = torch::nn::functional;
  if (task == Task::kStream && !b.weight.defined()) return F::cross_entropy(logits.reshape({-1, V}), b.target.reshape({-1}));
  if (task == Task::kLabelSets) {
    auto per = F::binary_cross_entropy_with_logits(logits, label_bits(b.target, V).to(logits.dtype()),
                                                   F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone))
                   .mean(-1);
    return (per * b.weight).sum() / b.weight.sum().clamp_min(1.0);
  }
  auto per = F::cross_entropy(logits.reshape({-1, V}), b.target.reshape({-1}),
                              F::CrossEntropyFuncOptions().reduction(torch::kNone));
  auto w = b.weight.reshape({-1});
  return (per * w).sum() / w.sum().clamp_min(1.0);
}

// Running sums for evaluation: loss over counted positions, token and sequence accuracy.
struct EvalSums {
  double loss_sum = 0, positions = 0, correct = 0, sequences = 0, sequences_correct = 0;
  void add(Task task, const torch::Tensor& logits, const Batch& b) {
    const int64_t V = logits.size(-1);
    namespace F = torch::nn::functional;
    auto l64 = logits.to(torch::kFloat64);
    torch::Tensor pos_ok, weight;
    if (task == Task::kLabelSets) {
      auto bits = label_bits(b.target, V).to(torch::kFloat64);
      loss_sum += (F::binary_cross_entropy_with_logits(l64, bits, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone))
                       .mean(-1) * b.weight.to(torch::kFloat64)).sum().item<double>();
      pos_ok = l64.gt(0).eq(bits.gt(0.5)).all(-1);
      weight = b.weight;
    } else {
      auto per = F::cross_entropy(l64.reshape({-1, V}), b.target.reshape({-1}),
                                  F::CrossEntropyFuncOptions().reduction(torch::kNone)).view(b.target.sizes());
      weight = b.weight.defined() ? b.weight : torch::ones(b.target.sizes(), torch::kFloat32);
      loss_sum += (per * weight.to(torch::kFloat64)).sum().item<double>();
      pos_ok = l64.argmax(-1).eq(b.target);
    }
    auto counted = weight.gt(0);
    positions += counted.sum().item<double>();
    correct += (pos_ok & counted).sum().item<double>();
    if (task != Task::kStream) {
      auto seq_ok = (pos_ok | counted.logical_not()).all(-1);
      sequences += static_cast<double>(seq_ok.size(0));
      sequences_correct += seq_ok.sum().item<double>();
    }
  }
};

// A resumed run drops the records a killed run logged after its last checkpoint, so that the log
// reads exactly like an uninterrupted run's.
void truncate_metrics(const std::string& path, int64_t step) {
  if (!path_exists(path)) return;
  std::string text = read_file(path), kept;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) break;  // a torn last line is dropped
    std::string line = text.substr(start, nl - start);
    start = nl + 1;
    try {
      if (nlohmann::json::parse(line).value("step", int64_t{0}) <= step) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {
    }
  }
  write_file_atomic(path, kept);
}

}  // namespace

// One rank's share of a run (all of it when alone); run_training wraps it with the error policy.
nlohmann::json train_on_rank(const Config& c, const std::string& run_dir, const std::string& resume,
                             parallel::Communicator& comm);

double learning_rate(const Config& c, int64_t step, int64_t steps_per_epoch) {
  const double lr = c.get_float("train.lr");
  const std::string schedule = c.get_string("train.schedule");
  if (schedule == "constant") return lr;
  if (schedule == "halve") {
    double epochs = static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, steps_per_epoch));
    return lr * std::pow(0.5, std::floor(epochs / c.get_float("train.halve_every_epochs")));
  }
  const int64_t warmup = c.get_int("train.warmup_steps"), total = c.get_int("train.steps");
  const double min_lr = c.get_float("train.min_lr");
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

nlohmann::json evaluate(model::LanguageModel& model, const data::Dataset& ds, const std::string& split_name,
                        const Config& c) {
  const Task task = task_of(ds);
  const data::Split& split = ds.split(split_name);
  model.eval();
  // The XL evaluation settings are for token streams; examples are evaluated one by one, like training.
  if (task == Task::kStream) {
    model.set_eval_settings(c.get_int("eval.mem_len"), c.get_bool("eval.same_length"), c.get_int("eval.clamp_len"));
  } else {
    model.set_eval_settings(0, false, -1);
  }
  torch::NoGradGuard no_grad;
  const torch::Device device = model.parameters().front().device();
  EvalSums sums;
  data::TokenBatch tb;
  if (task == Task::kStream) {
    int64_t T = c.get_int("eval.tgt_len");
    if (T == 0) T = c.get_int("train.tgt_len");
    int64_t streams = std::min<int64_t>(c.get_int("eval.batch_size"), static_cast<int64_t>(split.tokens() / (T + 1)));
    data::OrderedLoader loader(split, std::max<int64_t>(1, streams), T, 0, 1, split.tokens());
    int64_t steps = loader.steps_per_epoch();
    if (c.get_int("eval.max_tokens") > 0) steps = std::min(steps, std::max<int64_t>(1, c.get_int("eval.max_tokens") / T));
    model::State state;
    for (int64_t k = 0; k < steps; ++k) {
      loader.fill(k, &tb);
      Batch b = make_batch(tb, task).to(device);
      auto out = model.forward(b.input, state);
      state = out.state;
      sums.add(task, out.logits, b);
    }
  } else {
    const uint64_t G = static_cast<uint64_t>(c.get_int("eval.batch_size"));
    for (uint64_t first = 0; first < split.examples(); first += G) {
      std::vector<uint64_t> indices;
      for (uint64_t i = first; i < std::min<uint64_t>(first + G, split.examples()); ++i) indices.push_back(i);
      data::fill_examples(split, indices, &tb);
      Batch b = make_batch(tb, task).to(device);
      sums.add(task, model.forward(b.input, model::State()).logits, b);
    }
  }
  model.train();
  double loss = sums.loss_sum / std::max(1.0, sums.positions);
  nlohmann::json j = {{"split", split_name}, {"positions", sums.positions}, {"loss", loss},
                      {"token_accuracy", sums.correct / std::max(1.0, sums.positions)}};
  if (task == Task::kStream) {
    if (word_level(ds)) j["ppl"] = std::exp(loss);
    else j["bpc"] = loss / kLn2;
  } else {
    j["sequence_accuracy"] = sums.sequences_correct / std::max(1.0, sums.sequences);
    j["sequences"] = sums.sequences;
  }
  auto gates = model.rsa_gates();
  if (!gates.empty()) j["rsa_gates"] = gates;
  // The learned REM parameters (eta, nu, theta, mu per layer and head; TL/FL weights are too big).
  for (const auto& p : model.named_parameters()) {
    if (p.key().find(".rem.") == std::string::npos || p.value().numel() > 64) continue;
    auto v = p.value().detach().to(torch::kFloat64).cpu().contiguous();
    j["rem"][p.key()] = std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
  }
  return j;
}

torch::Device resolve_device(const Config& c, const parallel::LaunchInfo& launch) {
  const std::string d = c.get_string("train.device");
  const bool have = torch::cuda::is_available();
  if (d == "cuda" && !have) fail("train.device = cuda but no CUDA device is visible (nvidia-smi, CUDA_VISIBLE_DEVICES)");
  if (d == "cuda" || (d == "auto" && have)) {
    const int n = static_cast<int>(torch::cuda::device_count());
    if (launch.local_rank >= n) {
      fail("rank {} has local rank {} but this node has {} GPU(s): start one rank per GPU", launch.rank, launch.local_rank, n);
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(launch.local_rank));
  }
  return torch::Device(torch::kCPU);
}

nlohmann::json run_training(const Config& c, const std::string& run_dir, const std::string& resume) {
  parallel::LaunchInfo launch = parallel::detect_launch();
  const bool cuda = resolve_device(c, launch).is_cuda();
  auto comm = parallel::make_communicator(c.get_string("train.backend"), launch, cuda);
  if (comm->world_size() == 1) return train_on_rank(c, run_dir, resume, *comm);
  // With several ranks an error on one must end them all, not leave the others waiting in a collective.
  try {
    return train_on_rank(c, run_dir, resume, *comm);
  } catch (const checkpoint::Checkpointed&) {
    throw;  // every rank saved and agreed to stop
  } catch (const std::exception& e) {
    std::fprintf(stderr, "recur train: rank %d of %d: error: %s\n", comm->rank(), comm->world_size(), e.what());
    std::fflush(stderr);
    comm->abort(1);
  }
  return nlohmann::json();  // not reached: abort() does not return
}

nlohmann::json train_on_rank(const Config& c, const std::string& run_dir, const std::string& resume,
                             parallel::Communicator& comm) {
  const int rank = comm.rank(), world = comm.world_size();
  const bool lead = rank == 0;
  if (c.get_int("train.threads") > 0) torch::set_num_threads(static_cast<int>(c.get_int("train.threads")));
  if (lead) make_dirs(run_dir);
  data::TrainingData td = data::open_training_data(c);
  const data::Dataset& ds = *td.dataset;
  const Task task = task_of(ds);
  const int64_t vocab = static_cast<int64_t>(ds.manifest().vocab.size);
  auto model = model::make_model(c, vocab);
  const torch::Device device = resolve_device(c, parallel::detect_launch());
  model->to(device);
  // Control collectives (model check, the per-step loss/stop/due all-reduce, the final parameter
  // check) are small host tensors: on a host communicator (MPI), also beside NCCL.
  auto host = comm.host_duplicate();
  const bool bf16 = c.get_string("train.precision") == "bf16";
  if (lead) c.save(run_dir + "/config.yaml");
  std::unique_ptr<parallel::Reducer> reducer;
  if (world > 1) {
    parallel::check_same_model(*model, *host);
    parallel::broadcast_module(*model, comm, /*root=*/0);
    parallel::ReducerOptions ro;
    ro.first_bucket_mb = c.get_float("train.first_bucket_mb");
    ro.bucket_mb = c.get_float("train.bucket_mb");
    ro.reduce_bf16 = c.get_string("train.reduce_dtype") == "bf16";
    reducer = std::make_unique<parallel::Reducer>(model->parameters(), comm, ro);
  }

  const int64_t steps = c.get_int("train.steps"), G = c.get_int("train.batch_size"), T = c.get_int("train.tgt_len");
  const int64_t accum = c.get_int("train.grad_accum");
  if (G % world != 0) {
    fail("config error: train.batch_size = {} (global) is not divisible by the {} ranks", G, world);
  }
  const int64_t local_rows = G / world;
  if (local_rows % accum != 0) {
    fail("config error: the {} rows per rank (train.batch_size / ranks) are not divisible by train.grad_accum = {}",
         local_rows, accum);
  }
  std::string sampler = c.get_string("train.sampler");
  if (sampler == "auto") sampler = task != Task::kStream ? "examples" : model->carries_state() ? "ordered" : "crop";
  const data::Split& train = ds.split("train");
  std::unique_ptr<data::OrderedLoader> ordered;
  std::unique_ptr<data::RandomCropSampler> crop;
  std::unique_ptr<data::ExampleSampler> examples;
  int64_t steps_per_epoch;
  if (task != Task::kStream) {
    auto usable = static_cast<uint64_t>(std::ceil(static_cast<double>(train.examples()) * c.get_float("data.fraction")));
    examples = std::make_unique<data::ExampleSampler>(train, G, rank, world, static_cast<uint64_t>(c.get_int("train.seed")),
                                                      /*shuffle=*/true, usable);
    steps_per_epoch = examples->steps_per_epoch();
    sampler = "shuffled examples";
  } else if (sampler == "ordered") {
    ordered = std::make_unique<data::OrderedLoader>(train, G, T, rank, world, td.train_tokens);
    steps_per_epoch = ordered->steps_per_epoch();
  } else {
    crop = std::make_unique<data::RandomCropSampler>(train, G, T, rank, world, static_cast<uint64_t>(c.get_int("train.seed")),
                                                     td.train_tokens);
    steps_per_epoch = std::max<int64_t>(1, static_cast<int64_t>(td.train_tokens) / (G * T));
  }
  torch::manual_seed(static_cast<uint64_t>(c.get_int("train.seed")) + 1 + static_cast<uint64_t>(rank));  // dropout
  std::unique_ptr<torch::optim::Optimizer> opt;
  const double lr0 = c.get_float("train.lr");
  auto betas = std::make_tuple(c.get_float("train.beta1"), c.get_float("train.beta2"));
  if (c.get_string("train.optimizer") == "sgd") {  // plain SGD (the R-Transformer's): no state to checkpoint
    opt = std::make_unique<torch::optim::SGD>(model->parameters(),
                                              torch::optim::SGDOptions(lr0).weight_decay(c.get_float("train.weight_decay")));
  } else if (c.get_string("train.optimizer") == "adamw") {
    opt = std::make_unique<torch::optim::AdamW>(model->parameters(),
                                                torch::optim::AdamWOptions(lr0).betas(betas).weight_decay(c.get_float("train.weight_decay")));
  } else {
    opt = std::make_unique<torch::optim::Adam>(model->parameters(),
                                               torch::optim::AdamOptions(lr0).betas(betas).weight_decay(c.get_float("train.weight_decay")));
  }
  // Resume: parameters, optimizer moments, RNG, step and this rank's streams' recurrent state.
  checkpoint::Checkpointer ckpt(run_dir, c, comm);
  checkpoint::Progress progress;
  model::State state;
  const int64_t first_row = rank * local_rows;
  std::string from = ckpt.resolve(resume);
  if (!from.empty()) {
    progress = ckpt.load(from, *model, *opt, ordered ? &state : nullptr, first_row, local_rows);
    for (auto& [k, v] : state.tensors) v = v.to(device);
    if (lead) {
      spdlog::info("resuming from {} (step {})", from, progress.step);
      truncate_metrics(run_dir + "/metrics.jsonl", progress.step);
    }
  }
  const int64_t start_step = progress.step;
  data::Prefetcher prefetch(
      [&](int64_t k, data::TokenBatch* out) {
        if (examples) examples->fill(k, out);
        else if (ordered) ordered->fill(k, out);
        else crop->fill(k, out);
      },
      start_step,
      static_cast<int>(c.get_int("data.prefetch")));
  const bool bpc = !word_level(ds);
  const double clip = c.get_float("train.clip");
  const int64_t log_every = c.get_int("train.log_every"), eval_every = c.get_int("train.eval_every");
  const bool skip_nan = c.get_string("train.nan_policy") == "skip";
  const int64_t loss_last = c.get_int("train.loss_last");
  if (loss_last > T) fail("config error: train.loss_last = {} exceeds train.tgt_len = {}", loss_last, T);
  std::ofstream metrics;
  if (lead) {
    metrics.open(run_dir + "/metrics.jsonl", std::ios::app);
    if (!metrics) fail("cannot write {}/metrics.jsonl", run_dir);
    spdlog::info("training {} ({} parameters) on {} ({} train tokens), {} steps of batch {} on {} rank(s) ({}), {} order",
                 model->type(), model::count_parameters(*model), ds.dir(), td.train_tokens, steps, G, world,
                 comm.backend(), sampler);
  }

  model->train();
  checkpoint::install_stop_signals();
  auto start = std::chrono::steady_clock::now();
  auto window_start = start;
  double window_loss = progress.window_loss, window_positions = progress.window_positions;
  int64_t window_steps = progress.window_steps;
  auto save = [&](int64_t done, double loss, bool wait) {
    progress.step = done;
    progress.loss = loss;
    progress.window_loss = window_loss;
    progress.window_positions = window_positions;
    progress.window_steps = window_steps;
    checkpoint::SaveRequest req;
    req.progress = progress;
    req.model = model.get();
    req.optimizer = opt.get();
    req.state = &state;
    req.first_row = first_row;
    req.global_rows = G;
    std::string dir = ckpt.save(req);
    if (wait) ckpt.wait();
    if (lead) spdlog::info(ckpt.saving() ? "checkpoint {} (writing in the background)" : "checkpoint {}", dir);
  };
  for (int64_t step = start_step; step < steps; ++step) {
    // fetch
    data::TokenBatch batch = prefetch.next();
    if (batch.epoch_start || task != Task::kStream) state = model::State();
    Batch all = make_batch(batch, task).to(device);
    if (task == Task::kStream && loss_last > 0) {  // the R-Transformer protocol: loss on the last N positions only
      all.weight = torch::arange(all.target.size(1), torch::kInt64).ge(all.target.size(1) - loss_last)
                       .to(torch::kFloat32).unsqueeze(0).expand({all.target.size(0), -1}).contiguous();
    }
    const double positions = world * (all.weight.defined() ? all.weight.sum().item<double>() : static_cast<double>(all.target.numel()));
    window_positions += positions;
    progress.tokens += static_cast<int64_t>(positions);
    // forward + backward (+ reduce), over grad_accum micro-batches of whole streams; the reducer
    // communicates during the last micro-step's backward only
    const int64_t micro = local_rows / accum;
    double step_loss = 0.0;
    model::State next_state;
    for (int64_t m = 0; m < accum; ++m) {
      Batch b = all.rows(m * micro, (m + 1) * micro);
      model::ForwardResult out;
      torch::Tensor loss;
      {
        // bf16 autocast: the forward in bf16 where safe; parameters (master weights), gradients and
        // the optimizer stay fp32.
        Autocast autocast(bf16, device);
        out = model->forward(b.input, state.empty() ? state : state.rows(m * micro, (m + 1) * micro));
        loss = task_loss(task, out.logits.to(torch::kFloat32), b);
      }
      if (reducer && m + 1 == accum) reducer->prepare_for_sync();
      (loss / static_cast<double>(accum)).backward();
      if (reducer && m + 1 == accum) reducer->finalize();
      step_loss += loss.item<double>() / static_cast<double>(accum);
      for (auto& [k, v] : out.state.tensors) {
        if (v.scalar_type() != torch::kFloat32) v = v.to(torch::kFloat32);  // state is kept in fp32
        auto& dst = next_state.tensors[k];
        dst = dst.defined() ? torch::cat({dst, v}, 0) : v;
      }
    }
    state = next_state;
    // One all-reduce per step: the mean loss every rank logs and judges, and whether any rank was
    // asked to stop (SIGTERM/SIGUSR1), so all ranks agree on the step at which to save and leave.
    // checkpoint.every_minutes is judged by each rank's clock, so the ranks agree on it here too.
    ckpt.poll();  // a background save that failed ends the run here
    bool stop = checkpoint::stop_requested();
    bool due = ckpt.due(step + 1) || step + 1 == steps;
    if (world > 1) {
      auto l = torch::tensor({step_loss, stop ? 1.0 : 0.0, due ? 1.0 : 0.0}, torch::kFloat64);
      host->all_reduce_sum(l);
      step_loss = l[0].item<double>() / world;
      stop = l[1].item<double>() > 0;
      due = l[2].item<double>() > 0;
    }
    if (!std::isfinite(step_loss)) {
      if (!skip_nan) {
        fail("loss is {} at step {}: lower train.lr, check the data, or set train.nan_policy=skip to skip such steps",
             step_loss, step);
      }
      spdlog::warn("step {}: loss is {}, update skipped (train.nan_policy=skip)", step, step_loss);
      opt->zero_grad();
      continue;
    }
    // clip, step, schedule
    if (clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), clip);
    const double lr = learning_rate(c, step, steps_per_epoch);
    for (auto& group : opt->param_groups()) group.options().set_lr(lr);
    opt->step();
    opt->zero_grad();
    // log
    window_loss += step_loss;
    ++window_steps;
    if (lead && ((step + 1) % log_every == 0 || step + 1 == steps)) {
      auto now = std::chrono::steady_clock::now();
      double secs = std::chrono::duration<double>(now - window_start).count();
      double tok_s = window_positions / std::max(secs, 1e-9);
      double elapsed = std::chrono::duration<double>(now - start).count();
      double eta = elapsed / static_cast<double>(step + 1) * static_cast<double>(steps - step - 1);
      double mean = window_loss / static_cast<double>(window_steps);
      nlohmann::json rec = {{"step", step + 1}, {"loss", mean}, {"lr", lr}, {"tokens_per_s", tok_s}, {"elapsed_s", elapsed}};
      if (task == Task::kStream) rec[bpc ? "bpc" : "ppl"] = bpc ? mean / kLn2 : std::exp(mean);
      metrics << rec.dump() << "\n";
      metrics.flush();
      std::string metric = task != Task::kStream ? "" : bpc ? fmt::format(" | bpc {:.4f}", mean / kLn2)
                                                            : fmt::format(" | ppl {:.2f}", std::exp(mean));
      std::fprintf(stderr, "step %lld/%lld | loss %.4f%s | lr %.3g | %s tok/s | ETA %s\n",
                   static_cast<long long>(step + 1), static_cast<long long>(steps), mean, metric.c_str(), lr,
                   format_count(tok_s).c_str(), format_duration(eta).c_str());
      window_start = now;
      window_loss = 0.0;
      window_positions = 0.0;
      window_steps = 0;
    }
    // checkpoint (on schedule, at the end, or when asked to stop)
    if (stop) {
      save(step + 1, step_loss, /*wait=*/true);
      throw checkpoint::Checkpointed(fmt::format("stopped by a signal after step {}; checkpoint saved", step + 1));
    }
    if (due) save(step + 1, step_loss, /*wait=*/step + 1 == steps);
    // evaluate
    if (lead && eval_every > 0 && (step + 1) % eval_every == 0 && step + 1 < steps) {
      auto e = evaluate(*model, ds, "valid", c);
      e["step"] = step + 1;
      metrics << nlohmann::json{{"step", step + 1}, {"eval", e}}.dump() << "\n";
      spdlog::info("eval at step {}: {}", step + 1, e.dump());
    }
  }
  ckpt.wait();
  // Every rank must end with the same parameters; a difference means a bug, not noise.
  const bool identical = world == 1 || parallel::ranks_hold_same_parameters(*model, *host);
  if (!identical) fail("rank {}: parameters differ between ranks after training (data-parallel bug)", rank);
  nlohmann::json result;
  const std::string eval_path = run_dir + "/eval.json";
  if (lead && start_step == steps && path_exists(eval_path) &&
      nlohmann::json::parse(read_file(eval_path)).value("step", int64_t{-1}) == steps) {
    result = nlohmann::json::parse(read_file(eval_path));  // a finished run, resumed: nothing new to evaluate
  } else if (lead) {
    torch::save(model, run_dir + "/model.pt");
    result = evaluate(*model, ds, "valid", c);
    result["step"] = steps;
    result["model"] = model->type();
    result["parameters"] = model::count_parameters(*model);
    result["ranks"] = world;
    result["ranks_identical"] = identical;
    result["train_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (reducer) result["buckets"] = reducer->num_buckets();
    // Other splits evaluated at the end too (e.g. a formal language's bin 1 = test).
    for (const auto& split : c.get_string_list("eval.extra_splits")) {
      if (!ds.has_split(split)) fail("eval.extra_splits: the dataset {} has no split '{}'", ds.dir(), split);
      result["splits"][split] = evaluate(*model, ds, split, c);
    }
    write_file_atomic(eval_path, result.dump(2) + "\n");
  }
  host->barrier();
  return result;
}

nlohmann::json run_evaluation(const std::string& run_dir, const std::string& split, const std::vector<std::string>& overrides) {
  std::string cfg = run_dir + "/config.yaml";
  if (!path_exists(cfg)) fail("{} is not a run directory: {} is missing", run_dir, cfg);
  Config c = Config::load(cfg, overrides);
  data::TrainingData td = data::open_training_data(c);
  auto model = model::make_model(c, static_cast<int64_t>(td.dataset->manifest().vocab.size));
  std::string params = run_dir + "/model.pt";
  if (!path_exists(params)) fail("{} has no trained parameters ({} is missing)", run_dir, params);
  try {
    torch::load(model, params);
  } catch (const c10::Error& e) {
    fail("cannot load {}: {}", params, e.what_without_backtrace());
  }
  return evaluate(*model, *td.dataset, split, c);
}

}  // namespace recur::train
