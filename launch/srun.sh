#!/usr/bin/env bash
# Inside a Slurm allocation: one task per rank started by srun (PMIx), e.g. from an sbatch script.
# Usage: launch/srun.sh CONFIG RUN_DIR [--set k=v]...    (srun takes -n/-N from the allocation)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECUR="${RECUR:-$root/build/recur}"
[[ $# -ge 2 ]] || { echo "usage: launch/srun.sh CONFIG RUN_DIR [--set k=v]..." >&2; exit 2; }
config="$1"; run="$2"; shift 2
exec srun --mpi="${RECUR_SRUN_MPI:-pmix}" --kill-on-bad-exit=1 "$RECUR" train --config "$config" --run-dir "$run" "$@"
