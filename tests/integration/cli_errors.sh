#!/usr/bin/env bash
# LibTorch's errors — out of memory for an absurd model.d_model, an index out of range for a token
# outside the model's vocabulary — reach the user as one line naming the command and what to look at,
# not a C++ backtrace (issue 17, finding 12). Args: RECUR_BINARY SOURCE_DIR.
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-cli-errors.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

# COMMAND LOG WANT...: the command failed with exactly one line besides the timestamped log, naming
# every WANT.
one_error_line() {
  local command="$1" log="$2"; shift 2
  local lines; lines="$(grep -v '^\[[0-9:]*\] ' "$log" || true)"
  if [[ "$(printf '%s\n' "$lines" | wc -l)" -ne 1 || "$lines" != "recur $command: error: "* ]]; then
    echo "FAIL: expected one 'recur $command: error:' line, got:"; head -8 "$log"; exit 1
  fi
  for want in "$@"; do
    [[ "$lines" == *"$want"* ]] || { echo "FAIL: the error does not name '$want': $lines"; exit 1; }
  done
  echo "$lines"
}

"$recur" gen copy --max-len 32 --out "$tmp/copy" --train 200 --valid 20 --test 20 > /dev/null
train() { "$recur" train --config "$src/configs/tiny/transformer.yaml" --run-dir "$tmp/$1" --set train.steps=1 \
  --set train.tgt_len=32 "${@:2}"; }

echo "== model.d_model far beyond memory (within the key's range: LibTorch's allocator fails)"
set +e
train oom --set "data.path=$tmp/copy" --set model.d_model=262144 > "$tmp/oom.log" 2>&1; rc=$?
set -e
[[ $rc -eq 1 ]] || { echo "FAIL: exit $rc"; cat "$tmp/oom.log"; exit 1; }
one_error_line train "$tmp/oom.log" model.d_model "configs/tiny/transformer.yaml"

echo "== evaluating on a dataset whose tokens lie outside the model's vocabulary (LibTorch's index check)"
"$recur" gen copy --max-len 32 --alphabet 20 --out "$tmp/copy20" --train 200 --valid 20 --test 20 > /dev/null
train trained --set "data.path=$tmp/copy" > /dev/null 2>&1
set +e
"$recur" eval --run-dir "$tmp/trained" --set "data.path=$tmp/copy20" > "$tmp/eval.log" 2>&1; rc=$?
set -e
[[ $rc -eq 1 ]] || { echo "FAIL: exit $rc"; cat "$tmp/eval.log"; exit 1; }
one_error_line eval "$tmp/eval.log" vocab "trained/config.yaml"

echo "== training on tokens outside the manifest's vocabulary"
cp -r "$tmp/copy" "$tmp/small"
python3 - "$tmp/small/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["vocab"]["size"] = 5
m["vocab"]["symbols"] = m["vocab"]["symbols"][:5]
json.dump(m, open(sys.argv[1], "w"))
PY
set +e
train small --set "data.path=$tmp/small" > "$tmp/index.log" 2>&1; rc=$?
set -e
[[ $rc -eq 1 ]] || { echo "FAIL: exit $rc"; cat "$tmp/index.log"; exit 1; }
one_error_line train "$tmp/index.log" vocab
echo PASS
