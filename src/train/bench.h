// Step-time measurements for `recur bench step`: ms/step and tokens/s of forward+backward+update on
// random tokens, and the RSA share of step time (the same model with its RSA heads made plain).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace recur {
class Config;
}

namespace recur::train {

struct StepBenchOptions {
  int64_t warmup = 2;
  int64_t repeats = 10;
  int64_t vocab = 256;
  bool compare_plain = true;  // also time the model with RSA heads made plain
  double peak_tflops = 0;     // the device's dense peak for MFU (0: from a table of known GPUs)
};

// Under mpirun each rank takes train.batch_size / ranks rows and reduces gradients with the bucketed
// reducer; the result adds the all-reduce time per step and the fraction of it hidden behind backward.
nlohmann::json bench_step(const Config& config, const StepBenchOptions& options);

// Median all-reduce time and bus bandwidth per message size, over the ranks of this job.
nlohmann::json bench_allreduce(const std::vector<double>& sizes_mb, int64_t repeats, const std::string& backend);

struct CkptBenchOptions {
  std::string dir;      // run directory the checkpoints go to (the caller removes it)
  int64_t repeats = 3;  // saves per mode
  int64_t vocab = 256;
  bool progress = true;
};

// Synchronous vs asynchronous checkpoint saves of the configured model with Adam state: median save
// time (until committed), MB/s, the time the training thread is blocked (stall), and for async saves
// how much a compute loop on the training thread slows down while the writer runs.
nlohmann::json bench_ckpt(const Config& config, const CkptBenchOptions& options);

}  // namespace recur::train
