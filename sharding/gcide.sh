#!/usr/bin/env bash
# Prepares the embedded default corpus: Debian's dict-gcide dictionary text as a byte corpus with
# enwik8's 90/5/5 split. Usage: sharding/gcide.sh OUT_DIR [GCIDE_DICT_DZ]
# The decompressed text is kept beside OUT_DIR as gcide.txt (the source the manifest names).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $# -ge 1 ]] || die "usage: gcide.sh OUT_DIR [/usr/share/dictd/gcide.dict.dz]"
out="$1"
src="${2:-/usr/share/dictd/gcide.dict.dz}"
[[ -f "$src" ]] || die "$src not found: install Debian's dict-gcide (scripts/setup does)"
text="$(dirname "$out")/gcide.txt"
mkdir -p "$(dirname "$out")"
zcat "$src" > "$text.part" && mv "$text.part" "$text"
"$RECUR" shard --corpus bytes --input "$text" --out "$out" --split-ratios 0.9,0.05,0.05 --force
