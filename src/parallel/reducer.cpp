// See reducer.h.
#include "parallel/reducer.h"

#include <c10/core/StreamGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/torch.h>

#include <chrono>

#include "core/error.h"
#include "parallel/communicator.h"

namespace recur::parallel {

Reducer::Reducer(std::vector<torch::Tensor> params, Communicator& comm, ReducerOptions options)
    : params_(std::move(params)), comm_(comm), options_(options) {
  const int64_t n = static_cast<int64_t>(params_.size());
  got_grad_.assign(static_cast<size_t>(n), false);
  // Reverse registration order approximates the order in which backward produces gradients, until
  // the first step shows the real one.
  std::vector<int64_t> order;
  for (int64_t i = n - 1; i >= 0; --i) order.push_back(i);
  build_buckets(order);
  if (!params_.empty() && params_.front().is_cuda()) {
    // A stream of its own for the all-reduces, so they overlap the rest of backward on the GPU.
    cuda_ = true;
    comm_stream_ = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)
                       ->getStreamFromGlobalPool(params_.front().device(), /*isHighPriority=*/true);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (bucket_of_[static_cast<size_t>(i)] < 0) continue;
    params_[static_cast<size_t>(i)].register_hook([this, i](torch::Tensor grad) {
      on_grad(i, grad);
      return grad;
    });
  }
  worker_ = std::thread([this] { comm_loop(); });
}

void Reducer::build_buckets(const std::vector<int64_t>& order) {
  buckets_.clear();
  bucket_of_.assign(params_.size(), -1);
  slot_of_.assign(params_.size(), -1);
  double cap = options_.first_bucket_mb;
  Bucket current;
  int64_t bytes = 0;
  for (int64_t i : order) {
    const auto& p = params_[static_cast<size_t>(i)];
    if (!p.requires_grad()) continue;
    int64_t b = p.numel() * (options_.reduce_bf16 ? 2 : static_cast<int64_t>(p.element_size()));
    if (!current.params.empty() && static_cast<double>(bytes + b) > cap * 1024 * 1024) {
      buckets_.push_back(std::move(current));
      current = Bucket();
      bytes = 0;
      cap = options_.bucket_mb;
    }
    current.params.push_back(i);
    bytes += b;
  }
  if (!current.params.empty()) buckets_.push_back(std::move(current));
  for (size_t k = 0; k < buckets_.size(); ++k) {
    Bucket& bucket = buckets_[k];
    int64_t total = 0;
    for (size_t s = 0; s < bucket.params.size(); ++s) {
      int64_t i = bucket.params[s];
      bucket_of_[static_cast<size_t>(i)] = static_cast<int64_t>(k);
      slot_of_[static_cast<size_t>(i)] = static_cast<int64_t>(s);
      bucket.offsets.push_back(total);
      total += params_[static_cast<size_t>(i)].numel();
    }
    const auto& first = params_[static_cast<size_t>(bucket.params.front())];
    auto opts = first.options().requires_grad(false);
    if (options_.reduce_bf16) opts = opts.dtype(torch::kBFloat16);
    bucket.flat = torch::zeros({total}, opts);
    if (first.is_cuda()) {
      bucket.ready = std::make_unique<c10::Event>(c10::DeviceType::CUDA);
      bucket.reduced = std::make_unique<c10::Event>(c10::DeviceType::CUDA);
    }
  }
}

void Reducer::rebuild_in_arrival_order() {
  rebuilt_ = true;
  std::vector<int64_t> order;
  std::vector<bool> seen(params_.size(), false);
  for (int64_t i : arrival_) {
    if (!seen[static_cast<size_t>(i)]) order.push_back(i);
    seen[static_cast<size_t>(i)] = true;
  }
  for (int64_t i = static_cast<int64_t>(params_.size()) - 1; i >= 0; --i) {  // no gradient: last
    if (!seen[static_cast<size_t>(i)]) order.push_back(i);
  }
  arrival_.clear();
  // Every rank must use the same order (arrival can differ between ranks): rank 0's.
  if (comm_.world_size() > 1) {
    auto t = torch::tensor(order, torch::kInt64).to(params_.front().device());
    comm_.broadcast(t, 0);
    t = t.to(torch::kCPU).contiguous();
    order.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  }
  // CUDA: the old buckets' memory goes back to the allocator on the compute stream, which finalize
  // made wait for the communication stream's last use of it.
  build_buckets(order);
}

Reducer::~Reducer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void Reducer::prepare_for_sync() {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_ != next_launch_) fail("internal error: reducer armed while a reduction is in flight");
  syncing_ = true;
  next_launch_ = 0;
  done_ = 0;
  for (auto& b : buckets_) {
    b.pending = static_cast<int64_t>(b.params.size());
    b.launched = false;
  }
  std::fill(got_grad_.begin(), got_grad_.end(), false);
}

// Runs on the autograd thread when a parameter's gradient of this backward is ready. The slot gets
// the full accumulated gradient: what earlier micro-steps left in .grad plus this one.
void Reducer::on_grad(int64_t i, const torch::Tensor& grad) {
  if (!syncing_) return;
  const int64_t k = bucket_of_[static_cast<size_t>(i)];
  Bucket& b = buckets_[static_cast<size_t>(k)];
  const auto& p = params_[static_cast<size_t>(i)];
  auto slot = b.flat.narrow(0, b.offsets[static_cast<size_t>(slot_of_[static_cast<size_t>(i)])], p.numel());
  {
    torch::NoGradGuard no_grad;
    if (p.grad().defined() && slot.scalar_type() != grad.scalar_type()) {
      slot.copy_(p.grad().reshape({-1}) + grad.reshape({-1}));  // sum in the gradients' dtype, then round
    } else if (p.grad().defined()) {
      slot.copy_(p.grad().reshape({-1}));
      slot.add_(grad.reshape({-1}));
    } else {
      slot.copy_(grad.reshape({-1}));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (got_grad_[static_cast<size_t>(i)]) return;  // a parameter used twice: first hook counts
  got_grad_[static_cast<size_t>(i)] = true;
  if (!rebuilt_) arrival_.push_back(i);
  if (--b.pending == 0) launch_ready_locked();
}

void Reducer::launch_ready_locked() {
  while (next_launch_ < num_buckets() && buckets_[static_cast<size_t>(next_launch_)].pending == 0) {
    Bucket& b = buckets_[static_cast<size_t>(next_launch_)];
    b.launched = true;
    if (cuda_) {  // the bucket's copies were queued on this thread's current stream
      auto* impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
      b.ready->record(impl->getStream(b.flat.device()));
    }
    queue_.push_back(next_launch_++);
  }
  cv_.notify_all();
}

void Reducer::comm_loop() {
  while (true) {
    int64_t k;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      k = queue_.front();
      queue_.pop_front();
    }
    auto t0 = std::chrono::steady_clock::now();
    try {
      Bucket& b = buckets_[static_cast<size_t>(k)];
      if (cuda_) {
        // On the communication stream, after the producing stream's copies into the bucket. The
        // all-reduce is only enqueued; `reduced` marks its end for the compute stream to wait on.
        c10::StreamGuard guard(*comm_stream_);
        b.ready->block(*comm_stream_);
        comm_.all_reduce_sum_enqueue(b.flat);
        b.reduced->record(*comm_stream_);
      } else {
        comm_.all_reduce_sum(b.flat);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.reduce_seconds += secs;
      ++done_;
    }
    cv_.notify_all();
  }
}

void Reducer::finalize() {
  auto t0 = std::chrono::steady_clock::now();
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!syncing_) fail("internal error: Reducer::finalize without prepare_for_sync");
    // Parameters that got no gradient this step (unused branches) still take part, with what .grad
    // holds (or zeros), so every rank launches every bucket.
    for (size_t i = 0; i < params_.size(); ++i) {
      if (bucket_of_[i] < 0 || got_grad_[i]) continue;
      Bucket& b = buckets_[static_cast<size_t>(bucket_of_[i])];
      auto slot = b.flat.narrow(0, b.offsets[static_cast<size_t>(slot_of_[i])], params_[i].numel());
      if (params_[i].grad().defined()) slot.copy_(params_[i].grad().reshape({-1}));
      else slot.zero_();
      got_grad_[i] = true;
      --b.pending;
    }
    launch_ready_locked();
    cv_.wait(lock, [this] { return done_ == num_buckets() || error_; });
    syncing_ = false;
    if (error_) std::rethrow_exception(error_);
  }
  stats_.exposed_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (cuda_) {  // the compute stream waits for the all-reduces; the host does not
    auto* impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    const c10::Stream compute = impl->getStream(params_.front().device());
    for (auto& b : buckets_) b.reduced->block(compute);
  }
  const double scale = 1.0 / comm_.world_size();
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    b.flat.mul_(scale);
    for (size_t s = 0; s < b.params.size(); ++s) {
      auto& p = params_[static_cast<size_t>(b.params[s])];
      auto view = b.flat.narrow(0, b.offsets[s], p.numel()).view(p.sizes());
      if (p.grad().defined()) p.mutable_grad().copy_(view);
      else p.mutable_grad() = view.to(p.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
    }
  }
  if (!rebuilt_) rebuild_in_arrival_order();
}

ReducerStats Reducer::take_stats() {
  std::lock_guard<std::mutex> lock(mu_);
  ReducerStats s = stats_;
  stats_ = ReducerStats();
  return s;
}

}  // namespace recur::parallel
