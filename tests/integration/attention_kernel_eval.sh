#!/usr/bin/env bash
# Issue 19 acceptance: `recur eval --set model.attention_kernel=sdpa` and `=math` give the same BPC
# (within 1e-5) on a trained RSA-XL, for the final evaluation's settings (same_length, a longer memory)
# and for the training segment. The kernels differ only in how softmax(S)V is formed.
# Args: RECUR_BINARY SOURCE_DIR.
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-attention-kernel.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

python3 -c 'import random; random.seed(3); open("'"$tmp"'/corpus.txt", "w").write("".join(random.choice("abcde fgh\n") for _ in range(400000)))'
"$recur" shard --corpus bytes --input "$tmp/corpus.txt" --out "$tmp/data" --shards 2 --quiet >/dev/null
"$recur" train --config "$src/configs/tiny/rsa_xl.yaml" --run-dir "$tmp/run" --set "data.path=$tmp/data" \
  --set train.steps=40 --set checkpoint.every_steps=0 >"$tmp/train.log" 2>&1 || { cat "$tmp/train.log" >&2; fail "training failed"; }

bpc() {  # bpc KERNEL [--set ...]
  local kernel=$1; shift
  "$recur" eval --run-dir "$tmp/run" --set "model.attention_kernel=$kernel" "$@" 2>"$tmp/eval.err" |
    python3 -c 'import json, sys; print(repr(json.load(sys.stdin)["bpc"]))' || { cat "$tmp/eval.err" >&2; fail "recur eval ($kernel $*) failed"; }
}
for settings in "" "--set eval.same_length=true --set eval.mem_len=48" "--set eval.same_length=false --set eval.tgt_len=16"; do
  # shellcheck disable=SC2086
  math="$(bpc math $settings)"; sdpa="$(bpc sdpa $settings)"
  python3 - "$math" "$sdpa" "$settings" <<'PY' || fail "the kernels disagree"
import sys
math, sdpa, settings = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3] or "the run's eval settings"
assert 0.5 < math < 8, f"implausible BPC {math}"
d = abs(math - sdpa)
print(f"{settings}: math {math:.7f}, sdpa {sdpa:.7f}, |d| {d:.2e}")
sys.exit(0 if d <= 1e-5 else 1)
PY
done
echo PASS
