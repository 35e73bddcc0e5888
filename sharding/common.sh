# Sourced by the corpus scripts: finds the recur binary and unpacks zip archives.
set -euo pipefail
RECUR="${RECUR:-}"
if [[ -z "$RECUR" ]]; then
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [[ -x "$root/build/recur" ]]; then RECUR="$root/build/recur"; else RECUR="recur"; fi
fi
die() { echo "$(basename "$0"): $*" >&2; exit 1; }
# unpack_member ZIP MEMBER DEST: extracts one member of a zip archive to DEST.
unpack_member() {
  unzip -l "$1" "$2" >/dev/null 2>&1 || die "$1 has no member '$2'"
  unzip -p "$1" "$2" > "$3"
}
