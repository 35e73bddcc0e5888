#!/usr/bin/env bash
# text8: 10^8 lowercase letters and spaces, split 90M/5M/5M, vocabulary of 27 symbols.
# Usage: sharding/text8.sh INPUT OUT_DIR    (INPUT: the text8 file or text8.zip)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $# -eq 2 ]] || die "usage: text8.sh {text8|text8.zip} OUT_DIR"
in="$1"; out="$2"
[[ -f "$in" ]] || die "$in not found"
if [[ "$in" == *.zip ]]; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  unpack_member "$in" text8 "$tmp/text8"
  in="$tmp/text8"
fi
"$RECUR" shard --corpus text8 --input "$in" --out "$out"
