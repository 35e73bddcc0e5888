#!/usr/bin/env bash
# Two real agents and a real coordinator on loopback run a tiny sweep. One agent is killed with
# SIGKILL mid-trial: its trial's lease expires, the trial is requeued and resumes from its checkpoint
# on the other agent. The coordinator is killed with SIGKILL and restarted on the same state file:
# the agent re-attaches and the sweep completes with every trial succeeded exactly once.
# Args: RECUR_BINARY SOURCE_DIR.
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-coord-test.XXXXXX)"
cleanup() {
  [[ -n "${coord:-}" ]] && kill -9 "$coord" 2>/dev/null || true
  [[ -n "${agent_a:-}" ]] && kill -9 "$agent_a" 2>/dev/null || true
  [[ -n "${agent_b:-}" ]] && kill -9 "$agent_b" 2>/dev/null || true
  pkill -9 -f "$tmp/work" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- coordinator log"; tail -20 "$tmp/coord.log"; echo "--- agent A"; tail -20 "$tmp/agent-a.log"; echo "--- agent B"; tail -20 "$tmp/agent-b.log"; exit 1; }

head -c 1500000 /dev/urandom | base64 > "$tmp/corpus.txt"
"$recur" shard --corpus bytes --input "$tmp/corpus.txt" --out "$tmp/data" --quiet >/dev/null

start_coordinator() {
  "$recur" coordinator --state "$tmp/state.db" --listen "127.0.0.1:${port:-0}" --port-file "$tmp/port" \
    --lease-seconds 4 >> "$tmp/coord.log" 2>&1 &
  coord=$!
  for _ in $(seq 100); do [[ -s "$tmp/port" ]] && break; sleep 0.1; done
  port="$(cat "$tmp/port")"
}
start_coordinator
export RECUR_COORDINATOR="http://127.0.0.1:$port" RECUR_TOKEN="$(cat "$tmp/state.db.token")"

cat > "$tmp/sweep.yaml" <<YAML
name: agents-test
base: $src/configs/tiny/xl.yaml
set:
  data.path: $tmp/data
  train.steps: 1200
  train.log_every: 10
  checkpoint.every_steps: 10
  train.threads: 1
axes:
  model.n_layer: [1, 2]
seeds: 2
retries: 3
metric: bpc
YAML
sweep="$("$recur" sweep submit "$tmp/sweep.yaml" | tail -1)"
echo "sweep $sweep submitted"

"$recur" agent --workdir "$tmp/work" --slots 1 --heartbeat 1 --name A --exit-when-idle > "$tmp/agent-a.log" 2>&1 &
agent_a=$!
sleep 1
"$recur" agent --workdir "$tmp/work" --slots 1 --heartbeat 1 --name B --exit-when-idle > "$tmp/agent-b.log" 2>&1 &
agent_b=$!

# Wait until agent A's trial has checkpoints (step >= 30), then kill agent A.
victim=""
for _ in $(seq 600); do
  victim="$("$recur" sweep status "$sweep" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
for t in s["trials"]:
    if t.get("agent") == 1 and t["state"] == "running" and t["progress"].get("step", 0) >= 30:
        print(t["id"]); break')"
  [[ -n "$victim" ]] && break
  sleep 0.2
done
[[ -n "$victim" ]] || fail "agent A never got a trial past step 30"
kill -9 "$agent_a"; wait "$agent_a" 2>/dev/null || true; agent_a=""
echo "killed agent A during trial $victim"

# Kill the coordinator too, and restart it on the same state file and port.
sleep 1
kill -9 "$coord"; wait "$coord" 2>/dev/null || true
sleep 1
start_coordinator
echo "coordinator restarted on port $port"

for _ in $(seq 900); do
  state="$("$recur" sweep status "$sweep" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')"
  [[ "$state" == completed || "$state" == failed || "$state" == cancelled ]] && break
  sleep 0.2
done
[[ "$state" == completed ]] || fail "sweep ended $state"
"$recur" sweep status "$sweep"
"$recur" sweep results "$sweep"
"$recur" sweep status "$sweep" --json > "$tmp/final.json"
python3 - "$victim" "$tmp/final.json" <<'PY' || fail "checks failed"
import json, sys
s = json.load(open(sys.argv[2]))
victim = int(sys.argv[1])
for t in s["trials"]:
    assert t["state"] == "succeeded", t
    assert t["completions"] == 1, ("completed %d times" % t["completions"], t)
v = [t for t in s["trials"] if t["id"] == victim][0]
assert v["attempts"] >= 2, ("the killed trial was not requeued", v)
log = open(v["run_dir"] + "/train.log").read()
assert "resuming from" in log, "the requeued trial did not resume from its checkpoint"
print("trial %d: %d attempts, resumed from its checkpoint; every trial succeeded exactly once" % (victim, v["attempts"]))
PY
wait "$agent_b" 2>/dev/null || true; agent_b=""
echo PASS
