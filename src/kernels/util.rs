//! `shaders/util.wgsl`: bias-gradient row sums, the batch-first transpose, row copies and
//! gathers.

use bytemuck::{Pod, Zeroable};

use super::{groups, u32_of, Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::Recorder;

/// Entry `sum_rows`.
pub const SUM_ROWS: KernelDesc = KernelDesc {
    shader: Shader::Util,
    entry: "sum_rows",
    base: 0,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Entry `transpose01`.
pub const TRANSPOSE01: KernelDesc = KernelDesc {
    shader: Shader::Util,
    entry: "transpose01",
    base: 0,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Entry `copy_rows`.
pub const COPY_ROWS: KernelDesc = KernelDesc {
    shader: Shader::Util,
    entry: "copy_rows",
    base: 0,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Entry `gather_rows` (the row indices at binding 3).
pub const GATHER_ROWS: KernelDesc = KernelDesc {
    shader: Shader::Util,
    entry: "gather_rows",
    base: 0,
    bindings: &[
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::Read),
    ],
};

/// Mirror of WGSL `UtilParams` (fields are per entry; see the shader).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct UtilParams {
    /// First argument.
    pub a: u32,
    /// Second argument.
    pub b: u32,
    /// Third argument.
    pub c: u32,
    /// Fourth argument.
    pub d: u32,
    /// Fifth argument.
    pub e: u32,
    /// Sixth argument.
    pub f: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// `dst[dst_off + j] += sum_r src[src_off + r*ld + j]` for `r < rows`, `j < cols`.
#[allow(clippy::too_many_arguments)]
pub fn encode_sum_rows(
    rec: &mut Recorder,
    src: &wgpu::Buffer,
    src_off: usize,
    ld: usize,
    rows: usize,
    cols: usize,
    dst: &wgpu::Buffer,
    dst_off: usize,
) -> Result<()> {
    let bind = rec.bind(&SUM_ROWS, &[src, dst])?;
    let p = UtilParams {
        a: u32_of("rows", rows)?,
        b: u32_of("cols", cols)?,
        c: u32_of("offset", src_off)?,
        d: u32_of("ld", ld)?,
        e: u32_of("offset", dst_off)?,
        ..Default::default()
    };
    rec.dispatch(bind, &p, [groups(cols, 64)?, 1, 1])
}

/// `dst[j, i, :] = src[i, j, :]` for a `[d0, d1, inner]` tensor.
pub fn encode_transpose01(
    rec: &mut Recorder,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    d0: usize,
    d1: usize,
    inner: usize,
) -> Result<()> {
    let bind = rec.bind(&TRANSPOSE01, &[src, dst])?;
    let p = UtilParams {
        a: u32_of("d0", d0)?,
        b: u32_of("d1", d1)?,
        c: u32_of("inner", inner)?,
        ..Default::default()
    };
    // Spread over y past the 65535 per-dimension limit; the shader folds (x, y) back into
    // one index with num_workgroups.
    rec.dispatch(bind, &p, super::grid((d0 * d1 * inner).div_ceil(64))?)
}

/// A strided block copy: `dst[dst_off + r*dst_ld + j] = src[src_off + r*src_ld + j]` for
/// `r < rows`, `j < cols`.
#[allow(clippy::too_many_arguments)]
pub fn encode_copy_rows(
    rec: &mut Recorder,
    src: &wgpu::Buffer,
    src_off: usize,
    src_ld: usize,
    dst: &wgpu::Buffer,
    dst_off: usize,
    dst_ld: usize,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let bind = rec.bind(&COPY_ROWS, &[src, dst])?;
    let p = UtilParams {
        a: u32_of("rows", rows)?,
        b: u32_of("cols", cols)?,
        c: u32_of("offset", src_off)?,
        d: u32_of("ld", src_ld)?,
        e: u32_of("offset", dst_off)?,
        f: u32_of("ld", dst_ld)?,
        ..Default::default()
    };
    rec.dispatch(bind, &p, super::grid((rows * cols).div_ceil(64))?)
}

/// `dst[o, j, :] = src[o, idx[j], :]` for `[outer, rows, inner]` tensors; `idx` holds `rows`
/// row indices (u32 words, bound as they are).
pub fn encode_gather_rows(
    rec: &mut Recorder,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    idx: &wgpu::Buffer,
    (outer, rows, inner): (usize, usize, usize),
) -> Result<()> {
    let bind = rec.bind(&GATHER_ROWS, &[src, dst, idx])?;
    let p = UtilParams {
        a: u32_of("outer", outer)?,
        b: u32_of("rows", rows)?,
        c: u32_of("inner", inner)?,
        ..Default::default()
    };
    rec.dispatch(bind, &p, super::grid((outer * rows * inner).div_ceil(64))?)
}
