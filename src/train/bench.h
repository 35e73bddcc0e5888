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
};

// Under mpirun each rank takes train.batch_size / ranks rows and reduces gradients with the bucketed
// reducer; the result adds the all-reduce time per step and the fraction of it hidden behind backward.
nlohmann::json bench_step(const Config& config, const StepBenchOptions& options);

// Median all-reduce time and bus bandwidth per message size, over the ranks of this job.
nlohmann::json bench_allreduce(const std::vector<double>& sizes_mb, int64_t repeats, const std::string& backend);

}  // namespace recur::train
