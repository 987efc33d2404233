#!/usr/bin/env python3
"""Generate PyTorch fixtures for recur's gradient-flow diagnostics.

Run from the repository root:

    python3 scripts/make_gradient_fixtures.py

Requires: torch, safetensors (CPU only; float32, seeded: deterministic for a
given torch version).

For every case below, the stack is unrolled by hand: one torch.nn.RNNCell /
LSTMCell / GRUCell per (layer, direction), called step by step in a Python
loop (the reverse direction from t = T-1 down to 0), every h_t kept with
h_t.retain_grad(). The loss is L = sum(output * DY) (output is the top layer's
(T, B, D*H), features [forward | reverse]). After L.backward(), h_t.grad is
the total gradient reaching h_t (from the output at t and from the next step),
and its Frobenius norm over (B, H) is what recur's probe measures.

W_hh of each cell can be rescaled to a given largest singular value (the
lecture's sigma_max < 1 / > 1 cases); sigma_max is then re-measured with
torch.linalg.svdvals on the weight as saved.

Keys (all float32, contiguous), in tests/fixtures/gradient_flow/<case>.safetensors:
  weight_ih_l{k}[_reverse], weight_hh_l{k}[_reverse], bias_ih_l{k}[_reverse],
  bias_hh_l{k}[_reverse]   the cells' parameters under torch.nn.RNN/LSTM/GRU
                           state_dict names (so recur loads them as a stack)
  input         (T, B, I)
  grad_output   (T, B, D*H), DY
  grad_norms    (L*D, T): ||dL/dh_t||, row layer*D + direction, t in time order
  sigma_max     (L*D): torch.linalg.svdvals(weight_hh)[0]

Metadata (strings): cell (rnn_tanh | rnn_relu | lstm | gru), nonlinearity
(rnn only), input_size, hidden_size, num_layers, bidirectional ("0"/"1"),
bias ("1"), batch_first ("0"), seq_len, batch, sigma_target (or "none"),
last_only ("0"/"1").
"""

import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import canonicalize_header  # noqa: E402

OUT_DIR = os.path.join("tests", "fixtures", "gradient_flow")

# name, cell, I, H, L, bidir, T, B, sigma_target (None = torch's init),
# last_only (DY is zero except at the last step: the norms then show how the
# gradient of one output decays or grows on its way back), seed
CASES = [
    ("rnn_tanh_sigma_0p7", "rnn_tanh", 3, 9, 1, False, 40, 4, 0.7, True, 1),
    ("rnn_tanh_sigma_1p8", "rnn_tanh", 3, 9, 1, False, 30, 4, 1.8, True, 2),
    ("rnn_tanh_sigma_1p0_every_step", "rnn_tanh", 3, 9, 1, False, 30, 4, 1.0, False, 8),
    ("rnn_relu_2layer_bidir", "rnn_relu", 4, 7, 2, True, 7, 3, None, False, 3),
    ("lstm_1layer", "lstm", 4, 10, 1, False, 25, 3, None, True, 4),
    ("lstm_2layer_bidir", "lstm", 3, 5, 2, True, 6, 2, 1.5, False, 5),
    ("gru_1layer", "gru", 5, 11, 1, False, 30, 3, None, True, 6),
    ("gru_2layer_bidir", "gru", 3, 6, 2, True, 12, 2, 1.2, False, 7),
]


def make_cell(cell, inp, H):
    if cell == "lstm":
        return torch.nn.LSTMCell(inp, H)
    if cell == "gru":
        return torch.nn.GRUCell(inp, H)
    return torch.nn.RNNCell(inp, H, nonlinearity=cell[len("rnn_"):])


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def make_case(name, cell, I, H, L, bidir, T, B, sigma, last_only, seed):
    torch.manual_seed(seed)
    D = 2 if bidir else 1
    cells = {}
    for layer in range(L):
        inp = I if layer == 0 else D * H
        for d in range(D):
            c = make_cell(cell, inp, H).float()
            if sigma is not None:
                with torch.no_grad():
                    s = torch.linalg.svdvals(c.weight_hh)[0]
                    c.weight_hh.mul_(sigma / s)
            cells[(layer, d)] = c
    x = torch.randn(T, B, I, dtype=torch.float32)

    hs = {}  # (layer, d, t) -> h_t, each with retain_grad
    layer_in = x
    for layer in range(L):
        outs = []
        for d in range(D):
            c = cells[(layer, d)]
            h = torch.zeros(B, H)
            cstate = torch.zeros(B, H)
            ys = [None] * T
            order = range(T) if d == 0 else range(T - 1, -1, -1)
            for t in order:
                if cell == "lstm":
                    h, cstate = c(layer_in[t], (h, cstate))
                else:
                    h = c(layer_in[t], h)
                h.retain_grad()
                hs[(layer, d, t)] = h
                ys[t] = h
            outs.append(torch.stack(ys))
        layer_in = torch.cat(outs, dim=2)
    out = layer_in
    dy = torch.randn(out.shape, dtype=torch.float32)
    if last_only:
        dy[:-1] = 0.0
    (out * dy).sum().backward()

    norms = torch.zeros(L * D, T, dtype=torch.float64)
    sig = torch.zeros(L * D, dtype=torch.float64)
    tensors = {}
    for layer in range(L):
        for d in range(D):
            suffix = f"_l{layer}" + ("_reverse" if d == 1 else "")
            c = cells[(layer, d)]
            for pname in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                tensors[pname + suffix] = f32(getattr(c, pname))
            sig[layer * D + d] = torch.linalg.svdvals(
                tensors["weight_hh" + suffix].double()
            )[0]
            for t in range(T):
                g = hs[(layer, d, t)].grad
                norms[layer * D + d, t] = g.double().norm()
    tensors["input"] = f32(x)
    tensors["grad_output"] = f32(dy)
    tensors["grad_norms"] = f32(norms)
    tensors["sigma_max"] = f32(sig)
    meta = {
        "cell": cell,
        "input_size": str(I),
        "hidden_size": str(H),
        "num_layers": str(L),
        "bidirectional": str(int(bidir)),
        "bias": "1",
        "batch_first": "0",
        "seq_len": str(T),
        "batch": str(B),
        "sigma_target": "none" if sigma is None else str(sigma),
        "last_only": str(int(last_only)),
    }
    if cell.startswith("rnn_"):
        meta["nonlinearity"] = cell[len("rnn_"):]
    path = os.path.join(OUT_DIR, name + ".safetensors")
    save_file(tensors, path, metadata=meta)
    canonicalize_header(path)
    n = norms.flatten()
    print(
        f"{path}: {os.path.getsize(path)} bytes, sigma_max {sig.tolist()}, "
        f"norms {n.min().item():.3e}..{n.max().item():.3e}"
    )


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_DIR, exist_ok=True)
    print(f"torch {torch.__version__}")
    for case in CASES:
        make_case(*case)


if __name__ == "__main__":
    main()
