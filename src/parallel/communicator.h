// Collective communication between the ranks of a job: all-reduce, broadcast, barrier, all-gather.
// Implementations: single process, MPI (CPU tensors), Gloo (CPU tensors, c10d's process group in a
// torchrun world), store (CPU tensors through torchrun's TCPStore itself, where Gloo is absent), NCCL (CUDA tensors, bootstrapped over MPI, or over torchrun's store in a torchrun world).
// Invariant: every rank calls the same collectives in the same order; errors name the rank.
#pragma once

#include <memory>
#include <string>

#include <torch/types.h>

#include "parallel/launch.h"

namespace recur::parallel {

struct CommunicatorOptions {
  bool cuda = false;        // this rank trains on a CUDA device
  int device_index = -1;    // CUDA device for NCCL (-1: the local rank, one rank per GPU)
  double timeout_s = 600;   // deadline of every collective and of NCCL init; 0 = none
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string backend() const = 0;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;
  // A collective not complete this many seconds after this rank entered it ends the whole job with
  // one line naming the rank and the operation (a stopped or lost peer must not hang it); 0 = never.
  virtual double timeout_s() const = 0;
  virtual void all_reduce_sum(torch::Tensor& tensor) = 0;        // in place, contiguous
  // The same sum, only started: NCCL enqueues it on the current CUDA stream and returns without
  // waiting for the GPU (the caller orders later work on that stream, e.g. with an event); host
  // communicators complete it before returning.
  virtual void all_reduce_sum_enqueue(torch::Tensor& tensor) { all_reduce_sum(tensor); }
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;   // in place
  virtual void barrier() = 0;
  virtual torch::Tensor all_gather(const torch::Tensor& tensor) = 0;  // [world, ...tensor.shape]
  // An independent communicator over the same ranks for host-side work (CPU tensors) from another
  // thread, e.g. the asynchronous checkpoint writer: its collectives never interleave with this one's.
  // Same timeout. Collective: every rank calls it at the same point.
  virtual std::unique_ptr<Communicator> host_duplicate() = 0;
  // Ends the whole job after a fatal error on this rank (MPI_Abort; NCCL communicator abort).
  [[noreturn]] virtual void abort(int code) = 0;
};

// backend: "auto" (a world of one: single; several ranks: NCCL for CUDA devices when compiled in,
// else MPI, or Gloo (the store where this build has no Gloo) when torchrun started the ranks), "mpi",
// "gloo", "store", "nccl" or "single". MPI is
// initialised here when an MPI-based backend is chosen, never in a torchrun world.
std::unique_ptr<Communicator> make_communicator(const std::string& backend, const LaunchInfo& launch,
                                                const CommunicatorOptions& o);
// Default options but for `cuda`; goes once its callers pass CommunicatorOptions.
std::unique_ptr<Communicator> make_communicator(const std::string& backend, const LaunchInfo& launch, bool cuda);

std::unique_ptr<Communicator> make_single_communicator(double timeout_s = CommunicatorOptions{}.timeout_s);
std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch, double timeout_s);
// An MPI communicator on a duplicate of MPI_COMM_WORLD (host-side companion of the NCCL communicator).
std::unique_ptr<Communicator> make_mpi_duplicate_of_world(const LaunchInfo& launch, double timeout_s);
// Collectives through torchrun's rendezvous store (c10d TCPStore at MASTER_ADDR:MASTER_PORT): every
// byte passes through the store's server, so fit for host control traffic and small CPU models.
// Needs a torchrun world: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
std::unique_ptr<Communicator> make_store_communicator(const LaunchInfo& launch, double timeout_s);
// c10d's ProcessGroupGloo, meeting through the same rendezvous store; tensors go between the ranks
// directly. Needs a torchrun world. Throws when this build has no Gloo.
std::unique_ptr<Communicator> make_gloo_communicator(const LaunchInfo& launch, double timeout_s);
bool gloo_available();
// In a torchrun world: rank 0's `bytes` under `key` in the rendezvous store, read by every rank
// (the others wait for it with the deadline).
std::string store_broadcast(const LaunchInfo& launch, const std::string& key, const std::string& bytes, double timeout_s);
// Throws when this build has no NCCL.
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, const CommunicatorOptions& o);
bool nccl_available();

}  // namespace recur::parallel
