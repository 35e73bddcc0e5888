// A progress line for long work (sharding, generation, benchmarks): done/total, rate and ETA on stderr.
// Rewrites one line on a terminal; on a pipe or log file prints a plain line at most every few seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace recur {

class Progress {
 public:
  Progress(std::string label, uint64_t total, std::string unit);
  ~Progress();
  void update(uint64_t done);          // absolute count; cheap to call often
  void add(uint64_t delta) { update(done_ + delta); }
  void finish();                       // prints the final line once

 private:
  void print(bool final_line);
  std::string label_;
  uint64_t total_;
  std::string unit_;
  uint64_t done_ = 0;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
};

std::string format_duration(double seconds);   // "1h02m", "3m05s", "12.3s"
std::string format_count(double value);         // "12.3M", "456k"

}  // namespace recur
