#!/usr/bin/env bash
# A 3-node cluster on this machine: the local Slurm with three node names (one `slurmd -N nodeK` each,
# on its own port) and 2 GPUs per node declared as generic resources (character devices with the
# numbers of /dev/null: tiny CPU trainings run, nothing opens them). The coordinator's Slurm executor
# runs a 12-trial sweep of 2-GPU trials (sbatch --gpus-per-task=2), so a node runs one trial at a time.
# Mid-sweep one node is drained and its running jobs requeued (`scontrol update state=drain`, then
# `scontrol requeue`): they checkpoint, are requeued by Slurm, resume from their checkpoints on the other
# nodes, and every trial succeeds exactly once. No node ever runs two trials at once (its 2 GPUs), and
# nothing runs on the drained node afterwards. Args: RECUR_BINARY SOURCE_DIR. Root.
set -euo pipefail
src="$2"
cluster="$src/cluster/slurm/local-cluster.sh"
tmp="$(mktemp -d /tmp/recur-slurm-3n.XXXXXX)"
# A copy of the binary: jobs start it for minutes, and a rebuild meanwhile must not pull it away.
cp "$1" "$tmp/recur"
recur="$tmp/recur"
say() { echo "[$(date +%T)] $*"; }
export RECUR_SLURM_DIR="$tmp/slurm" RECUR_SLURM_NODES=3 RECUR_SLURM_GPUS=2
# Ports apart from the single-node tests' (16817, 16818).
export RECUR_SLURM_CTLD_PORT=17817 RECUR_SLURM_SLURMD_PORT=17821
cleanup() {
  [[ -n "${coord:-}" ]] && kill "$coord" 2>/dev/null || true
  [[ -n "${poller:-}" ]] && kill "$poller" 2>/dev/null || true
  scancel --user="$(id -un)" 2>/dev/null || true
  "$cluster" stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -30 "$tmp/coord.log"; for f in "$tmp"/work/sweep-*/trial-*/slurm-*.out; do echo "--- $f"; tail -4 "$f"; done; exit 1; }
"$cluster" start
eval "$("$cluster" env)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
head -c 600000 /dev/urandom | base64 > "$tmp/corpus.txt"
"$recur" shard --corpus bytes --input "$tmp/corpus.txt" --out "$tmp/data" --quiet >/dev/null

RECUR_ROOT="$src" "$recur" coordinator --state "$tmp/state.db" --listen 127.0.0.1:0 --port-file "$tmp/port" \
  --executor slurm --slurm-workdir "$tmp/work" >> "$tmp/coord.log" 2>&1 &
coord=$!
for _ in $(seq 100); do [[ -s "$tmp/port" ]] && break; sleep 0.1; done
export RECUR_COORDINATOR="http://127.0.0.1:$(cat "$tmp/port")" RECUR_TOKEN="$(cat "$tmp/state.db.token")"
cat > "$tmp/spec.yaml" <<YAML
name: three-nodes
base: $src/configs/tiny/xl.yaml
set:
  data.path: $tmp/data
  train.steps: 300
  train.log_every: 25
  checkpoint.every_steps: 25
  train.threads: 1
axes:
  model.n_layer: [1, 2]
seeds: 6
resources: {ranks: 1, gpus: 2}
retries: 0
metric: bpc
YAML
sweep="$("$recur" sweep submit "$tmp/spec.yaml" 2>/dev/null | tail -1)"
say "sweep $sweep submitted"

# Which job runs on which node, every 0.2 s.
( while true; do squeue -h -t R -o "%i %N" 2>/dev/null | tr '\n' ';'; echo; sleep 0.2; done ) > "$tmp/running.log" &
poller=$!

# Drain the node of a running job once its trial has a checkpoint, and requeue the jobs it runs. Read
# from squeue and the run directory every 0.1 s: the executor's progress arrives only every 2 s.
node=""
for _ in $(seq 1200); do
  while read -r _ name where; do
    trial="${name#recur-trial-}"
    run="$tmp/work/sweep-$sweep/trial-$trial"
    if [[ -f "$run/checkpoints/latest" && ! -f "$run/eval.json" ]]; then node="$where"; break; fi
  done < <(squeue -h -t R -o "%i %j %N" 2>/dev/null || true)
  [[ -n "$node" ]] && break
  sleep 0.1
done
[[ -n "$node" ]] || fail "no running trial had a checkpoint"
scontrol update nodename="$node" state=drain reason=recur-test
drained_jobs="$(squeue -h -t R -w "$node" -o %i | tr '\n' ' ')"
[[ -n "$drained_jobs" ]] || fail "the job on $node ended before it could be requeued"
for j in $drained_jobs; do scontrol requeue "$j"; done
say "drained $node; requeued its job(s) $drained_jobs"
echo "DRAINED $node" >> "$tmp/running.log"

declare -A released=()
for _ in $(seq 1500); do
  state="$("$recur" sweep status "$sweep" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null || true)"
  [[ "$state" == completed || "$state" == failed ]] && break
  # Slurm holds a requeued job back (a begin time two minutes ahead) before it may start again; a test
  # need not wait.
  for j in $drained_jobs; do
    if [[ -z "${released[$j]:-}" && "$(squeue -h -j "$j" -o %T 2>/dev/null)" == PENDING ]]; then
      scontrol release "$j" 2>/dev/null || true
      scontrol update jobid="$j" starttime=now 2>/dev/null && released[$j]=1 || true
    fi
  done
  sleep 0.3
done
kill "$poller" 2>/dev/null || true; poller=""
say "sweep $state"
"$recur" sweep status "$sweep"
[[ "$state" == completed ]] || fail "sweep ended $state"
"$recur" sweep status "$sweep" --json > "$tmp/final.json"
for j in $drained_jobs; do scontrol show job "$j" > "$tmp/job-$j.txt" 2>/dev/null || true; done
python3 - "$tmp" "$node" $drained_jobs <<'PY' || fail "checks failed"
import json, os, re, sys
tmp, node, jobs = sys.argv[1], sys.argv[2], sys.argv[3:]
s = json.load(open(tmp + "/final.json"))
assert len(s["trials"]) == 12
for t in s["trials"]:
    assert t["state"] == "succeeded" and t["completions"] == 1, t
    assert t["gpus"] == 2, t
# placement: a node never ran two trials at once, nothing started on the drained node after the drain,
# and all three nodes ran trials
after = False
nodes = set()
for line in open(tmp + "/running.log"):
    if line.startswith("DRAINED"):
        after = True
        continue
    running = [r.split() for r in line.strip().split(";") if r.strip()]
    per_node = {}
    for job, n in running:
        per_node.setdefault(n, []).append(job)
        nodes.add(n)
    for n, js in per_node.items():
        assert len(js) == 1, ("node %s ran jobs %s at once: its 2 GPUs twice" % (n, js))
    if after:
        for job, n in running:
            assert n != node or job in jobs, ("job %s ran on the drained node %s" % (job, n))
assert nodes == {"node1", "node2", "node3"}, nodes
# the requeued trials resumed from their checkpoints, elsewhere
assert jobs, "no job was requeued"
for job in jobs:
    show = open("%s/job-%s.txt" % (tmp, job)).read()
    assert "gres:gpu:2" in show or "gres/gpu=2" in show, show
    out = [t for t in s["trials"] if os.path.exists("%s/slurm-%s.out" % (t["run_dir"], job))]
    assert len(out) == 1, (job, "no trial ran it")
    text = open("%s/slurm-%s.out" % (out[0]["run_dir"], job)).read()
    starts = re.findall(r"recur train: job %s, .* on 1 node\(s\): (\S+)" % job, text)
    assert len(starts) >= 2 and starts[0] == node and starts[-1] != node, (job, starts)
    assert "resuming from" in text, ("job %s did not resume from its checkpoint" % job)
print("12 trials on %s; %s drained, job(s) %s requeued and resumed elsewhere; every trial succeeded once"
      % (sorted(nodes), node, " ".join(jobs)))
PY
echo PASS
