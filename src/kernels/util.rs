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

/// Entry `sum_rows_vec4` (bindings 16..18): [`SUM_ROWS`] four columns an invocation on
/// vec4-typed storage, for CPU adapters.
pub const SUM_ROWS_VEC4: KernelDesc = KernelDesc {
    shader: Shader::Util,
    entry: "sum_rows_vec4",
    base: 16,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Invocations per workgroup of [`SUM_ROWS_VEC4`].
pub const SUM_ROWS_VEC4_WG: usize = 16;

/// Entry `transpose01` (bindings 4..6).
pub const TRANSPOSE01: KernelDesc = KernelDesc {
    shader: Shader::Util,
    entry: "transpose01",
    base: 4,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Entry `copy_rows` (bindings 8..10).
pub const COPY_ROWS: KernelDesc = KernelDesc {
    shader: Shader::Util,
    entry: "copy_rows",
    base: 8,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Entry `gather_rows` (bindings 12..15, the row indices last).
pub const GATHER_ROWS: KernelDesc = KernelDesc {
    shader: Shader::Util,
    entry: "gather_rows",
    base: 12,
    bindings: &[
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::Read),
    ],
};

/// Mirror of WGSL `SumRowsParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SumRowsParams {
    /// Rows summed.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// Offset of the first row in `src`.
    pub src_off: u32,
    /// Row stride of `src`.
    pub src_ld: u32,
    /// Offset of the sums in `dst`.
    pub dst_off: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// Mirror of WGSL `Transpose01Params`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Transpose01Params {
    /// Leading axis of the input.
    pub d0: u32,
    /// Second axis of the input.
    pub d1: u32,
    /// Elements per (d0, d1) pair.
    pub inner: u32,
    /// Padding.
    pub _pad: u32,
}

/// Mirror of WGSL `CopyRowsParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CopyRowsParams {
    /// Rows copied.
    pub rows: u32,
    /// Elements per row.
    pub cols: u32,
    /// Offset of the first source row.
    pub src_off: u32,
    /// Source row stride.
    pub src_ld: u32,
    /// Offset of the first destination row.
    pub dst_off: u32,
    /// Destination row stride.
    pub dst_ld: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// Mirror of WGSL `GatherRowsParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GatherRowsParams {
    /// Leading axis (kept).
    pub outer: u32,
    /// Rows gathered (the middle axis).
    pub rows: u32,
    /// Elements per row.
    pub inner: u32,
    /// Padding.
    pub _pad: u32,
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
    // CPU adapters: four columns an invocation where everything is whole vec4s.
    let vec4 = rec.gpu().prefers_direct_kernels()
        && [src_off, ld, cols, dst_off]
            .iter()
            .all(|x| x.is_multiple_of(4));
    let desc = if vec4 { &SUM_ROWS_VEC4 } else { &SUM_ROWS };
    let bind = rec.bind(desc, &[src, dst])?;
    let p = SumRowsParams {
        rows: u32_of("rows", rows)?,
        cols: u32_of("cols", cols)?,
        src_off: u32_of("offset", src_off)?,
        src_ld: u32_of("ld", ld)?,
        dst_off: u32_of("offset", dst_off)?,
        ..Default::default()
    };
    let grid = if vec4 {
        groups(cols / 4, SUM_ROWS_VEC4_WG)?
    } else {
        groups(cols, 64)?
    };
    rec.dispatch(bind, &p, [grid, 1, 1])
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
    let p = Transpose01Params {
        d0: u32_of("d0", d0)?,
        d1: u32_of("d1", d1)?,
        inner: u32_of("inner", inner)?,
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
    let p = CopyRowsParams {
        rows: u32_of("rows", rows)?,
        cols: u32_of("cols", cols)?,
        src_off: u32_of("offset", src_off)?,
        src_ld: u32_of("ld", src_ld)?,
        dst_off: u32_of("offset", dst_off)?,
        dst_ld: u32_of("ld", dst_ld)?,
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
    let p = GatherRowsParams {
        outer: u32_of("outer", outer)?,
        rows: u32_of("rows", rows)?,
        inner: u32_of("inner", inner)?,
        ..Default::default()
    };
    rec.dispatch(bind, &p, super::grid((outer * rows * inner).div_ceil(64))?)
}
