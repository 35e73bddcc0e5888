#!/usr/bin/python3
"""Keeps only some labels of a sweep spec's axes, in place (scripts/experiment --only).
Usage: sweep_only.py SWEEP.yaml AXIS=LABEL[,LABEL...] [...]
An axis value is matched by its `label` or the label's first word (`I` for "I (5,0,0,0,0,0)"), or,
for a plain value, by its text. An unknown axis or
label is an error that names the known ones; the file is left as it was."""
import sys

import yaml


def label(value):
    return str(value["label"]) if isinstance(value, dict) and "label" in value else str(value)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    path = argv[1]
    with open(path) as f:
        spec = yaml.safe_load(f)
    axes = spec.get("axes") or {}
    for arg in argv[2:]:
        axis, _, wanted = arg.partition("=")
        if axis not in axes:
            sys.exit("sweep_only: %s has no axis '%s' (axes: %s)" % (path, axis, ", ".join(axes)))
        wanted = [w.strip() for w in wanted.split(",") if w.strip()]
        known = [label(v) for v in axes[axis]]
        match = lambda v: any(label(v) == w or label(v).split(" ")[0] == w for w in wanted)
        unknown = [w for w in wanted if not any(k == w or k.split(" ")[0] == w for k in known)]
        if unknown or not wanted:
            sys.exit("sweep_only: axis '%s' has no label %s (labels: %s)" % (axis, ", ".join(unknown) or "''", ", ".join(known)))
        axes[axis] = [v for v in axes[axis] if match(v)]
        spec["name"] = "%s-%s-%s" % (spec.get("name", "sweep"), axis, "-".join(wanted))
    with open(path, "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False, default_flow_style=None, width=1000)


if __name__ == "__main__":
    main(sys.argv)
