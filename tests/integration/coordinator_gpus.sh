#!/usr/bin/env bash
# GPU-aware placement with real agents and fake inventories (no GPU needed): agents A, B and C offer
# GPUs 0,1 / 2,3 / 4,5,6,7 (--gpus), and run 2-GPU trials (tiny CPU trainings), a 2-rank 2-GPU trial
# under mpirun and a CPU trial. While the sweeps run, every `recur train` process's environment is read
# from /proc: each trial sees exactly its own GPUs in CUDA_VISIBLE_DEVICES, no GPU is visible to two
# trials at once, and a CPU trial sees none. A trial needing 8 GPUs waits with its reason in `sweep
# status`. Every trial succeeds exactly once. Args: RECUR_BINARY SOURCE_DIR.
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-coord-gpus.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f "$tmp/work" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"; echo "--- coordinator log"; tail -20 "$tmp/coord.log"
  for a in a b c; do echo "--- agent $a"; tail -20 "$tmp/agent-$a.log" 2>/dev/null || true; done
  exit 1
}
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
head -c 600000 /dev/urandom | base64 > "$tmp/corpus.txt"
"$recur" shard --corpus bytes --input "$tmp/corpus.txt" --out "$tmp/data" --quiet >/dev/null

"$recur" coordinator --state "$tmp/state.db" --listen 127.0.0.1:0 --port-file "$tmp/port" --lease-seconds 20 > "$tmp/coord.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$tmp/port" ]] && break; sleep 0.1; done
export RECUR_COORDINATOR="http://127.0.0.1:$(cat "$tmp/port")" RECUR_TOKEN="$(cat "$tmp/state.db.token")"

spec() {  # NAME TRIALS-AXIS RESOURCES
  cat > "$tmp/$1.yaml" <<YAML
name: $1
base: $src/configs/tiny/xl.yaml
set:
  data.path: $tmp/data
  train.steps: 60
  train.log_every: 10
  checkpoint.every_steps: 30
  train.threads: 1
axes:
  model.n_layer: $2
seeds: 1
resources: $3
retries: 0
metric: bpc
YAML
  "$recur" sweep submit "$tmp/$1.yaml" 2>/dev/null | tail -1
}
huge="$(spec huge "[1]" "{ranks: 1, gpus: 8}")"
two="$(spec two "[1, 2, 3, 4, 5, 6]" "{ranks: 1, gpus: 2}")"   # six distinct points: submit refuses repeats
mpi="$(spec mpi "[1]" "{ranks: 2, gpus: 2}")"
cpu="$(spec cpu "[1]" "{ranks: 1}")"

# Snapshots of every running trial's environment: run dir -> CUDA_VISIBLE_DEVICES, one JSON line each.
python3 - "$tmp" > "$tmp/snapshots.jsonl" 2>"$tmp/poller.err" <<'PY' &
import json, os, sys, time
tmp = sys.argv[1]
while not os.path.exists(tmp + "/done"):
    snap = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
            env = open("/proc/%s/environ" % pid, "rb").read().split(b"\0")
        except OSError:
            continue
        argv = [a.decode() for a in argv]
        if "train" not in argv or "--run-dir" not in argv or argv[0] == "mpirun":
            continue
        run = argv[argv.index("--run-dir") + 1]
        if not run.startswith(tmp + "/work/"):
            continue
        for e in env:
            if e.startswith(b"CUDA_VISIBLE_DEVICES="):
                snap.setdefault(run, set()).add(e.decode().split("=", 1)[1])
                break
        else:
            snap.setdefault(run, set()).add(None)
    if snap:
        print(json.dumps({k: sorted(v, key=str) for k, v in snap.items()}), flush=True)
    time.sleep(0.1)
PY
pids+=($!)

for spec in "a 0,1" "b 2,3" "c 4,5,6,7"; do
  set -- $spec
  "$recur" agent --workdir "$tmp/work" --gpus "$2" --heartbeat 1 --name "$1" > "$tmp/agent-$1.log" 2>&1 &
  pids+=($!)
done

# The 8-GPU trial waits, and says why.
for _ in $(seq 100); do
  "$recur" sweep status "$huge" > "$tmp/huge.txt" 2>&1 || true
  grep -q "waiting: needs 8 GPUs; the largest agent has 4" "$tmp/huge.txt" && break
  sleep 0.2
done
grep -q "waiting: needs 8 GPUs; the largest agent has 4" "$tmp/huge.txt" || { cat "$tmp/huge.txt"; fail "no reason shown for the 8-GPU trial"; }
"$recur" sweep status | grep -q "c .* 4 slots, 4 GPUs: 4; 5; 6; 7" || fail "sweep status does not list agent c's GPUs"
echo "the 8-GPU trial waits: $(grep -o 'waiting: .*' "$tmp/huge.txt")"

for s in "$two" "$mpi" "$cpu"; do
  for _ in $(seq 1500); do
    state="$("$recur" sweep status "$s" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')"
    [[ "$state" == completed || "$state" == failed ]] && break
    sleep 0.2
  done
  [[ "$state" == completed ]] || fail "sweep $s ended $state"
done
"$recur" sweep status "$huge" | grep -q "pending" || fail "the 8-GPU trial did not stay pending"
"$recur" sweep cancel "$huge" >/dev/null
touch "$tmp/done"
sleep 0.3
"$recur" sweep status "$two"
for s in "$two" "$mpi" "$cpu"; do "$recur" sweep status "$s" --json > "$tmp/final-$s.json"; done
python3 - "$tmp" "$two" "$mpi" "$cpu" <<'PY' || fail "checks failed"
import glob, json, re, sys
tmp, two, mpi, cpu = sys.argv[1:5]
inventory = {"a": {0, 1}, "b": {2, 3}, "c": {4, 5, 6, 7}}
final = {s: json.load(open("%s/final-%s.json" % (tmp, s))) for s in (two, mpi, cpu)}
runs = {}
for s, sw in final.items():
    for t in sw["trials"]:
        assert t["state"] == "succeeded" and t["completions"] == 1, t
        runs[t["run_dir"]] = s
# 1. what the processes saw
snaps = [json.loads(l) for l in open(tmp + "/snapshots.jsonl")]
assert snaps, "no running trial was ever seen"
seen = {}
most = 0
for snap in snaps:
    owner = {}
    for run, values in snap.items():
        assert len(values) == 1, ("the ranks of one trial saw different GPUs", run, values)
        v = values[0]
        seen.setdefault(run, set()).add(v)
        ids = [int(x) for x in v.split(",")] if v else []
        for g in ids:
            assert g not in owner, ("GPU %d visible to two trials at once" % g, owner[g], run, snap)
            owner[g] = run
    most = max(most, len([r for r in snap if runs.get(r) == two]))
for run, s in runs.items():
    assert run in seen, ("never saw the trial's processes", run)
    for v in seen[run]:
        assert v is not None, ("CUDA_VISIBLE_DEVICES unset", run)
        ids = [int(x) for x in v.split(",")] if v else []
        want = 0 if s == cpu else 2
        assert len(ids) == want, ("wrong number of GPUs", run, v)
        assert any(set(ids) <= inv for inv in inventory.values()), ("GPUs of two agents", run, v)
assert most >= 2, "the 2-GPU trials never ran side by side (%d at most)" % most
# 2. what the agents say they gave: the banner in train.log matches
for run in runs:
    banners = re.findall(r"recur agent '(\w)': trial \d+ attempt \d+, (\d) rank\(s\), CUDA_VISIBLE_DEVICES=([\d,]*)", open(run + "/train.log").read())
    assert banners, run
    for agent, ranks, v in banners:
        ids = {int(x) for x in v.split(",")} if v else set()
        assert ids <= inventory[agent], (agent, v)
        assert (runs[run] == mpi) == (ranks == "2")
print("%d snapshots; up to %d 2-GPU trials at once; no GPU visible to two trials; every trial succeeded once" % (len(snaps), most))
PY
echo PASS
