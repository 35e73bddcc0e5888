#!/usr/bin/python3
"""Training-loss curves of a sweep's trials (like the RSA paper's Figure 5, panels 3-4): one panel per
value of AXIS, one line per trial in it, from each run's metrics.jsonl. Writes OUT.png and OUT.svg.
Usage: plot_loss_curves.py TRIALS.json AXIS OUT   (TRIALS.json: recur sweep status ID --json)"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from experiment_tables import training_log  # noqa: E402


def curve(trial):
    """(steps, losses) of a trial's training log (experiment_tables.training_log); empty when none."""
    log = training_log(trial)
    return [step for step, _ in log], [loss for _, loss in log]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    s = json.load(open(sys.argv[1]))
    axis, out = sys.argv[2], sys.argv[3]
    values = sorted({t["point"][axis] for t in s["trials"]})
    fig, axes = plt.subplots(1, len(values), figsize=(4.2 * len(values), 3.8), sharey=True, squeeze=False)
    for ax, value in zip(axes[0], values):
        for t in s["trials"]:
            if t["point"][axis] != value:
                continue
            steps, losses = curve(t)
            if steps:
                label = ", ".join(str(v) if k == "model" else "%s=%s" % (k.split(".")[-1], v)
                                  for k, v in sorted(t["point"].items(), key=lambda kv: kv[0] != "model")
                                  if k != axis)
                ax.plot(steps, losses, label=label)
        ax.set_xlabel("step")
        ax.set_title("%s = %s" % (axis, value))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("training cross-entropy (nats)")
    fig.suptitle(s["name"])
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out + "." + ext)
        print(out + "." + ext)


if __name__ == "__main__":
    main()
