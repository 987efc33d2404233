//! `shaders/lstm_proj.wgsl`: the first half of an LSTM-with-projection backward step (dh
//! through W_hh's P columns): its parameter struct, bindings and encode functions.

use bytemuck::{Pod, Zeroable};

use super::{Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::{BindId, Recorder};

/// Entry `lstm_proj_backward` (bindings 16..21): dh of a step with a projection.
pub const PROJ_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::LstmProj,
    entry: "lstm_proj_backward",
    base: 16,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::ReadWrite),
    ],
};

/// Entry `lstm_proj_backward_direct`: [`PROJ_BACKWARD`] without workgroup memory.
pub const PROJ_BACKWARD_DIRECT: KernelDesc = KernelDesc {
    entry: "lstm_proj_backward_direct",
    ..PROJ_BACKWARD
};

/// Mirror of WGSL `ProjBackParams` (offsets in elements).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ProjBackParams {
    /// Batch rows B.
    pub batch: u32,
    /// Hidden units H.
    pub hidden: u32,
    /// Projection size P: the width of dh, of h and of W_hh's rows.
    pub proj: u32,
    /// [`super::step::flags::HAS_NEXT`]: `dg_next` is valid.
    pub flags: u32,
    /// Offset of dy[t, 0, d*P].
    pub dy_off: u32,
    /// Row stride of dy (`D*P`).
    pub dy_stride: u32,
    /// Offset of the gate gradient of the step processed before.
    pub dgn_off: u32,
    /// Offset of `dh[t]` in the per-step dh buffer.
    pub dh_off: u32,
    /// Offset of W_hh (`[4H, P]`) in the flat parameters.
    pub whh_off: u32,
    /// Offset of this (layer, direction)'s rows in carry_h.
    pub carry_off: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// Buffers of the first half of an LSTM-with-projection backward step.
#[derive(Clone, Copy, Debug)]
pub struct ProjBackwardBuffers<'a> {
    /// Flat parameters.
    pub params: &'a wgpu::Buffer,
    /// Gradient of the layer output.
    pub dy: &'a wgpu::Buffer,
    /// Gate gradients (read: the previous step's).
    pub dg: &'a wgpu::Buffer,
    /// dh carried between steps (`P` wide).
    pub carry_h: &'a wgpu::Buffer,
    /// Per-step dh, `[T, B, P]`.
    pub dhs: &'a wgpu::Buffer,
}

/// Bind group for `lstm_proj_backward`.
pub fn bind_proj_backward(rec: &mut Recorder, b: &ProjBackwardBuffers) -> Result<BindId> {
    let desc = if rec.gpu().prefers_direct_kernels() {
        &PROJ_BACKWARD_DIRECT
    } else {
        &PROJ_BACKWARD
    };
    rec.bind(desc, &[b.params, b.dy, b.dg, b.carry_h, b.dhs])
}

/// Records `lstm_proj_backward` over B x P (the grid of the step kernels' family).
pub fn encode_proj_backward(rec: &mut Recorder, bind: BindId, p: &ProjBackParams) -> Result<()> {
    let family = if rec.gpu().prefers_direct_kernels() {
        super::step::StepFamily::Direct
    } else {
        super::step::StepFamily::Tiled
    };
    let g = super::step::step_grid(family, p.proj, p.batch)?;
    rec.dispatch(bind, p, g)
}
