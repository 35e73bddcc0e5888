#!/usr/bin/env bash
# The command line's answers to a mistyped command (issue 20, item 6): an unknown option or command
# names the nearest one by edit distance, a bare KEY=VALUE is pointed at --set, and `ckpt list` of a
# missing directory is an error naming it. Args: RECUR_BINARY SOURCE_DIR.
set -euo pipefail
recur="$1"
tmp="$(mktemp -d /tmp/recur-cli-usage.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

# WANT_RC WANT_TEXT COMMAND...: the command exits WANT_RC and its stderr holds WANT_TEXT.
expect() {
  local want_rc="$1" want="$2"; shift 2
  set +e
  "$@" > /dev/null 2> "$tmp/err"; local rc=$?
  set -e
  if [[ $rc -ne $want_rc ]] || ! grep -qF -- "$want" "$tmp/err"; then
    echo "FAIL: '$*' exited $rc (want $want_rc), stderr:"; cat "$tmp/err"; echo "(wanted: $want)"; exit 1
  fi
  echo "ok: $* -> $(head -1 "$tmp/err")"
}

expect 2 "unknown option --rundir; did you mean --run-dir?" "$recur" train --config x.yaml --rundir x
expect 2 "unknown option --confg; did you mean --config?" "$recur" train --confg x.yaml --run-dir x
expect 2 "unknown command 'trian'; did you mean train?" "$recur" trian --config x.yaml
expect 2 "unknown command 'xyzzy' (see" "$recur" xyzzy
expect 2 "unexpected argument 'train.steps=3'; use --set train.steps=3" "$recur" train --config x.yaml --run-dir x train.steps=3
expect 2 "did you mean list?" "$recur" ckpt lsit "$tmp"
# every command with subcommands: a near miss is named, anything else lists them, none asks for one
expect 2 "unknown subcommand 'verfy' of \`recur shard\`; did you mean verify? (expected verify, dump or info)" "$recur" shard verfy "$tmp"
expect 2 "unknown subcommand 'formel' of \`recur gen\`; did you mean formal?" "$recur" gen formel --language parity
expect 2 "unknown subcommand 'stpe' of \`recur bench\`; did you mean step?" "$recur" bench stpe
expect 2 "unknown subcommand 'submti' of \`recur sweep\`; did you mean submit?" "$recur" sweep submti x.yaml
expect 2 "unknown subcommand 'shwo' of \`recur config\`; did you mean show?" "$recur" config shwo
expect 2 "unknown subcommand 'inof' of \`recur model\`; did you mean info?" "$recur" model inof
expect 2 "unknown subcommand 'zebra' of \`recur sweep\` (expected submit, status, results, trials, cancel, hold, release or priority)" "$recur" sweep zebra
expect 2 "expected keys or show after \`recur config\`" "$recur" config
expect 2 "expected list, verify or inspect after \`recur ckpt\`" "$recur" ckpt
expect 2 "unknown option --bogus" "$recur" bench --bogus
"$recur" gen --help | grep -qF "recur gen formal" || { echo "FAIL: recur gen --help"; exit 1; }
expect 1 "$tmp/missing: no such run directory" "$recur" ckpt list "$tmp/missing"
"$recur" ckpt list "$tmp" | grep -qF "no checkpoints" || { echo "FAIL: an existing run without checkpoints"; exit 1; }
# The quickstart's progress reaches the terminal as training goes: its filter must not hold lines back
# when its own output is a pipe (grep block-buffers then; `recur train` itself writes each line at once).
grep -q -- 'grep --line-buffered' "$2/scripts/quickstart" || { echo "FAIL: scripts/quickstart buffers progress"; exit 1; }
echo PASS
