#!/usr/bin/python3
"""Training-loss curves of a sweep's trials (like the RSA paper's Figure 5, panels 3-4): one line per
trial at the longest value of AXIS, from each run's metrics.jsonl. Writes OUT.png and OUT.svg.
Usage: plot_loss_curves.py TRIALS.json AXIS OUT   (TRIALS.json: recur sweep status ID --json)"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    s = json.load(open(sys.argv[1]))
    axis, out = sys.argv[2], sys.argv[3]
    longest = max(t["point"][axis] for t in s["trials"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for t in s["trials"]:
        if t["point"][axis] != longest:
            continue
        path = os.path.join(t["run_dir"], "metrics.jsonl")
        if not os.path.exists(path):
            continue
        steps, losses = [], []
        for line in open(path):
            r = json.loads(line)
            if "loss" in r and "eval" not in r:
                steps.append(r["step"])
                losses.append(r["loss"])
        label = ", ".join("%s=%s" % (k, v) for k, v in t["point"].items() if k != axis)
        ax.plot(steps, losses, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("training cross-entropy (nats)")
    ax.set_title("%s: %s = %s" % (s["name"], axis, longest))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out + "." + ext)
        print(out + "." + ext)


if __name__ == "__main__":
    main()
