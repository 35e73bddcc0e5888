#!/usr/bin/python3
"""Table 2 of the RSA paper as a figure: one panel per language, sequence accuracy of every model on
bin 0 and bin 1, ours (solid) beside the paper's (hatched). Writes OUT.png and OUT.svg.
Usage: plot_formal_languages.py TRIALS.json OUT   (TRIALS.json: recur sweep status ID --json)"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from experiment_tables import PAPER, short  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    s = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    langs, models, ours = [], [], {}
    for t in s["trials"]:
        lang, model = t["point"]["language"], t["point"]["model"]
        langs += [lang] if lang not in langs else []
        models += [model] if model not in models else []
        r = t["result"] if isinstance(t.get("result"), dict) and t["state"] == "succeeded" else None
        if r:
            ours.setdefault((lang, model), []).append(
                (r.get("sequence_accuracy"), r.get("splits", {}).get("test", {}).get("sequence_accuracy")))
    cols = min(3, len(langs))
    rows = (len(langs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), sharey=True, squeeze=False)
    width = 0.2
    for i, lang in enumerate(langs):
        ax = axes[i // cols][i % cols]
        for j, model in enumerate(models):
            runs = ours.get((lang, model), [])
            paper = PAPER.get(lang, {}).get(short(model), (None, None))
            for b in (0, 1):
                vals = [r[b] for r in runs if r[b] is not None]
                if vals:
                    ax.bar(j + (b - 1.5) * width, sum(vals) / len(vals), width, color="C%d" % b,
                           label="ours, bin %d" % b if j == 0 else None)
                if paper[b] is not None:
                    ax.bar(j + (b + 0.5) * width, paper[b], width, color="white", edgecolor="C%d" % b,
                           hatch="//", label="paper, bin %d" % b if j == 0 else None)
        ax.set_title(lang)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels([short(m) for m in models], fontsize=8, rotation=25)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    for k in range(len(langs), rows * cols):
        axes[k // cols][k % cols].axis("off")
    for r in range(rows):
        axes[r][0].set_ylabel("sequence accuracy")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle("%s: ours vs the RSA paper's Table 2" % s["name"])
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    for ext in ("png", "svg"):
        fig.savefig(out + "." + ext)
        print(out + "." + ext)


if __name__ == "__main__":
    main()
