// What the agent and the Slurm executor both read from a trial's run directory (progress, and how an
// attempt ended), and this executable's path.
// Invariant: the two executors judge an attempt by the one rule of trial_outcome.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace recur::coord {

// The last training record of a run (step, loss, elapsed_s), the planned steps (config.yaml) and the
// ETA; fields are absent when not yet known (a half-written line reports what there is).
nlohmann::json run_progress(const std::string& run_dir);

// How an attempt of a trial ended: what its executor reports to the coordinator.
struct TrialOutcome {
  std::string status;     // succeeded | failed | requeue
  nlohmann::json result;  // eval.json, when succeeded
  std::string error;      // why, when failed
};

// `exit_code`: the attempt's exit code, or -1 when it is not known (a Slurm job that has left the
// queue). Requeue: exit 75 (`recur train` checkpointed when asked to stop). Succeeded: exit 0 or
// unknown, and RUN_DIR/eval.json is readable and final — its step is config.yaml's train.steps (no
// config.yaml: taken as final) or the step where the stop rule (train.stop_at_mean_accuracy) ended the
// run. Anything else failed: the error says why and ends with the last 2000 bytes of `log` (the
// attempt's output), when it exists.
TrialOutcome trial_outcome(const std::string& run_dir, int exit_code, const std::string& log);

// The running `recur` binary (/proc/self/exe), which trials run as.
std::string self_executable();

}  // namespace recur::coord
