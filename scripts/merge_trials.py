#!/usr/bin/python3
"""Merges trial lists (recur sweep status ID --json, or docs/results/*.json) into one, for the
tables and plots of a sweep that ran in parts (scripts/experiment --only, or over several
machines). A trial with the same point and seed in a later file replaces the earlier one; the
order is that of first appearance unless --order AXIS=L1,L2,... sorts by an axis. --curves embeds
each trial's training-loss curve from RUN_DIR/metrics.jsonl as loss_curve [[step, loss], ...], so
that the tables and loss plots can be made again once the run folders are gone.
Usage: merge_trials.py [--order AXIS=L1,L2,...] [--curves] A.json B.json ... > MERGED.json"""
import json
import os
import sys


def main(argv):
    order = None
    if len(argv) > 1 and argv[1] == "--order":
        axis, _, labels = argv[2].partition("=")
        order = (axis, labels.split(","))
        argv = argv[:1] + argv[3:]
    curves = "--curves" in argv
    argv = [a for a in argv if a != "--curves"]
    if len(argv) < 2:
        sys.exit(__doc__)
    merged, names = {}, []
    for path in argv[1:]:
        s = json.load(open(path))
        names.append(s.get("name", path))
        for t in s["trials"]:
            merged[(json.dumps(t["point"], sort_keys=True), t.get("seed"))] = t
    trials = list(merged.values())
    for t in trials if curves else []:
        path = os.path.join(t.get("run_dir") or "", "metrics.jsonl")
        if t.get("run_dir") and os.path.exists(path):
            rows = [json.loads(line) for line in open(path)]
            t["loss_curve"] = [[r["step"], r["loss"]] for r in rows if "loss" in r and "eval" not in r]
    if order:
        axis, labels = order
        rank = lambda t: labels.index(str(t["point"].get(axis))) if str(t["point"].get(axis)) in labels else len(labels)
        trials.sort(key=rank)  # stable: keeps the order within a label
    json.dump({"name": " + ".join(names), "state": "merged", "trials": trials}, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv)
