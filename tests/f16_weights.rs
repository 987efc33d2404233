//! Stacks with f16 weights (`WeightStorage::F16`) against the f64 CPU reference on the same
//! rounded weights, in every kernel family; the f16 copy packed once and repacked after every
//! parameter write; a stream with f16 weights.

mod common;

use common::layout::swap01;
use common::{assert_close, bits, f64s};
use recur::rng::Rng;
use recur::rnn::Rnn;
use recur::{reference, CellKind, Gpu, ParamLayout, RnnConfig, Tensor};

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

/// y of the reference stack `cfg` on input `xv` (T and B in `tb`) with `params`' W_hh and
/// b_hh rounded to f16, as the f16 copy holds them.
fn f16_reference_y(
    cfg: &RnnConfig,
    layout: &ParamLayout,
    params: &[f32],
    xv: &[f32],
    (seq, batch): (usize, usize),
) -> Vec<f64> {
    let rounded = rounded_hh(layout, params);
    reference::rnn_forward(cfg, &rounded, &f64s(xv), seq, batch, None, None).y
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
    let want = f16_reference_y(&rnn.cfg, &rnn.layout, &params, &xv, (seq, batch));
    assert_close("first f16 forward", &y1, &want, 1e-5);

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
    let reference_y = |p: &[f32]| f16_reference_y(&rnn.cfg, &rnn.layout, p, &xv, (seq, batch));
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

/// The order of submissions, not of recordings, decides what an f16 copy holds: a copy
/// recorded after an optimizer step was recorded but submitted before it holds the old
/// weights, and must not be reused once the step is submitted; an inference recorded after a
/// step in the same recording reads the new weights.
#[test]
fn f16_copy_should_follow_the_order_of_submissions() {
    use recur::nn::Module;
    use recur::train::{Optimizer, OptimizerConfig};
    let Some(gpu) = common::f16_gpu() else { return };
    let (seq, batch) = (5, 2);
    let (rnn, p0, xv) = f16_stack(&gpu, 904, seq, batch);
    let x = gpu.tensor("x", &[seq, batch, 5], &xv).unwrap();
    let reference_y = |p: &[f32]| f16_reference_y(&rnn.cfg, &rnn.layout, p, &xv, (seq, batch));
    let sgd = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.0,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    };
    let mut opt = Optimizer::new(&gpu, sgd, &[rnn.group()]).unwrap();
    let mut rng = Rng::new(905);
    gpu.write(&rnn.grads, &rng.vec_uniform_f32(p0.len(), -1.0, 1.0))
        .unwrap();
    let y0 = gpu
        .read(&rnn.forward(&gpu, &x, None, None).unwrap().y)
        .unwrap();
    assert_close("f16 forward", &y0, &reference_y(&p0), 1e-5);

    // The step is recorded, an inference recorded and submitted, then the step submitted.
    let mut step = recur::Recorder::new(&gpu);
    opt.record_step(&mut step, &[rnn.group()]).unwrap();
    let mut early = recur::Recorder::new(&gpu);
    let y_early = rnn.record_inference(&mut early, &x, None, None).unwrap().y;
    early.run().unwrap();
    assert_close(
        "inference submitted before the step",
        &gpu.read(&y_early).unwrap(),
        &reference_y(&p0),
        1e-5,
    );
    step.run().unwrap();
    let p1 = gpu.read(&rnn.params).unwrap();
    let y1 = gpu
        .read(&rnn.forward(&gpu, &x, None, None).unwrap().y)
        .unwrap();
    assert_close("inference after the step", &y1, &reference_y(&p1), 1e-5);
    assert!(common::rel_err(&y1, &reference_y(&p0)) > 1e-4);

    // A step and an inference in one recording: the inference reads the new weights.
    let mut both = recur::Recorder::new(&gpu);
    opt.record_step(&mut both, &[rnn.group()]).unwrap();
    let y2 = rnn.record_inference(&mut both, &x, None, None).unwrap().y;
    both.run().unwrap();
    let p2 = gpu.read(&rnn.params).unwrap();
    assert_close(
        "inference after a step in its recording",
        &gpu.read(&y2).unwrap(),
        &reference_y(&p2),
        1e-5,
    );
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
    let want = f16_reference_y(&rnn.cfg, &rnn.layout, &params, &xv, (seq, batch));
    assert_close("f16 stream", &y, &want, 1e-5);
}
