// Where this process sits in a job: rank, local rank and world size from Open MPI, Slurm or
// torchrun-style variables. Invariant: no launcher at all means a world of one (rank 0).
#pragma once

#include <map>
#include <string>

namespace recur::parallel {

struct LaunchInfo {
  int rank = 0;
  int local_rank = 0;
  int world_size = 1;
  std::string launcher = "none";  // openmpi, slurm, torchrun, none
};

// Reads the environment (or `env` when given, for tests). Open MPI's OMPI_COMM_WORLD_* win over
// Slurm's SLURM_* (mpirun inside an allocation), which win over RANK/LOCAL_RANK/WORLD_SIZE.
// Inconsistent values (rank >= world, missing pieces) are errors naming the variables.
LaunchInfo detect_launch();
LaunchInfo detect_launch(const std::map<std::string, std::string>& env);

}  // namespace recur::parallel
