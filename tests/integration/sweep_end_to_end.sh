#!/usr/bin/env bash
# A tiny 2 x 2 ablation end to end with local agents: submit, two agents run the four trials, the
# results table (table and CSV) with RSA gates, the plot as PNG and SVG (matplotlib), and the
# coordinator's web page in headless Chromium showing the sweep's trials and its plot.
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

# The shipped tiny 2 x 2 spec, pointed at this test's data.
sed -e "s|base: ../tiny/rsa_xl.yaml|base: $src/configs/tiny/rsa_xl.yaml|" -e "s|data.path: .*|data.path: $tmp/data|" \
  "$src/configs/sweeps/tiny-2x2.yaml" > "$tmp/spec.yaml"
sweep="$("$recur" sweep submit "$tmp/spec.yaml" --coordinator "$url" --token-file "$token_file" | tail -1)"
for a in 1 2; do
  "$recur" agent --coordinator "$url" --token-file "$token_file" --workdir "$tmp/work" --slots 1 --heartbeat 1 \
    --exit-when-idle > "$tmp/agent-$a.log" 2>&1 &
  agents+=($!)
done
for p in "${agents[@]}"; do wait "$p" || fail "an agent failed"; done

"$recur" sweep status "$sweep" --coordinator "$url" --token-file "$token_file" | tee "$tmp/status.txt"
grep -q "completed" "$tmp/status.txt" || fail "the sweep did not complete"
"$recur" sweep results "$sweep" --coordinator "$url" --token-file "$token_file" --plot "$tmp/plots" | tee "$tmp/table.txt"
[[ "$(grep -c '^xl \|^rsa_xl ' "$tmp/table.txt")" == 4 ]] || fail "the table does not have 4 rows"
grep -q '^rsa_xl | 2 | .* | 0\.[0-9]* 0\.[0-9]*$' "$tmp/table.txt" || fail "no RSA gates for the 2-layer RSA-XL row"
"$recur" sweep results "$sweep" --coordinator "$url" --token-file "$token_file" --format csv > "$tmp/table.csv"
head -1 "$tmp/table.csv" | grep -q '^model,model.n_layer,bpc_mean,bpc_sd,n,rank,rsa_gates$' || fail "CSV header"
png="$tmp/plots/sweep-$sweep-bpc.png"; svg="$tmp/plots/sweep-$sweep-bpc.svg"
[[ "$(head -c 8 "$png" | od -An -c | tr -d ' ')" == '211PNG\r\n032\n' ]] || fail "no PNG plot"
grep -q '<svg' "$svg" || fail "no SVG plot"

# The web page in headless Chromium: the sweep, its four trials, and the plot drawn from the results.
timeout 60 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=5000 \
  --dump-dom "$url/?token=$(cat "$token_file")" > "$tmp/dom.html" 2>"$tmp/chromium.log" || fail "chromium failed: $(tail -5 "$tmp/chromium.log")"
# (the page's own script holds these tags as text too: match only rendered values)
[[ "$(grep -oE '<tr class="trial"><td>[0-9]+</td>' "$tmp/dom.html" | wc -l)" == 4 ]] || fail "the page does not list the 4 trials: $(head -c 600 "$tmp/dom.html")"
grep -qE '<svg class="plot" width="[0-9]+"' "$tmp/dom.html" || fail "the page has no plot"
grep -qE '<polyline fill="none" stroke="#[0-9a-f]+" points="[0-9]' "$tmp/dom.html" || fail "the plot has no lines"
grep -q '<span class="completed">(completed)' "$tmp/dom.html" || fail "the page does not show the sweep's state"
# without the token the page is refused
code="$(python3 -c "import urllib.request,sys
try: urllib.request.urlopen('$url/'); print(200)
except urllib.error.HTTPError as e: print(e.code)")"
[[ "$code" == 401 ]] || fail "the page without a token answered $code"
echo PASS
