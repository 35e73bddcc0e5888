// Host collectives for a torchrun world without MPI: c10d's Gloo process group (from LibTorch, compiled
// against Debian's gloo headers), and collectives through the rendezvous store itself (c10d TCPStore at
// MASTER_ADDR:MASTER_PORT) where Gloo is absent. Invariant: MPI is never initialised here.
#ifdef RECUR_HAVE_GLOO
#define USE_C10D_GLOO 1  // ProcessGroupGloo.hpp declares the class only under this macro
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "core/error.h"
#include "parallel/communicator.h"
#include "parallel/mpi_check.h"

namespace recur::parallel {
namespace {

const char* const kKey = "train.collective_timeout_s";

// 0 (no deadline) waits a year: c10d's stores have no "for ever".
std::chrono::milliseconds as_timeout(double timeout_s) {
  const double s = timeout_s > 0 ? timeout_s : 365.0 * 24 * 3600;
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
}

std::string env_or_fail(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) fail("{} is not set: a torchrun world meets at MASTER_ADDR:MASTER_PORT (start the ranks with torchrun)", name);
  return v;
}

// Runs a store call. An exception after the deadline is a missed deadline (one line, exit 1); before
// it, an error naming the rank and the operation.
template <class F>
auto with_deadline(int rank, int world, const std::string& what, double timeout_s, F&& f) -> decltype(f()) {
  const auto start = std::chrono::steady_clock::now();
  try {
    return f();
  } catch (const std::exception& e) {
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (timeout_s > 0 && waited >= 0.99 * timeout_s) {
      report_missed_deadline(rank, world, what, timeout_s, kKey);
      std::_Exit(1);
    }
    fail("{} failed on rank {} of {}: {} (hint: another rank may have died; check its log)", what, rank, world,
         std::string(e.what()).substr(0, 400));
  }
}

// This process's connection to the store, made once. torchrun's agent already serves MASTER_PORT when
// it sets TORCHELASTIC_USE_AGENT_STORE=True; otherwise rank 0 serves it. Keys live under recur/<restart>/.
c10::intrusive_ptr<c10d::Store> rendezvous_store(const LaunchInfo& launch, double timeout_s) {
  static std::mutex mutex;
  static c10::intrusive_ptr<c10d::Store> store;
  std::lock_guard<std::mutex> lock(mutex);
  if (store) return store;
  if (launch.launcher != "torchrun") {
    fail("rank {}: the store backend needs a torchrun world (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); this "
         "process was started by '{}'", launch.rank, launch.launcher);
  }
  const std::string host = env_or_fail("MASTER_ADDR");
  const std::string port = env_or_fail("MASTER_PORT");
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(std::stoi(port));
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  o.isServer = launch.rank == 0 && !(agent && std::string(agent) == "True");
  o.numWorkers = launch.world_size;
  o.waitWorkers = false;
  o.timeout = as_timeout(timeout_s);
  const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
  auto tcp = with_deadline(launch.rank, launch.world_size, "rendezvous at " + host + ":" + port, timeout_s,
                           [&] { return c10::make_intrusive<c10d::TCPStore>(host, o); });
  store = c10::make_intrusive<c10d::PrefixStore>(std::string("recur/") + (restart ? restart : "0"), tcp);
  return store;
}

std::vector<uint8_t> bytes_of(const torch::Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.data_ptr());
  return std::vector<uint8_t>(p, p + t.nbytes());
}

torch::Tensor tensor_of(const std::vector<uint8_t>& bytes, const torch::Tensor& like, int rank, int from) {
  if (bytes.size() != like.nbytes()) {
    fail("rank {}: rank {} sent {} bytes where {} were expected; every rank must call the same collectives", rank,
         from, bytes.size(), like.nbytes());
  }
  auto t = torch::empty_like(like);
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

void check_cpu_contiguous(const torch::Tensor& t, const char* what) {
  if (!t.device().is_cpu()) fail("store communicator: {} needs a CPU tensor (use the NCCL backend for CUDA)", what);
  if (!t.is_contiguous()) fail("internal error: store {} on a non-contiguous tensor", what);
}

// Collective number n of a communicator uses the keys n/<rank>: each rank sets its own, reads the
// others', then counts itself in n/done; the last to count deletes them, so the store stays small.
// What the torchrun-world communicators share: the launcher's place of this rank, the deadline, and an
// abort that can only end this process (peers see the closed connections, or reach their deadline).
class TorchrunCommunicator : public Communicator {
 public:
  TorchrunCommunicator(const LaunchInfo& launch, double timeout_s) : launch_(launch), timeout_s_(timeout_s) {}
  int rank() const override { return launch_.rank; }
  int world_size() const override { return launch_.world_size; }
  int local_rank() const override { return launch_.local_rank; }
  double timeout_s() const override { return timeout_s_; }
  [[noreturn]] void abort(int code) override {
    std::fflush(stderr);
    std::_Exit(code);
  }

 protected:
  LaunchInfo launch_;
  double timeout_s_;
};

class StoreCommunicator : public TorchrunCommunicator {
 public:
  StoreCommunicator(const LaunchInfo& launch, double timeout_s) : TorchrunCommunicator(launch, timeout_s) {
    auto world_store = rendezvous_store(launch, timeout_s);
    // Creation is collective and in the same order on every rank, so the n-th communicator of every
    // rank uses the same keys. Its own connection: a wait on one never blocks another's collectives.
    static std::atomic<int> created{0};
    const std::string prefix = "c" + std::to_string(created++);
    store_ = c10::make_intrusive<c10d::PrefixStore>(
        prefix, with_deadline(rank(), world_size(), "store connection", timeout_s_, [&] { return world_store->clone(); }));
  }
  std::string backend() const override { return "store"; }
  void all_reduce_sum(torch::Tensor& t) override {
    check_cpu_contiguous(t, "all_reduce");
    auto parts = exchange("store all_reduce", bytes_of(t), /*from=*/-1);
    // Summed in rank order, bf16 in fp32 and rounded back: every rank gets the same bits.
    const auto acc_type = t.scalar_type() == torch::kBFloat16 ? torch::kFloat32 : t.scalar_type();
    auto sum = tensor_of(parts[0], t, rank(), 0).to(acc_type);
    for (int r = 1; r < world_size(); ++r) sum.add_(tensor_of(parts[r], t, rank(), r).to(acc_type));
    t.copy_(sum);
  }
  void broadcast(torch::Tensor& t, int root) override {
    check_cpu_contiguous(t, "broadcast");
    auto parts = exchange("store broadcast", rank() == root ? bytes_of(t) : std::vector<uint8_t>{}, root);
    if (rank() != root) t.copy_(tensor_of(parts[0], t, rank(), root));
  }
  void barrier() override { exchange("store barrier", {}, -1); }
  torch::Tensor all_gather(const torch::Tensor& t) override {
    auto in = t.contiguous();
    check_cpu_contiguous(in, "all_gather");
    auto parts = exchange("store all_gather", bytes_of(in), -1);
    std::vector<torch::Tensor> all;
    for (int r = 0; r < world_size(); ++r) all.push_back(tensor_of(parts[r], in, rank(), r));
    return torch::stack(all);
  }
  std::unique_ptr<Communicator> host_duplicate() override {
    return std::make_unique<StoreCommunicator>(launch_, timeout_s_);
  }

 private:
  // from < 0: every rank contributes `mine` and gets all ranks' values; else only rank `from`
  // contributes, and every rank gets its value.
  std::vector<std::vector<uint8_t>> exchange(const std::string& what, const std::vector<uint8_t>& mine, int from) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string n = std::to_string(next_++) + "/";
    std::vector<std::string> keys;
    for (int r = 0; r < world_size(); ++r) {
      if (from < 0 || r == from) keys.push_back(n + std::to_string(r));
    }
    return with_deadline(rank(), world_size(), what, timeout_s_, [&] {
      if (from < 0 || rank() == from) store_->set(n + std::to_string(rank()), mine);
      store_->wait(keys, as_timeout(timeout_s_));
      auto values = store_->multiGet(keys);
      if (store_->add(n + "done", 1) == world_size()) {
        for (const auto& k : keys) store_->deleteKey(k);
        store_->deleteKey(n + "done");
      }
      return values;
    });
  }
  c10::intrusive_ptr<c10d::Store> store_;
  std::mutex mutex_;
  int64_t next_ = 0;
};

#ifdef RECUR_HAVE_GLOO
// c10d's ProcessGroupGloo over the rendezvous store: tensors travel between the ranks directly (TCP,
// ring algorithms), the store only carries the rendezvous. Every collective waits with the deadline
// (Gloo's own timeout, then the same one-line report as MPI and the store).
class GlooCommunicator : public TorchrunCommunicator {
 public:
  GlooCommunicator(const LaunchInfo& launch, double timeout_s) : TorchrunCommunicator(launch, timeout_s) {
    auto world_store = rendezvous_store(launch, timeout_s);
    static std::atomic<int> created{0};  // collective creation: the n-th group of every rank meets under gn/
    const std::string prefix = "g" + std::to_string(created++);
    pg_ = with_deadline(rank(), world_size(), "gloo rendezvous", timeout_s_, [&] {
      auto options = c10d::ProcessGroupGloo::Options::create(as_timeout(timeout_s_));
      options->devices.push_back(device());
      options->threads = 1;
      auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, world_store->clone());
      return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank(), world_size(), options);
    });
  }
  std::string backend() const override { return "gloo"; }
  void all_reduce_sum(torch::Tensor& t) override {
    check_cpu_contiguous(t, "all_reduce");
    std::vector<torch::Tensor> ts{t};
    run("gloo all_reduce", [&] { return pg_->allreduce(ts); });
  }
  void broadcast(torch::Tensor& t, int root) override {
    check_cpu_contiguous(t, "broadcast");
    std::vector<torch::Tensor> ts{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    run("gloo broadcast", [&] { return pg_->broadcast(ts, o); });
  }
  void barrier() override {
    run("gloo barrier", [&] { return pg_->barrier(); });
  }
  torch::Tensor all_gather(const torch::Tensor& t) override {
    auto in = t.contiguous();
    check_cpu_contiguous(in, "all_gather");
    std::vector<std::vector<torch::Tensor>> out(1);
    for (int r = 0; r < world_size(); ++r) out[0].push_back(torch::empty_like(in));
    std::vector<torch::Tensor> ins{in};
    run("gloo all_gather", [&] { return pg_->allgather(out, ins); });
    return torch::stack(out[0]);
  }
  std::unique_ptr<Communicator> host_duplicate() override {
    return std::make_unique<GlooCommunicator>(launch_, timeout_s_);
  }

 private:
  // GLOO_SOCKET_IFNAME (the first interface it lists), as in PyTorch; else this host's name, falling
  // back to the loopback when it does not resolve.
  static std::shared_ptr<::gloo::transport::Device> device() {
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname) {
      std::string first(ifname);
      first = first.substr(0, first.find(','));
      return c10d::ProcessGroupGloo::createDeviceForInterface(first);
    }
    return c10d::ProcessGroupGloo::createDefaultDevice();
  }
  template <class F>
  void run(const std::string& what, F&& start) {
    std::lock_guard<std::mutex> lock(mutex_);
    with_deadline(rank(), world_size(), what, timeout_s_, [&] {
      start()->wait();
      return 0;
    });
  }
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
  std::mutex mutex_;
};
#endif

}  // namespace

bool gloo_available() {
#ifdef RECUR_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_gloo_communicator(const LaunchInfo& launch, double timeout_s) {
#ifdef RECUR_HAVE_GLOO
  return std::make_unique<GlooCommunicator>(launch, timeout_s);
#else
  (void)launch;
  (void)timeout_s;
  fail("train.backend=gloo: this build has no Gloo (Debian's libgloo-dev headers were not found when it was "
       "configured; run scripts/setup and rebuild, or use train.backend=store)");
#endif
}

std::unique_ptr<Communicator> make_store_communicator(const LaunchInfo& launch, double timeout_s) {
  return std::make_unique<StoreCommunicator>(launch, timeout_s);
}

std::string store_broadcast(const LaunchInfo& launch, const std::string& key, const std::string& bytes, double timeout_s) {
  auto store = rendezvous_store(launch, timeout_s);
  if (launch.rank == 0) {
    with_deadline(launch.rank, launch.world_size, "store set of " + key, timeout_s, [&] {
      store->set(key, std::vector<uint8_t>(bytes.begin(), bytes.end()));
      return 0;
    });
    return bytes;
  }
  auto got = with_deadline(launch.rank, launch.world_size, "store get of " + key, timeout_s, [&] {
    store->wait({key}, as_timeout(timeout_s));
    return store->get(key);
  });
  return std::string(got.begin(), got.end());
}

}  // namespace recur::parallel
