// The single-process communicator and the backend choice; see communicator.h.
#include "parallel/communicator.h"

#include <torch/torch.h>

#include <cstdlib>

#include "core/error.h"

namespace recur::parallel {
namespace {

class SingleCommunicator : public Communicator {
 public:
  explicit SingleCommunicator(double timeout_s) : timeout_s_(timeout_s) {}
  std::string backend() const override { return "single"; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  double timeout_s() const override { return timeout_s_; }
  void all_reduce_sum(torch::Tensor&) override {}
  void broadcast(torch::Tensor&, int) override {}
  void barrier() override {}
  torch::Tensor all_gather(const torch::Tensor& t) override { return t.unsqueeze(0).clone(); }
  std::unique_ptr<Communicator> host_duplicate() override { return std::make_unique<SingleCommunicator>(timeout_s_); }
  [[noreturn]] void abort(int code) override { std::_Exit(code); }

 private:
  double timeout_s_;
};

}  // namespace

std::unique_ptr<Communicator> make_single_communicator(double timeout_s) {
  return std::make_unique<SingleCommunicator>(timeout_s);
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend, const LaunchInfo& launch,
                                                const CommunicatorOptions& o) {
  if (o.timeout_s < 0) fail("train.collective_timeout_s = {} must be >= 0 (0 = no deadline)", o.timeout_s);
  if (backend == "single") {
    if (launch.world_size > 1) fail("train.backend=single but the launcher started {} ranks", launch.world_size);
    return make_single_communicator(o.timeout_s);
  }
  if (backend == "mpi") return make_mpi_communicator(launch, o.timeout_s);
  if (backend == "store") return make_store_communicator(launch, o.timeout_s);
  if (backend == "gloo") return make_gloo_communicator(launch, o.timeout_s);
  if (backend == "nccl") return make_nccl_communicator(launch, o);
  if (backend != "auto") fail("unknown communication backend '{}' (auto, mpi, gloo, store, nccl, single)", backend);
  // A world of one needs no MPI runtime, on a GPU either.
  if (launch.world_size <= 1) return make_single_communicator(o.timeout_s);
  if (o.cuda && nccl_available()) return make_nccl_communicator(launch, o);
  if (launch.launcher == "torchrun") {
    return gloo_available() ? make_gloo_communicator(launch, o.timeout_s) : make_store_communicator(launch, o.timeout_s);
  }
  return make_mpi_communicator(launch, o.timeout_s);
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend, const LaunchInfo& launch, bool cuda) {
  CommunicatorOptions o;
  o.cuda = cuda;
  return make_communicator(backend, launch, o);
}

}  // namespace recur::parallel
