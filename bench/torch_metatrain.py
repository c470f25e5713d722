#!/usr/bin/env python3
"""One PERK meta-training step in PyTorch — the CPU anchor for `deno task perf`.

Same configuration as perk's tiny default model (pass it as JSON with --config), the same
inner loop as the authors' code: LoRA on every linear, rank-stabilised scaling, dropout,
a weighting MLP on the last hidden state (zero-initialised output, softplus beta=3),
differentiable AdamW (0.9/0.95, wd 0.01, bias-corrected) with per-tensor per-step learned
learning rates, N inner steps of which the last T keep their graph (create_graph=True
unrolling; earlier steps detach the gradient but keep the parameter path), then the NLL
of the target from the question prompt alone, backpropagated to the meta-parameters.

Prints `PERF torch_metatrain_1k_T{T}_ms <median ms> ms` and
`PERF torch_metatrain_1k_T{T}_peak_bytes <max RSS> bytes`. Run one T per process so
max RSS is that configuration's own peak. Uses Debian's python3-torch (1.13), one thread.
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, theta):  # x (B, T, H, D), half-split layout (HF rotate_half)
    d = x.shape[-1]
    inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    ang = pos[:, :, None].float() * inv[None, None, :]  # (B, T, D/2)
    cos = torch.cat([ang.cos(), ang.cos()], -1)[:, :, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[:, :, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Tiny:
    def __init__(self, c, gen):
        self.c = c
        d, f, v = c["dim"], c["ffn"], c["vocab"]
        hd = d // c["heads"]
        kvd = hd * c["kv_heads"]
        self.shapes = {"q": (d, d), "k": (d, kvd), "v": (d, kvd), "o": (d, d),
                       "gate": (d, f), "up": (d, f), "down": (f, d)}
        r = lambda *s: torch.randn(*s, generator=gen) * 0.05
        self.emb = r(v, d)
        self.layers = [{k: r(*s) for k, s in self.shapes.items()} | {
            "n1": torch.ones(d), "n2": torch.ones(d)} for _ in range(c["layers"])]
        self.norm = torch.ones(d)
        self.head = self.emb  # tied

    def lora_init(self, rank, gen):
        out = {}
        for i in range(self.c["layers"]):
            for k, (fi, fo) in self.shapes.items():
                bound = 1 / math.sqrt(fi)
                out[f"{i}.{k}.A"] = (torch.rand(fi, rank, generator=gen) * 2 - 1) * bound
                out[f"{i}.{k}.B"] = torch.zeros(rank, fo)
        return out

    def forward(self, ids, lora, scale, p_drop, gen_seed):
        c = self.c
        B, T = ids.shape
        H, KV = c["heads"], c["kv_heads"]
        hd = c["dim"] // H
        pos = torch.arange(T)[None, :].expand(B, T)
        x = self.emb[ids]
        g = torch.Generator().manual_seed(gen_seed)

        def lin(h, i, k):
            W = self.layers[i][k]
            hd_ = F.dropout(h, p_drop, True) if p_drop > 0 else h
            return h @ W + scale * ((hd_ @ lora[f"{i}.{k}.A"]) @ lora[f"{i}.{k}.B"])

        mask = torch.full((T, T), float("-inf")).triu(1)
        for i, L in enumerate(self.layers):
            h = rms_norm(x, L["n1"], 1e-5)
            q = rope(lin(h, i, "q").view(B, T, H, hd), pos, 10000.0).transpose(1, 2)
            k = rope(lin(h, i, "k").view(B, T, KV, hd), pos, 10000.0).transpose(1, 2)
            v = lin(h, i, "v").view(B, T, KV, hd).transpose(1, 2)
            k = k.repeat_interleave(H // KV, 1)
            v = v.repeat_interleave(H // KV, 1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
            o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, -1)
            x = x + lin(o, i, "o")
            h = rms_norm(x, L["n2"], 1e-5)
            x = x + lin(F.silu(lin(h, i, "gate")) * lin(h, i, "up"), i, "down")
        hid = rms_norm(x, self.norm, 1e-5)
        return hid, hid @ self.head.t()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="JSON: vocab, dim, layers, heads, kv_heads, ffn")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--segment", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--retained", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--name", default="1k")
    a = ap.parse_args()
    torch.set_num_threads(1)
    c = json.load(open(a.config))
    gen = torch.Generator().manual_seed(0)
    model = Tiny(c, gen)
    scale = a.alpha / math.sqrt(a.rank)
    B, T = a.tokens // a.segment, a.segment
    ids = torch.randint(0, c["vocab"], (B, T), generator=gen)
    q_ids = torch.randint(0, c["vocab"], (1, 48), generator=gen)
    q_mask = torch.zeros(1, 47)
    q_mask[:, 31:] = 1  # answer tokens only
    lora0 = {k: v.requires_grad_() for k, v in model.lora_init(a.rank, gen).items()}
    names = list(lora0)
    lrs = torch.full((a.steps, len(names)), 5e-5, requires_grad=True)
    W1 = (torch.randn(c["dim"], 128, generator=gen) * 0.02).requires_grad_()
    b1 = torch.zeros(128, requires_grad=True)
    W2 = torch.zeros(128, 1, requires_grad=True)
    b2 = torch.zeros(1, requires_grad=True)
    b1_, b2_, eps, wd = 0.9, 0.95, 1e-8, 0.01

    def meta_step():
        p = dict(lora0)
        m = {k: torch.zeros_like(v) for k, v in p.items()}
        v_ = {k: torch.zeros_like(v) for k, v in p.items()}
        for n in range(a.steps):
            keep = n >= a.steps - a.retained
            hid, logits = model.forward(ids, p, scale, 0.1, n)
            w = F.softplus(F.gelu(hid @ W1 + b1) @ W2 + b2, beta=3)[..., 0]  # (B, T)
            ce = F.cross_entropy(logits[:, :-1].reshape(-1, c["vocab"]), ids[:, 1:].reshape(-1),
                                 reduction="none").view(B, T - 1)
            loss = (ce * w[:, :-1]).sum() / (B * (T - 1))
            grads = torch.autograd.grad(loss, [p[k] for k in names], create_graph=keep)
            t = n + 1
            c1, c2 = 1 / (1 - b1_ ** t), 1 / math.sqrt(1 - b2_ ** t)
            for j, k in enumerate(names):
                g = grads[j] if keep else grads[j].detach()
                lr = lrs[n, j]
                m[k] = b1_ * m[k] + (1 - b1_) * g
                v_[k] = b2_ * v_[k] + (1 - b2_) * g * g
                p[k] = p[k] * (1 - lr * wd) - lr * c1 * m[k] / (torch.sqrt(v_[k] + 1e-30) * c2 + eps)  # +1e-30: sqrt'(0) would make NaN where v = 0
        _, logits = model.forward(q_ids, p, scale, 0.1, 99)
        nll = F.cross_entropy(logits[0, :-1], q_ids[0, 1:], reduction="none")
        outer = (nll * q_mask[0]).sum() / q_mask.sum()
        outer.backward()
        for t_ in [*lora0.values(), lrs, W1, b1, W2, b2]:
            t_.grad = None
        return float(outer)

    meta_step()  # warm-up
    times = []
    for _ in range(a.runs):
        s = time.perf_counter()
        meta_step()
        times.append((time.perf_counter() - s) * 1000)
    times.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tag = f"torch_metatrain_{a.name}_T{a.retained}"
    print(f"PERF {tag}_ms {times[len(times) // 2]:.1f} ms")
    print(f"PERF {tag}_peak_bytes {rss} bytes")


if __name__ == "__main__":
    main()
