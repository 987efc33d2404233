#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for the recur RNN/LSTM/GRU tests.

Run from the repository root:

    python3 scripts/make_fixtures.py

Requires: torch, numpy, safetensors (CPU only; everything is float32 and
seeded, so the output is deterministic for a given torch version).

For every case below one `torch.nn.RNN` / `torch.nn.LSTM` / `torch.nn.GRU`
module is built (torch default init after `torch.manual_seed(seed)`), run
forward and backward, and saved to `tests/fixtures/<case>.safetensors`.

Tensor keys (all float32, contiguous):
  <param>            every parameter under its plain state_dict name, e.g.
                     weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0,
                     weight_ih_l0_reverse, ... (no module prefix)
  input              input exactly as fed to torch: (T,B,I), or (B,T,I)
                     when batch_first
  h0, c0             initial state (D*L,B,H); only when the case gives one
                     (c0 for LSTM only); absent means zero initial state
  output             (T,B,D*H), or (B,T,D*H) when batch_first
  hn, cn             final state (D*L,B,H); cn for LSTM only
  grad_output        random DY shaped like output; the loss is
                     L = sum(output * DY) (hn/cn do not enter the loss)
  grad.<param>       dL/d(param) for every parameter
  grad.input         dL/d(input)
  grad.h0, grad.c0   dL/d(h0), dL/d(c0), only when h0/c0 are present

Metadata (all strings):
  cell           lstm | gru | rnn_tanh | rnn_relu
  nonlinearity   tanh | relu   (rnn cases only)
  input_size, hidden_size, num_layers, seq_len, batch   (decimal)
  bidirectional, bias, batch_first                      ("0" / "1")
"""

import json
import os
import struct

import torch
from safetensors.torch import load_file, save_file

OUT_DIR = os.path.join("tests", "fixtures")

# name, cell, I, H, L, bidir, bias, batch_first, T, B, with_state, seed
CASES = [
    ("rnn_tanh_2layer", "rnn_tanh", 5, 7, 2, False, True, False, 5, 3, True, 1),
    ("rnn_relu", "rnn_relu", 3, 5, 1, False, True, False, 6, 2, False, 2),
    ("lstm_1layer", "lstm", 5, 7, 1, False, True, False, 5, 3, True, 3),
    ("lstm_2layer_bidir", "lstm", 3, 5, 2, True, True, False, 4, 2, True, 4),
    ("lstm_batch_first_nobias", "lstm", 6, 5, 1, False, False, True, 7, 3, False, 5),
    ("gru_1layer", "gru", 5, 7, 1, False, True, False, 5, 3, True, 6),
    ("gru_2layer_bidir_batch_first", "gru", 3, 6, 2, True, True, True, 5, 2, True, 7),
    ("rnn_tanh_bidir_nobias", "rnn_tanh", 7, 9, 1, True, False, False, 3, 1, False, 8),
    ("lstm_larger", "lstm", 19, 37, 1, False, True, False, 9, 5, True, 9),
    ("gru_larger", "gru", 21, 35, 2, False, True, False, 8, 3, False, 10),
    # LSTM with proj_size (last field): h = W_hr (o * tanh(c)), weight_hr_l{k} [P, H]
    ("lstm_proj_2layer_bidir", "lstm", 5, 7, 2, True, True, False, 4, 3, True, 11, 3),
]


def build(cell, I, H, L, bidir, bias, batch_first, proj=0):
    kw = dict(
        input_size=I,
        hidden_size=H,
        num_layers=L,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidir,
    )
    if cell == "lstm":
        return torch.nn.LSTM(proj_size=proj, **kw)
    if cell == "gru":
        return torch.nn.GRU(**kw)
    if cell == "rnn_tanh":
        return torch.nn.RNN(nonlinearity="tanh", **kw)
    if cell == "rnn_relu":
        return torch.nn.RNN(nonlinearity="relu", **kw)
    raise ValueError(cell)


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def make_case(name, cell, I, H, L, bidir, bias, batch_first, T, B, with_state, seed, proj=0):
    torch.manual_seed(seed)
    mod = build(cell, I, H, L, bidir, bias, batch_first, proj).float()
    D = 2 if bidir else 1

    x_shape = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(*x_shape, dtype=torch.float32, requires_grad=True)

    h0 = c0 = None
    if with_state:
        h0 = torch.randn(D * L, B, proj or H, dtype=torch.float32, requires_grad=True)
        if cell == "lstm":
            c0 = torch.randn(D * L, B, H, dtype=torch.float32, requires_grad=True)

    if cell == "lstm":
        out, (hn, cn) = mod(x, (h0, c0)) if with_state else mod(x)
    else:
        out, hn = mod(x, h0) if with_state else mod(x)
        cn = None

    dy = torch.randn(out.shape, dtype=torch.float32)
    loss = (out * dy).sum()
    loss.backward()

    tensors = {}
    for pname, p in mod.named_parameters():
        tensors[pname] = f32(p)
        tensors["grad." + pname] = f32(p.grad)
    tensors["input"] = f32(x)
    tensors["grad.input"] = f32(x.grad)
    if h0 is not None:
        tensors["h0"] = f32(h0)
        tensors["grad.h0"] = f32(h0.grad)
    if c0 is not None:
        tensors["c0"] = f32(c0)
        tensors["grad.c0"] = f32(c0.grad)
    tensors["output"] = f32(out)
    tensors["hn"] = f32(hn)
    if cn is not None:
        tensors["cn"] = f32(cn)
    tensors["grad_output"] = f32(dy)

    meta = {
        "cell": cell,
        "input_size": str(I),
        "hidden_size": str(H),
        "num_layers": str(L),
        "bidirectional": str(int(bidir)),
        "bias": str(int(bias)),
        "batch_first": str(int(batch_first)),
        "seq_len": str(T),
        "batch": str(B),
    }
    if cell.startswith("rnn_"):
        meta["nonlinearity"] = cell[len("rnn_"):]
    if proj:
        meta["proj_size"] = str(proj)

    path = os.path.join(OUT_DIR, name + ".safetensors")
    save_file(tensors, path, metadata=meta)
    canonicalize_header(path)
    return path


def canonicalize_header(path):
    """Rewrite the JSON header with the metadata keys sorted.

    safetensors stores __metadata__ in a hash map, so its key order (and so
    the file bytes) changes from run to run although the tensors do not.
    The rewritten header has the same content and length, so the tensor data
    offsets are untouched and the files are byte-for-byte reproducible.
    """
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__")
    new = {"__metadata__": dict(sorted(meta.items()))}
    new.update(header)
    text = json.dumps(new, separators=(",", ":")).encode()
    assert len(text) <= n, (len(text), n)
    text += b" " * (n - len(text))
    with open(path, "wb") as f:
        f.write(raw[:8] + text + raw[8 + n :])


def verify(path):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    loaded = load_file(path)
    print(f"{path}  ({os.path.getsize(path)} bytes)")
    print("  metadata:", ", ".join(f"{k}={v}" for k, v in sorted(meta.items())))
    for k in sorted(loaded):
        t = loaded[k]
        assert t.dtype == torch.float32, (k, t.dtype)
        assert torch.isfinite(t).all(), k
        print(f"  {k:32s} {tuple(t.shape)}")

    # Consistency: final hidden state of the last layer matches output.
    H = int(meta.get("proj_size", meta["hidden_size"]))
    D = 2 if meta["bidirectional"] == "1" else 1
    out = loaded["output"]
    if meta["batch_first"] == "1":
        out = out.transpose(0, 1)  # -> (T, B, D*H)
    hn = loaded["hn"]
    assert torch.equal(hn[-D], out[-1, :, :H]), path
    if D == 2:
        assert torch.equal(hn[-1], out[0, :, H:]), path


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_DIR, exist_ok=True)
    paths = [make_case(*case) for case in CASES]
    print(f"torch {torch.__version__}")
    total = 0
    for p in paths:
        verify(p)
        total += os.path.getsize(p)
    print(f"total {total} bytes in {len(paths)} files")


if __name__ == "__main__":
    main()
