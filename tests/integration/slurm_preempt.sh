#!/usr/bin/env bash
# Preemption under the local Slurm: the job gets the pre-termination signal (what --signal=B:USR1@120
# sends), the ranks checkpoint and exit 75, the job requeues itself, and the restarted job resumes
# from the checkpoint and finishes. Args: RECUR_BINARY SOURCE_DIR. Needs root.
set -euo pipefail
recur="$1"; src="$2"
cluster="$src/cluster/slurm/local-cluster.sh"
tmp="$(mktemp -d /tmp/recur-slurm-preempt.XXXXXX)"
export RECUR_SLURM_DIR="$tmp/slurm"
cleanup() { scancel --full "${job:-0}" 2>/dev/null || true; "$cluster" stop >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$cluster" start
eval "$("$cluster" env)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
head -c 2000000 /dev/urandom | base64 > "$tmp/corpus.txt"
"$recur" shard --corpus bytes --input "$tmp/corpus.txt" --out "$tmp/data" --quiet >/dev/null
steps=3000
job=$(RECUR="$recur" RECUR_ROOT="$src" sbatch --parsable -n 2 --open-mode=append -o "$tmp/job.out" \
  "$src/cluster/slurm/train.sbatch" "$src/configs/tiny/xl.yaml" "$tmp/run" --set "data.path=$tmp/data" \
  --set train.steps=$steps --set train.log_every=50 --set checkpoint.every_steps=50)
echo "submitted job $job"
for _ in $(seq 600); do [[ -f "$tmp/run/checkpoints/latest" ]] && break; sleep 0.2; done
[[ -f "$tmp/run/checkpoints/latest" ]] || { cat "$tmp/job.out"; echo "FAIL: no checkpoint appeared"; exit 1; }
echo "checkpoint $(cat "$tmp/run/checkpoints/latest") exists; sending the preemption warning (USR1 to the batch shell)"
scancel --signal=USR1 --batch "$job"
released=0
for _ in $(seq 2000); do
  [[ -f "$tmp/run/eval.json" ]] && break
  # Slurm holds a requeued job back for a while before it may start again; a test need not wait.
  if [[ $released -eq 0 ]] && grep -q "requeueing job" "$tmp/job.out" 2>/dev/null; then
    state="$(squeue -h -j "$job" -o %T 2>/dev/null || true)"
    if [[ "$state" == PENDING ]]; then
      squeue -h -j "$job" -o "%T %r %S" || true
      scontrol release "$job" 2>/dev/null || true
      released=1
    fi
  fi
  sleep 0.2
done
cat "$tmp/job.out"
[[ -f "$tmp/run/eval.json" ]] || { echo "FAIL: the requeued job did not finish"; exit 1; }
grep -q "exit code 75" "$tmp/job.out" || { echo "FAIL: the ranks did not checkpoint and exit 75"; exit 1; }
grep -q "requeueing job $job" "$tmp/job.out" || { echo "FAIL: the job did not requeue itself"; exit 1; }
grep -q "resuming from" "$tmp/job.out" || { echo "FAIL: the restarted job did not resume"; exit 1; }
last="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$tmp/run/eval.json")"
[[ "$last" == "$steps" ]] || { echo "FAIL: finished at step $last"; exit 1; }
"$recur" ckpt verify "$tmp/run/checkpoints/$(cat "$tmp/run/checkpoints/latest")"
echo PASS
