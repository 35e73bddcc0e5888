// See launch.h.
#include "parallel/launch.h"

#include <cstdlib>

#include "core/error.h"

extern char** environ;

namespace recur::parallel {
namespace {

int parse(const std::map<std::string, std::string>& env, const std::string& name) {
  const std::string& v = env.at(name);
  try {
    size_t used = 0;
    int x = std::stoi(v, &used);
    if (used == v.size() && x >= 0) return x;
  } catch (...) {
  }
  fail("launcher variable {}='{}' is not a non-negative integer", name, v);
}

}  // namespace

LaunchInfo detect_launch(const std::map<std::string, std::string>& env) {
  struct Scheme {
    const char* launcher;
    const char* rank;
    const char* local;
    const char* world;
  };
  const Scheme schemes[] = {{"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_SIZE"},
                            {"slurm", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS"},
                            {"torchrun", "RANK", "LOCAL_RANK", "WORLD_SIZE"}};
  for (const auto& s : schemes) {
    if (!env.count(s.rank) && !env.count(s.world)) continue;
    // A Slurm batch script itself has SLURM_NTASKS but no SLURM_PROCID: that is not a task.
    if (std::string(s.launcher) == "slurm" && !env.count(s.rank)) continue;
    for (const char* v : {s.rank, s.world}) {
      if (!env.count(v)) fail("{} is set but {} is not: cannot tell this process's place in the job", s.rank, v);
    }
    LaunchInfo info;
    info.launcher = s.launcher;
    info.rank = parse(env, s.rank);
    info.world_size = parse(env, s.world);
    info.local_rank = env.count(s.local) ? parse(env, s.local) : 0;
    if (info.world_size < 1 || info.rank >= info.world_size) {
      fail("{}={} is not a valid rank for {}={}", s.rank, info.rank, s.world, info.world_size);
    }
    return info;
  }
  return LaunchInfo{};
}

LaunchInfo detect_launch() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return detect_launch(env);
}

}  // namespace recur::parallel
