#!/usr/bin/env bash
# enwik8: the first 10^8 bytes of a Wikipedia dump, split 90M/5M/5M, every byte kept.
# Usage: sharding/enwik8.sh INPUT OUT_DIR    (INPUT: the enwik8 file or enwik8.zip)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $# -eq 2 ]] || die "usage: enwik8.sh {enwik8|enwik8.zip} OUT_DIR"
in="$1"; out="$2"
[[ -f "$in" ]] || die "$in not found"
if [[ "$in" == *.zip ]]; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  unpack_member "$in" enwik8 "$tmp/enwik8"
  in="$tmp/enwik8"
fi
"$RECUR" shard --corpus enwik8 --input "$in" --out "$out"
