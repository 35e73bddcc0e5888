#!/usr/bin/env bash
# A rank killed with SIGKILL mid-run ends the whole `mpirun -np 2` job with a non-zero exit within 60 s.
# Args: RECUR_BINARY SOURCE_DIR
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-mpi-failure.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
head -c 3000000 /dev/urandom > "$tmp/corpus.bin"
"$recur" shard --corpus bytes --input "$tmp/corpus.bin" --out "$tmp/data" --quiet >/dev/null
mpirun -np 2 --allow-run-as-root --oversubscribe --bind-to none "$recur" train --config "$src/configs/tiny/xl.yaml" \
  --run-dir "$tmp/run" --set "data.path=$tmp/data" --set train.steps=1000000 --set train.log_every=1 \
  > "$tmp/log" 2>&1 &
job=$!
for _ in $(seq 300); do [[ -s "$tmp/run/metrics.jsonl" ]] && break; sleep 0.1; done
[[ -s "$tmp/run/metrics.jsonl" ]] || { cat "$tmp/log"; echo "FAIL: training never started"; exit 1; }
victim="$(pgrep -f -- "--run-dir $tmp/run" | grep -v "^$job\$" | tail -1)"
echo "killing rank process $victim with SIGKILL"
start=$(date +%s)
kill -9 "$victim"
set +e
timeout 60 tail --pid="$job" -f /dev/null
wait "$job"; rc=$?
set -e
elapsed=$(( $(date +%s) - start ))
if kill -0 "$job" 2>/dev/null; then kill -9 "$job"; echo "FAIL: job still running after 60 s"; exit 1; fi
echo "job ended after ${elapsed}s with exit code $rc"
[[ $rc -ne 0 ]] || { echo "FAIL: exit code 0 after a rank was killed"; exit 1; }
[[ $elapsed -le 60 ]] || { echo "FAIL: took ${elapsed}s"; exit 1; }
grep -qiE "rank|process" "$tmp/log" && echo "mpirun's message names the failed process:" && grep -iE "signal|rank|process" "$tmp/log" | head -3
echo "PASS"
