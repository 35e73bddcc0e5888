#!/usr/bin/python3
"""Merges trial lists (recur sweep status ID --json, or docs/results/*.json) into one, for the
tables and plots of a sweep that ran in parts (scripts/experiment --only, or over several
machines). A trial with the same point and seed in a later file replaces the earlier one; the
order is that of first appearance unless --order AXIS=L1,L2,... sorts by an axis. --curves embeds
each trial's training-loss curve from RUN_DIR/metrics.jsonl as loss_curve [[step, loss], ...], so
that the tables and loss plots can be made again once the run folders are gone.
--name NAME names the merged sweep (the plots' titles); the default joins the parts' names.
Usage: merge_trials.py [--order AXIS=L1,L2,...] [--curves] [--name NAME] A.json B.json ... > MERGED.json"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from experiment_tables import training_log  # noqa: E402


def main(argv):
    opts, paths, args = {"--order": None, "--name": None, "--curves": False}, [], argv[1:]
    while args:
        a = args.pop(0)
        if a == "--curves":
            opts[a] = True
        elif a in opts:
            if not args:
                sys.exit("merge_trials: %s wants a value" % a)
            opts[a] = args.pop(0)
        else:
            paths.append(a)
    if not paths:
        sys.exit(__doc__)
    order, name, curves = opts["--order"], opts["--name"], opts["--curves"]
    if order:
        axis, _, labels = order.partition("=")
        order = (axis, labels.split(","))
    merged, names = {}, []
    for path in paths:
        s = json.load(open(path))
        names.append(s.get("name", path))
        for t in s["trials"]:
            merged[(json.dumps(t["point"], sort_keys=True), t.get("seed"))] = t
    trials = list(merged.values())
    for t in trials if curves else []:
        log = training_log(t)
        if log:
            t["loss_curve"] = [list(x) for x in log]
    if order:
        axis, labels = order
        rank = lambda t: labels.index(str(t["point"].get(axis))) if str(t["point"].get(axis)) in labels else len(labels)
        trials.sort(key=rank)  # stable: keeps the order within a label
    json.dump({"name": name or " + ".join(names), "state": "merged", "trials": trials}, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv)
