// Collective communication between the ranks of a job: all-reduce, broadcast, barrier, all-gather.
// Implementations: single process, MPI (CPU tensors), NCCL (CUDA tensors, bootstrapped over MPI).
// Invariant: every rank calls the same collectives in the same order; errors name the rank.
#pragma once

#include <memory>
#include <string>

#include <torch/types.h>

#include "parallel/launch.h"

namespace recur::parallel {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string backend() const = 0;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;
  virtual void all_reduce_sum(torch::Tensor& tensor) = 0;        // in place, contiguous
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;   // in place
  virtual void barrier() = 0;
  virtual torch::Tensor all_gather(const torch::Tensor& tensor) = 0;  // [world, ...tensor.shape]
  // An independent communicator over the same ranks for host-side work (CPU tensors) from another
  // thread, e.g. the asynchronous checkpoint writer: its collectives never interleave with this one's.
  // Collective: every rank calls it at the same point.
  virtual std::unique_ptr<Communicator> host_duplicate() = 0;
  // Ends the whole job after a fatal error on this rank (MPI_Abort; NCCL communicator abort).
  [[noreturn]] virtual void abort(int code) = 0;
};

// backend: "auto" (NCCL for CUDA devices when compiled in, else MPI when launched with more than one
// rank, else single), "mpi", "nccl" or "single". MPI is initialised here when a multi-rank backend
// is chosen.
std::unique_ptr<Communicator> make_communicator(const std::string& backend, const LaunchInfo& launch, bool cuda);

std::unique_ptr<Communicator> make_single_communicator();
std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch);
// An MPI communicator on a duplicate of MPI_COMM_WORLD (host-side companion of the NCCL communicator).
std::unique_ptr<Communicator> make_mpi_duplicate_of_world(const LaunchInfo& launch);
// Throws when this build has no NCCL.
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch);
bool nccl_available();

}  // namespace recur::parallel
