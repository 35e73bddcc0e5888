#!/usr/bin/env bash
# Real agents and a real coordinator on loopback run a tiny sweep. Agent A is killed with SIGKILL
# mid-trial: its trial's lease expires, the trial is requeued and resumes from its checkpoint on
# another agent. Agent B gets SIGTERM mid-trial: its trial checkpoints, is requeued without counting a
# retry, and B leaves cleanly. The coordinator is killed with SIGKILL and restarted on the same state
# file: agent C attaches and the sweep completes with every trial succeeded exactly once.
# Args: RECUR_BINARY SOURCE_DIR.
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-coord-test.XXXXXX)"
cleanup() {
  [[ -n "${coord:-}" ]] && kill -9 "$coord" 2>/dev/null || true
  [[ -n "${agent_a:-}" ]] && kill -9 "$agent_a" 2>/dev/null || true
  [[ -n "${agent_b:-}" ]] && kill -9 "$agent_b" 2>/dev/null || true
  [[ -n "${agent_c:-}" ]] && kill -9 "$agent_c" 2>/dev/null || true
  pkill -9 -f "$tmp/work" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"; echo "--- coordinator log"; tail -20 "$tmp/coord.log"
  for a in a b c; do echo "--- agent $a"; tail -20 "$tmp/agent-$a.log" 2>/dev/null || true; done
  exit 1
}
# running_trial AGENT_ID: the id of a trial that agent runs with checkpoints (step >= 30), or nothing
running_trial() {
  "$recur" sweep status "$sweep" --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
for t in s["trials"]:
    if t.get("agent") == int(sys.argv[1]) and t["state"] == "running" and t["progress"].get("step", 0) >= 30:
        print(t["id"]); break' "$1" 2>/dev/null || true
}

head -c 1500000 /dev/urandom | base64 > "$tmp/corpus.txt"
"$recur" shard --corpus bytes --input "$tmp/corpus.txt" --out "$tmp/data" --quiet >/dev/null

start_coordinator() {
  rm -f "$tmp/port"  # written again once the new process listens
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

# Agent A (id 1): SIGKILL once its trial has checkpoints.
victim=""
for _ in $(seq 600); do victim="$(running_trial 1)"; [[ -n "$victim" ]] && break; sleep 0.2; done
[[ -n "$victim" ]] || fail "agent A never got a trial past step 30"
kill -9 "$agent_a"; wait "$agent_a" 2>/dev/null || true; agent_a=""
echo "killed agent A (SIGKILL) during trial $victim"

# Agent B (id 2): SIGTERM once its trial has checkpoints; it must checkpoint, requeue and leave cleanly.
leaver=""
for _ in $(seq 600); do leaver="$(running_trial 2)"; [[ -n "$leaver" && "$leaver" != "$victim" ]] && break; leaver=""; sleep 0.2; done
[[ -n "$leaver" ]] || fail "agent B never got a trial past step 30"
kill -TERM "$agent_b"
wait "$agent_b" || fail "agent B did not leave cleanly after SIGTERM"
agent_b=""
grep -q "trial $leaver attempt 1: requeue (exit 75)" "$tmp/agent-b.log" || fail "agent B's trial did not checkpoint and requeue"
echo "agent B left after SIGTERM; trial $leaver checkpointed and was requeued"

# Kill the coordinator too, and restart it on the same state file and port.
sleep 1
kill -9 "$coord"; wait "$coord" 2>/dev/null || true
sleep 1
start_coordinator
echo "coordinator restarted on port $port"
"$recur" agent --workdir "$tmp/work" --slots 1 --heartbeat 1 --name C --exit-when-idle > "$tmp/agent-c.log" 2>&1 &
agent_c=$!

for _ in $(seq 900); do
  state="$("$recur" sweep status "$sweep" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null || true)"
  [[ "$state" == completed || "$state" == failed || "$state" == cancelled ]] && break
  sleep 0.2
done
[[ "$state" == completed ]] || fail "sweep ended $state"
"$recur" sweep status "$sweep"
"$recur" sweep results "$sweep"
"$recur" sweep status "$sweep" --json > "$tmp/final.json"
python3 - "$victim" "$tmp/final.json" "$leaver" <<'PY' || fail "checks failed"
import json, sys
s = json.load(open(sys.argv[2]))
victim = int(sys.argv[1])
leaver = int(sys.argv[3])
l = [t for t in s["trials"] if t["id"] == leaver][0]
assert l["attempts"] == 1, ("a checkpointed requeue must not count as an attempt", l)
assert "resuming from" in open(l["run_dir"] + "/train.log").read(), "the requeued trial did not resume"

for t in s["trials"]:
    assert t["state"] == "succeeded", t
    assert t["completions"] == 1, ("completed %d times" % t["completions"], t)
v = [t for t in s["trials"] if t["id"] == victim][0]
assert v["attempts"] >= 2, ("the killed trial was not requeued", v)
log = open(v["run_dir"] + "/train.log").read()
assert "resuming from" in log, "the requeued trial did not resume from its checkpoint"
print("trial %d: %d attempts, resumed from its checkpoint; every trial succeeded exactly once" % (victim, v["attempts"]))
PY
wait "$agent_c" 2>/dev/null || true; agent_c=""
echo PASS
