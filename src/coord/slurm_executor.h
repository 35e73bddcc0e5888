// The Slurm executor: the coordinator itself submits each trial with `sbatch` (-n RANKS,
// --gpus-per-task=GPUS/RANKS when the trial wants GPUs, --requeue, --signal=B:USR1@120,
// cluster/slurm/train.sbatch), follows it with squeue and scontrol, and maps Slurm's job states onto
// the trial: PENDING/RUNNING/REQUEUED/PREEMPTED keep the trial running (progress.slurm_state says
// which); a job that left the queue succeeded when its run directory holds the final evaluation, else
// failed (retried up to the trial's limit). Slurm is the engine: placement, preemption and requeueing
// are Slurm's; the coordinator only decides what runs and collects.
// Invariant: at most one Slurm job per trial; the job id lives in the trial's progress, so a restarted
// coordinator re-attaches to the jobs it submitted.
#pragma once

#include <atomic>
#include <string>
#include <vector>

namespace recur::coord {

struct SlurmOptions {
  std::string state;            // the coordinator's state file
  std::string workdir;          // run directories (shared storage)
  std::string sbatch_script;    // default: RECUR_ROOT/cluster/slurm/train.sbatch
  std::string recur_binary;     // what the job runs (default: this executable)
  std::string recur_root;       // the source tree (train.sbatch uses it)
  std::vector<std::string> sbatch_args;  // extra arguments (partition, account, time limit)
  int64_t max_jobs = 64;        // jobs in the queue at once
  double poll_s = 2.0;
};

// A Slurm job id as sbatch prints it: digits only. Job ids come back from the state file, which any
// token holder can write through a heartbeat; only ids that pass this reach squeue, scancel or scontrol.
bool is_slurm_job_id(const std::string& id);

// Runs until `stop`; errors of single sbatch/squeue calls are logged and retried. Every Slurm command
// runs with an argument vector (core/process.h), never through a shell.
void run_slurm_executor(const SlurmOptions& options, const std::atomic<bool>& stop);

}  // namespace recur::coord
