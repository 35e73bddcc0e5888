#!/usr/bin/env bash
# The web page against a hostile agent (issue 17, finding 4): a token holder's heartbeat puts HTML
# with a script handler into a trial's progress; the page, rendered in headless Chromium, shows it as
# text and runs nothing. Args: RECUR_BINARY SOURCE_DIR.
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

api POST /api/sweeps '{"name": "s", "base_yaml": "model:\n  type: xl\n", "axes": ["model.n_layer"], "metric": "bpc",
  "ranks": 1, "retries": 0, "trials": [{"point": {"model.n_layer": 1}, "seed": 1, "overrides": ["model.n_layer=1"]}]}' >/dev/null
agent="$(api POST /api/agents '{"name": "evil", "slots": 1, "workdir": "/tmp/w"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
trial="$(api POST "/api/agents/$agent/lease" '{"free_slots": 1}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["trial"]["id"])')"
body="$(python3 -c 'import json, sys
evil = "<img src=x onerror=\"document.body.setAttribute(\x27data-pwned\x27,\x271\x27)\">"
print(json.dumps({"agent": int(sys.argv[1]), "attempt": 1, "progress": {k: evil for k in ("step", "steps", "loss", "eta_s")}}))' "$agent")"
api POST "/api/trials/$trial/heartbeat" "$body" > "$tmp/hb.json"
grep -q '"ok":true' "$tmp/hb.json" || fail "the heartbeat was not taken: $(cat "$tmp/hb.json")"

timeout 60 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=5000 \
  --dump-dom "$url/?token=$token" > "$tmp/dom.html" 2>"$tmp/chromium.log" || fail "chromium failed: $(tail -5 "$tmp/chromium.log")"
grep -q '<tr class="trial"><td>1</td>' "$tmp/dom.html" || fail "the page does not list the trial: $(head -c 600 "$tmp/dom.html")"
# the handler ran if the body carries its attribute; the markup was parsed if an <img> sits in the table
grep -q '<body data-pwned="1"' "$tmp/dom.html" && fail "the hostile heartbeat ran a script in the page"
grep -qE '<td><img src="x"' "$tmp/dom.html" && fail "the hostile heartbeat's markup was parsed as HTML"
grep -q '<td>&lt;img src=x onerror=' "$tmp/dom.html" || fail "the hostile progress is not shown as text: $(grep -o '<tr class="trial">.*</tr>' "$tmp/dom.html" | head -c 800)"
echo PASS
