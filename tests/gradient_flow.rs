//! Gradient-flow diagnostics: `‖∂L/∂h_t‖` per step, layer and direction
//! ([`Rnn::record_backward_probed`], `shaders/grad_flow.wgsl`) against the f64 reference
//! (`reference::rnn_backward`'s `dh_norms`) on odd shapes in every kernel family, and the
//! trainer's [`Trainer::step_with_gradient_flow`]. The PyTorch fixtures are in
//! `tests/gradient_flow_torch.rs`.

mod common;

use common::layout::caller_io;
use common::{f64s, gpu};
use recur::rng::Rng;
use recur::rnn::{GradFlowProbe, Rnn};
use recur::{reference, CellKind, Gpu, ParamLayout, Recorder, RnnConfig};

/// Each norm within `tol` of the reference, relative to itself (the norms span orders of
/// magnitude when gradients vanish, so a norm over the whole vector would hide the small ones).
fn assert_norms(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(*g) - w).abs() / w.abs().max(1e-30);
        assert!(
            err <= tol,
            "{what}: norm {i}: got {g}, expected {w} (relative error {err:.2e} > {tol:.0e})"
        );
    }
}

fn check(gpu: &Gpu, cfg: &RnnConfig, seq: usize, batch: usize, with_dhn: bool, seed: u64) {
    let name = format!(
        "{cfg:?} T={seq} B={batch} dhn={with_dhn} direct={}",
        gpu.prefers_direct_kernels()
    );
    let mut rng = Rng::new(seed);
    let layout = ParamLayout::new(cfg);
    let k = 1.0 / (cfg.hidden_size as f32).sqrt();
    let params = rng.vec_uniform_f32(layout.total, -k, k);
    let (h, d) = (cfg.out_hidden(), cfg.num_directions());
    let state = [cfg.num_layers * d, batch, h];
    let x_tm = rng.vec_uniform_f32(seq * batch * cfg.input_size, -1.0, 1.0);
    let dy_tm = rng.vec_uniform_f32(seq * batch * d * h, -1.0, 1.0);
    let dhn = rng.vec_uniform_f32(state.iter().product(), -1.0, 1.0);

    let rnn = Rnn::new(gpu, cfg.clone(), &params).unwrap();
    let (x_in, x_shape, dy_in, y_shape) = caller_io(cfg, seq, batch, d * h, &x_tm, &dy_tm);
    let x = gpu.tensor("x", &x_shape, &x_in).unwrap();
    let dy = gpu.tensor("dy", &y_shape, &dy_in).unwrap();
    let tdhn = gpu.tensor("dhn", &state, &dhn).unwrap();
    let probe = GradFlowProbe::new(gpu, cfg, seq).unwrap();
    let mut rec = Recorder::new(gpu);
    let (_, saved) = rnn.record_train(&mut rec, &x, None, None).unwrap();
    rnn.record_backward_probed(
        &mut rec,
        &saved,
        &dy,
        with_dhn.then_some(&tdhn),
        None,
        false,
        &probe,
    )
    .unwrap();
    rec.run().unwrap();
    let flow = probe.read(gpu).unwrap();

    let p64 = f64s(&params);
    let x64 = f64s(&x_tm);
    let fwd = reference::rnn_forward(cfg, &p64, &x64, seq, batch, None, None);
    let dhn64 = f64s(&dhn);
    let g = reference::rnn_backward(
        cfg,
        &p64,
        &x64,
        seq,
        batch,
        None,
        None,
        &fwd,
        &f64s(&dy_tm),
        with_dhn.then_some(&dhn64[..]),
        None,
    );
    assert_norms(&name, &flow.dh_norms, &g.dh_norms, 1e-4);
    // The probed backward's parameter gradients are the plain backward's.
    let want = gpu.read(&rnn.grads).unwrap();
    let (_, _) = rnn
        .forward_backward(gpu, &x, None, None, &dy, with_dhn.then_some(&tdhn), None)
        .unwrap();
    assert_eq!(want, gpu.read(&rnn.grads).unwrap(), "{name}: grads changed");
}

fn cases(cell: CellKind) -> Vec<(RnnConfig, usize, usize, bool)> {
    vec![
        // One step, one unit.
        (RnnConfig::new(cell, 1, 1), 1, 1, true),
        // Odd sizes below one tile, dhn at the first backward step.
        (RnnConfig::new(cell, 5, 7), 6, 3, true),
        // Two layers, bidirectional: the reverse direction's next step is t-1.
        (
            RnnConfig::new(cell, 4, 5).layers(2).bidirectional(true),
            5,
            2,
            false,
        ),
        // Batch-first, no bias, batch x hidden past one 256-thread reduction.
        (
            RnnConfig::new(cell, 3, 19).batch_first(true).bias(false),
            4,
            17,
            true,
        ),
        // H a multiple of 4 (the vec4 kernels, whole sequence in one dispatch), bidirectional.
        (RnnConfig::new(cell, 3, 8).bidirectional(true), 9, 5, true),
        // Steps too large for one workgroup: the vec4 kernels one dispatch a step.
        (RnnConfig::new(cell, 5, 132), 3, 9, false),
    ]
}

fn check_cell(cell: CellKind, seed: u64) {
    let Some(mut gpu) = gpu() else { return };
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for (i, (cfg, seq, batch, dhn)) in cases(cell).iter().enumerate() {
            check(&gpu, cfg, *seq, *batch, *dhn, seed + i as u64);
        }
    }
}

#[test]
fn rnn_tanh_grad_flow_should_match_reference() {
    check_cell(CellKind::RnnTanh, 100);
}

#[test]
fn rnn_relu_grad_flow_should_match_reference() {
    check_cell(CellKind::RnnRelu, 200);
}

#[test]
fn lstm_grad_flow_should_match_reference() {
    check_cell(CellKind::Lstm, 300);
}

#[test]
fn gru_grad_flow_should_match_reference() {
    check_cell(CellKind::Gru, 400);
}

#[test]
fn lstm_projection_grad_flow_should_match_reference() {
    let Some(mut gpu) = gpu() else { return };
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        let cfg = RnnConfig::new(CellKind::Lstm, 4, 7)
            .proj_size(3)
            .layers(2)
            .bidirectional(true);
        check(&gpu, &cfg, 5, 3, true, 500);
        let cfg = RnnConfig::new(CellKind::Lstm, 5, 21).proj_size(17);
        check(&gpu, &cfg, 4, 18, false, 501);
    }
}

#[test]
fn a_probe_of_another_shape_is_an_error() {
    let Some(gpu) = gpu() else { return };
    let cfg = RnnConfig::new(CellKind::Gru, 2, 3);
    let rnn = Rnn::new(&gpu, cfg.clone(), &vec![0.1; ParamLayout::new(&cfg).total]).unwrap();
    let x = gpu.tensor("x", &[4, 2, 2], &[0.5; 16]).unwrap();
    let dy = gpu.tensor("dy", &[4, 2, 3], &[1.0; 24]).unwrap();
    let probe = GradFlowProbe::new(&gpu, &cfg, 5).unwrap();
    let mut rec = Recorder::new(&gpu);
    let (_, saved) = rnn.record_train(&mut rec, &x, None, None).unwrap();
    let err = rnn
        .record_backward_probed(&mut rec, &saved, &dy, None, None, false, &probe)
        .unwrap_err();
    assert!(matches!(err, recur::Error::InvalidConfig(_)), "{err}");
    assert!(GradFlowProbe::new(&gpu, &cfg, 0).is_err());
    // Packed (variable-length) batches are refused, not measured wrongly.
    let probe = GradFlowProbe::new(&gpu, &cfg, 4).unwrap();
    let mut rec = Recorder::new(&gpu);
    let (_, saved) = rnn
        .record_train_packed(&mut rec, &x, &[4, 2], None, None)
        .unwrap();
    let err = rnn
        .record_backward_probed(&mut rec, &saved, &dy, None, None, false, &probe)
        .unwrap_err();
    assert!(matches!(err, recur::Error::InvalidConfig(_)), "{err}");
}

#[test]
fn trainer_step_with_gradient_flow_measures_and_trains_as_step_does() {
    use recur::nn::{SeqInput, SeqModel, SeqModelConfig};
    use recur::train::{Batch, Targets, TrainConfig, TrainMode, Trainer};
    let Some(gpu) = gpu() else { return };
    let cfg =
        SeqModelConfig::new(None, RnnConfig::new(CellKind::Lstm, 2, 6).layers(2), 1).last_step();
    let make = || {
        let model = SeqModel::init(&gpu, cfg.clone(), &mut Rng::new(5)).unwrap();
        Trainer::new(&gpu, model, TrainConfig::default(), TrainMode::Independent).unwrap()
    };
    let (mut plain, mut probed) = (make(), make());
    let mut rng = Rng::new(9);
    for (seq, batch) in [(7, 3), (4, 2)] {
        let x = gpu
            .tensor(
                "x",
                &[seq, batch, 2],
                &rng.vec_uniform_f32(seq * batch * 2, -1.0, 1.0),
            )
            .unwrap();
        let y = gpu
            .tensor("y", &[batch, 1], &rng.vec_uniform_f32(batch, -1.0, 1.0))
            .unwrap();
        let mb = [
            Batch {
                input: SeqInput::Dense(&x),
                targets: Targets::Dense(&y),
            },
            Batch {
                input: SeqInput::Dense(&x),
                targets: Targets::Dense(&y),
            },
        ];
        plain.step(&gpu, &mb).unwrap();
        let flows = probed.step_with_gradient_flow(&gpu, &mb).unwrap();
        assert_eq!(flows.len(), 2);
        for f in &flows {
            assert_eq!((f.num_layers, f.num_directions, f.seq_len), (2, 1, seq));
            assert!(
                f.dh_norms.iter().all(|v| v.is_finite() && *v > 0.0),
                "{f:?}"
            );
            // Only the last step is read out: the top layer's gradient enters at t = T-1.
            let top = f.norms(1, 0);
            assert!(top[seq - 1] > 0.0 && f.ratio_first_last(1, 0).is_finite());
        }
        // Same micro-batch twice: the same flow.
        assert_eq!(flows[0], flows[1]);
    }
    plain.wait(&gpu).unwrap();
    let a = gpu.read(&plain.model.rnn.params).unwrap();
    let b = gpu.read(&probed.model.rnn.params).unwrap();
    assert_eq!(a, b, "measuring the flow changed the training");
    let s = probed.model.rnn.sigma_max_hh(&gpu).unwrap();
    assert_eq!(s.len(), 2);
    assert!(s.iter().all(|v| v.is_finite() && *v > 0.0));
}

/// Norms of gradients whose squares overflow f32 (1e25 per element: the square is 1e50) are
/// still right: the kernel scales by the largest element before summing squares.
#[test]
fn huge_gradients_do_not_overflow_the_norm() {
    let Some(gpu) = gpu() else { return };
    let cfg = RnnConfig::new(CellKind::Lstm, 3, 5);
    let (seq, batch) = (4, 3);
    let mut rng = Rng::new(77);
    let params = rng.vec_uniform_f32(ParamLayout::new(&cfg).total, -0.4, 0.4);
    let x_tm = rng.vec_uniform_f32(seq * batch * 3, -1.0, 1.0);
    let dy_tm: Vec<f32> = rng
        .vec_uniform_f32(seq * batch * 5, -1.0, 1.0)
        .iter()
        .map(|v| v * 1e25)
        .collect();
    let rnn = Rnn::new(&gpu, cfg.clone(), &params).unwrap();
    let x = gpu.tensor("x", &[seq, batch, 3], &x_tm).unwrap();
    let dy = gpu.tensor("dy", &[seq, batch, 5], &dy_tm).unwrap();
    let probe = GradFlowProbe::new(&gpu, &cfg, seq).unwrap();
    let mut rec = Recorder::new(&gpu);
    let (_, saved) = rnn.record_train(&mut rec, &x, None, None).unwrap();
    rnn.record_backward_probed(&mut rec, &saved, &dy, None, None, false, &probe)
        .unwrap();
    rec.run().unwrap();
    let flow = probe.read(&gpu).unwrap();
    let (p64, x64) = (f64s(&params), f64s(&x_tm));
    let fwd = reference::rnn_forward(&cfg, &p64, &x64, seq, batch, None, None);
    let g = reference::rnn_backward(
        &cfg,
        &p64,
        &x64,
        seq,
        batch,
        None,
        None,
        &fwd,
        &f64s(&dy_tm),
        None,
        None,
    );
    assert!(g.dh_norms.iter().all(|v| *v > 1e25));
    assert_norms("huge", &flow.dh_norms, &g.dh_norms, 1e-4);
}
