#!/usr/bin/env bash
# N ranks on this machine (or on the hosts of an MPI hostfile) under Open MPI's mpirun.
# Usage: launch/mpirun.sh N CONFIG RUN_DIR [--set k=v]...    (extra mpirun flags: MPIRUN_ARGS="...")
# CPU ranks communicate over MPI; with train.device on GPUs, one rank per GPU over NCCL.
# A rank that fails makes mpirun end the whole job with a non-zero exit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECUR="${RECUR:-$root/build/recur}"
[[ $# -ge 3 ]] || { echo "usage: launch/mpirun.sh N CONFIG RUN_DIR [--set k=v]..." >&2; exit 2; }
n="$1"; config="$2"; run="$3"; shift 3
extra=()
[[ $(id -u) -eq 0 ]] && extra+=(--allow-run-as-root)
# --oversubscribe: tests run more ranks than cores; --bind-to none: ranks share the cores' threads.
# shellcheck disable=SC2086
exec mpirun -np "$n" "${extra[@]}" --oversubscribe --bind-to none ${MPIRUN_ARGS:-} \
  -x OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" "$RECUR" train --config "$config" --run-dir "$run" "$@"
