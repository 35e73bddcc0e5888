#!/usr/bin/env bash
# The local single-node Slurm runs cluster/slurm/train.sbatch with 2 tasks, and the job's result equals
# `mpirun -np 2` on the same config. Args: RECUR_BINARY SOURCE_DIR. Needs root (munge, slurmd).
set -euo pipefail
recur="$1"; src="$2"
cluster="$src/cluster/slurm/local-cluster.sh"
tmp="$(mktemp -d /tmp/recur-slurm-test.XXXXXX)"
export RECUR_SLURM_DIR="$tmp/slurm"
cleanup() { "$cluster" stop >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$cluster" start
eval "$("$cluster" env)"

head -c 2000000 /dev/urandom | base64 > "$tmp/corpus.txt"
"$recur" shard --corpus bytes --input "$tmp/corpus.txt" --out "$tmp/data" --quiet >/dev/null
args=(--set "data.path=$tmp/data" --set train.steps=15 --set train.log_every=5 --set model.dropout=0)

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
job=$(RECUR="$recur" RECUR_ROOT="$src" sbatch --parsable -n 2 -o "$tmp/job.out" \
  "$src/cluster/slurm/train.sbatch" "$src/configs/tiny/xl.yaml" "$tmp/slurm-run" "${args[@]}")
echo "submitted job $job"
for _ in $(seq 600); do
  state="$(squeue -h -j "$job" -o %T 2>/dev/null || true)"
  [[ -z "$state" ]] && break
  sleep 0.2
done
[[ -z "$state" ]] || { echo "FAIL: job $job still $state after 120 s"; scancel "$job"; exit 1; }
cat "$tmp/job.out"
grep -q "exit code 0" "$tmp/job.out" || { echo "FAIL: the job did not finish cleanly"; exit 1; }

mpirun -np 2 --allow-run-as-root --oversubscribe --bind-to none "$recur" train --config "$src/configs/tiny/xl.yaml" \
  --run-dir "$tmp/mpirun-run" "${args[@]}" > "$tmp/mpirun.out" 2>&1
python3 - "$tmp/slurm-run/eval.json" "$tmp/mpirun-run/eval.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["ranks"] == 2 and a["ranks_identical"], a
assert a["loss"] == b["loss"], (a["loss"], b["loss"])
print("slurm job and mpirun -np 2 agree: loss %.12f on %d ranks" % (a["loss"], a["ranks"]))
PY
echo PASS
