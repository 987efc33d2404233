//! Whole models against PyTorch: the fixtures in `tests/fixtures/` were made by
//! `scripts/make_fixtures.py` (torch on the CPU, float32). Each holds a state_dict, the input,
//! optional h0/c0, torch's output, hn, cn, a grad_output DY and torch's gradients of
//! L = sum(output * DY) for every parameter, the input, h0 and c0.
//!
//! Bounds (float32): ‖ours − torch‖ / ‖torch‖ < 1e-5 for outputs and final states, < 1e-4 for
//! gradients.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{assert_close, f64s, gpu};
use recur::io::{self, HostTensor};
use recur::rnn::state_dict::config_from_state_dict;
use recur::rnn::Rnn;
use recur::Gpu;

const CASES: [&str; 11] = [
    "rnn_tanh_2layer",
    "rnn_relu",
    "lstm_1layer",
    "lstm_2layer_bidir",
    "lstm_batch_first_nobias",
    "gru_1layer",
    "gru_2layer_bidir_batch_first",
    "rnn_tanh_bidir_nobias",
    "lstm_larger",
    "gru_larger",
    "lstm_proj_2layer_bidir",
];

fn get<'a>(t: &'a BTreeMap<String, HostTensor>, name: &str) -> &'a HostTensor {
    t.get(name)
        .unwrap_or_else(|| panic!("fixture lacks {name}"))
}

fn run_case(gpu: &Gpu, case: &str) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{case}.safetensors"));
    let (tensors, meta) = io::load(&path).unwrap();
    let (mut cfg, flat) = config_from_state_dict(&tensors, "", None, &meta).unwrap();
    cfg.batch_first = meta.get("batch_first").map(String::as_str) == Some("1");
    assert_eq!(
        meta.get("cell").map(String::as_str),
        Some(cfg.cell.name()),
        "{case}: inferred cell"
    );
    let rnn = Rnn::new(gpu, cfg.clone(), &flat).unwrap();
    let up = |name: &str| {
        let t = get(&tensors, name);
        gpu.tensor(name, &t.shape, &t.data).unwrap()
    };
    let x = up("input");
    let dy = up("grad_output");
    let h0 = tensors.contains_key("h0").then(|| up("h0"));
    let c0 = tensors.contains_key("c0").then(|| up("c0"));
    let (out, grads) = rnn
        .forward_backward(gpu, &x, h0.as_ref(), c0.as_ref(), &dy, None, None)
        .unwrap();
    let want = |name: &str| f64s(&get(&tensors, name).data);
    assert_close(
        &format!("{case}: output"),
        &gpu.read(&out.y).unwrap(),
        &want("output"),
        1e-5,
    );
    assert_close(
        &format!("{case}: hn"),
        &gpu.read(&out.hn).unwrap(),
        &want("hn"),
        1e-5,
    );
    if let Some(cn) = &out.cn {
        assert_close(
            &format!("{case}: cn"),
            &gpu.read(cn).unwrap(),
            &want("cn"),
            1e-5,
        );
    }
    let dparams = gpu.read(&rnn.grads).unwrap();
    for e in &rnn.layout.entries {
        assert_close(
            &format!("{case}: grad.{}", e.name),
            &dparams[e.range()],
            &want(&format!("grad.{}", e.name)),
            1e-4,
        );
    }
    assert_close(
        &format!("{case}: grad.input"),
        &gpu.read(&grads.dx).unwrap(),
        &want("grad.input"),
        1e-4,
    );
    if h0.is_some() {
        assert_close(
            &format!("{case}: grad.h0"),
            &gpu.read(&grads.dh0).unwrap(),
            &want("grad.h0"),
            1e-4,
        );
    }
    if let (Some(_), Some(dc0)) = (&c0, &grads.dc0) {
        assert_close(
            &format!("{case}: grad.c0"),
            &gpu.read(dc0).unwrap(),
            &want("grad.c0"),
            1e-4,
        );
    }
    // Inference agrees with the training forward.
    let inf = rnn.forward(gpu, &x, h0.as_ref(), c0.as_ref()).unwrap();
    assert_close(
        &format!("{case}: output (inference)"),
        &gpu.read(&inf.y).unwrap(),
        &want("output"),
        1e-5,
    );
}

#[test]
fn every_fixture_should_match_pytorch() {
    let Some(mut gpu) = gpu() else { return };
    // Both matmul variants: tiled (GPUs) and direct (CPU adapters).
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for case in CASES {
            run_case(&gpu, case);
        }
    }
}

#[test]
fn every_fixture_file_is_covered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".safetensors"))
                .map(String::from)
        })
        .collect();
    found.sort();
    let mut listed: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

/// A state_dict round trip through recur: load a fixture's parameters, save them, and the
/// file holds the same tensors under the same names.
#[test]
fn parameters_save_and_load_as_pytorch_state_dicts() {
    let Some(gpu) = gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    for case in [
        "lstm_proj_2layer_bidir",
        "gru_2layer_bidir_batch_first",
        "rnn_relu",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/{case}.safetensors"));
        let rnn = Rnn::load_safetensors(&gpu, &path, "", None).unwrap();
        let out = dir.path().join(format!("{case}.safetensors"));
        rnn.save_safetensors(&gpu, &out, "rnn.").unwrap();
        let (orig, _) = io::load(&path).unwrap();
        let (saved, meta) = io::load(&out).unwrap();
        assert_eq!(saved.len(), rnn.layout.entries.len());
        for e in &rnn.layout.entries {
            assert_eq!(
                saved[&format!("rnn.{}", e.name)],
                orig[&e.name],
                "{case}: {}",
                e.name
            );
        }
        let again = Rnn::load_safetensors(&gpu, &out, "rnn.", None).unwrap();
        assert_eq!(again.cfg, rnn.cfg);
        assert_eq!(meta.contains_key("nonlinearity"), case.starts_with("rnn"));
    }
}
