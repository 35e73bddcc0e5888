// `recur agent`: registers its slots with the coordinator, leases trials, runs each as `recur train`
// (under `mpirun -np k` for k-rank trials), sends heartbeats with progress (step, loss, ETA), and
// reports the final evaluation. SIGTERM: stop leasing, let running trials checkpoint (they exit 75 and
// are requeued), and leave.
// Invariant: a trial's process dies with its agent (parent-death signal SIGTERM: it checkpoints), so a
// requeued trial never runs twice at once in the same run directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace recur::coord {

struct AgentOptions {
  std::string url, token;
  std::string name;              // default: hostname:pid
  int64_t slots = 1;             // ranks this agent may run at once
  std::vector<int> gpus;         // GPU ids to hand out (CUDA_VISIBLE_DEVICES); empty: CPU
  std::string workdir;           // run directories go under it (shared storage for requeues)
  double heartbeat_s = 2.0;
  double poll_s = 1.0;
  std::string recur_binary;      // default: this executable
  bool exit_when_idle = false;   // leave once nothing is pending or running (tests, batch jobs)
};

int run_agent(const AgentOptions& options);

}  // namespace recur::coord
