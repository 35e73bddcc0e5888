// NCCL communicator for CUDA tensors: one rank per GPU (the rank's local rank), the NCCL unique id
// broadcast over MPI from rank 0, collectives on the current CUDA stream. Compiled only with NCCL.
#include <torch/torch.h>

#include "core/error.h"
#include "parallel/communicator.h"

#ifdef RECUR_HAVE_NCCL
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "parallel/mpi_check.h"

#define RECUR_CUDA_CHECK(call, rank)                                                                      \
  do {                                                                                                    \
    cudaError_t recur_cuda_rc_ = (call);                                                                  \
    if (recur_cuda_rc_ != cudaSuccess) {                                                                  \
      ::recur::fail("CUDA call {} failed at {}:{} on rank {}: {} (hint: check the GPU is visible and not " \
                    "in use: nvidia-smi, CUDA_VISIBLE_DEVICES)",                                          \
                    #call, __FILE__, __LINE__, (rank), cudaGetErrorString(recur_cuda_rc_));               \
    }                                                                                                     \
  } while (0)

#define RECUR_NCCL_CHECK(call, rank)                                                                         \
  do {                                                                                                       \
    ncclResult_t recur_nccl_rc_ = (call);                                                                    \
    if (recur_nccl_rc_ != ncclSuccess) {                                                                     \
      ::recur::fail("NCCL call {} failed at {}:{} on rank {}: {} (hint: NCCL_DEBUG=INFO shows why; a peer rank " \
                    "may have died)",                                                                        \
                    #call, __FILE__, __LINE__, (rank), ncclGetErrorString(recur_nccl_rc_));                  \
    }                                                                                                        \
  } while (0)

namespace recur::parallel {
namespace {

ncclDataType_t nccl_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kFloat16: return ncclFloat16;
    case torch::kInt64: return ncclInt64;
    case torch::kInt32: return ncclInt32;
    case torch::kUInt8: return ncclUint8;
    default: fail("NCCL communicator: unsupported dtype {}", std::string(c10::toString(t.scalar_type())));
  }
}

class NcclCommunicator : public Communicator {
 public:
  explicit NcclCommunicator(const LaunchInfo& launch) : launch_(launch) {
    ensure_mpi_initialized();
    RECUR_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), rank_);
    RECUR_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_), rank_);
    int devices = 0;
    RECUR_CUDA_CHECK(cudaGetDeviceCount(&devices), rank_);
    if (launch.local_rank >= devices) {
      fail("rank {} has local rank {} but this node has {} GPU(s): start one rank per GPU", rank_, launch.local_rank, devices);
    }
    RECUR_CUDA_CHECK(cudaSetDevice(launch.local_rank), rank_);
    ncclUniqueId id;
    if (rank_ == 0) RECUR_NCCL_CHECK(ncclGetUniqueId(&id), rank_);
    RECUR_MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD), rank_);
    RECUR_NCCL_CHECK(ncclCommInitRank(&comm_, world_, id, rank_), rank_);
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  std::string backend() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return launch_.local_rank; }
  void all_reduce_sum(torch::Tensor& t) override {
    check(t, "all_reduce");
    RECUR_NCCL_CHECK(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t), ncclSum, comm_,
                                   stream()), rank_);
    wait("all_reduce");
  }
  void broadcast(torch::Tensor& t, int root) override {
    check(t, "broadcast");
    RECUR_NCCL_CHECK(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t), root, comm_,
                                   stream()), rank_);
    wait("broadcast");
  }
  void barrier() override {
    auto one = torch::ones({1}, torch::TensorOptions().device(torch::kCUDA, launch_.local_rank));
    all_reduce_sum(one);
  }
  torch::Tensor all_gather(const torch::Tensor& t) override {
    auto in = t.contiguous();
    check(in, "all_gather");
    std::vector<int64_t> shape{world_};
    for (auto s : in.sizes()) shape.push_back(s);
    auto out = torch::empty(shape, in.options());
    RECUR_NCCL_CHECK(ncclAllGather(in.data_ptr(), out.data_ptr(), static_cast<size_t>(in.numel()), nccl_type(in), comm_,
                                   stream()), rank_);
    wait("all_gather");
    return out;
  }
  std::unique_ptr<Communicator> host_duplicate() override { return make_mpi_duplicate_of_world(launch_); }
  [[noreturn]] void abort(int code) override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  cudaStream_t stream() const { return c10::cuda::getCurrentCUDAStream(launch_.local_rank).stream(); }
  void check(const torch::Tensor& t, const char* what) const {
    if (!t.is_cuda()) fail("NCCL communicator: {} needs a CUDA tensor on rank {}", what, rank_);
    if (!t.is_contiguous()) fail("internal error: NCCL {} on a non-contiguous tensor", what);
  }
  // Waits for the collective with a timeout, so a dead peer ends the job instead of hanging it.
  void wait(const char* what) {
    const char* env = std::getenv("RECUR_NCCL_TIMEOUT_S");
    const double timeout = env ? std::atof(env) : 600.0;
    auto start = std::chrono::steady_clock::now();
    while (true) {
      cudaError_t q = cudaStreamQuery(stream());
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) RECUR_CUDA_CHECK(q, rank_);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess) RECUR_NCCL_CHECK(async, rank_);
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout) {
        std::fprintf(stderr, "rank %d: NCCL %s did not finish within %.0f s (RECUR_NCCL_TIMEOUT_S); aborting the job\n", rank_,
                     what, timeout);
        abort(3);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  LaunchInfo launch_;
  int rank_ = 0, world_ = 1;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

bool nccl_available() { return true; }
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch) {
  return std::make_unique<NcclCommunicator>(launch);
}

}  // namespace recur::parallel

#else

namespace recur::parallel {
bool nccl_available() { return false; }
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo&) {
  fail("this build of Recur has no NCCL (configure with CUDA and NCCL present to use train.backend=nccl)");
}
}  // namespace recur::parallel

#endif
