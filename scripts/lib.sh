# Shared by the scripts in this folder (sourced, not run).
RECUR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECUR_HOME="${RECUR_HOME:-$HOME/.cache/recur}"
RECUR_BUILD="${RECUR_BUILD:-$RECUR_ROOT/build}"
TORCH_VERSION="2.11.0"
export RECUR_HOME

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

sudo_if_needed() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

torch_source() {
  if [[ -f "$RECUR_HOME/torch-source" ]]; then cat "$RECUR_HOME/torch-source"; else echo "${RECUR_TORCH:-wheel}"; fi
}

# Configures (once) and builds the tree with two jobs; arguments are targets (default: everything).
build_recur() {
  local args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  if [[ "$(torch_source)" == "wheel" ]]; then
    args+=(-DRECUR_PYTHON="$RECUR_HOME/venv/bin/python")
  fi
  export CCACHE_DIR="${CCACHE_DIR:-$RECUR_HOME/ccache}"
  if [[ ! -f "$RECUR_BUILD/build.ninja" ]]; then
    log "configuring $RECUR_BUILD"
    cmake -S "$RECUR_ROOT" -B "$RECUR_BUILD" "${args[@]}" >"$RECUR_BUILD.configure.log" 2>&1 || {
      cat "$RECUR_BUILD.configure.log" >&2
      return 1
    }
  fi
  log "building ${*:-everything} (-j${RECUR_JOBS:-2})"
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$RECUR_BUILD" -j "${RECUR_JOBS:-2}" "${targets[@]}"
}

# Writes the sweep spec SPEC to OUT as it runs on this machine: {data_root} becomes DATA_ROOT and a
# relative `base:` becomes relative to SPEC's own folder (OUT lives elsewhere). Args: SPEC DATA_ROOT OUT.
prepare_spec() {
  local dir
  dir="$(cd "$(dirname "$1")" && pwd)"
  sed -e "s|{data_root}|$2|" -e "s|^base: \([^/~].*\)$|base: $dir/\1|" "$1" > "$3"
}
