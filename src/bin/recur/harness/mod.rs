//! The benchmark harness behind `recur bench` (part of the binary, not of the library): the shared suites, timing of forward and
//! training steps (wall time around record + submit + wait, and GPU time per phase from
//! timestamp queries), FLOP counts, the host-loop baseline, and the matmul ceiling.
//!
//! Wall time includes recording the sequence on the host (building the uniform arena and
//! bind groups) because users pay it; every step is exactly one queue submission, which
//! [`Timing::submissions`] checks.

pub mod host_loop;

use serde::Deserialize;

use recur::gpu::{Gpu, Recorder, Tensor};
use recur::kernels::matmul::{encode_matmul, Gemm, MatRef};
use recur::rng::Rng;
use recur::rnn::{CellKind, ParamLayout, Rnn, RnnConfig, WeightStorage};
use recur::{Error, Result};

/// `benches/suites.json`: the shapes shared with the PyTorch peer
/// (`benches/peers/torch_rnn.py`).
pub const SUITES_JSON: &str = include_str!("../../../../benches/suites.json");

/// What one benchmark line measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Inference: nothing kept for backward.
    Forward,
    /// Forward, then backward of `sum(y * dy)` with all weight gradients (x needs no
    /// gradient, as in the peers: [`Rnn::record_weight_backward`]).
    Train,
}

impl Mode {
    /// `forward` or `train`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Forward => "forward",
            Mode::Train => "train",
        }
    }
}

/// One shape of a suite (the schema of `suites.json`).
#[derive(Clone, Debug, Deserialize)]
pub struct BenchShape {
    /// `lstm`, `gru` or `rnn`.
    pub cell: String,
    /// Input features.
    pub input: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Two directions.
    pub bidirectional: bool,
    /// Sequence length T.
    pub seq: usize,
    /// Batch B.
    pub batch: usize,
    /// Forward or train.
    pub mode: Mode,
}

impl BenchShape {
    /// The RNN config of this shape (time-first, biased, tanh for `rnn`).
    pub fn config(&self) -> Result<RnnConfig> {
        let cell = CellKind::parse(&self.cell)
            .ok_or_else(|| Error::InvalidConfig(format!("unknown cell {:?}", self.cell)))?;
        Ok(RnnConfig::new(cell, self.input, self.hidden)
            .layers(self.layers)
            .bidirectional(self.bidirectional))
    }

    /// Floating-point operations of one call: the gate GEMMs (2·B·T·(in + H)·G·H a layer and
    /// direction) forward, three times that for training (forward, dX/dh, dW) less the first
    /// layer's dX (2·B·T·I·G·H a direction), which the train rows do not compute.
    pub fn flops(&self) -> Result<f64> {
        let cfg = self.config()?;
        let rows_gates = 2.0 * (self.seq * self.batch) as f64 * cfg.gate_rows() as f64;
        let mut f = 0.0;
        for l in 0..cfg.num_layers {
            f += rows_gates * (cfg.layer_input_size(l) + cfg.hidden_size) as f64;
        }
        let d = cfg.num_directions() as f64;
        Ok(match self.mode {
            Mode::Forward => d * f,
            Mode::Train => d * (3.0 * f - rows_gates * cfg.input_size as f64),
        })
    }

    /// A short label: `lstm I=64 H=128 L=1 T=32 B=16 train`.
    pub fn label(&self) -> String {
        format!(
            "{} I={} H={} L={}{} T={} B={} {}",
            self.cell,
            self.input,
            self.hidden,
            self.layers,
            if self.bidirectional { " bi" } else { "" },
            self.seq,
            self.batch,
            self.mode.name()
        )
    }
}

/// The shapes of suite `name` (`cpu` or `gpu`).
pub fn suite(name: &str) -> Result<Vec<BenchShape>> {
    let v: serde_json::Value = serde_json::from_str(SUITES_JSON)
        .map_err(|e| Error::InvalidConfig(format!("suites.json: {e}")))?;
    let list = v
        .get(name)
        .ok_or_else(|| Error::InvalidConfig(format!("no suite {name:?} (try cpu or gpu)")))?;
    serde_json::from_value(list.clone())
        .map_err(|e| Error::InvalidConfig(format!("suites.json, suite {name}: {e}")))
}

/// What timing one shape gives.
#[derive(Clone, Debug, Default)]
pub struct Timing {
    /// Median wall time of one call, ms (record + submit + wait).
    pub wall_ms: f64,
    /// Median host time of one call, ms: recording the sequence and submitting it, without
    /// the wait (what the CPU spends per call; the rest of `wall_ms` is the GPU's).
    pub host_ms: f64,
    /// Median GPU time of one call (first pass start to last pass end), ms, when the
    /// adapter has timestamp queries.
    pub gpu_ms: Option<f64>,
    /// GPU time by phase of the last call, ms.
    pub phases: Vec<(&'static str, f64)>,
    /// Queue submissions of one call.
    pub submissions: u64,
    /// Dispatches of one call.
    pub dispatches: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// Random inputs for a shape: the RNN, x and dy.
fn setup(gpu: &Gpu, shape: &BenchShape) -> Result<(Rnn, Tensor, Tensor)> {
    let cfg = shape.config()?;
    let layout = ParamLayout::new(&cfg);
    let mut rng = Rng::new(7);
    let k = 1.0 / (cfg.hidden_size as f32).sqrt();
    let rnn = Rnn::new(gpu, cfg.clone(), &rng.vec_uniform_f32(layout.total, -k, k))?;
    let x = gpu.tensor(
        "bench.x",
        &[shape.seq, shape.batch, cfg.input_size],
        &rng.vec_normal_f32(shape.seq * shape.batch * cfg.input_size),
    )?;
    let dy = gpu.tensor(
        "bench.dy",
        &[shape.seq, shape.batch, cfg.output_size()],
        &rng.vec_normal_f32(shape.seq * shape.batch * cfg.output_size()),
    )?;
    Ok((rnn, x, dy))
}

/// Times `reps` calls of recur on `shape` after two warm-up calls.
pub fn time_shape(gpu: &Gpu, shape: &BenchShape, reps: usize) -> Result<Timing> {
    time_shape_with(gpu, shape, reps, WeightStorage::F32)
}

/// [`time_shape`] with the inference passes reading their recurrent weights as `weights`
/// (training shapes read f32 whatever it says).
pub fn time_shape_with(
    gpu: &Gpu,
    shape: &BenchShape,
    reps: usize,
    weights: WeightStorage,
) -> Result<Timing> {
    let (mut rnn, x, dy) = setup(gpu, shape)?;
    rnn.weight_storage = weights;
    let mut walls = Vec::new();
    let mut hosts = Vec::new();
    let mut gpus = Vec::new();
    let mut timing = Timing::default();
    for rep in 0..reps + 2 {
        let record = |profile: bool| -> Result<Recorder<'_>> {
            let mut rec = Recorder::new(gpu);
            if profile {
                rec.profile();
            }
            if shape.mode == Mode::Train {
                let (_, saved) = rnn.record_train(&mut rec, &x, None, None)?;
                // x needs no gradient, as in both peers.
                rnn.record_weight_backward(&mut rec, &saved, &dy, None, None, false)?;
            } else {
                rnn.record_inference(&mut rec, &x, None, None)?;
            }
            Ok(rec)
        };
        // Wall time without profiling (its timestamp readback would add a wait) ...
        let before = gpu.submissions();
        let start = std::time::Instant::now();
        let rec = record(false)?;
        let dispatches = rec.dispatch_count();
        rec.submit()?;
        let host = start.elapsed().as_secs_f64() * 1e3;
        gpu.wait()?;
        let wall = start.elapsed().as_secs_f64() * 1e3;
        let submissions = gpu.submissions() - before;
        // ... and GPU time from a profiled twin.
        let profile = record(true)?.run_profiled()?;
        if rep >= 2 {
            walls.push(wall);
            hosts.push(host);
            if !profile.phases.is_empty() {
                gpus.push(profile.total_ms);
            }
            timing.phases = profile.phases;
            timing.dispatches = dispatches;
            timing.submissions = submissions;
        }
    }
    timing.wall_ms = median(walls);
    timing.host_ms = median(hosts);
    timing.gpu_ms = (!gpus.is_empty()).then(|| median(gpus));
    Ok(timing)
}

/// The error of f16 recurrent weights on `shape`'s forward output: ‖y_f16 − y_f32‖ / ‖y_f32‖
/// (the same random weights and input as the timing).
pub fn f16_weight_error(gpu: &Gpu, shape: &BenchShape) -> Result<f64> {
    let (mut rnn, x, _) = setup(gpu, shape)?;
    let y32 = gpu.read(&rnn.forward(gpu, &x, None, None)?.y)?;
    rnn.weight_storage = WeightStorage::F16;
    let y16 = gpu.read(&rnn.forward(gpu, &x, None, None)?.y)?;
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (a, b) in y32.iter().zip(&y16) {
        num += (f64::from(*a) - f64::from(*b)).powi(2);
        den += f64::from(*a).powi(2);
    }
    Ok((num / den.max(f64::MIN_POSITIVE)).sqrt())
}

/// Median latency (ms) of one streamed LSTM step (`RnnStream::push` of T=1, B=1) with
/// `input` features and `hidden` units and `weights` storage, over `pushes` pushes after ten
/// warm-up ones: push and wait for the GPU, and push and read the output back.
pub fn time_stream(
    gpu: &Gpu,
    input: usize,
    hidden: usize,
    pushes: usize,
    weights: recur::WeightStorage,
) -> Result<(f64, f64)> {
    let cfg = RnnConfig::new(CellKind::Lstm, input, hidden);
    let layout = ParamLayout::new(&cfg);
    let mut rng = Rng::new(5);
    let k = 1.0 / (hidden as f32).sqrt();
    let mut rnn = Rnn::new(gpu, cfg, &rng.vec_uniform_f32(layout.total, -k, k))?;
    rnn.weight_storage = weights;
    let x = gpu.tensor("bench.x", &[1, 1, input], &rng.vec_normal_f32(input))?;
    let mut stream = recur::RnnStream::new(gpu, &rnn, 1)?;
    let mut waits = Vec::new();
    let mut reads = Vec::new();
    for i in 0..pushes.saturating_add(10) {
        let start = std::time::Instant::now();
        stream.push(gpu, &rnn, &x)?;
        gpu.wait()?;
        let wait = start.elapsed().as_secs_f64() * 1e3;
        let start = std::time::Instant::now();
        let y = stream.push(gpu, &rnn, &x)?;
        gpu.read(&y)?;
        let read = start.elapsed().as_secs_f64() * 1e3;
        if i >= 10 {
            waits.push(wait);
            reads.push(read);
        }
    }
    Ok((median(waits), median(reads)))
}

/// Median time (ms) of an `m x k · k x n` GEMM, and its GFLOP/s: `C = op(A)·op(B)` with A
/// stored `[k, m]` when `trans_a` (else `[m, k]`) and B stored `[n, k]` when `trans_b` (else
/// `[k, n]`).
pub fn time_matmul(
    gpu: &Gpu,
    (m, n, k): (usize, usize, usize),
    (trans_a, trans_b): (bool, bool),
    reps: usize,
) -> Result<(f64, f64)> {
    let mut rng = Rng::new(3);
    let a = gpu.tensor("bench.a", &[m, k], &rng.vec_normal_f32(m * k))?;
    let b = gpu.tensor("bench.b", &[n, k], &rng.vec_normal_f32(n * k))?;
    let (lda, ldb) = (if trans_a { m } else { k }, if trans_b { k } else { n });
    let c = gpu.zeros("bench.c", &[m, n])?;
    let mut walls = Vec::new();
    let mut gpus = Vec::new();
    for rep in 0..reps + 1 {
        let start = std::time::Instant::now();
        let mut rec = Recorder::new(gpu);
        rec.profile();
        encode_matmul(
            &mut rec,
            &Gemm {
                m,
                n,
                k,
                a: MatRef::new(&a.buffer, 0, lda),
                trans_a,
                b: MatRef::new(&b.buffer, 0, ldb),
                trans_b,
                bias: None,
                c: MatRef::new(&c.buffer, 0, n),
                accumulate: false,
            },
        )?;
        let profile = rec.run_profiled()?;
        if rep > 0 {
            walls.push(start.elapsed().as_secs_f64() * 1e3);
            if profile.total_ms > 0.0 {
                gpus.push(profile.total_ms);
            }
        }
    }
    // GPU time where the adapter measures it, wall time otherwise.
    let ms = if gpus.is_empty() {
        median(walls)
    } else {
        median(gpus)
    };
    Ok((ms, 2.0 * (m * n * k) as f64 / ms / 1e6))
}

#[cfg(test)]
mod tests;
