#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for recur's training tests.

Run from the repository root:

    python3 scripts/make_train_fixtures.py

Requires: torch, safetensors (CPU only; everything is float32, seeded and
single-threaded, so the output is deterministic for a given torch version).
Writes small files under tests/fixtures/train/ (a few KB each) that
tests/train_fixtures.rs compares against. All tensors are float32 (class ids
too: they are small integers, exact in float32); hyperparameters are string
metadata.

Files and keys:

  adam.safetensors, adamw.safetensors, sgd_momentum.safetensors,
  sgd_nesterov.safetensors
      one optimizer over two parameters, `w` (5, 7) and `b` (3,), for STEPS
      steps with a fresh random gradient each step, so moments and momentum
      buffers matter:
        param.w, param.b              before the first step
        step{k}.grad.w, .grad.b       gradient given at step k (1-based)
        step{k}.param.w, .param.b     parameters after step k
        state.<name>.w, .b            optimizer state after the last step
                                      (exp_avg, exp_avg_sq / momentum_buffer)
      metadata: optimizer (adam | adamw | sgd), steps, lr, betas/beta1/beta2,
      eps, weight_decay, momentum, dampening, nesterov, and default.* = the
      constructor defaults torch reports (optimizer.defaults)

  clip.safetensors
      torch.nn.utils.clip_grad_norm_ over three gradients g0 (4, 6), g1 (13,),
      g2 (300,), twice: case `a` clips (max_norm 1.0), case `b` does not
      (max_norm 1000, the coefficient clamps to 1); and clip_grad_value_:
        {a,b}.before.g{i}, {a,b}.after.g{i}, {a,b}.total_norm (shape [1])
        value.before.g{i}, value.after.g{i}
      metadata: a.max_norm, b.max_norm, clip_value

  cross_entropy.safetensors
      F.cross_entropy(logits, targets) (mean) and its gradient:
        logits (13, 11): randn * 4, row 0 scaled to +-1000 (stability),
        targets (13,), loss (1,), grad (13, 11)

  tbptt_dense.safetensors, tbptt_embed.safetensors
      three windows of truncated BPTT with torch's detach-and-carry loop:
        dense: x (T=3k, B, I) -> nn.LSTM(I, H) -> nn.Linear(H, V) -> CE
        embed: ids (T, B) -> nn.Embedding(V, E) -> nn.LSTM(E, H) -> Linear -> CE
      for w in 0..3: forward window w from the carried (h, c), loss = mean CE
      over its k*B rows, zero_grad, backward, record, SGD step (lr 0.5,
      momentum 0.9), carry (h, c) = (h.detach(), c.detach()).
        input (T, B, I) or (T, B); targets (T, B)
        init.<param>                  parameters before window 0, names as in
                                      recur's checkpoints: embedding.weight,
                                      rnn.weight_ih_l0, ..., head.weight,
                                      head.bias
        window{w}.loss (1,)           the loss of window w
        window{w}.grad.<param>        gradients of window w (before its step)
        final.<param>                 parameters after the third step
      metadata: vocab, input_size, hidden_size, window (k), batch, lr,
      momentum
"""

import json
import os
import struct

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT_DIR = os.path.join("tests", "fixtures", "train")
STEPS = 3


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def canonicalize_header(path):
    """Sort the metadata keys of the header in place, so files are byte-identical
    from run to run (safetensors keeps __metadata__ in a hash map)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    new = {"__metadata__": dict(sorted(meta.items()))}
    new.update(header)
    text = json.dumps(new, separators=(",", ":")).encode()
    assert len(text) <= n, (len(text), n)
    text += b" " * (n - len(text))
    with open(path, "wb") as f:
        f.write(raw[:8] + text + raw[8 + n :])


def save(name, tensors, meta):
    path = os.path.join(OUT_DIR, name + ".safetensors")
    meta = {k: str(v) for k, v in meta.items()}
    save_file({k: f32(v) for k, v in tensors.items()}, path, metadata=meta)
    canonicalize_header(path)
    return path


def optimizer_case(name, cls, kwargs, seed):
    torch.manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(5, 7))
    b = torch.nn.Parameter(torch.randn(3))
    opt = cls([w, b], **kwargs)
    t = {"param.w": f32(w), "param.b": f32(b)}
    for k in range(1, STEPS + 1):
        gw, gb = torch.randn(5, 7), torch.randn(3)
        w.grad, b.grad = gw.clone(), gb.clone()
        opt.step()
        t[f"step{k}.grad.w"], t[f"step{k}.grad.b"] = gw, gb
        t[f"step{k}.param.w"], t[f"step{k}.param.b"] = f32(w), f32(b)
    for p, suffix in ((w, "w"), (b, "b")):
        for sname, sval in opt.state[p].items():
            if sname != "step":
                t[f"state.{sname}.{suffix}"] = sval
    group = opt.param_groups[0]
    meta = {"optimizer": name.split("_")[0], "steps": STEPS}
    for key in ("lr", "eps", "weight_decay", "momentum", "dampening", "nesterov"):
        if key in group:
            meta[key] = group[key]
    if "betas" in group:
        meta["beta1"], meta["beta2"] = group["betas"]
    # The constructor's own defaults (what a bare cls(params) uses).
    defaults = cls([torch.nn.Parameter(torch.zeros(1))]).defaults
    for key in ("lr", "eps", "weight_decay", "momentum", "dampening", "nesterov"):
        if key in defaults:
            meta["default." + key] = defaults[key]
    if "betas" in defaults:
        meta["default.beta1"], meta["default.beta2"] = defaults["betas"]
    return save(name, t, meta)


def clip_case():
    torch.manual_seed(20)
    shapes = [(4, 6), (13,), (300,)]
    t = {}
    meta = {"a.max_norm": 1.0, "b.max_norm": 1000.0, "clip_value": 0.5}
    for case in ("a", "b"):
        ps = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        for i, p in enumerate(ps):
            p.grad = torch.randn(p.shape)
            t[f"{case}.before.g{i}"] = f32(p.grad)
        norm = torch.nn.utils.clip_grad_norm_(ps, meta[f"{case}.max_norm"])
        for i, p in enumerate(ps):
            t[f"{case}.after.g{i}"] = f32(p.grad)
        t[f"{case}.total_norm"] = norm.reshape(1)
    ps = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for i, p in enumerate(ps):
        p.grad = torch.randn(p.shape)
        t[f"value.before.g{i}"] = f32(p.grad)
    torch.nn.utils.clip_grad_value_(ps, meta["clip_value"])
    for i, p in enumerate(ps):
        t[f"value.after.g{i}"] = f32(p.grad)
    return save("clip", t, meta)


def cross_entropy_case():
    torch.manual_seed(21)
    logits = torch.randn(13, 11) * 4
    logits[0] = torch.randn(11).sign() * 1000 + torch.randn(11)
    logits.requires_grad_(True)
    targets = torch.randint(0, 11, (13,))
    loss = F.cross_entropy(logits, targets)
    loss.backward()
    t = {
        "logits": logits,
        "targets": targets.to(torch.float32),
        "loss": loss.reshape(1),
        "grad": logits.grad,
    }
    return save("cross_entropy", t, {"rows": 13, "vocab": 11})


def tbptt_case(name, embed, seed):
    torch.manual_seed(seed)
    V, I, H, k, B = 6, 4, 5, 4, 2
    T = 3 * k
    lr, momentum = 0.5, 0.9
    layers = {}
    if embed:
        layers["embedding"] = torch.nn.Embedding(V, I)
    layers["rnn"] = torch.nn.LSTM(I, H)
    layers["head"] = torch.nn.Linear(H, V)
    params = {
        f"{ln}.{pn}": p for ln, m in layers.items() for pn, p in m.named_parameters()
    }
    opt = torch.optim.SGD(params.values(), lr=lr, momentum=momentum)
    if embed:
        inp = torch.randint(0, V, (T, B))
    else:
        inp = torch.randn(T, B, I)
    targets = torch.randint(0, V, (T, B))
    t = {"input": inp.to(torch.float32), "targets": targets.to(torch.float32)}
    for n, p in params.items():
        t["init." + n] = f32(p)
    h = torch.zeros(1, B, H)
    c = torch.zeros(1, B, H)
    for w in range(3):
        x = inp[w * k : (w + 1) * k]
        if embed:
            x = layers["embedding"](x)
        out, (h, c) = layers["rnn"](x, (h, c))
        logits = layers["head"](out).reshape(-1, V)
        loss = F.cross_entropy(logits, targets[w * k : (w + 1) * k].reshape(-1))
        opt.zero_grad()
        loss.backward()
        t[f"window{w}.loss"] = loss.reshape(1)
        for n, p in params.items():
            t[f"window{w}.grad.{n}"] = f32(p.grad)
        opt.step()
        h, c = h.detach(), c.detach()
    for n, p in params.items():
        t["final." + n] = f32(p)
    meta = {
        "vocab": V,
        "input_size": I,
        "hidden_size": H,
        "window": k,
        "batch": B,
        "lr": lr,
        "momentum": momentum,
        "embedding": int(embed),
    }
    return save(name, t, meta)


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_DIR, exist_ok=True)
    paths = [
        optimizer_case("adam", torch.optim.Adam, dict(lr=0.05, weight_decay=0.1), 10),
        optimizer_case("adamw", torch.optim.AdamW, dict(lr=0.05), 11),
        optimizer_case(
            "sgd_momentum",
            torch.optim.SGD,
            dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
            12,
        ),
        optimizer_case(
            "sgd_nesterov",
            torch.optim.SGD,
            dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01),
            13,
        ),
        clip_case(),
        cross_entropy_case(),
        tbptt_case("tbptt_dense", False, 30),
        tbptt_case("tbptt_embed", True, 31),
    ]
    print(f"torch {torch.__version__}")
    total = 0
    for p in paths:
        size = os.path.getsize(p)
        total += size
        print(f"{p}  {size} bytes")
    print(f"total {total} bytes in {len(paths)} files")


if __name__ == "__main__":
    main()
