//! Training against PyTorch: the fixtures in `tests/fixtures/train/` were made by
//! `scripts/make_train_fixtures.py` (torch on the CPU, float32; its docstring lists every
//! key). Optimizer steps, clip_grad_norm_ / clip_grad_value_, cross-entropy, and three
//! windows of truncated BPTT (LSTM + Linear + CE, with and without an embedding) with torch's
//! detach-and-carry loop and an SGD-momentum step after each window.
//!
//! Bounds (float32): losses ‖ours − torch‖ / ‖torch‖ < 1e-5; parameters and gradients < 1e-4.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{assert_close, f64s, gpu};
use recur::gpu::Tensor;
use recur::io::{self, HostTensor};
use recur::nn::{Embedding, Linear, ParamGroup, SeqInput, SeqModel, SeqModelConfig, TokenIds};
use recur::rnn::{CellKind, ParamLayout, Rnn, RnnConfig};
use recur::train::{
    record_clip_value, record_cross_entropy, Batch, Clip, GradNorm, LossSink, Optimizer,
    OptimizerConfig, Targets, TrainConfig, Trainer,
};
use recur::{Gpu, Recorder};

type Fixture = (BTreeMap<String, HostTensor>, BTreeMap<String, String>);

fn load(name: &str) -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/train")
        .join(format!("{name}.safetensors"));
    io::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn get<'a>(f: &'a Fixture, name: &str) -> &'a HostTensor {
    f.0.get(name)
        .unwrap_or_else(|| panic!("fixture lacks {name}"))
}

fn meta_f32(f: &Fixture, key: &str) -> f32 {
    f.1.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("fixture lacks metadata {key}"))
}

fn meta_f64(f: &Fixture, key: &str) -> f64 {
    f.1.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("fixture lacks metadata {key}"))
}

fn meta_bool(f: &Fixture, key: &str) -> bool {
    f.1.get(key).map(String::as_str) == Some("True")
}

fn up(gpu: &Gpu, t: &HostTensor) -> Tensor {
    gpu.tensor("fixture", &t.shape, &t.data).unwrap()
}

fn as_ids(t: &HostTensor) -> Vec<u32> {
    t.data.iter().map(|&x| x as u32).collect()
}

fn optimizer_config(f: &Fixture) -> OptimizerConfig {
    let lr = meta_f64(f, "lr");
    let wd = meta_f64(f, "weight_decay");
    match f.1.get("optimizer").map(String::as_str) {
        Some("sgd") => OptimizerConfig::Sgd {
            lr,
            momentum: meta_f64(f, "momentum"),
            dampening: meta_f64(f, "dampening"),
            weight_decay: wd,
            nesterov: meta_bool(f, "nesterov"),
        },
        Some(kind @ ("adam" | "adamw")) => {
            let (beta1, beta2, eps) = (
                meta_f64(f, "beta1"),
                meta_f64(f, "beta2"),
                meta_f64(f, "eps"),
            );
            if kind == "adam" {
                OptimizerConfig::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay: wd,
                }
            } else {
                OptimizerConfig::AdamW {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay: wd,
                }
            }
        }
        other => panic!("unknown optimizer {other:?}"),
    }
}

fn run_optimizer_fixture(gpu: &Gpu, name: &str) {
    let f = load(name);
    let cfg = optimizer_config(&f);
    let params = [up(gpu, get(&f, "param.w")), up(gpu, get(&f, "param.b"))];
    let grads = [
        gpu.zeros("g.w", &params[0].shape).unwrap(),
        gpu.zeros("g.b", &params[1].shape).unwrap(),
    ];
    let groups: Vec<ParamGroup> = params
        .iter()
        .zip(&grads)
        .map(|(p, g)| ParamGroup {
            params: p,
            grads: g,
        })
        .collect();
    let mut opt = Optimizer::new(gpu, cfg, &groups).unwrap();
    let steps: u64 = f.1["steps"].parse().unwrap();
    for k in 1..=steps {
        for (g, s) in grads.iter().zip(["w", "b"]) {
            gpu.write(g, &get(&f, &format!("step{k}.grad.{s}")).data)
                .unwrap();
        }
        let mut rec = Recorder::new(gpu);
        opt.record_step(&mut rec, &groups).unwrap();
        rec.run().unwrap();
        for (p, s) in params.iter().zip(["w", "b"]) {
            let want = get(&f, &format!("step{k}.param.{s}"));
            let got = gpu.read(p).unwrap();
            assert_close(
                &format!("{name} step {k} {s}"),
                &got,
                &f64s(&want.data),
                1e-4,
            );
            let before = get(&f, &format!("param.{s}"));
            let moved: Vec<f32> = got.iter().zip(&before.data).map(|(a, b)| a - b).collect();
            let want_moved: Vec<f64> = want
                .data
                .iter()
                .zip(&before.data)
                .map(|(a, b)| f64::from(*a) - f64::from(*b))
                .collect();
            assert_close(
                &format!("{name} step {k} {s} update"),
                &moved,
                &want_moved,
                1e-4,
            );
        }
    }
    for (gi, s) in ["w", "b"].iter().enumerate() {
        for (sname, st) in cfg.state_names().iter().zip(opt.state(gi)) {
            let want = get(&f, &format!("state.{sname}.{s}"));
            assert_close(
                &format!("{name} state {sname}.{s}"),
                &gpu.read(st).unwrap(),
                &f64s(&want.data),
                1e-4,
            );
        }
    }
}

#[test]
fn optimizer_steps_should_match_pytorch() {
    let Some(gpu) = gpu() else { return };
    for name in ["adam", "adamw", "sgd_momentum", "sgd_nesterov"] {
        run_optimizer_fixture(&gpu, name);
    }
}

#[test]
fn optimizer_defaults_should_be_pytorchs() {
    let f = load("adam");
    assert_eq!(
        OptimizerConfig::adam(),
        OptimizerConfig::Adam {
            lr: meta_f64(&f, "default.lr"),
            beta1: meta_f64(&f, "default.beta1"),
            beta2: meta_f64(&f, "default.beta2"),
            eps: meta_f64(&f, "default.eps"),
            weight_decay: meta_f64(&f, "default.weight_decay"),
        }
    );
    let f = load("adamw");
    assert_eq!(
        OptimizerConfig::adamw(),
        OptimizerConfig::AdamW {
            lr: meta_f64(&f, "default.lr"),
            beta1: meta_f64(&f, "default.beta1"),
            beta2: meta_f64(&f, "default.beta2"),
            eps: meta_f64(&f, "default.eps"),
            weight_decay: meta_f64(&f, "default.weight_decay"),
        }
    );
    let f = load("sgd_momentum");
    assert_eq!(meta_f64(&f, "default.dampening"), 0.0);
    assert_eq!(meta_f64(&f, "default.weight_decay"), 0.0);
    assert!(!meta_bool(&f, "default.nesterov"));
}

#[test]
fn clipping_should_match_pytorch() {
    let Some(gpu) = gpu() else { return };
    let f = load("clip");
    for case in ["a", "b"] {
        let grads: Vec<Tensor> = (0..3)
            .map(|i| up(&gpu, get(&f, &format!("{case}.before.g{i}"))))
            .collect();
        let groups: Vec<ParamGroup> = grads
            .iter()
            .map(|g| ParamGroup {
                params: g,
                grads: g,
            })
            .collect();
        let norm = GradNorm::for_groups(&gpu, &groups).unwrap();
        let mut rec = Recorder::new(&gpu);
        norm.record(
            &mut rec,
            &groups,
            Some(meta_f32(&f, &format!("{case}.max_norm"))),
        )
        .unwrap();
        rec.run().unwrap();
        let (total, _) = norm.read(&gpu).unwrap();
        let want = get(&f, &format!("{case}.total_norm"));
        assert_close(
            &format!("clip {case} norm"),
            &[total],
            &f64s(&want.data),
            1e-5,
        );
        for (i, g) in grads.iter().enumerate() {
            let want = get(&f, &format!("{case}.after.g{i}"));
            assert_close(
                &format!("clip {case} g{i}"),
                &gpu.read(g).unwrap(),
                &f64s(&want.data),
                1e-4,
            );
        }
    }
    let grads: Vec<Tensor> = (0..3)
        .map(|i| up(&gpu, get(&f, &format!("value.before.g{i}"))))
        .collect();
    let groups: Vec<ParamGroup> = grads
        .iter()
        .map(|g| ParamGroup {
            params: g,
            grads: g,
        })
        .collect();
    let mut rec = Recorder::new(&gpu);
    record_clip_value(&mut rec, &groups, meta_f32(&f, "clip_value")).unwrap();
    rec.run().unwrap();
    for (i, g) in grads.iter().enumerate() {
        let want = get(&f, &format!("value.after.g{i}"));
        assert_close(
            &format!("clip value g{i}"),
            &gpu.read(g).unwrap(),
            &f64s(&want.data),
            0.0,
        );
    }
}

#[test]
fn cross_entropy_should_match_pytorch() {
    let Some(gpu) = gpu() else { return };
    let f = load("cross_entropy");
    let logits = up(&gpu, get(&f, "logits"));
    let t = get(&f, "targets");
    let vocab = logits.shape[1];
    let targets = TokenIds::new(&gpu, "targets", &t.shape, &as_ids(t), vocab).unwrap();
    let loss = gpu.zeros("loss", &[1]).unwrap();
    let mut rec = Recorder::new(&gpu);
    let d = record_cross_entropy(
        &mut rec,
        &logits,
        &targets,
        1.0,
        LossSink {
            tensor: &loss,
            offset: 0,
            accumulate: false,
        },
    )
    .unwrap();
    rec.run().unwrap();
    assert_close(
        "cross_entropy loss",
        &gpu.read(&loss).unwrap(),
        &f64s(&get(&f, "loss").data),
        1e-5,
    );
    assert_close(
        "cross_entropy grad",
        &gpu.read(&d).unwrap(),
        &f64s(&get(&f, "grad").data),
        1e-4,
    );
}

/// The fixture's model, from its `init.*` tensors.
fn fixture_model(gpu: &Gpu, f: &Fixture, embed: bool) -> SeqModel {
    let meta = |k: &str| -> usize { f.1[k].parse().unwrap() };
    let (v, i, h) = (meta("vocab"), meta("input_size"), meta("hidden_size"));
    let rnn_cfg = RnnConfig::new(CellKind::Lstm, i, h);
    let layout = ParamLayout::new(&rnn_cfg);
    let mut flat = vec![0.0; layout.total];
    for e in &layout.entries {
        flat[e.range()].copy_from_slice(&get(f, &format!("init.rnn.{}", e.name)).data);
    }
    let rnn = Rnn::new(gpu, rnn_cfg.clone(), &flat).unwrap();
    let mut head_flat = get(f, "init.head.weight").data.clone();
    head_flat.extend_from_slice(&get(f, "init.head.bias").data);
    let head = Linear::new(gpu, h, v, true, &head_flat).unwrap();
    let embedding =
        embed.then(|| Embedding::new(gpu, v, i, &get(f, "init.embedding.weight").data).unwrap());
    SeqModel::from_parts(
        SeqModelConfig {
            vocab: embed.then_some(v),
            rnn: rnn_cfg,
            out_features: v,
            readout: recur::nn::Readout::EveryStep,
        },
        embedding,
        rnn,
        head,
    )
    .unwrap()
}

/// `prefix.<layer>.<name>` of the fixture against the model's flat buffers (`grads` or
/// `params`).
fn compare_model(gpu: &Gpu, f: &Fixture, model: &SeqModel, prefix: &str, grads: bool) {
    for (layer, m) in model.modules() {
        let g = m.group();
        let flat = gpu.read(if grads { g.grads } else { g.params }).unwrap();
        for s in m.slices() {
            let key = format!("{prefix}.{layer}.{}", s.name);
            let want = get(f, &key);
            assert_eq!(want.shape, s.shape, "{key}");
            assert_close(
                &key,
                &flat[s.offset..s.offset + s.len()],
                &f64s(&want.data),
                1e-4,
            );
        }
    }
}

fn run_tbptt_fixture(gpu: &Gpu, name: &str, embed: bool) {
    let f = load(name);
    let k: usize = f.1["window"].parse().unwrap();
    let model = fixture_model(gpu, &f, embed);
    let vocab = model.cfg.out_features;
    let cfg = TrainConfig {
        optimizer: OptimizerConfig::sgd(meta_f64(&f, "lr"), meta_f64(&f, "momentum")),
        clip: Clip::None,
        log_every: 2,
        max_in_flight: 2,
    };
    let mut trainer = Trainer::new(gpu, model, cfg, recur::train::TrainMode::Stateful).unwrap();
    let input = get(&f, "input");
    let targets = get(&f, "targets");
    let batch = targets.shape[1];
    let mut metrics = Vec::new();
    for w in 0..3 {
        let rows = w * k * batch..(w + 1) * k * batch;
        let tg = TokenIds::new(
            gpu,
            "targets",
            &[k, batch],
            &as_ids(targets)[rows.clone()],
            vocab,
        )
        .unwrap();
        let (ids, dense);
        let input = if embed {
            ids = TokenIds::new(gpu, "ids", &[k, batch], &as_ids(input)[rows], vocab).unwrap();
            SeqInput::Tokens(&ids)
        } else {
            let width = input.shape[2];
            let data = &input.data[rows.start * width..rows.end * width];
            dense = gpu.tensor("x", &[k, batch, width], data).unwrap();
            SeqInput::Dense(&dense)
        };
        trainer
            .step(
                gpu,
                &[Batch {
                    input,
                    targets: Targets::Tokens(&tg),
                }],
            )
            .unwrap();
        let loss = trainer.read_loss(gpu).unwrap();
        let want = get(&f, &format!("window{w}.loss"));
        assert_close(
            &format!("{name} window {w} loss"),
            &[loss],
            &f64s(&want.data),
            1e-5,
        );
        compare_model(gpu, &f, &trainer.model, &format!("window{w}.grad"), true);
        metrics.extend(trainer.poll_metrics(gpu).unwrap());
    }
    compare_model(gpu, &f, &trainer.model, "final", false);
    // The same losses, through the metric ring (2 steps a flush, then the last one).
    metrics.extend(trainer.flush_metrics(gpu).unwrap());
    assert_eq!(
        metrics.iter().map(|m| m.step).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    for (w, m) in metrics.iter().enumerate() {
        let want = get(&f, &format!("window{w}.loss"));
        assert_close("metric loss", &[m.loss], &f64s(&want.data), 1e-5);
        assert!(m.grad_norm.is_finite() && m.grad_norm > 0.0);
    }
}

#[test]
fn tbptt_windows_should_match_pytorch_lstm_linear_ce() {
    let Some(gpu) = gpu() else { return };
    run_tbptt_fixture(&gpu, "tbptt_dense", false);
}

#[test]
fn tbptt_windows_should_match_pytorch_with_embedding() {
    let Some(gpu) = gpu() else { return };
    run_tbptt_fixture(&gpu, "tbptt_embed", true);
}
