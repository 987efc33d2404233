//! The `recur` binary end to end: `recur run` on a PyTorch fixture reproduces torch's outputs
//! and gradients, `recur bench --compare` joins two saved outputs, and bad input ends with a
//! one-line error and a non-zero exit, never a panic.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_close, f64s};
use recur::io::{self, HostTensor};

fn fixture(case: &str) -> (BTreeMap<String, HostTensor>, BTreeMap<String, String>) {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{case}.safetensors"));
    io::load(&p).unwrap()
}

fn recur(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(args)
        .output()
        .unwrap()
}

fn has_gpu() -> bool {
    common::gpu().is_some()
}

/// A model file whose RNN tensors sit under `prefix` beside an unrelated tensor, plus the
/// input, h0, c0 and grad_output as .npy files.
fn export(dir: &Path, case: &str, prefix: &str) -> BTreeMap<String, HostTensor> {
    let (t, meta) = fixture(case);
    let mut model: Vec<(String, HostTensor)> = t
        .iter()
        .filter(|(k, _)| k.starts_with("weight_") || k.starts_with("bias_"))
        .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
        .collect();
    model.push((
        "fc.weight".into(),
        HostTensor::new(vec![2, 2], vec![1.0; 4]).unwrap(),
    ));
    io::save(&dir.join("model.safetensors"), &model, &meta).unwrap();
    for name in ["input", "h0", "c0", "grad_output"] {
        if let Some(v) = t.get(name) {
            io::write_f32(&dir.join(format!("{name}.npy")), v).unwrap();
        }
    }
    t
}

fn s(p: PathBuf) -> String {
    p.display().to_string()
}

#[test]
fn run_should_reproduce_pytorch_outputs_and_gradients() {
    if !has_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = export(d, "lstm_2layer_bidir", "lstm.");
    let out = recur(&[
        "run",
        "--model",
        &s(d.join("model.safetensors")),
        "--prefix",
        "lstm.",
        "--input",
        &s(d.join("input.npy")),
        "--h0",
        &s(d.join("h0.npy")),
        "--c0",
        &s(d.join("c0.npy")),
        "--output",
        &s(d.join("y.npy")),
        "--hn",
        &s(d.join("hn.npy")),
        "--cn",
        &s(d.join("cn.npy")),
        "--grad-output",
        &s(d.join("grad_output.npy")),
        "--grads",
        &s(d.join("grads.safetensors")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (file, key) in [("y.npy", "output"), ("hn.npy", "hn"), ("cn.npy", "cn")] {
        let got = io::read_f32(&d.join(file)).unwrap();
        assert_eq!(got.shape, t[key].shape, "{file}");
        assert_close(file, &got.data, &f64s(&t[key].data), 1e-5);
    }
    let (g, _) = io::load(&d.join("grads.safetensors")).unwrap();
    for (k, v) in &t {
        if let Some(name) = k.strip_prefix("grad.") {
            let key = if name.starts_with("weight_") || name.starts_with("bias_") {
                format!("lstm.{name}")
            } else {
                name.to_string()
            };
            let got = g.get(&key).unwrap_or_else(|| panic!("grads lack {key}"));
            assert_eq!(got.shape, v.shape, "{key}");
            assert_close(&key, &got.data, &f64s(&v.data), 1e-4);
        }
    }
}

#[test]
fn run_should_take_batch_first_and_the_nonlinearity_from_metadata() {
    if !has_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = export(d, "rnn_relu", "");
    let out = recur(&[
        "run",
        "--model",
        &s(d.join("model.safetensors")),
        "--input",
        &s(d.join("input.npy")),
        "--output",
        &s(d.join("y.npy")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = io::read_f32(&d.join("y.npy")).unwrap();
    assert_close(
        "relu from metadata",
        &got.data,
        &f64s(&t["output"].data),
        1e-5,
    );
    // The flag wins over the metadata: tanh gives something else.
    let out = recur(&[
        "run",
        "--model",
        &s(d.join("model.safetensors")),
        "--nonlinearity",
        "tanh",
        "--input",
        &s(d.join("input.npy")),
        "--output",
        &s(d.join("y2.npy")),
    ]);
    assert!(out.status.success());
    let got2 = io::read_f32(&d.join("y2.npy")).unwrap();
    assert!(common::rel_err(&got2.data, &f64s(&t["output"].data)) > 1e-3);

    let t = export(d, "gru_2layer_bidir_batch_first", "");
    let out = recur(&[
        "run",
        "--model",
        &s(d.join("model.safetensors")),
        "--batch-first",
        "--input",
        &s(d.join("input.npy")),
        "--h0",
        &s(d.join("h0.npy")),
        "--output",
        &s(d.join("y.npy")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = io::read_f32(&d.join("y.npy")).unwrap();
    assert_eq!(got.shape, t["output"].shape);
    assert_close("batch-first gru", &got.data, &f64s(&t["output"].data), 1e-5);
}

/// Runs `recur` expecting failure: non-zero exit, one line on stderr naming `needle`, no panic.
fn expect_error(args: &[&str], needle: &str) {
    let out = recur(args);
    let err = String::from_utf8_lossy(&out.stderr);
    // Mesa's lavapipe prints "error: XDG_RUNTIME_DIR is invalid ..." on its own; not ours.
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("error") && !l.contains("XDG_RUNTIME_DIR"))
        .collect();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(
        lines[0].contains(needle),
        "{args:?}: expected {needle:?} in {:?}",
        lines[0]
    );
}

#[test]
fn run_should_fail_cleanly_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    export(d, "lstm_1layer", "");
    let model = s(d.join("model.safetensors"));
    let input = s(d.join("input.npy"));
    let y = s(d.join("y.npy"));
    // Missing files.
    expect_error(
        &[
            "run",
            "--model",
            "/nonexistent/m.safetensors",
            "--input",
            &input,
            "--output",
            &y,
        ],
        "nonexistent",
    );
    expect_error(
        &[
            "run",
            "--model",
            &model,
            "--input",
            "/nonexistent/x.npy",
            "--output",
            &y,
        ],
        "nonexistent",
    );
    // A corrupt model file.
    std::fs::write(
        d.join("bad.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":",
    )
    .unwrap();
    expect_error(
        &[
            "run",
            "--model",
            &s(d.join("bad.safetensors")),
            "--input",
            &input,
            "--output",
            &y,
        ],
        "bad.safetensors",
    );
    // A prefix that selects nothing.
    expect_error(
        &[
            "run", "--model", &model, "--prefix", "gru.", "--input", &input, "--output", &y,
        ],
        "gru.",
    );
    // A missing tensor.
    let (t, meta) = fixture("lstm_1layer");
    let partial: Vec<(String, HostTensor)> = t
        .iter()
        .filter(|(k, _)| {
            k.as_str() == "weight_ih_l0" || k.as_str() == "bias_ih_l0" || k.as_str() == "bias_hh_l0"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    io::save(&d.join("partial.safetensors"), &partial, &meta).unwrap();
    expect_error(
        &[
            "run",
            "--model",
            &s(d.join("partial.safetensors")),
            "--input",
            &input,
            "--output",
            &y,
        ],
        "weight_hh_l0",
    );
    // An input of the wrong width, an h0 of the wrong shape.
    io::write_f32(
        &d.join("wide.npy"),
        &HostTensor::new(vec![2, 3, 9], vec![0.0; 54]).unwrap(),
    )
    .unwrap();
    if has_gpu() {
        expect_error(
            &[
                "run",
                "--model",
                &model,
                "--input",
                &s(d.join("wide.npy")),
                "--output",
                &y,
            ],
            "shape",
        );
        expect_error(
            &[
                "run",
                "--model",
                &model,
                "--input",
                &input,
                "--h0",
                &s(d.join("wide.npy")),
                "--output",
                &y,
            ],
            "h0",
        );
    }
    // A .npy of another dtype (int32).
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let mut header = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend_from_slice(&[0u8; 8]);
    std::fs::write(d.join("int.npy"), npy).unwrap();
    expect_error(
        &[
            "run",
            "--model",
            &model,
            "--input",
            &s(d.join("int.npy")),
            "--output",
            &y,
        ],
        "i4",
    );
    // c0 for a GRU.
    export(d, "gru_1layer", "");
    expect_error(
        &[
            "run", "--model", &model, "--input", &input, "--c0", &input, "--output", &y,
        ],
        "cell state",
    );
}

/// One benchmark line of a 1-layer LSTM shape, as `recur bench --json` prints it.
fn bench_line(mode: &str, ms: f64) -> String {
    format!(
        r#"{{"engine":"recur","device":"dev","cell":"lstm","input":64,"hidden":128,"layers":1,"bidirectional":false,"seq":32,"batch":16,"mode":"{mode}","ms":{ms}}}"#
    )
}

#[test]
fn bench_compare_should_join_two_saved_outputs_without_a_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let new = s(d.join("new.jsonl"));
    let old = s(d.join("old.jsonl"));
    let lines = |l: &[String]| l.join("\n") + "\n";
    std::fs::write(
        &new,
        lines(&[bench_line("forward", 2.0), bench_line("train", 4.0)]),
    )
    .unwrap();
    // Another order, and a log line to skip.
    std::fs::write(
        &old,
        lines(&[
            "a log line".into(),
            bench_line("train", 16.0),
            bench_line("forward", 4.0),
        ]),
    )
    .unwrap();
    let out = recur(&["bench", "--compare", &new, "--against", &old]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("lstm I=64 H=128 L=1 T=32 B=16 train"),
        "{text}"
    );
    assert!(
        text.contains("2.00× faster") && text.contains("4.00× faster"),
        "{text}"
    );
    // sqrt(2 * 4) = 2.83
    assert!(
        text.contains("over 2 shapes: 2.83 (new is 2.83× faster)"),
        "{text}"
    );
    // A malformed line; a missing file (refused before any GPU work).
    let bad = s(d.join("bad.jsonl"));
    std::fs::write(
        &bad,
        lines(&[bench_line("train", 1.0), r#"{"cell": 3}"#.into()]),
    )
    .unwrap();
    expect_error(
        &["bench", "--compare", &new, "--against", &bad],
        "bad.jsonl line 2",
    );
    expect_error(
        &["bench", "--compare", "/nonexistent/peer.jsonl"],
        "/nonexistent/peer.jsonl",
    );
}

#[test]
fn bench_should_refuse_zero_repetitions() {
    expect_error(&["bench", "--reps", "0"], "--reps 0");
    expect_error(
        &["bench", "--only", "no such shape"],
        "no shape of suite cpu",
    );
}

#[test]
fn bench_compare_should_refuse_endless_inputs() {
    expect_error(
        &["bench", "--compare", "/dev/zero", "--against", "/dev/zero"],
        "/dev/zero",
    );
}

/// A 1-D integer `.npy` (`<i4` or `<i8`).
fn int_npy(path: &Path, values: &[i64], wide: bool) {
    let descr = if wide { "<i8" } else { "<i4" };
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}",
        values.len()
    );
    // Pad the header to a multiple of 64 bytes, newline last, as numpy does.
    let pad = (64 - (10 + dict.len() + 1) % 64) % 64;
    let header = format!("{dict}{}\n", " ".repeat(pad));
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((header.len() as u16).to_le_bytes());
    b.extend(header.as_bytes());
    for v in values {
        if wide {
            b.extend(v.to_le_bytes());
        } else {
            b.extend((*v as i32).to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn run_should_take_per_row_lengths() {
    let Some(gpu) = common::gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = export(d, "lstm_2layer_bidir", "");
    let x = &t["input"];
    let (seq, batch) = (x.shape[0], x.shape[1]);
    let lengths: Vec<i64> = (0..batch)
        .map(|r| 1 + (r * 2 + 1) as i64 % seq as i64)
        .collect();
    let run_with = |lengths_file: &Path, out: &str, extra: &[&str]| {
        let mut args = vec![
            "run".to_string(),
            "--model".into(),
            s(d.join("model.safetensors")),
            "--input".into(),
            s(d.join("input.npy")),
            "--lengths".into(),
            s(lengths_file.to_path_buf()),
            "--output".into(),
            s(d.join(out)),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = recur(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        io::read_f32(&d.join(out)).unwrap()
    };
    int_npy(&d.join("l64.npy"), &lengths, true);
    int_npy(&d.join("l32.npy"), &lengths, false);
    let y64 = run_with(&d.join("l64.npy"), "y64.npy", &[]);
    let y32 = run_with(
        &d.join("l32.npy"),
        "y32.npy",
        &[
            "--grad-output",
            &s(d.join("grad_output.npy")),
            "--grads",
            &s(d.join("g.st")),
        ],
    );
    // The library's packed forward on the same model and input.
    let rnn = recur::Rnn::load_safetensors(&gpu, &d.join("model.safetensors"), "", None).unwrap();
    let tx = gpu.tensor("x", &x.shape, &x.data).unwrap();
    let lens: Vec<usize> = lengths.iter().map(|&l| l as usize).collect();
    let want = gpu
        .read(&rnn.forward_packed(&gpu, &tx, &lens, None, None).unwrap().y)
        .unwrap();
    assert_eq!(y64.data, want, "int64 lengths");
    assert_eq!(y32.data, want, "int32 lengths, with backward");
    // Padded positions are zero, and so are their input gradients.
    let g = io::load(&d.join("g.st")).unwrap().0;
    let (f, i) = (y64.shape[2], x.shape[2]);
    for (r, &l) in lens.iter().enumerate() {
        for tt in l..seq {
            assert!(y64.data[(tt * batch + r) * f..][..f]
                .iter()
                .all(|&v| v == 0.0));
            assert!(g["input"].data[(tt * batch + r) * i..][..i]
                .iter()
                .all(|&v| v == 0.0));
        }
    }
    // Bad lengths: a one-line error each.
    int_npy(&d.join("zero.npy"), &vec![0; batch], true);
    int_npy(&d.join("long.npy"), &vec![seq as i64 + 1; batch], false);
    int_npy(&d.join("short.npy"), &[1], true);
    io::write_f32(
        &d.join("float.npy"),
        &HostTensor::new(vec![batch], vec![1.0; batch]).unwrap(),
    )
    .unwrap();
    for (file, needle) in [
        ("zero.npy", "is not in 1..="),
        ("long.npy", "is not in 1..="),
        ("short.npy", "lengths for a batch of"),
        ("float.npy", "<f4"),
    ] {
        expect_error(
            &[
                "run",
                "--model",
                &s(d.join("model.safetensors")),
                "--input",
                &s(d.join("input.npy")),
                "--lengths",
                &s(d.join(file)),
                "--output",
                &s(d.join("bad.npy")),
            ],
            needle,
        );
    }
}
