// See bench.h. Timings are medians over repeats after warm-up; inputs are random tokens.
#include "train/bench.h"
#include "train/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "checkpoint/checkpoint.h"
#include "core/config.h"
#include "core/fs.h"
#include "core/error.h"
#include "model/model.h"
#include "parallel/communicator.h"
#include "parallel/launch.h"
#include "parallel/reducer.h"
#include "train/flops.h"
#include "train/options.h"
#include "train/optimizer.h"
#include "train/step.h"
#include "train/task.h"

#ifdef RECUR_HAVE_NCCL
#include <cuda_runtime.h>
#endif

namespace recur::train {
namespace {

// One model with its optimizer and the training Step (train.precision, train.grad_accum,
// train.optimizer, train.reduce_dtype as configured), random tokens and a full memory, ready to time
// steps. With several ranks each holds train.batch_size / ranks rows and gradients go through the reducer.
struct StepRunner {
  std::shared_ptr<model::LanguageModel> model;
  std::unique_ptr<torch::optim::Optimizer> opt;
  std::unique_ptr<parallel::Reducer> reducer;
  std::unique_ptr<Step> step;
  Batch batch;
  model::State state;
  torch::Device device{torch::kCPU};

  StepRunner(const Config& c, int64_t vocab, parallel::Communicator& comm, const torch::Device& dev) : device(dev) {
    const TrainOptions o = TrainOptions::from(c);
    o.check(comm.world_size());
    model = model::make_model(c, vocab);
    model->to(device);
    opt = make_optimizer(o, model->parameters());
    model->train();
    const int64_t T = o.tgt_len;
    torch::manual_seed(comm.rank());
    auto tokens = torch::randint(vocab, {o.batch_size / comm.world_size(), T + 1}, torch::kInt64).to(device);
    batch = Batch{tokens.slice(1, 0, T), tokens.slice(1, 1), torch::Tensor(), static_cast<double>(tokens.size(0) * T)};
    if (comm.world_size() > 1) {
      parallel::ReducerOptions ro;
      ro.first_bucket_mb = o.first_bucket_mb;
      ro.bucket_mb = o.bucket_mb;
      ro.reduce_bf16 = o.reduce_bf16;
      reducer = std::make_unique<parallel::Reducer>(model->parameters(), comm, ro);
    }
    step = std::make_unique<Step>(*model, *opt, reducer.get(), StepOptions{Task::kStream, o.grad_accum, o.bf16, o.clip});
    if (model->carries_state()) {  // a full memory
      torch::NoGradGuard no_grad;
      state = model->forward(batch.input, state).state;
    }
  }
  double step_ms() {
    auto t0 = std::chrono::steady_clock::now();
    model::State s = state;  // every timed step starts from the same full memory
    step->forward_backward(batch, &s);
    step->update(1e-4);
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string device_name(const torch::Device& d) {
#ifdef RECUR_HAVE_NCCL
  if (d.is_cuda()) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, d.index()) == cudaSuccess) return prop.name;
  }
#endif
  return d.is_cuda() ? "cuda" : "cpu";
}

}  // namespace

nlohmann::json bench_step(const Config& c, const StepBenchOptions& o) {
  const TrainOptions opts = TrainOptions::from(c);
  if (opts.threads > 0) torch::set_num_threads(static_cast<int>(opts.threads));
  const parallel::LaunchInfo launch = parallel::detect_launch();
  const torch::Device device = resolve_device(c, launch);
  parallel::CommunicatorOptions co;
  co.cuda = device.is_cuda();
  co.device_index = device.is_cuda() ? device.index() : -1;
  co.timeout_s = opts.collective_timeout_s;
  auto comm = parallel::make_communicator(opts.backend, launch, co);
  const int world = comm->world_size();
  const int64_t B = opts.batch_size, T = opts.tgt_len;
  opts.check(world);
  const std::string type = c.get_string("model.type");
  std::string plain = type == "rsa_transformer" ? "transformer" : (type == "rsa_xl" || type == "tl_xl" || type == "fl_xl") ? "xl" : type == "rsa_brt" ? "brt" : "";
  StepRunner main(c, o.vocab, *comm, device);
  std::unique_ptr<StepRunner> base;
  if (o.compare_plain && !plain.empty() && world == 1) {
    Config b = c;
    b.set("model.type", "\"" + plain + "\"");
    b.set("model.n_rsa_heads", "0");
    base = std::make_unique<StepRunner>(b, o.vocab, *comm, device);
  }
  // Warm up, then alternate the two models step by step so that drift in machine speed hits both.
  std::vector<double> ms, plain_ms;
  for (int64_t i = 0; i < o.warmup + o.repeats; ++i) {
    if (i == o.warmup && main.reducer) main.reducer->take_stats();
    double a = main.step_ms();
    double p = base ? base->step_ms() : 0.0;
    if (i >= o.warmup) {
      ms.push_back(a);
      plain_ms.push_back(p);
    }
  }
  if (world > 1) {  // every rank reports the slowest rank's median: a step ends when all have finished
    auto host = comm->host_duplicate();  // a CPU tensor: through the host communicator, also beside NCCL
    auto t = torch::tensor({median(ms)}, torch::kFloat64);
    auto all = host->all_gather(t);
    ms.assign(ms.size(), all.max().item<double>());
  }
  double med = median(ms);
  const FlopCount flops = model_flops_per_token(*main.model, c, o.vocab);
  const double tokens_per_s = static_cast<double>(B * T) / (med / 1000.0);
  nlohmann::json j = {{"bench", "step"},
                      {"model", type},
                      {"parameters", model::count_parameters(*main.model)},
                      {"batch_size", B},
                      {"tgt_len", T},
                      {"mem_len", c.get_int("model.mem_len")},
                      {"threads", torch::get_num_threads()},
                      {"ranks", world},
                      {"backend", comm->backend()},
                      {"device", device.str()},
                      {"device_name", device_name(device)},
                      {"precision", opts.precision()},
                      {"reduce_dtype", opts.reduce_dtype()},
                      {"optimizer", opts.optimizer},
                      {"grad_accum", opts.grad_accum},
                      {"ms_per_step", med},
                      {"tokens_per_s", tokens_per_s},
                      {"model_flops_per_token", flops.train},
                      {"model_tflops_per_s", tokens_per_s * flops.train / 1e12 / world}};
  // Model FLOPs utilisation against the device's dense peak for the precision (GPU only).
  // fp32 matmuls run in TF32 when train.tf32 turned it on (resolve_device): the peak is TF32's.
  const bool tf32 = at::globalContext().float32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL) ==
                    at::Float32Precision::TF32;
  const std::string precision = opts.bf16 ? "bf16" : tf32 ? "tf32" : "fp32";
  const double peak = o.peak_tflops > 0 ? o.peak_tflops : peak_tflops(device_name(device), precision);
  j["tf32"] = tf32;
  if (device.is_cuda() || o.peak_tflops > 0) {
    if (peak > 0) {
      j["peak_tflops"] = peak;
      j["mfu"] = tokens_per_s / world * flops.train / (peak * 1e12);
    } else {
      j["mfu"] = nullptr;  // unknown device: pass --peak-tflops
    }
  }
  if (main.reducer) {
    auto st = main.reducer->take_stats();
    const double n = static_cast<double>(o.repeats);
    j["buckets"] = main.reducer->num_buckets();
    j["allreduce_ms_per_step"] = 1000.0 * st.reduce_seconds / n;
    j["exposed_comm_ms_per_step"] = 1000.0 * st.exposed_seconds / n;
    j["comm_hidden_fraction"] = st.reduce_seconds > 0 ? std::max(0.0, 1.0 - st.exposed_seconds / st.reduce_seconds) : 1.0;
    j["rank"] = comm->rank();
  }
  if (base) {
    // The REM share from paired differences (each RSA step against the plain step next to it).
    std::vector<double> diff;
    for (size_t i = 0; i < ms.size(); ++i) diff.push_back(ms[i] - plain_ms[i]);
    j["plain_ms_per_step"] = median(plain_ms);
    j["rem_share"] = median(diff) / med;
  }
  return j;
}

}  // namespace recur::train

namespace recur::train {

nlohmann::json bench_allreduce(const std::vector<double>& sizes_mb, int64_t repeats, const std::string& backend) {
  const parallel::LaunchInfo launch = parallel::detect_launch();
  const bool cuda = backend == "nccl" || (backend == "auto" && torch::cuda::is_available());
  auto comm = parallel::make_communicator(backend, launch, cuda);
  const auto device = comm->backend() == "nccl" ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(launch.local_rank))
                                                : torch::Device(torch::kCPU);
  nlohmann::json rows = nlohmann::json::array();
  for (double mb : sizes_mb) {
    auto t = torch::ones({std::max<int64_t>(1, static_cast<int64_t>(mb * 1024 * 1024 / 4))},
                         torch::TensorOptions().dtype(torch::kFloat32).device(device));
    comm->all_reduce_sum(t);  // warm-up
    std::vector<double> ms;
    for (int64_t i = 0; i < repeats; ++i) {
      comm->barrier();
      auto t0 = std::chrono::steady_clock::now();
      comm->all_reduce_sum(t);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    double med = median(ms);
    const int n = comm->world_size();
    // Bus bandwidth as NCCL's tests define it: bytes * 2(n-1)/n per rank per second.
    double bus = n > 1 ? (t.numel() * 4.0) * 2.0 * (n - 1) / n / (med / 1000.0) / 1e9 : 0.0;
    rows.push_back({{"mb", mb}, {"ms", med}, {"bus_gb_per_s", bus}});
  }
  return {{"bench", "allreduce"}, {"ranks", comm->world_size()}, {"backend", comm->backend()}, {"rank", comm->rank()},
          {"sizes", rows}};
}

}  // namespace recur::train

namespace recur::train {
namespace {

uint64_t dir_bytes(const std::string& dir) {
  uint64_t total = 0;
  const auto manifest = nlohmann::json::parse(read_file(dir + "/manifest.json"));
  for (const auto& item : manifest.at("files").items()) total += item.value().value("size", uint64_t{0});
  return total;
}

// Matrix products per second on this thread: a stand-in for training compute, to see what a
// background writer takes from it.
double compute_rate(double seconds) {
  auto a = torch::randn({256, 256});
  auto b = torch::randn({256, 256});
  int64_t n = 0;
  auto t0 = std::chrono::steady_clock::now();
  double el = 0;
  do {
    for (int i = 0; i < 8; ++i) a = torch::mm(a, b).tanh_();
    n += 8;
    el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (el < seconds);
  return static_cast<double>(n) / el;
}

}  // namespace

nlohmann::json bench_ckpt(const Config& base, const CkptBenchOptions& o) {
  using Clock = std::chrono::steady_clock;
  auto secs = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  auto comm = parallel::make_single_communicator();
  auto model = model::make_model(base, o.vocab);
  const torch::Device device = resolve_device(base, parallel::detect_launch());
  model->to(device);  // on a GPU the save copies device to host: that stall is what is measured
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-4));
  {  // one update, so Adam holds its moments (the state a real checkpoint carries)
    torch::NoGradGuard ng;
    for (auto& p : model->parameters()) p.mutable_grad() = torch::randn_like(p) * 1e-3;
  }
  opt.step();
  opt.zero_grad();
  const int64_t params = model::count_parameters(*model);
  nlohmann::json out = {{"bench", "ckpt"}, {"model", model->type()}, {"parameters", params}, {"dir", o.dir},
                        {"device", device.str()}};
  for (bool async : {false, true}) {
    Config c = base;
    c.set("checkpoint.async", async ? "true" : "false");
    c.set("checkpoint.keep_last", "2");
    checkpoint::Checkpointer ckpt(o.dir, c, *comm);
    std::vector<double> stall, total, rate, slowdown;
    uint64_t bytes = 0;
    for (int64_t i = 0; i < o.repeats; ++i) {
      checkpoint::SaveRequest req;
      req.progress.step = (async ? 1000 : 0) + i + 1;
      req.model = model.get();
      req.optimizer = &opt;
      auto t0 = Clock::now();
      std::string dir = ckpt.save(req);
      auto t1 = Clock::now();
      double busy = 0;
      if (async) {
        // Compute alongside the writer, then compare with compute alone.
        double during = 0;
        int64_t rounds = 0;
        while (ckpt.saving()) {
          during += compute_rate(0.2);
          ++rounds;
        }
        busy = rounds > 0 ? during / static_cast<double>(rounds) : 0;
      }
      ckpt.wait();
      auto t2 = Clock::now();
      bytes = dir_bytes(dir);
      stall.push_back(secs(t0, t1));
      total.push_back(secs(t0, t2));
      rate.push_back(static_cast<double>(bytes) / 1e6 / secs(t0, t2));
      if (async && busy > 0) slowdown.push_back(1.0 - busy / compute_rate(1.0));
      if (o.progress) {
        std::fprintf(stderr, "  %s save %lld/%lld: stall %.3f s, committed after %.3f s\n", async ? "async" : "sync",
                     static_cast<long long>(i + 1), static_cast<long long>(o.repeats), stall.back(), total.back());
      }
    }
    nlohmann::json r = {{"stall_s", median(stall)}, {"save_s", median(total)}, {"mb", static_cast<double>(bytes) / 1e6},
                        {"mb_per_s", median(rate)}};
    if (!slowdown.empty()) r["compute_slowdown_while_writing"] = median(slowdown);
    out[async ? "async" : "sync"] = r;
  }
  out["async_stall_fraction_of_sync_save"] = out["async"]["stall_s"].get<double>() / out["sync"]["save_s"].get<double>();
  return out;
}

}  // namespace recur::train
