#!/usr/bin/python3
"""Plot a sweep's results (recur sweep results ID --format json) as PNG and SVG: the metric (mean and
sd over seeds) against the last axis, one line per value of the other axes, like the RSA paper's
Figures 4-5. When the results carry power-law fits (--fit power), also the scaling figure of
plot_scaling.py (log axes, the fitted curves) as sweep-ID-METRIC-fit.{png,svg}.
Usage: plot_sweep.py RESULTS.json OUT_DIR  (Debian's python3-matplotlib)."""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    res = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    axes, metric = res["axes"], res["metric"]
    if not axes:
        sys.exit("plot_sweep: the sweep has no axes to plot against")
    x_axis = axes[-1]
    xs = []
    for row in res["rows"]:
        if row["point"][x_axis] not in xs:
            xs.append(row["point"][x_axis])
    numeric = all(isinstance(v, (int, float)) for v in xs)
    lines = {}
    for row in res["rows"]:
        if "mean" not in row:
            continue
        key = ", ".join("%s=%s" % (a, row["point"][a]) for a in axes[:-1]) or metric
        lines.setdefault(key, []).append((row["point"][x_axis], row["mean"], row.get("sd", 0.0)))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, pts in lines.items():
        pos = [p[0] if numeric else xs.index(p[0]) for p in pts]
        ax.errorbar(pos, [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3, label=key)
    if numeric:
        ax.set_xticks(xs)
    else:
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([str(v) for v in xs])
    ax.set_xlabel(x_axis)
    ax.set_ylabel(metric)
    ax.set_title("%s (sweep %s)" % (res["name"], res["sweep"]))
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    base = os.path.join(out, "sweep-%s-%s" % (res["sweep"], metric))
    for ext in ("png", "svg"):
        fig.savefig(base + "." + ext)
        print(base + "." + ext)
    if res.get("fit", {}).get("fits"):
        import plot_scaling  # beside this script

        for ext in ("png", "svg"):
            plot_scaling.draw(res, base + "-fit." + ext)
            print(base + "-fit." + ext)


if __name__ == "__main__":
    main()
