// MPI communicator for CPU tensors. MPI is initialised with MPI_THREAD_MULTIPLE because the gradient
// reducer communicates from its own thread; errors return (MPI_ERRORS_RETURN) and become recur::Errors.
#include <mpi.h>
#include <torch/torch.h>

#include <cstdlib>

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
  explicit MpiCommunicator(const LaunchInfo& launch) : launch_(launch) {
    ensure_mpi_initialized();
    init();
  }
  // A duplicate of `parent` (MPI_Comm_dup, collective over its ranks).
  MpiCommunicator(const LaunchInfo& launch, MPI_Comm parent) : launch_(launch) {
    ensure_mpi_initialized();
    RECUR_MPI_CHECK(MPI_Comm_dup(parent, &comm_), rank_);
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
  void all_reduce_sum(torch::Tensor& t) override {
    check_cpu_contiguous(t, "all_reduce");
    MPI_Op op = t.scalar_type() == torch::kBFloat16 ? bf16_sum_op() : MPI_SUM;
    RECUR_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), op, comm_), rank_);
  }
  void broadcast(torch::Tensor& t, int root) override {
    check_cpu_contiguous(t, "broadcast");
    RECUR_MPI_CHECK(MPI_Bcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), root, comm_), rank_);
  }
  void barrier() override { RECUR_MPI_CHECK(MPI_Barrier(comm_), rank_); }
  torch::Tensor all_gather(const torch::Tensor& t) override {
    auto in = t.contiguous();
    check_cpu_contiguous(in, "all_gather");
    std::vector<int64_t> shape{world_};
    for (auto s : in.sizes()) shape.push_back(s);
    auto out = torch::empty(shape, in.options());
    RECUR_MPI_CHECK(MPI_Allgather(in.data_ptr(), static_cast<int>(in.numel()), mpi_type(in), out.data_ptr(),
                                  static_cast<int>(in.numel()), mpi_type(in), comm_), rank_);
    return out;
  }
  std::unique_ptr<Communicator> host_duplicate() override { return std::make_unique<MpiCommunicator>(launch_, comm_); }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  LaunchInfo launch_;
  MPI_Comm comm_ = MPI_COMM_WORLD;
  bool owned_ = false;
  int rank_ = 0, world_ = 1;
};

}  // namespace

void ensure_mpi_initialized() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
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

std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch) {
  return std::make_unique<MpiCommunicator>(launch);
}

std::unique_ptr<Communicator> make_mpi_duplicate_of_world(const LaunchInfo& launch) {
  return std::make_unique<MpiCommunicator>(launch, MPI_COMM_WORLD);
}

}  // namespace recur::parallel
