#!/usr/bin/env python3
"""What PERK's inner loop reads, on the PyTorch prototype (bench/torch_perk.py): two diagnostics
for bAbI QA files exported by bench/torch_perk_export.ts (facts-only contexts are clearest).

  errors FILE [--meta M.pt]  answer each validation problem after the inner loop (test-time
      training alone, or a meta-training saved with `torch_perk.py meta --save`) and sort the
      answers: right, another room of the asked actor (QA2: of an actor who took the object),
      another room of the story, no room of the story; and how often the answer is the story's
      most frequent room (what the control `context-mode` answers), with that rule's own rate.
  recency FILE [--pow P …]  test-time training with each fact's inner-loss tokens weighted by
      (k + 1)^P, k the fact's "Event k" (the actor's k-th fact; other tokens weight 1): what a
      weighting model that reads the order of events could gain. A hand-made weighting — a
      diagnostic, not the method: PERK's weighting model has to learn it from hidden states —
      so first a linear probe: is k readable from the final-norm hidden state (what the
      weighting model reads) at the positions that predict a fact's room?
  binding FILE [--meta M.pt]  linear probes for the actor on the residual stream after each
      block, at the positions that predict a fact's room (" the" before it) and at the question's
      last prompt token: within each kind, across kinds, and one probe trained on both. A LoRA
      update written at fact positions moves the answer only if the question position carries
      the actor in the same code ("fact→prompt" well above the 25% chance).

  /usr/bin/python3 bench/torch_perk_diag.py errors .torch_perk/qa_qa1_256_facts.json
"""
import argparse, collections, math, re, sys
import torch
import torch.nn.functional as F
import torch_perk as tp

ACTORS = ["John", "Mary", "Sandra", "Daniel"]
ROOMS = ["bedroom", "kitchen", "garden", "hallway", "bathroom", "office"]
FACT = re.compile(r"(\w+) Event (\d+): ([^.]*)\.")
MOVE = re.compile(r"to the (\w+)$")
TAKE = r"(picked up|got|grabbed|took) the "


def adapter(a, c):
    """θ₀ and rates: a saved meta-training, or the fresh LoRA at one constant inner rate."""
    if a.meta:
        m = torch.load(a.meta)
        return m["theta0"], m["lrs"]
    th0 = tp.lora_init(c, a.rank, 0)
    return th0, torch.full((a.N, 2 * len(th0)), a.inner_lr)


def cmd_errors(a, W, c, data):
    dec = lambda ids: "".join(data["tokens"][i] for i in ids)
    th0, lrs = adapter(a, c)
    N, scale = lrs.shape[0], a.alpha / math.sqrt(a.rank)
    cats = collections.Counter()
    probs = data["validation"][: a.n]
    for p in probs:
        text, q = " ".join(dec(s) for s in p["segments"]), dec(p["prompt"])
        facts = FACT.findall(text)
        m = re.search(r"Where is (the )?(\w+)\?", q)
        who = {f[0] for f in facts if re.search(TAKE + m.group(2), f[2])} if m.group(1) else {m.group(2)}
        moves = [(f[0], MOVE.search(f[2]).group(1)) for f in facts if MOVE.search(f[2])]
        mode = collections.Counter(r for _, r in moves).most_common(1)[0][0]
        with torch.enable_grad():
            th = tp.inner_loop(W, c, p, data["eos"], th0, lrs, N, 0, scale, False)
        th = {k: (x.detach(), y.detach()) for k, (x, y) in th.items()}
        out = dec(tp.greedy(W, c, p, th, scale, eos=data["eos"])).strip()
        cats["right" if out == p["answer"] else "asked actor's other room" if out in {r for w, r in moves if w in who}
             else "other room of the story" if out in {r for _, r in moves} else "no room of the story"] += 1
        cats["answer = the story's most frequent room"] += out == mode
        cats["(the most frequent room is right)"] += mode == p["answer"]
    print(f"{a.file} {'meta ' + a.meta if a.meta else f'test-time training at {a.inner_lr:g}'}, n = {len(probs)}:")
    for k, v in cats.items():
        print(f"  {k}: {v}")


@torch.no_grad()
def residuals(W, c, ids, lora, scale):
    """The residual stream after the embedding and after each block, for one row: [(T, C)]."""
    out = []
    tp.forward(W, c, ids[None], lora, scale, collect=out)
    return [x[0] for x in out]


def cmd_binding(a, W, c, data):
    idx = {t: i for i, t in enumerate(data["tokens"])}
    act = [idx[" " + x] for x in ACTORS]
    the, rooms = idx[" the"], {idx[" " + r] for r in ROOMS}
    lora = torch.load(a.meta)["theta0"] if a.meta else None
    scale = a.alpha / math.sqrt(a.rank)

    def collect(split, n):
        fx, fy, qx, qy = [], [], [], []
        for p in data[split][:n]:
            for seg in p["segments"]:
                S = residuals(W, c, torch.tensor(seg), lora, scale)
                for t in range(1, len(seg) - 1):
                    if seg[t] == the and seg[t + 1] in rooms:
                        who = next(seg[u] for u in range(t, -1, -1) if seg[u] in act)
                        fx.append(torch.stack([s[t] for s in S]))
                        fy.append(act.index(who))
            S = residuals(W, c, torch.tensor(p["prompt"]), lora, scale)
            qx.append(torch.stack([s[-1] for s in S]))
            qy.append(act.index(next(x for x in p["prompt"] if x in act)))
        return torch.stack(fx), torch.tensor(fy), torch.stack(qx), torch.tensor(qy)

    def fit(X, y):
        Wp, b = torch.zeros(X.shape[1], len(act), requires_grad=True), torch.zeros(len(act), requires_grad=True)
        mu, sd = X.mean(0), X.std(0) + 1e-5
        opt = torch.optim.Adam([Wp, b], lr=1e-2)
        for _ in range(300):
            opt.zero_grad()
            F.cross_entropy(((X - mu) / sd) @ Wp + b, y).backward()
            opt.step()
        return lambda Z, y: ((((Z - mu) / sd) @ Wp + b).argmax(-1) == y).float().mean().item()

    Ft, Fy, Qt, Qy = collect("train", a.n_train)
    Fv, Fvy, Qv, Qvy = collect("validation", a.n)
    print(f"{a.file}{' meta ' + a.meta if a.meta else ''}: {len(Fy)} fact positions, {len(Qy)} prompts "
          f"(validation {len(Fvy)}, {len(Qvy)}); probe accuracy on validation, chance {1 / len(act):.2f}")
    print("| after block | fact→fact | prompt→prompt | fact→prompt | prompt→fact | both→fact | both→prompt |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for l in range(Ft.shape[1]):
        pf, pq = fit(Ft[:, l], Fy), fit(Qt[:, l], Qy)
        pb = fit(torch.cat([Ft[:, l], Qt[:, l]]), torch.cat([Fy, Qy]))
        cells = [pf(Fv[:, l], Fvy), pq(Qv[:, l], Qvy), pf(Qv[:, l], Qvy), pq(Fv[:, l], Fvy),
                 pb(Fv[:, l], Fvy), pb(Qv[:, l], Qvy)]
        print(f"| {'embedding' if l == 0 else l} | " + " | ".join(f"{x:.2f}" for x in cells) + " |", flush=True)


def cmd_recency(a, W, c, data):
    idx = {t: i for i, t in enumerate(data["tokens"])}
    the, rooms = idx[" the"], {idx[" " + r] for r in ROOMS}

    def events(split, n):  # (hidden state, min(k, 3)) at each " the" before a fact's room
        X, y = [], []
        for p in data[split][:n]:
            ids, _ = tp.seg_batch(p, data["eos"])
            with torch.no_grad():
                _, h = tp.forward(W, c, ids, None, 1.0, hidden=True)
            _, k = tp.fact_mask(ids, events=True)
            for r, t in ((ids[:, :-1] == the) & (k[:, :-1] >= 0)).nonzero().tolist():
                if int(ids[r, t + 1]) in rooms:
                    X.append(h[r, t]); y.append(min(3, int(k[r, t])))
        return torch.stack(X), torch.tensor(y)

    Xt, yt = events("train", a.n_train)
    Xv, yv = events("validation", a.n)
    mu, sd = Xt.mean(0), Xt.std(0) + 1e-5
    Wp, b = torch.zeros(Xt.shape[1], 4, requires_grad=True), torch.zeros(4, requires_grad=True)
    opt = torch.optim.Adam([Wp, b], lr=1e-2)
    for _ in range(400):
        opt.zero_grad()
        F.cross_entropy(((Xt - mu) / sd) @ Wp + b, yt).backward()
        opt.step()
    acc = ((((Xv - mu) / sd) @ Wp + b).argmax(-1) == yv).float().mean().item()
    print(f"{a.file}: linear probe for the fact's Event k (0, 1, 2, 3+) from the final hidden state "
          f"at the room-predicting ' the': validation {acc:.3f} (majority class "
          f"{torch.bincount(yv).max().item() / len(yv):.3f}; {len(yv)} positions, {len(yt)} to train)",
          flush=True)

    th0, lrs = adapter(a, c)
    N, scale = lrs.shape[0], a.alpha / math.sqrt(a.rank)
    for p in a.pow:
        tp.RECENCY = p  # torch_perk.py's inner loss with facts weighted (k+1)^p (meta --recency)
        acc = tp.evaluate(W, c, data, "validation", th0, lrs, N, scale, a.n)
        print(f"{a.file}: facts weighted (k+1)^{p:g}, test-time training at {a.inner_lr:g}, "
              f"validation {acc:.3f} (n = {a.n})", flush=True)


def cmd_wgrad(a, W, c, data):
    """The meta-gradient of the answer's loss with respect to each context token's inner-loss
    weight (the last T inner steps unrolled), at the target that ends each fact (its room, or the
    object taken or dropped), by whose fact it is — the one the question asks about (QA1: the
    actor; QA2: an actor who handled the object) or another — and whether it is that actor's last
    fact of its kind: does the meta-objective itself ask for recency?"""
    idx = {t: i for i, t in enumerate(data["tokens"])}
    act = {idx[" " + x]: x for x in ACTORS}
    rooms = {idx[" " + r] for r in ROOMS}
    th0, lrs = adapter(a, c)
    N, scale = lrs.shape[0], a.alpha / math.sqrt(a.rank)
    cell = {}  # inner-loss weights of one problem (a leaf), read by the patched inner loss
    plain = tp.inner_loss

    def weighted(W_, c_, ids, tgt, lora, sc):
        logits = tp.forward(W_, c_, ids, lora, sc)
        nll = F.cross_entropy(logits.reshape(-1, c_["vocab"]), tgt.reshape(-1), ignore_index=-100,
                              reduction="none").view(tgt.shape)
        return (cell["w"] * nll).sum() / (tgt != -100).sum()

    tp.inner_loss = weighted
    groups = collections.defaultdict(list)
    for p in data["validation"][: a.n]:
        ids, _ = tp.seg_batch(p, data["eos"])
        fact, k = tp.fact_mask(ids, events=True)
        facts = []  # (actor, kind, k, last word, gradient at the position predicting the last word)
        for r in range(ids.shape[0]):
            for t in range(ids.shape[1] - 2):
                if fact[r, t + 1] and data["tokens"][int(ids[r, t + 2])].startswith("."):
                    u = t
                    while u > 0 and fact[r, u - 1]:
                        u -= 1
                    word = int(ids[r, t + 1])
                    facts.append([act.get(int(ids[r, u]), "?"), "move" if word in rooms else "object",
                                  int(k[r, t]), word, (r, t)])
        asked_actor = [act[x] for x in p["prompt"] if x in act]
        if asked_actor:  # QA1: "Where is Mary?"
            asked = set(asked_actor)
        else:  # QA2: "Where is the football?" — whoever took or dropped it
            obj = p["prompt"][[data["tokens"][x] for x in p["prompt"]].index("?") - 1]
            asked = {f[0] for f in facts if f[1] == "object" and f[3] == obj}
        cell["w"] = torch.ones(ids.shape, requires_grad=True)
        th = tp.inner_loop(W, c, p, data["eos"], th0, lrs, N, a.T or N, scale, True)
        loss = tp.outer_nll(W, c, p, th, scale, "target_answer")
        (g,) = torch.autograd.grad(loss, [cell["w"]])
        last = {}
        for who, kind, kk, _, _ in facts:
            last[who, kind] = max(last.get((who, kind), -1), kk)
        for who, kind, kk, _, (r, t) in facts:
            groups[f"{'asked' if who in asked else 'other'} {kind}, "
                   f"{'last' if kk == last[who, kind] else 'earlier'}"].append(g[r, t].item())
        groups["prose token"].extend(g[(k < 0) & (ids != data["eos"])].tolist())
    tp.inner_loss = plain
    print(f"{a.file}: d(answer loss)/d(token weight), {'meta ' + a.meta if a.meta else f'TTT at {a.inner_lr:g}'}, "
          f"N = {N}, last {a.T or N} unrolled, n = {a.n} (negative: more weight lowers the loss)")
    print("| target that ends the fact of | count | mean gradient | median | share negative |")
    print("|---|---:|---:|---:|---:|")
    for kind in sorted(groups):
        v = torch.tensor(groups[kind])
        print(f"| {kind} | {len(v)} | {v.mean().item():.2e} | {v.median().item():.2e} | "
              f"{(v < 0).float().mean().item():.2f} |", flush=True)


def cmd_phifit(a, W, c, data):
    """Can perk's weighting model represent recency at all? Fit it (its architecture and
    initialisation, on the base's final hidden states) by regression to the hand-made weighting
    (k + 1)^P of the `recency` command, then run test-time training with it: if the fitted model
    recovers the hand-made weighting's gain, what meta-training lacks is the search, not the form."""
    def rows(split, n):
        X, y = [], []
        for p in data[split][:n]:
            ids, tgt = tp.seg_batch(p, data["eos"])
            with torch.no_grad():
                _, h = tp.forward(W, c, ids, None, 1.0, hidden=True)
            keep = tgt != -100
            X.append(h[keep]); y.append(tp.recency_weights(ids, a.pow[0])[keep])
        return torch.cat(X), torch.cat(y)

    Xt, yt = rows("train", a.n_train)
    Xv, yv = rows("validation", a.n)
    goal = lambda y: (y * math.log(2) / 3).log()  # prose at the initial weight ln2/3, facts (k+1)^P times it
    phi = tp.init_phi(c["dim"], 0)
    opt = torch.optim.Adam(phi, lr=a.fit_lr)
    for it in range(a.fit_steps + 1):
        if it % 100 == 0:
            with torch.no_grad():
                lw = tp.token_weights(Xv, phi).clamp(min=1e-9).log()
                r = torch.corrcoef(torch.stack([lw, goal(yv)]))[0, 1].item()
                by = [tp.token_weights(Xv[yv == v], phi).mean().item() for v in sorted(set(yv.tolist()))[:5]]
            print(f"fit step {it}: validation corr(log w, log target) {r:.3f}; mean w by target weight "
                  + " ".join(f"{x:.3f}" for x in by), flush=True)
        if it == a.fit_steps:
            break
        opt.zero_grad()
        F.mse_loss(tp.token_weights(Xt, phi).clamp(min=1e-9).log(), goal(yt)).backward()
        opt.step()
    th0, lrs = adapter(a, c)
    N, scale = lrs.shape[0], a.alpha / math.sqrt(a.rank)
    tp.PHI = [x.detach() for x in phi]
    tp.WEIGHT_FROM_BASE = a.from_base
    acc = tp.evaluate(W, c, data, "validation", th0, lrs, N, scale, a.n)
    print(f"{a.file}: the weighting model fitted to (k+1)^{a.pow[0]:g}, test-time training at "
          f"{a.inner_lr:g}, weights from the {'base' if a.from_base else 'adapted model'}: validation "
          f"{acc:.3f} (n = {a.n})", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["errors", "binding", "recency", "wgrad", "phifit"]); ap.add_argument("file")
    ap.add_argument("--base", default=".torch_perk/base.pt"); ap.add_argument("--meta", default="")
    ap.add_argument("--rank", type=int, default=16); ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--N", type=int, default=4); ap.add_argument("--inner-lr", type=float, default=3e-3)
    ap.add_argument("--n", type=int, default=100, help="validation problems")
    ap.add_argument("--n-train", type=int, default=300, help="training problems for the probes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fit-steps", type=int, default=1000, help="phifit: regression steps")
    ap.add_argument("--from-base", action="store_true",
                    help="phifit: the weights read the frozen base's hidden states in the inner loop")
    ap.add_argument("--fit-lr", type=float, default=3e-3, help="phifit: Adam's rate")
    ap.add_argument("--T", type=int, default=0, help="wgrad: inner steps unrolled (0: all N)")
    ap.add_argument("--pow", type=float, nargs="+", default=[0, 1, 2, 4], help="recency: exponents")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data, W = tp.load_data(a.file), tp.load_base(a.base)
    {"errors": cmd_errors, "binding": cmd_binding, "recency": cmd_recency, "wgrad": cmd_wgrad, "phifit": cmd_phifit}[a.cmd](a, W, tp.CFG, data)


if __name__ == "__main__":
    main()
