#!/usr/bin/env bash
# A tiny 2 x 2 ablation end to end with local agents: submit, two agents run the four trials, the
# results table (table and CSV) with RSA gates, the plot as PNG and SVG (matplotlib); then a tiny
# model-scaling sweep (3 sizes x 2 seeds) fitted with --fit power and plotted by plot_scaling.py; and
# the coordinator's web page in headless Chromium showing both sweeps' trials, each trial's loss curve
# from heartbeats, and the scaling plot on log axes with the fitted curve and its exponent.
# Args: RECUR_BINARY SOURCE_DIR.
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-sweep-test.XXXXXX)"
cleanup() {
  [[ -n "${coord:-}" ]] && kill -9 "$coord" 2>/dev/null || true
  pkill -9 -f "$tmp/work" 2>/dev/null || true
  [[ -n "${KEEP:-}" ]] || rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -20 "$tmp/coord.log" "$tmp"/agent-*.log 2>/dev/null; exit 1; }
command -v chromium >/dev/null || fail "chromium is not installed (scripts/setup installs it)"

head -c 1000000 /dev/urandom | base64 > "$tmp/corpus.txt"
"$recur" shard --corpus bytes --input "$tmp/corpus.txt" --out "$tmp/data" --quiet >/dev/null
"$recur" coordinator --state "$tmp/state.db" --listen 127.0.0.1:0 --port-file "$tmp/port" > "$tmp/coord.log" 2>&1 &
coord=$!
for _ in $(seq 100); do [[ -s "$tmp/port" ]] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$tmp/port")"
token_file="$tmp/state.db.token"

is_png() { [[ "$(head -c 8 "$1" | od -An -c | tr -d ' ')" == '211PNG\r\n032\n' ]]; }
# A shipped tiny spec NAME, pointed at this test's data, run to the end by two agents (heartbeats every
# HEARTBEAT seconds); sets $sweep to its id.
run_sweep() {
  local name="$1" heartbeat="$2" agents=() a p
  sed -e "s|base: ../tiny/rsa_xl.yaml|base: $src/configs/tiny/rsa_xl.yaml|" -e "s|data.path: .*|data.path: $tmp/data|" \
    "$src/configs/sweeps/$name.yaml" > "$tmp/$name.yaml"
  sweep="$("$recur" sweep submit "$tmp/$name.yaml" --coordinator "$url" --token-file "$token_file" | tail -1)"
  for a in 1 2; do
    "$recur" agent --coordinator "$url" --token-file "$token_file" --workdir "$tmp/work" --slots 1 --heartbeat "$heartbeat" \
      --exit-when-idle > "$tmp/agent-$name-$a.log" 2>&1 &
    agents+=($!)
  done
  for p in "${agents[@]}"; do wait "$p" || fail "an agent of $name failed"; done
}
run_sweep tiny-2x2 1

"$recur" sweep status "$sweep" --coordinator "$url" --token-file "$token_file" | tee "$tmp/status.txt"
grep -q "completed" "$tmp/status.txt" || fail "the sweep did not complete"
"$recur" sweep results "$sweep" --coordinator "$url" --token-file "$token_file" --plot "$tmp/plots" | tee "$tmp/table.txt"
[[ "$(grep -c '^xl \|^rsa_xl ' "$tmp/table.txt")" == 4 ]] || fail "the table does not have 4 rows"
grep -q '^rsa_xl | 2 | .* | 0\.[0-9]* 0\.[0-9]*$' "$tmp/table.txt" || fail "no RSA gates for the 2-layer RSA-XL row"
"$recur" sweep results "$sweep" --coordinator "$url" --token-file "$token_file" --format csv > "$tmp/table.csv"
head -1 "$tmp/table.csv" | grep -q '^model,model.n_layer,bpc_mean,bpc_sd,n,rank,rsa_gates$' || fail "CSV header"
png="$tmp/plots/sweep-$sweep-bpc.png"; svg="$tmp/plots/sweep-$sweep-bpc.svg"
is_png "$png" || fail "no PNG plot"
grep -q '<svg' "$svg" || fail "no SVG plot"

# A tiny model-scaling sweep: 3 parameter counts x 2 seeds, long enough for a few heartbeats each.
first="$sweep"
run_sweep tiny-scaling 0.5
scaling="$sweep" sweep="$first"
"$recur" sweep results "$scaling" --coordinator "$url" --token-file "$token_file" --fit power --bootstrap 200 \
  --format json --plot "$tmp/plots" > "$tmp/scaling.json" || fail "sweep results --fit power failed"
python3 - "$tmp/scaling.json" <<'PY' || fail "the scaling fit: $(head -c 600 "$tmp/scaling.json")"
import json, math, sys
f = json.load(open(sys.argv[1]))["fit"]
assert f["x"] == "parameters", f["x"]
[s] = f["fits"]
assert len(s["points"]) == 3 and all(len(p["values"]) == 2 and "sd" in p for p in s["points"]), s["points"]
assert math.isfinite(s["alpha"]) and s["alpha_ci"] is not None, s
PY
/usr/bin/python3 "$src/scripts/plot_scaling.py" "$tmp/scaling.json" "$tmp/scaling.png" || fail "plot_scaling.py failed"
for png in "$tmp/scaling.png" "$tmp/plots/sweep-$scaling-bpc-fit.png"; do  # by hand, and by --plot with --fit
  is_png "$png" || fail "no scaling PNG $png"
done
grep -q '<svg' "$tmp/plots/sweep-$scaling-bpc-fit.svg" || fail "no scaling SVG"
# the curves API: every trial of the scaling sweep has its loss curve, one with several points
token="$(cat "$token_file")"
curl -sS -H "Authorization: Bearer $token" "$url/api/sweeps/$scaling/curves" > "$tmp/curves.json"
python3 - "$tmp/curves.json" <<'PY' || fail "the loss curves: $(head -c 600 "$tmp/curves.json")"
import json, sys
c = json.load(open(sys.argv[1]))
assert len({x["trial"] for x in c}) == 6, c
assert max(len(x["step"]) for x in c) >= 3, c
assert all(x["step"] == sorted(x["step"]) for x in c), c
PY

# The web page in headless Chromium: both sweeps, their trials with loss curves, and the plots drawn
# from the results (the scaling sweep's with its fit).
timeout 60 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=5000 \
  --dump-dom "$url/?token=$token" > "$tmp/dom.html" 2>"$tmp/chromium.log" || fail "chromium failed: $(tail -5 "$tmp/chromium.log")"
# (the page's own script holds these tags as text too: match only rendered values)
[[ "$(grep -oE '<tr class="trial"><td>[0-9]+</td>' "$tmp/dom.html" | wc -l)" == 10 ]] || fail "the page does not list the 10 trials: $(head -c 600 "$tmp/dom.html")"
grep -qE '<svg class="plot" width="[0-9]+"' "$tmp/dom.html" || fail "the page has no plot"
grep -qE '<polyline fill="none" stroke="#[0-9a-f]+" points="[0-9]' "$tmp/dom.html" || fail "the plot has no lines"
grep -q '<span class="completed">(completed)' "$tmp/dom.html" || fail "the page does not show the sweep's state"
# a loss curve per trial, drawn from heartbeats: a polyline of several points
grep -qE '<polyline class="loss" fill="none" stroke="#06c" points="[0-9.]+,[0-9.]+( [0-9.]+,[0-9.]+){2,}"' "$tmp/dom.html" ||
  fail "no trial's loss curve has several points: $(grep -oE '<svg class="curve".{0,300}' "$tmp/dom.html" | head -3)"
[[ "$(grep -oE '<svg class="curve" data-trial="[0-9]+"' "$tmp/dom.html" | sort -u | wc -l)" -ge 6 ]] || fail "the scaling sweep's trials have no loss curves"
# the scaling plot: log x (parameters) and log y, the fitted curve, and alpha with its interval
grep -qE '<svg class="plot" width="[0-9]+" height="[0-9]+" data-x-scale="log" data-y-scale="log"' "$tmp/dom.html" || fail "no plot on log axes"
grep -qE '<polyline class="fit" fill="none" stroke="#[0-9a-f]+" stroke-width="1.5" points="[0-9.]+,[0-9.]+( [0-9.]+,[0-9.]+){10,}"' "$tmp/dom.html" || fail "no fitted curve"
grep -qE '>model=rsa_xl: α = [0-9.]+ \[[-0-9.]+, [-0-9.]+\]</text>' "$tmp/dom.html" || fail "no exponent with its interval in the legend: $(grep -oE '<text class="legend"[^<]*' "$tmp/dom.html")"
grep -q '>parameters (log)</text>' "$tmp/dom.html" || fail "the scaling plot's x is not the parameter count"
grep -q '<p class="fit-note">no power-law fit yet: ' "$tmp/dom.html" || fail "the 2 x 2 sweep does not say why it has no fit"
# without the token the page is refused
code="$(python3 -c "import urllib.request,sys
try: urllib.request.urlopen('$url/'); print(200)
except urllib.error.HTTPError as e: print(e.code)")"
[[ "$code" == 401 ]] || fail "the page without a token answered $code"
echo PASS
