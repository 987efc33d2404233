"""Makes tests/fixtures/onnx/: small ONNX models, their inputs, and onnxruntime's outputs.

Usage: pip install onnx onnxruntime onnxscript torch; python3 scripts/make_onnx_fixtures.py

Each case NAME is NAME.onnx plus NAME.<input>.npy for each graph input fed (x, lens, h0,
c0) and NAME.out<k>.npy for each graph output, as onnxruntime computes them. Models built
with onnx.helper cover each attribute recur supports (directions, layouts, B, initial states,
sequence_lens, RNN Relu; and in variants(): GRU linear_before_reset = 0, LSTM peepholes,
input_forget, clip, every activation in every slot); `unsupported_*` models carry one thing
recur refuses (no outputs);
`torch_*` are torch.onnx.export's TorchScript exports of stacked / bidirectional /
batch_first modules, `dynamo_*` the dynamo exporter's (for nn.RNN: its unrolled loop). tests/onnx.rs reads them all.
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "onnx")
rng = np.random.default_rng(12)
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def ort_run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert len(sess.get_inputs()) == len(feeds)
    return sess.run(None, {i.name: feeds[k] for k, i in zip(feeds, sess.get_inputs())})


def ort_run_layout1(model, feeds):
    """onnxruntime refuses layout = 1 ("Batchwise recurrent operations are not supported"):
    run the layout-0 twin (same weights) on the transposed inputs, and transpose back."""
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    node = twin.graph.node[0]
    for a in node.attribute:
        if a.name == "layout":
            a.i = 0
    for vi in twin.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if len(dims) == 3:
            d0, d1 = dims[0].dim_value, dims[1].dim_value
            dims[0].dim_value, dims[1].dim_value = d1, d0
    tfeeds = {k: (v.transpose(1, 0, 2) if v.ndim == 3 else v) for k, v in feeds.items()}
    outs = ort_run(twin, tfeeds)
    return [outs[0].transpose(2, 0, 1, 3)] + [o.transpose(1, 0, 2) for o in outs[1:]]


def save(name, model, feeds, run=True, layout=0):
    onnx.checker.check_model(model)
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())
    if not run:
        return
    for k, v in feeds.items():
        np.save(os.path.join(OUT, f"{name}.{k}.npy"), v)
    outs = ort_run_layout1(model, feeds) if layout else ort_run(model, feeds)
    for k, o in enumerate(outs):
        np.save(os.path.join(OUT, f"{name}.out{k}.npy"), o.astype(np.float32))


def helper_model(name, op, *, direction="forward", layout=0, bias=True, h0=False, c0=False,
                 lens=None, attrs=None, peephole=False, t=4, b=3, i=3, h=4, run=True):
    d = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    w = rng.uniform(-0.6, 0.6, (d, g * h, i)).astype(np.float32)
    r = rng.uniform(-0.6, 0.6, (d, g * h, h)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R")]
    x = rng.standard_normal((b, t, i) if layout else (t, b, i)).astype(np.float32)
    feeds = {"x": x}
    ins = [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))]
    node_in = ["X", "W", "R", "", "", "", "", ""]
    if bias:
        inits.append(numpy_helper.from_array(
            rng.uniform(-0.5, 0.5, (d, 2 * g * h)).astype(np.float32), "B"))
        node_in[3] = "B"
    if lens is not None:
        feeds["lens"] = np.array(lens, dtype=np.int32)
        ins.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [b]))
        node_in[4] = "sequence_lens"
    state = [b, d, h] if layout else [d, b, h]
    for flag, key, nm, slot in [(h0, "h0", "initial_h", 5), (c0, "c0", "initial_c", 6)]:
        if flag:
            feeds[key] = rng.standard_normal(state).astype(np.float32)
            ins.append(helper.make_tensor_value_info(nm, TensorProto.FLOAT, state))
            node_in[slot] = nm
    if peephole:
        inits.append(numpy_helper.from_array(
            rng.uniform(-0.8, 0.8, (d, 3 * h)).astype(np.float32), "P"))
        node_in[7] = "P"
    node_in = node_in[: max(k for k, v in enumerate(node_in) if v) + 1]
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    a = dict(hidden_size=h, direction=direction)
    if layout:
        a["layout"] = layout
    a.update(attrs or {})
    node = helper.make_node(op, node_in, outs, **a)
    out_info = [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None] * (4 if o == "Y" else 3)) for o in outs]
    graph = helper.make_graph([node], name, ins, out_info, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    save(name, model, feeds, run, layout)


def strip(model):
    """Drops what the dynamo exporter adds for debugging (value_info, per-node metadata and
    doc strings), which no runtime reads, to keep the fixtures small."""
    model.graph.ClearField("value_info")
    model.ClearField("metadata_props")
    for n in model.graph.node:
        n.ClearField("metadata_props")
        n.ClearField("doc_string")
    return model


def torch_model(name, module, x, dynamo):
    module = module.eval()
    if dynamo:
        model = torch.onnx.export(module, (torch.from_numpy(x),), dynamo=True).model_proto
        model = strip(model)
    else:
        import io
        f = io.BytesIO()
        torch.onnx.export(module, (torch.from_numpy(x),), f, dynamo=False, opset_version=14,
                          input_names=["input"])
        model = onnx.load_from_string(f.getvalue())
    save(name, model, {"x": x})


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith((".onnx", ".npy")):
            os.remove(os.path.join(OUT, f))
    lbr = {"linear_before_reset": 1}
    helper_model("lstm_forward", "LSTM")
    helper_model("lstm_reverse_states_lens", "LSTM", direction="reverse", h0=True, c0=True,
                 lens=[4, 2, 3])
    helper_model("lstm_bidir_nobias_c0_only", "LSTM", direction="bidirectional", bias=False,
                 c0=True)
    helper_model("lstm_bidir_layout1_lens", "LSTM", direction="bidirectional", layout=1,
                 h0=True, c0=True, lens=[1, 4, 3])
    helper_model("gru_forward_h0", "GRU", attrs=lbr, h0=True, h=5)
    helper_model("gru_reverse_layout1_lens", "GRU", direction="reverse", layout=1, attrs=lbr,
                 h0=True, lens=[3, 4, 1])
    helper_model("gru_bidir_lens", "GRU", direction="bidirectional", attrs=lbr, lens=[2, 4, 4])
    helper_model("rnn_tanh_bidir_h0_lens", "RNN", direction="bidirectional", h0=True,
                 lens=[4, 1, 2])
    helper_model("rnn_relu_reverse", "RNN", direction="reverse",
                 attrs={"activations": ["Relu"]})
    helper_model("rnn_layout1_nobias", "RNN", layout=1, bias=False, h0=True)
    # One thing recur refuses each (no outputs are made).
    helper_model("unsupported_rnn_gelu", "RNN", attrs={"activations": ["Gelu"]}, run=False)
    helper_model("unsupported_gru_activation_count", "GRU",
                 attrs={"activations": ["Sigmoid", "Tanh", "Tanh"]}, run=False)
    torch.manual_seed(3)
    x_tf = rng.standard_normal((5, 2, 3)).astype(np.float32)  # (T, B, I)
    x_bf = rng.standard_normal((2, 5, 3)).astype(np.float32)  # (B, T, I)
    for dyn, pre in [(False, "torch"), (True, "dynamo")]:
        torch_model(f"{pre}_lstm_2layer_bidir_batch_first",
                    torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True),
                    x_bf, dyn)
        torch_model(f"{pre}_gru_2layer", torch.nn.GRU(3, 4, num_layers=2), x_tf, dyn)
        torch_model(f"{pre}_gru_bidir_batch_first",
                    torch.nn.GRU(3, 4, bidirectional=True, batch_first=True), x_bf, dyn)
    torch_model("torch_rnn_relu_bidir_2layer",
                torch.nn.RNN(3, 4, num_layers=2, nonlinearity="relu", bidirectional=True),
                x_tf, False)
    torch_model("torch_rnn_tanh_batch_first", torch.nn.RNN(3, 4, batch_first=True), x_bf, False)
    # A MatMul that is no unrolled nn.RNN: refused by name.
    w = numpy_helper.from_array(
        np.random.default_rng(99).standard_normal((3, 4)).astype(np.float32), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"])], "matmul",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [5, 2, 3])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [5, 2, 4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    save("unsupported_matmul", m, {}, run=False)
    variants()
    dynamo_rnns()


class WithState(torch.nn.Module):
    """An nn.RNN called with an initial state (a second graph input)."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, h0):
        return self.rnn(x, h0)


def dynamo_rnns():
    """The dynamo exporter unrolls nn.RNN into MatMul/Add/Tanh|Relu per step (recur lifts the
    chains back into RNN nodes, src/onnx/unrolled.rs)."""
    torch.manual_seed(5)
    gen = np.random.default_rng(13)
    x_tf = gen.standard_normal((5, 2, 3)).astype(np.float32)
    x_bf = gen.standard_normal((2, 6, 3)).astype(np.float32)
    torch_model("dynamo_rnn_tanh", torch.nn.RNN(3, 4), x_tf, True)
    torch_model("dynamo_rnn_relu_2layer_bidir",
                torch.nn.RNN(3, 4, num_layers=2, nonlinearity="relu", bidirectional=True),
                x_tf, True)
    torch_model("dynamo_rnn_nobias_batch_first", torch.nn.RNN(3, 5, bias=False,
                batch_first=True), x_bf, True)
    h0 = gen.standard_normal((2, 2, 4)).astype(np.float32)
    mod = WithState(torch.nn.RNN(3, 4, bidirectional=True, batch_first=True)).eval()
    m = torch.onnx.export(mod, (torch.from_numpy(x_bf), torch.from_numpy(h0)),
                          dynamo=True).model_proto
    save("dynamo_rnn_bidir_batch_first_h0", strip(m), {"x": x_bf, "h0": h0})


ACTIVATIONS = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
               "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus"]
USES_ALPHA = {"Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu"}
USES_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}


def activation_attrs(names, explicit):
    """activations = names; with `explicit`, an alpha and a beta for every function that
    takes them (else onnxruntime's defaults)."""
    a = {"activations": names}
    if explicit:
        alphas = [0.15 if n == "ThresholdedRelu" else round(float(rng.uniform(0.3, 1.2)), 3)
                  for n in names if n in USES_ALPHA]
        betas = [round(float(rng.uniform(0.2, 0.6)), 3) for n in names if n in USES_BETA]
        if alphas:
            a["activation_alpha"] = alphas
        if betas:
            a["activation_beta"] = betas
    return a


def variants():
    """The cells beyond the fast kernels: GRU linear_before_reset = 0 (ONNX's default), LSTM
    peepholes, input_forget, clip, and every activation in every slot (rotations of the list
    through the slots, so each function lands in each slot once; alpha/beta given every other
    fixture, onnxruntime's defaults otherwise)."""
    helper_model("gru_lbr0_forward_h0", "GRU", h0=True, h=5)
    helper_model("gru_lbr0_bidir_lens", "GRU", direction="bidirectional", lens=[2, 4, 3],
                 h0=True)
    helper_model("gru_lbr0_reverse_layout1_lens", "GRU", direction="reverse", layout=1,
                 lens=[3, 1, 4], attrs={"linear_before_reset": 0})
    helper_model("gru_lbr0_nobias_clip", "GRU", bias=False, attrs={"clip": 0.7})
    helper_model("gru_lbr1_clip_bidir", "GRU", direction="bidirectional",
                 attrs={"linear_before_reset": 1, "clip": 0.5})
    helper_model("lstm_peephole_forward", "LSTM", peephole=True, h0=True, c0=True)
    helper_model("lstm_peephole_bidir_lens_clip", "LSTM", direction="bidirectional",
                 peephole=True, lens=[4, 2, 3], attrs={"clip": 0.6})
    helper_model("lstm_peephole_layout1", "LSTM", layout=1, peephole=True, h0=True, c0=True)
    helper_model("lstm_input_forget", "LSTM", attrs={"input_forget": 1})
    helper_model("lstm_input_forget_peephole_reverse_lens", "LSTM", direction="reverse",
                 peephole=True, lens=[2, 4, 1], attrs={"input_forget": 1})
    helper_model("lstm_clip", "LSTM", attrs={"clip": 0.4})
    helper_model("rnn_clip_bidir", "RNN", direction="bidirectional", attrs={"clip": 0.3})
    helper_model("rnn_sigmoid", "RNN", attrs={"activations": ["Sigmoid"]})
    n = len(ACTIVATIONS)
    for k in range(n):
        rot = [ACTIVATIONS[(k + s) % n] for s in range(4)]
        explicit = k % 2 == 0
        helper_model(f"act{k:02}_lstm", "LSTM", attrs=activation_attrs(rot[:3], explicit))
        helper_model(f"act{k:02}_gru", "GRU",
                     attrs=activation_attrs(rot[:2], explicit) | {"linear_before_reset": k % 2})
        # Bidirectional: each direction its own function.
        helper_model(f"act{k:02}_rnn_bidir", "RNN", direction="bidirectional",
                     attrs=activation_attrs(rot[:2], explicit))


if __name__ == "__main__":
    main()
