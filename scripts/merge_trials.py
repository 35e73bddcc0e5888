#!/usr/bin/python3
"""Merges trial lists (recur sweep status ID --json, or docs/results/*.json) into one, for the
tables and plots of a sweep that ran in parts (scripts/experiment --only, or over several
machines). A trial with the same point and seed in a later file replaces the earlier one; the
order is that of first appearance unless --order AXIS=L1,L2,... sorts by an axis.
Usage: merge_trials.py [--order AXIS=L1,L2,...] A.json B.json ... > MERGED.json"""
import json
import sys


def main(argv):
    order = None
    if len(argv) > 1 and argv[1] == "--order":
        axis, _, labels = argv[2].partition("=")
        order = (axis, labels.split(","))
        argv = argv[:1] + argv[3:]
    if len(argv) < 2:
        sys.exit(__doc__)
    merged, names = {}, []
    for path in argv[1:]:
        s = json.load(open(path))
        names.append(s.get("name", path))
        for t in s["trials"]:
            merged[(json.dumps(t["point"], sort_keys=True), t.get("seed"))] = t
    trials = list(merged.values())
    if order:
        axis, labels = order
        rank = lambda t: labels.index(str(t["point"].get(axis))) if str(t["point"].get(axis)) in labels else len(labels)
        trials.sort(key=rank)  # stable: keeps the order within a label
    json.dump({"name": " + ".join(names), "state": "merged", "trials": trials}, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv)
