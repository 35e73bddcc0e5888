#!/usr/bin/env bash
# `torchrun --no-python` starts Recur's ranks without MPI: they meet through torchrun's store and reduce
# through c10d's Gloo process group (backend auto) or the store itself (backend store); 2 ranks equal
# `mpirun -np 2` on either (per-step losses and evaluation within 1e-6, ranks identical); a stopped
# rank ends the job through the collective deadline, on either. Args: RECUR_BINARY SOURCE_DIR
set -euo pipefail
recur="$1"; src="$2"
export RECUR_SRC="$src"
source "$src/scripts/lib.sh"
torchrun="$RECUR_HOME/venv/bin/torchrun"
[[ -x "$torchrun" ]] || { echo "FAIL: no torchrun at $torchrun (run scripts/setup)"; exit 1; }
tmp="$(mktemp -d /tmp/recur-torchrun.XXXXXX)"
job=""
cleanup() {
  [[ -n "$job" ]] && { pkill -CONT -P "$job" 2>/dev/null || true; kill "$job" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT

head -c 300000 /dev/urandom > "$tmp/corpus.bin"
"$recur" shard --corpus bytes --input "$tmp/corpus.bin" --out "$tmp/data" --quiet >/dev/null
args=(train --config "$src/configs/tiny/xl.yaml" --set "data.path=$tmp/data" --set train.steps=20
      --set train.log_every=1)

# torchrun's own variables only: no MPI world.
run_torchrun() {  # NAME BACKEND
  env -u OMPI_COMM_WORLD_RANK -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK \
    timeout 120 "$torchrun" --no-python --standalone --nproc_per_node=2 "$recur" "${args[@]}" --run-dir "$tmp/$1" \
    --set "train.backend=$2" > "$tmp/$1.log" 2>&1 || { cat "$tmp/$1.log"; echo "FAIL: torchrun job $1 failed"; exit 1; }
}
run_torchrun gloo auto
grep -q "on 2 rank(s) (gloo, cpu)" "$tmp/gloo.log" || { cat "$tmp/gloo.log"; echo "FAIL: auto is not Gloo under torchrun"; exit 1; }
run_torchrun store store
grep -q "on 2 rank(s) (store, cpu)" "$tmp/store.log" || { cat "$tmp/store.log"; echo "FAIL: not 2 ranks on the store backend"; exit 1; }
timeout 120 mpirun -np 2 --allow-run-as-root --oversubscribe --bind-to none "$recur" "${args[@]}" --run-dir "$tmp/mpirun" \
  > "$tmp/mpirun.log" 2>&1 || { cat "$tmp/mpirun.log"; echo "FAIL: mpirun job failed"; exit 1; }

for backend in gloo store; do
"$RECUR_HOME/venv/bin/python" - "$tmp/$backend" "$tmp/mpirun" <<'PY'
import json, os, sys
sys.path.insert(0, os.path.join(os.environ["RECUR_SRC"], "python"))
import recur_metrics
a, b = sys.argv[1], sys.argv[2]
def losses(d):
    return [r["loss"] for r in recur_metrics.read(d).train]
ea, eb = json.load(open(a + "/eval.json")), json.load(open(b + "/eval.json"))
la, lb = losses(a), losses(b)
assert len(la) == len(lb) == 20, (len(la), len(lb))
worst = max(abs(x - y) for x, y in zip(la, lb))
print(f"{os.path.basename(a)}: per-step loss: max |torchrun - mpirun| = {worst:.3g}; eval loss {ea['loss']:.9f} vs {eb['loss']:.9f}")
assert worst <= 1e-6, "per-step losses differ"
assert abs(ea["loss"] - eb["loss"]) <= 1e-6, "evaluation losses differ"
assert ea["ranks_identical"] is True and ea["ranks"] == 2, ea
PY
done

# The deadline: rank 1 stopped, rank 0 names the operation and the job ends, on either backend.
for backend in gloo store; do
job=""
env -u OMPI_COMM_WORLD_RANK -u OMPI_COMM_WORLD_SIZE \
  "$torchrun" --no-python --standalone --nproc_per_node=2 "$recur" "${args[@]}" --run-dir "$tmp/stop-$backend" \
  --set train.backend=$backend --set train.steps=1000000 --set train.collective_timeout_s=10 > "$tmp/stop.log" 2>&1 &
job=$!
for _ in $(seq 300); do [[ -s "$tmp/stop-$backend/metrics.jsonl" ]] && break; sleep 0.1; done
[[ -s "$tmp/stop-$backend/metrics.jsonl" ]] || { cat "$tmp/stop.log"; echo "FAIL: training never started"; exit 1; }
victim="$(pgrep -P "$job" | while read -r pid; do
  tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "RANK=1" && echo "$pid"; done | head -1)"
[[ -n "$victim" ]] || { ps -ef --forest; echo "FAIL: no rank 1 below torchrun $job"; exit 1; }
kill -STOP "$victim"
set +e
timeout 90 tail --pid="$job" -f /dev/null
if kill -0 "$job" 2>/dev/null; then cat "$tmp/stop.log"; echo "FAIL: $backend job still running 90 s after rank 1 was stopped"; exit 1; fi
wait "$job"; rc=$?
set -e
job=""
kill -9 "$victim" 2>/dev/null || true
[[ $rc -ne 0 ]] || { cat "$tmp/stop.log"; echo "FAIL: exit code 0 after a rank was stopped ($backend)"; exit 1; }
grep -E "rank 0 of 2: $backend [a-z_]+ did not complete within 10 s \(train\.collective_timeout_s\)" "$tmp/stop.log" ||
  { cat "$tmp/stop.log"; echo "FAIL: no line naming rank 0, the $backend operation and the timeout"; exit 1; }
done
echo "PASS"
