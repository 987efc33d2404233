#!/usr/bin/env python3
"""The demo's training run (`cargo run --release` on a CPU adapter) in PyTorch, for the
README's "what PyTorch reaches in the same time on the same CPU".

Same corpus (recur's own sources and shaders, built as build.rs builds it), same model
(embedding of 64, LSTM hidden 128, 1 layer, linear to the vocabulary), same training
(32 contiguous streams x windows of 32 characters, truncated BPTT carrying the state,
Adam lr 0.004, global-norm clipping at 1.0), on the CPU. Runs until --seconds of training
have passed (or --steps), then prints the steps, the characters/s and the loss as recur
reports it (mean of the last 10 steps), one JSON line.

    python3 benches/peers/torch_charlm.py --seconds 40      # from the repository root
"""
import argparse
import json
import os
import time

import torch


def corpus(root):
    files = []
    for sub, ext in (("src", ".rs"), ("shaders", ".wgsl")):
        for d, _, names in os.walk(os.path.join(root, sub)):
            files += [os.path.join(d, n) for n in names if n.endswith(ext)]
    # build.rs sorts the paths as written relative to the crate root.
    out = []
    for f in sorted(os.path.relpath(p, root) for p in files):
        with open(os.path.join(root, f), encoding="utf-8") as fh:
            text = fh.read()
        out.append(f"// ---- {f} ----\n{text}")
        if not text.endswith("\n"):
            out.append("\n")
        out.append("\n")
    return "".join(out)


class CharLm(torch.nn.Module):
    def __init__(self, vocab, embed, hidden):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, embed)
        self.lstm = torch.nn.LSTM(embed, hidden)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(self, x, state):
        y, state = self.lstm(self.emb(x), state)
        return self.head(y), state


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=".", help="recur's checkout (src/ and shaders/)")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps instead")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    text = corpus(a.root)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text])
    batch, window = 32, 32
    per = (len(ids) - 1) // batch
    streams = ids[: per * batch + 1]
    x_all = torch.stack([streams[b * per: b * per + per] for b in range(batch)], 1)
    y_all = torch.stack([streams[b * per + 1: b * per + per + 1] for b in range(batch)], 1)
    windows = per // window
    model = CharLm(len(chars), 64, 128)
    opt = torch.optim.Adam(model.parameters(), lr=0.004)
    loss_fn = torch.nn.CrossEntropyLoss()
    state, losses, step = None, [], 0
    start = time.perf_counter()
    while True:
        w = step % windows
        if w == 0:
            state = None
        x = x_all[w * window: (w + 1) * window]
        y = y_all[w * window: (w + 1) * window]
        out, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = loss_fn(out.reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        elapsed = time.perf_counter() - start
        if (a.steps and step >= a.steps) or (not a.steps and elapsed >= a.seconds):
            break
    print(json.dumps({
        "engine": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "vocab": len(chars), "characters": len(text), "steps": step,
        "seconds": round(elapsed, 2), "characters_per_s": round(step * batch * window / elapsed),
        "final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 3),
    }))


if __name__ == "__main__":
    main()
