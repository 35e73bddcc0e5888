// Runs a batch source ahead of training on a background thread so the step never waits on reads.
// Invariant: next() returns batches for consecutive steps start, start+1, ... in order, exactly once each.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "data/loaders.h"

namespace recur::data {

class Prefetcher {
 public:
  using Source = std::function<void(int64_t step, TokenBatch* out)>;

  Prefetcher(Source source, int64_t start_step, int depth) : source_(std::move(source)), next_step_(start_step), depth_(depth) {
    worker_ = std::thread([this] { run(); });
  }
  ~Prefetcher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Blocks until the next batch is ready; rethrows a reader error on the training thread.
  TokenBatch next() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !ready_.empty() || error_; });
    if (ready_.empty() && error_) std::rethrow_exception(error_);
    TokenBatch b = std::move(ready_.front());
    ready_.pop_front();
    cv_.notify_all();
    return b;
  }

 private:
  void run() {
    int64_t step = next_step_;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || static_cast<int>(ready_.size()) < depth_; });
        if (stop_) return;
      }
      TokenBatch b;
      try {
        source_(step, &b);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        error_ = std::current_exception();
        cv_.notify_all();
        return;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        ready_.push_back(std::move(b));
      }
      cv_.notify_all();
      ++step;
    }
  }

  Source source_;
  int64_t next_step_;
  int depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TokenBatch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace recur::data
