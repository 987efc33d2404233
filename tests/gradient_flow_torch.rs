//! Gradient-flow diagnostics against PyTorch: the fixtures in `tests/fixtures/gradient_flow/`
//! were made by `scripts/make_gradient_fixtures.py`, which unrolls `nn.RNNCell` / `LSTMCell`
//! / `GRUCell` step by step with `h_t.retain_grad()` on every state, and measures σ_max of
//! each `weight_hh` with `torch.linalg.svdvals`. Each norm of ‖∂L/∂h_t‖ and each σ_max must
//! be within 1e-4 of torch's, relative to itself (the norms span eleven orders of magnitude
//! in the σ_max = 0.7 case).

mod common;

use std::path::Path;

use common::gpu;
use recur::io;
use recur::rnn::state_dict::config_from_state_dict;
use recur::rnn::{GradFlowProbe, Rnn};
use recur::Recorder;

const CASES: [&str; 8] = [
    "rnn_tanh_sigma_0p7",
    "rnn_tanh_sigma_1p8",
    "rnn_tanh_sigma_1p0_every_step",
    "rnn_relu_2layer_bidir",
    "lstm_1layer",
    "lstm_2layer_bidir",
    "gru_1layer",
    "gru_2layer_bidir",
];

fn within(what: &str, got: f64, want: f64, tol: f64) {
    let err = (got - want).abs() / want.abs().max(1e-30);
    assert!(
        err <= tol,
        "{what}: got {got:e}, torch {want:e} (relative error {err:.2e} > {tol:.0e})"
    );
}

#[test]
fn gradient_flow_should_match_pytorch_retain_grad_and_svdvals() {
    let Some(mut gpu) = gpu() else { return };
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for case in CASES {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/fixtures/gradient_flow/{case}.safetensors"));
            let (tensors, meta) = io::load(&path).unwrap();
            let (cfg, flat) = config_from_state_dict(&tensors, "", None, &meta).unwrap();
            assert_eq!(meta.get("cell").map(String::as_str), Some(cfg.cell.name()));
            let rnn = Rnn::new(&gpu, cfg.clone(), &flat).unwrap();
            let x = &tensors["input"];
            let dy = &tensors["grad_output"];
            let seq = x.shape[0];
            let tx = gpu.tensor("x", &x.shape, &x.data).unwrap();
            let tdy = gpu.tensor("dy", &dy.shape, &dy.data).unwrap();
            let probe = GradFlowProbe::new(&gpu, &cfg, seq).unwrap();
            let mut rec = Recorder::new(&gpu);
            let (_, saved) = rnn.record_train(&mut rec, &tx, None, None).unwrap();
            rnn.record_backward_probed(&mut rec, &saved, &tdy, None, None, false, &probe)
                .unwrap();
            rec.run().unwrap();
            let flow = probe.read(&gpu).unwrap();
            let want = &tensors["grad_norms"];
            let ld = cfg.num_layers * cfg.num_directions();
            assert_eq!(want.shape, [ld, seq], "{case}: grad_norms shape");
            for (i, (g, w)) in flow.dh_norms.iter().zip(&want.data).enumerate() {
                let what = format!(
                    "{case} direct={direct}: ‖dL/dh‖ slot {} t {}",
                    i / seq,
                    i % seq
                );
                within(&what, f64::from(*g), f64::from(*w), 1e-4);
            }
            let sig = rnn.sigma_max_hh(&gpu).unwrap();
            let want = &tensors["sigma_max"];
            assert_eq!(sig.len(), want.data.len(), "{case}: sigma_max count");
            for (i, (g, w)) in sig.iter().zip(&want.data).enumerate() {
                within(&format!("{case}: sigma_max {i}"), *g, f64::from(*w), 1e-4);
            }
        }
    }
}
