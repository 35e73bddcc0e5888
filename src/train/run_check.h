// The checks a run's config must pass before any compute is spent on it, shared by `recur train` (at
// start), `recur eval` and `recur sweep submit` (every trial, --dry-run included): the model builds
// (every check of the model factory) and both evaluation settings suit the model: the final one
// (eval.*) and the one used during training (eval.train_*), so a run never fails at its first
// evaluation after hours of training.
#pragma once

#include <cstdint>

namespace recur {
class Config;
}
namespace recur::data {
class Dataset;
}

namespace recur::train {

// Stream evaluation settings, resolved (no "0 = same as training" left).
struct EvalSettings {
  int64_t tgt_len = 0;    // segment length
  int64_t mem_len = 0;    // memory length (XL family)
  int64_t clamp_len = -1; // relative-position clamp (<= 0: none)
  bool same_length = false;
};

// The final evaluation (`recur eval`, eval.json): eval.tgt_len (0 = train.tgt_len), eval.mem_len
// (-1 = model.mem_len), eval.clamp_len (-1 = model.clamp_len), eval.same_length.
EvalSettings final_eval_settings(const Config& config);
// Evaluation every train.eval_every steps: eval.train_tgt_len, eval.train_mem_len, eval.train_same_length.
// Defaults follow the reference Transformer-XL training loop for XL models with memory: segments of
// 128 (at most train.tgt_len), memory model.mem_len + train.tgt_len - 128, no same_length; other
// models use the final evaluation's segment and memory (e.g. the R-Transformer's windows), without
// same_length unless eval.train_same_length.
EvalSettings periodic_eval_settings(const Config& config);
// A copy of `config` whose eval.tgt_len/mem_len/clamp_len/same_length are `s` (what evaluate() reads).
Config with_eval_settings(const Config& config, const EvalSettings& s);

// Throws a recur::Error naming the problem: both evaluation settings against the model type, and
// train.stop_at_mean_accuracy without the per-epoch evaluation it reads (eval.every_epoch).
void check_eval_settings(const Config& config);
// Every split the run will read exists: train, valid (evaluated during and after training) and each
// of eval.extra_splits; so a missing split ends the run before step 1, not after the last step.
void check_splits(const Config& config, const data::Dataset& dataset);
// check_eval_settings, then builds the model once (every check of the factory). `vocab`: the dataset's
// vocabulary size.
void check_run_config(const Config& config, int64_t vocab);

}  // namespace recur::train
