// `recur bench ...`: measurements of the hot paths, printed as a table and one JSON line.
// Benchmarks never assert: their figures go to docs/benchmarks.md with machine, command and date.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include <chrono>
#include <cstdio>
#include <random>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "coord/http.h"
#include "coord/sweep.h"
#include "core/config.h"
#include "train/bench.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/corpora.h"
#include "data/dataset.h"
#include "data/loaders.h"
#include "data/prefetcher.h"

namespace recur::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Runs `fn` repeatedly for at least `seconds`; returns items per second, `fn` returning items done.
template <typename Fn>
double rate(double seconds, Fn&& fn) {
  fn();  // warm-up (page cache, allocations)
  uint64_t items = 0;
  auto start = Clock::now();
  double elapsed = 0;
  do {
    items += fn();
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds);
  return items / elapsed;
}

std::string make_temp_dataset(uint64_t bytes) {
  std::string dir = "/tmp/recur-bench-data-" + std::to_string(::getpid());
  std::string raw = dir + ".bin";
  {
    std::mt19937_64 rng(7);
    std::vector<uint64_t> buf(bytes / 8);
    for (auto& x : buf) x = rng();
    std::FILE* f = std::fopen(raw.c_str(), "wb");
    if (!f || std::fwrite(buf.data(), 8, buf.size(), f) != buf.size() || std::fclose(f) != 0) fail("cannot write {}", raw);
  }
  data::ShardOptions o;
  o.corpus = "bytes";
  o.inputs = {raw};
  o.out_dir = dir;
  o.progress = false;
  data::shard_corpus(o);
  ::unlink(raw.c_str());
  return dir;
}

int bench_data(const Argv& argv) {
  Args args("recur bench data [--data DIR] [options]",
            "Tokens per second delivered by the dataset reader and loaders, from the page cache.\n"
            "Without --data a 256 MiB random byte dataset is made in /tmp and removed afterwards.");
  args.option("data", "DIR", "dataset directory (default: a temporary random byte dataset)")
      .option("split", "NAME", "split to read", "train")
      .option("batch", "G", "global batch (streams)", "64")
      .option("seq-len", "T", "segment length", "512")
      .option("seconds", "S", "time per measurement", "2");
  if (!args.parse(argv)) return 0;
  std::string dir = args.has("data") ? args.get("data") : make_temp_dataset(256ull << 20);
  bool temp = !args.has("data");
  struct Cleanup {
    std::string dir;
    bool on;
    ~Cleanup() {
      if (on) remove_tree(dir);
    }
  } cleanup{dir, temp};
  double seconds = args.get_double("seconds");
  int64_t G = args.get_int("batch"), T = args.get_int("seq-len");
  auto ds = data::Dataset::open(dir, false);
  const data::Split& split = ds->split(args.get("split"));
  uint64_t n = split.tokens();

  std::vector<int64_t> buf(1 << 20);
  uint64_t pos = 0;
  double contiguous = rate(seconds, [&]() -> uint64_t {
    uint64_t k = std::min<uint64_t>(buf.size(), n - pos);
    split.read_tokens(pos, k, buf.data());
    pos = (pos + k) % n;
    return k;
  });
  data::OrderedLoader ordered(split, G, T, 0, 1, n);
  data::TokenBatch b;
  int64_t step = 0;
  double ordered_rate = rate(seconds, [&]() -> uint64_t {
    ordered.fill(step++, &b);
    return b.tokens.size();
  });
  data::RandomCropSampler crop(split, G, T, 0, 1, 1, n);
  step = 0;
  double crop_rate = rate(seconds, [&]() -> uint64_t {
    crop.fill(step++, &b);
    return b.tokens.size();
  });
  data::Prefetcher prefetch([&](int64_t s, data::TokenBatch* out) { ordered.fill(s, out); }, 0, 4);
  double prefetch_rate = rate(seconds, [&]() -> uint64_t { return prefetch.next().tokens.size(); });

  std::printf("bench data: %s split %s (%llu tokens), batch %lld x %lld\n", dir.c_str(), split.name().c_str(),
              static_cast<unsigned long long>(n), static_cast<long long>(G), static_cast<long long>(T + 1));
  std::printf("  contiguous reads (1 Mi tokens) %10.1f M tokens/s\n", contiguous / 1e6);
  std::printf("  ordered loader                 %10.1f M tokens/s\n", ordered_rate / 1e6);
  std::printf("  random-crop sampler            %10.1f M tokens/s\n", crop_rate / 1e6);
  std::printf("  ordered loader via prefetcher  %10.1f M tokens/s\n", prefetch_rate / 1e6);
  nlohmann::json j = {{"bench", "data"},
                      {"tokens", n},
                      {"batch", G},
                      {"seq_len", T},
                      {"contiguous_tokens_per_s", contiguous},
                      {"ordered_tokens_per_s", ordered_rate},
                      {"crop_tokens_per_s", crop_rate},
                      {"prefetch_tokens_per_s", prefetch_rate}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int bench_step(const Argv& argv) {
  Args args("recur bench step --config FILE [--set k=v]... [options]",
            "Time one training step of the configured model on random tokens at train.batch_size x\n"
            "train.tgt_len with a full memory: the trainer's own step (train.precision, train.grad_accum,\n"
            "train.optimizer, train.reduce_dtype, train.clip as configured). Reports ms/step (median), tokens/s,\n"
            "model FLOPs per token (forward + backward, from the shapes), on a GPU the MFU against its dense\n"
            "peak, and for RSA models the REM share of step time (the same model with its RSA heads made plain).");
  args.required("config", "FILE", "model config")
      .list("set", "KEY=VALUE", "override a config key")
      .option("repeats", "N", "timed steps", "10")
      .option("warmup", "N", "untimed steps first", "2")
      .option("vocab", "V", "vocabulary size of the random tokens", "256")
      .option("peak-tflops", "X", "the device's dense peak TFLOP/s for MFU (0: known GPUs: H100/H200, A100)", "0");
  if (!args.parse(argv)) return 0;
  Config c = Config::load(args.get("config"), args.get_list("set"));
  train::StepBenchOptions o;
  o.peak_tflops = args.get_double("peak-tflops");
  if (o.peak_tflops < 0) throw UsageError("--peak-tflops must be >= 0");
  o.repeats = args.get_int("repeats");
  o.warmup = args.get_int("warmup");
  o.vocab = args.get_int("vocab");
  auto j = train::bench_step(c, o);
  if (j.value("rank", 0) != 0) return 0;  // rank 0 reports for the job
  std::printf("bench step: %s, %lld parameters, batch %lld x %lld (mem %lld), %d threads\n", j["model"].get<std::string>().c_str(),
              static_cast<long long>(j["parameters"].get<int64_t>()), static_cast<long long>(j["batch_size"].get<int64_t>()),
              static_cast<long long>(j["tgt_len"].get<int64_t>()), static_cast<long long>(j["mem_len"].get<int64_t>()),
              j["threads"].get<int>());
  std::printf("  %s, %s, grad_accum %lld, optimizer %s on %s\n", j["precision"].get<std::string>().c_str(),
              ("reduce " + j["reduce_dtype"].get<std::string>()).c_str(), static_cast<long long>(j["grad_accum"].get<int64_t>()),
              j["optimizer"].get<std::string>().c_str(), j["device_name"].get<std::string>().c_str());
  std::printf("  %.1f ms/step, %.0f tokens/s, %.3g model FLOPs/token", j["ms_per_step"].get<double>(),
              j["tokens_per_s"].get<double>(), j["model_flops_per_token"].get<double>());
  if (j.contains("mfu") && j["mfu"].is_number()) std::printf(", MFU %.1f%%", 100.0 * j["mfu"].get<double>());
  std::printf("\n");
  if (j.contains("comm_hidden_fraction")) {
    std::printf("  %d ranks (%s), %d buckets: all-reduce %.1f ms/step, exposed %.1f ms/step, hidden %.0f%%\n",
                j["ranks"].get<int>(), j["backend"].get<std::string>().c_str(), j["buckets"].get<int>(),
                j["allreduce_ms_per_step"].get<double>(), j["exposed_comm_ms_per_step"].get<double>(),
                100.0 * j["comm_hidden_fraction"].get<double>());
  }
  if (j.contains("rem_share")) {
    std::printf("  plain heads: %.1f ms/step; REM share of step time: %.1f%%\n", j["plain_ms_per_step"].get<double>(),
                100.0 * j["rem_share"].get<double>());
  }
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int bench_allreduce(const Argv& argv) {
  Args args("recur bench allreduce [--sizes MB,...] [--repeats N]   (under mpirun -np N)",
            "Median all-reduce time and bus bandwidth for float32 messages of the given sizes across the ranks of\n"
            "this job (MPI for CPU ranks). Run it under mpirun: a single process has nothing to reduce with.");
  args.option("sizes", "MB,...", "message sizes in MiB", "0.25,1,4,16,25")
      .option("repeats", "N", "timed repetitions per size", "20")
      .option("backend", "NAME", "auto, mpi, nccl or single", "auto");
  if (!args.parse(argv)) return 0;
  std::vector<double> sizes = args.get_double_list("sizes");
  auto j = train::bench_allreduce(sizes, args.get_int("repeats"), args.get("backend"));
  if (j["rank"].get<int>() != 0) return 0;
  std::printf("bench allreduce: %d ranks (%s)\n", j["ranks"].get<int>(), j["backend"].get<std::string>().c_str());
  for (const auto& r : j["sizes"]) {
    std::printf("  %8.2f MiB  %9.3f ms  %7.2f GB/s bus\n", r["mb"].get<double>(), r["ms"].get<double>(),
                r["bus_gb_per_s"].get<double>());
  }
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int bench_ckpt(const Argv& argv) {
  Args args("recur bench ckpt --config FILE [--set k=v]... [options]",
            "Checkpoint save cost of the configured model with Adam state, synchronous vs asynchronous\n"
            "(checkpoint.async): save time until committed, MB/s, the time the training thread is blocked\n"
            "(stall), and how much compute on the training thread slows while the background writer runs.\n"
            "Checkpoints go to a temporary run directory, removed afterwards.");
  args.required("config", "FILE", "model config (e.g. configs/models/rsa_xl_enwik8.yaml)")
      .list("set", "KEY=VALUE", "override a config key")
      .option("dir", "DIR", "where to write (default: a new directory under /tmp)")
      .option("repeats", "N", "saves per mode", "3");
  if (!args.parse(argv)) return 0;
  std::string data = make_temp_dataset(1 << 20);
  std::string dir = args.has("dir") ? args.get("dir") : "/tmp/recur-bench-ckpt-" + std::to_string(::getpid());
  if (path_exists(dir + "/checkpoints")) fail("{} already holds checkpoints; choose another --dir", dir);
  struct Cleanup {
    std::string data, dir;
    ~Cleanup() {
      remove_tree(data);
      remove_tree(dir);
    }
  } cleanup{data, dir};
  std::vector<std::string> sets = args.get_list("set");
  sets.push_back("data.path=" + data);
  Config c = Config::load(args.get("config"), sets);
  train::CkptBenchOptions o;
  o.dir = dir;
  o.repeats = args.get_int("repeats");
  auto j = train::bench_ckpt(c, o);
  std::printf("bench ckpt: %s, %lld parameters, %.1f MB per checkpoint, in %s\n", j["model"].get<std::string>().c_str(),
              static_cast<long long>(j["parameters"].get<int64_t>()), j["sync"]["mb"].get<double>(), dir.c_str());
  for (const char* mode : {"sync", "async"}) {
    const auto& r = j[mode];
    std::printf("  %-5s save %.3f s (%.0f MB/s), training stalled %.3f s", mode, r["save_s"].get<double>(),
                r["mb_per_s"].get<double>(), r["stall_s"].get<double>());
    if (r.contains("compute_slowdown_while_writing")) {
      std::printf(", compute %.0f%% slower while writing", 100.0 * r["compute_slowdown_while_writing"].get<double>());
    }
    std::printf("\n");
  }
  std::printf("  async stall = %.1f%% of a synchronous save (target < 10%%)\n",
              100.0 * j["async_stall_fraction_of_sync_save"].get<double>());
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

// 100 simulated agents against a real coordinator process: each leases, heartbeats once and reports,
// as fast as it can. Dispatch latency is the lease request's round trip (client side).
int bench_coordinator(const Argv& argv) {
  Args args("recur bench coordinator [--agents N] [--trials M]",
            "Start a coordinator (a child process on loopback, temporary state), submit M short trials, and let N\n"
            "simulated agents (threads) lease, heartbeat and report them. Prints the dispatch latency (lease\n"
            "round trip) p50/p99, throughput, and checks that no trial was lost or completed twice.");
  args.option("agents", "N", "simulated agents", "100").option("trials", "M", "trials in the sweep", "1000");
  if (!args.parse(argv)) return 0;
  const int64_t n_agents = args.get_int("agents"), n_trials = args.get_int("trials");
  if (n_agents < 1 || n_trials < 1) throw UsageError("--agents and --trials must be positive");
  const std::string dir = "/tmp/recur-bench-coord-" + std::to_string(::getpid());
  remove_tree(dir);
  make_dirs(dir);
  pid_t pid = ::fork();
  if (pid == 0) {
    std::freopen((dir + "/coord.log").c_str(), "w", stderr);
    std::string self = "/proc/self/exe";
    ::execl(self.c_str(), "recur", "coordinator", "--state", (dir + "/state.db").c_str(), "--listen", "127.0.0.1:0", "--port-file",
            (dir + "/port").c_str(), "--lease-seconds", "600", static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  struct Cleanup {
    pid_t pid;
    std::string dir;
    ~Cleanup() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      remove_tree(dir);
    }
  } cleanup{pid, dir};
  for (int i = 0; i < 200 && !path_exists(dir + "/port"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!path_exists(dir + "/port")) fail("the coordinator did not start: {}", read_file(dir + "/coord.log"));
  std::string port = read_file(dir + "/port");
  const std::string url = "http://127.0.0.1:" + port.substr(0, port.find('\n'));
  std::string token = read_file(dir + "/state.db.token");
  token.pop_back();
  coord::SweepSpec spec;
  spec.name = "bench";
  spec.base_yaml = "model:\n  type: xl\n";
  spec.axes = {"i"};
  spec.metric = "loss";
  spec.retries = 0;
  for (int64_t i = 0; i < n_trials; ++i) {
    coord::TrialSpec t;
    t.point = {{"i", i}};
    spec.trials.push_back(t);
  }
  auto sub = coord::http_request(url, "POST", "/api/sweeps", token, spec.to_json().dump());
  if (sub.status != 200) fail("submit failed: {}", sub.body.dump());
  const int64_t sweep = sub.body["id"];
  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<int64_t> reports{0}, errors{0};
  auto t0 = Clock::now();
  std::vector<std::thread> agents;
  for (int64_t a = 0; a < n_agents; ++a) {
    agents.emplace_back([&, a]() {
      try {
        auto reg = coord::http_request(url, "POST", "/api/agents", token,
                                       nlohmann::json{{"name", "sim-" + std::to_string(a)}, {"slots", 1}, {"workdir", "/tmp/sim"}}.dump());
        const int64_t id = reg.body["id"];
        std::vector<double> mine;
        while (true) {
          auto l0 = Clock::now();
          auto lease = coord::http_request(url, "POST", "/api/agents/" + std::to_string(id) + "/lease", token, "{\"free_slots\": 1}");
          mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - l0).count());
          if (lease.status != 200) {
            ++errors;
            break;
          }
          const auto& t = lease.body["trial"];
          if (t.is_null()) break;
          const std::string tid = std::to_string(t["id"].get<int64_t>());
          nlohmann::json who = {{"agent", id}, {"attempt", t["attempt"]}};
          auto hb = who;
          hb["progress"] = {{"step", 1}};
          coord::http_request(url, "POST", "/api/trials/" + tid + "/heartbeat", token, hb.dump());
          auto rep = who;
          rep["status"] = "succeeded";
          rep["result"] = {{"loss", 1.0}};
          auto r = coord::http_request(url, "POST", "/api/trials/" + tid + "/report", token, rep.dump());
          if (r.status == 200 && r.body.value("applied", false)) ++reports;
          else ++errors;
        }
        std::lock_guard<std::mutex> lock(mu);
        latencies.insert(latencies.end(), mine.begin(), mine.end());
      } catch (const std::exception& e) {
        ++errors;
        std::fprintf(stderr, "agent %lld: %s\n", static_cast<long long>(a), e.what());
      }
    });
  }
  for (auto& t : agents) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  auto sw = coord::http_request(url, "GET", "/api/sweeps/" + std::to_string(sweep), token).body;
  int64_t succeeded = 0, duplicated = 0, lost = 0;
  for (const auto& t : sw["trials"]) {
    if (t["state"] == "succeeded") ++succeeded;
    else ++lost;
    if (t["completions"].get<int64_t>() > 1) ++duplicated;
  }
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double q) { return latencies.empty() ? 0.0 : latencies[static_cast<size_t>(q * static_cast<double>(latencies.size() - 1))]; };
  nlohmann::json j = {{"bench", "coordinator"}, {"agents", n_agents}, {"trials", n_trials}, {"seconds", secs},
                      {"trials_per_s", static_cast<double>(succeeded) / secs}, {"lease_requests", latencies.size()},
                      {"dispatch_p50_ms", pct(0.5)}, {"dispatch_p99_ms", pct(0.99)}, {"succeeded", succeeded},
                      {"lost", lost}, {"duplicated", duplicated}, {"reports_applied", reports.load()}, {"errors", errors.load()}};
  std::printf("bench coordinator: %lld agents, %lld trials in %.2f s: %.0f trials/s\n", static_cast<long long>(n_agents),
              static_cast<long long>(n_trials), secs, static_cast<double>(succeeded) / secs);
  std::printf("  dispatch latency (lease round trip): p50 %.2f ms, p99 %.2f ms over %zu requests\n", pct(0.5), pct(0.99),
              latencies.size());
  std::printf("  succeeded %lld, lost %lld, completed twice %lld, errors %lld\n", static_cast<long long>(succeeded),
              static_cast<long long>(lost), static_cast<long long>(duplicated), static_cast<long long>(errors.load()));
  std::printf("%s\n", j.dump().c_str());
  return lost == 0 && duplicated == 0 && errors == 0 ? 0 : 1;
}

}  // namespace

int cmd_bench(const Argv& argv) {
  if (!argv.empty() && argv[0] == "coordinator") return bench_coordinator(Argv(argv.begin() + 1, argv.end()));
  if (!argv.empty() && argv[0] == "ckpt") return bench_ckpt(Argv(argv.begin() + 1, argv.end()));
  if (!argv.empty() && argv[0] == "data") return bench_data(Argv(argv.begin() + 1, argv.end()));
  if (!argv.empty() && argv[0] == "step") return bench_step(Argv(argv.begin() + 1, argv.end()));
  if (!argv.empty() && argv[0] == "allreduce") return bench_allreduce(Argv(argv.begin() + 1, argv.end()));
  Args args("recur bench {data,step,allreduce,ckpt,coordinator} [options]",
            "Measure a hot path: data (loader tokens/s), step (training step time, REM share; under mpirun also\n"
            "all-reduce time and the fraction hidden behind backward), allreduce (collective latency/bandwidth),\n"
            "ckpt (checkpoint save time, MB/s and training stall, synchronous vs asynchronous), coordinator\n"
            "(dispatch latency and throughput with simulated agents).");
  return subcommand_error("bench", args, argv, {"data", "step", "allreduce", "ckpt", "coordinator"});
}

}  // namespace recur::cli
