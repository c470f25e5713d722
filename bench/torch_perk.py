#!/usr/bin/env python3
"""PERK prototype in PyTorch on this CPU, for finding a learning regime fast (DEVELOPERS.md).

Same architecture as perk's cpu-profile base (LLaMA block, RMSNorm, RoPE half-split, SwiGLU,
tied embeddings), same data (bench/torch_perk_export.ts writes QA problems and pretraining
windows in the tiny compact vocabulary), the same inner loop (LoRA on every linear, rsLoRA
scale, AdamW 0.9/0.95 wd 0.01 bias-corrected, per-tensor per-step learned rates, last T steps
unrolled) with log-parameterised rates. Subcommands:
  pretrain OUT.pt   base on exported windows (+ in-context QA windows from training problems)
  probe BASE.pt     test-time training alone over a range of constant inner rates
  meta BASE.pt      meta-train (θ₀ and log rates), report PERK / no-encode on test
  export BASE.pt DIR  a Hugging Face directory perk loads (the shipped fixtures/models/tiny-base)
  import DIR BASE.pt  the reverse: the shipped base as this prototype's BASE.pt (f16 values)
  icl BASE.pt       in-context accuracy of the base alone (context + question, no PERK)
  gradcheck JSON    compare one perk meta-gradient (bench/torch_perk_gradcheck.ts) with this one
What the inner loop reads (error kinds, linear probes for the actor): bench/torch_perk_diag.py.
"""
import argparse, json, math, random, re, sys, time
import torch
import torch.nn.functional as F

CFG = dict(vocab=6144, dim=128, layers=4, heads=4, hd=32, ffn=352)
LIN = ["q", "k", "v", "o", "gate", "up", "down"]


def shapes(c):
    d, f = c["dim"], c["ffn"]
    return {"q": (d, d), "k": (d, d), "v": (d, d), "o": (d, d), "gate": (d, f), "up": (d, f), "down": (f, d)}


def init_base(c, seed):
    g = torch.Generator().manual_seed(seed)
    std = 0.02
    W = {"emb": torch.randn(c["vocab"], c["dim"], generator=g) * std, "norm": torch.ones(c["dim"])}
    for i in range(c["layers"]):
        for k, s in shapes(c).items():
            sd = std / math.sqrt(2 * c["layers"]) if k in ("o", "down") else std
            W[f"{i}.{k}"] = torch.randn(*s, generator=g) * sd
        W[f"{i}.n1"] = torch.ones(c["dim"])
        W[f"{i}.n2"] = torch.ones(c["dim"])
    return W


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


_rope = {}


def rope(x, T, hd):
    if (T, hd) not in _rope:
        inv = 10000.0 ** (-torch.arange(0, hd, 2).float() / hd)
        ang = torch.arange(T).float()[:, None] * inv[None]
        _rope[(T, hd)] = (torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1))
    cos, sin = _rope[(T, hd)]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def forward(W, c, ids, lora=None, scale=1.0, hidden=False, collect=None):
    """ids (B, T) → logits (B, T, V) (and the final-norm hidden state (B, T, C) if `hidden`).
    lora: {f"{i}.{k}": (A, B)}; collect: a list that receives the residual stream (B, T, C)
    after the embedding and after each block (bench/torch_perk_diag.py's probes)."""
    B, T = ids.shape
    H, hd = c["heads"], c["hd"]
    x = W["emb"][ids]
    mask = torch.full((T, T), float("-inf")).triu(1)
    if collect is not None:
        collect.append(x)

    def lin(h, i, k):
        y = h @ W[f"{i}.{k}"]
        if lora is not None:
            A, Bm = lora[f"{i}.{k}"]
            y = y + scale * ((h @ A) @ Bm)
        return y

    for i in range(c["layers"]):
        h = rms(x, W[f"{i}.n1"])
        q = rope(lin(h, i, "q").view(B, T, H, hd).transpose(1, 2), T, hd)
        k = rope(lin(h, i, "k").view(B, T, H, hd).transpose(1, 2), T, hd)
        v = lin(h, i, "v").view(B, T, H, hd).transpose(1, 2)
        a = ((q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask).softmax(-1)
        x = x + lin((a @ v).transpose(1, 2).reshape(B, T, -1), i, "o")
        h = rms(x, W[f"{i}.n2"])
        x = x + lin(F.silu(lin(h, i, "gate")) * lin(h, i, "up"), i, "down")
        if collect is not None:
            collect.append(x)
    h = rms(x, W["norm"])
    return (h @ W["emb"].t(), h) if hidden else h @ W["emb"].t()


TOKENS = None  # each id's text when the data file has it (support targets are scored on text)


def load_data(path):
    global TOKENS
    d = json.load(open(path))
    TOKENS = d.get("tokens")
    return d


# ---------------------------------------------------------------- pretraining
def icl_window(p, eos, T, target="target_answer", spans=False):
    """Context segments then the PERK prompt and answer, in one window (in-context QA).
    With spans: also (answer start, answer end) in the window, the answer's tokens as targets."""
    ids = [t for s in p["segments"] for t in s] + p["prompt"] + p[target]
    n = len(ids)
    win = ids[-T:] if n > T else ids + [eos] * (T - n)
    end = min(n, T)
    return (win, end - len(p[target]), end) if spans else win


def cmd_pretrain(a):
    c = CFG
    torch.manual_seed(a.seed)
    if not a.init:
        size_cfg(a.dim, a.layers, a.ffn)
    W = load_base(a.init) if a.init else init_base(c, a.seed)
    for v in W.values():
        v.requires_grad_()
    torch.set_num_threads(a.threads)
    # --data takes several files (comma-separated): in-context windows draw from all their train splits
    files = [load_data(f) for f in a.data.split(",")]
    data = {"eos": files[0]["eos"], "train": [p for d in files for p in d["train"]]}
    import numpy as np
    win = torch.from_numpy(np.fromfile(a.windows, dtype=np.int32).reshape(-1, 256)).long()
    L, per = a.window, a.window // 256  # longer rows: consecutive pretraining windows side by side
    assert L % 256 == 0 or a.icl >= 1, "--window must be a multiple of 256 (or --icl 1: QA windows only)"
    train = data["train"]
    warm = a.warmup
    opt = torch.optim.AdamW(W.values(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    rng = random.Random(a.seed)
    t0 = time.time()
    for step in range(a.steps):
        lr = a.lr * min(1, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / a.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        rows, wts = [], torch.ones(a.rows, L - 1)
        for r in range(a.rows):
            if rng.random() < a.icl:
                row, s0, s1 = icl_window(rng.choice(train), data["eos"], L, spans=True)
                # position i predicts token i + 1: the answer's targets sit at s0 - 1 … s1 - 2;
                # the EOS padding after the answer teaches nothing
                wts[r, s1 - 1:] = 0.0
                wts[r, s0 - 1:s1 - 1] = a.answer_weight
                rows.append(row)
            else:
                rows.append([t for _ in range(per) for t in win[rng.randrange(len(win))].tolist()])
        ids = torch.tensor(rows)
        logits = forward(W, c, ids[:, :-1])
        nll = F.cross_entropy(logits.reshape(-1, c["vocab"]), ids[:, 1:].reshape(-1), reduction="none")
        loss = (nll * wts.reshape(-1)).sum() / wts.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(W.values(), 1.0)
        opt.step()
        if step % 100 == 0 or step == a.steps - 1:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e} {time.time()-t0:.0f}s", flush=True)
            torch.save({k: v.detach() for k, v in W.items()}, a.out)
        if a.eval_every and (step % a.eval_every == 0 or step == a.steps - 1):
            # in-context accuracy on each file's first validation problems (never the test split)
            Wd = {k: v.detach() for k, v in W.items()}
            accs = [icl_accuracy(Wd, d, a.n_eval)[0] for d in files]
            print(f"step {step} in-context accuracy " + " ".join(f"{x:.3f}" for x in accs)
                  + f" (n={a.n_eval} each)", flush=True)
    torch.save({k: v.detach() for k, v in W.items()}, a.out)


# ---------------------------------------------------------------- PERK
def lora_init(c, rank, seed):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i in range(c["layers"]):
        for k, (fi, fo) in shapes(c).items():
            b = 1 / math.sqrt(fi)
            out[f"{i}.{k}"] = ((torch.rand(fi, rank, generator=g) * 2 - 1) * b, torch.zeros(rank, fo))
    return out


def seg_batch(p, eos, shuffle_rng=None):
    segs = p["segments"]
    L = max(len(s) for s in segs)
    ids = torch.full((len(segs), L), eos, dtype=torch.long)
    tgt = torch.full((len(segs), L), -100, dtype=torch.long)
    for r, (s, pre) in enumerate(zip(segs, p["prefix"])):
        ids[r, : len(s)] = torch.tensor(s)
        for t in range(max(0, pre - 1), len(s) - 1):
            tgt[r, t] = s[t + 1]
    return ids, tgt


# The token-weighting model φ = [W1 (C,128), b1, W2 (128,1), b2] as perk's (pipeline/perk/
# weighting.ts): w = softplus_3(W2·gelu(W1·h + b1) + b2) on the adapted model's final-norm
# hidden state; None: the plain mean LM loss. Module state so evaluate() and the probe use it.
PHI = None


def init_phi(dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = 1 / math.sqrt(dim)
    return [((torch.rand(dim, 128, generator=g) * 2 - 1) * b).requires_grad_(),
            ((torch.rand(128, generator=g) * 2 - 1) * b).requires_grad_(),
            torch.zeros(128, 1, requires_grad=True), torch.zeros(1, requires_grad=True)]


def token_weights(h, phi):
    W1, b1, W2, b2 = phi
    return F.softplus(F.gelu(h @ W1 + b1) @ W2 + b2, beta=3).squeeze(-1)


WEIGHT_FROM_BASE = False  # --weight-from-base: the weighting model reads the base's hidden states
ORACLE = False  # --oracle: the inner loss on fact-sentence tokens only (a perfect weighting model)
# --recency P: each fact's tokens weighted (k + 1)^P, k its "Event k" (the actor's k-th fact), other
# tokens 1 — a hand-made weighting by the order of events, what a weighting model could learn.
RECENCY = None


def recency_weights(ids, P):
    """(rows, len) weights of the targets at each position (the target at t is token t + 1)."""
    _, k = fact_mask(ids, events=True)
    k_next = torch.roll(k, -1, dims=1)
    return torch.where(k_next >= 0, (k_next.clamp(min=0) + 1.0) ** P, torch.ones(ids.shape))


def inner_loss(W, c, ids, tgt, lora, scale):
    if ORACLE:
        logits = forward(W, c, ids, lora, scale)
        keep = tgt.clone()
        keep[~torch.roll(fact_mask(ids), -1, dims=1)] = -100  # targets inside fact sentences
        return F.cross_entropy(logits.reshape(-1, c["vocab"]), keep.reshape(-1), ignore_index=-100)
    if RECENCY is not None:
        logits = forward(W, c, ids, lora, scale)
        nll = F.cross_entropy(logits.reshape(-1, c["vocab"]), tgt.reshape(-1), ignore_index=-100,
                              reduction="none").view(tgt.shape)
        return (recency_weights(ids, RECENCY) * nll).sum() / (tgt != -100).sum()
    if PHI is None:
        logits = forward(W, c, ids, lora, scale)
        return F.cross_entropy(logits.reshape(-1, c["vocab"]), tgt.reshape(-1), ignore_index=-100)
    logits, h = forward(W, c, ids, lora, scale, hidden=True)
    if WEIGHT_FROM_BASE:  # CaMeLS-style: the weights read the frozen base, not the adapted model
        with torch.no_grad():
            _, h = forward(W, c, ids, None, scale, hidden=True)
    nll = F.cross_entropy(logits.reshape(-1, c["vocab"]), tgt.reshape(-1), ignore_index=-100,
                          reduction="none").view(tgt.shape)
    # perk's normalisation: Σ w·NLL over the batch / (rows·(len−1)); masked tokens give 0.
    return (token_weights(h, PHI) * nll).sum() / (ids.shape[0] * (ids.shape[1] - 1))


def inner_loop(W, c, p, eos, theta0, lrs, N, T, scale, create_graph):
    """N AdamW steps on the context from theta0 (list of tensors); lrs (N, J) actual rates."""
    ids, tgt = seg_batch(p, eos)
    names = list(theta0)
    # Leaves without a graph (test time, the probe) need grads to take the inner steps.
    th = {k: [x if x.requires_grad else x.detach().requires_grad_() for x in v] for k, v in theta0.items()}
    flat = lambda d: [x for k in names for x in d[k]]
    m = [torch.zeros_like(x) for x in flat(th)]
    v = [torch.zeros_like(x) for x in flat(th)]
    for n in range(N):
        keep = create_graph and n >= N - T
        lo = {k: tuple(th[k]) for k in names}
        loss = inner_loss(W, c, ids, tgt, lo, scale)
        ps = flat(th)
        gs = torch.autograd.grad(loss, ps, create_graph=keep)
        t = n + 1
        c1, c2 = 1 / (1 - 0.9 ** t), 1 / math.sqrt(1 - 0.95 ** t)
        new = []
        for j, (x, g) in enumerate(zip(ps, gs)):
            g = g if keep else g.detach()
            lr = lrs[n, j]
            m[j] = 0.9 * m[j] + 0.1 * g
            v[j] = 0.95 * v[j] + 0.05 * g * g
            new.append(x * (1 - lr * 0.01) - lr * c1 * m[j] / (torch.sqrt(v[j] + 1e-30) * c2 + 1e-8))
        it = iter(new)
        th = {k: [next(it), next(it)] for k in names}
    return {k: tuple(v) for k, v in th.items()}


def outer_nll(W, c, p, lora, scale, target):
    ids = torch.tensor([p["prompt"] + p[target]])
    logits = forward(W, c, ids[:, :-1], lora, scale)
    P = len(p["prompt"])
    return F.cross_entropy(logits[0, P - 1:], ids[0, P:])


MAX_NEW = 6  # --max-new: support targets need ~50 tokens


@torch.no_grad()
def greedy(W, c, p, lora, scale, max_new=None, eos=1):
    max_new = max_new or MAX_NEW
    ids = list(p["prompt"])
    out = []
    for _ in range(max_new):
        nxt = int(forward(W, c, torch.tensor([ids]), lora, scale)[0, -1].argmax())
        if nxt == eos:
            break
        out.append(nxt)
        ids.append(nxt)
    return out


def correct(p, out):
    if out == p["target_answer"][:-1]:
        return 1
    if TOKENS is None:
        return 0
    text = "".join(TOKENS[i] for i in out)
    m = re.search(r"<output>(.*?)(</output>|$)", text, re.S)
    return int((m.group(1) if m else text).strip() == p["answer"])


def evaluate(W, c, data, split, theta0, lrs, N, scale, n, encode=True):
    hits = 0
    probs = data[split][:n]
    for p in probs:
        if encode and N > 0:
            with torch.enable_grad():
                th = inner_loop(W, c, p, data["eos"], theta0, lrs, N, 0, scale, False)
            th = {k: (a.detach(), b.detach()) for k, (a, b) in th.items()}
        else:
            th = theta0
        hits += correct(p, greedy(W, c, p, th, scale, eos=data["eos"]))
    return hits / len(probs)


def wilson(k, n, z=1.96):
    p = k / n
    cen = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return cen - half, cen + half


def size_cfg(dim, layers, ffn):
    """CFG (in place: every command reads it) for a base of this size; heads of 32."""
    CFG.update(dim=dim, layers=layers, ffn=ffn, heads=dim // CFG["hd"])


def load_base(path):
    W = torch.load(path)
    # the size is the checkpoint's own (wider bases: pretrain --dim/--layers/--ffn)
    size_cfg(W["emb"].shape[1], sum(k.endswith(".n1") for k in W), W["0.up"].shape[1])
    for v in W.values():
        v.requires_grad_(False)
    return W


def cmd_probe(a):
    global ORACLE
    ORACLE = a.oracle
    c = CFG
    W = load_base(a.base)
    data = load_data(a.data)
    torch.set_num_threads(a.threads)
    scale = a.alpha / math.sqrt(a.rank)
    th0 = lora_init(c, a.rank, 0)
    J = 2 * len(th0)
    for lr in a.lrs:
        t0 = time.time()
        lrs = torch.full((a.N, J), lr)
        # memorisation: fact-token loss before/after on validation problems
        pre = post = 0.0
        for p in data["validation"][: a.n_mem]:
            ids, tgt = seg_batch(p, data["eos"])
            with torch.no_grad():
                pre += F.cross_entropy(forward(W, c, ids, th0, scale).reshape(-1, c["vocab"]), tgt.reshape(-1), ignore_index=-100).item()
            th = inner_loop(W, c, p, data["eos"], th0, lrs, a.N, 0, scale, False)
            with torch.no_grad():
                post += F.cross_entropy(forward(W, c, ids, th, scale).reshape(-1, c["vocab"]), tgt.reshape(-1), ignore_index=-100).item()
        acc = evaluate(W, c, data, "validation", th0, lrs, a.N, scale, a.n)
        print(f"lr {lr:.0e} N {a.N}: context loss {pre/a.n_mem:.3f} → {post/a.n_mem:.3f}; ttt acc {acc:.3f} (n={a.n}) {time.time()-t0:.0f}s", flush=True)
    acc0 = evaluate(W, c, data, "validation", th0, None, 0, scale, a.n, encode=False)
    print(f"no-encode acc {acc0:.3f}")


def cmd_meta(a):
    global MAX_NEW, PHI, RECENCY, WEIGHT_FROM_BASE
    MAX_NEW = a.max_new
    WEIGHT_FROM_BASE = a.weight_from_base
    RECENCY = a.recency
    c = CFG
    W = load_base(a.base)
    data = load_data(a.data)
    torch.set_num_threads(a.threads)
    scale = a.alpha / math.sqrt(a.rank)
    th0 = {k: (A.clone().requires_grad_(), B.clone().requires_grad_()) for k, (A, B) in lora_init(c, a.rank, 0).items()}
    J = 2 * len(th0)
    loglr = torch.full((a.N, J), math.log(a.inner_lr), requires_grad=True)
    init = torch.load(a.init) if a.init else None  # continue a saved meta-training (--save)
    if init:
        th0 = {k: (A.clone().requires_grad_(), B.clone().requires_grad_()) for k, (A, B) in init["theta0"].items()}
        loglr = init["lrs"].log().clone().requires_grad_()
    groups = [{"params": [x for v in th0.values() for x in v], "lr": a.lr_theta, "weight_decay": 0.01},
              {"params": [loglr], "lr": a.lr_rates, "weight_decay": 0.0}]
    if a.weighting:  # the token-weighting model, meta-learned at its own outer rate
        PHI = [x.clone().requires_grad_() for x in init["phi"]] if init and init["phi"] else init_phi(c["dim"], a.seed)
        groups.append({"params": PHI, "lr": a.lr_phi, "weight_decay": 0.0})
    if a.lr_base > 0:  # a diagnostic beyond the method: the base itself meta-trained (truncated like θ₀)
        for x in W.values():
            x.requires_grad_()
        groups.append({"params": list(W.values()), "lr": a.lr_base, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.95))
    rng = random.Random(a.seed)
    train = data["train"]
    t0 = time.time()
    hist = []
    for step in range(a.steps + 1):
        if step % a.eval_every == 0:
            lrs = loglr.detach().exp()
            thd = {k: (x.detach(), y.detach()) for k, (x, y) in th0.items()}
            acc = evaluate(W, c, data, "validation", thd, lrs, a.N, scale, a.n_val)
            acc0 = evaluate(W, c, data, "validation", thd, lrs, 0, scale, a.n_val, encode=False)
            ml = float(sum(hist[-a.eval_every:]) / max(1, len(hist[-a.eval_every:])))
            print(f"step {step} outer {ml:.3f} val acc perk {acc:.3f} no-encode {acc0:.3f} lr mean {lrs.mean():.2e} [{lrs.min():.1e},{lrs.max():.1e}]{fact_weights(W, c, data)} {time.time()-t0:.0f}s", flush=True)
        if step == a.steps:
            break
        if a.pool:  # perk's loop: one pass over the first `pool` problems in a shuffled order
            if step % a.pool == 0:
                order = list(range(a.pool))
                rng.shuffle(order)
            batch = [train[order[step % a.pool]]]
        else:  # --batch problems per outer step (mean outer loss)
            batch = [rng.choice(train) for _ in range(a.batch)]
        if a.schedule == "cosine":  # perk's outer schedule: 3% linear warm-up, cosine to 0
            warm = max(1, math.ceil(0.03 * a.steps))
            f = (step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * min(1, (step - warm) / max(1, a.steps - warm))))
            for g, base_lr in zip(opt.param_groups, (a.lr_theta, a.lr_rates)):
                g["lr"] = base_lr * f
        opt.zero_grad()
        loss = 0.0
        for p in batch:
            th = inner_loop(W, c, p, data["eos"], th0, loglr.exp(), a.N, a.T, scale, True)
            lp = outer_nll(W, c, p, th, scale, a.target) / len(batch)
            lp.backward()
            loss += lp.detach()
        torch.nn.utils.clip_grad_norm_([x for v in th0.values() for x in v] + [loglr] + (PHI or [])
                                       + (list(W.values()) if a.lr_base > 0 else []), 1.0)
        opt.step()
        hist.append(loss.item())
    lrs = loglr.detach().exp()
    thd = {k: (x.detach(), y.detach()) for k, (x, y) in th0.items()}
    n = a.n_test
    test = load_data(a.test_data) if a.test_data else data  # another length: length generalisation
    for name, N, enc in ([("perk", a.N, True), ("perk-no-encode", 0, False)] if n > 0 else []):
        acc = evaluate(W, c, test, "test", thd, lrs, N, scale, n, encode=enc)
        lo, hi = wilson(round(acc * n), n)
        print(f"TEST {name}: {acc:.3f} [{lo:.3f}, {hi:.3f}] n={n}")
    if a.save:
        torch.save({"theta0": thd, "lrs": lrs, "phi": [x.detach() for x in PHI] if PHI else None}, a.save)
    if a.save_base:
        torch.save({k: v.detach() for k, v in W.items()}, a.save_base)


FACT_ID = None  # the token " Event" (fact sentences are "X Event k: …")


def fact_mask(ids, events=False):
    """True on the tokens of fact sentences (from " X Event" to the sentence's ".").
    events: also each fact token's Event number k (the actor's k-th fact; -1 outside facts)."""
    global FACT_ID
    if FACT_ID is None:
        FACT_ID = TOKENS.index(" Event")
    fact = torch.zeros(ids.shape, dtype=torch.bool)
    ev = torch.full(ids.shape, -1, dtype=torch.long)
    for r in range(ids.shape[0]):
        row = ids[r].tolist(); j = 0
        while j < len(row):
            if row[j] == FACT_ID and j > 0:
                m = re.match(r"\s*(\d+)", TOKENS[row[j + 1]]) if j + 1 < len(row) else None
                k = j - 1
                while k < len(row) and not TOKENS[row[k]].endswith("."):
                    fact[r, k] = True; ev[r, k] = int(m.group(1)) if m else 0; k += 1
                if k < len(row): fact[r, k] = True; ev[r, k] = int(m.group(1)) if m else 0
                j = k
            j += 1
    return (fact, ev) if events else fact


def fact_weights(W, c, data, n=20):
    """' w fact/other': mean token weight on fact sentences vs the rest (base hidden states,
    the first n validation problems); '' without a weighting model."""
    if PHI is None:
        return ""
    fw = ow = fn = on = 0.0
    kw, kn = [0.0] * 4, [0] * 4
    lw, ln = [0.0, 0.0], [0, 0]
    with torch.no_grad():
        for p in data["validation"][:n]:
            ids, _ = seg_batch(p, data["eos"])
            _, h = forward(W, c, ids, None, 1.0, hidden=True)
            w = token_weights(h, PHI)
            fact, k = fact_mask(ids, events=True)
            fw += w[fact].sum().item(); fn += fact.sum().item()
            ow += w[~fact].sum().item(); on += (~fact).sum().item()
            for e in range(4):  # recency: weight by the fact's Event number (3: 3 and later)
                sel = fact & ((k == e) if e < 3 else (k >= 3))
                kw[e] += w[sel].sum().item(); kn[e] += sel.sum().item()
            # the weight that predicts each fact's room, on the actor's last fact vs earlier ones
            for r in range(ids.shape[0]):
                facts = []  # (actor id, k, weight at the position before the fact's last word)
                for t in range(ids.shape[1] - 1):
                    if fact[r, t + 1] and t + 2 < ids.shape[1] and TOKENS[int(ids[r, t + 2])].startswith("."):
                        u = t
                        while u > 0 and fact[r, u - 1]:
                            u -= 1
                        facts.append((int(ids[r, u]), int(k[r, t]), w[r, t].item()))
                last = {}
                for who, e, _ in facts:
                    last[who] = max(last.get(who, -1), e)
                for who, e, x in facts:
                    lw[e == last[who]] += x; ln[e == last[who]] += 1
    by_k = "/".join(f"{kw[e] / kn[e]:.3f}" if kn[e] else "-" for e in range(4))
    return (f" w fact/other {fw / max(1, fn):.3f}/{ow / max(1, on):.3f} by Event 0/1/2/3+ {by_k}"
            f" room target last/earlier {lw[1] / max(1, ln[1]):.3f}/{lw[0] / max(1, ln[0]):.3f}")


def icl_accuracy(W, d, n):
    """The base alone with the whole context, then the question: (accuracy, output counts)."""
    hits, outs = 0, {}
    for p in d["validation"][:n]:
        q = dict(p)
        q["prompt"] = [t for s in p["segments"] for t in s] + p["prompt"]
        o = greedy(W, CFG, q, None, 1.0, eos=d["eos"])
        hits += correct(p, o)
        outs[str(o)] = outs.get(str(o), 0) + 1
    return hits / n, outs


def cmd_icl(a):
    """In-context accuracy of the base alone: the whole context, then the question (no PERK)."""
    W = load_base(a.base)
    torch.set_num_threads(a.threads)
    d = load_data(a.data)
    acc, outs = icl_accuracy(W, d, a.n)
    top = sorted(outs.values(), reverse=True)[:3]
    print(f"in-context accuracy {acc:.3f} (n={a.n}); most common outputs {top}")


def cmd_export(a):
    """A Hugging Face LLaMA directory (config.json, model.safetensors in f16, compact_vocab.json)
    that perk loads with --model DIR; nn.Linear weights are (out, in), ours (in, out)."""
    import os, struct, shutil
    W = load_base(a.base)
    c = CFG
    names = {"emb": "model.embed_tokens.weight", "norm": "model.norm.weight"}
    hf = {names["emb"]: W["emb"], names["norm"]: W["norm"]}
    for i in range(c["layers"]):
        L = f"model.layers.{i}"
        hf[f"{L}.input_layernorm.weight"] = W[f"{i}.n1"]
        hf[f"{L}.post_attention_layernorm.weight"] = W[f"{i}.n2"]
        for k in LIN:
            mod = "self_attn" if k in ("q", "k", "v", "o") else "mlp"
            hf[f"{L}.{mod}.{k}_proj.weight"] = W[f"{i}.{k}"].t().contiguous()
    os.makedirs(a.out, exist_ok=True)
    header, blobs, off = {}, [], 0
    for n in sorted(hf):
        b = hf[n].to(torch.float16).numpy().tobytes()
        header[n] = {"dtype": "F16", "shape": list(hf[n].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    shutil.copy(os.path.join(os.path.dirname(__file__), "../fixtures/models/tiny/compact_vocab.json"), a.out)
    cfg = json.load(open(os.path.join(os.path.dirname(__file__), "../fixtures/models/tiny/config.json")))
    cfg.update({"hidden_size": c["dim"], "head_dim": c["hd"], "intermediate_size": c["ffn"], "torch_dtype": "float16"})
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    # golden: mean NLL of the f16 weights on fixed windows, for the loader test
    data = load_data(a.data)
    Wh = {k: v.to(torch.float16).float() for k, v in W.items()}
    ids = torch.tensor([icl_window(p, data["eos"], 256) for p in data["validation"][:4]])
    with torch.no_grad():
        nll = F.cross_entropy(forward(Wh, c, ids[:, :-1]).reshape(-1, c["vocab"]), ids[:, 1:].reshape(-1)).item()
    print(f"exported {a.out}; golden NLL of 4 validation windows {nll:.5f}")


def cmd_import(a):
    """The inverse of export: read DIR/model.safetensors (f16) into this prototype's weights,
    so a fresh machine starts from exactly the base perk ships."""
    import os, struct
    import numpy as np
    raw = open(os.path.join(a.dir, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    def t(name):
        h = header[name]
        lo, hi = h["data_offsets"]
        assert h["dtype"] == "F16", f"{name}: {h['dtype']}"
        return torch.from_numpy(np.frombuffer(body[lo:hi], dtype=np.float16).copy()).float().reshape(h["shape"])
    c = CFG
    W = {"emb": t("model.embed_tokens.weight"), "norm": t("model.norm.weight")}
    for i in range(c["layers"]):
        L = f"model.layers.{i}"
        W[f"{i}.n1"] = t(f"{L}.input_layernorm.weight")
        W[f"{i}.n2"] = t(f"{L}.post_attention_layernorm.weight")
        for k in LIN:
            mod = "self_attn" if k in ("q", "k", "v", "o") else "mlp"
            W[f"{i}.{k}"] = t(f"{L}.{mod}.{k}_proj.weight").t().contiguous()
    torch.save(W, a.out)
    print(f"imported {a.dir} → {a.out} ({sum(v.numel() for v in W.values())} parameters)")


def cmd_gradcheck(a):
    """perk's meta-gradient (bench/torch_perk_gradcheck.ts wrote it, with θ₀ and the problem) against
    this prototype's on the same base (f16-rounded as shipped), θ₀, rates and problem."""
    d = json.load(open(a.json))
    c = CFG
    W = {k: v.half().float() for k, v in load_base(a.base).items()}
    names, th = d["names"], {}
    for i in range(0, len(names), 2):
        key = names[i].replace("layers.", "").replace(".lora_A", "")
        mk = lambda j: torch.tensor(d["theta0"][j], dtype=torch.float32).view(*d["shapes"][j]).requires_grad_()
        th[key] = (mk(i), mk(i + 1))
    lrs = torch.full((d["steps"], len(names)), d["lr"], requires_grad=True)
    p = {"segments": d["segments"], "prefix": d["prefix"], "prompt": d["prompt"], "target_answer": d["target"]}
    out = inner_loop(W, c, p, d["eos"], th, lrs, d["steps"], d["retained"], d["scale"], True)
    loss = outer_nll(W, c, p, out, d["scale"], "target_answer")
    loss.backward()
    gt = torch.cat([x.grad.flatten() for k in th for x in th[k]])
    gp = torch.cat([torch.tensor(g) for g in d["g_theta0"]])
    glr_t, glr_p = lrs.grad.flatten(), torch.tensor(d["g_lr"])
    print(f"outer loss: perk {d['loss']:.6f}, torch {loss.item():.6f}")
    print(f"θ₀ meta-gradient: relative difference {((gt - gp).norm() / gt.norm()).item():.2e} (norms {gt.norm().item():.4f}, {gp.norm().item():.4f})")
    print(f"rate meta-gradient: relative difference {((glr_t - glr_p).norm() / glr_t.norm()).item():.2e}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain")
    p.add_argument("out"); p.add_argument("--data", default=".torch_perk/qa_qa1_256.json")
    p.add_argument("--windows", default=".torch_perk/pretrain.i32")
    p.add_argument("--steps", type=int, default=2000); p.add_argument("--rows", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3); p.add_argument("--icl", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default="", help="continue from this base (.pt) instead of a fresh init")
    p.add_argument("--warmup", type=int, default=50); p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dim", type=int, default=128); p.add_argument("--layers", type=int, default=4)
    p.add_argument("--ffn", type=int, default=352, help="a fresh base's size (default: the cpu profile's)")
    p.add_argument("--window", type=int, default=256, help="tokens per row (a multiple of 256)")
    p.add_argument("--eval-every", type=int, default=0, help="in-context accuracy every this many steps")
    p.add_argument("--n-eval", type=int, default=50)
    p.add_argument("--answer-weight", type=float, default=1.0,
                   help="loss weight of each in-context window's answer tokens (1: plain language modelling)")
    for name in ("probe", "meta"):
        q = sub.add_parser(name)
        q.add_argument("base"); q.add_argument("--data", default=".torch_perk/qa_qa1_256.json")
        q.add_argument("--rank", type=int, default=16); q.add_argument("--alpha", type=float, default=16)
        q.add_argument("--N", type=int, default=4); q.add_argument("--threads", type=int, default=2)
        q.add_argument("--n", type=int, default=100)
    q = sub.choices["probe"]
    q.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    q.add_argument("--n-mem", type=int, default=10)
    q.add_argument("--oracle", action="store_true", help="inner loss on fact tokens only (perfect weighting)")
    q = sub.choices["meta"]
    q.add_argument("--T", type=int, default=1); q.add_argument("--steps", type=int, default=300)
    q.add_argument("--inner-lr", type=float, default=3e-3); q.add_argument("--lr-theta", type=float, default=1e-4)
    q.add_argument("--lr-rates", type=float, default=1e-2); q.add_argument("--target", default="target_answer")
    q.add_argument("--eval-every", type=int, default=50); q.add_argument("--n-val", type=int, default=50)
    q.add_argument("--n-test", type=int, default=200); q.add_argument("--seed", type=int, default=0)
    q.add_argument("--save", default="")
    q.add_argument("--init", default="", help="start from a meta-training saved with --save (θ₀, rates, weighting)")
    q.add_argument("--max-new", type=int, default=6)
    q.add_argument("--weighting", action="store_true", help="meta-learn perk's token-weighting model")
    q.add_argument("--lr-phi", type=float, default=1e-4)
    q.add_argument("--weight-from-base", action="store_true",
                   help="the weighting model reads the frozen base's hidden states (CaMeLS-style), not the adapted model's")
    q.add_argument("--recency", type=float, default=None,
                   help="inner loss: facts weighted (k+1)^P by their Event k (hand-made; a diagnostic)")
    q.add_argument("--test-data", default="", help="test problems from this file (another length)")
    q.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    q.add_argument("--batch", type=int, default=1, help="problems per outer step (draws only)")
    q.add_argument("--lr-base", type=float, default=0.0,
                   help="diagnostic: also meta-train the base's weights at this rate (0: frozen, the method)")
    q.add_argument("--save-base", default="", help="with --lr-base: write the meta-trained base here")
    q.add_argument("--pool", type=int, default=0, help="one pass over this many problems (perk's loop); 0: draws from all")
    p = sub.add_parser("icl")
    p.add_argument("base"); p.add_argument("--data", default=".torch_perk/qa_qa1_256.json")
    p.add_argument("--n", type=int, default=100); p.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("export")
    p.add_argument("base"); p.add_argument("out"); p.add_argument("--data", default=".torch_perk/qa_qa1_256.json")
    p = sub.add_parser("import")
    p.add_argument("dir"); p.add_argument("out")
    p = sub.add_parser("gradcheck")
    p.add_argument("json"); p.add_argument("--base", default=".torch_perk/base.pt")
    a = ap.parse_args()
    if a.cmd == "gradcheck":
        cmd_gradcheck(a)
    elif a.cmd == "import":
        cmd_import(a)
    elif a.cmd == "export":
        cmd_export(a)
    elif a.cmd == "pretrain":
        torch.set_num_threads(2)
        cmd_pretrain(a)
    elif a.cmd == "probe":
        cmd_probe(a)
    elif a.cmd == "icl":
        cmd_icl(a)
    else:
        cmd_meta(a)


if __name__ == "__main__":
    main()
