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

MPI_Datatype mpi_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
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
    RECUR_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), rank_);
    RECUR_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_), rank_);
    if (launch.world_size != world_ && launch.launcher != "none") {
      fail("rank {}: the launcher says {} ranks ({}), MPI says {}; start every rank with the same launcher", rank_,
           launch.world_size, launch.launcher, world_);
    }
  }
  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return launch_.local_rank; }
  void all_reduce_sum(torch::Tensor& t) override {
    check_cpu_contiguous(t, "all_reduce");
    RECUR_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), MPI_SUM,
                                  MPI_COMM_WORLD), rank_);
  }
  void broadcast(torch::Tensor& t, int root) override {
    check_cpu_contiguous(t, "broadcast");
    RECUR_MPI_CHECK(MPI_Bcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), root, MPI_COMM_WORLD), rank_);
  }
  void barrier() override { RECUR_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD), rank_); }
  torch::Tensor all_gather(const torch::Tensor& t) override {
    auto in = t.contiguous();
    check_cpu_contiguous(in, "all_gather");
    std::vector<int64_t> shape{world_};
    for (auto s : in.sizes()) shape.push_back(s);
    auto out = torch::empty(shape, in.options());
    RECUR_MPI_CHECK(MPI_Allgather(in.data_ptr(), static_cast<int>(in.numel()), mpi_type(in), out.data_ptr(),
                                  static_cast<int>(in.numel()), mpi_type(in), MPI_COMM_WORLD), rank_);
    return out;
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  LaunchInfo launch_;
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

}  // namespace recur::parallel
