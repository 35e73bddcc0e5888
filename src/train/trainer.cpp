// See trainer.h. train_on_rank is a short driver over parts with their own files:
//   options.h (typed train.* settings), batch_source.h (sampler, data.fraction, prefetch),
//   optimizer.h (the optimizer factory), step.h (micro-batches, autocast, reducer, clip, update,
//   carried state), metrics_log.h (metrics.jsonl and the progress line), task.h (batches and losses).
// Its phases: 1. options and data; 2. model, replicas and reducer; 3. optimizer, step and resume;
// 4. the loop (fetch, step, agree, update, log, checkpoint, evaluate); 5. final check and evaluation.
#include "train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <thread>

#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <spdlog/spdlog.h>

#include "checkpoint/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/dataset.h"
#include "data/loaders.h"
#include "data/training_data.h"
#include "model/model.h"
#include "parallel/communicator.h"
#include "parallel/launch.h"
#include "parallel/model_sync.h"
#include "parallel/reducer.h"
#include "train/batch_source.h"
#include "train/best_evals.h"
#include "train/metrics_log.h"
#include "train/optimizer.h"
#include "train/options.h"
#include "train/run_check.h"
#include "train/step.h"
#include "train/task.h"

namespace recur::train {
namespace {

// The step's values every rank must agree on, read from the device only when needed: on the CPU (no
// cost) and with train.nan_policy = skip after every step, on a GPU only at log, checkpoint and
// evaluation steps. Losses of the steps not yet read accumulate on the device.
class LossReader {
 public:
  LossReader(parallel::Communicator& host, bool every_step, double timeout_s)
      : host_(host), every_step_(every_step), timeout_s_(timeout_s) {}
  bool every_step() const { return every_step_; }
  // Adds a step's loss (a device tensor); `stop`/`due` are this rank's flags, agreed over ranks on return.
  // Returns true when the losses were read (then last() and sum() hold the means over ranks).
  bool add(const torch::Tensor& loss, bool read_point, bool* stop, bool* due) {
    pending_ = pending_.defined() ? pending_ + loss : loss;
    last_ = loss;
    ++pending_steps_;
    const int world = host_.world_size();
    if (every_step_) {  // one all-reduce with the loss and the flags, as the CPU path always did
      double l = loss.item<double>();
      if (world > 1) {
        auto t = torch::tensor({l, *stop ? 1.0 : 0.0, *due ? 1.0 : 0.0}, torch::kFloat64);
        host_.all_reduce_sum(t);
        l = t[0].item<double>() / world;
        *stop = t[1].item<double>() > 0;
        *due = t[2].item<double>() > 0;
      }
      last_value_ = sum_value_ = l;
      pending_ = torch::Tensor();
      pending_steps_ = 0;
      return true;
    }
    if (world > 1) {
      auto t = torch::tensor({*stop ? 1.0 : 0.0, *due ? 1.0 : 0.0}, torch::kFloat64);
      host_.all_reduce_sum(t);
      *stop = t[0].item<double>() > 0;
      *due = t[1].item<double>() > 0;
    }
    if (!(read_point || *stop || *due)) return false;
    auto both = torch::stack({pending_, last_});
    wait_for_device(both);
    both = both.to(torch::kCPU);
    if (world > 1) host_.all_reduce_sum(both);
    sum_value_ = both[0].item<double>() / world;
    last_value_ = both[1].item<double>() / world;
    pending_ = torch::Tensor();
    read_steps_ = pending_steps_;
    pending_steps_ = 0;
    return true;
  }
  double last() const { return last_value_; }
  double sum() const { return sum_value_; }
  int64_t read_steps() const { return every_step_ ? 1 : read_steps_; }

 private:
  // Waits, with the collective deadline, for the device work that produces `t` (on a GPU: the steps'
  // kernels and NCCL all-reduces), so a hung GPU collective ends the job instead of a read hanging.
  void wait_for_device(const torch::Tensor& t) const {
    if (t.is_cpu() || timeout_s_ <= 0) return;
    c10::Event done(t.device().type());
    done.record(c10::impl::getDeviceGuardImpl(t.device().type())->getStream(t.device()));
    const auto start = std::chrono::steady_clock::now();
    while (!done.query()) {
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s_) {
        fail("rank {}: the GPU work of the last steps (compute or NCCL all-reduce) did not finish within {} s "
             "(train.collective_timeout_s): another rank has stopped, died, or is far behind",
             host_.rank(), timeout_s_);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  parallel::Communicator& host_;
  bool every_step_;
  double timeout_s_;
  torch::Tensor pending_, last_;
  int64_t pending_steps_ = 0, read_steps_ = 0;
  double last_value_ = 0.0, sum_value_ = 0.0;
};

int parse_cuda_index(const std::string& d) {
  const std::string digits = d.substr(5);
  if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos) {
    fail("config error: train.device = '{}' (auto, cpu, cuda, or cuda:N with N a device number)", d);
  }
  return std::stoi(digits);
}

}  // namespace

// One rank's share of a run (all of it when alone); run_training wraps it with the error policy.
nlohmann::json train_on_rank(const Config& c, const std::string& run_dir, const std::string& resume,
                             parallel::Communicator& comm, const torch::Device& device);

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
  } else if (c.get_string("model.initial_memory") == "zeros") {
    // examples start from zero memory in training; evaluation sees them as training does
    model.set_eval_settings(c.get_int("model.mem_len"), c.get_bool("model.same_length"), c.get_int("model.clamp_len"));
  } else {
    model.set_eval_settings(0, false, -1);
  }
  torch::NoGradGuard no_grad;
  const torch::Device device = model.parameters().front().device();
  EvalSums sums(label_loss_of(c.get_string("train.label_loss")));  // on the device: read once at the end
  data::TokenBatch tb;
  int64_t T = c.get_int("eval.tgt_len");
  if (T == 0) T = c.get_int("train.tgt_len");
  if (task == Task::kStream && c.get_int("eval.score_last") > 0) {
    // Overlapping windows (the R-Transformer's reference evaluation): window k holds tokens [kN, kN + T]
    // (shorter at the end of the split) and scores only its last N positions, so every scored token
    // has C = T - N tokens of context; together they score every target after the first C once.
    const int64_t N = c.get_int("eval.score_last"), C = T - N, L = static_cast<int64_t>(split.tokens());
    if (N > T) fail("config error: eval.score_last = {} exceeds the evaluation window of {} tokens (eval.tgt_len)", N, T);
    int64_t windows = L - 1 > C ? (L - 1 - C + N - 1) / N : 0;  // k with kN + C < L - 1
    if (c.get_int("eval.max_tokens") > 0) windows = std::min(windows, std::max<int64_t>(1, c.get_int("eval.max_tokens") / N));
    const int64_t full = std::min(windows, L - 1 >= T ? (L - 1 - T) / N + 1 : 0);  // windows of all T tokens
    auto run = [&](int64_t first, int64_t rows, int64_t len) {  // `rows` windows of `len` inputs from window `first`
      tb.rows = rows;
      tb.cols = len + 1;
      tb.tokens.resize(static_cast<size_t>(rows * (len + 1)));
      for (int64_t r = 0; r < rows; ++r) {
        split.read_tokens(static_cast<uint64_t>((first + r) * N), static_cast<uint64_t>(len + 1), &tb.tokens[r * (len + 1)]);
      }
      Batch b = make_batch(tb, task).to(device);
      weight_last_positions(&b, len - C);
      sums.add(task, model, model.forward(b.input, model::State()), b);
    };
    const int64_t G = c.get_int("eval.batch_size");
    for (int64_t first = 0; first < full; first += G) run(first, std::min(G, full - first), T);
    if (windows > full) run(full, 1, L - 1 - full * N);  // at most one window is short
  } else if (task == Task::kStream) {
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
      sums.add(task, model, out, b);
    }
  } else {
    const uint64_t G = static_cast<uint64_t>(c.get_int("eval.batch_size"));
    for (uint64_t first = 0; first < split.examples(); first += G) {
      std::vector<uint64_t> indices;
      for (uint64_t i = first; i < std::min<uint64_t>(first + G, split.examples()); ++i) indices.push_back(i);
      data::fill_examples(split, indices, &tb);
      Batch b = make_batch(tb, task).to(device);
      sums.add(task, model, model.forward(b.input, model::State()), b);
    }
  }
  model.train();
  nlohmann::json j = sums.result(task, word_level(ds));
  j["split"] = split_name;
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

namespace {
// valid's evaluation, with each split of eval.extra_splits under "splits".NAME when `extra` (the shape of
// eval.json, and of the evaluation records of eval.every_epoch).
nlohmann::json evaluate_splits(model::LanguageModel& model, const data::Dataset& ds, const Config& c, bool extra) {
  nlohmann::json e = evaluate(model, ds, "valid", c);
  if (!extra) return e;
  for (const auto& split : c.get_string_list("eval.extra_splits")) {
    if (!ds.has_split(split)) fail("eval.extra_splits: the dataset {} has no split '{}'", ds.dir(), split);
    e["splits"][split] = evaluate(model, ds, split, c);
  }
  return e;
}
}  // namespace

void set_tf32(const Config& c, const torch::Device& device) {
  const std::string t = c.get_string("train.tf32");
  const bool on = t == "on" || (t == "auto" && device.is_cuda());
  // Set either way, so that "off" also holds in a process where something else turned TF32 on.
  for (at::Float32Op op : {at::Float32Op::MATMUL, at::Float32Op::CONV}) {
    at::globalContext().setFloat32Precision(at::Float32Backend::CUDA, op,
                                            on ? at::Float32Precision::TF32 : at::Float32Precision::IEEE);
  }
}

namespace {
// train.device alone; resolve_device also sets what depends on it.
torch::Device find_device(const Config& c, const parallel::LaunchInfo& launch) {
  const std::string d = c.get_string("train.device");
  if (d == "cpu") return torch::Device(torch::kCPU);
  const bool pinned = d.rfind("cuda:", 0) == 0;
  if (!pinned && d != "cuda" && d != "auto") fail("config error: train.device = '{}' (auto, cpu, cuda, or cuda:N)", d);
  const int index = pinned ? parse_cuda_index(d) : launch.local_rank;
  const bool have = torch::cuda::is_available();
  if (d == "auto" && !have) return torch::Device(torch::kCPU);
  if (!have) fail("train.device = {} but no CUDA device is visible (nvidia-smi, CUDA_VISIBLE_DEVICES)", d);
  const int n = static_cast<int>(torch::cuda::device_count());
  if (index >= n) {
    if (pinned) fail("train.device = {} but this node has {} GPU(s) (devices 0..{})", d, n, n - 1);
    fail("rank {} has local rank {} but this node has {} GPU(s): start one rank per GPU, or pin ranks with "
         "train.device=cuda:N", launch.rank, launch.local_rank, n);
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}
}  // namespace

torch::Device resolve_device(const Config& c, const parallel::LaunchInfo& launch) {
  torch::Device device = find_device(c, launch);
  set_tf32(c, device);
  return device;
}


namespace {
// A failed `recur train` leaves no empty run directory behind: the directory this invocation created
// goes again unless the run left something to keep (a checkpoint, a metrics record).
void remove_failed_run_dir(const std::string& run_dir) {
  const std::string metrics = run_dir + "/metrics.jsonl";
  if (!checkpoint::list_checkpoints(run_dir).empty() || (path_exists(metrics) && !read_file(metrics).empty())) return;
  remove_tree(run_dir);  // core/fs.h: never std::filesystem in a binary that links LibTorch (architecture.md)
}
}  // namespace

nlohmann::json run_training(const Config& c, const std::string& run_dir, const std::string& resume) {
  parallel::LaunchInfo launch = parallel::detect_launch();
  const torch::Device device = resolve_device(c, launch);
  parallel::CommunicatorOptions co;
  co.cuda = device.is_cuda();
  co.device_index = device.is_cuda() ? device.index() : -1;
  co.timeout_s = TrainOptions::from(c).collective_timeout_s;
  auto comm = parallel::make_communicator(c.get_string("train.backend"), launch, co);
  const bool new_run_dir = comm->rank() == 0 && !path_exists(run_dir);
  try {
    return train_on_rank(c, run_dir, resume, *comm, device);
  } catch (const checkpoint::Checkpointed&) {
    throw;  // every rank saved and agreed to stop
  } catch (const std::exception& e) {
    if (new_run_dir) remove_failed_run_dir(run_dir);
    if (comm->world_size() == 1) throw;
    // With several ranks an error on one must end them all, not leave the others waiting in a collective.
    std::fprintf(stderr, "recur train: rank %d of %d: error: %s\n", comm->rank(), comm->world_size(), e.what());
    std::fflush(stderr);
    comm->abort(1);
  }
  return nlohmann::json();  // not reached: abort() does not return
}

nlohmann::json train_on_rank(const Config& c, const std::string& run_dir, const std::string& resume,
                             parallel::Communicator& comm, const torch::Device& device) {
  // 1. options and data
  const int rank = comm.rank(), world = comm.world_size();
  const bool lead = rank == 0;
  const TrainOptions o = TrainOptions::from(c);
  o.check(world);
  if (o.threads > 0) torch::set_num_threads(static_cast<int>(o.threads));
  if (lead) make_dirs(run_dir);
  data::TrainingData td = data::open_training_data(c);
  const data::Dataset& ds = *td.dataset;
  check_splits(c, ds);  // every split the run will evaluate, before step 1
  const Task task = task_of(ds);
  const int64_t vocab = static_cast<int64_t>(ds.manifest().vocab.size);
  const bool every_epoch = c.get_bool("eval.every_epoch");
  const double stop_at = c.get_float("train.stop_at_mean_accuracy");
  if (stop_at > 0 && task == Task::kStream) {
    fail("config error: train.stop_at_mean_accuracy = {} needs sequence accuracies, but {} is a token stream (it is for "
         "datasets of examples, e.g. `recur gen formal`)", stop_at, ds.dir());
  }

  // 2. model, replicas and reducer (the evaluation settings are checked against the model now, not at
  // the first evaluation). Control collectives (model check, the per-step flags, the final parameter
  // check) are small host tensors on a host communicator (MPI), also beside NCCL.
  check_eval_settings(c);
  const Config periodic_eval = with_eval_settings(c, periodic_eval_settings(c));
  auto model = model::make_model(c, vocab);
  model->to(device);
  auto host = comm.host_duplicate();
  std::unique_ptr<parallel::Reducer> reducer;
  if (world > 1) {
    parallel::check_same_model(*model, *host);
    parallel::broadcast_module(*model, comm, /*root=*/0);
    parallel::ReducerOptions ro;
    ro.first_bucket_mb = o.first_bucket_mb;
    ro.bucket_mb = o.bucket_mb;
    ro.reduce_bf16 = o.reduce_bf16;
    reducer = std::make_unique<parallel::Reducer>(model->parameters(), comm, ro);
  }
  BatchSource source(c, td, task, model->carries_state(), rank, world);

  // 3. optimizer, step and resume: parameters, optimizer moments, RNG, step and this rank's streams'
  // recurrent state.
  torch::manual_seed(static_cast<uint64_t>(o.seed) + 1 + static_cast<uint64_t>(rank));  // dropout
  auto opt = make_optimizer(o, model->parameters());
  Step step_fn(*model, *opt, reducer.get(),
               StepOptions{task, o.grad_accum, o.bf16, o.clip, label_loss_of(c.get_string("train.label_loss"))});
  const int64_t local_rows = o.batch_size / world, first_row = rank * local_rows;
  checkpoint::Checkpointer ckpt(run_dir, c, comm);
  checkpoint::Progress progress;
  model::State state;
  std::string from = ckpt.resolve(resume);
  if (!from.empty()) {
    progress = ckpt.load(from, *model, *opt, source.ordered() ? &state : nullptr, first_row, local_rows);
    for (auto& [k, v] : state.tensors) v = v.to(device);
    if (lead) spdlog::info("resuming from {} (step {})", from, progress.step);
  }
  // RUN_DIR/config.yaml is replaced only now, the resume accepted: a refused one leaves the run as it was.
  if (lead) {
    for (const auto& change : checkpoint::config_changes(run_dir + "/config.yaml", c)) {
      spdlog::info("config changed since the run's config.yaml: {}", change);
    }
    c.save(run_dir + "/config.yaml");
  }
  const int64_t start_step = progress.step, steps = o.steps;
  source.start(start_step);
  MetricsLog log(run_dir, lead, task, word_level(ds), steps, start_step, c.get_bool("log.tensorboard"));
  const double earlier_seconds = progress.train_seconds;  // the attempts before this one, up to the checkpoint
  // Each split's best evaluation and the stop rule (eval.every_epoch), re-derived on a resume from the
  // evaluation records metrics.jsonl keeps (those up to the checkpoint's step); a run that stopped by the
  // rule (train.stop_at_mean_accuracy) and is resumed does not train on.
  BestEvals best(stop_at);
  if (lead && every_epoch) best.add_metrics(run_dir);
  bool stopped_before = best.stop_step() > 0;
  if (world > 1) {
    auto t = torch::tensor({stopped_before ? 1.0 : 0.0}, torch::kFloat64);
    host->all_reduce_sum(t);
    stopped_before = t.item<double>() > 0;
  }
  int64_t end_step = stopped_before ? start_step : steps;
  if (lead) {
    spdlog::info("training {} ({} parameters) on {} ({} train tokens), {} steps of batch {} on {} rank(s) ({}, {}), {} order",
                 model->type(), model::count_parameters(*model), ds.dir(), td.train_tokens, steps, o.batch_size, world,
                 comm.backend(), device.str(), source.sampler());
  }

  // 4. the loop
  model->train();
  checkpoint::install_stop_signals();
  LogWindow window{progress.window_loss, progress.window_positions, progress.window_steps};
  LossReader losses(*host, device.is_cpu() || o.skip_nan, o.collective_timeout_s);
  auto save = [&](int64_t done, double loss, bool wait) {
    progress.step = done;
    progress.loss = loss;
    progress.window_loss = window.loss;
    progress.window_positions = window.positions;
    progress.window_steps = window.steps;
    progress.train_seconds = earlier_seconds + log.elapsed_s();
    checkpoint::SaveRequest req;
    req.progress = progress;
    req.model = model.get();
    req.optimizer = opt.get();
    req.state = &state;
    req.first_row = first_row;
    req.global_rows = o.batch_size;
    std::string dir = ckpt.save(req);
    if (wait) ckpt.wait();
    if (lead) spdlog::info(ckpt.saving() ? "checkpoint {} (writing in the background)" : "checkpoint {}", dir);
  };
  int64_t unread_from = start_step;  // first step whose loss has not been read (GPU: deferred reads)
  const int64_t steps_per_epoch = source.steps_per_epoch();
  for (int64_t step = start_step; step < end_step; ++step) {
    // 4a. fetch
    data::TokenBatch batch = source.next();
    if (batch.epoch_start || task != Task::kStream) state = model::State();
    Batch all = make_batch(batch, task).to(device);
    if (task == Task::kStream && o.loss_last > 0) weight_last_positions(&all, o.loss_last);  // R-Transformer protocol
    const double positions = world * all.positions;
    window.positions += positions;
    progress.tokens += static_cast<int64_t>(positions);
    // 4b. forward + backward (+ reduce), carrying the state
    torch::Tensor loss = step_fn.forward_backward(all, &state);
    // 4c. agree: whether any rank was asked to stop (SIGTERM/SIGUSR1/SIGINT) and whether a checkpoint is due
    // (checkpoint.every_minutes is judged by each rank's clock); read the losses where needed
    ckpt.poll();  // a background save that failed ends the run here
    bool stop = checkpoint::stop_requested();
    bool due = ckpt.due(step + 1) || step + 1 == steps;
    const bool log_point = (step + 1) % o.log_every == 0 || step + 1 == steps;
    const bool epoch_end = every_epoch && ((step + 1) % steps_per_epoch == 0 || step + 1 == steps);
    const bool eval_point = epoch_end || (o.eval_every > 0 && (step + 1) % o.eval_every == 0 && step + 1 < steps);
    const bool read = losses.add(loss, log_point || eval_point, &stop, &due);
    if (read && !std::isfinite(losses.sum())) {
      if (!o.skip_nan) {
        std::string where = step == unread_from ? fmt::format("step {}", step) : fmt::format("steps {}-{}", unread_from, step);
        fail("loss is {} at {}: lower train.lr, check the data, or set train.nan_policy=skip to skip such steps",
             losses.sum(), where);
      }
      spdlog::warn("step {}: loss is {}, update skipped (train.nan_policy=skip)", step, losses.sum());
      step_fn.skip();
      unread_from = step + 1;
      continue;
    }
    if (read) {
      window.loss += losses.sum();
      window.steps += losses.read_steps();
      unread_from = step + 1;
    }
    // 4d. clip, schedule, update
    const double lr = learning_rate(c, step, source.steps_per_epoch());
    const torch::Tensor grad_norm = step_fn.update(lr, /*want_norm=*/log_point && lead);
    // 4e. log: rank 0 reads the pre-clip gradient norm and the RSA gates at log steps only
    if (log_point) {
      nlohmann::json extra = nlohmann::json::object();
      if (lead && grad_norm.defined()) extra["grad_norm"] = grad_norm.item<double>();
      const auto gates = lead ? model->rsa_gates() : std::vector<double>();
      if (!gates.empty()) extra["rsa_gates"] = gates;
      log.log(step + 1, lr, &window, extra);
    }
    // 4f. checkpoint (on schedule, at the end, or when asked to stop)
    if (stop) {
      save(step + 1, losses.last(), /*wait=*/true);
      throw checkpoint::Checkpointed(fmt::format("stopped by a signal after step {}; checkpoint saved", step + 1));
    }
    if (due) save(step + 1, losses.last(), /*wait=*/step + 1 == steps);
    // 4g. evaluate: every rank evaluates (the same work, in parallel), so no rank waits in a collective
    // while rank 0 alone evaluates; rank 0 writes the record. With eval.every_epoch every split is
    // evaluated, and the stop rule may end the run here: the open window is logged and the step
    // checkpointed, so the run ends as cleanly as at its last step.
    if (eval_point) {
      auto e = evaluate_splits(*model, ds, periodic_eval, every_epoch);
      e["step"] = step + 1;
      log.eval(step + 1, e);
      bool reached = best.add(step + 1, e);
      if (world > 1) {  // the ranks' evaluations agree, but a stop must be unanimous
        auto t = torch::tensor({reached ? 1.0 : 0.0}, torch::kFloat64);
        host->all_reduce_sum(t);
        reached = t.item<double>() > 0;
      }
      if (reached && step + 1 < steps) {
        if (lead) {
          spdlog::info("step {}: mean sequence accuracy over the splits {} >= {} (train.stop_at_mean_accuracy): stopping",
                       step + 1, mean_sequence_accuracy(e), stop_at);
        }
        if (window.steps > 0) log.log(step + 1, lr, &window);
        if (!due) save(step + 1, losses.last(), /*wait=*/true);
        end_step = step + 1;
        break;
      }
    }
  }
  ckpt.wait();

  // 5. every rank must end with the same parameters (a difference means a bug, not noise); then the
  // final evaluation, again on every rank, written by rank 0
  const bool identical = world == 1 || parallel::ranks_hold_same_parameters(*model, *host);
  if (!identical) fail("rank {}: parameters differ between ranks after training (data-parallel bug)", rank);
  nlohmann::json result;
  const std::string eval_path = run_dir + "/eval.json";
  const bool finished_before = start_step == end_step;  // a finished run, resumed: nothing new to evaluate
  if (lead && finished_before && path_exists(eval_path) &&
      nlohmann::json::parse(read_file(eval_path)).value("step", int64_t{-1}) == end_step) {
    result = nlohmann::json::parse(read_file(eval_path));
  } else if (lead || !finished_before) {
    if (lead) torch::save(model, run_dir + "/model.pt");
    // Other splits evaluated at the end too (e.g. a formal language's bin 1 = test).
    result = evaluate_splits(*model, ds, c, /*extra=*/true);
    result["step"] = end_step;
    result["model"] = model->type();
    result["parameters"] = model::count_parameters(*model);
    result["ranks"] = world;
    result["ranks_identical"] = identical;
    result["train_seconds"] = earlier_seconds + log.elapsed_s();
    result["device"] = device.str();
    if (reducer) result["buckets"] = reducer->num_buckets();
    // The paper's protocol beside ours (the last step's, above): each split's best evaluation during
    // training, and where the stop rule ended the run.
    if (every_epoch) result["best"] = best.to_json();
    if (end_step < steps) {
      result["stopped_early"] = {{"step", end_step}, {"steps", steps}, {"threshold", stop_at},
                                 {"mean_sequence_accuracy", best.stop_mean()}};
    }
    if (lead) write_file_atomic(eval_path, result.dump(2) + "\n");
  }
  host->barrier();
  return lead ? result : nlohmann::json();
}

nlohmann::json run_evaluation(const std::string& run_dir, const std::string& split, const std::vector<std::string>& overrides) {
  std::string cfg = run_dir + "/config.yaml";
  if (!path_exists(cfg)) fail("{} is not a run directory: {} is missing", run_dir, cfg);
  Config c = Config::load(cfg, overrides);
  check_eval_settings(c);
  data::TrainingData td = data::open_training_data(c);
  auto model = model::make_model(c, static_cast<int64_t>(td.dataset->manifest().vocab.size));
  std::string params = run_dir + "/model.pt";
  if (!path_exists(params)) fail("{} has no trained parameters ({} is missing)", run_dir, params);
  try {
    // Parameters saved from a GPU load onto the CPU first, so a CPU-only machine evaluates GPU runs.
    torch::load(model, params, torch::Device(torch::kCPU));
  } catch (const c10::Error& e) {
    fail("cannot load {}: {}", params, e.what_without_backtrace());
  }
  // The run's train.device where it exists here; a GPU run evaluated on a machine without one uses the CPU.
  torch::Device device(torch::kCPU);
  const std::string d = c.get_string("train.device");
  if (d != "cpu" && torch::cuda::is_available()) {
    device = resolve_device(c, parallel::detect_launch());
  } else if (d != "cpu" && d != "auto") {
    spdlog::info("{} was trained with train.device = {}; no GPU here: evaluating on the CPU", run_dir, d);
  }
  model->to(device);
  return evaluate(*model, *td.dataset, split, c);
}

}  // namespace recur::train
