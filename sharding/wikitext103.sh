#!/usr/bin/env bash
# WikiText-103 (word level): wiki.{train,valid,test}.tokens, vocabulary from train, <eos> per line.
# Usage: sharding/wikitext103.sh INPUT OUT_DIR
#   INPUT: a directory holding the three files, or wikitext-103-v1.zip (members wikitext-103/wiki.*.tokens)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $# -eq 2 ]] || die "usage: wikitext103.sh {DIR|wikitext-103-v1.zip} OUT_DIR"
in="$1"; out="$2"
if [[ -f "$in" && "$in" == *.zip ]]; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  for s in train valid test; do unpack_member "$in" "wikitext-103/wiki.$s.tokens" "$tmp/wiki.$s.tokens"; done
  in="$tmp"
fi
[[ -d "$in" ]] || die "$in is neither a directory nor a .zip"
"$RECUR" shard --corpus wikitext103 --input "$in/wiki.train.tokens" "$in/wiki.valid.tokens" "$in/wiki.test.tokens" --out "$out"
