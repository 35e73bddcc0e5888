"""Checks a `recur export`ed run against Recur (tests/train/test_export.cpp runs it in the venv):
recur_torch's logits equal REFERENCE.h5's within 1e-5 for two segments with memory carried, and
model.safetensors holds the same names, shapes and values as model.h5.

Usage: check_export.py RUN REFERENCE.h5. Exits 1 with the reason on the first difference."""
import os
import sys

import h5py
import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recur_torch  # noqa: E402

TOLERANCE = 1e-5


def main(run, reference):
    model = recur_torch.load(run)
    with h5py.File(reference, "r") as f:
        tokens = torch.from_numpy(np.asarray(f["tokens"][()], dtype=np.int64))
        expected = [torch.from_numpy(np.asarray(f[f"logits.{i}"][()])) for i in range(2)]
    mems = None
    with torch.no_grad():
        for i, segment in enumerate((tokens[:, :16], tokens[:, 16:])):
            logits, mems = model(segment, mems)
            diff = (logits - expected[i]).abs().max().item()
            if logits.shape != expected[i].shape or not diff <= TOLERANCE:
                sys.exit(f"FAIL {model.model_type} segment {i}: shape {tuple(logits.shape)} vs "
                         f"{tuple(expected[i].shape)}, max |diff| {diff}")
            print(f"ok {model.model_type} segment {i}: max |logit diff| {diff:.2e}")
    h5 = recur_torch.read_h5(os.path.join(run, "model.h5"))
    st = load_file(os.path.join(run, "model.safetensors"))
    if sorted(h5) != sorted(st):
        sys.exit(f"FAIL safetensors names {sorted(set(st) ^ set(h5))} differ from model.h5's")
    for name, t in h5.items():
        if st[name].dtype != torch.float32 or st[name].shape != t.shape or not torch.equal(st[name], t):
            sys.exit(f"FAIL safetensors {name}: {st[name].dtype} {tuple(st[name].shape)} differs from model.h5")
    print(f"ok {model.model_type} safetensors: {len(st)} tensors equal model.h5's")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
