#!/usr/bin/env bash
# The web page against a hostile agent (issue 17, finding 4): a token holder's heartbeat puts HTML
# with a script handler into a trial's progress; the page, rendered in headless Chromium, shows it as
# text and runs nothing. Loss curves (issue 21): heartbeats whose step or loss is not a number (a
# string, an array, 1e400) make no curve point, and a series named with markup is shown as text in the
# scaling plot's legend. Args: RECUR_BINARY SOURCE_DIR.
set -euo pipefail
recur="$1"
tmp="$(mktemp -d /tmp/recur-hostile-page.XXXXXX)"
cleanup() { [[ -n "${coord:-}" ]] && kill -9 "$coord" 2>/dev/null || true; [[ -n "${KEEP:-}" ]] || rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -20 "$tmp/coord.log"; exit 1; }
command -v chromium >/dev/null || fail "chromium is not installed (scripts/setup installs it)"

"$recur" coordinator --state "$tmp/state.db" --listen 127.0.0.1:0 --port-file "$tmp/port" > "$tmp/coord.log" 2>&1 &
coord=$!
for _ in $(seq 100); do [[ -s "$tmp/port" ]] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$tmp/port")"
token="$(cat "$tmp/state.db.token")"
api() { curl -sS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -X "$1" "$url$2" ${3:+--data "$3"}; }
json_get() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1:]: v=v[int(k) if isinstance(v, list) else k]
print(v)' "$@"; }

api POST /api/sweeps '{"name": "s", "base_yaml": "model:\n  type: xl\n", "axes": ["model.n_layer"], "metric": "bpc",
  "ranks": 1, "retries": 0, "trials": [{"point": {"model.n_layer": 1}, "seed": 1, "overrides": ["model.n_layer=1"]}]}' >/dev/null
agent="$(api POST /api/agents '{"name": "evil", "slots": 1, "workdir": "/tmp/w"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
trial="$(api POST "/api/agents/$agent/lease" '{"free_slots": 1}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["trial"]["id"])')"
body="$(python3 -c 'import json, sys
evil = "<img src=x onerror=\"document.body.setAttribute(\x27data-pwned\x27,\x271\x27)\">"
print(json.dumps({"agent": int(sys.argv[1]), "attempt": 1, "progress": {k: evil for k in ("step", "steps", "loss", "eta_s")}}))' "$agent")"
api POST "/api/trials/$trial/heartbeat" "$body" > "$tmp/hb.json"
grep -q '"ok":true' "$tmp/hb.json" || fail "the heartbeat was not taken: $(cat "$tmp/hb.json")"

# A second sweep whose model is named with markup, 3 sizes x 2 seeds: its fit's legend carries the name.
# Its first trial gets three good curve points among hostile ones.
python3 - > "$tmp/sweep2.json" <<'PY'
import json
evil = "<img src=x onerror=\"document.body.setAttribute('data-pwned','2')\">"
trials = [{"point": {"model": evil, "model.n_layer": n}, "seed": s, "overrides": ["model.n_layer=%d" % n]}
          for n in (1, 2, 4) for s in (1, 2)]
print(json.dumps({"name": "s2", "base_yaml": "model:\n  type: xl\n", "axes": ["model", "model.n_layer"], "metric": "bpc",
                  "ranks": 1, "retries": 0, "trials": trials}))
PY
api POST /api/sweeps "$(cat "$tmp/sweep2.json")" >/dev/null
sizes=(1 1 2 2 4 4)
for i in 1 2 3 4 5 6; do
  t="$(api POST "/api/agents/$agent/lease" '{"free_slots": 1}' | json_get trial id)"
  n=${sizes[$((i - 1))]}
  if [[ $i == 1 ]]; then
    first=$t
    beat() { api POST "/api/trials/$t/heartbeat" "{\"agent\": $agent, \"attempt\": 1, \"progress\": $1}"; }
    beat '{"step": 10, "loss": 3.5}' | grep -q '"ok":true' || fail "a good heartbeat was refused"
    beat '{"step": "<b>20</b>", "loss": 3.0}' | grep -q '"ok":true' || fail "a heartbeat with a string step was refused"
    beat '{"step": 20, "loss": "<script>alert(1)</script>"}' | grep -q '"ok":true' || fail "a string loss"
    beat '{"step": 20.5, "loss": 3.0}' >/dev/null
    beat '{"step": -20, "loss": 3.0}' >/dev/null
    python3 -c 'import json,sys; print(json.dumps({"agent": int(sys.argv[1]), "attempt": 1, "progress": {"step": [1] * 100000, "loss": [2.0] * 50000}}))' \
      "$agent" > "$tmp/huge.json"
    api POST "/api/trials/$t/heartbeat" "@$tmp/huge.json" | grep -q '"ok":true' || fail "a heartbeat with huge arrays was refused"
    # a number JSON cannot hold in a double is a malformed body (400), not a server failure
    [[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" -X POST "$url/api/trials/$t/heartbeat" \
      --data "{\"agent\": $agent, \"attempt\": 1, \"progress\": {\"step\": 30, \"loss\": 1e400}}")" == 400 ]] || fail "1e400 was not a 400"
    beat '{"step": 30, "loss": 2.5}' >/dev/null
    beat '{"step": 40, "loss": 2.25}' >/dev/null
    api GET "/api/trials/$t/curve" > "$tmp/curve.json"
    python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert [(x["step"], x["loss"]) for x in c] == [([10, 30, 40], [3.5, 2.5, 2.25])], c' \
      "$tmp/curve.json" || fail "hostile heartbeats changed the curve: $(cat "$tmp/curve.json")"
  fi
  bpc="$(python3 -c "print(1 + 30 * ($n * 1000) ** -0.5 + 0.001 * $i)")"
  api POST "/api/trials/$t/report" "{\"agent\": $agent, \"attempt\": 1, \"status\": \"succeeded\", \"result\": {\"bpc\": $bpc, \"parameters\": $((n * 1000))}}" >/dev/null
done
api GET /api/sweeps/2/results?fit=power\&bootstrap=50 | json_get fit fits 0 alpha >/dev/null || fail "the hostile sweep has no fit"
[[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$url/api/sweeps/2/results?fit=power&bootstrap=100000")" == 400 ]] ||
  fail "an unbounded bootstrap was not refused"

timeout 60 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=5000 \
  --dump-dom "$url/?token=$token" > "$tmp/dom.html" 2>"$tmp/chromium.log" || fail "chromium failed: $(tail -5 "$tmp/chromium.log")"
grep -q '<tr class="trial"><td>1</td>' "$tmp/dom.html" || fail "the page does not list the trial: $(head -c 600 "$tmp/dom.html")"
# the handler ran if the body carries its attribute; the markup was parsed if an <img> sits in the table
grep -qE '<body data-pwned="[12]"' "$tmp/dom.html" && fail "the hostile heartbeat ran a script in the page"
grep -qE '<td><img src="x"' "$tmp/dom.html" && fail "the hostile heartbeat's markup was parsed as HTML"
grep -q '<td>&lt;img src=x onerror=' "$tmp/dom.html" || fail "the hostile progress is not shown as text: $(grep -o '<tr class="trial">.*</tr>' "$tmp/dom.html" | head -c 800)"
grep -qE '<svg[^>]*><img|<text[^>]*><img' "$tmp/dom.html" && fail "a hostile series name was parsed as HTML in a plot"
grep -qE '<text class="legend"[^>]*>model=&lt;img src=x onerror=.*: α = [0-9.]+ \[' "$tmp/dom.html" ||
  fail "the hostile series name is not shown as text in the legend: $(grep -oE '<text class="legend"[^<]*' "$tmp/dom.html" | head -3)"
grep -qE "<svg class=\"curve\" data-trial=\"$first\"[^>]*><title>step 40: loss 2.2500</title><polyline class=\"loss\" fill=\"none\" stroke=\"#06c\" points=\"[0-9.]+,[0-9.]+ [0-9.]+,[0-9.]+ [0-9.]+,[0-9.]+\"" "$tmp/dom.html" ||
  fail "the good curve points are not drawn: $(grep -oE '<svg class="curve".{0,400}' "$tmp/dom.html" | head -3)"
echo PASS
