//! Backward recording: the steps of every (layer, direction) in the opposite order, each
//! taking the previous step's gate gradient through W_hh, then `dh0 += dG_first·W_hh`,
//! `dW_ih += dGxᵀ·X`, `dW_hh += dGhᵀ·H_prev` (one transposed copy of dG for both where
//! dGh is dGx), `db += Σ dG`, `dX (+)= dGx·W_ih` (not for the first layer when the input
//! needs no gradient): large GEMMs, no atomics. Walks [`super::plan::backward_plan`]. With a
//! projection each step is `lstm_proj_backward` (dh through W_hh) plus the cell kernel taking
//! `dr = dh·W_hr`, and `dW_hr` is one more GEMM over all steps.

use crate::error::{Error, Result};
use crate::gpu::Recorder;
use crate::gpu::Tensor;
use crate::kernels::lstm_proj::{self, ProjBackParams, ProjBackwardBuffers};
use crate::kernels::matmul::{encode_linear_backward, encode_matmul, Gemm, MatRef};
use crate::kernels::step::{self, flags, BackwardBuffers, StepBackParams};
use crate::kernels::u32_of;
use crate::kernels::util::{encode_sum_rows, encode_transpose01};
use crate::kernels::{step_resident, step_vec4};

use super::gradient_flow::{self, DirFlow, GradFlowProbe};
use super::lengths::PackedPlan;
use super::model::{check_shape, InputGrads, Rnn, Saved, StateGrads};
use super::plan::{backward_plan, BackwardStep, RowBlock};
use super::{CellKind, ParamKind};

impl Rnn {
    /// Records backward of `L = sum(y*dy) + sum(hn*dhn) + sum(cn*dcn)` after a training
    /// [`Rnn::record_train`] (or [`Rnn::record_train_packed`]). Parameter gradients go to [`Rnn::grads`]: added to what is
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
        let (dx, s) =
            self.record_backward_with(rec, saved, dy, dhn, dcn, accumulate, None, true)?;
        input_grads(dx, s)
    }

    /// [`Rnn::record_backward`] when the input needs no gradient (PyTorch's
    /// `requires_grad=False` on x): the parameter gradients and dh0/dc0 only. The first
    /// layer's `dX = dG·W_ih` (a GEMM a direction) is not recorded, nor its buffers, nor (with
    /// `batch_first` or lengths) its reordering into the caller's layout.
    pub fn record_weight_backward(
        &self,
        rec: &mut Recorder,
        saved: &Saved,
        dy: &Tensor,
        dhn: Option<&Tensor>,
        dcn: Option<&Tensor>,
        accumulate: bool,
    ) -> Result<StateGrads> {
        let (_, s) =
            self.record_backward_with(rec, saved, dy, dhn, dcn, accumulate, None, false)?;
        Ok(s)
    }

    /// [`Rnn::record_backward`] that also writes `‖∂L/∂h_t‖` of every step, layer and
    /// direction into `probe` (see [`super::gradient_flow`]); read it with
    /// [`GradFlowProbe::read`] after the submission. Costs one GEMM and two small dispatches
    /// per (layer, direction). Not for a variable-length batch ([`Error::InvalidConfig`]).
    #[allow(clippy::too_many_arguments)]
    pub fn record_backward_probed(
        &self,
        rec: &mut Recorder,
        saved: &Saved,
        dy: &Tensor,
        dhn: Option<&Tensor>,
        dcn: Option<&Tensor>,
        accumulate: bool,
        probe: &GradFlowProbe,
    ) -> Result<InputGrads> {
        let (dx, s) =
            self.record_backward_with(rec, saved, dy, dhn, dcn, accumulate, Some(probe), true)?;
        input_grads(dx, s)
    }

    /// The backward of the public entries: with `probe` it writes the gradient-flow norms
    /// ([`Rnn::record_backward_probed`]), with `input_grad` it also returns dX (else `None`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_backward_with(
        &self,
        rec: &mut Recorder,
        saved: &Saved,
        dy: &Tensor,
        dhn: Option<&Tensor>,
        dcn: Option<&Tensor>,
        accumulate: bool,
        probe: Option<&GradFlowProbe>,
        input_grad: bool,
    ) -> Result<(Option<Tensor>, StateGrads)> {
        if let Some(probe) = probe {
            probe.check(&self.cfg, saved.seq)?;
            if saved.lengths.is_some() {
                return Err(Error::InvalidConfig(
                    "gradient-flow norms of a variable-length batch are not supported: the \
                     padded steps would count as steps"
                        .into(),
                ));
            }
        }
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
        let (dy_t, dhn, dcn) = PackedPlan::sorted_triple(plan, rec, &dy_t, dhn, dcn)?;
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
            let d_in = if layer > 0 || input_grad {
                Some(gpu.zeros("rnn.dx", &[seq, batch, in_w])?)
            } else {
                None
            };
            for dir in 0..d_n {
                let sd = &saved.dirs[layer * d_n + dir];
                let w_hh = self.weight_offset(layer, dir, ParamKind::WeightHh)?;
                let w_hr = self.offset(layer, dir, ParamKind::WeightHr);
                let (carry_h, carry_c) = ((layer * d_n + dir) * bo, (layer * d_n + dir) * bh);
                let (family, whole) = self.step_kernels(gpu, layer, dir, batch)?;
                // As forward: W_hh resident for small steps of long enough sequences.
                let resident = self.resident_steps(gpu, family, false, batch, seq);
                let whole = whole || resident;
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
                let bind = if whole {
                    None
                } else {
                    Some(step::bind_step_backward(rec, cfg.cell, family, &bwd_bufs)?)
                };
                let mut table = Vec::new();
                let proj_bind = match &dhs {
                    Some(dhs) => Some(lstm_proj::bind_proj_backward(
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
                let flow = DirFlow {
                    layer,
                    dir,
                    seq,
                    batch,
                    dy: &d_out,
                    dgh,
                    acts: sd.acts.as_ref(),
                    dhs: dhs.as_ref(),
                    carry_h: &dh0,
                    carry_off: carry_h,
                    w_hh,
                };
                let scratch = match probe {
                    Some(_) => Some(gradient_flow::record_before_steps(rec, self, &flow)?),
                    None => None,
                };
                let plan_dir = backward_plan(seq, batch, dir == 1, plan);
                rec.phase("steps_backward");
                for st in &plan_dir.steps {
                    let BackwardStep {
                        t,
                        rows,
                        prev: hp,
                        out: ho,
                        next,
                    } = *st;
                    let has_next = if next.is_some() { flags::HAS_NEXT } else { 0 };
                    let next_t = next.unwrap_or(0);
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
                        let q = ProjBackParams {
                            batch: p.batch,
                            hidden: p.hidden,
                            proj: p.grows,
                            flags: has_next,
                            dy_off: p.dy_off,
                            dy_stride: p.dy_stride,
                            dgn_off: p.dgn_off,
                            dh_off: u32_of("dhs offset", t * bo)?,
                            whh_off: p.whh_off,
                            carry_off: p.carry_off,
                            _pad: [0; 2],
                        };
                        lstm_proj::encode_proj_backward(rec, pb, &q)?;
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
                    if resident {
                        let groups = step_resident::groups(batch);
                        step_resident::encode_resident_backward(
                            rec, cfg.cell, &bwd_bufs, &table, &t, groups,
                        )?;
                    } else {
                        step_vec4::encode_sequence_backward(
                            rec, cfg.cell, family, &bwd_bufs, &table, &t,
                        )?;
                    }
                }
                if let (Some(probe), Some(scratch)) = (probe, scratch) {
                    gradient_flow::record_after_steps(rec, self, probe, &flow, scratch)?;
                }
                rec.phase("weight_grads");
                // dh0 += dG_h(first step) · W_hh (per group of rows with lengths, reverse).
                for &RowBlock {
                    slot: t,
                    row: r0,
                    rows: n,
                } in &plan_dir.first_steps
                {
                    encode_matmul(
                        rec,
                        &Gemm {
                            m: n,
                            n: oh,
                            k: gh,
                            a: MatRef::new(&dgh.buffer, t * batch * gh + r0 * gh, gh),
                            trans_a: false,
                            b: MatRef::new(&self.params.buffer, w_hh, oh),
                            trans_b: false,
                            bias: None,
                            c: MatRef::new(&dh0.buffer, carry_h + r0 * oh, oh),
                            accumulate: true,
                        },
                    )?;
                }
                // dW_hh += dGhᵀ · H_prev (slots 0..T forward, 1..T+1 reverse) ...
                let dw_hh = Gemm {
                    m: gh,
                    n: oh,
                    k: seq * batch,
                    a: MatRef::new(&dgh.buffer, 0, gh),
                    trans_a: true,
                    b: MatRef::new(&sd.hs.buffer, if dir == 0 { 0 } else { bo }, oh),
                    trans_b: false,
                    bias: None,
                    c: MatRef::new(&self.grads.buffer, w_hh, oh),
                    accumulate: true,
                };
                // ... with the input projection's backward: dW_ih += dGxᵀ·X (one copy of
                // dGᵀ for both where dGh is dGx), db_ih += Σ dGx, and unless this is the
                // first layer's and its input needs no gradient, dX (+)= dGx·W_ih (the
                // second direction adds to the first's).
                encode_linear_backward(
                    rec,
                    &self.input_projection(layer, dir)?,
                    &self.grads.buffer,
                    true,
                    MatRef::new(&input.buffer, 0, in_w),
                    MatRef::new(&dgx.buffer, 0, gh),
                    seq * batch,
                    d_in.as_ref()
                        .map(|d| (MatRef::new(&d.buffer, 0, in_w), dir > 0)),
                    &[dw_hh],
                )?;
                if let (Some(dhs), Some(rs), Some(w_hr)) = (&dhs, &sd.rs, w_hr) {
                    // dW_hr += dHᵀ · R over all steps
                    encode_matmul(
                        rec,
                        &Gemm {
                            m: oh,
                            n: h,
                            k: seq * batch,
                            a: MatRef::new(&dhs.buffer, 0, oh),
                            trans_a: true,
                            b: MatRef::new(&rs.buffer, 0, h),
                            trans_b: false,
                            bias: None,
                            c: MatRef::new(&self.grads.buffer, w_hr, h),
                            accumulate: true,
                        },
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
            }
            match (layer, d_in) {
                (0, d_in) => {
                    dx_tm = d_in;
                    break;
                }
                (_, Some(d_in)) => d_out = d_in,
                (_, None) => return Err(Error::Internal("no dX above the first layer".into())),
            }
        }
        let (mut dh0, mut dc0) = (dh0, dc0);
        if let Some(pl) = plan {
            dx_tm = dx_tm
                .map(|t| pl.to_caller(rec, &t, "rnn.dx_rows"))
                .transpose()?;
            dh0 = pl.to_caller(rec, &dh0, "rnn.dh0_rows")?;
            dc0 = dc0
                .map(|t| pl.to_caller(rec, &t, "rnn.dc0_rows"))
                .transpose()?;
        }
        let dx = match dx_tm {
            Some(dx_tm) if cfg.batch_first => {
                let t = gpu.zeros("rnn.dx_bf", &[batch, seq, cfg.input_size])?;
                rec.phase("layout");
                encode_transpose01(rec, &dx_tm.buffer, &t.buffer, seq, batch, cfg.input_size)?;
                Some(t)
            }
            dx_tm => dx_tm,
        };
        Ok((dx, StateGrads { dh0, dc0 }))
    }
}

/// [`InputGrads`] of a backward asked for dX.
fn input_grads(dx: Option<Tensor>, s: StateGrads) -> Result<InputGrads> {
    let dx = dx.ok_or_else(|| Error::Internal("the backward made no dX".into()))?;
    Ok(InputGrads {
        dx,
        dh0: s.dh0,
        dc0: s.dc0,
    })
}
