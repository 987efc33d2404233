//! ONNX models against onnxruntime: every fixture of tests/fixtures/onnx (made by
//! scripts/make_onnx_fixtures.py: onnx.helper models for each supported attribute, and
//! torch.onnx.export's TorchScript and dynamo exports of stacked / bidirectional /
//! batch-first modules) run through `recur::onnx` and compared with onnxruntime's outputs
//! within 1e-5 relative; the `unsupported_*` fixtures refused by name; malformed files
//! (truncated, mutated, lying shapes) a typed error, never a panic. The same through
//! `recur run --model M.onnx`.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_close, gpu};
use prost::Message;
use recur::onnx::{proto, Array, OnnxModel, Value};
use recur::rng::Rng;
use recur::{io, Error, Gpu};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn names(prefix_ok: impl Fn(&str) -> bool) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".onnx").map(str::to_string)
        })
        .filter(|n| prefix_ok(n))
        .collect();
    v.sort();
    v
}

/// The feeds of fixture `name`: `x` to the first graph input, `lens`/`h0`/`c0` to the graph
/// inputs of the RNN node's `sequence_lens`/`initial_h`/`initial_c`.
fn feeds<'a>(model: &'a OnnxModel, name: &str) -> Vec<(&'a str, Value)> {
    let d = dir();
    let mut f = vec![(
        model.inputs()[0].as_str(),
        Value::from(io::read_f32(&d.join(format!("{name}.x.npy"))).unwrap()),
    )];
    for (key, slot) in [("lens", 4), ("h0", 5), ("c0", 6)] {
        let p = d.join(format!("{name}.{key}.npy"));
        if !p.exists() {
            continue;
        }
        let v = if key == "lens" {
            let l = io::read_i64(&p).unwrap();
            Value::I64(Array {
                shape: vec![l.len()],
                data: l,
            })
        } else {
            Value::from(io::read_f32(&p).unwrap())
        };
        // A torch export's initial state reaches the RNN node through shape plumbing: it is
        // the graph's second input.
        let name = model
            .rnn_input(slot)
            .or_else(|| model.inputs().get(1).map(String::as_str))
            .expect("fixture input wired");
        f.push((name, v));
    }
    f
}

fn check_fixture(gpu: &Gpu, name: &str) {
    let d = dir();
    let model = OnnxModel::load(&d.join(format!("{name}.onnx"))).unwrap();
    let outs = model.run(gpu, &feeds(&model, name)).unwrap();
    assert_eq!(outs.len(), model.outputs().len());
    for (k, o) in outs.iter().enumerate() {
        let want = io::read_f32(&d.join(format!("{name}.out{k}.npy"))).unwrap();
        let got = o.as_f32(name, "output").unwrap();
        assert_eq!(got.shape, want.shape, "{name} output {k} shape");
        let w: Vec<f64> = want.data.iter().map(|&v| f64::from(v)).collect();
        assert_close(&format!("{name} output {k}"), &got.data, &w, 1e-5);
    }
}

#[test]
fn onnx_models_match_onnxruntime() {
    let Some(gpu) = gpu() else { return };
    let all = names(|n| !n.starts_with("unsupported_"));
    assert!(all.len() >= 68, "fixtures missing: {all:?}");
    for name in &all {
        check_fixture(&gpu, name);
    }
}

#[test]
fn onnx_unsupported_attributes_and_operators_are_named() {
    let cases = [
        ("unsupported_rnn_gelu", "activations = [\"Gelu\"]"),
        (
            "unsupported_gru_activation_count",
            "activations = [\"Sigmoid\", \"Tanh\", \"Tanh\"]",
        ),
        ("unsupported_matmul", "operator MatMul"),
    ];
    assert_eq!(names(|n| n.starts_with("unsupported_")).len(), cases.len());
    for (name, says) in cases {
        match OnnxModel::load(&dir().join(format!("{name}.onnx"))) {
            Err(e @ Error::Unsupported { .. }) => {
                let m = e.to_string();
                assert!(m.contains(says), "{name}: {m}");
                assert!(!m.contains('\n'), "{name}: one line: {m}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// Loads `bytes` and, if that succeeds, runs it on `name`'s inputs: any outcome but a panic.
fn load_and_run(gpu: &Gpu, bytes: &[u8], name: &str) -> Result<(), Error> {
    let model = OnnxModel::from_bytes(bytes, "mutated.onnx")?;
    let Some(first) = model.inputs().first() else {
        return Ok(());
    };
    let x = io::read_f32(&dir().join(format!("{name}.x.npy"))).unwrap();
    model
        .run(gpu, &[(first.as_str(), Value::from(x))])
        .map(|_| ())
}

#[test]
fn onnx_truncated_and_mutated_files_are_typed_errors() {
    let Some(gpu) = gpu() else { return };
    for name in [
        "torch_lstm_2layer_bidir_batch_first",
        "dynamo_gru_2layer",
        "dynamo_rnn_relu_2layer_bidir",
    ] {
        let bytes = std::fs::read(dir().join(format!("{name}.onnx"))).unwrap();
        for cut in (0..bytes.len()).step_by(97) {
            let r = load_and_run(&gpu, &bytes[..cut], name);
            // A cut at a field boundary can still be a well-formed (smaller) model.
            if let Err(e) = r {
                assert!(
                    matches!(e, Error::Format { .. } | Error::Unsupported { .. }),
                    "{name} cut at {cut}: {e:?}"
                );
            }
        }
        let mut rng = Rng::new(7);
        for _ in 0..150 {
            let mut m = bytes.clone();
            for _ in 0..3 {
                let i = (rng.next_u64() % m.len() as u64) as usize;
                m[i] ^= 1 << (rng.next_u64() % 8);
            }
            if let Err(e) = load_and_run(&gpu, &m, name) {
                assert!(
                    !matches!(e, Error::Internal(_) | Error::Io { .. }),
                    "{name}: {e:?}"
                );
            }
        }
    }
}

#[test]
fn onnx_lying_shapes_are_refused_before_allocation() {
    let bytes = std::fs::read(dir().join("lstm_forward.onnx")).unwrap();
    let base = proto::ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = |m: &mut proto::ModelProto| m.graph.as_mut().unwrap().clone();
    // Dims whose product is astronomically larger than the data (and one that overflows).
    for dims in [vec![1i64 << 40, 1 << 40], vec![2, 16, 4], vec![-1, 16, 3]] {
        let mut m = base.clone();
        let mut g = graph(&mut m);
        g.initializer[0].dims = dims.clone();
        m.graph = Some(g);
        match OnnxModel::from_bytes(&m.encode_to_vec(), "lying.onnx") {
            Err(Error::Format { reason, .. }) => assert!(
                reason.contains("shape") || reason.contains("dimension"),
                "{reason}"
            ),
            other => panic!("{dims:?}: {other:?}"),
        }
    }
    // A hidden_size over the limit is refused at load; one that does not fit W is found at
    // run time, with the shapes named.
    let Some(gpu) = gpu() else { return };
    let with_hidden = |h: i64| {
        let mut m = base.clone();
        let mut g = graph(&mut m);
        for a in &mut g.node[0].attribute {
            if a.name() == "hidden_size" {
                a.i = Some(h);
            }
        }
        m.graph = Some(g);
        OnnxModel::from_bytes(&m.encode_to_vec(), "lying.onnx")
    };
    assert!(matches!(with_hidden(1 << 40), Err(Error::Format { .. })));
    let model = with_hidden(7).unwrap();
    let x = io::read_f32(&dir().join("lstm_forward.x.npy")).unwrap();
    match model.run(&gpu, &[("X", Value::from(x))]) {
        Err(Error::Format { reason, .. }) => assert!(reason.contains("W has shape"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // An input of the wrong shape, and an Expand to a huge shape.
    let model = OnnxModel::load(&dir().join("lstm_forward.onnx")).unwrap();
    let bad = Value::F32(Array {
        shape: vec![4, 3, 7],
        data: vec![0.0; 84],
    });
    assert!(matches!(
        model.run(&gpu, &[("X", bad)]),
        Err(Error::Format { .. })
    ));
    let bytes = std::fs::read(dir().join("torch_gru_2layer.onnx")).unwrap();
    let mut m = proto::ModelProto::decode(bytes.as_slice()).unwrap();
    let mut g = graph(&mut m);
    let k = g.node.iter().position(|n| n.op_type() == "Concat").unwrap();
    let first = g.node[k].input[0].clone();
    // Make the first part of the Expand's shape 2^40.
    for n in &mut g.node {
        if n.output.first() == Some(&first) {
            let t = n.attribute[0].t.as_mut().unwrap();
            t.raw_data = Some((1i64 << 40).to_le_bytes().to_vec());
            t.int64_data.clear();
        }
    }
    m.graph = Some(g);
    let model = OnnxModel::from_bytes(&m.encode_to_vec(), "huge.onnx").unwrap();
    let x = io::read_f32(&dir().join("torch_gru_2layer.x.npy")).unwrap();
    match model.run(&gpu, &[("input", Value::from(x))]) {
        Err(Error::Format { reason, .. }) => assert!(reason.contains("over the limit"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn onnx_cli_writes_onnx_shapes() {
    let Some(_gpu) = gpu() else { return };
    let d = dir();
    let tmp = tempfile::tempdir().unwrap();
    let name = "gru_reverse_layout1_lens";
    let out = |k: &str| tmp.path().join(format!("{k}.npy"));
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["run", "--model"])
        .arg(d.join(format!("{name}.onnx")))
        .arg("--input")
        .arg(d.join(format!("{name}.x.npy")))
        .arg("--sequence-lens")
        .arg(d.join(format!("{name}.lens.npy")))
        .arg("--h0")
        .arg(d.join(format!("{name}.h0.npy")))
        .arg("--output")
        .arg(out("y"))
        .arg("--hn")
        .arg(out("yh"))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    for (k, f) in ["y", "yh"].iter().enumerate() {
        let got = io::read_f32(&out(f)).unwrap();
        let want = io::read_f32(&d.join(format!("{name}.out{k}.npy"))).unwrap();
        assert_eq!(got.shape, want.shape);
        let w: Vec<f64> = want.data.iter().map(|&v| f64::from(v)).collect();
        assert_close(f, &got.data, &w, 1e-5);
    }
    // An unsupported attribute: one line naming it, and nothing written.
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["run", "--model"])
        .arg(d.join("unsupported_rnn_gelu.onnx"))
        .arg("--input")
        .arg(d.join(format!("{name}.x.npy")))
        .arg("--output")
        .arg(out("z"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(!st.status.success() && err.contains("Gelu"), "{err}");
    assert!(!out("z").exists());
}

/// Hostile models found in review (`tests/fixtures/onnx/hostile/`): an Expand to
/// `[0, 2^40]` and an initializer of that shape (once an 8 TB allocation and an abort), a
/// hidden_size of 2^62 (once an overflow), an LSTM reading a value no node produces (once
/// silently "no bias"); all typed errors. And a Slice with a negative step clamps its start to
/// the last element, as onnxruntime does (`[10, 20, 30][-4:-5:-1]` is `[10]`).
#[test]
fn onnx_hostile_models_are_typed_errors() {
    let Some(gpu) = gpu() else { return };
    let h = dir().join("hostile");
    let x = || Value::from(io::HostTensor::new(vec![1, 1, 1], vec![0.0]).unwrap());
    let load_and_run = |name: &str| -> Result<Vec<Value>, Error> {
        let m = OnnxModel::load(&h.join(format!("{name}.onnx")))?;
        match m.inputs().first() {
            Some(first) => m.run(&gpu, &[(first.as_str(), x())]),
            None => m.run(&gpu, &[]),
        }
    };
    for name in ["expand0", "slice0", "hid", "ghostB"] {
        let r = load_and_run(name);
        assert!(matches!(r, Err(Error::Format { .. })), "{name}: {r:?}");
    }
    let out = load_and_run("sliceneg").unwrap();
    assert_eq!(
        out[0],
        Value::F32(Array {
            shape: vec![1],
            data: vec![10.0]
        })
    );
}

/// The dynamo exporter's unrolled `nn.RNN` is lifted into RNN nodes (src/onnx/unrolled.rs):
/// the lifted graph takes other sequence lengths and batches than the exported one (the
/// first 3 steps of the first row give the first 3 steps of its output), and a chain that
/// differs from the pattern in one weight is not lifted (its MatMul refused by name).
#[test]
fn onnx_dynamo_rnn_chains_are_lifted_exactly() {
    let Some(gpu) = gpu() else { return };
    let name = "dynamo_rnn_tanh";
    let d = dir();
    let model = OnnxModel::load(&d.join(format!("{name}.onnx"))).unwrap();
    assert_eq!(model.cells().len(), 1);
    let x = io::read_f32(&d.join(format!("{name}.x.npy"))).unwrap(); // [5, 2, 3]
    let y = io::read_f32(&d.join(format!("{name}.out0.npy"))).unwrap(); // [5, 2, 4]
    let (b, i, h) = (x.shape[1], x.shape[2], y.shape[2]);
    let first = |v: &[f32], w: usize| -> Vec<f32> {
        (0..3)
            .flat_map(|t| v[t * b * w..t * b * w + w].to_vec())
            .collect()
    };
    let x3 = Value::F32(Array {
        shape: vec![3, 1, i],
        data: first(&x.data, i),
    });
    let out = model
        .run(&gpu, &[(model.inputs()[0].as_str(), x3)])
        .unwrap();
    let got = out[0].as_f32(name, "Y").unwrap();
    assert_eq!(got.shape, [3, 1, h]);
    let want: Vec<f64> = first(&y.data, h).iter().map(|&v| f64::from(v)).collect();
    assert_close("dynamo_rnn_tanh T=3 B=1", &got.data, &want, 1e-5);

    // One recurrent MatMul with another W_hh: no longer the pattern.
    let bytes = std::fs::read(d.join(format!("{name}.onnx"))).unwrap();
    let mut m = proto::ModelProto::decode(bytes.as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let tanh_out: Vec<String> = g
        .node
        .iter()
        .filter(|n| n.op_type() == "Tanh")
        .map(|n| n.output[0].clone())
        .collect();
    let k = g
        .node
        .iter()
        .position(|n| n.op_type() == "MatMul" && n.input[0] == tanh_out[2])
        .unwrap();
    let w_name = g.node[k].input[1].clone();
    let mut w2 = g
        .initializer
        .iter()
        .find(|t| t.name() == w_name)
        .unwrap()
        .clone();
    w2.name = Some("other_w_hh".into());
    let mut vals = io::read_f32(&d.join(format!("{name}.x.npy"))).unwrap().data;
    vals.resize(h * h, 0.5);
    w2.raw_data = Some(bytemuck::cast_slice(&vals).to_vec());
    w2.float_data.clear();
    g.initializer.push(w2);
    g.node[k].input[1] = "other_w_hh".into();
    match OnnxModel::from_bytes(&m.encode_to_vec(), "edited.onnx") {
        Err(e @ Error::Unsupported { .. }) => assert!(e.to_string().contains("MatMul"), "{e}"),
        other => panic!("{other:?}"),
    }
}
