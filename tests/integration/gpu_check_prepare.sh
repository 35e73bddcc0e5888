#!/usr/bin/env bash
# `scripts/gpu-check prepare` stages a bundle under the size limit, without the torch wheel's libraries,
# whose recur and mpirun run from it; `scripts/gpu-check run` on a machine without a GPU says so and exits 2.
# Args: RECUR_BINARY SOURCE_DIR. Offline: the bundle copies this machine's installed libraries.
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-gpu-check.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
gpu_check="$src/scripts/gpu-check"
RECUR_BUILD="$(dirname "$recur")"
export RECUR_BUILD RECUR_GPU_BUNDLE="$tmp/bundle"

ldd "$recur" | grep -q 'site-packages/torch/lib/libtorch_cpu' || { echo "SKIP: $recur is not linked against a torch wheel"; exit 0; }

"$gpu_check" prepare > "$tmp/prepare.log" 2>&1 || { cat "$tmp/prepare.log"; fail "prepare exited non-zero"; }
bytes="$(du -sb "$tmp/bundle" | cut -f1)"
(( bytes <= 60 * 1048576 )) || fail "the bundle is $bytes bytes, over 60 MiB"
for f in bin/recur bin/mpirun libexec/recur env.sh MANIFEST lib/libmpi.so.40 lib/libhdf5_serial.so.103 lib/libyaml-cpp.so.0.7 openmpi/bin/orterun; do
  [[ -e "$tmp/bundle/$f" ]] || fail "the bundle has no $f"
done
carried="$(ls "$tmp/bundle/lib")"
grep -qE '^lib(torch|c10|nccl|cudart|cudnn|cublas|c\.so|m\.so)' <<< "$carried" && fail "the bundle carries the wheel's or glibc's libraries: $(tr '\n' ' ' <<< "$carried")"
ok "prepare: $((bytes / 1048576)) MiB, $(wc -l <<< "$carried") libraries, none of the wheel's"

find "$tmp/bundle" -type f | sort > "$tmp/files1"
"$gpu_check" prepare > "$tmp/prepare2.log" 2>&1 || { cat "$tmp/prepare2.log"; fail "a second prepare exited non-zero"; }
find "$tmp/bundle" -type f | sort | cmp -s - "$tmp/files1" || fail "a second prepare staged other files"
ok "prepare again: the same files"

# The bundle's recur and mpirun, through env.sh, with the torch of the venv recur was built against.
python="${RECUR_HOME:-$HOME/.cache/recur}/venv/bin/python"
if [[ -x "$python" ]]; then
  out="$(RECUR_GPU_CHECK_PYTHON="$python" bash -c '
    source "$1/env.sh" || exit 1
    LD_LIBRARY_PATH="$RECUR_GPU_LD" ldd "$1/libexec/recur" | grep "not found" && exit 1
    recur --version | grep -q "^recur " || exit 1
    mpirun -np 2 --oversubscribe --mca pml ob1 --mca btl self,vader,tcp printenv OMPI_COMM_WORLD_RANK | sort | tr "\n" " "' _ "$tmp/bundle" 2>&1)" ||
    fail "recur or mpirun from the bundle: $out"
  [[ "$out" == "0 1 " ]] || fail "the bundle's mpirun started: $out"
  ok "the bundle's recur resolves every library and runs; its mpirun starts 2 ranks"
else
  echo "skipped: no $python to find LibTorch with"
fi

if command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L > /dev/null 2>&1; then
  echo "skipped: this machine has a GPU; 'run' would run the checks"
else
  set +e
  OUT="$tmp/out" "$gpu_check" run > "$tmp/run.out" 2> "$tmp/run.err"
  rc=$?
  set -e
  [[ $rc == 2 ]] || { cat "$tmp/run.out" "$tmp/run.err"; fail "run without a GPU exited $rc, expected 2"; }
  if [[ "$(wc -l < "$tmp/run.err")" != 1 ]] || ! grep -q "no GPU" "$tmp/run.err"; then
    fail "run without a GPU said: $(cat "$tmp/run.err")"
  fi
  [[ ! -e "$tmp/out/summary.txt" ]] || fail "run without a GPU wrote results"
  ok "run without a GPU: '$(cat "$tmp/run.err")', exit 2"
fi
echo "PASS"
