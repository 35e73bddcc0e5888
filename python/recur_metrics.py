#!/usr/bin/python3
"""RUN/metrics.jsonl read back in Python (standard library only), by the rules of the C++ reader
(src/core/metrics_file.h): a line is a record when it is one JSON object with a "step"; an object with
"eval" is an evaluation record, else one with "loss" is a training record. Anything else (a torn last
line while a run appends, garbage, NaN/Infinity literals, invalid UTF-8) is skipped, never fatal.
tests/core/test_metrics_file.cpp checks that this reader and the C++ one agree on a hostile file.

    import recur_metrics
    m = recur_metrics.read(run_dir)   # m.train, m.evals: lists of dicts, in file order

Usage as a program: recur_metrics.py RUN_DIR   prints {"train": [...], "evals": [...]} as JSON."""
import json
import os
import sys


class Metrics:
    def __init__(self, train, evals):
        self.train = train  # training records {"step", "loss", ...}
        self.evals = evals  # evaluation records {"step", "eval": {...}}


def _no_constants(name):
    raise ValueError("not JSON: " + name)  # NaN, Infinity, -Infinity are not JSON (nlohmann rejects them)


def parse_line(raw):
    """The record of one line (bytes, without its newline), or None when it is not one."""
    try:
        r = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return r if isinstance(r, dict) and "step" in r else None


def read(run_dir):
    """The records of RUN_DIR/metrics.jsonl; a missing file reads as empty."""
    train, evals = [], []
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return Metrics(train, evals)
    with open(path, "rb") as f:
        for line in f:
            r = parse_line(line[:-1] if line.endswith(b"\n") else line)
            if r is None:
                continue
            if "eval" in r:
                evals.append(r)
            elif "loss" in r:
                train.append(r)
    return Metrics(train, evals)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    m = read(sys.argv[1])
    json.dump({"train": m.train, "evals": m.evals}, sys.stdout)
