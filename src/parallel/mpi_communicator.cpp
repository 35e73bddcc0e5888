// MPI communicator for CPU tensors. MPI is initialised with MPI_THREAD_MULTIPLE because the gradient
// reducer communicates from its own thread; errors return (MPI_ERRORS_RETURN) and become recur::Errors.
// Collectives are nonblocking operations waited for with a deadline, so a stopped peer ends the job.
#include <mpi.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/error.h"
#include "parallel/communicator.h"
#include "parallel/mpi_check.h"

namespace recur::parallel {
namespace {

// bf16 has no MPI type: it travels as 16-bit words and is summed by a user-defined operation
// (in fp32, rounded back to bf16 to nearest even, as a bf16 all-reduce on NCCL does).
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<const c10::BFloat16*>(in);
  auto* b = static_cast<c10::BFloat16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = c10::BFloat16(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

MPI_Op bf16_sum_op() {
  static MPI_Op op = [] {
    MPI_Op o;
    MPI_Op_create(&bf16_sum, /*commute=*/1, &o);
    return o;
  }();
  return op;
}

MPI_Datatype mpi_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kBFloat16: return MPI_UINT16_T;
    case torch::kFloat32: return MPI_FLOAT;
    case torch::kFloat64: return MPI_DOUBLE;
    case torch::kInt64: return MPI_INT64_T;
    case torch::kInt32: return MPI_INT32_T;
    case torch::kUInt8: return MPI_UINT8_T;
    default: fail("MPI communicator: unsupported dtype {}", std::string(c10::toString(t.scalar_type())));
  }
}

void check_cpu_contiguous(const torch::Tensor& t, const char* what) {
  if (!t.device().is_cpu()) fail("MPI communicator: {} needs a CPU tensor (use the NCCL backend for CUDA)", what);
  if (!t.is_contiguous()) fail("internal error: MPI {} on a non-contiguous tensor", what);
}

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(const LaunchInfo& launch, double timeout_s) : launch_(launch), timeout_s_(timeout_s) {
    ensure_mpi_initialized();
    init();
  }
  // A duplicate of `parent` (MPI_Comm_idup, collective over its ranks, with the deadline).
  MpiCommunicator(const LaunchInfo& launch, double timeout_s, MPI_Comm parent) : launch_(launch), timeout_s_(timeout_s) {
    ensure_mpi_initialized();
    RECUR_MPI_CHECK(MPI_Comm_rank(parent, &rank_), rank_);
    RECUR_MPI_CHECK(MPI_Comm_size(parent, &world_), rank_);
    MPI_Request request;
    RECUR_MPI_CHECK(MPI_Comm_idup(parent, &comm_, &request), rank_);
    mpi_wait(request, rank_, world_, "MPI communicator duplication", timeout_s_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    owned_ = true;
    init();
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  void init() {
    RECUR_MPI_CHECK(MPI_Comm_rank(comm_, &rank_), rank_);
    RECUR_MPI_CHECK(MPI_Comm_size(comm_, &world_), rank_);
    if (launch_.world_size != world_ && launch_.launcher != "none") {
      fail("rank {}: the launcher says {} ranks ({}), MPI says {}; start every rank with the same launcher", rank_,
           launch_.world_size, launch_.launcher, world_);
    }
  }
  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return launch_.local_rank; }
  double timeout_s() const override { return timeout_s_; }
  void all_reduce_sum(torch::Tensor& t) override {
    check_cpu_contiguous(t, "all_reduce");
    MPI_Op op = t.scalar_type() == torch::kBFloat16 ? bf16_sum_op() : MPI_SUM;
    MPI_Request request;
    RECUR_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), op, comm_, &request),
                    rank_);
    mpi_wait(request, rank_, world_, "MPI all_reduce", timeout_s_);
  }
  void broadcast(torch::Tensor& t, int root) override {
    check_cpu_contiguous(t, "broadcast");
    MPI_Request request;
    RECUR_MPI_CHECK(MPI_Ibcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), root, comm_, &request), rank_);
    mpi_wait(request, rank_, world_, "MPI broadcast", timeout_s_);
  }
  void barrier() override {
    MPI_Request request;
    RECUR_MPI_CHECK(MPI_Ibarrier(comm_, &request), rank_);
    mpi_wait(request, rank_, world_, "MPI barrier", timeout_s_);
  }
  torch::Tensor all_gather(const torch::Tensor& t) override {
    auto in = t.contiguous();
    check_cpu_contiguous(in, "all_gather");
    std::vector<int64_t> shape{world_};
    for (auto s : in.sizes()) shape.push_back(s);
    auto out = torch::empty(shape, in.options());
    MPI_Request request;
    RECUR_MPI_CHECK(MPI_Iallgather(in.data_ptr(), static_cast<int>(in.numel()), mpi_type(in), out.data_ptr(),
                                   static_cast<int>(in.numel()), mpi_type(in), comm_, &request), rank_);
    mpi_wait(request, rank_, world_, "MPI all_gather", timeout_s_);
    return out;
  }
  std::unique_ptr<Communicator> host_duplicate() override {
    return std::make_unique<MpiCommunicator>(launch_, timeout_s_, comm_);
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  LaunchInfo launch_;
  double timeout_s_;
  MPI_Comm comm_ = MPI_COMM_WORLD;
  bool owned_ = false;
  int rank_ = 0, world_ = 1;
};

}  // namespace

void ensure_mpi_initialized() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  // Below 4 ranks or in place, Open MPI's nonblocking all-reduce takes a binomial tree: half the speed
  // of its blocking one on 1-16 MiB. Reduce-scatter + all-gather (ring where it does not apply)
  // matches the blocking one. A value set by the user wins.
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", /*overwrite=*/0);
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
    fail("MPI_Init_thread failed; was this process started by mpirun or srun --mpi=pmix?");
  }
  if (provided < MPI_THREAD_MULTIPLE) {
    fail("this MPI library does not provide MPI_THREAD_MULTIPLE (got level {}); the gradient reducer needs it", provided);
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  std::atexit([] {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  });
}

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, static_cast<size_t>(len));
}

Deadline::Deadline(double timeout_s, std::chrono::microseconds max_sleep)
    : start_(std::chrono::steady_clock::now()), timeout_s_(timeout_s), max_sleep_(max_sleep) {}

bool Deadline::expired() const {
  return timeout_s_ > 0 &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() > timeout_s_;
}

void Deadline::pause() {
  // Spin for the first 200 µs: a collective whose peers are there needs this rank's tests to move
  // from one round to the next (MPI progresses nonblocking collectives inside MPI_Test). Then sleep
  // a tenth of the time waited so far: noticing completion late adds at most ~10% to a long wait.
  const auto waited = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_);
  if (waited < std::chrono::microseconds(200)) return;
  std::this_thread::sleep_for(std::clamp(waited / 10, std::chrono::microseconds(4), max_sleep_));
}

std::string missed_deadline(int rank, int world, const std::string& what, double timeout_s, const char* key) {
  return fmt::format("rank {} of {}: {} did not complete within {} s ({}): another rank has stopped, died, or is far behind",
                     rank, world, what, timeout_s, key);
}

void report_missed_deadline(int rank, int world, const std::string& what, double timeout_s, const char* key) {
  std::fprintf(stderr, "recur: %s\n", missed_deadline(rank, world, what, timeout_s, key).c_str());
  std::fflush(stderr);
}

void mpi_wait(MPI_Request& request, int rank, int world, const std::string& what, double timeout_s) {
  Deadline deadline(timeout_s);
  while (true) {
    int done = 0;
    const int rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      fail("{} failed on rank {}: {} (hint: another rank may have died; check its log)", what, rank, mpi_error_string(rc));
    }
    if (done) return;
    if (deadline.expired()) {
      report_missed_deadline(rank, world, what, timeout_s, "train.collective_timeout_s");
      MPI_Abort(MPI_COMM_WORLD, 1);
      std::_Exit(1);
    }
    deadline.pause();
  }
}

std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch, double timeout_s) {
  return std::make_unique<MpiCommunicator>(launch, timeout_s);
}

std::unique_ptr<Communicator> make_mpi_duplicate_of_world(const LaunchInfo& launch, double timeout_s) {
  return std::make_unique<MpiCommunicator>(launch, timeout_s, MPI_COMM_WORLD);
}

}  // namespace recur::parallel
