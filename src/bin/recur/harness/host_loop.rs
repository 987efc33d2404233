//! The baseline recur is held against: an LSTM run the way a general tensor library runs
//! it — a host loop over time steps issuing separate matmul and elementwise dispatches
//! (x_t·W_ihᵀ, h·W_hhᵀ, add, four gate activations, five cell-update ops, a copy), and for
//! training the autograd mirror of each op, with per-step weight-gradient GEMMs.
//!
//! It is generous to the baseline: tensors come from a pool allocated before timing (as a
//! caching allocator would give them), and each time step's ops share one submission
//! (eager wgpu backends batch a few ops per submit) instead of one submission per op.
//! Its result is checked against recur's fused path in a test, so it is a real LSTM.

use recur::gpu::{Gpu, Recorder, Tensor};
use recur::kernels::eager::{encode_binary, encode_unary, Binary, Unary};
use recur::kernels::matmul::{encode_matmul, Gemm, MatRef};
use recur::kernels::util::encode_sum_rows;
use recur::rnn::{ParamKind, Rnn};
use recur::Result;

/// Per-step tensors of the eager LSTM (each its own buffer, as eager ops allocate).
struct StepBufs {
    a: Tensor,
    b: Tensor,
    g: Tensor,
    i: Tensor,
    f: Tensor,
    gg: Tensor,
    o: Tensor,
    fc: Tensor,
    ig: Tensor,
    c: Tensor,
    tc: Tensor,
    h: Tensor,
}

/// What the baseline returns: the output and, for training, the gradients. `recur bench`
/// only times it; the harness tests check every field against the fused path.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct HostLoopResult {
    /// `(T, B, H)`.
    pub y: Tensor,
    /// Flat parameter gradients (training only), in the layout of the `Rnn`.
    pub grads: Option<Tensor>,
    /// `(T, B, I)` (training with the input's gradient only).
    pub dx: Option<Tensor>,
    /// Queue submissions made.
    pub submissions: u64,
}

/// A one-layer, one-direction LSTM as an eager host loop. Only the shapes the bench needs
/// (one layer, forward direction, zero initial state) are supported.
pub struct HostLoopLstm {
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    steps: Vec<StepBufs>,
    zeros: Tensor,
    y: Tensor,
    train: Option<TrainBufs>,
}

struct TrainBufs {
    grads: Tensor,
    dx: Option<Tensor>,
    dg: Tensor,
    dh: Vec<Tensor>,
    dc: Vec<Tensor>,
    tmp: Vec<Tensor>,
}

fn b1(t: &Tensor) -> (&wgpu::Buffer, usize, usize) {
    (&t.buffer, 0, *t.shape.last().unwrap_or(&1))
}

impl HostLoopLstm {
    /// Allocates the pool for `seq` x `batch` on `rnn` (which must be a 1-layer
    /// unidirectional LSTM; other shapes are an `InvalidConfig` error), for training when
    /// `train`, then with the input's gradient when `input_grad`.
    pub fn new(
        gpu: &Gpu,
        rnn: &Rnn,
        seq: usize,
        batch: usize,
        train: bool,
        input_grad: bool,
    ) -> Result<Self> {
        let cfg = &rnn.cfg;
        if cfg.cell != recur::CellKind::Lstm
            || cfg.num_layers != 1
            || cfg.bidirectional
            || cfg.proj_size > 0
            || !cfg.bias
        {
            return Err(recur::Error::InvalidConfig(
                "the host-loop baseline is a 1-layer unidirectional biased LSTM".into(),
            ));
        }
        let (h, i) = (cfg.hidden_size, cfg.input_size);
        let z = |n: &str, c: usize| gpu.zeros(n, &[batch, c]);
        let mut steps = Vec::with_capacity(seq);
        for _ in 0..seq {
            steps.push(StepBufs {
                a: z("eager.a", 4 * h)?,
                b: z("eager.b", 4 * h)?,
                g: z("eager.g", 4 * h)?,
                i: z("eager.i", h)?,
                f: z("eager.f", h)?,
                gg: z("eager.gg", h)?,
                o: z("eager.o", h)?,
                fc: z("eager.fc", h)?,
                ig: z("eager.ig", h)?,
                c: z("eager.c", h)?,
                tc: z("eager.tc", h)?,
                h: z("eager.h", h)?,
            });
        }
        let train = if train {
            Some(TrainBufs {
                grads: gpu.zeros("eager.grads", &[rnn.layout.total])?,
                dx: if input_grad {
                    Some(gpu.zeros("eager.dx", &[seq, batch, i])?)
                } else {
                    None
                },
                dg: gpu.zeros("eager.dg", &[batch, 4 * h])?,
                dh: (0..2).map(|_| z("eager.dh", h)).collect::<Result<_>>()?,
                dc: (0..2).map(|_| z("eager.dc", h)).collect::<Result<_>>()?,
                tmp: (0..8).map(|_| z("eager.tmp", h)).collect::<Result<_>>()?,
            })
        } else {
            None
        };
        Ok(HostLoopLstm {
            seq,
            batch,
            input: i,
            hidden: h,
            steps,
            zeros: z("eager.zeros", h)?,
            y: gpu.zeros("eager.y", &[seq, batch, h])?,
            train,
        })
    }

    /// Runs forward (and backward of `sum(y * dy)` when built for training), then waits.
    pub fn run(
        &self,
        gpu: &Gpu,
        rnn: &Rnn,
        x: &Tensor,
        dy: Option<&Tensor>,
    ) -> Result<HostLoopResult> {
        let before = gpu.submissions();
        let (t_n, b, h, i) = (self.seq, self.batch, self.hidden, self.input);
        let off = |k| rnn.layout.find(0, 0, k).map(|e| e.offset).unwrap_or(0);
        let (w_ih, w_hh, b_ih, b_hh) = (
            off(ParamKind::WeightIh),
            off(ParamKind::WeightHh),
            off(ParamKind::BiasIh),
            off(ParamKind::BiasHh),
        );
        let p = &rnn.params.buffer;
        let gemm =
            |rec: &mut Recorder, m, n, k, a: MatRef, ta, bm: MatRef, tb, bias, c: MatRef, acc| {
                encode_matmul(
                    rec,
                    &Gemm {
                        m,
                        n,
                        k,
                        a,
                        trans_a: ta,
                        b: bm,
                        trans_b: tb,
                        bias,
                        c,
                        accumulate: acc,
                    },
                )
            };
        let mr = |buffer, offset, ld| MatRef { buffer, offset, ld };
        for t in 0..t_n {
            let s = &self.steps[t];
            let (h_prev, c_prev) = if t == 0 {
                (&self.zeros, &self.zeros)
            } else {
                (&self.steps[t - 1].h, &self.steps[t - 1].c)
            };
            let mut rec = Recorder::new(gpu);
            gemm(
                &mut rec,
                b,
                4 * h,
                i,
                mr(&x.buffer, t * b * i, i),
                false,
                mr(p, w_ih, i),
                true,
                Some((p, b_ih)),
                mr(&s.a.buffer, 0, 4 * h),
                false,
            )?;
            gemm(
                &mut rec,
                b,
                4 * h,
                h,
                mr(&h_prev.buffer, 0, h),
                false,
                mr(p, w_hh, h),
                true,
                Some((p, b_hh)),
                mr(&s.b.buffer, 0, 4 * h),
                false,
            )?;
            encode_binary(
                &mut rec,
                Binary::Add,
                b1(&s.a),
                b1(&s.b),
                b1(&s.g),
                b,
                4 * h,
            )?;
            let chunk = |k: usize| (&s.g.buffer, k * h, 4 * h);
            encode_unary(&mut rec, Unary::Sigmoid, chunk(0), b1(&s.i), b, h)?;
            encode_unary(&mut rec, Unary::Sigmoid, chunk(1), b1(&s.f), b, h)?;
            encode_unary(&mut rec, Unary::Tanh, chunk(2), b1(&s.gg), b, h)?;
            encode_unary(&mut rec, Unary::Sigmoid, chunk(3), b1(&s.o), b, h)?;
            encode_binary(&mut rec, Binary::Mul, b1(&s.f), b1(c_prev), b1(&s.fc), b, h)?;
            encode_binary(&mut rec, Binary::Mul, b1(&s.i), b1(&s.gg), b1(&s.ig), b, h)?;
            encode_binary(&mut rec, Binary::Add, b1(&s.fc), b1(&s.ig), b1(&s.c), b, h)?;
            encode_unary(&mut rec, Unary::Tanh, b1(&s.c), b1(&s.tc), b, h)?;
            encode_binary(&mut rec, Binary::Mul, b1(&s.o), b1(&s.tc), b1(&s.h), b, h)?;
            encode_unary(
                &mut rec,
                Unary::Copy,
                b1(&s.h),
                (&self.y.buffer, t * b * h, h),
                b,
                h,
            )?;
            rec.submit()?;
        }
        let (Some(tb), Some(dy)) = (&self.train, dy) else {
            gpu.wait()?;
            return Ok(HostLoopResult {
                y: self.y.clone(),
                grads: None,
                dx: None,
                submissions: gpu.submissions() - before,
            });
        };
        let mut rec = Recorder::new(gpu);
        rec.clear(&tb.grads.buffer, 0, rnn.layout.total);
        rec.clear(&tb.dh[0].buffer, 0, b * h);
        rec.clear(&tb.dc[0].buffer, 0, b * h);
        rec.submit()?;
        for t in (0..t_n).rev() {
            let s = &self.steps[t];
            let (h_prev, c_prev) = if t == 0 {
                (&self.zeros, &self.zeros)
            } else {
                (&self.steps[t - 1].h, &self.steps[t - 1].c)
            };
            let (dh_next, dh_prev) = (&tb.dh[(t_n - 1 - t) % 2], &tb.dh[(t_n - t) % 2]);
            let (dc_next, dc_prev) = (&tb.dc[(t_n - 1 - t) % 2], &tb.dc[(t_n - t) % 2]);
            let [dh, d_o, dtc, dt, m, dc, u, v] = [0, 1, 2, 3, 4, 5, 6, 7].map(|k| &tb.tmp[k]);
            let mut rec = Recorder::new(gpu);
            encode_binary(
                &mut rec,
                Binary::Add,
                (&dy.buffer, t * b * h, h),
                b1(dh_next),
                b1(dh),
                b,
                h,
            )?;
            encode_binary(&mut rec, Binary::Mul, b1(dh), b1(&s.tc), b1(d_o), b, h)?;
            encode_binary(&mut rec, Binary::Mul, b1(dh), b1(&s.o), b1(dtc), b, h)?;
            encode_unary(&mut rec, Unary::DTanh, b1(&s.tc), b1(dt), b, h)?;
            encode_binary(&mut rec, Binary::Mul, b1(dtc), b1(dt), b1(m), b, h)?;
            encode_binary(&mut rec, Binary::Add, b1(dc_next), b1(m), b1(dc), b, h)?;
            encode_binary(&mut rec, Binary::Mul, b1(dc), b1(&s.f), b1(dc_prev), b, h)?;
            let dgs = |k: usize| (&tb.dg.buffer, k * h, 4 * h);
            // gate k: dG[:, k] = d(gate) * act'(gate)
            for (k, up, gate, act) in [
                (0, &s.gg, &s.i, Unary::DSigmoid),
                (1, c_prev, &s.f, Unary::DSigmoid),
                (2, &s.i, &s.gg, Unary::DTanh),
            ] {
                encode_binary(&mut rec, Binary::Mul, b1(dc), b1(up), b1(u), b, h)?;
                encode_unary(&mut rec, act, b1(gate), b1(v), b, h)?;
                encode_binary(&mut rec, Binary::Mul, b1(u), b1(v), dgs(k), b, h)?;
            }
            encode_unary(&mut rec, Unary::DSigmoid, b1(&s.o), b1(v), b, h)?;
            encode_binary(&mut rec, Binary::Mul, b1(d_o), b1(v), dgs(3), b, h)?;
            let dg = mr(&tb.dg.buffer, 0, 4 * h);
            gemm(
                &mut rec,
                b,
                h,
                4 * h,
                dg,
                false,
                mr(p, w_hh, h),
                false,
                None,
                mr(&dh_prev.buffer, 0, h),
                false,
            )?;
            gemm(
                &mut rec,
                4 * h,
                h,
                b,
                dg,
                true,
                mr(&h_prev.buffer, 0, h),
                false,
                None,
                mr(&tb.grads.buffer, w_hh, h),
                true,
            )?;
            gemm(
                &mut rec,
                4 * h,
                i,
                b,
                dg,
                true,
                mr(&x.buffer, t * b * i, i),
                false,
                None,
                mr(&tb.grads.buffer, w_ih, i),
                true,
            )?;
            encode_sum_rows(
                &mut rec,
                &tb.dg.buffer,
                0,
                4 * h,
                b,
                4 * h,
                &tb.grads.buffer,
                b_ih,
            )?;
            encode_sum_rows(
                &mut rec,
                &tb.dg.buffer,
                0,
                4 * h,
                b,
                4 * h,
                &tb.grads.buffer,
                b_hh,
            )?;
            if let Some(dx) = &tb.dx {
                gemm(
                    &mut rec,
                    b,
                    i,
                    4 * h,
                    dg,
                    false,
                    mr(p, w_ih, i),
                    false,
                    None,
                    mr(&dx.buffer, t * b * i, i),
                    false,
                )?;
            }
            rec.submit()?;
        }
        gpu.wait()?;
        Ok(HostLoopResult {
            y: self.y.clone(),
            grads: Some(tb.grads.clone()),
            dx: tb.dx.clone(),
            submissions: gpu.submissions() - before,
        })
    }
}

/// Median wall time (ms) of the host-loop baseline on a 1-layer LSTM shape.
pub fn time_host_loop(gpu: &Gpu, shape: &super::BenchShape, reps: usize) -> Result<f64> {
    let (rnn, x, dy) = super::setup(gpu, shape)?;
    let train = shape.mode == super::Mode::Train;
    // As the fused path's bench: x needs no gradient.
    let eager = HostLoopLstm::new(gpu, &rnn, shape.seq, shape.batch, train, false)?;
    let mut walls = Vec::new();
    for rep in 0..reps + 1 {
        let start = std::time::Instant::now();
        eager.run(gpu, &rnn, &x, train.then_some(&dy))?;
        if rep > 0 {
            walls.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(super::median(walls))
}
