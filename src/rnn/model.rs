//! The GPU RNN stack and the scheduler that records a whole sequence — every layer, both
//! directions, forward and (for training) backward — into one [`Recorder`], so it reaches the
//! queue as one submission with no readback inside.
//!
//! Plan for one (layer, direction), sequence length T, batch B, gates G:
//! - forward: `gx = X·W_ihᵀ + b_ih` for all T·B rows (one GEMM), then T fused step
//!   dispatches; direction 1 walks t = T-1..0.
//! - backward: T fused step dispatches in the opposite order, each taking the previous
//!   step's gate gradient through W_hh; then `dh0 += dG_first·W_hh`, `dW_ih += dGxᵀ·X`,
//!   `dW_hh += dGhᵀ·H_prev`, `db += Σ dG`, `dX (+)= dGx·W_ih`: large GEMMs, no atomics.
//!
//! Hidden states (`hs`) are kept per time step only when training, in T+1 slots of `[B, H]`
//! ordered by time: forward keeps h0 in slot 0 and h_t in slot t+1, reverse keeps h0 in slot
//! T and h_t in slot t, so `H_prev` for all steps is one contiguous `[T·B, H]` block (slots
//! 0..T forward, 1..T+1 reverse) and `dW_hh` is one GEMM. Inference keeps two slots and
//! alternates. The cell state of the LSTM follows the same scheme.
//!
//! An LSTM with a projection (`proj_size` P) keeps P-wide states: each forward step is the
//! fused cell kernel (writing `r = o*tanh(c)`) plus a `[B, H]·W_hrᵀ` GEMM into the state slot,
//! and the states are gathered into `y` after the loop; each backward step is
//! `lstm_proj_backward` (dh through W_hh) plus the cell kernel taking `dr = dh·W_hr`, and
//! `dW_hr` is one more GEMM over all steps.

use crate::error::{Error, Result};
use crate::gpu::{Arena, Gpu, Recorder, Tensor};
use crate::kernels::matmul::{encode_matmul, Gemm, MatRef};
use crate::kernels::step::{
    self, flags, BackwardBuffers, ForwardBuffers, ProjBackwardBuffers, StepBackParams, StepFamily,
    StepParams,
};
use crate::kernels::step_vec4;
use crate::kernels::u32_of;
use crate::kernels::util::{encode_copy_rows, encode_sum_rows, encode_transpose01};

use super::lengths::PackedPlan;
use super::{CellKind, ParamKind, ParamLayout, RnnConfig};

/// An RNN stack on the GPU: its config, layout, and the flat parameter and gradient buffers.
///
/// ```
/// # fn main() -> recur::Result<()> {
/// use recur::{CellKind, Gpu, ParamLayout, Rnn, RnnConfig};
/// let gpu = Gpu::new()?;
/// // torch.nn.GRU(3, 5, num_layers=2, bidirectional=True)
/// let cfg = RnnConfig::new(CellKind::Gru, 3, 5).layers(2).bidirectional(true);
/// let rnn = Rnn::new(&gpu, cfg.clone(), &vec![0.1; ParamLayout::new(&cfg).total])?;
/// let x = gpu.tensor("x", &[7, 2, 3], &[0.5; 7 * 2 * 3])?; // (T, B, I)
/// let out = rnn.forward(&gpu, &x, None, None)?; // one submission
/// assert_eq!(out.y.shape, [7, 2, 10]); // (T, B, D*H)
/// assert_eq!(out.hn.shape, [4, 2, 5]); // (L*D, B, H)
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Rnn {
    /// Shape of the stack.
    pub cfg: RnnConfig,
    /// Where each tensor lives in `params` and `grads`.
    pub layout: ParamLayout,
    /// All parameters, flat, in state_dict order.
    pub params: Tensor,
    /// Gradients, same layout as `params`.
    pub grads: Tensor,
}

/// What a forward pass returns.
#[derive(Debug)]
pub struct RnnOutput {
    /// `(T, B, D*H)`, or `(B, T, D*H)` with batch_first.
    pub y: Tensor,
    /// `(L*D, B, H)` (`(L*D, B, P)` with an LSTM projection).
    pub hn: Tensor,
    /// `(L*D, B, H)`, LSTM only.
    pub cn: Option<Tensor>,
}

/// Gradients of the inputs of a forward pass (parameter gradients are in [`Rnn::grads`]).
#[derive(Debug)]
pub struct InputGrads {
    /// Same shape as the input.
    pub dx: Tensor,
    /// `(L*D, B, H)` (`(L*D, B, P)` with an LSTM projection).
    pub dh0: Tensor,
    /// `(L*D, B, H)`, LSTM only.
    pub dc0: Option<Tensor>,
}

/// Per (layer, direction) tensors kept for backward.
#[derive(Debug)]
struct SavedDir {
    hs: Tensor,
    cs: Option<Tensor>,
    acts: Option<Tensor>,
    /// `o * tanh(c)` per step, LSTM with a projection only.
    rs: Option<Tensor>,
}

/// Activations a training forward keeps for [`Rnn::record_backward`].
#[derive(Debug)]
pub struct Saved {
    seq: usize,
    batch: usize,
    /// Layer 0 input, time-major.
    x: Tensor,
    /// Output of every layer, time-major.
    ys: Vec<Tensor>,
    dirs: Vec<SavedDir>,
    /// Per-row lengths of a variable-length batch (tensors above in its row order).
    lengths: Option<PackedPlan>,
}

/// Where a forward pass gets its buffers: new zeroed tensors, or an arena's slots (reused
/// from the last recording of the same shapes, not zeroed).
enum Buffers<'a> {
    Fresh,
    Arena(&'a mut Arena),
}

impl Buffers<'_> {
    fn zeros(&mut self, gpu: &Gpu, label: &str, shape: &[usize]) -> Result<Tensor> {
        match self {
            Buffers::Fresh => gpu.zeros(label, shape),
            Buffers::Arena(a) => a.take(gpu, label, shape),
        }
    }

    fn upload(&mut self, gpu: &Gpu, label: &str, data: &[f32]) -> Result<Tensor> {
        match self {
            Buffers::Fresh => gpu.tensor(label, &[data.len()], data),
            Buffers::Arena(a) => a.upload(gpu, label, data),
        }
    }

    /// Whether buffers may hold what an earlier recording left.
    fn reused(&self) -> bool {
        matches!(self, Buffers::Arena(_))
    }
}

/// Sequence length and batch of an input, from its shape and the layout.
fn seq_batch(cfg: &RnnConfig, x: &Tensor) -> Result<(usize, usize)> {
    if x.shape.len() != 3 || x.shape[2] != cfg.input_size {
        return Err(Error::Shape {
            what: format!(
                "input {} (0 = any)",
                if cfg.batch_first {
                    "(B, T, I)"
                } else {
                    "(T, B, I)"
                }
            ),
            expected: vec![0, 0, cfg.input_size],
            got: x.shape.clone(),
        });
    }
    let (t, b) = if cfg.batch_first {
        (x.shape[1], x.shape[0])
    } else {
        (x.shape[0], x.shape[1])
    };
    if t == 0 || b == 0 {
        return Err(Error::Shape {
            what: "input: sequence length and batch must be positive".into(),
            expected: vec![],
            got: x.shape.clone(),
        });
    }
    Ok((t, b))
}

fn check_shape(what: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.shape != expected {
        return Err(Error::Shape {
            what: what.to_string(),
            expected: expected.to_vec(),
            got: t.shape.clone(),
        });
    }
    Ok(())
}

impl Rnn {
    /// Uploads a stack with parameters `flat` (in [`ParamLayout`] order).
    pub fn new(gpu: &Gpu, cfg: RnnConfig, flat: &[f32]) -> Result<Rnn> {
        cfg.validate()?;
        let layout = ParamLayout::new(&cfg);
        if flat.len() != layout.total {
            return Err(Error::Shape {
                what: "flat parameters".into(),
                expected: vec![layout.total],
                got: vec![flat.len()],
            });
        }
        let params = gpu.tensor("rnn.params", &[layout.total], flat)?;
        let grads = gpu.zeros("rnn.grads", &[layout.total])?;
        Ok(Rnn {
            cfg,
            layout,
            params,
            grads,
        })
    }

    fn offset(&self, layer: usize, dir: usize, kind: ParamKind) -> Option<usize> {
        self.layout.find(layer, dir, kind).map(|e| e.offset)
    }

    fn weight_offset(&self, layer: usize, dir: usize, kind: ParamKind) -> Result<usize> {
        self.offset(layer, dir, kind).ok_or_else(|| {
            Error::InvalidConfig(format!("no {kind:?} for layer {layer} direction {dir}"))
        })
    }

    /// Shapes of h0/hn (`(L*D, B, P or H)`) and c0/cn (`(L*D, B, H)`).
    fn state_shapes(&self, batch: usize) -> ([usize; 3], [usize; 3]) {
        let ld = self.cfg.num_layers * self.cfg.num_directions();
        (
            [ld, batch, self.cfg.out_hidden()],
            [ld, batch, self.cfg.hidden_size],
        )
    }

    /// Runs the stack forward (inference: nothing is kept for backward) in one submission.
    pub fn forward(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<RnnOutput> {
        let mut rec = Recorder::new(gpu);
        let (out, _) = self.record_forward(&mut rec, x, h0, c0, false)?;
        rec.run()?;
        Ok(out)
    }

    /// Forward, then backward of `L = sum(y*dy) + sum(hn*dhn) + sum(cn*dcn)`, in one
    /// submission. Parameter gradients are written to [`Rnn::grads`] (overwritten).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        dy: &Tensor,
        dhn: Option<&Tensor>,
        dcn: Option<&Tensor>,
    ) -> Result<(RnnOutput, InputGrads)> {
        let mut rec = Recorder::new(gpu);
        let (out, saved) = self.record_forward(&mut rec, x, h0, c0, true)?;
        let saved = saved.ok_or_else(|| Error::Gpu("training forward kept nothing".into()))?;
        let grads = self.record_backward(&mut rec, &saved, dy, dhn, dcn, false)?;
        rec.run()?;
        Ok((out, grads))
    }

    /// Records the forward pass. With `train`, keeps what backward needs and returns it.
    pub fn record_forward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        train: bool,
    ) -> Result<(RnnOutput, Option<Saved>)> {
        self.record_forward_with(rec, x, h0, c0, train, &mut Buffers::Fresh, None)
    }

    /// Records an inference forward pass whose buffers come from `arena`: after the first
    /// call of a shape, nothing is allocated. The returned tensors are arena slots, valid
    /// until the next recording with the same arena (which overwrites them).
    pub fn record_inference_in(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        arena: &mut Arena,
    ) -> Result<RnnOutput> {
        arena.reset();
        let (out, _) =
            self.record_forward_with(rec, x, h0, c0, false, &mut Buffers::Arena(arena), None)?;
        Ok(out)
    }

    /// Runs a padded batch whose rows end at `lengths` (one per batch row, each in
    /// `1..=T`; PyTorch's `pack_padded_sequence` with `enforce_sorted=False`, ONNX's
    /// `sequence_lens`), inference, in one submission: outputs past a row's length are zero,
    /// `hn`/`cn` hold each row's state after its last step, and the reverse direction starts
    /// at each row's own last step. Each step runs over the rows still going only.
    pub fn forward_packed(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        lengths: &[usize],
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<RnnOutput> {
        let mut rec = Recorder::new(gpu);
        let (out, _) = self.record_forward_packed(&mut rec, x, lengths, h0, c0, false)?;
        rec.run()?;
        Ok(out)
    }

    /// [`Rnn::record_forward`] for a padded batch with per-row `lengths` (see
    /// [`Rnn::forward_packed`]); with `train`, [`Rnn::record_backward`] then gives zero
    /// gradients at the padded positions, as PyTorch does.
    pub fn record_forward_packed(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        lengths: &[usize],
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        train: bool,
    ) -> Result<(RnnOutput, Option<Saved>)> {
        let (seq, batch) = seq_batch(&self.cfg, x)?;
        let plan = PackedPlan::new(lengths, seq, batch)?;
        if self.cfg.proj_size > 0 {
            return Err(Error::InvalidConfig(
                "per-row lengths with an LSTM projection (proj_size) are not supported yet".into(),
            ));
        }
        self.record_forward_with(rec, x, h0, c0, train, &mut Buffers::Fresh, Some(plan))
    }

    #[allow(clippy::too_many_arguments)]
    fn record_forward_with(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        train: bool,
        bufs: &mut Buffers,
        lengths: Option<PackedPlan>,
    ) -> Result<(RnnOutput, Option<Saved>)> {
        let gpu = rec.gpu();
        let cfg = &self.cfg;
        let (seq, batch) = seq_batch(cfg, x)?;
        let (h_state, c_state) = self.state_shapes(batch);
        if let Some(h0) = h0 {
            check_shape("h0", h0, &h_state)?;
        }
        if let Some(c0) = c0 {
            if cfg.cell != CellKind::Lstm {
                return Err(Error::InvalidConfig(format!(
                    "c0 given to a {} stack",
                    cfg.cell
                )));
            }
            check_shape("c0", c0, &c_state)?;
        }
        if cfg.cell == CellKind::Lstm && h0.is_some() != c0.is_some() {
            // PyTorch takes an LSTM's state as the pair (h0, c0), or neither.
            return Err(Error::InvalidConfig(format!(
                "an LSTM takes h0 and c0 together (PyTorch's (h0, c0) pair), got {} without {}",
                if h0.is_some() { "h0" } else { "c0" },
                if h0.is_some() { "c0" } else { "h0" }
            )));
        }
        let (h, oh, d_n, gh) = (
            cfg.hidden_size,
            cfg.out_hidden(),
            cfg.num_directions(),
            cfg.gate_rows(),
        );
        let ow = d_n * oh;
        let (bh, bo) = (batch * h, batch * oh);
        let lstm = cfg.cell == CellKind::Lstm;
        let proj = cfg.proj_size > 0;
        let saves_acts = train && matches!(cfg.cell, CellKind::Lstm | CellKind::Gru);
        // States by time (see the module comment) when backward needs them, or when a
        // projection's states are gathered into y after the loop; else two alternating slots.
        // Per-row lengths keep them by time too: a reverse-direction row's h0 goes into the
        // slot its first step reads before the loop (see super::lengths).
        let by_time = train || proj || lengths.is_some();
        let plan = lengths.as_ref();

        let xt = if cfg.batch_first {
            let xt = bufs.zeros(gpu, "rnn.x_tm", &[seq, batch, cfg.input_size])?;
            rec.phase("layout");
            encode_transpose01(rec, &x.buffer, &xt.buffer, batch, seq, cfg.input_size)?;
            xt
        } else {
            x.clone()
        };
        // With lengths, everything inside runs with the rows sorted by length.
        let (xt, h0, c0) = match plan {
            Some(pl) => (
                pl.to_sorted(rec, &xt, "rnn.x_sorted")?,
                h0.map(|t| pl.to_sorted(rec, t, "rnn.h0_sorted"))
                    .transpose()?,
                c0.map(|t| pl.to_sorted(rec, t, "rnn.c0_sorted"))
                    .transpose()?,
            ),
            None => (xt, h0.cloned(), c0.cloned()),
        };
        let (h0, c0) = (h0.as_ref(), c0.as_ref());
        let hn = bufs.zeros(gpu, "rnn.hn", &h_state)?;
        let cn = if lstm {
            Some(bufs.zeros(gpu, "rnn.cn", &c_state)?)
        } else {
            None
        };
        let gx = bufs.zeros(gpu, "rnn.gx", &[seq * batch, gh])?;
        let slots = if by_time { seq + 1 } else { 2 };
        let mut ys: Vec<Tensor> = Vec::with_capacity(cfg.num_layers);
        let mut dirs = Vec::new();
        let relu = if cfg.cell == CellKind::RnnRelu {
            flags::RELU
        } else {
            0
        };
        let has_bias = if cfg.bias { flags::HAS_BIAS } else { 0 };
        let save = if saves_acts { flags::SAVE } else { 0 };
        let proj_flag = if proj { flags::PROJ } else { 0 };

        for layer in 0..cfg.num_layers {
            let input = if layer == 0 { &xt } else { &ys[layer - 1] };
            let in_w = cfg.layer_input_size(layer);
            let y = bufs.zeros(gpu, "rnn.y", &[seq, batch, ow])?;
            for dir in 0..d_n {
                let w_ih = self.weight_offset(layer, dir, ParamKind::WeightIh)?;
                let w_hh = self.weight_offset(layer, dir, ParamKind::WeightHh)?;
                let b_ih = self.offset(layer, dir, ParamKind::BiasIh);
                let b_hh = self.offset(layer, dir, ParamKind::BiasHh).unwrap_or(0);
                let w_hr = self.offset(layer, dir, ParamKind::WeightHr);
                rec.phase("input_gemm");
                encode_matmul(
                    rec,
                    &Gemm {
                        m: seq * batch,
                        n: gh,
                        k: in_w,
                        a: MatRef {
                            buffer: &input.buffer,
                            offset: 0,
                            ld: in_w,
                        },
                        trans_a: false,
                        b: MatRef {
                            buffer: &self.params.buffer,
                            offset: w_ih,
                            ld: in_w,
                        },
                        trans_b: true,
                        bias: b_ih.map(|o| (&self.params.buffer, o)),
                        c: MatRef {
                            buffer: &gx.buffer,
                            offset: 0,
                            ld: gh,
                        },
                        accumulate: false,
                    },
                )?;
                let hs = bufs.zeros(gpu, "rnn.hs", &[slots, batch, oh])?;
                let cs = if lstm {
                    Some(bufs.zeros(gpu, "rnn.cs", &[slots, batch, h])?)
                } else {
                    None
                };
                // The LSTM/GRU kernels declare the activation buffer even when they do not
                // save (SAVE off): inference binds a one-element placeholder.
                let acts = if saves_acts {
                    Some(bufs.zeros(gpu, "rnn.acts", &[seq, batch, 4 * h])?)
                } else if matches!(cfg.cell, CellKind::Lstm | CellKind::Gru) {
                    Some(bufs.zeros(gpu, "rnn.acts.unused", &[1])?)
                } else {
                    None
                };
                // o * tanh(c) before the projection: every step for backward, else one slot.
                let rs = if proj {
                    Some(bufs.zeros(gpu, "rnn.r", &[if train { seq } else { 1 }, batch, h])?)
                } else {
                    None
                };
                let first_slot = if by_time && dir == 1 { seq } else { 0 };
                let (sd_h, sd_c) = ((layer * d_n + dir) * bo, (layer * d_n + dir) * bh);
                // The first state is h0/c0, or zero: reused buffers hold old states. With
                // lengths, a reverse-direction group of rows of length L starts at t = L-1,
                // whose step reads slot L: its h0 rows go there.
                let starts: Vec<(usize, usize, usize)> = match plan {
                    Some(pl) if dir == 1 => pl
                        .groups
                        .iter()
                        .map(|&(len, r0, r1)| (len, r0, r1 - r0))
                        .collect(),
                    _ => vec![(first_slot, 0, batch)],
                };
                for &(slot, r0, n) in &starts {
                    match h0 {
                        Some(h0) => rec.copy(
                            &h0.buffer,
                            sd_h + r0 * oh,
                            &hs.buffer,
                            slot * bo + r0 * oh,
                            n * oh,
                        ),
                        None if bufs.reused() => rec.clear(&hs.buffer, first_slot * bo, bo),
                        None => {}
                    }
                    if let Some(cs) = &cs {
                        match c0 {
                            Some(c0) => rec.copy(
                                &c0.buffer,
                                sd_c + r0 * h,
                                &cs.buffer,
                                slot * bh + r0 * h,
                                n * h,
                            ),
                            None if bufs.reused() => rec.clear(&cs.buffer, first_slot * bh, bh),
                            None => {}
                        }
                    }
                }
                let family = StepFamily::choose(
                    gpu.prefers_direct_kernels(),
                    h,
                    oh,
                    batch,
                    proj,
                    &[w_hh, b_hh],
                );
                let fwd_bufs = ForwardBuffers {
                    params: &self.params.buffer,
                    gx: &gx.buffer,
                    hs: &hs.buffer,
                    cs: cs.as_ref().map(|c| &c.buffer),
                    y: rs.as_ref().map_or(&y.buffer, |r| &r.buffer),
                    acts: acts.as_ref().map(|a| &a.buffer),
                };
                // Small steps on a CPU adapter: every step in one dispatch (the per-step
                // parameters are collected in `table`); else one dispatch a step.
                let whole = step_vec4::whole_sequence(family, h, oh, gh / h, batch);
                let bind = if whole {
                    None
                } else {
                    Some(step::bind_step_forward(rec, cfg.cell, family, &fwd_bufs)?)
                };
                let mut steps = Vec::new();
                let mut last_slot = first_slot;
                rec.phase("steps");
                for s in 0..seq {
                    let t = if dir == 0 { s } else { seq - 1 - s };
                    // With lengths, the rows still going (the first ones: sorted by length).
                    let rows = plan.map_or(batch, |pl| pl.active[t]);
                    if rows == 0 {
                        continue;
                    }
                    let (prev, out) = match (by_time, dir) {
                        (true, 0) => (t, t + 1),
                        (true, _) => (t + 1, t),
                        (false, _) => (s % 2, (s + 1) % 2),
                    };
                    last_slot = out;
                    let r_off = if train { t * bh } else { 0 };
                    let (y_off, y_stride) = if proj {
                        (r_off, h)
                    } else {
                        (t * batch * ow + dir * oh, ow)
                    };
                    let p = StepParams {
                        batch: u32_of("batch", rows)?,
                        hidden: u32_of("hidden", h)?,
                        gx_off: u32_of("gx offset", t * batch * gh)?,
                        hprev_off: u32_of("hs offset", prev * bo)?,
                        hout_off: u32_of("hs offset", out * bo)?,
                        cprev_off: u32_of("cs offset", prev * bh)?,
                        cout_off: u32_of("cs offset", out * bh)?,
                        y_off: u32_of("y offset", y_off)?,
                        y_stride: u32_of("y stride", y_stride)?,
                        act_off: u32_of("acts offset", t * batch * 4 * h)?,
                        whh_off: u32_of("w_hh offset", w_hh)?,
                        bhh_off: u32_of("b_hh offset", b_hh)?,
                        flags: save | has_bias | relu | proj_flag,
                        state: u32_of("state width", oh)?,
                        _pad: [0; 2],
                    };
                    match bind {
                        Some(bind) => step::encode_step_forward(rec, bind, family, &p)?,
                        None => steps.push(p),
                    }
                    if let (Some(rs), Some(w_hr)) = (&rs, w_hr) {
                        // h_t = r_t · W_hrᵀ into its state slot.
                        encode_matmul(
                            rec,
                            &Gemm {
                                m: batch,
                                n: oh,
                                k: h,
                                a: MatRef {
                                    buffer: &rs.buffer,
                                    offset: r_off,
                                    ld: h,
                                },
                                trans_a: false,
                                b: MatRef {
                                    buffer: &self.params.buffer,
                                    offset: w_hr,
                                    ld: h,
                                },
                                trans_b: true,
                                bias: None,
                                c: MatRef {
                                    buffer: &hs.buffer,
                                    offset: out * bo,
                                    ld: oh,
                                },
                                accumulate: false,
                            },
                        )?;
                    }
                }
                if whole {
                    let table = bufs.upload(gpu, "rnn.steps", step_vec4::steps_table(&steps))?;
                    step_vec4::encode_sequence_forward(
                        rec, cfg.cell, family, &fwd_bufs, &steps, &table,
                    )?;
                }
                if proj {
                    // y[t, :, dir*P..] = h_t for all t: time-ordered slots 1..=T forward, 0..T reverse.
                    let src = if dir == 0 { bo } else { 0 };
                    rec.phase("layout");
                    encode_copy_rows(
                        rec,
                        &hs.buffer,
                        src,
                        oh,
                        &y.buffer,
                        dir * oh,
                        ow,
                        seq * batch,
                        oh,
                    )?;
                }
                // Final states: the last slot, or with lengths (forward direction) each group's
                // state after its own last step, in slot L.
                let ends: Vec<(usize, usize, usize)> = match plan {
                    Some(pl) if dir == 0 => pl
                        .groups
                        .iter()
                        .map(|&(len, r0, r1)| (len, r0, r1 - r0))
                        .collect(),
                    _ => vec![(last_slot, 0, batch)],
                };
                for &(slot, r0, n) in &ends {
                    rec.copy(
                        &hs.buffer,
                        slot * bo + r0 * oh,
                        &hn.buffer,
                        sd_h + r0 * oh,
                        n * oh,
                    );
                    if let (Some(cs), Some(cn)) = (&cs, &cn) {
                        rec.copy(
                            &cs.buffer,
                            slot * bh + r0 * h,
                            &cn.buffer,
                            sd_c + r0 * h,
                            n * h,
                        );
                    }
                }
                dirs.push(SavedDir { hs, cs, acts, rs });
            }
            ys.push(y);
        }
        let mut top = ys
            .last()
            .ok_or_else(|| Error::InvalidConfig("no layers".into()))?
            .clone();
        let (mut hn, mut cn) = (hn, cn);
        if let Some(pl) = plan {
            // Back to the caller's row order.
            top = pl.to_caller(rec, &top, "rnn.y_rows")?;
            hn = pl.to_caller(rec, &hn, "rnn.hn_rows")?;
            cn = cn
                .map(|c| pl.to_caller(rec, &c, "rnn.cn_rows"))
                .transpose()?;
        }
        let y = if cfg.batch_first {
            let yb = bufs.zeros(gpu, "rnn.y_bf", &[batch, seq, ow])?;
            rec.phase("layout");
            encode_transpose01(rec, &top.buffer, &yb.buffer, seq, batch, ow)?;
            yb
        } else {
            top
        };
        let out = RnnOutput { y, hn, cn };
        let saved = train.then_some(Saved {
            seq,
            batch,
            x: xt,
            ys,
            dirs,
            lengths,
        });
        Ok((out, saved))
    }

    /// Records backward of `L = sum(y*dy) + sum(hn*dhn) + sum(cn*dcn)` after a training
    /// [`Rnn::record_forward`]. Parameter gradients go to [`Rnn::grads`]: added to what is
    /// there with `accumulate`, else overwritten.
    pub fn record_backward(
        &self,
        rec: &mut Recorder,
        saved: &Saved,
        dy: &Tensor,
        dhn: Option<&Tensor>,
        dcn: Option<&Tensor>,
        accumulate: bool,
    ) -> Result<InputGrads> {
        let gpu = rec.gpu();
        let cfg = &self.cfg;
        let (seq, batch) = (saved.seq, saved.batch);
        if saved.ys.len() != cfg.num_layers
            || saved.dirs.len() != cfg.num_layers * cfg.num_directions()
            || saved
                .dirs
                .iter()
                .any(|d| d.hs.shape != [seq + 1, batch, cfg.out_hidden()])
        {
            return Err(Error::InvalidConfig(
                "the saved activations come from another stack or a forward without training"
                    .into(),
            ));
        }
        let (h, oh, d_n, gh) = (
            cfg.hidden_size,
            cfg.out_hidden(),
            cfg.num_directions(),
            cfg.gate_rows(),
        );
        let ow = d_n * oh;
        let (bh, bo) = (batch * h, batch * oh);
        let lstm = cfg.cell == CellKind::Lstm;
        let gru = cfg.cell == CellKind::Gru;
        let proj = cfg.proj_size > 0;
        let (h_state, c_state) = self.state_shapes(batch);
        let y_shape = if cfg.batch_first {
            [batch, seq, ow]
        } else {
            [seq, batch, ow]
        };
        check_shape("grad_output", dy, &y_shape)?;
        if let Some(t) = dhn {
            check_shape("dhn", t, &h_state)?;
        }
        if let Some(t) = dcn {
            check_shape("dcn", t, &c_state)?;
        }
        let dy_t = if cfg.batch_first {
            let t = gpu.zeros("rnn.dy_tm", &[seq, batch, ow])?;
            rec.phase("layout");
            encode_transpose01(rec, &dy.buffer, &t.buffer, batch, seq, ow)?;
            t
        } else {
            dy.clone()
        };
        // With lengths, backward runs in the forward's sorted row order too.
        let plan = saved.lengths.as_ref();
        let (dy_t, dhn, dcn) = match plan {
            Some(pl) => (
                pl.to_sorted(rec, &dy_t, "rnn.dy_sorted")?,
                dhn.map(|t| pl.to_sorted(rec, t, "rnn.dhn_sorted"))
                    .transpose()?,
                dcn.map(|t| pl.to_sorted(rec, t, "rnn.dcn_sorted"))
                    .transpose()?,
            ),
            None => (dy_t, dhn.cloned(), dcn.cloned()),
        };
        let (dhn, dcn) = (dhn.as_ref(), dcn.as_ref());
        if !accumulate {
            rec.clear(&self.grads.buffer, 0, self.layout.total);
        }
        // dh0/dc0 start as dhn/dcn and are the carries of the step kernels.
        let dh0 = gpu.zeros("rnn.dh0", &h_state)?;
        match dhn {
            Some(t) => rec.copy(&t.buffer, 0, &dh0.buffer, 0, t.numel()),
            None => rec.clear(&dh0.buffer, 0, dh0.numel()),
        }
        let dc0 = if lstm {
            let t = gpu.zeros("rnn.dc0", &c_state)?;
            match dcn {
                Some(s) => rec.copy(&s.buffer, 0, &t.buffer, 0, s.numel()),
                None => rec.clear(&t.buffer, 0, t.numel()),
            }
            Some(t)
        } else {
            None
        };
        let dgx = gpu.zeros("rnn.dgx", &[seq * batch, gh])?;
        let dgh_own = if gru {
            Some(gpu.zeros("rnn.dgh", &[seq * batch, gh])?)
        } else {
            None
        };
        let dgh = dgh_own.as_ref().unwrap_or(&dgx);
        // With a projection, each step's dh (P wide) is kept for dW_hr.
        let dhs = if proj {
            Some(gpu.zeros("rnn.dhs", &[seq, batch, oh])?)
        } else {
            None
        };
        let relu = if cfg.cell == CellKind::RnnRelu {
            flags::RELU
        } else {
            0
        };

        let mut d_out = dy_t;
        let mut dx_tm = None;
        for layer in (0..cfg.num_layers).rev() {
            let input = if layer == 0 {
                &saved.x
            } else {
                &saved.ys[layer - 1]
            };
            let in_w = cfg.layer_input_size(layer);
            let d_in = gpu.zeros("rnn.dx", &[seq, batch, in_w])?;
            for dir in 0..d_n {
                let sd = &saved.dirs[layer * d_n + dir];
                let w_ih = self.weight_offset(layer, dir, ParamKind::WeightIh)?;
                let w_hh = self.weight_offset(layer, dir, ParamKind::WeightHh)?;
                let w_hr = self.offset(layer, dir, ParamKind::WeightHr);
                let (carry_h, carry_c) = ((layer * d_n + dir) * bo, (layer * d_n + dir) * bh);
                let b_hh = self.offset(layer, dir, ParamKind::BiasHh).unwrap_or(0);
                let family = StepFamily::choose(
                    gpu.prefers_direct_kernels(),
                    h,
                    oh,
                    batch,
                    proj,
                    &[w_hh, b_hh],
                );
                let bwd_bufs = BackwardBuffers {
                    params: &self.params.buffer,
                    dy: dhs.as_ref().map_or(&d_out.buffer, |t| &t.buffer),
                    acts: sd.acts.as_ref().map(|a| &a.buffer),
                    hs: &sd.hs.buffer,
                    cs: sd.cs.as_ref().map(|c| &c.buffer),
                    dgx: &dgx.buffer,
                    dgh: dgh_own.as_ref().map(|t| &t.buffer),
                    carry_h: &dh0.buffer,
                    carry_c: dc0.as_ref().map(|t| &t.buffer),
                };
                // As forward: every step in one dispatch when they are small.
                let whole = step_vec4::whole_sequence(family, h, oh, gh / h, batch);
                let bind = if whole {
                    None
                } else {
                    Some(step::bind_step_backward(rec, cfg.cell, family, &bwd_bufs)?)
                };
                let mut table = Vec::new();
                let proj_bind = match &dhs {
                    Some(dhs) => Some(step::bind_proj_backward(
                        rec,
                        &ProjBackwardBuffers {
                            params: &self.params.buffer,
                            dy: &d_out.buffer,
                            dg: &dgx.buffer,
                            carry_h: &dh0.buffer,
                            dhs: &dhs.buffer,
                        },
                    )?),
                    None => None,
                };
                rec.phase("steps_backward");
                for s in 0..seq {
                    let t = if dir == 0 { seq - 1 - s } else { s };
                    // With lengths, the rows still going; a row's first step here reads the
                    // zero gate gradients of a step it never ran.
                    let rows = plan.map_or(batch, |pl| pl.active[t]);
                    if rows == 0 {
                        continue;
                    }
                    let (hp, ho) = if dir == 0 { (t, t + 1) } else { (t + 1, t) };
                    let has_next = if s > 0 { flags::HAS_NEXT } else { 0 };
                    // The gate gradient of the step processed just before (t+1 forward, t-1
                    // reverse); read only with HAS_NEXT.
                    let next_t = match (s, dir) {
                        (0, _) => 0,
                        (_, 0) => t + 1,
                        _ => t - 1,
                    };
                    let mut p = StepBackParams {
                        batch: u32_of("batch", rows)?,
                        hidden: u32_of("hidden", h)?,
                        dy_off: u32_of("dy offset", t * batch * ow + dir * oh)?,
                        dy_stride: u32_of("dy stride", ow)?,
                        dg_off: u32_of("dg offset", t * batch * gh)?,
                        dgn_off: u32_of("dg offset", next_t * batch * gh)?,
                        act_off: u32_of("acts offset", t * batch * 4 * h)?,
                        hprev_off: u32_of("hs offset", hp * bo)?,
                        hout_off: u32_of("hs offset", ho * bo)?,
                        cprev_off: u32_of("cs offset", hp * bh)?,
                        cout_off: u32_of("cs offset", ho * bh)?,
                        whh_off: u32_of("w_hh offset", w_hh)?,
                        carry_off: u32_of("carry offset", carry_h)?,
                        flags: has_next | relu,
                        grows: u32_of("proj size", oh)?,
                        _pad: 0,
                    };
                    if let (Some(pb), Some(w_hr)) = (proj_bind, w_hr) {
                        // dh_t = dy + carry + dG_next · W_hh into dhs[t] ...
                        let q = StepBackParams {
                            dg_off: u32_of("dhs offset", t * bo)?,
                            ..p
                        };
                        step::encode_proj_backward(rec, pb, &q)?;
                        // ... then the cell takes dr = dh_t · W_hr.
                        p.dy_off = u32_of("dhs offset", t * bo)?;
                        p.dy_stride = u32_of("dhs stride", oh)?;
                        p.whh_off = u32_of("w_hr offset", w_hr)?;
                        p.carry_off = u32_of("carry offset", carry_c)?;
                        p.flags = flags::PROJ;
                    }
                    match bind {
                        Some(bind) => step::encode_step_backward(rec, bind, family, &p)?,
                        None => table.push(p),
                    }
                }
                if whole {
                    let words = step_vec4::steps_table(&table);
                    let t = gpu.tensor("rnn.steps", &[words.len()], words)?;
                    step_vec4::encode_sequence_backward(
                        rec, cfg.cell, family, &bwd_bufs, &table, &t,
                    )?;
                }
                rec.phase("weight_grads");
                // dh0 += dG_h(first step) · W_hh, the first step being t = 0 forward and the
                // last t reverse; with lengths each reverse group's own last step L-1.
                let firsts: Vec<(usize, usize, usize)> = match plan {
                    Some(pl) if dir == 1 => pl
                        .groups
                        .iter()
                        .map(|&(len, r0, r1)| (len - 1, r0, r1 - r0))
                        .collect(),
                    _ => vec![(if dir == 0 { 0 } else { seq - 1 }, 0, batch)],
                };
                for &(t, r0, n) in &firsts {
                    encode_matmul(
                        rec,
                        &Gemm {
                            m: n,
                            n: oh,
                            k: gh,
                            a: MatRef {
                                buffer: &dgh.buffer,
                                offset: t * batch * gh + r0 * gh,
                                ld: gh,
                            },
                            trans_a: false,
                            b: MatRef {
                                buffer: &self.params.buffer,
                                offset: w_hh,
                                ld: oh,
                            },
                            trans_b: false,
                            bias: None,
                            c: MatRef {
                                buffer: &dh0.buffer,
                                offset: carry_h + r0 * oh,
                                ld: oh,
                            },
                            accumulate: true,
                        },
                    )?;
                }
                // dW_ih += dGxᵀ · X
                encode_matmul(
                    rec,
                    &Gemm {
                        m: gh,
                        n: in_w,
                        k: seq * batch,
                        a: MatRef {
                            buffer: &dgx.buffer,
                            offset: 0,
                            ld: gh,
                        },
                        trans_a: true,
                        b: MatRef {
                            buffer: &input.buffer,
                            offset: 0,
                            ld: in_w,
                        },
                        trans_b: false,
                        bias: None,
                        c: MatRef {
                            buffer: &self.grads.buffer,
                            offset: w_ih,
                            ld: in_w,
                        },
                        accumulate: true,
                    },
                )?;
                // dW_hh += dGhᵀ · H_prev (slots 0..T forward, 1..T+1 reverse)
                encode_matmul(
                    rec,
                    &Gemm {
                        m: gh,
                        n: oh,
                        k: seq * batch,
                        a: MatRef {
                            buffer: &dgh.buffer,
                            offset: 0,
                            ld: gh,
                        },
                        trans_a: true,
                        b: MatRef {
                            buffer: &sd.hs.buffer,
                            offset: if dir == 0 { 0 } else { bo },
                            ld: oh,
                        },
                        trans_b: false,
                        bias: None,
                        c: MatRef {
                            buffer: &self.grads.buffer,
                            offset: w_hh,
                            ld: oh,
                        },
                        accumulate: true,
                    },
                )?;
                if let (Some(dhs), Some(rs), Some(w_hr)) = (&dhs, &sd.rs, w_hr) {
                    // dW_hr += dHᵀ · R over all steps
                    encode_matmul(
                        rec,
                        &Gemm {
                            m: oh,
                            n: h,
                            k: seq * batch,
                            a: MatRef {
                                buffer: &dhs.buffer,
                                offset: 0,
                                ld: oh,
                            },
                            trans_a: true,
                            b: MatRef {
                                buffer: &rs.buffer,
                                offset: 0,
                                ld: h,
                            },
                            trans_b: false,
                            bias: None,
                            c: MatRef {
                                buffer: &self.grads.buffer,
                                offset: w_hr,
                                ld: h,
                            },
                            accumulate: true,
                        },
                    )?;
                }
                if let Some(b_ih) = self.offset(layer, dir, ParamKind::BiasIh) {
                    encode_sum_rows(
                        rec,
                        &dgx.buffer,
                        0,
                        gh,
                        seq * batch,
                        gh,
                        &self.grads.buffer,
                        b_ih,
                    )?;
                }
                if let Some(b_hh) = self.offset(layer, dir, ParamKind::BiasHh) {
                    encode_sum_rows(
                        rec,
                        &dgh.buffer,
                        0,
                        gh,
                        seq * batch,
                        gh,
                        &self.grads.buffer,
                        b_hh,
                    )?;
                }
                // dX (+)= dGx · W_ih
                encode_matmul(
                    rec,
                    &Gemm {
                        m: seq * batch,
                        n: in_w,
                        k: gh,
                        a: MatRef {
                            buffer: &dgx.buffer,
                            offset: 0,
                            ld: gh,
                        },
                        trans_a: false,
                        b: MatRef {
                            buffer: &self.params.buffer,
                            offset: w_ih,
                            ld: in_w,
                        },
                        trans_b: false,
                        bias: None,
                        c: MatRef {
                            buffer: &d_in.buffer,
                            offset: 0,
                            ld: in_w,
                        },
                        accumulate: dir > 0,
                    },
                )?;
            }
            if layer == 0 {
                dx_tm = Some(d_in);
                break;
            }
            d_out = d_in;
        }
        let mut dx_tm = dx_tm.ok_or_else(|| Error::InvalidConfig("no layers".into()))?;
        let (mut dh0, mut dc0) = (dh0, dc0);
        if let Some(pl) = plan {
            dx_tm = pl.to_caller(rec, &dx_tm, "rnn.dx_rows")?;
            dh0 = pl.to_caller(rec, &dh0, "rnn.dh0_rows")?;
            dc0 = dc0
                .map(|t| pl.to_caller(rec, &t, "rnn.dc0_rows"))
                .transpose()?;
        }
        let dx = if cfg.batch_first {
            let t = gpu.zeros("rnn.dx_bf", &[batch, seq, cfg.input_size])?;
            rec.phase("layout");
            encode_transpose01(rec, &dx_tm.buffer, &t.buffer, seq, batch, cfg.input_size)?;
            t
        } else {
            dx_tm
        };
        Ok(InputGrads { dx, dh0, dc0 })
    }
}

impl Rnn {
    /// Loads a stack from a PyTorch state_dict in a safetensors file: the tensors under
    /// `prefix` decide the cell, sizes, layers, directions, bias and projection (see
    /// [`super::state_dict::config_from_state_dict`]); f16, bf16 and f64 files load too.
    pub fn load_safetensors(
        gpu: &Gpu,
        path: &std::path::Path,
        prefix: &str,
        nonlinearity: Option<CellKind>,
    ) -> Result<Rnn> {
        let (tensors, meta) = crate::io::load(path)?;
        let (cfg, flat) =
            super::state_dict::config_from_state_dict(&tensors, prefix, nonlinearity, &meta)?;
        Rnn::new(gpu, cfg, &flat)
    }

    /// Saves the parameters under their state_dict names (with `prefix`) to a safetensors
    /// file that PyTorch's `load_state_dict` takes, atomically (temporary file, then rename).
    pub fn save_safetensors(&self, gpu: &Gpu, path: &std::path::Path, prefix: &str) -> Result<()> {
        let flat = gpu.read(&self.params)?;
        let tensors = super::state_dict::state_dict_from_params(&self.cfg, &flat, prefix)?;
        crate::io::save(
            path,
            &tensors,
            &super::state_dict::state_dict_metadata(&self.cfg),
        )
    }

    /// The parameter gradients as a state_dict (names with `prefix`).
    pub fn grads_state_dict(
        &self,
        gpu: &Gpu,
        prefix: &str,
    ) -> Result<Vec<(String, crate::io::HostTensor)>> {
        let flat = gpu.read(&self.grads)?;
        super::state_dict::state_dict_from_params(&self.cfg, &flat, prefix)
    }
}
