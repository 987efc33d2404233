#!/usr/bin/env python3
"""Fixtures for recur's model files (tests/model_io.rs): a SeqModel saved alone is the
state_dict of the equivalent PyTorch module, both ways.

Run from the repository root:

    python3 scripts/make_model_fixtures.py

Requires: torch, safetensors (CPU, float32, seeded: the output is deterministic for a
given torch version). Writes under tests/fixtures/model/:

  PyTorch -> recur, one pair of files per case:
    <case>.safetensors     exactly `save_file(model.state_dict(), path)` of the module
                           below: no metadata, names embedding.weight, rnn.weight_ih_l0,
                           ..., head.weight, head.bias
    <case>.io.safetensors  input (T, B) ids (as float32) or (T, B, I) features; output
                           (T, B, out) or, many-to-one, (B, out); hn, cn (LSTM)
                           metadata: readout (every_step | last_step), nonlinearity
                           (tanh | relu, vanilla RNN only)

    lm_lstm         Embedding(11, 6) -> LSTM(6, 8, num_layers=2) -> Linear(8, 11), every step
    cls_gru_bidir   GRU(4, 5, bidirectional=True) -> Linear(10, 3) on y[-1]
    reg_rnn_relu    RNN(3, 4, nonlinearity="relu") -> Linear(4, 2) on y[-1]

  recur -> PyTorch:
    from_recur.safetensors     written by recur (SeqModel::save of a model trained in
                               recur: `RECUR_WRITE_MODEL_FIXTURES=1 cargo test --release
                               --test model_io write_from_recur_fixture`); this script
                               does not write it, it reads it
    from_recur.io.safetensors  the same module built in PyTorch from the file's shapes and
                               metadata, loaded with load_state_dict(strict=True), run on
                               a seeded input: input, output, hn, cn

The module, in PyTorch (SeqModel in src/nn/seq.rs says the same):

    class SeqModel(nn.Module):
        def forward(self, x):
            if hasattr(self, "embedding"): x = self.embedding(x)
            y, state = self.rnn(x)
            return self.head(y[-1] if last_step else y), state
"""

import json
import os
import struct
import sys

import torch
from safetensors.torch import load_file, save_file

OUT_DIR = os.path.join("tests", "fixtures", "model")


class SeqModel(torch.nn.Module):
    def __init__(self, vocab, rnn, out_features, last_step):
        super().__init__()
        if vocab is not None:
            self.embedding = torch.nn.Embedding(vocab, rnn.input_size)
        self.rnn = rnn
        d = 2 if rnn.bidirectional else 1
        self.head = torch.nn.Linear(d * rnn.hidden_size, out_features)
        self.last_step = last_step

    def forward(self, x):
        if hasattr(self, "embedding"):
            x = self.embedding(x)
        y, state = self.rnn(x)
        return self.head(y[-1] if self.last_step else y), state


def canonicalize_header(path):
    """Sort the metadata keys of the header in place (byte-identical reruns)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    new = {}
    if meta is not None:
        new["__metadata__"] = dict(sorted(meta.items()))
    new.update(header)
    text = json.dumps(new, separators=(",", ":")).encode()
    assert len(text) <= n, (len(text), n)
    text += b" " * (n - len(text))
    with open(path, "wb") as f:
        f.write(raw[:8] + text + raw[8 + n :])


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def run(model, x):
    with torch.no_grad():
        out, state = model(x)
    io = {"input": f32(x), "output": f32(out)}
    if isinstance(state, tuple):
        io["hn"], io["cn"] = f32(state[0]), f32(state[1])
    else:
        io["hn"] = f32(state)
    return io


def meta_of(model):
    meta = {"readout": "last_step" if model.last_step else "every_step"}
    if isinstance(model.rnn, torch.nn.RNN):
        meta["nonlinearity"] = model.rnn.nonlinearity
    return meta


def write_io(name, io, meta):
    path = os.path.join(OUT_DIR, name + ".io.safetensors")
    save_file(io, path, metadata=meta)
    canonicalize_header(path)


def torch_case(name, seed, vocab, make_rnn, out_features, last_step, shape):
    torch.manual_seed(seed)
    model = SeqModel(vocab, make_rnn(), out_features, last_step)
    if vocab is not None:
        x = torch.randint(0, vocab, shape)
    else:
        x = torch.randn(*shape)
    path = os.path.join(OUT_DIR, name + ".safetensors")
    save_file({k: f32(v) for k, v in model.state_dict().items()}, path)
    write_io(name, run(model, x), meta_of(model))


def module_from_file(tensors, meta):
    """The SeqModel a recur file describes, from its shapes and metadata."""
    emb = tensors.get("embedding.weight")
    w_ih, w_hh = tensors["rnn.weight_ih_l0"], tensors["rnn.weight_hh_l0"]
    hidden, inp = w_hh.shape[1], w_ih.shape[1]
    layers = sum(1 for k in tensors if k.startswith("rnn.weight_ih_l") and "reverse" not in k)
    bidir = "rnn.weight_ih_l0_reverse" in tensors
    bias = "rnn.bias_ih_l0" in tensors
    gates = w_ih.shape[0] // hidden
    kw = dict(num_layers=layers, bidirectional=bidir, bias=bias)
    if gates == 4:
        rnn = torch.nn.LSTM(inp, hidden, **kw)
    elif gates == 3:
        rnn = torch.nn.GRU(inp, hidden, **kw)
    else:
        rnn = torch.nn.RNN(inp, hidden, nonlinearity=meta.get("nonlinearity", "tanh"), **kw)
    vocab = None if emb is None else emb.shape[0]
    out = tensors["head.weight"].shape[0]
    return SeqModel(vocab, rnn, out, meta.get("readout") == "last_step")


def from_recur_case():
    path = os.path.join(OUT_DIR, "from_recur.safetensors")
    if not os.path.exists(path):
        print(f"{path} is missing: write it with recur first (see the docstring)", file=sys.stderr)
        return
    tensors = load_file(path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(n)).get("__metadata__", {})
    model = module_from_file(tensors, meta)
    model.load_state_dict(tensors, strict=True)  # every name and shape must match
    torch.manual_seed(99)
    rnn = model.rnn
    if hasattr(model, "embedding"):
        x = torch.randint(0, model.embedding.num_embeddings, (7, 3))
    else:
        x = torch.randn(7, 3, rnn.input_size)
    write_io("from_recur", run(model, x), meta_of(model))


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    torch.set_num_threads(1)
    torch_case("lm_lstm", 31, 11, lambda: torch.nn.LSTM(6, 8, num_layers=2), 11, False, (5, 3))
    torch_case(
        "cls_gru_bidir", 32, None, lambda: torch.nn.GRU(4, 5, bidirectional=True), 3, True, (6, 2, 4)
    )
    torch_case(
        "reg_rnn_relu", 33, None, lambda: torch.nn.RNN(3, 4, nonlinearity="relu"), 2, True, (4, 3, 3)
    )
    from_recur_case()
    print(f"torch {torch.__version__}: fixtures written to {OUT_DIR}")


if __name__ == "__main__":
    main()
