// NCCL communicator for CUDA tensors: one rank per GPU (the rank's local rank unless a device is given),
// the NCCL unique id broadcast from rank 0 over MPI (or torchrun's store: no MPI in a torchrun world),
// collectives on the current CUDA stream. Compiled only with NCCL. Init and every collective are waited for with the deadline; missing it ends the job.
#include <torch/torch.h>

#include "core/error.h"
#include "parallel/communicator.h"

#ifdef RECUR_HAVE_NCCL
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <string>

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

// RECUR_NCCL_TIMEOUT_S, when set, overrides train.collective_timeout_s for NCCL (init and collectives).
const char* const kTimeoutEnv = "RECUR_NCCL_TIMEOUT_S";

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const LaunchInfo& launch, const CommunicatorOptions& o)
      : launch_(launch), host_timeout_s_(o.timeout_s), timeout_s_(o.timeout_s) {
    if (const char* env = std::getenv(kTimeoutEnv)) {
      timeout_s_ = std::atof(env);
      timeout_key_ = kTimeoutEnv;
    }
    if (torchrun_) {
      rank_ = launch.rank;
      world_ = launch.world_size;
    } else {
      ensure_mpi_initialized();
      RECUR_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), rank_);
      RECUR_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_), rank_);
    }
    int devices = 0;
    RECUR_CUDA_CHECK(cudaGetDeviceCount(&devices), rank_);
    device_ = o.device_index >= 0 ? o.device_index : launch.local_rank;
    if (device_ >= devices) {
      if (o.device_index >= 0) fail("rank {}: CUDA device {} was asked for but this node has {} GPU(s)", rank_, device_, devices);
      fail("rank {} has local rank {} but this node has {} GPU(s): start one rank per GPU", rank_, launch.local_rank, devices);
    }
    RECUR_CUDA_CHECK(cudaSetDevice(device_), rank_);
    ncclUniqueId id;
    if (rank_ == 0) RECUR_NCCL_CHECK(ncclGetUniqueId(&id), rank_);
    if (torchrun_) {
      const std::string bytes = store_broadcast(launch, "recur/nccl_id",
                                                std::string(reinterpret_cast<const char*>(&id), sizeof(id)), host_timeout_s_);
      if (bytes.size() != sizeof(id)) fail("rank {}: the NCCL id in torchrun's store has {} bytes, not {}", rank_, bytes.size(), sizeof(id));
      std::memcpy(&id, bytes.data(), sizeof(id));
    } else {
      MPI_Request request;
      RECUR_MPI_CHECK(MPI_Ibcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD, &request), rank_);
      mpi_wait(request, rank_, world_, "MPI broadcast of the NCCL id", host_timeout_s_);
    }
    init_nccl(id);
  }
  ~NcclCommunicator() override {
    if (!comm_) return;
    // Finalizing waits for the peers' side of issued work: past the deadline, abort rather than hang.
    ncclResult_t state = ncclCommFinalize(comm_);
    Deadline deadline(timeout_s_);
    while (state == ncclInProgress && !deadline.expired()) {
      deadline.pause();
      if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
    }
    if (state == ncclSuccess) {
      ncclCommDestroy(comm_);
    } else {
      ncclCommAbort(comm_);
    }
  }
  std::string backend() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return launch_.local_rank; }
  double timeout_s() const override { return timeout_s_; }
  void all_reduce_sum(torch::Tensor& t) override {
    check(t, "all_reduce");
    wait("all_reduce", ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t), ncclSum,
                                     comm_, stream()));
  }
  void all_reduce_sum_enqueue(torch::Tensor& t) override {
    check(t, "all_reduce");
    wait("all_reduce", ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t), ncclSum,
                                     comm_, stream()), /*for_stream=*/false);
  }
  void broadcast(torch::Tensor& t, int root) override {
    check(t, "broadcast");
    wait("broadcast", ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t), root, comm_,
                                    stream()));
  }
  void barrier() override {
    auto one = torch::ones({1}, torch::TensorOptions().device(torch::kCUDA, static_cast<c10::DeviceIndex>(device_)));
    all_reduce_sum(one);
  }
  torch::Tensor all_gather(const torch::Tensor& t) override {
    auto in = t.contiguous();
    check(in, "all_gather");
    std::vector<int64_t> shape{world_};
    for (auto s : in.sizes()) shape.push_back(s);
    auto out = torch::empty(shape, in.options());
    wait("all_gather", ncclAllGather(in.data_ptr(), out.data_ptr(), static_cast<size_t>(in.numel()), nccl_type(in), comm_,
                                     stream()));
    return out;
  }
  std::unique_ptr<Communicator> host_duplicate() override {
    if (!torchrun_) return make_mpi_duplicate_of_world(launch_, host_timeout_s_);
    return gloo_available() ? make_gloo_communicator(launch_, host_timeout_s_)
                            : make_store_communicator(launch_, host_timeout_s_);
  }
  [[noreturn]] void abort(int code) override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    if (!torchrun_) MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  cudaStream_t stream() const {
    return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_)).stream();
  }
  void check(const torch::Tensor& t, const char* what) const {
    if (!t.is_cuda()) fail("NCCL communicator: {} needs a CUDA tensor on rank {}", what, rank_);
    if (!t.is_contiguous()) fail("internal error: NCCL {} on a non-contiguous tensor", what);
  }
  // Nonblocking init, so that a peer that never joins ends the job instead of hanging it.
  void init_nccl(const ncclUniqueId& id) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t state = ncclCommInitRankConfig(&comm_, world_, id, rank_, &config);
    if (state != ncclInProgress) RECUR_NCCL_CHECK(state, rank_);
    Deadline deadline(timeout_s_);
    while (true) {
      RECUR_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state), rank_);
      if (state != ncclInProgress) break;
      if (deadline.expired()) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        fail("{}", missed_deadline(rank_, world_, "NCCL init", timeout_s_, timeout_key_));
      }
      deadline.pause();
    }
    RECUR_NCCL_CHECK(state, rank_);
  }
  // Waits for the collective just launched (with result `launched`) with the deadline, so a dead peer
  // ends the job instead of hanging it. On a nonblocking communicator a collective may return
  // ncclInProgress before it is on the stream: the stream is queried only once the communicator is idle.
  // With for_stream false, waits only until the collective is on the stream (not for the GPU).
  void wait(const char* what, ncclResult_t launched, bool for_stream = true) {
    if (launched != ncclSuccess && launched != ncclInProgress) {
      fail("NCCL {} failed on rank {}: {} (hint: NCCL_DEBUG=INFO shows why; a peer rank may have died)", what, rank_,
           ncclGetErrorString(launched));
    }
    // Polled at least every 50 µs: the gradient reducer launches its next bucket only after this returns.
    Deadline deadline(timeout_s_, std::chrono::microseconds(50));
    while (true) {
      ncclResult_t state = ncclSuccess;
      RECUR_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state), rank_);
      if (state != ncclInProgress) {
        RECUR_NCCL_CHECK(state, rank_);
        if (!for_stream) return;
        cudaError_t q = cudaStreamQuery(stream());
        if (q == cudaSuccess) return;
        if (q != cudaErrorNotReady) RECUR_CUDA_CHECK(q, rank_);
      }
      if (deadline.expired()) {
        report_missed_deadline(rank_, world_, std::string("NCCL ") + what, timeout_s_, timeout_key_);
        abort(1);
      }
      deadline.pause();
    }
  }
  LaunchInfo launch_;
  bool torchrun_ = launch_.launcher == "torchrun";  // no MPI world: the store and Gloo instead
  double host_timeout_s_;  // the MPI companions' (train.collective_timeout_s; not the NCCL override)
  double timeout_s_;
  const char* timeout_key_ = "train.collective_timeout_s";
  int rank_ = 0, world_ = 1, device_ = 0;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

bool nccl_available() { return true; }
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, const CommunicatorOptions& o) {
  return std::make_unique<NcclCommunicator>(launch, o);
}

}  // namespace recur::parallel

#else

namespace recur::parallel {
bool nccl_available() { return false; }
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo&, const CommunicatorOptions&) {
  fail("this build of Recur has no NCCL (configure with CUDA and NCCL present to use train.backend=nccl)");
}
}  // namespace recur::parallel

#endif
