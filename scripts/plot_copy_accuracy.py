#!/usr/bin/python3
"""The copy task's accuracy per maximum length (like the RSA paper's Figure 5, panels 1-2): one line
per model and training-set size, test token accuracy (solid) and sequence accuracy (dotted) against
task.max_len. Trials that did not succeed are left out. Writes OUT.png and OUT.svg.
Usage: plot_copy_accuracy.py TRIALS.json OUT   (TRIALS.json: recur sweep status ID --json, or merged)"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    s = json.load(open(sys.argv[1]))
    lines = {}
    for t in s["trials"]:
        r = t.get("result")
        if t.get("state") != "succeeded" or not isinstance(r, dict):
            continue
        p = t["point"]
        test = r.get("splits", {}).get("test", r)
        n = p.get("data.train_examples")
        size = {6400: "S", 12800: "L"}.get(n, str(n))
        lines.setdefault((p["model"], size), []).append(
            (p["task.max_len"], test.get("token_accuracy"), test.get("sequence_accuracy")))
    if not lines:
        sys.exit("plot_copy_accuracy: no succeeded trial in %s" % sys.argv[1])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (key, pts) in enumerate(sorted(lines.items())):
        pts.sort()
        xs = [p[0] for p in pts]
        ax.plot(xs, [p[1] for p in pts], "o-", color="C%d" % i, label="%s %s, token" % key)
        if all(p[2] is not None for p in pts):
            ax.plot(xs, [p[2] for p in pts], "s:", color="C%d" % i, label="%s %s, sequence" % key)
    ax.set_xscale("log", base=2)
    lengths = sorted({x for pts in lines.values() for x, _, _ in pts})
    ax.set_xticks(lengths)
    ax.set_xticklabels([str(x) for x in lengths])
    ax.set_xlabel("maximum sequence length")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("%s: accuracy per length" % s.get("name", "copy task"))
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(sys.argv[2] + "." + ext)
        print(sys.argv[2] + "." + ext)


if __name__ == "__main__":
    main()
