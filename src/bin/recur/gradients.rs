//! `recur gradients`: the lecture's claims about gradient flow, measured on this machine.
//!
//! Every configuration learns one long-range task, delayed recall: a value v ~ U(-1, 1)
//! arrives at the first step (with a marker), `lag` steps of zeros follow, and the model must
//! output v at the last step (mean-squared error; a prediction within 0.1 of v counts as
//! correct: predicting 0 scores about 10%). The gradient of the loss enters at h_T only, so
//! ‖∂L/∂h_t‖ against t shows how it survives the way back to h_1.
//!
//! Configurations:
//! - a vanilla tanh RNN, an LSTM and a GRU, each with Adam (lr 3e-3) and clipping at norm 1: the
//!   LSTM's forget gate and the GRU's update gate start open (their bias sums to +4, as
//!   Jozefowicz et al. 2015 advise), so their additive path carries gradient back;
//! - a vanilla tanh RNN whose W_hh starts as σ·Q (Q a random orthogonal matrix, so every
//!   singular value, σ_max included, is σ) for σ = 0.5, 1, 2, with plain SGD with and
//!   without clipping at norm 1 (lr 0.1; SGD's step is proportional to the gradient, which
//!   is what clipping is for; Adam's is not).
//!
//! Each training step measures ‖∂L/∂h_t‖ on the device
//! ([`recur::train::Trainer::step_with_gradient_flow`]); σ_max(W_hh)
//! ([`recur::Rnn::sigma_max_hh`]) and the accuracy on held-out sequences are measured every
//! few steps. Figures (PNG and SVG) go to `--out`; a table goes to stdout.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use recur::nn::{SeqInput, SeqModel, SeqModelConfig};
use recur::rng::Rng;
use recur::rnn::ParamKind;
use recur::train::{Batch, Clip, OptimizerConfig, Targets, TrainConfig, TrainMode, Trainer};
use recur::{CellKind, Gpu, RnnConfig};

use crate::gradients_figures;

/// Arguments of `recur gradients`.
#[derive(Args, Debug)]
pub struct GradientsArgs {
    /// Tiny sizes (a few seconds; for tests): lag 12, hidden 8, 12 steps.
    #[arg(long)]
    pub quick: bool,
    /// Folder for the figures (created if missing).
    #[arg(long, value_name = "DIR", default_value = "gradients")]
    pub out: PathBuf,
    /// Steps between the value and the output (sequences are lag + 1 long) [default: 50; 12
    /// with --quick; at most 10000].
    #[arg(long)]
    pub lag: Option<usize>,
    /// Training steps per configuration [default: 300; 12 with --quick; at most 1000000].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of weights and data.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only the configurations whose name contains this text (e.g. `LSTM`, `σ=2`).
    #[arg(long)]
    pub only: Option<String>,
}

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub lag: usize,
    pub hidden: usize,
    pub batch: usize,
    pub steps: usize,
    pub eval_every: usize,
    pub eval_rows: usize,
}

impl Setup {
    fn seq(&self) -> usize {
        self.lag + 1
    }
}

/// How one configuration trains.
#[derive(Clone, Debug)]
pub struct Config {
    /// Its name in the table and the legends.
    pub name: String,
    pub cell: CellKind,
    /// W_hh = σ·Q at the start (vanilla RNN), else torch's init.
    pub sigma: Option<f64>,
    pub optimizer: OptimizerConfig,
    pub clip: Clip,
}

/// What one configuration measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub name: String,
    /// ‖∂L/∂h_t‖ over t at the first step (initialization) and at the last finite step.
    pub init_flow: Vec<f32>,
    pub final_flow: Vec<f32>,
    /// (training step, ‖∂L/∂h_t‖ over t) for every step taken.
    pub flows: Vec<(usize, Vec<f32>)>,
    /// (training step, σ_max(W_hh) of layer 0).
    pub sigma: Vec<(usize, f64)>,
    /// (training step, held-out accuracy).
    pub accuracy: Vec<(usize, f64)>,
    /// The loss of every step taken.
    pub losses: Vec<f32>,
    /// The step whose loss was not finite (training stopped there).
    pub diverged_at: Option<usize>,
}

impl Outcome {
    /// ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ of a flow.
    pub fn ratio(flow: &[f32]) -> f64 {
        match (flow.first(), flow.last()) {
            (Some(&a), Some(&b)) if b > 0.0 && a.is_finite() && b.is_finite() => {
                f64::from(a) / f64::from(b)
            }
            _ => f64::NAN,
        }
    }

    fn final_accuracy(&self) -> f64 {
        self.accuracy.last().map_or(f64::NAN, |a| a.1)
    }
}

/// The configurations, in table order.
pub fn configs() -> Vec<Config> {
    let adam = OptimizerConfig::adam().with_lr(3e-3);
    let sgd = OptimizerConfig::sgd(0.1, 0.0);
    let mut v = vec![
        Config {
            name: "RNN (tanh)".into(),
            cell: CellKind::RnnTanh,
            sigma: None,
            optimizer: adam,
            clip: Clip::Norm(1.0),
        },
        Config {
            name: "LSTM".into(),
            cell: CellKind::Lstm,
            sigma: None,
            optimizer: adam,
            clip: Clip::Norm(1.0),
        },
        Config {
            name: "GRU".into(),
            cell: CellKind::Gru,
            sigma: None,
            optimizer: adam,
            clip: Clip::Norm(1.0),
        },
    ];
    for s in [0.5, 1.0, 2.0] {
        for clip in [false, true] {
            v.push(Config {
                name: format!("RNN σ={s}{}", if clip { " clip" } else { "" }),
                cell: CellKind::RnnTanh,
                sigma: Some(s),
                optimizer: sgd,
                clip: if clip { Clip::Norm(1.0) } else { Clip::None },
            });
        }
    }
    v
}

/// A batch of the delayed-recall task: x `(T, B, 2)` time-major, targets `(B, 1)`.
fn recall_batch(rng: &mut Rng, seq: usize, batch: usize) -> (Vec<f32>, Vec<f32>) {
    let mut x = vec![0.0f32; seq * batch * 2];
    let mut y = vec![0.0f32; batch];
    for (b, yb) in y.iter_mut().enumerate() {
        let v = rng.uniform(-1.0, 1.0) as f32;
        x[b * 2] = v;
        x[b * 2 + 1] = 1.0;
        *yb = v;
    }
    (x, y)
}

/// A random `n × n` orthogonal matrix (Gram-Schmidt on Gaussian columns), row-major.
fn orthogonal(rng: &mut Rng, n: usize) -> Vec<f64> {
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(n);
    while q.len() < n {
        let mut v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        for u in &q {
            let d: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= d * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-6 {
            q.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    q.into_iter().flatten().collect()
}

/// Sets W_hh to σ·Q, or opens the LSTM's forget / GRU's update gate (bias sum +4).
fn prepare(gpu: &Gpu, model: &SeqModel, cfg: &Config, rng: &mut Rng) -> anyhow::Result<()> {
    let rnn = &model.rnn;
    let h = rnn.cfg.hidden_size;
    let mut flat = gpu.read(&rnn.params)?;
    let range = |kind| {
        rnn.layout
            .find(0, 0, kind)
            .map(|e| e.range())
            .context("a parameter of layer 0")
    };
    if let Some(s) = cfg.sigma {
        let q = orthogonal(rng, h);
        for (w, qv) in flat[range(ParamKind::WeightHh)?].iter_mut().zip(&q) {
            *w = (s * qv) as f32;
        }
    }
    // The gate's rows: LSTM [i | f | g | o] -> f, GRU [r | z | n] -> z: rows H..2H.
    if matches!(cfg.cell, CellKind::Lstm | CellKind::Gru) {
        for kind in [ParamKind::BiasIh, ParamKind::BiasHh] {
            let r = range(kind)?;
            for b in &mut flat[r.start + h..r.start + 2 * h] {
                *b = 2.0;
            }
        }
    }
    gpu.write(&rnn.params, &flat)?;
    rnn.params_changed();
    Ok(())
}

/// Held-out accuracy: |prediction − v| < 0.1.
fn accuracy(gpu: &Gpu, model: &SeqModel, x: &recur::Tensor, y: &[f32]) -> anyhow::Result<f64> {
    let out = model.forward(gpu, SeqInput::Dense(x), None, None)?;
    let pred = gpu.read(&out.out)?;
    let hits = pred
        .iter()
        .zip(y)
        .filter(|(p, t)| (*p - *t).abs() < 0.1)
        .count();
    Ok(hits as f64 / y.len() as f64)
}

/// Trains one configuration and measures it.
pub fn run_config(gpu: &Gpu, setup: &Setup, cfg: &Config, seed: u64) -> anyhow::Result<Outcome> {
    let seq = setup.seq();
    let rnn_cfg = RnnConfig::new(cfg.cell, 2, setup.hidden);
    let mcfg = SeqModelConfig::new(None, rnn_cfg, 1).last_step();
    let mut rng = Rng::new(seed);
    let model = SeqModel::init(gpu, mcfg, &mut rng)?;
    prepare(gpu, &model, cfg, &mut rng)?;
    let tcfg = TrainConfig {
        optimizer: cfg.optimizer,
        clip: cfg.clip,
        log_every: 1,
        max_in_flight: 1,
    };
    let mut trainer = Trainer::new(gpu, model, tcfg, TrainMode::Independent)?;
    // The held-out set comes from its own seed: the same for every configuration.
    let (ex, ey) = recall_batch(&mut Rng::new(u64::MAX - 1), seq, setup.eval_rows);
    let ex = gpu.tensor("eval.x", &[seq, setup.eval_rows, 2], &ex)?;
    let mut out = Outcome {
        name: cfg.name.clone(),
        init_flow: Vec::new(),
        final_flow: Vec::new(),
        flows: Vec::new(),
        sigma: Vec::new(),
        accuracy: vec![(0, accuracy(gpu, &trainer.model, &ex, &ey)?)],
        losses: Vec::new(),
        diverged_at: None,
    };
    let mut data = Rng::new(seed ^ 0x5eed);
    for step in 1..=setup.steps {
        if step == 1 || step % setup.eval_every == 0 {
            out.sigma
                .push((step - 1, trainer.model.rnn.sigma_max_hh(gpu)?[0]));
        }
        let (x, y) = recall_batch(&mut data, seq, setup.batch);
        let x = gpu.tensor("x", &[seq, setup.batch, 2], &x)?;
        let y = gpu.tensor("y", &[setup.batch, 1], &y)?;
        let flows = trainer.step_with_gradient_flow(
            gpu,
            &[Batch {
                input: SeqInput::Dense(&x),
                targets: Targets::Dense(&y),
            }],
        )?;
        let loss = trainer.read_loss(gpu)?;
        let flow = flows
            .first()
            .context("one gradient flow per micro-batch")?
            .norms(0, 0)
            .to_vec();
        out.losses.push(loss);
        if step == 1 {
            out.init_flow = flow.clone();
        }
        if flow.iter().all(|v| v.is_finite()) {
            out.final_flow = flow.clone();
        }
        out.flows.push((step, flow));
        if !loss.is_finite() {
            out.diverged_at = Some(step);
            out.accuracy.push((step, 0.0));
            break;
        }
        if step % setup.eval_every == 0 || step == setup.steps {
            out.accuracy
                .push((step, accuracy(gpu, &trainer.model, &ex, &ey)?));
        }
    }
    if out.diverged_at.is_none() {
        out.sigma
            .push((setup.steps, trainer.model.rnn.sigma_max_hh(gpu)?[0]));
    }
    Ok(out)
}

/// The table printed at the end.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut s = format!(
        "{:<18} {:>16} {:>16} {:>10} {:>12}\n",
        "configuration", "ratio at init", "ratio at end", "accuracy", "loss finite"
    );
    s += "                   (‖∂L/∂h_1‖ / ‖∂L/∂h_T‖)\n";
    for o in outcomes {
        let (finite, end) = match o.diverged_at {
            None => (
                "yes".to_string(),
                format!("{:.3e}", Outcome::ratio(&o.final_flow)),
            ),
            Some(step) => (format!("no (step {step})"), "diverged".to_string()),
        };
        s += &format!(
            "{:<18} {:>16.3e} {:>16} {:>9.1}% {:>12}\n",
            o.name,
            Outcome::ratio(&o.init_flow),
            end,
            100.0 * o.final_accuracy(),
            finite
        );
    }
    s
}

/// `recur gradients`.
pub fn gradients(a: &GradientsArgs) -> anyhow::Result<()> {
    let lag = a.lag.unwrap_or(if a.quick { 12 } else { 50 });
    let steps = a.steps.unwrap_or(if a.quick { 12 } else { 300 });
    if !(1..=10_000).contains(&lag) || !(1..=1_000_000).contains(&steps) {
        anyhow::bail!("--lag must be in 1..=10000 and --steps in 1..=1000000");
    }
    let setup = Setup {
        lag,
        hidden: if a.quick { 8 } else { 32 },
        batch: if a.quick { 8 } else { 32 },
        steps,
        eval_every: if a.quick { 4 } else { 10 },
        eval_rows: if a.quick { 32 } else { 256 },
    };
    let gpu = Gpu::new()?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("--out {}: creating the folder", a.out.display()))?;
    println!(
        "delayed recall, lag {lag} (T = {}), hidden {}, batch {}, {steps} steps a configuration",
        setup.seq(),
        setup.hidden,
        setup.batch
    );
    let start = Instant::now();
    let mut outcomes = Vec::new();
    if let Some(o) = &a.only {
        if !configs().iter().any(|c| c.name.contains(o.as_str())) {
            anyhow::bail!("--only {o}: no configuration has that in its name");
        }
    }
    for (i, cfg) in configs().iter().enumerate() {
        if a.only
            .as_ref()
            .is_some_and(|o| !cfg.name.contains(o.as_str()))
        {
            continue;
        }
        let t = Instant::now();
        let o = run_config(&gpu, &setup, cfg, a.seed.wrapping_add(i as u64))?;
        println!(
            "  {:<18} {:>5.1} s  final loss {:.4}",
            cfg.name,
            t.elapsed().as_secs_f64(),
            o.losses.last().copied().unwrap_or(f32::NAN)
        );
        outcomes.push(o);
    }
    let written = gradients_figures::write_all(&a.out, &setup, &outcomes)?;
    println!();
    print!("{}", table(&outcomes));
    println!(
        "\n{} configurations in {:.1} s; figures: {}",
        outcomes.len(),
        start.elapsed().as_secs_f64(),
        written.join(", ")
    );
    Ok(())
}
