#!/usr/bin/env bash
# End-to-end checks of `recur shard` / `recur gen` / help through the real binary (acceptance items 2, 4).
# Usage: shard_cli.sh RECUR_BINARY SOURCE_DIR. Works in its own temp dir, removed on exit; exits 1 on the first failure.
set -euo pipefail

recur=${1:?usage: shard_cli.sh RECUR_BINARY SOURCE_DIR}
src_dir=${2:?usage: shard_cli.sh RECUR_BINARY SOURCE_DIR}
[[ -x $recur ]] || { echo "FAIL: $recur is not an executable" >&2; exit 1; }
[[ -d $src_dir ]] || { echo "FAIL: $src_dir is not a directory" >&2; exit 1; }

tmp=$(mktemp -d /tmp/recur-shard-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# Runs a command with stdout/stderr in $tmp/out, $tmp/err; sets rc without tripping `set -e`.
run() {
  set +e
  "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  set -e
}
show() { echo "--- stdout:"; cat "$tmp/out"; echo "--- stderr:"; cat "$tmp/err"; }
expect_rc() {  # expect_rc CODE WHAT
  [[ $rc -eq $1 ]] || { show >&2; fail "$2: exit status $rc, expected $1"; }
}
expect_err() {  # expect_err TEXT WHAT
  grep -qF -- "$1" "$tmp/err" || { show >&2; fail "$2: stderr does not mention '$1'"; }
}

# ---- bytes corpus: shard, verify, dump round trip -------------------------------------------------
corpus=$tmp/corpus.bin
{ head -c 1500000 /dev/urandom; seq 1 200000; head -c 200000 /dev/urandom; } >"$corpus"
ds=$tmp/ds
run "$recur" shard --corpus bytes --input "$corpus" --out "$ds" --shards 3
expect_rc 0 "recur shard --corpus bytes"
[[ -f $ds/manifest.json ]] || fail "no $ds/manifest.json"
for split in train valid test; do
  n=$(find "$ds" -name "$split-*.h5" | wc -l)
  [[ $n -eq 3 ]] || fail "split $split has $n shard files, expected 3 (--shards 3)"
done
ok "shard --corpus bytes --shards 3 wrote 3 shards per split"

run "$recur" shard verify "$ds"
expect_rc 0 "recur shard verify on a fresh dataset"
ok "shard verify passes on a fresh dataset"

: >"$tmp/dumped"
for split in train valid test; do
  "$recur" shard dump "$ds" --split "$split" >>"$tmp/dumped" || fail "recur shard dump --split $split failed"
done
cmp "$tmp/dumped" "$corpus" || fail "dump of train+valid+test differs from the source"
ok "dump of train+valid+test is byte-identical to the $(stat -c %s "$corpus")-byte source"

# ---- one flipped byte: verify fails naming the shard ----------------------------------------------
shard=$ds/train-00001.h5
size=$(stat -c %s "$shard")
offset=$((size / 2))
old=$(od -An -tu1 -j "$offset" -N1 "$shard" | tr -d ' ')
new=$(((old + 1) % 256))
printf "\\$(printf %03o "$new")" | dd of="$shard" bs=1 seek="$offset" conv=notrunc status=none
[[ $(stat -c %s "$shard") -eq $size ]] || fail "flipping a byte changed the size of $shard"
run "$recur" shard verify "$ds"
expect_rc 1 "recur shard verify on a flipped shard"
expect_err "train-00001.h5" "recur shard verify on a flipped shard"
ok "shard verify exits 1 and names train-00001.h5 after one byte at offset $offset was changed"

run "$recur" shard dump "$ds" --split train --verify
[[ $rc -ne 0 ]] || fail "recur shard dump --verify succeeded on a flipped shard"
expect_err "train-00001.h5" "recur shard dump --verify on a flipped shard"
ok "shard dump --verify refuses the flipped shard"

# ---- missing input: clear error, nothing left behind ----------------------------------------------
missing=$tmp/no-such-corpus.bin
run "$recur" shard --corpus bytes --input "$missing" --out "$tmp/missing-ds"
[[ $rc -ne 0 ]] || fail "recur shard on a missing input exited 0"
expect_err "$missing" "recur shard on a missing input"
[[ ! -e $tmp/missing-ds ]] || fail "a failed recur shard left $tmp/missing-ds"
leftovers=$(find "$tmp" -maxdepth 1 -name '*.tmp.*')
[[ -z $leftovers ]] || fail "a failed recur shard left $leftovers"
ok "shard on a missing input exits $rc naming it, leaving no output or *.tmp.*"

# ---- synthetic datasets -----------------------------------------------------------------------
run "$recur" gen formal --language d2 --out "$tmp/d2"
expect_rc 0 "recur gen formal --language d2"
run "$recur" shard verify "$tmp/d2"
expect_rc 0 "recur shard verify on the d2 dataset"
ok "gen formal --language d2 writes a dataset that verifies"

# The reference's protocol by default: no string twice, train and bin 0 disjoint (issue 18).
run "$recur" gen formal --language tomita5 --out "$tmp/t5"
expect_rc 0 "recur gen formal --language tomita5"
for split in train valid test; do
  "$recur" shard dump "$tmp/t5" --split "$split" | sort >"$tmp/t5.$split"
done
[[ $(wc -l <"$tmp/t5.train") -eq 10000 && $(wc -l <"$tmp/t5.valid") -eq 2000 ]] || fail "tomita5 split sizes"
[[ -z $(uniq -d "$tmp/t5.train") && -z $(uniq -d "$tmp/t5.valid") ]] || fail "tomita5 has a repeated string"
[[ -z $(comm -12 "$tmp/t5.train" "$tmp/t5.valid") ]] || fail "tomita5 train and bin 0 share strings"
[[ -z $(comm -12 "$tmp/t5.train" "$tmp/t5.test") ]] || fail "tomita5 train and bin 1 share strings"
grep -q '"duplicates": *"drop"' "$tmp/t5/manifest.json" || fail "the manifest does not record --duplicates"
ok "gen formal --language tomita5: no repeats, train, bin 0 and bin 1 disjoint"

run "$recur" gen formal --language parity --max-len 6 --train 50 --bin0 50 --out "$tmp/p6"
expect_rc 1 "recur gen formal with more strings than exist"
expect_err "'parity'" "recur gen formal with more strings than exist"
expect_err "100 distinct" "recur gen formal with more strings than exist"
expect_err "only 62" "recur gen formal with more strings than exist"
[[ ! -e $tmp/p6 ]] || fail "a failed gen formal left $tmp/p6"
run "$recur" gen formal --language parity --max-len 6 --train 50 --bin0 50 --duplicates keep --out "$tmp/p6"
expect_rc 0 "recur gen formal --duplicates keep"
run "$recur" gen formal --language parity --lengths exponential --out "$tmp/bad"
expect_rc 2 "recur gen formal --lengths exponential"
expect_err "geometric or uniform" "recur gen formal --lengths exponential"
ok "gen formal: too few distinct strings and a bad --lengths are clear errors"

run "$recur" gen copy --max-len 64 --train 100 --out "$tmp/copy"
expect_rc 0 "recur gen copy --max-len 64 --train 100"
run "$recur" shard verify "$tmp/copy"
expect_rc 0 "recur shard verify on the copy dataset"
ok "gen copy --max-len 64 --train 100 writes a dataset that verifies"

# ---- help and usage errors --------------------------------------------------------------------
for cmd in "--help" "shard --help" "gen formal --help" "bench --help"; do
  # shellcheck disable=SC2086  # split the subcommand words on purpose
  run "$recur" $cmd
  expect_rc 0 "recur $cmd"
  grep -q "usage:" "$tmp/out" || { show >&2; fail "recur $cmd does not print usage:"; }
done
ok "--help of recur, shard, gen formal and bench exits 0 with usage:"

run "$recur" shard --corpse bytes --input "$corpus" --out "$tmp/typo-ds"
expect_rc 2 "recur shard --corpse"
expect_err "--corpse" "recur shard --corpse"
expect_err "did you mean --corpus" "recur shard --corpse"
[[ ! -e $tmp/typo-ds ]] || fail "a usage error created $tmp/typo-ds"
ok "an unknown option exits 2 and suggests --corpus"

echo "shard_cli: all checks passed"
