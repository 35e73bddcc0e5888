#!/usr/bin/env python3
"""Times one training step of the official Transformer-XL PyTorch code (kimiyoung/transformer-xl,
pytorch/mem_transformer.py) at a given shape, for the side-by-side comparison with `recur bench step`
in docs/benchmarks.md. The reference is read from a checkout given with --repo and is not part of
Recur. The only change, made in memory, is its byte masks as bool masks (`.byte()` -> `.bool()`):
recent PyTorch refuses uint8 masks in masked_fill.

A step is what Recur's step does: forward over a segment with a full memory, backward of the mean
loss, gradient clipping (global norm), Adam. Prints one JSON line: the median ms/step, tokens/s and
the parameter count.
Usage: bench_reference_xl.py --repo DIR [--layers 2] [--d-model 512] [--heads 8] [--d-inner 2048]
       [--tgt-len 512] [--mem-len 512] [--batch 2] [--vocab 256] [--threads 2] [--repeats 5] [--warmup 2]"""
import argparse
import json
import os
import statistics
import sys
import time
import types

import torch


def load_reference(repo):
    path = os.path.join(repo, "pytorch", "mem_transformer.py")
    if not os.path.exists(path):
        sys.exit("bench_reference_xl: no %s (fetch kimiyoung/transformer-xl and give its checkout with --repo)" % path)
    sys.path.insert(0, os.path.join(repo, "pytorch", "utils"))
    source = open(path).read().replace(".byte()", ".bool()")
    module = types.ModuleType("mem_transformer")
    module.__file__ = path
    exec(compile(source, path, "exec"), module.__dict__)
    return module


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True)
    for name, default in [("layers", 2), ("d-model", 512), ("heads", 8), ("d-inner", 2048), ("tgt-len", 512),
                          ("mem-len", 512), ("batch", 2), ("vocab", 256), ("threads", 2), ("repeats", 5),
                          ("warmup", 2)]:
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--clip", type=float, default=0.25)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    ref = load_reference(a.repo)
    model = ref.MemTransformerLM(a.vocab, a.layers, a.heads, a.d_model, a.d_model // a.heads, a.d_inner,
                                 dropout=0.0, dropatt=0.0, tie_weight=True, tgt_len=a.tgt_len, ext_len=0,
                                 mem_len=a.mem_len, attn_type=0)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=2.5e-4)
    params = sum(p.numel() for p in model.parameters())
    # time-major [T, B], as the reference's loaders give
    data = torch.randint(a.vocab, (a.tgt_len, a.batch))
    target = torch.randint(a.vocab, (a.tgt_len, a.batch))
    mems = tuple()
    ret = model(data, target, *mems)  # fills the memory: every timed step sees M = mem_len
    mems = ret[1:]
    times = []
    for i in range(a.warmup + a.repeats):
        start = time.perf_counter()
        ret = model(data, target, *mems)
        loss, mems = ret[0].float().mean(), ret[1:]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        opt.zero_grad()
        if i >= a.warmup:
            times.append((time.perf_counter() - start) * 1000)
    ms = statistics.median(times)
    print(json.dumps({"bench": "reference_xl_step", "parameters": params, "ms_per_step": ms,
                      "tokens_per_s": a.tgt_len * a.batch / ms * 1000, "times_ms": times, "torch": torch.__version__,
                      "threads": a.threads}))


if __name__ == "__main__":
    main()
