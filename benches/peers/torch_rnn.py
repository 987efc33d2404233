#!/usr/bin/env python3
"""PyTorch peer of `recur bench`: times torch.nn.LSTM / GRU / RNN on the shapes of the repo's
benches/suites.json (found next to this folder), the same shapes `recur bench` times.

    python3 benches/peers/torch_rnn.py --suite cpu|gpu [--device cpu|cuda] [--reps N] [--threads N]

Needs only PyTorch. Prints one JSON object a line, the fields `recur bench --json` prints:
{"engine", "device", "cell", "input", "hidden", "layers", "bidirectional", "seq", "batch",
"mode", "ms"}. ms is the median wall time of one call (forward under no_grad, or forward +
backward of sum(y*dy) with all weight gradients), synchronised with the device, after three
warm-up calls. TF32 is off, so float32 means float32 on both sides. A note of the torch
version and the device goes to stderr.

To compare, run recur on the same suite and machine, in the same sitting:

    python3 benches/peers/torch_rnn.py --suite cpu --device cpu --threads 2 > torch.jsonl
    recur bench --suite cpu --compare torch.jsonl        # runs recur's suite, prints the ratios

or keep both sides' lines and compare them later, without running anything:

    recur bench --suite cpu --json > recur.jsonl
    recur bench --compare recur.jsonl --against torch.jsonl

The ratio is torch ms / recur ms per shape (above 1, recur is faster), with its geometric mean.
On an NVIDIA GPU use --suite gpu; the device defaults to cuda when there is one (cuDNN).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

SUITES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "suites.json")
KEYS = ("cell", "input", "hidden", "layers", "bidirectional", "seq", "batch", "mode")
CELLS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


def main():
    with open(SUITES) as f:
        suites = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="cpu", choices=sorted(suites), help="which shapes (default cpu)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (default cuda when available, else cpu)")
    p.add_argument("--reps", type=int, default=10, help="timed calls per shape; the median is printed")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    a = p.parse_args()
    if a.reps < 1:
        p.error("--reps must be at least 1")
    if a.threads is not None:
        if a.threads < 1:
            p.error("--threads must be at least 1")
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if dev.type == "cuda":
        name, engine, sync = torch.cuda.get_device_name(dev), "torch-cudnn", torch.cuda.synchronize
        note = f"{dev}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        name, engine, sync = dev.type, "torch-" + dev.type, (lambda: None)
        if dev.type == "mps":
            sync = torch.mps.synchronize
        note = f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name} ({note}), suite {a.suite}, median of {a.reps}",
          file=sys.stderr, flush=True)

    for c in suites[a.suite]:
        m = CELLS[c["cell"]](c["input"], c["hidden"], num_layers=c["layers"],
                             bidirectional=c["bidirectional"]).to(dev)
        x = torch.randn(c["seq"], c["batch"], c["input"], device=dev)
        dy = torch.randn(c["seq"], c["batch"], c["hidden"] * (2 if c["bidirectional"] else 1), device=dev)

        def step():
            if c["mode"] == "forward":
                with torch.no_grad():
                    m(x)
            else:
                y, _ = m(x)
                (y * dy).sum().backward()

        for _ in range(3):
            step()
        times = []
        for _ in range(a.reps):
            sync()
            t = time.perf_counter()
            step()
            sync()
            times.append((time.perf_counter() - t) * 1e3)
        print(json.dumps({"engine": engine, "device": name, **{k: c[k] for k in KEYS},
                          "ms": round(statistics.median(times), 4)}), flush=True)


if __name__ == "__main__":
    main()
