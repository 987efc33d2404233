//! Whole stacks on the GPU (the fused step kernels inside the sequence scheduler) against the
//! f64 CPU reference: forward outputs and final states, and every gradient, for each cell
//! kind, stacked, bidirectional, batch-first, with and without bias and initial states.

mod common;

use common::{assert_close, f64s, gpu};
use recur::rng::Rng;
use recur::rnn::Rnn;
use recur::{reference, CellKind, Gpu, ParamLayout, RnnConfig, Tensor};

/// `[d0, d1, f]` -> `[d1, d0, f]` on the host.
fn swap01(v: &[f32], d0: usize, d1: usize, f: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for i in 0..d0 {
        for j in 0..d1 {
            out[(j * d0 + i) * f..(j * d0 + i + 1) * f]
                .copy_from_slice(&v[(i * d1 + j) * f..(i * d1 + j + 1) * f]);
        }
    }
    out
}

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
    let (x_in, x_shape, dy_in, y_shape) = if cfg.batch_first {
        (
            swap01(&x_tm, seq, batch, cfg.input_size),
            [batch, seq, cfg.input_size],
            swap01(&dy_tm, seq, batch, d * h),
            [batch, seq, d * h],
        )
    } else {
        (
            x_tm.clone(),
            [seq, batch, cfg.input_size],
            dy_tm.clone(),
            [seq, batch, d * h],
        )
    };
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

/// The parameters as `WeightStorage::F16` inference reads them: W_hh and b_hh rounded to f16.
fn rounded_hh(layout: &ParamLayout, params: &[f32]) -> Vec<f64> {
    let round = |v: f64| f64::from(half::f16::from_f64(v).to_f32());
    let mut rounded = f64s(params);
    for e in &layout.entries {
        if matches!(
            e.kind,
            recur::rnn::ParamKind::WeightHh | recur::rnn::ParamKind::BiasHh
        ) {
            for v in &mut rounded[e.range()] {
                *v = round(*v);
            }
        }
    }
    rounded
}

/// Inference with `WeightStorage::F16` (W_hh and b_hh read from an f16 copy, f32 everywhere
/// else) against the reference on the same rounded weights, in every kernel family the
/// adapter can pick (tiled and direct; vec4 where H % 4 == 0, one-row vec4 and small batch at
/// B = 1), stacked, bidirectional, batch-first. The output must also differ from the f32
/// reference by more than from the rounded one: the f16 copy was really read.
#[test]
fn f16_weight_inference_should_match_reference_on_rounded_weights() {
    let Some(mut gpu) = common::f16_gpu() else {
        return;
    };
    let mut seed = 500;
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for cell in [CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru] {
            for (hidden, batch, layers, bidir) in
                [(8, 1, 1, false), (7, 5, 2, true), (12, 3, 2, false)]
            {
                seed += 1;
                let cfg = RnnConfig::new(cell, 5, hidden)
                    .layers(layers)
                    .bidirectional(bidir)
                    .batch_first(seed % 2 == 0);
                let (seq, d) = (6, cfg.num_directions());
                let name = format!("{cfg:?} B={batch} direct={direct}");
                let mut rng = Rng::new(seed);
                let layout = ParamLayout::new(&cfg);
                let params = rng.vec_uniform_f32(layout.total, -0.5, 0.5);
                let x_tm = rng.vec_uniform_f32(seq * batch * 5, -1.0, 1.0);
                let rounded = rounded_hh(&layout, &params);
                let x64 = f64s(&x_tm);
                let want = reference::rnn_forward(&cfg, &rounded, &x64, seq, batch, None, None);
                let want32 =
                    reference::rnn_forward(&cfg, &f64s(&params), &x64, seq, batch, None, None);
                let mut rnn = Rnn::new(&gpu, cfg.clone(), &params).unwrap();
                rnn.weight_storage = recur::WeightStorage::F16;
                let (x_in, shape) = if cfg.batch_first {
                    (swap01(&x_tm, seq, batch, 5), [batch, seq, 5])
                } else {
                    (x_tm.clone(), [seq, batch, 5])
                };
                let x = gpu.tensor("x", &shape, &x_in).unwrap();
                let out = rnn.forward(&gpu, &x, None, None).unwrap();
                let mut y = gpu.read(&out.y).unwrap();
                if cfg.batch_first {
                    y = swap01(&y, batch, seq, d * hidden);
                }
                assert_close(&format!("{name}: y (f16 weights)"), &y, &want.y, 1e-5);
                let hn = gpu.read(&out.hn).unwrap();
                assert_close(&format!("{name}: hn (f16 weights)"), &hn, &want.hn, 1e-5);
                let (e16, e32) = (common::rel_err(&y, &want.y), common::rel_err(&y, &want32.y));
                assert!(
                    e32 > 10.0 * e16,
                    "{name}: f16 output is as close to the f32 weights ({e32:e}) as to the rounded ones ({e16:e})"
                );
            }
        }
    }
}

/// A small LSTM stack with f16 weights, its parameters, and an input `(T, B, I)`.
fn f16_stack(gpu: &Gpu, seed: u64, seq: usize, batch: usize) -> (Rnn, Vec<f32>, Vec<f32>) {
    let cfg = RnnConfig::new(CellKind::Lstm, 5, 8).layers(2);
    let mut rng = Rng::new(seed);
    let params = rng.vec_uniform_f32(ParamLayout::new(&cfg).total, -0.5, 0.5);
    let x = rng.vec_uniform_f32(seq * batch * 5, -1.0, 1.0);
    let mut rnn = Rnn::new(gpu, cfg, &params).unwrap();
    rnn.weight_storage = recur::WeightStorage::F16;
    (rnn, params, x)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// The f16 copy is packed by the first inference recording and reused by the next ones
/// (one dispatch fewer), in the same recording too; a recording dropped unsubmitted leaves
/// no copy to read; switching to f32 and back needs no repack.
#[test]
fn f16_copy_should_be_packed_once_until_the_parameters_change() {
    let Some(gpu) = common::f16_gpu() else { return };
    let (seq, batch) = (4, 3);
    let (mut rnn, params, xv) = f16_stack(&gpu, 900, seq, batch);
    let x = gpu.tensor("x", &[seq, batch, 5], &xv).unwrap();
    let record = |rnn: &Rnn, rec: &mut recur::Recorder| -> (usize, Tensor) {
        let before = rec.dispatch_count();
        let out = rnn.record_inference(rec, &x, None, None).unwrap();
        (rec.dispatch_count() - before, out.y)
    };
    let mut rec = recur::Recorder::new(&gpu);
    let (d1, y1) = record(&rnn, &mut rec);
    rec.run().unwrap();
    let y1 = gpu.read(&y1).unwrap();
    assert_eq!(rnn.f16_pack_count(), 1);
    let want = reference::rnn_forward(
        &rnn.cfg,
        &rounded_hh(&rnn.layout, &params),
        &f64s(&xv),
        seq,
        batch,
        None,
        None,
    );
    assert_close("first f16 forward", &y1, &want.y, 1e-5);

    let mut rec = recur::Recorder::new(&gpu);
    let (d2, y2) = record(&rnn, &mut rec);
    let (d3, _) = record(&rnn, &mut rec);
    rec.run().unwrap();
    assert_eq!((d2 + 1, d3), (d1, d2), "the second recording packed again");
    assert_eq!(rnn.f16_pack_count(), 1);
    assert_eq!(bits(&gpu.read(&y2).unwrap()), bits(&y1));

    // params_changed: the next recording packs, a second one into the same recording reuses
    // that pack; the recording is dropped, so the one after packs again.
    rnn.params_changed();
    let mut rec = recur::Recorder::new(&gpu);
    let (d4, _) = record(&rnn, &mut rec);
    let (d5, _) = record(&rnn, &mut rec);
    assert_eq!((d4, d5), (d1, d2));
    assert_eq!(rnn.f16_pack_count(), 2);
    drop(rec);
    let mut rec = recur::Recorder::new(&gpu);
    let (d6, y6) = record(&rnn, &mut rec);
    rec.run().unwrap();
    assert_eq!((d6, rnn.f16_pack_count()), (d1, 3));
    assert_eq!(bits(&gpu.read(&y6).unwrap()), bits(&y1));

    rnn.weight_storage = recur::WeightStorage::F32;
    let y32 = gpu
        .read(&rnn.forward(&gpu, &x, None, None).unwrap().y)
        .unwrap();
    let want32 =
        reference::rnn_forward(&rnn.cfg, &f64s(&params), &f64s(&xv), seq, batch, None, None);
    assert_close("f32 between f16 runs", &y32, &want32.y, 1e-5);
    assert_ne!(bits(&y32), bits(&y1));
    rnn.weight_storage = recur::WeightStorage::F16;
    let y16 = gpu
        .read(&rnn.forward(&gpu, &x, None, None).unwrap().y)
        .unwrap();
    assert_eq!(bits(&y16), bits(&y1));
    assert_eq!(rnn.f16_pack_count(), 3);
}

/// Every way the parameters change makes the next f16 forward read the new ones: an
/// optimizer step, `Gpu::write` with `params_changed`, a new tensor in `params`. Each result
/// is checked against the reference on the new weights and must be far from the old ones.
#[test]
fn f16_copy_should_follow_every_parameter_write() {
    use recur::nn::Module;
    use recur::train::{Optimizer, OptimizerConfig};
    let Some(gpu) = common::f16_gpu() else { return };
    let (seq, batch) = (5, 2);
    let (mut rnn, p0, xv) = f16_stack(&gpu, 901, seq, batch);
    let x = gpu.tensor("x", &[seq, batch, 5], &xv).unwrap();
    let reference_y = |p: &[f32]| {
        let r = rounded_hh(&rnn.layout, p);
        reference::rnn_forward(&rnn.cfg, &r, &f64s(&xv), seq, batch, None, None).y
    };
    let mut old = reference_y(&p0);
    let check = |rnn: &Rnn, what: &str, old: &[f64], packs: u64| -> Vec<f64> {
        let y = gpu
            .read(&rnn.forward(&gpu, &x, None, None).unwrap().y)
            .unwrap();
        let p = gpu.read(&rnn.params).unwrap();
        let want = reference_y(&p);
        assert_close(&format!("f16 forward after {what}"), &y, &want, 1e-5);
        let (e_new, e_old) = (common::rel_err(&y, &want), common::rel_err(&y, old));
        assert!(
            e_old > 10.0 * e_new.max(1e-7),
            "after {what}: as close to the old weights ({e_old:e}) as to the new ({e_new:e})"
        );
        assert_eq!(rnn.f16_pack_count(), packs, "after {what}");
        want
    };
    let y0 = gpu
        .read(&rnn.forward(&gpu, &x, None, None).unwrap().y)
        .unwrap();
    assert_close("f16 forward", &y0, &old, 1e-5);

    let mut rng = Rng::new(902);
    gpu.write(&rnn.grads, &rng.vec_uniform_f32(p0.len(), -1.0, 1.0))
        .unwrap();
    let sgd = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.0,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    };
    let mut opt = Optimizer::new(&gpu, sgd, &[rnn.group()]).unwrap();
    let mut rec = recur::Recorder::new(&gpu);
    opt.record_step(&mut rec, &[rnn.group()]).unwrap();
    rec.run().unwrap();
    old = check(&rnn, "an optimizer step", &old, 2);

    gpu.write(&rnn.params, &rng.vec_uniform_f32(p0.len(), -0.5, 0.5))
        .unwrap();
    rnn.params_changed();
    old = check(&rnn, "Gpu::write and params_changed", &old, 3);

    let p3 = rng.vec_uniform_f32(p0.len(), -0.5, 0.5);
    rnn.params = gpu.tensor("new params", &[p0.len()], &p3).unwrap();
    check(&rnn, "a new params tensor", &old, 4);
}

/// A stream with f16 weights pushed in chunks gives the whole f16 forward's outputs (bit for
/// bit, as in tests/stream.rs) and packs the f16 copy once for all its pushes.
#[test]
fn f16_stream_should_equal_the_whole_forward_and_pack_once() {
    let Some(gpu) = common::f16_gpu() else { return };
    let (seq, batch) = (7, 2);
    let (rnn, params, xv) = f16_stack(&gpu, 903, seq, batch);
    let mut stream = recur::RnnStream::new(&gpu, &rnn, batch).unwrap();
    let mut y = Vec::new();
    let mut t0 = 0;
    for len in [1, 2, 1, 3] {
        let chunk = &xv[t0 * batch * 5..(t0 + len) * batch * 5];
        let xc = gpu.tensor("xc", &[len, batch, 5], chunk).unwrap();
        y.extend(gpu.read(&stream.push(&gpu, &rnn, &xc).unwrap()).unwrap());
        assert_eq!(rnn.f16_pack_count(), 1, "after the push of steps {t0}..");
        t0 += len;
    }
    let x = gpu.tensor("x", &[seq, batch, 5], &xv).unwrap();
    let whole = rnn.forward(&gpu, &x, None, None).unwrap();
    assert_eq!(bits(&y), bits(&gpu.read(&whole.y).unwrap()));
    assert_eq!(
        bits(&gpu.read(stream.h()).unwrap()),
        bits(&gpu.read(&whole.hn).unwrap())
    );
    assert_eq!(rnn.f16_pack_count(), 1);
    let want = reference::rnn_forward(
        &rnn.cfg,
        &rounded_hh(&rnn.layout, &params),
        &f64s(&xv),
        seq,
        batch,
        None,
        None,
    );
    assert_close("f16 stream", &y, &want.y, 1e-5);
}
