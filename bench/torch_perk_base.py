#!/usr/bin/env python3
"""A base trained for test-time training, on the PyTorch prototype (bench/torch_perk.py).

Why: the shipped tiny base carries the person at the positions that predict a fact's room and at
the question's answer position in unrelated codes (bench/torch_perk_diag.py binding), so what
PERK's inner loop writes links no person to a room and PERK answers the story's most frequent
room (pipeline/perk/README.md). This objective asks the base itself for the link, first-order:

  each step, for `--batch` training problems: a fresh LoRA (PEFT's init, a new seed each time),
  N inner AdamW steps at a constant rate on the context's LM loss (no graph kept), then the
  answer's NLL from the question prompt alone with the adapted LoRA — its gradient moves the
  BASE's weights only (the adapted LoRA is a constant), plus `--lm` × the context's LM loss on
  the base so it stays a language model of the stories.

The second-order version is `torch_perk.py meta --lr-base` (θ₀ and rates learned with it).
Validation: test-time training alone (fresh LoRA, `--inner-lr`) on the file's validation split.

  /usr/bin/python3 bench/torch_perk_base.py OUT.pt --data .torch_perk/qa_qa1_256_facts.json
"""
import argparse, math, random, time
import torch
import torch_perk as tp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out"); ap.add_argument("--data", default=".torch_perk/qa_qa1_256_facts.json")
    ap.add_argument("--base", default=".torch_perk/base.pt")
    ap.add_argument("--steps", type=int, default=2000); ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--inner-lr", type=float, default=3e-3); ap.add_argument("--N", type=int, default=4)
    ap.add_argument("--rank", type=int, default=16); ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--batch", type=int, default=4, help="problems per step")
    ap.add_argument("--lm", type=float, default=1.0, help="weight of the context's LM loss on the base")
    ap.add_argument("--eval-every", type=int, default=500); ap.add_argument("--n-val", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1); ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data, W, c = tp.load_data(a.data), tp.load_base(a.base), tp.CFG
    for v in W.values():
        v.requires_grad_()
    opt = torch.optim.AdamW(list(W.values()), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.0)
    scale = a.alpha / math.sqrt(a.rank)
    rng = random.Random(a.seed)
    rates = lambda th0: torch.full((a.N, 2 * len(th0)), a.inner_lr)
    frozen = lambda: {k: v.detach() for k, v in W.items()}
    t0, hist = time.time(), []
    for step in range(a.steps + 1):
        if step % a.eval_every == 0:
            th0 = tp.lora_init(c, a.rank, 0)
            acc = tp.evaluate(frozen(), c, data, "validation", th0, rates(th0), a.N, scale, a.n_val)
            recent = hist[-a.eval_every:]
            print(f"step {step} loss {sum(recent) / max(1, len(recent)):.3f} "
                  f"test-time training val acc {acc:.3f} {time.time() - t0:.0f}s", flush=True)
        if step == a.steps:
            break
        opt.zero_grad()
        total = 0.0
        for _ in range(a.batch):
            p = rng.choice(data["train"])
            th0 = tp.lora_init(c, a.rank, rng.randrange(1 << 30))
            with torch.enable_grad():
                th = tp.inner_loop(frozen(), c, p, data["eos"], th0, rates(th0), a.N, 0, scale, False)
            th = {k: (x.detach(), y.detach()) for k, (x, y) in th.items()}
            loss = tp.outer_nll(W, c, p, th, scale, "target_answer")
            if a.lm > 0:
                ids, tgt = tp.seg_batch(p, data["eos"])
                loss = loss + a.lm * tp.inner_loss(W, c, ids, tgt, None, 1.0)
            (loss / a.batch).backward()
            total += loss.item() / a.batch
        torch.nn.utils.clip_grad_norm_(list(W.values()), 1.0)
        opt.step()
        hist.append(total)
    torch.save(frozen(), a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
