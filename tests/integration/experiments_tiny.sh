#!/usr/bin/env bash
# The tiny versions of the two reproduction experiments (scripts/experiment ... --tiny) run end to end
# through a local coordinator and agents, and write what docs/results.md is built from: both bins'
# accuracies, the RSA gates and the REM parameters, tables and plots. Args: RECUR_BINARY SOURCE_DIR.
set -euo pipefail
recur="$1"; src="$2"
tmp="$(mktemp -d /tmp/recur-experiments-test.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
export RECUR="$recur"
"$src/scripts/experiment" formal-languages --tiny --agents 2 --out "$tmp/fl" > "$tmp/fl.out" 2>&1 || { cat "$tmp/fl.out"; echo "FAIL: formal-languages"; exit 1; }
"$src/scripts/experiment" copy-task --tiny --agents 2 --out "$tmp/ct" > "$tmp/ct.out" 2>&1 || { cat "$tmp/ct.out"; echo "FAIL: copy-task"; exit 1; }
python3 - "$tmp" <<'PY'
import json, os, sys
tmp = sys.argv[1]
fl = json.load(open(tmp + "/fl/trials.json"))
assert len(fl["trials"]) == 4, len(fl["trials"])
for t in fl["trials"]:
    r = t["result"]
    assert t["state"] == "succeeded", t
    assert 0 <= r["sequence_accuracy"] <= 1 and 0 <= r["splits"]["test"]["sequence_accuracy"] <= 1, r
    if t["point"]["model"].startswith("I "):
        assert len(r["rsa_gates"]) == 3, r.get("rsa_gates")
        etas = [k for k in r["rem"] if k.endswith(".rem.eta")]
        assert len(etas) == 3 and all(len(r["rem"][k]) == 5 for k in etas), r["rem"].keys()
        assert any(k.endswith(".rem.mu") for k in r["rem"]), r["rem"].keys()
    else:
        assert "rsa_gates" not in r and "rem" not in r
table = open(tmp + "/fl/results.md").read()
assert "| parity | I (5,0,0,0,0,0) | 1 |" in table and "λ" in table, table
ct = json.load(open(tmp + "/ct/trials.json"))
assert len(ct["trials"]) == 4 and all(t["state"] == "succeeded" for t in ct["trials"])
for t in ct["trials"]:
    assert "token_accuracy" in t["result"]["splits"]["test"]
    if t["point"]["model"] == "RSA-BRT":
        # the recurrent layer has no REMs (Table 7: 13 of 14 layers): one gate fewer than layers
        assert len(t["result"]["rsa_gates"]) == 2 and t["result"]["rem"]
for f in ["fl/sweep-1-splits.test.sequence_accuracy.png", "fl/table2.png", "fl/table2.svg", "ct/sweep-1-token_accuracy.svg", "ct/loss-curves.png", "ct/accuracy.png", "ct/results.md"]:
    assert os.path.getsize(os.path.join(tmp, f)) > 0, f
print("both tiny experiments wrote accuracies (both bins), gates, REM parameters, tables and plots")
PY
# The reference protocol's tiny sweep: every bin every epoch, each bin's best beside the last epoch's.
"$src/scripts/experiment" formal-languages --tiny --reference --agents 2 --out "$tmp/flr" > "$tmp/flr.out" 2>&1 || { cat "$tmp/flr.out"; echo "FAIL: formal-languages --reference"; exit 1; }
python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
trials = json.load(open(tmp + "/flr/trials.json"))["trials"]
assert len(trials) == 4 and all(t["state"] == "succeeded" for t in trials), trials
for t in trials:
    r = t["result"]
    for split, last in (("valid", r["sequence_accuracy"]), ("test", r["splits"]["test"]["sequence_accuracy"])):
        assert r["best"][split]["sequence_accuracy"] >= last and r["best"][split]["step"] in (8, 16), r["best"]
table = open(tmp + "/flr/results.md").read()
assert "best bin 1" in table and "Mean ± sd over seeds" in table, table
PY
# A second run finds the finished sweeps and does not train again.
"$src/scripts/experiment" formal-languages --tiny --agents 2 --out "$tmp/fl" > "$tmp/fl2.out" 2>&1
grep -q "found in" "$tmp/fl2.out" || { cat "$tmp/fl2.out"; echo "FAIL: the second run did not reuse the sweep"; exit 1; }
# --only keeps some labels of one axis: model I alone gives one trial per language.
"$src/scripts/experiment" formal-languages --tiny --agents 2 --only model=I --out "$tmp/fl-only" > "$tmp/fl3.out" 2>&1 || { cat "$tmp/fl3.out"; echo "FAIL: --only"; exit 1; }
python3 - "$tmp/fl-only/trials.json" <<'PY'
import json, sys
trials = json.load(open(sys.argv[1]))["trials"]
assert sorted((t["point"]["language"], t["point"]["model"]) for t in trials) == [("d2", "I (5,0,0,0,0,0)"), ("parity", "I (5,0,0,0,0,0)")], trials
PY
# merge_trials.py joins the parts: the --only run's trials replace the full run's, in language order.
python3 "$src/scripts/merge_trials.py" --order language=parity,d2 "$tmp/fl/trials.json" "$tmp/fl-only/trials.json" > "$tmp/merged.json"
python3 - "$tmp/merged.json" "$tmp/fl-only/trials.json" <<'PY'
import json, sys
merged, only = (json.load(open(p))["trials"] for p in sys.argv[1:])
assert [t["point"]["language"] for t in merged] == ["parity", "parity", "d2", "d2"], merged
i = [t for t in merged if t["point"] == only[0]["point"]]
assert len(i) == 1 and i[0]["result"] == only[0]["result"], i
PY
python3 "$src/scripts/experiment_tables.py" formal-languages "$tmp/merged.json" > "$tmp/merged.md"
grep -q "| d2 | I (5,0,0,0,0,0) | 1 |" "$tmp/merged.md" || { echo "FAIL: the merged table"; exit 1; }
# --against compares an ablation with its base, per language, model and seed found in both: here the
# merged run with model I's bin 0 raised by 0.25 on parity, against the --only run (model I alone).
python3 - "$tmp/merged.json" > "$tmp/ablation.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = next(t for t in s["trials"] if t["point"] == {"language": "parity", "model": "I (5,0,0,0,0,0)"})
t["result"]["sequence_accuracy"] += 0.25
t["result"].pop("best", None)   # no best epoch: the last stands in for it
json.dump(s, sys.stdout)
PY
python3 "$src/scripts/experiment_tables.py" formal-languages "$tmp/ablation.json" --against "$tmp/fl-only/trials.json" > "$tmp/against.md"
grep -qE "^\| parity \| I \(5,0,0,0,0,0\) \| 1 \| .* \| \+0\.25 / \+0\.00 \| " "$tmp/against.md" || { cat "$tmp/against.md"; echo "FAIL: --against misses the change"; exit 1; }
grep -qE "^\| d2 \| I \(5,0,0,0,0,0\) \| 1 \| .* \| \+0\.00 / \+0\.00 \| " "$tmp/against.md" || { cat "$tmp/against.md"; echo "FAIL: --against, unchanged cell"; exit 1; }
grep -q "^Not in the base run: " "$tmp/against.md" || { cat "$tmp/against.md"; echo "FAIL: --against names no cell missing from the base"; exit 1; }
# --curves embeds the loss curves, so tables and loss plots outlive the run folders.
python3 "$src/scripts/merge_trials.py" --curves "$tmp/ct/trials.json" > "$tmp/ct-merged.json"
python3 - "$tmp/ct-merged.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert all(len(t["loss_curve"]) > 0 and t["loss_curve"][0][0] > 0 for t in s["trials"]), s["trials"]
for t in s["trials"]:
    t["run_dir"] = "/nonexistent"
json.dump(s, open(sys.argv[1], "w"))
PY
/usr/bin/python3 "$src/scripts/plot_loss_curves.py" "$tmp/ct-merged.json" task.max_len "$tmp/ct-curves" > /dev/null
[[ -s "$tmp/ct-curves.png" ]] || { echo "FAIL: no loss curves from embedded curves"; exit 1; }
/usr/bin/python3 "$src/scripts/plot_copy_accuracy.py" "$tmp/ct-merged.json" "$tmp/ct-acc" > /dev/null
[[ -s "$tmp/ct-acc.png" && -s "$tmp/ct-acc.svg" ]] || { echo "FAIL: no accuracy-per-length plot"; exit 1; }
python3 "$src/scripts/experiment_tables.py" copy-task "$tmp/ct-merged.json" > "$tmp/ct-merged.md"
grep -qE "\| [0-9.]+ \| ([0-9]+|not reached) \| [0-9]+ s \|" "$tmp/ct-merged.md" || { echo "FAIL: copy table without its loss columns"; cat "$tmp/ct-merged.md"; exit 1; }
# An unknown label is refused before anything runs, naming the labels there are.
if "$src/scripts/experiment" formal-languages --tiny --only model=V --out "$tmp/fl-bad" > "$tmp/fl4.out" 2>&1; then
  echo "FAIL: --only model=V was accepted"; exit 1
fi
grep -q "has no label V (labels: Transformer, I (5,0,0,0,0,0))" "$tmp/fl4.out" || { cat "$tmp/fl4.out"; echo "FAIL: --only error"; exit 1; }
[[ ! -e "$tmp/fl-bad/state.db" ]] || { echo "FAIL: a refused --only started a coordinator"; exit 1; }
echo PASS
