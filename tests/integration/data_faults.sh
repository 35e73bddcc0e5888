#!/usr/bin/env bash
# Bad datasets and faults under the real binary (issue 17, findings 1, 6, 7): a shard truncated while
# `recur train` reads it, an unbounded --shards, shards that are devices, tokens outside the vocabulary.
# Every case must end with a one-line error naming the file, never a signal death, a hang or a backtrace.
# Args: RECUR_BINARY SOURCE_DIR.
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-data-faults.XXXXXX)"
pid=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
# one_line_error LOG WHAT: the failure is told once, without a LibTorch or HDF5 stack.
one_line_error() {
  if grep -qE "Exception raised from|frame #|HDF5-DIAG|_M_range_check" "$1"; then cat "$1" >&2; fail "$2: a backtrace or library message"; fi
  [[ "$(grep -ci "error" "$1")" -eq 1 ]] || { cat "$1" >&2; fail "$2: expected one error line"; }
}

head -c 3000000 /dev/urandom > "$tmp/corpus.bin"
"$recur" shard --corpus bytes --input "$tmp/corpus.bin" --out "$tmp/data" --shards 2 --quiet >/dev/null

echo "== finding 1: shards truncated while training reads them"
"$recur" train --config "$src/configs/tiny/transformer.yaml" --run-dir "$tmp/run" --set "data.path=$tmp/data" \
  --set train.steps=1000000 --set train.sampler=crop --set checkpoint.every_steps=0 >"$tmp/train.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [[ -s $tmp/run/metrics.jsonl ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/train.log" >&2; fail "training ended before its first step"; }
  sleep 0.2
done
[[ -s $tmp/run/metrics.jsonl ]] || fail "no training step within 120 s"
truncate -s 2000 "$tmp"/data/train-*.h5
rc=0
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$pid" 2>/dev/null && fail "training still runs 60 s after its shards were truncated"
wait "$pid" || rc=$?
pid=""
tail -3 "$tmp/train.log"
[[ $rc -ne 0 ]] || fail "training succeeded on truncated shards"
[[ $rc -lt 128 ]] || fail "training died of signal $((rc - 128)) (exit $rc) instead of reporting the truncated shard"
grep -qE "train-0000[01]\.h5: the shard changed while it was being read" "$tmp/train.log" ||
  fail "the error does not name the truncated shard"
one_line_error "$tmp/train.log" "truncated shard"
ok "truncated shard under a running trainer: exit $rc, one line naming the shard"

echo "== finding 6: --shards is bounded and small shards are small files"
rc=0; timeout 20 "$recur" shard --corpus bytes --input "$tmp/corpus.bin" --out "$tmp/many" --shards 1000000 \
  >"$tmp/many.log" 2>&1 || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || fail "--shards 1000000: exit $rc"
grep -q -- "--shards must be between 0 and 10000" "$tmp/many.log" || { cat "$tmp/many.log"; fail "--shards 1000000: unclear error"; }
[[ ! -e $tmp/many ]] || fail "--shards 1000000 left $tmp/many behind"
head -c 100000 /dev/urandom > "$tmp/small.bin"
"$recur" shard --corpus bytes --input "$tmp/small.bin" --out "$tmp/small" --shards 100 --quiet >/dev/null
kib=$(du -sk "$tmp/small" | cut -f1)
[[ $kib -lt 10000 ]] || fail "300 shards of a 100 kB corpus take $kib KiB (each shard at least a 1 MiB chunk?)"
"$recur" shard verify "$tmp/small" >/dev/null
ok "--shards 1000000 refused; 300 small shards take $kib KiB"
rc=0; timeout 20 "$recur" gen copy --max-len 1000000 --train 1000000000 --out "$tmp/copy" >"$tmp/gen.log" 2>&1 || rc=$?
[[ $rc -ne 0 && $rc -ne 124 && $rc -lt 128 ]] || fail "gen copy of 10^15 tokens: exit $rc"
grep -q "more than half of this machine's" "$tmp/gen.log" || { cat "$tmp/gen.log"; fail "gen copy: unclear error"; }
[[ ! -e $tmp/copy ]] || fail "gen copy left $tmp/copy behind"
ok "recur gen copy beyond the machine's memory is refused at once"

echo "== finding 7: verify refuses a shard that is a device, and finds tokens outside the vocabulary"
cp -r "$tmp/small" "$tmp/dev"
rm "$tmp/dev/valid-00003.h5"
ln -s /dev/zero "$tmp/dev/valid-00003.h5"
rc=0; timeout 30 "$recur" shard verify "$tmp/dev" >"$tmp/dev.log" 2>&1 || rc=$?
[[ $rc -eq 1 ]] || fail "verify on a /dev/zero shard: exit $rc (124 = still reading after 30 s)"
grep -q "valid-00003.h5: shard is not a regular file" "$tmp/dev.log" || { cat "$tmp/dev.log"; fail "device shard not named"; }
ok "verify on a shard linked to /dev/zero ends at once naming it"

# Every checksum still matches: only the manifest's vocabulary shrinks (bytes -> 16 symbols).
cp -r "$tmp/small" "$tmp/vocab"
symbols=$(printf '"s%d",' $(seq 1 16)); symbols="[${symbols%,}]"
sed -i "s/\"kind\": \"bytes\"/\"kind\": \"symbols\", \"symbols\": $symbols/; s/\"size\": 256/\"size\": 16/" "$tmp/vocab/manifest.json"
grep -q '"size": 16' "$tmp/vocab/manifest.json" || fail "could not edit the manifest"
rc=0; "$recur" shard verify "$tmp/vocab" >/dev/null 2>"$tmp/vocab.log" || rc=$?
[[ $rc -eq 1 ]] || fail "verify passes tokens outside the vocabulary (exit $rc)"
grep -q "is outside the vocabulary of 16 symbols" "$tmp/vocab.log" || { cat "$tmp/vocab.log"; fail "verify: no vocabulary error"; }
rc=0; "$recur" shard dump "$tmp/vocab" --split train >/dev/null 2>"$tmp/dump.log" || rc=$?
[[ $rc -ne 0 && $rc -lt 128 ]] || fail "dump: exit $rc"
grep -q "train-00000.h5: token .* is outside the vocabulary of 16 symbols" "$tmp/dump.log" || { cat "$tmp/dump.log"; fail "dump: unclear error"; }
one_line_error "$tmp/dump.log" "dump of tokens outside the vocabulary"
rc=0; "$recur" train --config "$src/configs/tiny/transformer.yaml" --run-dir "$tmp/run-vocab" --set "data.path=$tmp/vocab" \
  --set data.verify=false --set train.steps=2 >"$tmp/train-vocab.log" 2>&1 || rc=$?
[[ $rc -ne 0 && $rc -lt 128 ]] || fail "train on tokens outside the vocabulary: exit $rc"
grep -q "is outside the vocabulary of 16 symbols" "$tmp/train-vocab.log" || { tail -5 "$tmp/train-vocab.log"; fail "train: unclear error"; }
one_line_error "$tmp/train-vocab.log" "train on tokens outside the vocabulary"
ok "tokens outside the vocabulary: verify, dump and train (data.verify=false) name the shard in one line"

echo "== finding 6: train.threads is bounded"
rc=0; timeout 60 "$recur" train --config "$src/configs/tiny/transformer.yaml" --run-dir "$tmp/run-threads" \
  --set "data.path=$tmp/small" --set train.threads=100000 >"$tmp/threads.log" 2>&1 || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || fail "train.threads=100000: exit $rc"
grep -q "train.threads' = 100000 is outside the allowed range" "$tmp/threads.log" || { cat "$tmp/threads.log"; fail "unclear error"; }
ok "train.threads=100000 is a config error"
echo "== new: a corpus or config that is a device (it never ends)"
rc=0; timeout 30 "$recur" shard --corpus bytes --input /dev/zero --out "$tmp/zero" >"$tmp/zero.log" 2>&1 || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || fail "shard --input /dev/zero: exit $rc (124: it read for ever)"
grep -q "is a device, pipe or socket" "$tmp/zero.log" || { cat "$tmp/zero.log"; fail "shard /dev/zero: unclear error"; }
one_line_error "$tmp/zero.log" "shard --input /dev/zero"
ok "a device as corpus input is refused"
echo "PASS"
