#!/usr/bin/env bash
# The Slurm executor on the local single-node Slurm: the coordinator submits each trial of a tiny
# 2 x 2 ablation with sbatch and follows it; one running trial is preempted with `scontrol requeue`,
# checkpoints, is requeued by Slurm and resumes from its checkpoint; the sweep completes with every
# trial succeeded exactly once, and produces its table and plot. The coordinator is killed and restarted
# mid-sweep, and re-attaches to its jobs. Args: RECUR_BINARY SOURCE_DIR. Root.
set -euo pipefail
recur="$1"; src="$2"
cluster="$src/cluster/slurm/local-cluster.sh"
tmp="$(mktemp -d /tmp/recur-slurm-exec.XXXXXX)"
export RECUR_SLURM_DIR="$tmp/slurm"
cleanup() {
  [[ -n "${coord:-}" ]] && kill "$coord" 2>/dev/null || true
  scancel --user="$(id -un)" 2>/dev/null || true
  "$cluster" stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -30 "$tmp/coord.log"; for f in "$tmp"/work/sweep-*/trial-*/slurm-*.out; do echo "--- $f"; tail -5 "$f"; done; exit 1; }
"$cluster" start
eval "$("$cluster" env)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
head -c 1000000 /dev/urandom | base64 > "$tmp/corpus.txt"
"$recur" shard --corpus bytes --input "$tmp/corpus.txt" --out "$tmp/data" --quiet >/dev/null

start_coordinator() {
  rm -f "$tmp/port"
  RECUR_ROOT="$src" "$recur" coordinator --state "$tmp/state.db" --listen 127.0.0.1:0 --port-file "$tmp/port" \
    --executor slurm --slurm-workdir "$tmp/work" >> "$tmp/coord.log" 2>&1 &
  coord=$!
  for _ in $(seq 100); do [[ -s "$tmp/port" ]] && break; sleep 0.1; done
  export RECUR_COORDINATOR="http://127.0.0.1:$(cat "$tmp/port")" RECUR_TOKEN="$(cat "$tmp/state.db.token")"
}
start_coordinator
sed -e "s|base: ../tiny/rsa_xl.yaml|base: $src/configs/tiny/rsa_xl.yaml|" -e "s|data.path: .*|data.path: $tmp/data|" \
  -e "s|train.steps: .*|train.steps: 1500|" -e "s|train.log_every: .*|train.log_every: 20|" \
  -e "s|checkpoint.every_steps: .*|checkpoint.every_steps: 20|" "$src/configs/sweeps/tiny-2x2.yaml" > "$tmp/spec.yaml"
sweep="$("$recur" sweep submit "$tmp/spec.yaml" | tail -1)"

# Preempt the first trial once its job runs and has a checkpoint.
job=""; run=""
for _ in $(seq 600); do
  read -r job run < <("$recur" sweep status "$sweep" --json | python3 -c '
import json, sys
t = json.load(sys.stdin)["trials"][0]
p = t["progress"]
print(p.get("slurm_job", ""), t["run_dir"]) if p.get("slurm_state") == "RUNNING" and p.get("step", 0) >= 40 else print("", "")') || true
  [[ -n "$job" ]] && break
  sleep 0.3
done
[[ -n "$job" ]] || fail "the first trial's job never ran past step 40"
echo "preempting job $job (scontrol requeue)"
scontrol requeue "$job"
# The coordinator dies (kill -9) while its jobs run, and a new one re-attaches to them from the state
# file; without that, its trials stay running on their leases and the sweep never ends.
kill -9 "$coord"; wait "$coord" 2>/dev/null || true
start_coordinator
released=0
for _ in $(seq 1500); do
  state="$("$recur" sweep status "$sweep" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')"
  [[ "$state" == completed || "$state" == failed ]] && break
  # Slurm holds a requeued job back (begin time) before it may start again; a test need not wait.
  if [[ $released -eq 0 ]] && [[ "$(squeue -h -j "$job" -o %T 2>/dev/null)" == PENDING ]]; then
    scontrol release "$job" 2>/dev/null && released=1 || true
  fi
  sleep 0.3
done
"$recur" sweep status "$sweep"
[[ "$state" == completed ]] || fail "sweep ended $state"
grep -q "re-attached trial" "$tmp/coord.log" || fail "the restarted coordinator re-attached to no job"
"$recur" sweep status "$sweep" --json > "$tmp/final.json"
python3 - "$tmp/final.json" "$job" <<'PY' || fail "checks failed"
import glob, json, sys
s = json.load(open(sys.argv[1]))
job = sys.argv[2]
for t in s["trials"]:
    assert t["state"] == "succeeded" and t["completions"] == 1, t
first = s["trials"][0]
out = open(first["run_dir"] + "/slurm-%s.out" % job).read()
assert "resuming from" in out, "the preempted trial did not resume from its checkpoint"
assert out.count("recur train: job %s" % job) >= 2, "the job did not run twice (requeue)"
print("job %s was preempted, requeued by Slurm and resumed; every trial succeeded once" % job)
PY
"$recur" sweep results "$sweep" --plot "$tmp/plots"
[[ -s "$tmp/plots/sweep-$sweep-bpc.png" && -s "$tmp/plots/sweep-$sweep-bpc.svg" ]] || fail "no plot"
echo PASS
