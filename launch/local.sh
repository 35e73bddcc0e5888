#!/usr/bin/env bash
# One process, no launcher: a world of one.
# Usage: launch/local.sh CONFIG RUN_DIR [--set k=v]...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECUR="${RECUR:-$root/build/recur}"
[[ $# -ge 2 ]] || { echo "usage: launch/local.sh CONFIG RUN_DIR [--set k=v]..." >&2; exit 2; }
config="$1"; run="$2"; shift 2
exec "$RECUR" train --config "$config" --run-dir "$run" "$@"
