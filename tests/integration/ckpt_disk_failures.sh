#!/usr/bin/env bash
# A checkpoint save that fails — disk full (a small tmpfs) or a read-only file system — ends the run with
# a clear error and leaves the previous checkpoint valid and resumable; the error is one line, from the
# training thread or the background writer alike (no HDF5-DIAG stack: issue 17, finding 11).
# Args: RECUR_BINARY SOURCE_DIR.
# Needs root (mount).
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-ckpt-disk.XXXXXX)"
cleanup() {
  for d in full async ro; do umount "$tmp/$d/checkpoints" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
head -c 1000000 /dev/urandom | base64 > "$tmp/corpus.txt"
"$recur" shard --corpus bytes --input "$tmp/corpus.txt" --out "$tmp/data" --quiet >/dev/null
train() { "$recur" train --config "$src/configs/tiny/xl.yaml" --run-dir "$1" --set "data.path=$tmp/data" \
  --set train.log_every=4 --set checkpoint.every_steps=4 --set train.steps="$2" "${@:3}"; }
# LOG: the failure is told in one line, without HDF5's own error stack.
quiet_error() {
  if grep -q "HDF5-DIAG" "$1"; then echo "FAIL: HDF5 printed its error stack ($(grep -c . "$1") lines)"; exit 1; fi
  [[ "$(grep -c "error" "$1")" -eq 1 ]] || { echo "FAIL: more than one error line"; grep "error" "$1" | head; exit 1; }
}

# NAME EXTRA...: a run whose checkpoints go to a tmpfs with room for one tiny checkpoint, not two.
disk_full() {
  local name="$1"; shift
  mkdir -p "$tmp/$name/checkpoints"
  mount -t tmpfs -o size=700k tmpfs "$tmp/$name/checkpoints"
  set +e
  train "$tmp/$name" 12 "$@" > "$tmp/$name.log" 2>&1; local rc=$?
  set -e
  tail -2 "$tmp/$name.log"
  [[ $rc -ne 0 ]] || { echo "FAIL: the run succeeded on a full disk"; exit 1; }
  grep -qiE "disk full|No space" "$tmp/$name.log" || { echo "FAIL: the error does not say the disk is full"; exit 1; }
  quiet_error "$tmp/$name.log"
  "$recur" ckpt verify "$tmp/$name/checkpoints/step-00000004"
  [[ "$(cat "$tmp/$name/checkpoints/latest")" == "step-00000004" ]] || { echo "FAIL: latest moved"; exit 1; }
}
echo "== disk full"
disk_full full
echo "== disk full, background save (checkpoint.async)"
disk_full async --set checkpoint.async=true

echo "== read-only file system"
mkdir -p "$tmp/ro/checkpoints"
mount -t tmpfs -o size=20m tmpfs "$tmp/ro/checkpoints"
train "$tmp/ro" 4 > /dev/null 2>&1
mount -o remount,ro "$tmp/ro/checkpoints"
set +e
train "$tmp/ro" 8 > "$tmp/ro.log" 2>&1; rc=$?
set -e
tail -2 "$tmp/ro.log"
[[ $rc -ne 0 ]] || { echo "FAIL: the run succeeded on a read-only file system"; exit 1; }
grep -q "resuming from" "$tmp/ro.log" || { echo "FAIL: did not resume from step 4"; exit 1; }
grep -qiE "read-only|cannot" "$tmp/ro.log" || { echo "FAIL: the error does not say why"; exit 1; }
"$recur" ckpt verify "$tmp/ro/checkpoints/step-00000004"
mount -o remount,rw "$tmp/ro/checkpoints"
train "$tmp/ro" 8 > /dev/null 2>&1   # space back: the run continues from step 4
"$recur" ckpt verify "$tmp/ro/checkpoints/step-00000008"
echo PASS
