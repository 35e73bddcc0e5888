// `recur train` and `recur eval`: one process (later: one rank of many) training a model from a config.
// Invariant: everything a step needs comes from (config, step), so a run is reproducible from its seed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "parallel/launch.h"

namespace recur {
class Config;
}
namespace recur::data {
class Dataset;
}

namespace recur::model {
class LanguageModel;
}

namespace recur::train {

// Learning rate at a step under the config's schedule (constant, warmup+cosine, halve every N epochs).
double learning_rate(const Config& config, int64_t step, int64_t steps_per_epoch);

// Evaluates `model` on a split in Transformer-XL order with the eval.* settings, on the device of its
// parameters, reading the sums back once at the end. Returns {"split", "positions", "loss", "bpc" or
// "ppl", "token_accuracy"} (examples: also "sequence_accuracy", "sequences"; no accuracies for a model
// with adaptive softmax, which has no full distribution to take an argmax of).
nlohmann::json evaluate(model::LanguageModel& model, const data::Dataset& dataset, const std::string& split,
                        const Config& config);

// Trains per the config, writing RUN_DIR/{config.yaml, metrics.jsonl, model.pt, eval.json} and
// checkpoints under RUN_DIR/checkpoints. `resume`: auto (newest valid checkpoint, if any), never, or a
// checkpoint directory. Returns the final evaluation (rank 0; null elsewhere). Throws
// checkpoint::Checkpointed after a save triggered by SIGTERM, SIGUSR1 or SIGINT.
nlohmann::json run_training(const Config& config, const std::string& run_dir, const std::string& resume = "auto");

// train.device for this rank: auto (its local rank's GPU when CUDA is available, else the CPU), cpu,
// cuda (an error without a GPU, or when the node has fewer GPUs than local ranks), or cuda:N (GPU N for
// every rank of the node: several ranks may share one GPU, e.g. for a test).
// Also sets train.tf32 for the device (set_tf32).
torch::Device resolve_device(const Config& config, const parallel::LaunchInfo& launch);
// train.tf32: fp32 matmuls and convolutions on CUDA in TF32 when "on", or "auto" on a CUDA device; IEEE
// fp32 otherwise (a process-wide ATen setting; it has no effect on CPU kernels).
void set_tf32(const Config& config, const torch::Device& device);

// Loads RUN_DIR's config and parameters and evaluates a split: on the run's train.device where this
// machine has it, else on the CPU (parameters saved from a GPU load onto the CPU first).
nlohmann::json run_evaluation(const std::string& run_dir, const std::string& split, const std::vector<std::string>& overrides);

}  // namespace recur::train
