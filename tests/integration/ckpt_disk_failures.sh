#!/usr/bin/env bash
# A checkpoint save that fails — disk full (a small tmpfs) or a read-only file system — ends the run with
# a clear error and leaves the previous checkpoint valid and resumable. Args: RECUR_BINARY SOURCE_DIR.
# Needs root (mount).
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-ckpt-disk.XXXXXX)"
cleanup() { umount "$tmp/full/checkpoints" 2>/dev/null || true; umount "$tmp/ro/checkpoints" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
head -c 1000000 /dev/urandom | base64 > "$tmp/corpus.txt"
"$recur" shard --corpus bytes --input "$tmp/corpus.txt" --out "$tmp/data" --quiet >/dev/null
train() { "$recur" train --config "$src/configs/tiny/xl.yaml" --run-dir "$1" --set "data.path=$tmp/data" \
  --set train.log_every=4 --set checkpoint.every_steps=4 --set train.steps="$2"; }

echo "== disk full"
mkdir -p "$tmp/full/checkpoints"
mount -t tmpfs -o size=700k tmpfs "$tmp/full/checkpoints"   # room for one tiny checkpoint, not two
set +e
train "$tmp/full" 12 > "$tmp/full.log" 2>&1; rc=$?
set -e
tail -2 "$tmp/full.log"
[[ $rc -ne 0 ]] || { echo "FAIL: the run succeeded on a full disk"; exit 1; }
grep -qiE "disk full|No space" "$tmp/full.log" || { echo "FAIL: the error does not say the disk is full"; exit 1; }
"$recur" ckpt verify "$tmp/full/checkpoints/step-00000004"
[[ "$(cat "$tmp/full/checkpoints/latest")" == "step-00000004" ]] || { echo "FAIL: latest moved"; exit 1; }

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
