#!/usr/bin/env bash
# Every sweep spec the project ships (configs/sweeps/*.yaml and the experiments' sweep*.yaml, prepared
# as scripts/experiment prepares them: {data_root} filled in, base made absolute) expands with
# `recur sweep submit --dry-run`: each of its trials' configs is checked, the trial list has the count
# it announces, and no two trials share a label and seed (submit refuses that itself; this checks the listing).
# A spec with a typo is refused, naming the key. Args: RECUR_BINARY SOURCE_DIR.
set -euo pipefail
recur="$1"; src="$2"
source "$src/scripts/lib.sh"
tmp="$(mktemp -d /tmp/recur-sweep-specs.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
n=0
for f in "$src"/configs/sweeps/*.yaml "$src"/configs/experiments/*/sweep*.yaml; do
  prepare_spec "$f" "$tmp/data" "$tmp/spec.yaml"
  if ! "$recur" sweep submit "$tmp/spec.yaml" --dry-run > "$tmp/out" 2>&1; then
    cat "$tmp/out"; echo "FAIL: $f does not expand"; exit 1
  fi
  python3 - "$f" "$tmp/out" <<'PY'
import re, sys
name, lines = sys.argv[1], open(sys.argv[2]).read().splitlines()
m = re.fullmatch(r"(\d+) trials?", lines[-1] if lines else "")
assert m, "%s: no trial count on the last line: %r" % (name, lines[-1:])
trials = lines[:-1]
assert len(trials) == int(m.group(1)) > 0, "%s: %d trial lines, %s announced" % (name, len(trials), m.group(1))
dupes = sorted({t for t in trials if trials.count(t) > 1})
assert not dupes, "%s: trials share a label and seed: %s" % (name, dupes[:3])
PY
  n=$((n + 1))
done
[[ $n -ge 10 ]] || { echo "FAIL: only $n specs found under $src/configs"; exit 1; }
# a misspelt key is refused with the spec's name and the key
sed 's/^seeds:/seedz:/' "$src/configs/sweeps/tiny-2x2.yaml" > "$tmp/typo.yaml"
if "$recur" sweep submit "$tmp/typo.yaml" --dry-run > "$tmp/out" 2>&1; then echo "FAIL: a spec with 'seedz' expanded"; exit 1; fi
grep -q "typo.yaml" "$tmp/out" && grep -q "seedz" "$tmp/out" || { cat "$tmp/out"; echo "FAIL: the error names neither the spec nor the key"; exit 1; }
echo "$n sweep specs expand"
echo PASS
