#!/usr/bin/python3
"""Plot a sweep's scaling fit (recur sweep results ID --fit power --format json) on log axes: each
seed's value, the mean and sd over seeds at each x, and the fitted L = a*x^(-alpha) + c per series,
with alpha and its bootstrap 95% interval in the legend. x is what the fit used (the parameter count
for model scaling, else the sweep's last axis).
Usage: plot_scaling.py RESULTS.json OUT.png|OUT.svg  (Debian's python3-matplotlib). plot_sweep.py
(`recur sweep results ID --plot DIR --fit power`) draws the same figure beside its own."""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def legend(fit):
    text = "%s: α = %.3f" % (fit["series"], fit["alpha"])
    ci = fit.get("alpha_ci")
    if ci:
        text += " [%.3f, %.3f]" % (ci[0], ci[1])
    return text


def draw(res, out):
    """The figure for the results `res` (with their "fit") into the file `out` (PNG or SVG by name)."""
    fit = res["fit"]
    x_name = fit["x"] if fit["x"] != "parameters" else "parameters (recur model info)"
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ys_all = []
    for i, f in enumerate(fit["fits"]):
        c = colors[i % len(colors)]
        pts = f["points"]
        xs = [p["x"] for p in pts]
        for p in pts:  # each seed
            vals = p.get("values", [p["mean"]])
            ys_all += vals
            ax.scatter([p["x"]] * len(vals), vals, s=18, color=c, alpha=0.45, linewidths=0)
        ax.errorbar(xs, [p["mean"] for p in pts], yerr=[p.get("sd", 0.0) for p in pts], fmt="o", color=c,
                    capsize=3, markersize=5)
        lo, hi = math.log(min(xs)), math.log(max(xs))
        grid = [math.exp(lo + (hi - lo) * k / 100) for k in range(101)]
        curve = [f["a"] * x ** (-f["alpha"]) + f["c"] for x in grid]
        ys_all += curve
        ax.plot(grid, curve, color=c, label=legend(f))
    ax.set_xscale("log")
    if all(y > 0 for y in ys_all):
        ax.set_yscale("log")
        # a narrow range in log scale gets no decade ticks: label plain numbers
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.2f"))
    ax.set_xlabel(x_name + " (log)")
    ax.set_ylabel(res["metric"] + " (log)")
    ax.set_title("%s: %s, 95%% bootstrap intervals over seeds" % (res.get("name", "sweep"), fit["model"].replace("alpha", "α")),
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    res = json.load(open(sys.argv[1]))
    if not res.get("fit", {}).get("fits"):
        sys.exit("plot_scaling: %s has no fit (run `recur sweep results ID --fit power --format json`)" % sys.argv[1])
    draw(res, sys.argv[2])


if __name__ == "__main__":
    main()
