#!/usr/bin/python3
"""Table 2 of the RSA paper as a figure: one panel per language, sequence accuracy of every model on
bin 0 and bin 1, ours (solid: mean over seeds, a bar of one sd, a dot per seed) beside the paper's
(hatched). Where the trials kept each bin's best epoch (the reference protocol, eval.json "best"),
both protocols are drawn: the last epoch (dark) and each bin's best epoch (light).
Writes OUT.png and OUT.svg.
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
            best = r.get("best", {})
            ours.setdefault((lang, model), []).append((
                r.get("sequence_accuracy"), r.get("splits", {}).get("test", {}).get("sequence_accuracy"),
                best.get("valid", {}).get("sequence_accuracy"), best.get("test", {}).get("sequence_accuracy")))
    both = any(v[2] is not None for runs in ours.values() for v in runs)
    # bars per model: (index into a run's tuple or None for the paper, bin, label, style)
    bars = [(0, 0, "ours, last epoch"), (1, 1, "ours, last epoch")]
    if both:
        bars += [(2, 0, "ours, best epoch"), (3, 1, "ours, best epoch")]
    bars += [(None, 0, "paper"), (None, 1, "paper")]
    cols = min(3, len(langs))
    rows = (len(langs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), sharey=True, squeeze=False)
    width = 0.8 / len(bars)
    for i, lang in enumerate(langs):
        ax = axes[i // cols][i % cols]
        for j, model in enumerate(models):
            runs = ours.get((lang, model), [])
            paper = PAPER.get(lang, {}).get(short(model), (None, None))
            for k, (idx, b, what) in enumerate(bars):
                x = j - 0.4 + (k + 0.5) * width
                label = "%s, bin %d" % (what, b) if i == 0 and j == 0 else None
                if idx is None:
                    if paper[b] is not None:
                        ax.bar(x, paper[b], width, color="white", edgecolor="C%d" % b, hatch="//", label=label)
                    continue
                vals = [r[idx] for r in runs if r[idx] is not None]
                if not vals:
                    continue
                m = sum(vals) / len(vals)
                sd = (sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
                ax.bar(x, m, width, color="C%d" % b, alpha=1.0 if idx < 2 else 0.45, label=label,
                       yerr=sd if len(vals) > 1 else None, error_kw={"elinewidth": 0.8, "capsize": 1.5})
                ax.plot([x] * len(vals), vals, "k.", markersize=2.5)
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
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    n = sorted({len(v) for v in ours.values()})
    seeds = "" if not n else " (%s seed%s per cell)" % ("-".join(str(x) for x in (n[0], n[-1]) if x) if n[0] != n[-1] else n[0],
                                                       "" if n == [1] else "s")
    fig.suptitle("%s: ours vs the RSA paper's Table 2%s" % (s["name"], seeds))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    for ext in ("png", "svg"):
        fig.savefig(out + "." + ext)
        print(out + "." + ext)


if __name__ == "__main__":
    main()
