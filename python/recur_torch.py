"""Load a trained Recur run into PyTorch: ``load(run_dir)`` returns an ``nn.Module`` whose
``forward(tokens, mems=None)`` returns ``(logits, new_mems)`` equal to Recur's (docs/pytorch.md).

Invariant: the module's state_dict names are Recur's (docs/models.md), read one-to-one from
``RUN/model.h5`` (written by ``recur export --run-dir RUN --format h5``); the computation follows
src/model/lm.cpp, attention.cpp and rem.cpp step for step. Needs PyTorch, h5py and numpy only.
"""
import json
import math
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED_TYPES = ("transformer", "xl", "rsa_xl")


def attention_mask(qlen, mlen, mem_len, same_length, device=None):
    """The causal mask over [memory | segment] (True = hidden), as lm.cpp's attention_mask."""
    klen = qlen + mlen
    ones = torch.ones(qlen, klen, dtype=torch.bool, device=device)
    mask = torch.triu(ones, 1 + mlen)
    if same_length and mem_len > 0:
        mask_len = klen - mem_len
        shift = qlen - mask_len if mask_len > 0 else qlen
        mask = mask | torch.tril(ones, -shift)
    return mask


def rel_shift(x):
    b, h, q, k = x.shape
    padded = torch.cat([x.new_zeros(b, h, q, 1), x], dim=3).view(b, h, k + 1, q)
    return padded[:, :, 1:].reshape(b, h, q, k)


def sinusoid(positions, inv_freq):
    angles = torch.outer(positions.to(inv_freq.dtype), inv_freq)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Rem(nn.Module):
    """One layer's parametric REMs (src/model/rem.h): heads k1 | k2 | k3 | k4 | k5 | k6, gate sigmoid(mu)."""

    def __init__(self, model_cfg, shapes):
        super().__init__()
        self.counts = [int(c) for c in model_cfg["rem_types"]]
        self.dilations = [int(d) for d in (model_cfg.get("dilations") or [])]
        self.truncation = int(model_cfg["rem_truncation"])
        self.cyclical = model_cfg.get("rem_cyclical", "shared_pair")
        self.n_heads = sum(self.counts)
        for name in ("eta", "nu", "mu"):
            setattr(self, name, nn.Parameter(torch.zeros(shapes[name])))
        if self.cyclical == "fixed_theta":
            self.register_buffer("theta", torch.zeros(shapes["theta"]))
        else:
            self.theta = nn.Parameter(torch.zeros(shapes["theta"]))
        c = self.counts
        self.register_buffer("dilation", torch.tensor([1] * (c[0] + c[1] + c[2]) + self.dilations), persistent=False)
        self.register_buffer("is_sin", torch.tensor(sum(([t in (2, 5)] * c[t] for t in range(6)), [])), persistent=False)
        # Cyclical head -> its (nu, theta) entry: shared_pair pairs the k-th cos and sin head of a family.
        pair = []
        if self.cyclical == "shared_pair":
            offset = 0
            for kc, ks in ((c[1], c[2]), (c[4], c[5])):
                pair += [offset + i for i in range(kc)] + [offset + i for i in range(ks)]
                offset += max(kc, ks)
        else:
            pair = list(range(c[1] + c[2] + c[4] + c[5]))
        self.register_buffer("pair", torch.tensor(pair, dtype=torch.long), persistent=False)

    def gate(self):
        return torch.sigmoid(self.mu).squeeze(0)

    def matrices(self, qlen, mlen):
        """[heads, qlen, mlen + qlen]: f(lag) with lag = i + mlen - j; 0 for lag <= 0 and beyond K."""
        c = self.counts
        klen = qlen + mlen
        dev = self.mu.device
        lag = torch.arange(qlen, device=dev)[:, None] + mlen - torch.arange(klen, device=dev)[None, :]
        dil = self.dilation.to(dev)[:, None, None]
        dist = lag.abs()[None]
        keep = lag.ge(1)[None] & (dist % dil).eq(0) & dist.le(dil * self.truncation)
        power = torch.where(keep, torch.div(dist, dil, rounding_mode="floor"), 1).to(self.mu.dtype)
        lam, gamma, angles = torch.tanh(self.eta), torch.sigmoid(self.nu), self.theta
        gamma, angles = gamma[self.pair], angles[self.pair]
        k1, k23 = c[0], c[1] + c[2]
        base = torch.cat([lam[:k1], gamma[:k23], lam[k1:], gamma[k23:]])
        angle = torch.cat([angles.new_zeros(k1), angles[:k23], angles.new_zeros(c[3]), angles[k23:]])
        phase = power * angle[:, None, None]
        wave = torch.where(self.is_sin.to(dev)[:, None, None], torch.sin(phase), torch.cos(phase))
        return (torch.pow(base[:, None, None], power) * wave).masked_fill(~keep, 0.0)


class Attention(nn.Module):
    def __init__(self, d, n_head, d_head, dropout, dropatt, pre_ln, relative, rem=None, drop_rel_pos=False):
        super().__init__()
        self.n_head, self.d_head, self.pre_ln, self.relative = n_head, d_head, pre_ln, relative
        self.qkv_net = nn.Linear(d, 3 * n_head * d_head, bias=False)
        self.o_net = nn.Linear(n_head * d_head, d, bias=False)
        self.layer_norm = nn.LayerNorm(d)
        if relative:
            self.r_net = nn.Linear(d, n_head * d_head, bias=False)
        self.drop, self.dropatt = nn.Dropout(dropout), nn.Dropout(dropatt)
        if rem is not None:
            self.rem = rem
        self.n_rsa = rem.n_heads if rem is not None else 0
        self.drop_rel_pos = drop_rel_pos

    def forward(self, h, mem, pos_emb, r_w_bias, r_r_bias, mask):
        B, T = h.shape[:2]
        H, dh = self.n_head, self.d_head
        M = 0 if mem is None else mem.shape[1]
        K = M + T
        cat = h if M == 0 else torch.cat([mem, h], dim=1)
        if self.pre_ln:
            cat = self.layer_norm(cat)
        heads = self.qkv_net(cat).view(B, K, 3, H, dh)
        q = heads[:, M:, 0].transpose(1, 2)
        k = heads[:, :, 1].transpose(1, 2)
        v = heads[:, :, 2].transpose(1, 2)
        scale = 1.0 / math.sqrt(dh)
        if self.relative:
            r_head_k = self.r_net(pos_emb).view(K, H, dh)
            ac = torch.matmul(q + r_w_bias.view(1, H, 1, dh), k.transpose(2, 3))
            bd = rel_shift(torch.einsum("bhid,jhd->bhij", q + r_r_bias.view(1, H, 1, dh), r_head_k))
            if self.n_rsa > 0 and self.drop_rel_pos:
                bd = torch.cat([torch.zeros_like(bd[:, : self.n_rsa]), bd[:, self.n_rsa :]], dim=1)
            scores = (ac + bd) * scale
        else:
            scores = torch.matmul(q, k.transpose(2, 3)) * scale
        scores = scores.masked_fill(mask.view(1, 1, T, K), float("-inf"))
        out = torch.matmul(self.dropatt(torch.softmax(scores, dim=-1)), v)
        if self.n_rsa > 0:
            # The REM part sees the keys the attention sees (same_length included).
            P = self.rem.matrices(T, M).masked_fill(mask.view(1, T, K), 0.0).to(out.dtype)
            g = self.rem.gate().to(out.dtype)
            rsa = (1 - g) * out[:, : self.n_rsa] + g * torch.matmul(P.unsqueeze(0), v[:, : self.n_rsa])
            out = torch.cat([rsa, out[:, self.n_rsa :]], dim=1)
        attn_out = self.drop(self.o_net(out.transpose(1, 2).reshape(B, T, H * dh)))
        return h + attn_out if self.pre_ln else self.layer_norm(h + attn_out)


class PositionwiseFF(nn.Module):
    def __init__(self, d, d_inner, dropout, pre_ln):
        super().__init__()
        self.pre_ln = pre_ln
        self.CoreNet = nn.Sequential(nn.Linear(d, d_inner), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_inner, d),
                                     nn.Dropout(dropout))
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, x):
        if self.pre_ln:
            return x + self.CoreNet(self.layer_norm(x))
        return self.layer_norm(x + self.CoreNet(x))


class DecoderLayer(nn.Module):
    def __init__(self, attn, d, d_inner, dropout, pre_ln):
        super().__init__()
        self.dec_attn = attn
        self.pos_ff = PositionwiseFF(d, d_inner, dropout, pre_ln)

    def forward(self, h, mem, pos_emb, r_w_bias, r_r_bias, mask):
        return self.pos_ff(self.dec_attn(h, mem, pos_emb, r_w_bias, r_r_bias, mask))


class _Holder(nn.Module):
    pass


class RecurLM(nn.Module):
    """Recur's transformer / xl / rsa_xl. forward(tokens [B, T] int64, mems: list of L+1 [B, M, d] or None)
    -> (logits [B, T, V] fp32, new_mems: list of L+1 tensors, or None without memory).

    Training mode uses model.mem_len/same_length/clamp_len, evaluation mode eval.* (as Recur); the
    attributes eval_mem_len, eval_same_length, eval_clamp_len may be changed."""

    def __init__(self, config, shapes):
        super().__init__()
        m, ev = config["model"], config.get("eval", {})
        self.model_type = config["model_type"]
        if self.model_type not in SUPPORTED_TYPES:
            raise ValueError(f"recur_torch loads model.type {', '.join(SUPPORTED_TYPES)}; this run is "
                             f"'{self.model_type}'")
        if m.get("cutoffs") or int(m.get("div_val", 1)) != 1 or int(m.get("d_embed", 0)) not in (0, int(m["d_model"])):
            raise ValueError("recur_torch does not load adaptive input/softmax (model.cutoffs, div_val, d_embed); "
                             "read model.safetensors with the names of docs/models.md instead")
        if self.model_type == "rsa_xl" and m.get("rem_cyclical", "shared_pair") not in ("shared_pair", "fixed_theta", "per_head"):
            raise ValueError(f"unknown model.rem_cyclical {m.get('rem_cyclical')}")
        V, d, H = int(config["vocab_size"]), int(m["d_model"]), int(m["n_head"])
        dh = int(m.get("d_head") or 0) or d // H
        self.d_model, self.n_layer = d, int(m["n_layer"])
        self.relative = self.model_type != "transformer"
        self.pre_ln = bool(m.get("pre_ln", False))
        self.pos_enc = m.get("pos_enc", "sinusoidal")
        self.mem_len, self.same_length = int(m["mem_len"]), bool(m.get("same_length", False))
        self.clamp_len = int(m.get("clamp_len", -1))
        self.eval_mem_len = int(ev.get("mem_len", -1))
        self.eval_same_length = bool(ev.get("same_length", True))
        self.eval_clamp_len = int(ev.get("clamp_len", -1))
        dropout, dropatt = float(m.get("dropout", 0.0)), float(m.get("dropatt", 0.0))

        self.word_emb = _Holder()
        self.word_emb.emb_layers = nn.ModuleList([nn.Embedding(V, d)])
        self.pos_emb = _Holder()
        self.pos_emb.register_buffer("inv_freq", torch.zeros(shapes["pos_emb.inv_freq"]))
        if "pos_emb.weight" in shapes:
            self.pos_emb.weight = nn.Parameter(torch.zeros(shapes["pos_emb.weight"]))
        if self.relative:
            self.r_w_bias = nn.Parameter(torch.zeros(H, dh))
            self.r_r_bias = nn.Parameter(torch.zeros(H, dh))
        else:
            self.r_w_bias = self.r_r_bias = None
        layers = []
        for i in range(self.n_layer):
            prefix = f"layers.{i}.dec_attn.rem."
            rem = None
            if self.model_type == "rsa_xl":
                rem = Rem(m, {n: shapes[prefix + n] for n in ("eta", "nu", "theta", "mu")})
            attn = Attention(d, H, dh, dropout, dropatt, self.pre_ln, self.relative, rem,
                             bool(m.get("rsa_drop_rel_pos", False)))
            layers.append(DecoderLayer(attn, d, int(m["d_inner"]), dropout, self.pre_ln))
        self.layers = nn.ModuleList(layers)
        if "ln_f.weight" in shapes:
            self.ln_f = nn.LayerNorm(d)
        self.crit = _Holder()
        out = _Holder()
        out.bias = nn.Parameter(torch.zeros(V))
        self.crit.out_layers = nn.ModuleList([out])
        self.drop = nn.Dropout(dropout)

    def forward(self, tokens, mems=None):
        B, T = tokens.shape
        training = self.training
        mem_len = self.mem_len if training or self.eval_mem_len < 0 else self.eval_mem_len
        same_length = self.same_length if training else self.eval_same_length
        clamp_len = self.clamp_len if training or self.eval_clamp_len < 0 else self.eval_clamp_len
        use_mems = self.relative and mem_len > 0
        if use_mems and mems:
            if len(mems) != self.n_layer + 1:
                raise ValueError(f"mems holds {len(mems)} tensors, the model needs {self.n_layer + 1}")
            M = mems[0].shape[1]
        else:
            mems, M = None, 0
        K = M + T
        weight = self.word_emb.emb_layers[0].weight
        h = F.embedding(tokens, weight) * math.sqrt(self.d_model)
        inv_freq = self.pos_emb.inv_freq
        pos_emb = None
        if self.relative:
            pos_seq = torch.arange(K - 1, -1, -1.0, dtype=inv_freq.dtype, device=inv_freq.device)
            if clamp_len > 0:
                pos_seq = pos_seq.clamp_max(clamp_len)
            pos_emb = self.drop(sinusoid(pos_seq, inv_freq).to(h.dtype))
            mask = attention_mask(T, M, mem_len, same_length, tokens.device)
        else:
            if self.pos_enc == "sinusoidal":
                h = h + sinusoid(torch.arange(T, dtype=inv_freq.dtype, device=inv_freq.device), inv_freq).to(h.dtype)
            elif self.pos_enc == "learned":
                h = h + self.pos_emb.weight[:T]
            mask = attention_mask(T, 0, 0, False, tokens.device)
        h = self.drop(h)
        hids = [h]
        for i, layer in enumerate(self.layers):
            h = layer(h, mems[i] if M > 0 else None, pos_emb, self.r_w_bias, self.r_r_bias, mask)
            hids.append(h)
        if hasattr(self, "ln_f"):
            h = self.ln_f(h)
        h = self.drop(h)
        logits = F.linear(h.float(), weight.float(), self.crit.out_layers[0].bias.float())
        new_mems = None
        if use_mems:
            with torch.no_grad():
                new_mems = []
                for i in range(self.n_layer + 1):
                    cat = hids[i] if M == 0 else torch.cat([mems[i], hids[i]], dim=1)
                    new_mems.append(cat[:, cat.shape[1] - min(mem_len, cat.shape[1]):].detach())
        return logits, new_mems


def read_h5(path):
    """{name: tensor} of every dataset in a model.h5."""
    tensors = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                tensors[name] = torch.from_numpy(np.asarray(obj[()], dtype=np.float32))
        f.visititems(visit)
    return tensors


def load(run_dir, device="cpu"):
    """The run's model in evaluation mode, from RUN/model.h5 and RUN/config.json: run
    `recur export --run-dir RUN --format h5` first."""
    h5_path, cfg_path = os.path.join(run_dir, "model.h5"), os.path.join(run_dir, "config.json")
    for p in (h5_path, cfg_path):
        if not os.path.exists(p):
            raise FileNotFoundError(f"{p} is missing: run `recur export --run-dir {run_dir} --format h5` first")
    with open(cfg_path) as f:
        config = json.load(f)
    tensors = read_h5(h5_path)
    model = RecurLM(config, {name: tuple(t.shape) for name, t in tensors.items()})
    # Recur stores the tied output weight once (word_emb.emb_layers.0.weight); strict names otherwise.
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()
