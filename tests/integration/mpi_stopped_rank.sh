#!/usr/bin/env bash
# A rank stopped with SIGSTOP mid-run (alive, silent) ends the `mpirun -np 2` job through the collective
# deadline: a non-zero exit within 120 s, and a line on stderr naming the waiting rank and the operation.
# Args: RECUR_BINARY SOURCE_DIR
set -euo pipefail
recur="$1"; src="$2"
timeout_s=30
tmp="$(mktemp -d /tmp/recur-mpi-stopped.XXXXXX)"
job=""; victim=""
cleanup() {
  # Leave nothing behind, stopped or not (a stopped rank outlives mpirun's kill only if it missed it).
  local pids=""
  [[ -n "$job" ]] && pids="$(descendants "$job") $job"
  [[ -n "$victim" ]] && grep -qs "$tmp" "/proc/$victim/cmdline" && pids="$pids $victim"
  for pid in $pids; do kill -CONT "$pid" 2>/dev/null || true; kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
descendants() {  # every process below $1
  local child
  for child in $(pgrep -P "$1" || true); do echo "$child"; descendants "$child"; done
}
trap cleanup EXIT

head -c 3000000 /dev/urandom > "$tmp/corpus.bin"
"$recur" shard --corpus bytes --input "$tmp/corpus.bin" --out "$tmp/data" --quiet >/dev/null
mpirun -np 2 --allow-run-as-root --oversubscribe --bind-to none "$recur" train --config "$src/configs/tiny/xl.yaml" \
  --run-dir "$tmp/run" --set "data.path=$tmp/data" --set train.steps=1000000 --set train.log_every=1 \
  --set "train.collective_timeout_s=$timeout_s" > "$tmp/log" 2>&1 &
job=$!
for _ in $(seq 300); do [[ -s "$tmp/run/metrics.jsonl" ]] && break; sleep 0.1; done
[[ -s "$tmp/run/metrics.jsonl" ]] || { cat "$tmp/log"; echo "FAIL: training never started"; exit 1; }

for pid in $(descendants "$job"); do
  if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim="$pid"; break; fi
done
[[ -n "$victim" ]] || { ps -ef --forest; echo "FAIL: no process of mpirun $job has OMPI_COMM_WORLD_RANK=1"; exit 1; }
echo "stopping rank 1 (process $victim) with SIGSTOP; train.collective_timeout_s=$timeout_s"
start=$(date +%s)
kill -STOP "$victim"
set +e
timeout 120 tail --pid="$job" -f /dev/null
if kill -0 "$job" 2>/dev/null; then cat "$tmp/log"; echo "FAIL: job still running 120 s after rank 1 was stopped"; exit 1; fi
wait "$job"; rc=$?
set -e
elapsed=$(( $(date +%s) - start ))
echo "job ended ${elapsed}s after the SIGSTOP with exit code $rc"
grep -E "did not complete within|MPI_ABORT" "$tmp/log" | head -5
[[ $rc -ne 0 ]] || { cat "$tmp/log"; echo "FAIL: exit code 0 after a rank was stopped"; exit 1; }
line="$(grep -E "rank 0 of 2: MPI [a-z_]+ did not complete within $timeout_s s \(train\.collective_timeout_s\)" "$tmp/log" | head -1)"
[[ -n "$line" ]] || { cat "$tmp/log"; echo "FAIL: no line naming rank 0, the MPI operation and the timeout"; exit 1; }
echo "PASS"
