//! Forward recording: every layer and direction of a sequence into one [`Recorder`], walking
//! the plan of [`super::plan`] (see there for the state slots).
//!
//! Per (layer, direction): `gx = X·W_ihᵀ + b_ih` for all T·B rows (one GEMM), then the fused
//! step dispatches (or the whole sequence in one, see [`step_vec4::whole_sequence`] and
//! [`step_resident::resident_steps`]). An LSTM with a projection (`proj_size` P) adds, each
//! step, a `[B, H]·W_hrᵀ` GEMM into the state slot, and gathers the states into `y` after
//! the loop.

use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::kernels::matmul::{encode_linear_forward, encode_matmul, Gemm, MatRef};
use crate::kernels::step::{self, flags, ForwardBuffers, StepParams};
use crate::kernels::u32_of;
use crate::kernels::util::{encode_copy_rows, encode_transpose01};
use crate::kernels::{step_resident, step_vec4};

use super::lengths::PackedPlan;
use super::model::{
    check_shape, seq_batch, Buffers, Rnn, RnnOutput, Saved, SavedDir, WeightStorage,
};
use super::plan::{forward_plan, ForwardStep};
use super::{CellKind, ParamKind};

impl Rnn {
    /// The forward recording behind every entry point: [`Rnn::record_inference`],
    /// [`Rnn::record_train`], [`Rnn::record_inference_in`] and the packed ones.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_forward_with(
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
        if train && self.variant.is_some() {
            return Err(Error::InvalidConfig(
                "a stack with a cell variant (ONNX activations, clip, peepholes, input_forget, linear_before_reset = 0) runs inference only".into(),
            ));
        }
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
        let (xt, h0, c0) = PackedPlan::sorted_triple(plan, rec, &xt, h0, c0)?;
        let (h0, c0) = (h0.as_ref(), c0.as_ref());
        let hn = bufs.zeros(gpu, "rnn.hn", &h_state)?;
        let cn = if lstm {
            Some(bufs.zeros(gpu, "rnn.cn", &c_state)?)
        } else {
            None
        };
        let gx = bufs.zeros(gpu, "rnn.gx", &[seq * batch, gh])?;
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
        // Inference with f16 weights: one packed copy of the parameters for every step kernel
        // (two values a word: half as many words as values), kept by the stack and re-made
        // only when the parameters changed (see super::packed). The general kernel of a cell
        // variant (ONNX) reads f32 whatever weight_storage says.
        let f16_params =
            if !train && self.weight_storage == WeightStorage::F16 && self.variant.is_none() {
                if !gpu.has_f16_in_f32() {
                    return Err(Error::Unsupported {
                        path: gpu.info.name.clone(),
                        what:
                            "WeightStorage::F16 (pack2x16float: DownlevelFlags::SHADER_F16_IN_F32)"
                                .into(),
                    });
                }
                Some(self.f16_params(rec)?)
            } else {
                None
            };

        for layer in 0..cfg.num_layers {
            let input = if layer == 0 { &xt } else { &ys[layer - 1] };
            let in_w = cfg.layer_input_size(layer);
            let y = bufs.zeros(gpu, "rnn.y", &[seq, batch, ow])?;
            for dir in 0..d_n {
                let w_hh = self.weight_offset(layer, dir, ParamKind::WeightHh)?;
                let b_hh = self.offset(layer, dir, ParamKind::BiasHh).unwrap_or(0);
                let w_hr = self.offset(layer, dir, ParamKind::WeightHr);
                rec.phase("input_gemm");
                encode_linear_forward(
                    rec,
                    &self.input_projection(layer, dir)?,
                    MatRef::new(&input.buffer, 0, in_w),
                    seq * batch,
                    MatRef::new(&gx.buffer, 0, gh),
                )?;
                let plan_dir = forward_plan(seq, batch, dir == 1, by_time, plan);
                let hs = bufs.zeros(gpu, "rnn.hs", &[plan_dir.slots, batch, oh])?;
                let cs = if lstm {
                    Some(bufs.zeros(gpu, "rnn.cs", &[plan_dir.slots, batch, h])?)
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
                let (sd_h, sd_c) = ((layer * d_n + dir) * bo, (layer * d_n + dir) * bh);
                // The first state is h0/c0, or zero: reused buffers hold old states.
                for blk in &plan_dir.initial {
                    match h0 {
                        Some(h0) => rec.copy(
                            &h0.buffer,
                            sd_h + blk.row * oh,
                            &hs.buffer,
                            blk.slot * bo + blk.row * oh,
                            blk.rows * oh,
                        ),
                        None if bufs.reused() => {
                            rec.clear(&hs.buffer, blk.slot * bo + blk.row * oh, blk.rows * oh)
                        }
                        None => {}
                    }
                    if let Some(cs) = &cs {
                        match c0 {
                            Some(c0) => rec.copy(
                                &c0.buffer,
                                sd_c + blk.row * h,
                                &cs.buffer,
                                blk.slot * bh + blk.row * h,
                                blk.rows * h,
                            ),
                            None if bufs.reused() => {
                                rec.clear(&cs.buffer, blk.slot * bh + blk.row * h, blk.rows * h)
                            }
                            None => {}
                        }
                    }
                }
                let (family, whole) = self.step_kernels(gpu, layer, dir, batch)?;
                let fwd_bufs = ForwardBuffers {
                    params: f16_params
                        .as_ref()
                        .map_or(&self.params.buffer, |p| &p.buffer),
                    f16_weights: f16_params.is_some(),
                    gx: &gx.buffer,
                    hs: &hs.buffer,
                    cs: cs.as_ref().map(|c| &c.buffer),
                    y: rs.as_ref().map_or(&y.buffer, |r| &r.buffer),
                    acts: acts.as_ref().map(|a| &a.buffer),
                };
                // Small steps on a CPU adapter: every step in one dispatch (the per-step
                // parameters are collected in `table`); else one dispatch a step.
                let general = self.general_steps(rec, bufs, (layer, dir, batch), &fwd_bufs)?;
                // On CPU adapters with 8-lane subgroups, small steps of a long enough
                // sequence keep W_hh resident.
                let resident = general.is_none()
                    && self.resident_steps(
                        gpu,
                        family,
                        fwd_bufs.f16_weights,
                        batch,
                        plan_dir.steps.len(),
                    );
                let whole = (whole || resident) && general.is_none();
                let bind = if whole || general.is_some() {
                    None
                } else {
                    Some(step::bind_step_forward(rec, cfg.cell, family, &fwd_bufs)?)
                };
                let mut steps = Vec::new();
                rec.phase("steps");
                for &ForwardStep { t, rows, prev, out } in &plan_dir.steps {
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
                    match (&general, bind) {
                        (Some(g), _) => g.encode(rec, &p)?,
                        (None, Some(bind)) => step::encode_step_forward(rec, bind, family, &p)?,
                        (None, None) => steps.push(p),
                    }
                    if let (Some(rs), Some(w_hr)) = (&rs, w_hr) {
                        // h_t = r_t · W_hrᵀ into its state slot.
                        encode_matmul(
                            rec,
                            &Gemm {
                                m: rows,
                                n: oh,
                                k: h,
                                a: MatRef::new(&rs.buffer, r_off, h),
                                trans_a: false,
                                b: MatRef::new(&self.params.buffer, w_hr, h),
                                trans_b: true,
                                bias: None,
                                c: MatRef::new(&hs.buffer, out * bo, oh),
                                accumulate: false,
                            },
                        )?;
                    }
                }
                if whole {
                    let table = bufs.upload(gpu, "rnn.steps", step_vec4::steps_table(&steps))?;
                    if resident {
                        let groups = step_resident::groups(batch);
                        step_resident::encode_resident_forward(
                            rec, cfg.cell, &fwd_bufs, &steps, &table, groups,
                        )?;
                    } else {
                        step_vec4::encode_sequence_forward(
                            rec, cfg.cell, family, &fwd_bufs, &steps, &table,
                        )?;
                    }
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
                    if let (Some(pl), 1) = (plan, dir) {
                        // A reverse group shorter than T keeps its h0 in slot `len`, which the
                        // gather just copied into y[len]: past a row's length y is zero.
                        for &(len, r0, r1) in pl.groups.iter().filter(|g| g.0 < seq) {
                            for r in r0..r1 {
                                rec.clear(&y.buffer, (len * batch + r) * ow + oh, oh);
                            }
                        }
                    }
                }
                for blk in &plan_dir.last {
                    rec.copy(
                        &hs.buffer,
                        blk.slot * bo + blk.row * oh,
                        &hn.buffer,
                        sd_h + blk.row * oh,
                        blk.rows * oh,
                    );
                    if let (Some(cs), Some(cn)) = (&cs, &cn) {
                        rec.copy(
                            &cs.buffer,
                            blk.slot * bh + blk.row * h,
                            &cn.buffer,
                            sd_c + blk.row * h,
                            blk.rows * h,
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
}
