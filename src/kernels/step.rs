//! The fused per-step kernels shared by `rnn.wgsl`, `lstm.wgsl` and `gru.wgsl`: parameter
//! structs (mirrored in each WGSL file) and the generic bind/encode functions that pick the
//! cell's entry point.
//!
//! Forward bindings (uniform at 0): 1 params (flat, read), 2 gx (read), 3 hs (rw),
//! 4 cs (rw, LSTM), 5 y (rw), 6 acts (rw, LSTM/GRU).
//! Backward bindings (uniform at 8): 9 params, 10 dy, 11 acts (LSTM/GRU), 12 cs (LSTM) or
//! hs (RNN/GRU), 13 dg (= dgx for GRU), 14 carry_h, 15 carry_c (LSTM) or dgh (GRU).

use bytemuck::{Pod, Zeroable};

use super::CellKind;
use super::{groups, KernelDesc};
use crate::error::Result;
use crate::gpu::{BindId, Recorder};

/// Side of the square workgroup tile (units x batch rows) of the step kernels.
pub const TILE: usize = 16;

/// Most batch rows of [`StepFamily::SmallBatch`] (WGSL `SB_ROWS`).
pub const SMALL_BATCH: usize = 4;

/// Hidden units one workgroup of the small-batch kernels owns (WGSL `SB_UNITS`).
pub const SMALL_BATCH_UNITS: usize = 4;

/// Invocations of a workgroup of the direct step kernels, one (row, unit) each.
pub const DIRECT_WORKGROUP: usize = 64;

/// Mirror of WGSL `StepParams` (offsets in elements).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StepParams {
    /// Batch rows B.
    pub batch: u32,
    /// Hidden units H.
    pub hidden: u32,
    /// Offset of `gx[t]` (`[B, G*H]`).
    pub gx_off: u32,
    /// Offset of h_prev in hs.
    pub hprev_off: u32,
    /// Offset where h_t is written in hs.
    pub hout_off: u32,
    /// Offset of c_prev in cs.
    pub cprev_off: u32,
    /// Offset where c_t is written in cs.
    pub cout_off: u32,
    /// Offset of y[t, 0, d*H].
    pub y_off: u32,
    /// Row stride of y (`D*H`).
    pub y_stride: u32,
    /// Offset of acts`[t]`.
    pub act_off: u32,
    /// Offset of W_hh in the flat parameters.
    pub whh_off: u32,
    /// Offset of b_hh in the flat parameters.
    pub bhh_off: u32,
    /// bit 0 SAVE, bit 1 HAS_BIAS, bit 2 RELU, bit 3 PROJ.
    pub flags: u32,
    /// Width of h_prev and of W_hh's rows: H, or P for an LSTM with a projection.
    pub state: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// Mirror of WGSL `StepBackParams` (offsets in elements).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StepBackParams {
    /// Batch rows B.
    pub batch: u32,
    /// Hidden units H.
    pub hidden: u32,
    /// Offset of dy[t, 0, d*H].
    pub dy_off: u32,
    /// Row stride of dy (`D*H`).
    pub dy_stride: u32,
    /// Offset of dg`[t]` written by this step.
    pub dg_off: u32,
    /// Offset of the gate gradient of the step processed before (valid with HAS_NEXT).
    pub dgn_off: u32,
    /// Offset of acts`[t]`.
    pub act_off: u32,
    /// Offset of h_prev in hs.
    pub hprev_off: u32,
    /// Offset of h_t in hs.
    pub hout_off: u32,
    /// Offset of c_prev in cs.
    pub cprev_off: u32,
    /// Offset of c_t in cs.
    pub cout_off: u32,
    /// Offset of W_hh in the flat parameters.
    pub whh_off: u32,
    /// Offset of this (layer, direction)'s rows in carry_h / carry_c.
    pub carry_off: u32,
    /// bit 0 HAS_NEXT, bit 2 RELU, bit 3 PROJ.
    pub flags: u32,
    /// LSTM with a projection: P (rows of the product through W_hr, or of dh).
    pub grows: u32,
    /// Padding.
    pub _pad: u32,
}

/// Flag bits shared by both structs.
pub mod flags {
    /// Forward: keep activations for backward.
    pub const SAVE: u32 = 1;
    /// Backward: the previous step's gate gradient is valid.
    pub const HAS_NEXT: u32 = 1;
    /// Forward: add b_hh.
    pub const HAS_BIAS: u32 = 2;
    /// RNN: relu instead of tanh.
    pub const RELU: u32 = 4;
    /// LSTM with a projection: forward writes `o*tanh(c)` to `y` only; backward takes its
    /// product from the step's `dh` (bound as `dy`) through `W_hr`.
    pub const PROJ: u32 = 8;
}

/// Buffers one forward (layer, direction) binds.
#[derive(Clone, Copy, Debug)]
pub struct ForwardBuffers<'a> {
    /// Flat parameters: f32, or with `f16_weights` the f16 words of
    /// [`crate::kernels::pack::encode_pack_f16`].
    pub params: &'a wgpu::Buffer,
    /// `params` holds f16 words: the kernels' f16-weight builds
    /// ([`KernelDesc::weights`]) are bound.
    pub f16_weights: bool,
    /// Input projection `[T, B, G*H]`.
    pub gx: &'a wgpu::Buffer,
    /// Hidden states.
    pub hs: &'a wgpu::Buffer,
    /// Cell states (LSTM).
    pub cs: Option<&'a wgpu::Buffer>,
    /// Layer output `[T, B, D*H]`.
    pub y: &'a wgpu::Buffer,
    /// Saved activations (LSTM, GRU).
    pub acts: Option<&'a wgpu::Buffer>,
}

/// Buffers one backward (layer, direction) binds.
#[derive(Clone, Copy, Debug)]
pub struct BackwardBuffers<'a> {
    /// Flat parameters.
    pub params: &'a wgpu::Buffer,
    /// Gradient of the layer output `[T, B, D*H]`.
    pub dy: &'a wgpu::Buffer,
    /// Saved activations (LSTM, GRU).
    pub acts: Option<&'a wgpu::Buffer>,
    /// Hidden states (RNN, GRU).
    pub hs: &'a wgpu::Buffer,
    /// Cell states (LSTM).
    pub cs: Option<&'a wgpu::Buffer>,
    /// Input-side gate gradients `[T, B, G*H]` (all gates for RNN/LSTM).
    pub dgx: &'a wgpu::Buffer,
    /// Hidden-side gate gradients (GRU only).
    pub dgh: Option<&'a wgpu::Buffer>,
    /// dh carried between steps.
    pub carry_h: &'a wgpu::Buffer,
    /// dc carried between steps (LSTM).
    pub carry_c: Option<&'a wgpu::Buffer>,
}

/// Which variant of the step kernels a (layer, direction) records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepFamily {
    /// 16x16 tiles through workgroup memory (GPUs).
    Tiled,
    /// GPUs, batches of at most [`SMALL_BATCH`] rows: a step splits its sum between the
    /// threads of a workgroup of 4 units (`*_step_forward_small` over k, `*_step_backward_small`
    /// over the rows of W_hh).
    SmallBatch,
    /// One (row, unit) an invocation, scalar loads, no workgroup memory (CPU adapters).
    Direct,
    /// Four units of `rows` batch rows an invocation on vec4-typed storage (CPU adapters,
    /// when [`StepFamily::choose`] finds the sizes and offsets aligned): 4 rows share each
    /// load of W_hh; a batch of one gets a build of the kernels for one row; batches of more
    /// than 4 on adapters that [share subgroup loads](crate::Gpu::shares_subgroup_loads) the
    /// subgroup build, 8 rows shared by the 8 lanes of a subgroup.
    Vec4 {
        /// Batch rows an invocation owns: 4, 1 for a batch of one, or
        /// [`super::step_vec4::SUBGROUP_ROWS`] (the subgroup build).
        rows: usize,
    },
}

impl StepFamily {
    /// The family for hidden size `hidden`, state width `state` (H, or P with a projection),
    /// batch `batch` and the element offsets of the (layer, direction)'s recurrent weights
    /// and bias in the flat parameters. `direct` is [`crate::Gpu::prefers_direct_kernels`], and
    /// `subgroup_rows` [`crate::Gpu::shares_subgroup_loads`]. The vec4
    /// kernels need every size and offset a multiple of 4 and no projection; all other
    /// offsets they see (time slots, batch rows, directions) are multiples of H or of the
    /// state width, so these decide it.
    pub fn choose(
        direct: bool,
        subgroup_rows: bool,
        hidden: usize,
        state: usize,
        batch: usize,
        proj: bool,
        offsets: &[usize],
    ) -> Self {
        if !direct && batch <= SMALL_BATCH {
            StepFamily::SmallBatch
        } else if !direct {
            StepFamily::Tiled
        } else if !proj
            && hidden.is_multiple_of(4)
            && state.is_multiple_of(4)
            && offsets.iter().all(|o| o.is_multiple_of(4))
        {
            StepFamily::Vec4 {
                rows: match batch {
                    1 => 1,
                    2..=4 => 4,
                    _ if subgroup_rows => super::step_vec4::SUBGROUP_ROWS,
                    _ => 4,
                },
            }
        } else {
            StepFamily::Direct
        }
    }

    /// One of the vec4 builds.
    pub fn is_vec4(self) -> bool {
        matches!(self, StepFamily::Vec4 { .. })
    }
}

fn forward_desc(cell: CellKind, family: StepFamily) -> KernelDesc {
    use super::{gru, lstm, rnn, step_vec4 as v4};
    let direct = match family {
        StepFamily::Vec4 { rows } => {
            return v4::for_rows(
                match cell {
                    CellKind::RnnTanh | CellKind::RnnRelu => &v4::RNN_FORWARD,
                    CellKind::Lstm => &v4::LSTM_FORWARD,
                    CellKind::Gru => &v4::GRU_FORWARD,
                },
                rows,
            )
        }
        StepFamily::SmallBatch => {
            return match cell {
                CellKind::RnnTanh | CellKind::RnnRelu => rnn::STEP_FORWARD_SMALL,
                CellKind::Lstm => lstm::STEP_FORWARD_SMALL,
                CellKind::Gru => gru::STEP_FORWARD_SMALL,
            }
        }
        StepFamily::Direct => true,
        StepFamily::Tiled => false,
    };
    match (cell, direct) {
        (CellKind::RnnTanh | CellKind::RnnRelu, false) => rnn::STEP_FORWARD,
        (CellKind::RnnTanh | CellKind::RnnRelu, true) => rnn::STEP_FORWARD_DIRECT,
        (CellKind::Lstm, false) => lstm::STEP_FORWARD,
        (CellKind::Lstm, true) => lstm::STEP_FORWARD_DIRECT,
        (CellKind::Gru, false) => gru::STEP_FORWARD,
        (CellKind::Gru, true) => gru::STEP_FORWARD_DIRECT,
    }
}

fn backward_desc(cell: CellKind, family: StepFamily) -> KernelDesc {
    use super::{gru, lstm, rnn, step_vec4 as v4};
    let direct = match family {
        StepFamily::Vec4 { rows } => {
            return v4::for_rows(
                match cell {
                    CellKind::RnnTanh | CellKind::RnnRelu => &v4::RNN_BACKWARD,
                    CellKind::Lstm => &v4::LSTM_BACKWARD,
                    CellKind::Gru => &v4::GRU_BACKWARD,
                },
                rows,
            )
        }
        StepFamily::SmallBatch => {
            return match cell {
                CellKind::RnnTanh | CellKind::RnnRelu => rnn::STEP_BACKWARD_SMALL,
                CellKind::Lstm => lstm::STEP_BACKWARD_SMALL,
                CellKind::Gru => gru::STEP_BACKWARD_SMALL,
            }
        }
        StepFamily::Direct => true,
        StepFamily::Tiled => false,
    };
    match (cell, direct) {
        (CellKind::RnnTanh | CellKind::RnnRelu, false) => rnn::STEP_BACKWARD,
        (CellKind::RnnTanh | CellKind::RnnRelu, true) => rnn::STEP_BACKWARD_DIRECT,
        (CellKind::Lstm, false) => lstm::STEP_BACKWARD,
        (CellKind::Lstm, true) => lstm::STEP_BACKWARD_DIRECT,
        (CellKind::Gru, false) => gru::STEP_BACKWARD,
        (CellKind::Gru, true) => gru::STEP_BACKWARD_DIRECT,
    }
}

/// The grid of a step kernel over `rows` (batch) x `units`: 16x16 tiles; for the direct
/// variants (see [`crate::Gpu::prefers_direct_kernels`]) one 64-wide workgroup per 64 (row, unit)
/// pairs, folded into y past the per-dimension limit; for the vec4 ones, workgroups of 8
/// invocations of 4 units x `rows` rows along the units, one row of workgroups per `rows`
/// batch rows.
pub(super) fn step_grid(family: StepFamily, units: u32, rows: u32) -> Result<[u32; 3]> {
    let (units, rows) = (units as usize, rows as usize);
    match family {
        StepFamily::Direct => super::grid((units * rows).div_ceil(DIRECT_WORKGROUP)),
        StepFamily::Tiled => Ok([groups(units, TILE)?, groups(rows, TILE)?, 1]),
        StepFamily::SmallBatch => Ok([groups(units, SMALL_BATCH_UNITS)?, 1, 1]),
        StepFamily::Vec4 { rows: per } => {
            use super::step_vec4::{UNITS, WORKGROUP};
            Ok([groups(units, UNITS * WORKGROUP)?, groups(rows, per)?, 1])
        }
    }
}

/// Keeps the buffers the kernel declares (`Some` in its bindings), in binding order.
pub(super) fn select<'a>(
    desc: &KernelDesc,
    all: &[Option<&'a wgpu::Buffer>],
) -> Result<Vec<&'a wgpu::Buffer>> {
    let mut out = Vec::new();
    for (i, access) in desc.bindings.iter().enumerate() {
        if access.is_some() {
            let b = all.get(i).copied().flatten().ok_or_else(|| {
                crate::Error::Internal(format!(
                    "{}: binding {} has no buffer",
                    desc.entry,
                    desc.base as usize + 1 + i
                ))
            })?;
            out.push(b);
        }
    }
    Ok(out)
}

/// Bind group for the forward step kernel of `cell`.
pub fn bind_step_forward(
    rec: &mut Recorder,
    cell: CellKind,
    family: StepFamily,
    b: &ForwardBuffers,
) -> Result<BindId> {
    let subgroups =
        family == StepFamily::SmallBatch && !b.f16_weights && rec.gpu().uses_subgroups();
    let desc = forward_desc(cell, family)
        .weights(b.f16_weights)?
        .subgroups(subgroups)?;
    let bufs = select(&desc, &forward_bindings(b))?;
    rec.bind(&desc, &bufs)
}

/// The buffers of a forward step kernel, bindings 1..6 (`None` where the cell has none):
/// params, gx, hs, cs, y, acts.
pub(super) fn forward_bindings<'a>(b: &ForwardBuffers<'a>) -> [Option<&'a wgpu::Buffer>; 6] {
    [
        Some(b.params),
        Some(b.gx),
        Some(b.hs),
        b.cs,
        Some(b.y),
        b.acts,
    ]
}

/// The buffers of the backward bindings 9..15 in order (`None` where the cell has none).
pub(super) fn backward_bindings<'a>(
    cell: CellKind,
    family: StepFamily,
    b: &BackwardBuffers<'a>,
) -> [Option<&'a wgpu::Buffer>; 7] {
    let state = if cell == CellKind::Lstm {
        b.cs
    } else {
        Some(b.hs)
    };
    let (mut dg, mut last) = if cell == CellKind::Lstm {
        (Some(b.dgx), b.carry_c)
    } else {
        (Some(b.dgx), b.dgh)
    };
    if family.is_vec4() && cell == CellKind::Gru {
        // The vec4 GRU kernel reads its recurrent product from binding 13: dg_h there.
        (dg, last) = (b.dgh, Some(b.dgx));
    }
    [
        Some(b.params),
        Some(b.dy),
        b.acts,
        state,
        dg,
        Some(b.carry_h),
        last,
    ]
}

/// Bind group for the backward step kernel of `cell`.
pub fn bind_step_backward(
    rec: &mut Recorder,
    cell: CellKind,
    family: StepFamily,
    b: &BackwardBuffers,
) -> Result<BindId> {
    let subgroups = family == StepFamily::SmallBatch && rec.gpu().uses_subgroups();
    let desc = backward_desc(cell, family).subgroups(subgroups)?;
    let bufs = select(&desc, &backward_bindings(cell, family, b))?;
    rec.bind(&desc, &bufs)
}

/// Records one forward step (the grid of `step_grid` over B x H) with a bind group of
/// [`bind_step_forward`] for the same family.
pub fn encode_step_forward(
    rec: &mut Recorder,
    bind: BindId,
    family: StepFamily,
    p: &StepParams,
) -> Result<()> {
    if family.is_vec4() {
        super::step_vec4::check_forward_vec4(p)?;
    }
    let g = step_grid(family, p.hidden, p.batch)?;
    rec.dispatch(bind, p, g)
}

/// Records one backward step (the grid of `step_grid` over B x H) with a bind group of
/// [`bind_step_backward`] for the same family.
pub fn encode_step_backward(
    rec: &mut Recorder,
    bind: BindId,
    family: StepFamily,
    p: &StepBackParams,
) -> Result<()> {
    if family.is_vec4() {
        super::step_vec4::check_backward_vec4(p)?;
    }
    let g = step_grid(family, p.hidden, p.batch)?;
    rec.dispatch(bind, p, g)
}

#[cfg(test)]
mod tests {
    use super::StepFamily;

    const FOUR: StepFamily = StepFamily::Vec4 { rows: 4 };

    #[test]
    fn vec4_family_needs_a_cpu_adapter_aligned_sizes_and_no_projection() {
        assert_eq!(
            StepFamily::choose(false, false, 8, 8, 5, false, &[0, 4]),
            StepFamily::Tiled
        );
        assert_eq!(
            StepFamily::choose(true, false, 8, 8, 5, false, &[0, 4]),
            FOUR
        );
        // Sharing subgroup loads: batches of more than 4 take the subgroup build.
        let eight = StepFamily::Vec4 {
            rows: crate::kernels::step_vec4::SUBGROUP_ROWS,
        };
        assert_eq!(
            StepFamily::choose(true, true, 8, 8, 5, false, &[0, 4]),
            eight
        );
        assert_eq!(
            StepFamily::choose(true, true, 8, 8, 4, false, &[0, 4]),
            FOUR
        );
        assert_eq!(
            StepFamily::choose(true, true, 8, 8, 1, false, &[0, 4]),
            StepFamily::Vec4 { rows: 1 }
        );
        assert_eq!(
            StepFamily::choose(true, false, 8, 8, 1, false, &[0, 4]),
            StepFamily::Vec4 { rows: 1 }
        );
        assert_eq!(
            StepFamily::choose(true, false, 7, 7, 5, false, &[0, 4]),
            StepFamily::Direct
        );
        assert_eq!(
            StepFamily::choose(true, false, 8, 6, 5, true, &[0, 4]),
            StepFamily::Direct
        );
        assert_eq!(
            StepFamily::choose(true, false, 8, 8, 5, false, &[2, 4]),
            StepFamily::Direct
        );
    }
}
