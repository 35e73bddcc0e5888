// `recur agent`: registers its slots and GPUs with the coordinator, leases trials that fit in what is
// free, runs each as `recur train` (under `mpirun -np k` for k-rank trials) with CUDA_VISIBLE_DEVICES
// set to exactly the GPUs leased to it, sends heartbeats with progress (step, loss, ETA), and reports
// the final evaluation. SIGTERM: stop leasing, let running trials checkpoint (they exit 75 and
// are requeued), and leave.
// Invariant: a trial's process dies with its agent (parent-death signal SIGTERM: it checkpoints), so a
// requeued trial never runs twice at once in the same run directory; a GPU is free again only once the
// trial that had it has ended, so no GPU is given to two trials at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace recur::coord {

struct AgentOptions {
  std::string url, token;
  std::string name;              // default: hostname:pid
  int64_t slots = 0;             // ranks this agent may run at once; 0: one per GPU, at least 1
  std::optional<std::vector<int>> gpus;  // GPU ids to hand out (--gpus); absent: what nvidia-smi finds
  std::string workdir;           // run directories go under it (shared storage for requeues)
  double heartbeat_s = 2.0;
  double poll_s = 1.0;
  std::string recur_binary;      // default: this executable
  bool exit_when_idle = false;   // leave once nothing is pending or running (tests, batch jobs)
};

int run_agent(const AgentOptions& options);

}  // namespace recur::coord
