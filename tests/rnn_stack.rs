//! Whole stacks on the GPU (the fused step kernels inside the sequence scheduler) against the
//! f64 CPU reference: forward outputs and final states, and every gradient, for each cell
//! kind, stacked, bidirectional, batch-first, with and without bias and initial states.
//! The stacks with f16 weights are in tests/f16_weights.rs.

mod common;

use common::layout::{caller_io, swap01};
use common::{assert_close, bits, f64s, gpu};
use recur::kernels::matmul::{transposes_a, Gemm, MatRef};
use recur::rng::Rng;
use recur::rnn::{Rnn, StateGrads};
use recur::{reference, CellKind, Gpu, ParamLayout, Recorder, RnnConfig};

struct Case {
    cfg: RnnConfig,
    seq: usize,
    batch: usize,
    with_state: bool,
}

fn check(gpu: &Gpu, case: &Case, seed: u64) {
    let Case {
        cfg,
        seq,
        batch,
        with_state,
    } = case;
    let (seq, batch) = (*seq, *batch);
    let name = format!(
        "{:?} T={seq} B={batch} state={with_state} direct={}",
        cfg,
        gpu.prefers_direct_kernels()
    );
    let mut rng = Rng::new(seed);
    let layout = ParamLayout::new(cfg);
    let k = 1.0 / (cfg.hidden_size as f32).sqrt();
    let params = rng.vec_uniform_f32(layout.total, -k, k);
    // h is P wide with an LSTM projection (out_hidden), c is H wide.
    let (h, d) = (cfg.out_hidden(), cfg.num_directions());
    let state = [cfg.num_layers * d, batch, h];
    let c_state = [cfg.num_layers * d, batch, cfg.hidden_size];
    let n_state = state.iter().product();
    let n_cstate = c_state.iter().product();
    let x_tm = rng.vec_uniform_f32(seq * batch * cfg.input_size, -1.0, 1.0);
    let h0 = rng.vec_uniform_f32(n_state, -0.5, 0.5);
    let c0 = rng.vec_uniform_f32(n_cstate, -0.5, 0.5);
    let dy_tm = rng.vec_uniform_f32(seq * batch * d * h, -1.0, 1.0);
    let dhn = rng.vec_uniform_f32(n_state, -1.0, 1.0);
    let dcn = rng.vec_uniform_f32(n_cstate, -1.0, 1.0);
    let lstm = cfg.cell == CellKind::Lstm;

    let rnn = Rnn::new(gpu, cfg.clone(), &params).unwrap();
    let (x_in, x_shape, dy_in, y_shape) = caller_io(cfg, seq, batch, d * h, &x_tm, &dy_tm);
    let x = gpu.tensor("x", &x_shape, &x_in).unwrap();
    let dy = gpu.tensor("dy", &y_shape, &dy_in).unwrap();
    let th0 = gpu.tensor("h0", &state, &h0).unwrap();
    let tc0 = gpu.tensor("c0", &c_state, &c0).unwrap();
    let tdhn = gpu.tensor("dhn", &state, &dhn).unwrap();
    let tdcn = gpu.tensor("dcn", &c_state, &dcn).unwrap();
    let h0_opt = with_state.then_some(&th0);
    let c0_opt = (*with_state && lstm).then_some(&tc0);

    let r_h0 = with_state.then(|| f64s(&h0));
    let r_c0 = (*with_state && lstm).then(|| f64s(&c0));
    let p64 = f64s(&params);
    let x64 = f64s(&x_tm);
    let fwd = reference::rnn_forward(
        cfg,
        &p64,
        &x64,
        seq,
        batch,
        r_h0.as_deref(),
        r_c0.as_deref(),
    );

    // Inference path.
    let out = rnn.forward(gpu, &x, h0_opt, c0_opt).unwrap();
    let mut y = gpu.read(&out.y).unwrap();
    if cfg.batch_first {
        y = swap01(&y, batch, seq, d * h);
    }
    assert_close(&format!("{name}: y (inference)"), &y, &fwd.y, 1e-5);
    assert_close(
        &format!("{name}: hn (inference)"),
        &gpu.read(&out.hn).unwrap(),
        &fwd.hn,
        1e-5,
    );
    if let (Some(cn), Some(want)) = (&out.cn, &fwd.cn) {
        assert_close(
            &format!("{name}: cn (inference)"),
            &gpu.read(cn).unwrap(),
            want,
            1e-5,
        );
    }

    // Training path: forward + backward in one submission.
    let dcn_opt = lstm.then_some(&tdcn);
    let (out, grads) = rnn
        .forward_backward(gpu, &x, h0_opt, c0_opt, &dy, Some(&tdhn), dcn_opt)
        .unwrap();
    let mut y = gpu.read(&out.y).unwrap();
    if cfg.batch_first {
        y = swap01(&y, batch, seq, d * h);
    }
    assert_close(&format!("{name}: y (train)"), &y, &fwd.y, 1e-5);
    assert_close(
        &format!("{name}: hn (train)"),
        &gpu.read(&out.hn).unwrap(),
        &fwd.hn,
        1e-5,
    );
    let r_dcn = lstm.then(|| f64s(&dcn));
    let g = reference::rnn_backward(
        cfg,
        &p64,
        &x64,
        seq,
        batch,
        r_h0.as_deref(),
        r_c0.as_deref(),
        &fwd,
        &f64s(&dy_tm),
        Some(&f64s(&dhn)),
        r_dcn.as_deref(),
    );
    let dparams = gpu.read(&rnn.grads).unwrap();
    for e in &layout.entries {
        assert_close(
            &format!("{name}: grad {}", e.name),
            &dparams[e.range()],
            &g.dparams[e.range()],
            1e-4,
        );
    }
    let mut dx = gpu.read(&grads.dx).unwrap();
    if cfg.batch_first {
        dx = swap01(&dx, batch, seq, cfg.input_size);
    }
    assert_close(&format!("{name}: dx"), &dx, &g.dx, 1e-4);
    assert_close(
        &format!("{name}: dh0"),
        &gpu.read(&grads.dh0).unwrap(),
        &g.dh0,
        1e-4,
    );
    if let (Some(dc0), Some(want)) = (&grads.dc0, &g.dc0) {
        assert_close(&format!("{name}: dc0"), &gpu.read(dc0).unwrap(), want, 1e-4);
    }

    // The parameters-only backward (x needs no gradient): the same gradients bit for bit,
    // in fewer dispatches (no dX GEMM of the first layer).
    let dispatches = |weights_only: bool| {
        let mut rec = Recorder::new(gpu);
        let (_, saved) = rnn.record_train(&mut rec, &x, h0_opt, c0_opt).unwrap();
        let before = rec.dispatch_count();
        let state = if weights_only {
            rnn.record_weight_backward(&mut rec, &saved, &dy, Some(&tdhn), dcn_opt, false)
                .unwrap()
        } else {
            let g = rnn
                .record_backward(&mut rec, &saved, &dy, Some(&tdhn), dcn_opt, false)
                .unwrap();
            StateGrads {
                dh0: g.dh0,
                dc0: g.dc0,
            }
        };
        let n = rec.dispatch_count() - before;
        rec.run().unwrap();
        (n, state)
    };
    let (n_full, _) = dispatches(false);
    let (n_weights, state) = dispatches(true);
    assert!(
        n_weights < n_full,
        "{name}: {n_weights} dispatches, {n_full} with dX"
    );
    assert_eq!(
        bits(&gpu.read(&rnn.grads).unwrap()),
        bits(&dparams),
        "{name}: parameter gradients without dX"
    );
    assert_eq!(
        bits(&gpu.read(&state.dh0).unwrap()),
        bits(&gpu.read(&grads.dh0).unwrap()),
        "{name}: dh0 without dX"
    );
    assert_eq!(state.dc0.is_some(), grads.dc0.is_some(), "{name}: dc0");
    if let (Some(a), Some(b)) = (&state.dc0, &grads.dc0) {
        assert_eq!(
            bits(&gpu.read(a).unwrap()),
            bits(&gpu.read(b).unwrap()),
            "{name}: dc0 without dX"
        );
    }
}

fn cases(cell: CellKind) -> Vec<Case> {
    vec![
        // One step, one unit: the smallest shape.
        Case {
            cfg: RnnConfig::new(cell, 1, 1),
            seq: 1,
            batch: 1,
            with_state: true,
        },
        // Odd sizes below one tile.
        Case {
            cfg: RnnConfig::new(cell, 5, 7),
            seq: 6,
            batch: 3,
            with_state: true,
        },
        // Two layers, bidirectional, no initial state.
        Case {
            cfg: RnnConfig::new(cell, 4, 5).layers(2).bidirectional(true),
            seq: 5,
            batch: 2,
            with_state: false,
        },
        // Batch-first, no bias, with state.
        Case {
            cfg: RnnConfig::new(cell, 3, 6).batch_first(true).bias(false),
            seq: 4,
            batch: 5,
            with_state: true,
        },
        // Hidden and batch past one 16-wide tile, bidirectional batch-first stack.
        Case {
            cfg: RnnConfig::new(cell, 9, 19)
                .layers(2)
                .bidirectional(true)
                .batch_first(true),
            seq: 3,
            batch: 17,
            with_state: true,
        },
        // H a multiple of 4: the vec4 step kernels on CPU adapters (StepFamily::Vec4), with
        // a batch that is not a multiple of their 4 rows; an odd input (scalar input GEMM)
        // under a 16-wide second layer (vec4 GEMMs).
        Case {
            cfg: RnnConfig::new(cell, 3, 8).layers(2).bidirectional(true),
            seq: 5,
            batch: 5,
            with_state: true,
        },
        // Steps too large for one workgroup (33 x 3 blocks of 4 units x 4 rows): the vec4
        // kernels one dispatch a step; the cases above and below run every step in one
        // dispatch (step_vec4::whole_sequence).
        Case {
            cfg: RnnConfig::new(cell, 5, 132).bidirectional(true),
            seq: 3,
            batch: 9,
            with_state: true,
        },
        // The one-row build of the vec4 kernels, one dispatch a step (B=1, steps over
        // step_vec4's arithmetic limit for one workgroup, every cell: 192² > 2^15).
        Case {
            cfg: RnnConfig::new(cell, 6, 192).layers(2),
            seq: 3,
            batch: 1,
            with_state: false,
        },
        // 16 steps and more of small steps: W_hh resident (step_resident.rs) on adapters
        // with 8-lane subgroups, the batch split over workgroups, both directions.
        Case {
            cfg: RnnConfig::new(cell, 6, 20).layers(2).bidirectional(true),
            seq: 17,
            batch: 3,
            with_state: true,
        },
        // The one-row vec4 kernels at batch 1 without bias, batch-first, the whole sequence
        // in one workgroup.
        Case {
            cfg: RnnConfig::new(cell, 12, 36).bias(false).batch_first(true),
            seq: 4,
            batch: 1,
            with_state: true,
        },
    ]
}

#[test]
fn rnn_tanh_stack_should_match_reference() {
    let Some(mut gpu) = gpu() else { return };
    // Both kernel families: tiled through workgroup memory (GPUs) and direct (CPU adapters).
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for (i, c) in cases(CellKind::RnnTanh).iter().enumerate() {
            check(&gpu, c, 100 + i as u64);
        }
    }
}

#[test]
fn rnn_relu_stack_should_match_reference() {
    let Some(mut gpu) = gpu() else { return };
    // Both kernel families: tiled through workgroup memory (GPUs) and direct (CPU adapters).
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for (i, c) in cases(CellKind::RnnRelu).iter().enumerate() {
            check(&gpu, c, 200 + i as u64);
        }
    }
}

#[test]
fn lstm_stack_should_match_reference() {
    let Some(mut gpu) = gpu() else { return };
    // Both kernel families: tiled through workgroup memory (GPUs) and direct (CPU adapters).
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for (i, c) in cases(CellKind::Lstm).iter().enumerate() {
            check(&gpu, c, 300 + i as u64);
        }
    }
}

#[test]
fn lstm_with_projection_should_match_reference() {
    let Some(mut gpu) = gpu() else { return };
    let cases = [
        // P = 1 of H = 2, one step.
        Case {
            cfg: RnnConfig::new(CellKind::Lstm, 3, 2).proj_size(1),
            seq: 1,
            batch: 1,
            with_state: true,
        },
        // Stacked, bidirectional: layer 1 reads D*P features.
        Case {
            cfg: RnnConfig::new(CellKind::Lstm, 4, 7)
                .proj_size(3)
                .layers(2)
                .bidirectional(true),
            seq: 5,
            batch: 3,
            with_state: true,
        },
        // Past one tile in H, P and B; batch-first, no bias, zero state.
        Case {
            cfg: RnnConfig::new(CellKind::Lstm, 5, 21)
                .proj_size(17)
                .batch_first(true)
                .bias(false),
            seq: 4,
            batch: 18,
            with_state: false,
        },
    ];
    // Both kernel families: tiled through workgroup memory (GPUs) and direct (CPU adapters).
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for (i, c) in cases.iter().enumerate() {
            check(&gpu, c, 500 + i as u64);
        }
    }
}

#[test]
fn gru_stack_should_match_reference() {
    let Some(mut gpu) = gpu() else { return };
    // Both kernel families: tiled through workgroup memory (GPUs) and direct (CPU adapters).
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for (i, c) in cases(CellKind::Gru).iter().enumerate() {
            check(&gpu, c, 400 + i as u64);
        }
    }
}

/// Stacks whose gate gradient dG (4H or 3H x T·B) is large enough that the weight gradients
/// read a transposed copy of it on CPU adapters with 8-lane subgroups
/// (`matmul::transposes_a`): an LSTM's dW_ih and dW_hh share one copy of dG, a GRU's read
/// two gradients (dGx and dGh) and copy each.
#[test]
fn stacks_with_large_gate_gradients_should_match_reference() {
    let Some(mut gpu) = gpu() else { return };
    gpu.set_direct_kernels(true);
    let (seq, batch) = (32, 176);
    for (i, cell) in [CellKind::Lstm, CellKind::Gru].into_iter().enumerate() {
        let cfg = RnnConfig::new(cell, 12, 64).layers(2);
        // dW_hh += dGᵀ·H_prev as the backward records it: copied where the adapter's
        // subgroups are 8 lanes (lavapipe, CI's adapter), read in place elsewhere.
        let gh = cfg.gate_rows();
        let dg = gpu.zeros("dg", &[seq * batch, gh]).unwrap();
        let hs = gpu.zeros("hs", &[seq + 1, batch, 64]).unwrap();
        let dw = gpu.zeros("dw", &[gh, 64]).unwrap();
        let dw_hh = Gemm {
            m: gh,
            n: 64,
            k: seq * batch,
            a: MatRef::new(&dg.buffer, 0, gh),
            trans_a: true,
            b: MatRef::new(&hs.buffer, 0, 64),
            trans_b: false,
            bias: None,
            c: MatRef::new(&dw.buffer, 0, 64),
            accumulate: true,
        };
        assert_eq!(
            transposes_a(&gpu, &dw_hh),
            gpu.shares_subgroup_loads(),
            "{cell:?}"
        );
        if common::is_lavapipe(&gpu) {
            assert!(transposes_a(&gpu, &dw_hh));
        }
        let case = Case {
            cfg,
            seq,
            batch,
            with_state: true,
        };
        check(&gpu, &case, 600 + i as u64);
    }
}
