#!/usr/bin/env python3
"""FT-ICR's learning dynamics in PyTorch: a cross-check of perk's FT-ICR fine-tuning.

When perk's FT-ICR learns the answer format but not the answer (tests/baselines_learning_test.ts),
is that our kernels or the learning problem? This trains the same LLaMA-style model (the
profile's config, perk's init: N(0, 0.02), residual outputs scaled by 1/sqrt(2 * layers), tied
embeddings) from scratch on the same examples with perk's FT-ICR recipe: loss on the answer
tokens only, AdamW (0.9, 0.95, weight decay 0.01 on matrices), global-norm clip 1, linear
warm-up over 3% of the steps then a cosine to 0. Every --every steps it prints the training loss
and, on the test problems (teacher-forced), the accuracy of the format tokens, of the person's
name (copied from the question) and of the label's first token (read from the context).
--copy-steps N first trains N steps on repeated random sequences, which plants copying
(induction) heads, to see whether that is what the fine-tuning lacks. --stories FILE
--story-steps N first trains N steps (--story-batch windows each) on tracking-story windows
(bench/story_windows.ts), the answered rooms' loss weighted by --answer-weight, as perk's
pretraining does with storyFraction 1; it prints the held-out rooms' accuracy.

  deno run -A bench/ft_icr_examples.ts /tmp/icr.json qa1 128
  /usr/bin/python3 bench/torch_ft_icr.py /tmp/icr.json --steps 300 --batch 8 --lr 3e-3
  deno run -A bench/story_windows.ts /tmp/stories.json
  /usr/bin/python3 bench/torch_ft_icr.py /tmp/icr.json --stories /tmp/stories.json --story-steps 1000

Uses Debian's python3-torch (1.13). The vocabulary is cut to the ids the examples use (the
untouched rows of a tied embedding only get weight decay), which makes it several times faster.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

from torch_metatrain import rms_norm, rope  # the anchor script's (same layout as perk)


class Llama(torch.nn.Module):
    def __init__(self, c, vocab):
        super().__init__()
        self.c = c
        C, L, H, Hkv, D, Fh = c["dim"], c["layers"], c["heads"], c["kvHeads"], c["headDim"], c["hidden"]
        P = lambda *s: torch.nn.Parameter(torch.empty(*s))
        self.embed = P(vocab, C)
        self.layers = torch.nn.ModuleList()
        for _ in range(L):
            m = torch.nn.Module()
            m.n1, m.n2 = torch.nn.Parameter(torch.ones(C)), torch.nn.Parameter(torch.ones(C))
            m.q, m.k, m.v, m.o = P(H * D, C), P(Hkv * D, C), P(Hkv * D, C), P(C, H * D)
            m.gate, m.up, m.down = P(Fh, C), P(Fh, C), P(C, Fh)
            self.layers.append(m)
        self.norm = torch.nn.Parameter(torch.ones(C))
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith((".o", ".down")) else 0.02
                torch.nn.init.normal_(p, std=std)

    def forward(self, ids):  # ids (B, T) -> hidden (B, T, C)
        c = self.c
        B, T = ids.shape
        H, Hkv, D = c["heads"], c["kvHeads"], c["headDim"]
        pos = torch.arange(T)[None, :].expand(B, T)
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.embed[ids]
        for m in self.layers:
            h = rms_norm(x, m.n1, c["normEps"])
            q = rope((h @ m.q.T).view(B, T, H, D), pos, c["ropeTheta"]).transpose(1, 2)
            k = rope((h @ m.k.T).view(B, T, Hkv, D), pos, c["ropeTheta"]).transpose(1, 2)
            v = (h @ m.v.T).view(B, T, Hkv, D).transpose(1, 2)
            k, v = k.repeat_interleave(H // Hkv, 1), v.repeat_interleave(H // Hkv, 1)
            a = ((q @ k.transpose(-1, -2)) / math.sqrt(D) + mask).softmax(-1) @ v
            x = x + a.transpose(1, 2).reshape(B, T, H * D) @ m.o.T
            h = rms_norm(x, m.n2, c["normEps"])
            x = x + (F.silu(h @ m.gate.T) * (h @ m.up.T)) @ m.down.T
        return rms_norm(x, self.norm, c["normEps"])


def batch(xs, lut):
    """Right-padded ids, and for each answer token its (row, predicting column, target, kind)."""
    T = max(len(x["prompt"]) + len(x["answer"]) for x in xs)
    ids = torch.zeros(len(xs), T, dtype=torch.long)
    rows, cols, tgt, kind = [], [], [], []
    for r, x in enumerate(xs):
        s = [lut[i] for i in x["prompt"] + x["answer"]]
        ids[r, : len(s)] = torch.tensor(s)
        n = len(x["prompt"])
        for j, a in enumerate(x["answer"]):
            rows.append(r), cols.append(n - 1 + j), tgt.append(lut[a])
            kind.append(2 if j == x["labelAt"] else 1 if j == x["nameAt"] else 0)
    t = lambda v: torch.tensor(v, dtype=torch.long)
    return ids, t(rows), t(cols), t(tgt), t(kind)


def copy_pretrain(model, a, vocab, k=48, rows=16):
    """Next-token loss on rows of k random ids repeated twice: the second half can only be
    predicted by finding the earlier occurrence and copying what followed (an induction head)."""
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.0)
    g = torch.Generator().manual_seed(a.seed + 1)
    t0 = time.time()
    for step in range(a.copy_steps):
        r = torch.randint(0, vocab, (rows, k), generator=g)
        ids = torch.cat([r, r], 1)
        logits = model(ids[:, :-1]) @ model.embed.T
        loss = F.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % a.every == 0 or step + 1 == a.copy_steps:
            acc = (logits[:, k:].argmax(-1) == ids[:, k + 1:]).float().mean().item()
            print(f"copy step {step + 1}: loss {loss.item():.3f}, second-half accuracy {acc:.3f}; "
                  f"{time.time() - t0:.0f} s", flush=True)


def story_pretrain(model, a, stories, lut, vocab):
    """Next-token loss on story windows, each answered room's first token weighted
    a.answer_weight (weighted mean), AdamW with weight decay 0.1 on matrices, warm-up 10 steps
    then a cosine to 0.1 * lr: perk's pretraining recipe."""
    params = list(model.parameters())
    opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() == 2], "weight_decay": 0.1},
         {"params": [p for p in params if p.dim() != 2], "weight_decay": 0.0}],
        lr=a.story_lr, betas=(0.9, 0.95), eps=1e-8)
    def tensors(ws):
        ids = torch.tensor([[lut[i] for i in w["ids"]] for w in ws], dtype=torch.long)
        mark = torch.zeros(ids.shape, dtype=torch.bool)
        for r, w in enumerate(ws):
            mark[r, w["answers"]] = True
        return ids, mark
    ev_ids, ev_mark = tensors(stories["eval"])
    n, B, S, t0 = len(stories["train"]), a.story_batch, a.story_steps, time.time()
    for step in range(S):
        lr = a.story_lr * (step + 1) / 10 if step < 10 else a.story_lr * (
            0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 10) / max(1, S - 1 - 10))))
        for g in opt.param_groups:
            g["lr"] = lr
        ids, mark = tensors([stories["train"][(step * B + i) % n] for i in range(B)])
        nll = F.cross_entropy((model(ids[:, :-1]) @ model.embed.T).reshape(-1, vocab),
                              ids[:, 1:].reshape(-1), reduction="none").view(B, -1)
        w = 1 + (a.answer_weight - 1) * mark[:, 1:].float()
        loss = (nll * w).sum() / w.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % a.every == 0 or step + 1 == S:
            with torch.no_grad():
                pred = (model(ev_ids[:, :-1]) @ model.embed.T).argmax(-1)
                m = ev_mark[:, 1:]
                acc = (pred[m] == ev_ids[:, 1:][m]).float().mean().item()
            print(f"story step {step + 1}: loss {loss.item():.3f}, held-out room accuracy "
                  f"{acc:.3f}; {time.time() - t0:.0f} s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("examples")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--copy-steps", type=int, default=0,
                    help="first train this many steps on repeated random sequences (plants copying)")
    ap.add_argument("--stories", help="story windows (bench/story_windows.ts) to pretrain on first")
    ap.add_argument("--story-steps", type=int, default=1000)
    ap.add_argument("--story-batch", type=int, default=4)
    ap.add_argument("--story-lr", type=float, default=3e-3)
    ap.add_argument("--answer-weight", type=float, default=10.0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)  # tiny gradients after the format is learned: denormals are slow
    d = json.load(open(a.examples))
    stories = json.load(open(a.stories)) if a.stories else None
    used = {i for x in d["train"] + d["test"] for i in x["prompt"] + x["answer"]}
    if stories:
        used |= {i for w in stories["train"] + stories["eval"] for i in w["ids"]}
    used = sorted(used)
    lut = {v: k for k, v in enumerate(used)}
    model = Llama(d["config"], len(used))
    params = list(model.parameters())
    decay = [p for p in params if p.dim() == 2]
    rest = [p for p in params if p.dim() != 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
        lr=a.lr, betas=(0.9, 0.95), eps=1e-8,
    )
    if a.copy_steps:
        copy_pretrain(model, a, len(used))
    if stories:
        story_pretrain(model, a, stories, lut, len(used))
    warm = max(1, math.ceil(0.03 * a.steps))
    lr_at = lambda s: a.lr * (s + 1) / warm if s < warm else (
        0.5 * a.lr * (1 + math.cos(math.pi * min(1, (s - warm) / max(1, a.steps - warm)))))
    test = batch(d["test"], lut)
    print(f"{d['task']}-{d['length']}, profile {d['profile']}: {len(d['train'])} train, "
          f"{len(d['test'])} test, {len(used)} ids used; steps {a.steps} x {a.batch}, lr {a.lr}")
    t0 = time.time()
    n = len(d["train"])
    for step in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        xs = [d["train"][(step * a.batch + i) % n] for i in range(a.batch)]
        ids, r, c, t, _ = batch(xs, lut)
        h = model(ids)[r, c]
        loss = F.cross_entropy(h @ model.embed.T, t)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % a.every == 0 or step + 1 == a.steps:
            with torch.no_grad():
                ids, r, c, t, kind = test
                ok = ((model(ids)[r, c] @ model.embed.T).argmax(-1) == t).float()
                acc = [ok[kind == k].mean().item() if (kind == k).any() else float("nan") for k in range(3)]
            print(f"step {step + 1}: loss {loss.item():.3f}; test accuracy format {acc[0]:.3f}, "
                  f"name {acc[1]:.3f}, label {acc[2]:.3f}; {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
