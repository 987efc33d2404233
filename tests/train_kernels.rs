//! The training kernels against the f64 CPU reference (`recur::reference::train`): embedding,
//! linear, cross-entropy, MSE, the loss reduction, SGD/Adam/AdamW and clipping, on several
//! shapes, odd ones included (not multiples of the workgroup sizes 128/256, several partial
//! sums, a row count past the 65535 workgroups one grid dimension holds).
//!
//! Bound: ‖gpu − ref‖ / ‖ref‖ < 1e-5 unless stated.

mod common;

use common::{assert_close, f64s, gpu};
use recur::gpu::Tensor;
use recur::nn::{Embedding, Linear, ParamGroup, TokenIds};
use recur::reference::train as rt;
use recur::rng::Rng;
use recur::train::{
    record_clip_value, record_cross_entropy, record_mse, GradNorm, LossSink, Optimizer,
    OptimizerConfig,
};
use recur::{Error, Gpu, Recorder};

fn ids(rng: &mut Rng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect()
}

fn loss_slot(gpu: &Gpu, init: f32) -> Tensor {
    gpu.tensor("loss", &[3], &[9.0, init, 9.0]).unwrap()
}

#[test]
fn embedding_should_match_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(1);
    // (rows, vocab of the table, vocab of the ids, dim): one row; repeated ids; ids that use
    // only part of the table; a width past one workgroup.
    for &(n, v, idv, d) in &[
        (1, 1, 1, 1),
        (7, 5, 5, 3),
        (33, 11, 4, 17),
        (300, 40, 40, 257),
    ] {
        let w = rng.vec_normal_f32(v * d);
        let tok = ids(&mut rng, n, idv);
        let emb = Embedding::new(&gpu, v, d, &w).unwrap();
        let t = TokenIds::new(&gpu, "ids", &[n], &tok, idv).unwrap();
        let dy = rng.vec_normal_f32(n * d);
        let tdy = gpu.tensor("dy", &[n, d], &dy).unwrap();
        let old = rng.vec_normal_f32(v * d);
        gpu.write(&emb.grads, &old).unwrap();
        for accumulate in [false, true] {
            gpu.write(&emb.grads, &old).unwrap();
            let mut rec = Recorder::new(&gpu);
            let out = emb.record_forward(&mut rec, &t).unwrap();
            emb.record_backward(&mut rec, &t, &tdy, accumulate).unwrap();
            rec.run().unwrap();
            assert_eq!(out.shape, vec![n, d]);
            let tok_us: Vec<usize> = tok.iter().map(|&x| x as usize).collect();
            let want = rt::embedding_forward(&f64s(&w), &tok_us, d);
            assert_close("embedding forward", &gpu.read(&out).unwrap(), &want, 0.0);
            let mut dw = rt::embedding_backward(&tok_us, &f64s(&dy), v, d);
            if accumulate {
                for (a, b) in dw.iter_mut().zip(&old) {
                    *a += f64::from(*b);
                }
            }
            assert_close(
                &format!("embedding backward n={n} v={v} d={d} acc={accumulate}"),
                &gpu.read(&emb.grads).unwrap(),
                &dw,
                1e-6,
            );
        }
    }
}

#[test]
fn token_ids_should_refuse_out_of_range_ids_and_bad_shapes() {
    let Some(gpu) = gpu() else { return };
    assert!(matches!(
        TokenIds::new(&gpu, "ids", &[3], &[0, 4, 1], 4),
        Err(Error::TokenRange {
            index: 1,
            id: 4,
            vocab: 4
        })
    ));
    assert!(matches!(
        TokenIds::new(&gpu, "ids", &[2, 2], &[0, 1, 1], 4),
        Err(Error::Shape { .. })
    ));
    let t = TokenIds::new(&gpu, "ids", &[3], &[0, 1, 2], 3).unwrap();
    assert!(matches!(
        t.write(&gpu, &[0, 3, 1]),
        Err(Error::TokenRange { .. })
    ));
    assert!(matches!(t.write(&gpu, &[0, 1]), Err(Error::Shape { .. })));
    // A table smaller than the id vocabulary is refused before anything is recorded.
    let emb = Embedding::new(&gpu, 2, 3, &[0.0; 6]).unwrap();
    let mut rec = Recorder::new(&gpu);
    assert!(matches!(
        emb.record_forward(&mut rec, &t),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn linear_should_match_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(2);
    for &(rows, n_in, n_out, bias) in &[
        (1, 1, 1, true),
        (5, 3, 7, false),
        (33, 17, 65, true),
        (130, 64, 11, true),
    ] {
        let flat = rng.vec_uniform_f32(Linear::param_count(n_in, n_out, bias), -1.0, 1.0);
        let lin = Linear::new(&gpu, n_in, n_out, bias, &flat).unwrap();
        let x = rng.vec_normal_f32(rows * n_in);
        let dy = rng.vec_normal_f32(rows * n_out);
        let tx = gpu.tensor("x", &[rows, n_in], &x).unwrap();
        let tdy = gpu.tensor("dy", &[rows, n_out], &dy).unwrap();
        let old = rng.vec_normal_f32(flat.len());
        let w = f64s(&flat[..n_in * n_out]);
        let b = bias.then(|| f64s(&flat[n_in * n_out..]));
        let (dw, db, dx) = rt::linear_backward(&f64s(&x), &w, &f64s(&dy), rows, n_in, n_out);
        for accumulate in [false, true] {
            gpu.write(&lin.grads, &old).unwrap();
            let mut rec = Recorder::new(&gpu);
            let y = lin.record_forward(&mut rec, &tx).unwrap();
            let gx = lin
                .record_backward(&mut rec, &tx, &tdy, accumulate)
                .unwrap();
            rec.run().unwrap();
            let what = format!("linear rows={rows} in={n_in} out={n_out} bias={bias}");
            let want_y = rt::linear_forward(&f64s(&x), &w, b.as_deref(), rows, n_in, n_out);
            assert_close(&format!("{what} y"), &gpu.read(&y).unwrap(), &want_y, 1e-6);
            assert_close(&format!("{what} dx"), &gpu.read(&gx).unwrap(), &dx, 1e-6);
            let mut rec = Recorder::new(&gpu);
            // The parameters-only backward (no dx: its type has none) accumulates too.
            lin.record_weight_backward(&mut rec, &tx, &tdy, true)
                .unwrap();
            let mut want_g: Vec<f64> = dw.clone();
            if bias {
                want_g.extend_from_slice(&db);
            }
            if accumulate {
                for (a, o) in want_g.iter_mut().zip(&old) {
                    *a += f64::from(*o);
                }
            }
            assert_close(
                &format!("{what} grads acc={accumulate}"),
                &gpu.read(&lin.grads).unwrap(),
                &want_g,
                1e-6,
            );
        }
    }
}

/// Both kernels: one workgroup a row (GPUs) and one invocation a row (CPU adapters).
#[test]
fn cross_entropy_should_match_reference() {
    let Some(mut gpu) = gpu() else { return };
    for per_row in [false, true] {
        gpu.set_direct_kernels(per_row);
        check_cross_entropy(&gpu);
    }
}

fn check_cross_entropy(gpu: &recur::Gpu) {
    let mut rng = Rng::new(3);
    // (rows, vocab, logit scale): tiny; vocab past the 128-thread workgroup; logits that
    // overflow exp without the max shift; more rows than one grid dimension holds.
    for &(rows, vocab, scale) in &[
        (1, 1, 1.0),
        (3, 5, 1.0),
        (17, 130, 3.0),
        (5, 1000, 1.0),
        (9, 7, 500.0),
        (66_000, 3, 2.0),
    ] {
        let logits: Vec<f32> = rng
            .vec_normal_f32(rows * vocab)
            .into_iter()
            .map(|x| x * scale)
            .collect();
        let tg = ids(&mut rng, rows, vocab);
        let tl = gpu.tensor("logits", &[rows, vocab], &logits).unwrap();
        let tt = TokenIds::new(gpu, "targets", &[rows], &tg, vocab).unwrap();
        let loss = loss_slot(gpu, 0.25);
        for (accumulate, s) in [(false, 1.0f32), (true, 0.5)] {
            let mut rec = Recorder::new(gpu);
            let d = record_cross_entropy(
                &mut rec,
                &tl,
                &tt,
                s,
                LossSink {
                    tensor: &loss,
                    offset: 1,
                    accumulate,
                },
            )
            .unwrap();
            rec.run().unwrap();
            let tg_us: Vec<usize> = tg.iter().map(|&x| x as usize).collect();
            let (l, g) = rt::cross_entropy(&f64s(&logits), &tg_us, rows, vocab);
            let g: Vec<f64> = g.iter().map(|x| x * f64::from(s)).collect();
            let got = gpu.read(&loss).unwrap();
            let prev = if accumulate { l } else { 0.0 };
            let want_l = prev + f64::from(s) * l;
            let what = format!(
                "cross_entropy {rows}x{vocab} scale {scale} acc={accumulate} direct={}",
                gpu.prefers_direct_kernels()
            );
            assert_eq!((got[0], got[2]), (9.0, 9.0), "{what}: neighbours");
            assert_close(&format!("{what} loss"), &got[1..2], &[want_l], 1e-5);
            assert_close(&format!("{what} grad"), &gpu.read(&d).unwrap(), &g, 1e-5);
        }
    }
}

#[test]
fn mse_should_match_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(4);
    // One element; part of a workgroup; several workgroups; many partial sums.
    for &n in &[1usize, 7, 1000, 40_001] {
        let p = rng.vec_normal_f32(n);
        let t = rng.vec_normal_f32(n);
        let tp = gpu.tensor("pred", &[n], &p).unwrap();
        let tt = gpu.tensor("target", &[n], &t).unwrap();
        let loss = loss_slot(&gpu, 0.0);
        let mut rec = Recorder::new(&gpu);
        let g = record_mse(
            &mut rec,
            &tp,
            &tt,
            1.0,
            LossSink {
                tensor: &loss,
                offset: 1,
                accumulate: false,
            },
        )
        .unwrap();
        rec.run().unwrap();
        let (l, want_g) = rt::mse(&f64s(&p), &f64s(&t));
        assert_close(
            &format!("mse n={n} loss"),
            &gpu.read(&loss).unwrap()[1..2],
            &[l],
            1e-5,
        );
        assert_close(
            &format!("mse n={n} grad"),
            &gpu.read(&g).unwrap(),
            &want_g,
            1e-6,
        );
    }
}

#[test]
fn loss_and_gradient_are_bitwise_deterministic() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(5);
    let (rows, vocab) = (500, 97);
    let logits = rng.vec_normal_f32(rows * vocab);
    let tg = ids(&mut rng, rows, vocab);
    let tl = gpu.tensor("logits", &[rows, vocab], &logits).unwrap();
    let tt = TokenIds::new(&gpu, "targets", &[rows], &tg, vocab).unwrap();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let loss = loss_slot(&gpu, 0.0);
        let mut rec = Recorder::new(&gpu);
        let d = record_cross_entropy(
            &mut rec,
            &tl,
            &tt,
            1.0,
            LossSink {
                tensor: &loss,
                offset: 1,
                accumulate: false,
            },
        )
        .unwrap();
        rec.run().unwrap();
        runs.push((gpu.read(&loss).unwrap(), gpu.read(&d).unwrap()));
    }
    assert!(runs.windows(2).all(|w| w[0] == w[1]));
}

struct OptCase {
    cfg: OptimizerConfig,
}

fn run_optimizer(gpu: &Gpu, case: &OptCase, sizes: &[usize], seed: u64) {
    let mut rng = Rng::new(seed);
    let ps: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.vec_normal_f32(n)).collect();
    let params: Vec<Tensor> = ps
        .iter()
        .map(|p| gpu.tensor("p", &[p.len()], p).unwrap())
        .collect();
    let grads: Vec<Tensor> = sizes
        .iter()
        .map(|&n| gpu.zeros("g", &[n]).unwrap())
        .collect();
    let groups: Vec<ParamGroup> = params
        .iter()
        .zip(&grads)
        .map(|(p, g)| ParamGroup {
            params: p,
            grads: g,
        })
        .collect();
    let mut opt = Optimizer::new(gpu, case.cfg, &groups).unwrap();
    let mut rp: Vec<Vec<f64>> = ps.iter().map(|p| f64s(p)).collect();
    let mut s1: Vec<Vec<f64>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
    let mut s2 = s1.clone();
    for step in 1..=3u64 {
        let gs: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.vec_normal_f32(n)).collect();
        for (t, g) in grads.iter().zip(&gs) {
            gpu.write(t, g).unwrap();
        }
        let mut rec = Recorder::new(gpu);
        opt.record_step(&mut rec, &groups).unwrap();
        rec.run().unwrap();
        for i in 0..sizes.len() {
            let g = f64s(&gs[i]);
            match case.cfg {
                OptimizerConfig::Sgd {
                    lr,
                    momentum,
                    dampening,
                    weight_decay,
                    nesterov,
                } => rt::sgd_step(
                    &mut rp[i],
                    &g,
                    &mut s1[i],
                    step == 1,
                    &rt::SgdHyper {
                        lr,
                        momentum,
                        dampening,
                        weight_decay,
                        nesterov,
                    },
                ),
                OptimizerConfig::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                }
                | OptimizerConfig::AdamW {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => rt::adam_step(
                    &mut rp[i],
                    &g,
                    &mut s1[i],
                    &mut s2[i],
                    step,
                    &rt::AdamHyper {
                        lr,
                        beta1,
                        beta2,
                        eps,
                        weight_decay,
                        decoupled: matches!(case.cfg, OptimizerConfig::AdamW { .. }),
                    },
                ),
            }
            let what = format!("{:?} n={} step {step}", case.cfg, sizes[i]);
            let got = gpu.read(&params[i]).unwrap();
            assert_close(&format!("{what} params"), &got, &rp[i], 1e-5);
            // The update itself, not only the parameters (which barely move).
            let moved: Vec<f32> = got.iter().zip(&ps[i]).map(|(a, b)| a - b).collect();
            let want: Vec<f64> = rp[i]
                .iter()
                .zip(&ps[i])
                .map(|(a, b)| a - f64::from(*b))
                .collect();
            assert_close(&format!("{what} update"), &moved, &want, 1e-4);
            // Gradients are never changed by the optimizer.
            assert_eq!(gpu.read(&grads[i]).unwrap(), gs[i], "{what}: grads changed");
        }
    }
    assert_eq!(opt.step_count(), 3);
}

#[test]
fn optimizers_should_match_reference() {
    let Some(gpu) = gpu() else { return };
    let cases = [
        OptCase {
            cfg: OptimizerConfig::sgd(0.1, 0.0),
        },
        OptCase {
            cfg: OptimizerConfig::sgd(0.1, 0.9).with_weight_decay(0.01),
        },
        OptCase {
            cfg: OptimizerConfig::Sgd {
                lr: 0.05,
                momentum: 0.8,
                dampening: 0.3,
                weight_decay: 0.0,
                nesterov: false,
            },
        },
        OptCase {
            cfg: OptimizerConfig::Sgd {
                lr: 0.05,
                momentum: 0.8,
                dampening: 0.0,
                weight_decay: 0.02,
                nesterov: true,
            },
        },
        OptCase {
            cfg: OptimizerConfig::adam().with_lr(0.01),
        },
        OptCase {
            cfg: OptimizerConfig::adam().with_lr(0.01).with_weight_decay(0.1),
        },
        OptCase {
            cfg: OptimizerConfig::adamw().with_lr(0.01),
        },
    ];
    // One element, a partial workgroup, just past one workgroup, several workgroups.
    for (i, c) in cases.iter().enumerate() {
        run_optimizer(&gpu, c, &[1, 255, 257, 1000], 10 + i as u64);
    }
}

#[test]
fn optimizer_configs_are_validated() {
    assert!(OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.0,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: true
    }
    .validate()
    .is_err());
    assert!(OptimizerConfig::adam().with_lr(-1.0).validate().is_err());
    assert!(OptimizerConfig::Adam {
        lr: 1e-3,
        beta1: 1.0,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0
    }
    .validate()
    .is_err());
    assert!(OptimizerConfig::adamw().validate().is_ok());
}

/// Both partial-sum kernels: a workgroup a chunk (GPUs) and an invocation a chunk (CPU
/// adapters).
#[test]
fn clip_grad_norm_should_match_reference() {
    let Some(mut gpu) = gpu() else { return };
    for per_chunk in [false, true] {
        gpu.set_direct_kernels(per_chunk);
        check_clip_grad_norm(&gpu);
    }
}

fn check_clip_grad_norm(gpu: &Gpu) {
    let mut rng = Rng::new(6);
    // Buffers of one element, one partial workgroup, and enough for many partial sums.
    let sizes = [1usize, 300, 70_001];
    for &max_norm in &[1.0f32, 1e6] {
        let gs: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.vec_normal_f32(n)).collect();
        let grads: Vec<Tensor> = gs
            .iter()
            .map(|g| gpu.tensor("g", &[g.len()], g).unwrap())
            .collect();
        let groups: Vec<ParamGroup> = grads
            .iter()
            .map(|g| ParamGroup {
                params: g,
                grads: g,
            })
            .collect();
        let norm = GradNorm::for_groups(gpu, &groups).unwrap();
        let mut rec = Recorder::new(gpu);
        norm.record(&mut rec, &groups, Some(max_norm)).unwrap();
        rec.run().unwrap();
        let mut want: Vec<Vec<f64>> = gs.iter().map(|g| f64s(g)).collect();
        let total = rt::clip_grad_norm(&mut want, f64::from(max_norm));
        let (n, coef) = norm.read(gpu).unwrap();
        assert_close(&format!("norm max={max_norm}"), &[n], &[total], 1e-5);
        let want_coef = (f64::from(max_norm) / (total + 1e-6)).min(1.0);
        assert_close("coef", &[coef], &[want_coef], 1e-5);
        for (g, w) in grads.iter().zip(&want) {
            assert_close(
                &format!("clipped grads max={max_norm}"),
                &gpu.read(g).unwrap(),
                w,
                1e-5,
            );
        }
    }
    // Norm only (no max_norm): gradients untouched.
    let g = rng.vec_normal_f32(513);
    let t = gpu.tensor("g", &[513], &g).unwrap();
    let groups = [ParamGroup {
        params: &t,
        grads: &t,
    }];
    let norm = GradNorm::for_groups(gpu, &groups).unwrap();
    let mut rec = Recorder::new(gpu);
    norm.record(&mut rec, &groups, None).unwrap();
    rec.run().unwrap();
    let total = f64s(&g).iter().map(|x| x * x).sum::<f64>().sqrt();
    assert_close("norm only", &[norm.read(gpu).unwrap().0], &[total], 1e-5);
    assert_eq!(gpu.read(&t).unwrap(), g);
}

#[test]
fn clip_grad_value_should_match_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(7);
    for &n in &[1usize, 255, 1025] {
        let g = rng.vec_normal_f32(n);
        let t = gpu.tensor("g", &[n], &g).unwrap();
        let mut rec = Recorder::new(&gpu);
        record_clip_value(
            &mut rec,
            &[ParamGroup {
                params: &t,
                grads: &t,
            }],
            0.5,
        )
        .unwrap();
        rec.run().unwrap();
        let mut want = f64s(&g);
        rt::clip_grad_value(&mut want, 0.5);
        assert_close(
            &format!("clip value n={n}"),
            &gpu.read(&t).unwrap(),
            &want,
            0.0,
        );
    }
}
