// Fault-tolerant checkpoints: RUN_DIR/checkpoints/step-XXXXXXXX/ with model.h5, optimizer.h5, one
// rank-RRRR.h5 per rank (RNG, recurrent state rows), meta.json and manifest.json (checksums, written last).
// Invariant: a directory named step-XXXXXXXX is complete — it is built as *.tmp and renamed after every
// rank's files are fsynced; `latest` is moved only after that.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "model/model.h"

namespace recur {
class Config;
}
namespace recur::parallel {
class Communicator;
}

namespace recur::checkpoint {

// Exit code of a run that saved a checkpoint because it was asked to stop (SIGTERM/SIGUSR1/SIGINT):
// "checkpointed — requeue me" (EX_TEMPFAIL).
constexpr int kExitCheckpointed = 75;

struct Progress {
  int64_t step = 0;         // optimizer steps completed
  int64_t tokens = 0;       // training positions seen (all ranks)
  double loss = 0.0;        // mean loss of the last step
  // The open logging window, so a resumed run logs exactly the records an uninterrupted one would.
  double window_loss = 0.0, window_positions = 0.0;
  int64_t window_steps = 0;
  // Seconds of training up to this checkpoint, over every attempt that led to it (a resumed run's
  // eval.json reports the whole run's time, not its last attempt's).
  double train_seconds = 0.0;
};
// meta.json's progress keys: step, tokens, loss, window {loss, positions, steps}, train_seconds (0 in
// checkpoints from before it). from_json reads what
// is there (missing keys keep their defaults), so `ckpt list` shows what it can of a damaged meta.json.
void to_json(nlohmann::json& j, const Progress& p);
void from_json(const nlohmann::json& j, Progress& p);

// The checkpoint policy and what a checkpoint must match, read from the config once.
struct CheckpointOptions {
  int64_t every_steps = 0;       // checkpoint.every_steps: save every N steps (0: only at the end / on a signal)
  double every_minutes = 0.0;    // checkpoint.every_minutes: also when M minutes passed since the last save
  int64_t keep_last = 2;         // checkpoint.keep_last: checkpoints kept (milestones aside)
  int64_t milestone_every = 0;   // checkpoint.milestone_every: multiples of P steps are never deleted
  bool async = false;            // checkpoint.async: write from a background thread
  std::string model_type;        // model.type, recorded and checked on resume
  int64_t seed = 0;              // train.seed: seeds random streams that cannot be continued
  // Checksum of what must not change across a resume for the data order to continue: the dataset's
  // manifest, train.batch_size, train.tgt_len, train.seed, data.fraction, train.sampler.
  std::string data_fingerprint;
  std::string config_yaml;       // the resolved config, stored in meta.json

  static CheckpointOptions from_config(const Config& config);  // reads the dataset's manifest
};

struct SaveRequest {
  Progress progress;
  torch::nn::Module* model = nullptr;    // its parameters' device: a GPU's RNG is saved too
  torch::optim::Optimizer* optimizer = nullptr;
  const model::State* state = nullptr;   // this rank's rows of the recurrent state (may be empty)
  int64_t first_row = 0;                 // global index of this rank's first stream
  int64_t global_rows = 0;
};

struct Snapshot;

class Checkpointer {
 public:
  // Collective (duplicates the communicator for its own host-side collectives). Rank 0 first cleans up
  // after a run killed while pruning or saving: see recover().
  Checkpointer(std::string run_dir, const Config& config, parallel::Communicator& comm);
  ~Checkpointer();  // waits for a save in flight (an error is logged)
  // Collective: every rank calls it at the same step. Returns the checkpoint directory. Synchronous
  // (default): returns once the checkpoint is committed and old ones pruned. With checkpoint.async:
  // waits for the previous save if one is still in flight, copies parameters, optimizer state, RNG
  // and recurrent state to host memory, and returns while a background thread writes and commits.
  std::string save(const SaveRequest& request);
  // Blocks until the save in flight (if any) is committed; rethrows its error.
  void wait();
  // Rethrows the error of a background save that has already finished; never blocks.
  void poll();
  bool saving() const;  // a background save is in flight
  // Applies checkpoint.keep_last / checkpoint.milestone_every (rank 0 deletes; others no-op).
  void prune();
  // Resolves --resume (auto | never | PATH) to a verified checkpoint directory, or "" to start fresh.
  // auto: the newest checkpoint whose checksums verify; a damaged one is reported and skipped.
  std::string resolve(const std::string& resume);
  // Loads into the model and optimizer (onto the device of its parameters: files are device-neutral),
  // restores this rank's RNG when the world size matches — the CPU generator, and the GPU's when the
  // model is on one and the checkpoint has it (else that one is seeded afresh) — and returns the
  // progress and this rank's rows of the recurrent state.
  Progress load(const std::string& dir, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                model::State* state, int64_t first_row, int64_t rows);
  bool due(int64_t step) const;  // checkpoint.every_steps / every_minutes
  std::string data_fingerprint() const { return options_.data_fingerprint; }

 private:
  std::shared_ptr<Snapshot> snapshot(const SaveRequest& request, bool copy, const Snapshot* old = nullptr) const;
  // One save, on host_ (the training thread or the background writer): every rank's file, rank 0's
  // files, then rank 0 commits (manifest, rename, `latest`) and prunes.
  void write(const Snapshot& snapshot);
  void write_rank_file(const Snapshot& snapshot, const std::string& dir) const;  // every rank
  void write_rank0_files(const Snapshot& snapshot, const std::string& dir) const;  // model, optimizer, meta
  void commit(int64_t step, const std::string& tmp) const;  // rank 0: renames a tmp its manifest sealed
  // Rank 0 at construction: finishes what a killed run left half-done (*.deleting, *.tmp).
  void recover() const;

  std::string run_dir_, root_;
  CheckpointOptions options_;
  parallel::Communicator& comm_;
  std::unique_ptr<parallel::Communicator> host_;  // host-side collectives, never interleaved with training's
  std::future<void> in_flight_;
  std::shared_ptr<Snapshot> previous_;  // the last async snapshot, whose host buffers the next one reuses
  double last_save_time_;
};

// Every checkpoint directory of a run, oldest first (complete ones only: step-XXXXXXXX).
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// Recomputes the checksums of a checkpoint; one line per problem, empty when valid.
std::vector<std::string> verify_checkpoint(const std::string& dir);
nlohmann::json read_meta(const std::string& dir);
// "key: old -> new" for every key whose value differs between a run's saved config (RUN_DIR/config.yaml)
// and `now`; empty when there is none yet. A saved config this Recur cannot read is one line saying so.
std::vector<std::string> config_changes(const std::string& saved_path, const Config& now);

// SIGTERM, SIGUSR1 and SIGINT (Ctrl-C) set a flag that training checks at every step boundary; the
// run saves a checkpoint and exits kExitCheckpointed. A second SIGINT kills the process at once.
void install_stop_signals();
bool stop_requested();

class Checkpointed : public std::runtime_error {  // thrown after a signal-triggered save
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace recur::checkpoint
