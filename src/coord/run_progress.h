// What the agent and the Slurm executor both read from a trial's run directory, and this executable's path.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace recur::coord {

// The last training record of a run (step, loss, elapsed_s), the planned steps (config.yaml) and the
// ETA; fields are absent when not yet known (a half-written line reports what there is).
nlohmann::json run_progress(const std::string& run_dir);

// The running `recur` binary (/proc/self/exe), which trials run as.
std::string self_executable();

}  // namespace recur::coord
