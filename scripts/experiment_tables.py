#!/usr/bin/python3
"""Markdown tables for docs/results.md from `recur sweep status ID --json`.
formal-languages: sequence accuracy on bin 0 (valid) and bin 1 (test) per language and model, beside
the paper's Table 2, with training time, the learned gates and REM parameters. Runs with
eval.every_epoch (the reference protocol) get both protocols: ours (the last epoch) and the paper's
(each bin's best epoch, eval.json "best"; the step where the stop rule ended the run), and a table of
mean ± sd over seeds per cell.
copy-task: accuracy per maximum length, training-set size and model, with the final training loss and
the first logged step whose training loss is below 0.1 (how fast the model leaves the plateau).
A trial with a "recorded" field (a date) is a cell carried over from an earlier run's report
(docs/results/): its seed is marked † and a footnote says from when.
An ablation (formal-languages) is compared with its base run: --against BASE.json prints, per language,
model and seed found in both, the two runs' bins under both protocols and the change (ablation − base).
Usage: experiment_tables.py formal-languages|copy-task TRIALS.json [--against BASE.json]"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import recur_metrics  # noqa: E402

# RSA paper Table 2 (bin 0, bin 1). The D_2/D_4 rows of the seed text are garbled (15 values for 16
# cells); we read them left to right and leave the last cell (case IV, bin 1) empty.
PAPER = {
    "d2": {"Transformer": (0.2, 0.2), "Transformer*": (0.87, 0.94), "I": (1, 1), "II": (1, 1), "III": (1, 1), "IV": (1, None)},
    "d4": {"Transformer": (1, 0.08), "Transformer*": (0.99, 0.9), "I": (1, 1), "II": (1, 1), "III": (1, 1), "IV": (1, None)},
    "parity": {"Transformer": (0.29, 0), "Transformer*": (0.13, 0), "I": (0.99, 0.67), "II": (0.97, 0.53), "III": (0.91, 0.62), "IV": (0.9, 0.52)},
    "tomita3": {"Transformer": (0.89, 0.11), "Transformer*": (0.98, 0.48), "I": (1, 0.97), "II": (1, 0.97), "III": (1, 0.98), "IV": (1, 0.98)},
    "tomita5": {"Transformer": (0.07, 0), "Transformer*": (0.01, 0), "I": (0.63, 0.16), "II": (0.82, 0.17), "III": (0.49, 0), "IV": (0.72, 0.35)},
    "tomita6": {"Transformer": (0, 0), "Transformer*": (0, 0), "I": (0.78, 0.35), "II": (0.89, 0.38), "III": (0.95, 0.46), "IV": (0.64, 0.39)},
}


def short(model):
    return model.split(" ")[0]


def fmt(x):
    return "" if x is None else ("%.2f" % x)


def mean_sd(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return ""
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return "%.2f ± %.2f" % (m, sd)


def training_log(trial):
    """[(step, loss)] of a trial's training log: its embedded loss_curve (merge_trials.py --curves),
    else the training lines of RUN_DIR/metrics.jsonl."""
    if trial.get("loss_curve"):
        return [tuple(x) for x in trial["loss_curve"]]
    run_dir = trial.get("run_dir")
    if not run_dir:
        return []
    # The one Python reader of docs/training.md's records (python/recur_metrics.py; same rules as the C++
    # reader, checked by tests/core/test_metrics_file.cpp).
    return [(r["step"], r["loss"]) for r in recur_metrics.read(run_dir).train]


def copy_task(s):
    print("| model | training set | max length | token accuracy (test) | sequence accuracy (test) "
          "| final training loss | first step with loss < 0.1 | train time | gates |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in s["trials"]:
        p = t["point"]
        r = t["result"] if isinstance(t.get("result"), dict) else None
        test = r.get("splits", {}).get("test", r) if r else None
        acc = fmt(test.get("token_accuracy")) if test else t["state"]
        seq = fmt(test.get("sequence_accuracy")) if test else ""
        n = p["data.train_examples"]
        size = "S (6,400)" if n == 6400 else "L (12,800)" if n == 12800 else str(n)
        gates = " ".join("%.2f" % g for g in r.get("rsa_gates", [])) if r else ""
        secs = "%.0f s" % r["train_seconds"] if r and "train_seconds" in r else ""
        log = training_log(t)
        final = "%.3f" % log[-1][1] if log else ""
        below = next((str(step) for step, loss in log if loss < 0.1), "not reached" if log else "")
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            p["model"], size, p["task.max_len"], acc, seq, final, below, secs, gates))


def bins(r):
    """(last bin 0, last bin 1, best bin 0, best bin 1) of a trial's eval.json; best falls back to last."""
    last0 = r.get("sequence_accuracy")
    last1 = r.get("splits", {}).get("test", {}).get("sequence_accuracy")
    best = r.get("best", {})
    return (last0, last1, best.get("valid", {}).get("sequence_accuracy", last0),
            best.get("test", {}).get("sequence_accuracy", last1))


def against(ablation, base):
    """Per (language, model, seed) in both runs: base and ablation bins, and the change."""
    def cells(s):
        return {(t["point"]["language"], t["point"]["model"], t["seed"]): t["result"] for t in s["trials"]
                if t["state"] == "succeeded" and isinstance(t.get("result"), dict)}
    a, b = cells(ablation), cells(base)
    common = [k for k in a if k in b]
    if not common:
        sys.exit("experiment_tables: the two runs share no (language, model, seed) that succeeded")
    print("| language | model | seed | base last (bin 0 / bin 1) | ablation last | change | "
          "base best | ablation best | change |")
    print("|---|---|---|---|---|---|---|---|---|")
    pair = lambda v: "%s / %s" % (fmt(v[0]), fmt(v[1]))
    change = lambda x, y: "%+.2f / %+.2f" % (y[0] - x[0], y[1] - x[1])
    for key in common:
        x, y = bins(b[key]), bins(a[key])
        print("| %s | %s | %d | %s | %s | %s | %s | %s | %s |" % (
            key[0], key[1], key[2], pair(x[:2]), pair(y[:2]), change(x[:2], y[:2]),
            pair(x[2:]), pair(y[2:]), change(x[2:], y[2:])))
    missing = sorted(set(a) - set(b))
    if missing:
        print()
        print("Not in the base run: %s." % ", ".join("%s/%s/seed %d" % k for k in missing))


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "formal-languages" and args[2] == "--against":
        return against(json.load(open(args[1])), json.load(open(args[3])))
    if len(args) != 2 or args[0] not in ("formal-languages", "copy-task"):
        sys.exit(__doc__)
    s = json.load(open(sys.argv[2]))
    if sys.argv[1] == "copy-task":
        return copy_task(s)
    rows = []
    for t in s["trials"]:
        lang, model = t["point"]["language"], t["point"]["model"]
        r = t["result"] if isinstance(t.get("result"), dict) else None
        b0 = r.get("sequence_accuracy") if r else None
        b1 = r.get("splits", {}).get("test", {}).get("sequence_accuracy") if r else None
        seed = "%d%s" % (t["seed"], "†" if t.get("recorded") else "")
        rows.append((lang, model, t["state"], b0, b1, r, seed))
    best = lambda r, split: r.get("best", {}).get(split, {}).get("sequence_accuracy") if r else None
    both = any(r and "best" in r for *_, r, _ in rows)
    extra = " best bin 0 | best bin 1 | stopped at |" if both else ""
    print("| language | model | seed | ours bin 0 | ours bin 1 |%s paper bin 0 | paper bin 1 | train time | gates (per layer) |" % extra)
    print("|---|---|---|---|---|%s---|---|---|---|" % ("---|---|---|" if both else ""))
    for lang, model, state, b0, b1, r, seed in rows:
        p = PAPER.get(lang, {}).get(short(model), (None, None))
        secs = r.get("train_seconds") if r else None
        gates = " ".join("%.2f" % g for g in r.get("rsa_gates", [])) if r else ""
        ours0 = fmt(b0) if state == "succeeded" else state
        paper_protocol = " %s | %s | %s |" % (fmt(best(r, "valid")), fmt(best(r, "test")),
                                             r.get("stopped_early", {}).get("step", "") if r else "") if both else ""
        print("| %s | %s | %s | %s | %s |%s %s | %s | %s | %s |" % (
            lang, model, seed, ours0, fmt(b1), paper_protocol, fmt(p[0]), fmt(p[1]),
            "" if secs is None else "%.0f s" % secs, gates))
    if both:
        cells = {}
        for lang, model, state, b0, b1, r, seed in rows:
            if state == "succeeded":
                cells.setdefault((lang, model), []).append((b0, b1, best(r, "valid"), best(r, "test")))
        print()
        print("Mean ± sd over seeds (n): ours = last epoch, paper's protocol = each bin's best epoch.")
        print()
        print("| language | model | n | ours bin 0 | ours bin 1 | best bin 0 | best bin 1 | paper bin 0 | paper bin 1 |")
        print("|---|---|---|---|---|---|---|---|---|")
        for (lang, model), vals in cells.items():
            p = PAPER.get(lang, {}).get(short(model), (None, None))
            print("| %s | %s | %d | %s | %s | %s |" % (lang, model, len(vals),
                  " | ".join(mean_sd([v[k] for v in vals]) for k in range(4)), fmt(p[0]), fmt(p[1])))
    recorded = sorted({t["recorded"] for t in s["trials"] if t.get("recorded")})
    if recorded:
        print()
        print("† carried over from the report of the run of %s (not re-run here)." % ", ".join(recorded))
    print()
    print("REM parameters at the end of training (λ = tanh η, γ = sigmoid ν, θ; per head, first layer):")
    print()
    for lang, model, state, b0, b1, r, seed in rows:
        if not r or "rem" not in r:
            continue
        rem = r["rem"]
        parts = []
        for key in sorted(rem):
            if not key.startswith("layers.0."):
                continue
            name = key.split(".")[-1]
            vals = rem[key]
            if not vals:
                continue
            if name == "eta":
                parts.append("λ " + " ".join("%.2f" % math.tanh(v) for v in vals))
            elif name == "nu":
                parts.append("γ " + " ".join("%.2f" % (1 / (1 + math.exp(-v))) for v in vals))
            elif name == "theta":
                parts.append("θ " + " ".join("%.2f" % v for v in vals))
        if parts:
            print("- %s, %s: %s" % (lang, model, "; ".join(parts)))


if __name__ == "__main__":
    main()
