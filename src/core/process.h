// Running an external program (sbatch, squeue, python3, ...) with an argument vector: no shell ever
// sees the arguments, so a quote, `;` or `$(...)` in a path or a job id is just a character.
// Invariant: nothing here goes through /bin/sh; the child inherits no descriptor but stdin and the pipe.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace recur {

struct ProcessResult {
  int exit_code = 0;   // 128 + N when killed by signal N; 127 when the program could not be started
  std::string output;  // stdout and stderr together
};

// Runs argv[0] (looked up in PATH) with `env` added to (or replacing in) this process's environment,
// waits for it, and returns its exit code and output. Throws recur::Error only when argv is empty.
ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& env = {});

}  // namespace recur
