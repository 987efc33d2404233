//! `shaders/clip.wgsl`: gradient clipping by global norm (a deterministic two-stage
//! reduction, then a scale that reads the coefficient from the device) and by value.

use bytemuck::{Pod, Zeroable};

use super::{grid, u32_of, Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::Recorder;

/// Threads per workgroup of every entry.
pub const CLIP_WG: usize = 256;

/// Most partial sums one gradient buffer contributes.
pub const MAX_PARTIALS_PER_BUFFER: usize = 256;

/// Entry `clip_norm_partials`: bindings 1 grads, 2 partials (rw).
pub const CLIP_NORM_PARTIALS: KernelDesc = KernelDesc {
    shader: Shader::Clip,
    entry: "clip_norm_partials",
    base: 0,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Entry `clip_norm_partials_rows`: [`CLIP_NORM_PARTIALS`] with one invocation a chunk and
/// no workgroup memory (CPU adapters, see [`crate::Gpu::prefers_direct_kernels`]).
pub const CLIP_NORM_PARTIALS_ROWS: KernelDesc = KernelDesc {
    entry: "clip_norm_partials_rows",
    ..CLIP_NORM_PARTIALS
};

/// Chunks per workgroup of [`CLIP_NORM_PARTIALS_ROWS`] (WGSL `ROWS_WG`).
pub const CLIP_ROWS_WG: usize = 64;

/// Entry `clip_norm_finish`: bindings 5 partials, 6 norm (rw).
pub const CLIP_NORM_FINISH: KernelDesc = KernelDesc {
    shader: Shader::Clip,
    entry: "clip_norm_finish",
    base: 4,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Entry `clip_scale`: bindings 9 norm, 10 grads (rw).
pub const CLIP_SCALE: KernelDesc = KernelDesc {
    shader: Shader::Clip,
    entry: "clip_scale",
    base: 8,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Entry `clip_value`: binding 13 grads (rw).
pub const CLIP_VALUE: KernelDesc = KernelDesc {
    shader: Shader::Clip,
    entry: "clip_value",
    base: 12,
    bindings: &[Some(Access::ReadWrite)],
};

/// Mirror of WGSL `ClipParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ClipParams {
    /// Elements n.
    pub n: u32,
    /// Partials: elements per workgroup.
    pub chunk: u32,
    /// Partials: first partial slot; finish: number of partials.
    pub part_off: u32,
    /// Finish and scale: offset of total_norm in the norm buffer (coef follows it).
    pub norm_off: u32,
    /// Finish: max_norm; value: the clip value.
    pub x: f32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// Elements one `clip_norm_partials` workgroup owns for a buffer of `n`: a multiple of the
/// workgroup size such that at most [`MAX_PARTIALS_PER_BUFFER`] workgroups are needed.
pub fn partial_chunk(n: usize) -> usize {
    n.div_ceil(MAX_PARTIALS_PER_BUFFER).div_ceil(CLIP_WG).max(1) * CLIP_WG
}

/// Partial sums a gradient buffer of `n` elements writes.
pub fn partial_count(n: usize) -> usize {
    n.div_ceil(partial_chunk(n))
}

/// `partials[part_off + w] = sum of g^2` over workgroup w's chunk of `grads[0..n]`.
pub fn encode_norm_partials(
    rec: &mut Recorder,
    grads: &wgpu::Buffer,
    n: usize,
    partials: &wgpu::Buffer,
    part_off: usize,
) -> Result<()> {
    let per_chunk = rec.gpu().prefers_direct_kernels();
    let desc = if per_chunk {
        &CLIP_NORM_PARTIALS_ROWS
    } else {
        &CLIP_NORM_PARTIALS
    };
    let bind = rec.bind(desc, &[grads, partials])?;
    let chunk = partial_chunk(n);
    let p = ClipParams {
        n: u32_of("clip elements", n)?,
        chunk: u32_of("clip chunk", chunk)?,
        part_off: u32_of("clip partial offset", part_off)?,
        ..Default::default()
    };
    let chunks = n.div_ceil(chunk);
    let workgroups = if per_chunk {
        chunks.div_ceil(CLIP_ROWS_WG)
    } else {
        chunks
    };
    rec.dispatch(bind, &p, grid(workgroups)?)
}

/// `norm[norm_off] = sqrt(sum(partials[0..count]))`,
/// `norm[norm_off + 1] = min(max_norm / (norm + 1e-6), 1)`.
pub fn encode_norm_finish(
    rec: &mut Recorder,
    partials: &wgpu::Buffer,
    count: usize,
    max_norm: f32,
    norm: &wgpu::Buffer,
    norm_off: usize,
) -> Result<()> {
    let bind = rec.bind(&CLIP_NORM_FINISH, &[partials, norm])?;
    let p = ClipParams {
        part_off: u32_of("clip partial count", count)?,
        norm_off: u32_of("clip norm offset", norm_off)?,
        x: max_norm,
        ..Default::default()
    };
    rec.dispatch(bind, &p, [1, 1, 1])
}

/// `grads[i] *= norm[norm_off + 1]` for `i < n`.
pub fn encode_scale(
    rec: &mut Recorder,
    norm: &wgpu::Buffer,
    norm_off: usize,
    grads: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    let bind = rec.bind(&CLIP_SCALE, &[norm, grads])?;
    let p = ClipParams {
        n: u32_of("clip elements", n)?,
        norm_off: u32_of("clip norm offset", norm_off)?,
        ..Default::default()
    };
    rec.dispatch(bind, &p, grid(n.div_ceil(CLIP_WG))?)
}

/// `grads[i] = clamp(grads[i], -clip, clip)` for `i < n`.
pub fn encode_value(rec: &mut Recorder, grads: &wgpu::Buffer, n: usize, clip: f32) -> Result<()> {
    let bind = rec.bind(&CLIP_VALUE, &[grads])?;
    let p = ClipParams {
        n: u32_of("clip elements", n)?,
        x: clip,
        ..Default::default()
    };
    rec.dispatch(bind, &p, grid(n.div_ceil(CLIP_WG))?)
}
