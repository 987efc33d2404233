//! `recur run` under hostile input (issue 10): every output path is checked before any work,
//! the results are written together or not at all, non-finite weights are refused like
//! non-finite inputs, and the same run writes the same bytes.

mod common;

use common::cli::recur;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use recur::io::{self, HostTensor};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A one-line error mentioning every needle, a non-zero exit, no panic.
fn one_line_error(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR") && !l.trim().is_empty())
        .collect();
    assert!(!o.status.success(), "succeeded: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{:?} lacks {n:?}", lines[0]);
    }
}

/// The 1-layer LSTM fixture as `model.safetensors` (with `edit` applied to its tensors) and
/// its input, h0, c0 and grad_output as .npy files in `dir`.
fn export(dir: &Path, edit: impl Fn(&mut BTreeMap<String, HostTensor>)) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lstm_1layer.safetensors");
    let (t, meta) = io::load(&p).unwrap();
    let mut model: BTreeMap<String, HostTensor> = t
        .iter()
        .filter(|(k, _)| k.starts_with("weight_") || k.starts_with("bias_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    edit(&mut model);
    let model: Vec<(String, HostTensor)> = model.into_iter().collect();
    let path = dir.join("model.safetensors");
    io::save(&path, &model, &meta).unwrap();
    for name in ["input", "h0", "c0", "grad_output"] {
        io::write_f32(&dir.join(format!("{name}.npy")), &t[name]).unwrap();
    }
    path
}

/// `recur run` on the exported files, with `outputs` as (flag, path) pairs.
fn run(dir: &Path, outputs: &[(&str, &Path)]) -> Output {
    let mut args: Vec<String> = vec!["run".into()];
    for (flag, name) in [
        ("--model", "model.safetensors"),
        ("--input", "input.npy"),
        ("--h0", "h0.npy"),
        ("--c0", "c0.npy"),
    ] {
        args.extend([flag.to_string(), s(&dir.join(name))]);
    }
    for (flag, p) in outputs {
        args.extend([flag.to_string(), s(p)]);
        if *flag == "--grads" {
            args.extend(["--grad-output".into(), s(&dir.join("grad_output.npy"))]);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    recur(&args)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Case 6 (and 2, 4 for `run`): an output that cannot be written fails before any work, so
/// no other output is written; an output naming an input or another output is refused.
#[test]
fn run_checks_every_output_before_writing_any() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    export(d, |_| {});
    let before = listing(d);
    let y = d.join("y.npy");
    let folder = d.join("hn_is_a_folder");
    std::fs::create_dir(&folder).unwrap();
    one_line_error(
        &run(d, &[("--output", &y), ("--hn", &folder)]),
        &["--hn", "is a folder"],
    );
    one_line_error(
        &run(d, &[("--output", &y), ("--cn", &d.join("missing/cn.npy"))]),
        &["--cn", "does not exist"],
    );
    one_line_error(
        &run(d, &[("--output", &d.join("input.npy"))]),
        &["--output", "--input"],
    );
    one_line_error(
        &run(
            d,
            &[("--output", &y), ("--grads", &d.join("model.safetensors"))],
        ),
        &["--grads", "--model"],
    );
    one_line_error(
        &run(d, &[("--output", &y), ("--hn", &y)]),
        &["--hn", "--output"],
    );
    std::fs::remove_dir(&folder).unwrap();
    assert_eq!(listing(d), before, "a file was written or left behind");
}

/// Case 3: a NaN (or infinity) in the weights is refused, naming the tensor, the same way a
/// NaN in the input is (PyTorch would give NaN outputs, not finite ones).
#[test]
fn run_refuses_non_finite_weights_like_non_finite_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let y = d.join("y.npy");
    for bad in [f32::NAN, f32::INFINITY] {
        export(d, |m| m.get_mut("weight_hh_l0").unwrap().data[5] = bad);
        one_line_error(
            &run(d, &[("--output", &y)]),
            &["--model", "weight_hh_l0", "element 5", &bad.to_string()],
        );
        assert!(!y.exists());
    }
    export(d, |_| {});
    let mut x = io::read_f32(&d.join("input.npy")).unwrap();
    x.data[2] = f32::NAN;
    io::write_f32(&d.join("input.npy"), &x).unwrap();
    one_line_error(
        &run(d, &[("--output", &y)]),
        &["--input", "element 2", "NaN"],
    );
    assert!(!y.exists());
}

/// Cases 6 and 9: a full run writes every output, and the same run writes the same bytes.
#[test]
fn run_writes_all_outputs_and_the_same_bytes_twice() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    export(d, |_| {});
    let outs = |tag: &str| {
        ["y", "hn", "cn"]
            .iter()
            .map(|n| d.join(format!("{n}_{tag}.npy")))
            .chain([d.join(format!("grads_{tag}.safetensors"))])
            .collect::<Vec<_>>()
    };
    for tag in ["a", "b"] {
        let o = outs(tag);
        let out = run(
            d,
            &[
                ("--output", &o[0]),
                ("--hn", &o[1]),
                ("--cn", &o[2]),
                ("--grads", &o[3]),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (a, b) in outs("a").iter().zip(outs("b")) {
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{a:?}"
        );
    }
    assert!(
        listing(d).iter().all(|n| !n.starts_with('.')),
        "{:?}",
        listing(d)
    );
}
