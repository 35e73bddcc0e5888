// The single-process communicator and the backend choice; see communicator.h.
#include "parallel/communicator.h"

#include <torch/torch.h>

#include <cstdlib>

#include "core/error.h"

namespace recur::parallel {
namespace {

class SingleCommunicator : public Communicator {
 public:
  std::string backend() const override { return "single"; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  void all_reduce_sum(torch::Tensor&) override {}
  void broadcast(torch::Tensor&, int) override {}
  void barrier() override {}
  torch::Tensor all_gather(const torch::Tensor& t) override { return t.unsqueeze(0).clone(); }
  std::unique_ptr<Communicator> host_duplicate() override { return std::make_unique<SingleCommunicator>(); }
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

}  // namespace

std::unique_ptr<Communicator> make_single_communicator() { return std::make_unique<SingleCommunicator>(); }

std::unique_ptr<Communicator> make_communicator(const std::string& backend, const LaunchInfo& launch, bool cuda) {
  if (backend == "single") {
    if (launch.world_size > 1) fail("train.backend=single but the launcher started {} ranks", launch.world_size);
    return make_single_communicator();
  }
  if (backend == "mpi") return make_mpi_communicator(launch);
  if (backend == "nccl") return make_nccl_communicator(launch);
  if (backend != "auto") fail("unknown communication backend '{}' (auto, mpi, nccl, single)", backend);
  if (cuda && nccl_available()) return make_nccl_communicator(launch);
  if (launch.world_size > 1) return make_mpi_communicator(launch);
  return make_single_communicator();
}

}  // namespace recur::parallel
