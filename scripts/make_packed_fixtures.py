#!/usr/bin/env python3
"""Makes tests/fixtures/packed/: PyTorch runs of padded batches with per-row lengths through
torch.nn.utils.rnn.pack_padded_sequence(..., enforce_sorted=False) and pad_packed_sequence,
forward and backward, for tests/lengths.rs.

Usage (repository root): python3 scripts/make_packed_fixtures.py   (torch, safetensors)

Each CASE.safetensors holds the keys of scripts/make_fixtures.py (parameters under their
state_dict names, input, h0/c0, output, hn/cn, grad_output, grad.<param>, grad.input,
grad.h0/grad.c0) plus grad_hn/grad_cn: the loss is
    L = sum(output * grad_output) + sum(hn * grad_hn) + sum(cn * grad_cn),
where output is pad_packed_sequence's (zero past each row's length, total_length = T) and
hn/cn each row's state at its last valid step. Metadata as make_fixtures.py's, plus
"lengths" (comma-separated, one per batch row, unsorted).
"""
import os
import sys

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from make_fixtures import build, canonicalize_header, f32  # noqa: E402

OUT_DIR = os.path.join("tests", "fixtures", "packed")

# name, cell, I, H, L, bidir, batch_first, T, lengths, with_state, seed
CASES = [
    ("lstm_2layer_bidir", "lstm", 3, 5, 2, True, False, 5, [3, 5, 1, 4], True, 21),
    ("lstm_batch_first", "lstm", 4, 6, 1, False, True, 6, [2, 6, 6, 3], False, 22),
    ("gru_2layer_bidir_batch_first", "gru", 3, 4, 2, True, True, 5, [5, 2, 4], True, 23),
    ("gru_1layer", "gru", 5, 7, 1, False, False, 4, [1, 4, 2, 3, 4], False, 24),
    ("rnn_tanh_2layer_bidir", "rnn_tanh", 3, 5, 2, True, False, 6, [4, 6, 2], True, 25),
    ("rnn_relu_batch_first", "rnn_relu", 4, 5, 1, False, True, 5, [5, 3, 1], True, 26),
]


def make_case(name, cell, I, H, L, bidir, batch_first, T, lengths, with_state, seed):
    torch.manual_seed(seed)
    mod = build(cell, I, H, L, bidir, True, batch_first).float()
    D = 2 if bidir else 1
    B = len(lengths)
    x = torch.randn(*((B, T, I) if batch_first else (T, B, I)), requires_grad=True)
    h0 = c0 = None
    if with_state:
        h0 = torch.randn(D * L, B, H, requires_grad=True)
        if cell == "lstm":
            c0 = torch.randn(D * L, B, H, requires_grad=True)
    packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first,
                                  enforce_sorted=False)
    if cell == "lstm":
        out, (hn, cn) = mod(packed, (h0, c0)) if with_state else mod(packed)
    else:
        out, hn = mod(packed, h0) if with_state else mod(packed)
        cn = None
    out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    dy = torch.randn(out.shape)
    dhn = torch.randn(hn.shape)
    loss = (out * dy).sum() + (hn * dhn).sum()
    dcn = None
    if cn is not None:
        dcn = torch.randn(cn.shape)
        loss = loss + (cn * dcn).sum()
    loss.backward()

    t = {}
    for pname, p in mod.named_parameters():
        t[pname] = f32(p)
        t["grad." + pname] = f32(p.grad)
    t["input"] = f32(x)
    t["grad.input"] = f32(x.grad)
    if h0 is not None:
        t["h0"], t["grad.h0"] = f32(h0), f32(h0.grad)
    if c0 is not None:
        t["c0"], t["grad.c0"] = f32(c0), f32(c0.grad)
    t["output"], t["hn"], t["grad_output"], t["grad_hn"] = f32(out), f32(hn), f32(dy), f32(dhn)
    if cn is not None:
        t["cn"], t["grad_cn"] = f32(cn), f32(dcn)
    meta = {
        "cell": cell,
        "input_size": str(I),
        "hidden_size": str(H),
        "num_layers": str(L),
        "bidirectional": str(int(bidir)),
        "bias": "1",
        "batch_first": str(int(batch_first)),
        "seq_len": str(T),
        "batch": str(B),
        "lengths": ",".join(map(str, lengths)),
    }
    if cell.startswith("rnn_"):
        meta["nonlinearity"] = cell[len("rnn_"):]
    path = os.path.join(OUT_DIR, name + ".safetensors")
    save_file(t, path, metadata=meta)
    canonicalize_header(path)
    print(path)


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for case in CASES:
        make_case(*case)


if __name__ == "__main__":
    main()
