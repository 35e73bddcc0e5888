// Data-parallel gradient reduction in the spirit of DDP: gradients grouped into buckets in reverse
// registration order; a bucket's all-reduce starts (on a communication thread, or a CUDA stream with
// NCCL) as soon as backward has produced its last gradient, so communication overlaps backward.
// Invariant: buckets are launched in index order on every rank, so collectives always match up.
// After the first synchronised step the buckets are rebuilt in the order in which that step's
// gradients arrived (rank 0's order, broadcast), parameters that got none last: a bucket that would
// become ready out of order, or never, no longer holds back the buckets behind it.
// On CUDA the host never waits for the GPU: each all-reduce is enqueued on a communication stream,
// and finalize() makes the compute stream wait on that stream's events.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <c10/core/Event.h>
#include <c10/core/Stream.h>
#include <torch/types.h>

namespace recur::parallel {

class Communicator;

struct ReducerOptions {
  double first_bucket_mb = 1.0;   // small first bucket: the last layers' gradients go out early
  double bucket_mb = 25.0;
  bool reduce_bf16 = false;       // buckets in bf16 (half the traffic); default fp32 reduction
};

struct ReducerStats {
  double reduce_seconds = 0;      // time spent inside all-reduce calls (communication thread)
  double exposed_seconds = 0;     // time finalize() waited for communication after backward ended
};

class Reducer {
 public:
  Reducer(std::vector<torch::Tensor> params, Communicator& comm, ReducerOptions options);
  ~Reducer();
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  // Call before the backward of the last micro-step of an optimizer step; earlier micro-steps just
  // accumulate gradients locally (no communication).
  void prepare_for_sync();
  // After that backward: launches what is left and replaces every gradient by its mean over ranks.
  // CPU: returns when the reduction is done. CUDA: returns once every all-reduce is enqueued; the
  // current stream waits for them (no host synchronisation).
  void finalize();

  // Bucket layout: bucket index of every parameter (in the order given to the constructor).
  const std::vector<int64_t>& bucket_of() const { return bucket_of_; }
  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  ReducerStats take_stats();

 private:
  struct Bucket {
    std::vector<int64_t> params;   // indices into params_
    std::vector<int64_t> offsets;  // element offset of each parameter in flat
    torch::Tensor flat;            // the bucket's gradients, contiguous (fp32, or bf16 with reduce_bf16)
    int64_t pending = 0;
    bool launched = false;
    std::unique_ptr<c10::Event> ready;    // CUDA: recorded on the producing stream when the bucket is full
    std::unique_ptr<c10::Event> reduced;  // CUDA: recorded on the communication stream after its all-reduce
  };
  // Groups the parameters, in `order`, into buckets (the first one of first_bucket_mb).
  void build_buckets(const std::vector<int64_t>& order);
  // After the first synchronised step: rebuilds the buckets in gradient arrival order (rank 0's).
  void rebuild_in_arrival_order();
  void on_grad(int64_t param, const torch::Tensor& grad);
  void launch_ready_locked();
  void comm_loop();

  std::vector<torch::Tensor> params_;
  Communicator& comm_;
  bool cuda_ = false;
  std::optional<c10::Stream> comm_stream_;  // CUDA: the all-reduces run here, beside backward
  std::vector<Bucket> buckets_;
  std::vector<int64_t> bucket_of_, slot_of_;
  std::vector<bool> got_grad_;
  ReducerOptions options_;
  std::vector<int64_t> arrival_;  // parameter indices in the order their gradients arrived
  bool rebuilt_ = false;
  bool syncing_ = false;
  int64_t next_launch_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int64_t> queue_;
  int64_t done_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  ReducerStats stats_;
  std::thread worker_;
};

}  // namespace recur::parallel
