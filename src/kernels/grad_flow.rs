//! `shaders/grad_flow.wgsl`: the per-step norms of ∂L/∂h_t for the gradient-flow
//! diagnostics ([`crate::rnn::GradFlowProbe`]).

use bytemuck::{Pod, Zeroable};

use super::{grid, u32_of, Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::Recorder;

/// Threads a workgroup of `grad_flow_scan` (WGSL `SCAN_WG`).
pub const SCAN_WG: usize = 64;
/// Threads a workgroup of `grad_flow_norms`, one workgroup a step (WGSL `NORM_WG`).
pub const NORM_WG: usize = 256;

/// Entry `grad_flow_scan`: dy, dh (in place), acts.
pub const SCAN: KernelDesc = KernelDesc {
    shader: Shader::GradFlow,
    entry: "grad_flow_scan",
    base: 0,
    bindings: &[
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::Read),
    ],
};

/// Entry `grad_flow_norms`: dh, norms.
pub const NORMS: KernelDesc = KernelDesc {
    shader: Shader::GradFlow,
    entry: "grad_flow_norms",
    base: 0,
    bindings: &[None, Some(Access::ReadWrite), None, Some(Access::ReadWrite)],
};

/// Flag bits of [`FlowParams::flags`] (WGSL constants of the same names).
pub mod flags {
    /// The direction visits t = T-1..0.
    pub const REVERSE: u32 = 1;
    /// GRU: the direct path `h' = ... + z * h` carries `z_next * dh_next` back.
    pub const GRU: u32 = 2;
}

/// Mirror of WGSL `FlowParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct FlowParams {
    /// Batch rows.
    pub batch: u32,
    /// Width of h (H, or P with a projection).
    pub width: u32,
    /// Steps T.
    pub seq: u32,
    /// [`flags`] bits.
    pub flags: u32,
    /// Offset of this direction's slice in dy.
    pub dy_off: u32,
    /// Row stride of dy (D·W).
    pub dy_ld: u32,
    /// Where step 0's norm goes in the norms buffer.
    pub out_off: u32,
    /// Padding.
    pub _pad: u32,
}

/// The buffers of one (layer, direction)'s flow measurement.
#[derive(Clone, Copy, Debug)]
pub struct FlowBuffers<'a> {
    /// The output gradient `(T, B, D·W)`, time-major.
    pub dy: &'a wgpu::Buffer,
    /// `(T, B, W)`: `dG_h[next(t)]·W_hh` (and dhn at the first backward step) in, the total
    /// `∂L/∂h_t` out (see the shader).
    pub dh: &'a wgpu::Buffer,
    /// The GRU's saved activations `(T, B, 4H)`; any readable buffer for the other cells.
    pub acts: &'a wgpu::Buffer,
    /// The norms, f32, one per step at `out_off + t`.
    pub norms: &'a wgpu::Buffer,
}

/// Completes `dh` into `∂L/∂h_t` (adds dy and, with [`flags::GRU`], the z path) in one
/// dispatch over batch × width threads, each walking the steps in backward order.
pub fn encode_scan(rec: &mut Recorder, bufs: &FlowBuffers, p: &FlowParams) -> Result<()> {
    let bind = rec.bind(&SCAN, &[bufs.dy, bufs.dh, bufs.acts])?;
    let n = (p.batch as usize) * (p.width as usize);
    rec.dispatch(bind, p, grid(n.div_ceil(SCAN_WG))?)
}

/// `norms[out_off + t] = ‖dh[t]‖` (Frobenius over batch × width) for every t: one workgroup
/// a step.
pub fn encode_norms(rec: &mut Recorder, bufs: &FlowBuffers, p: &FlowParams) -> Result<()> {
    let bind = rec.bind(&NORMS, &[bufs.dh, bufs.norms])?;
    rec.dispatch(bind, p, grid(p.seq as usize)?)
}

/// [`FlowParams`] with its sizes checked into u32.
#[allow(clippy::too_many_arguments)]
pub fn flow_params(
    batch: usize,
    width: usize,
    seq: usize,
    flags: u32,
    dy_off: usize,
    dy_ld: usize,
    out_off: usize,
) -> Result<FlowParams> {
    Ok(FlowParams {
        batch: u32_of("batch", batch)?,
        width: u32_of("width", width)?,
        seq: u32_of("steps", seq)?,
        flags,
        dy_off: u32_of("dy offset", dy_off)?,
        dy_ld: u32_of("dy stride", dy_ld)?,
        out_off: u32_of("norms offset", out_off)?,
        _pad: 0,
    })
}
