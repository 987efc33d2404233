//! `shaders/loss.wgsl`: fused softmax + cross-entropy with its gradient, mean-squared error
//! with its gradient, and the deterministic one-workgroup sum that turns per-row losses or
//! per-workgroup partial sums into the loss.

use bytemuck::{Pod, Zeroable};

use super::{grid, u32_of, Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::Recorder;

/// Threads of the `cross_entropy` and `mse` workgroups.
pub const LOSS_WG: usize = 128;

/// Entry `cross_entropy`: bindings 1 logits, 2 targets (u32), 3 dlogits, 4 row_loss.
pub const CROSS_ENTROPY: KernelDesc = KernelDesc {
    shader: Shader::Loss,
    entry: "cross_entropy",
    base: 0,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::ReadWrite),
    ],
};

/// Entry `cross_entropy_rows`: [`CROSS_ENTROPY`] with one invocation per row and no
/// workgroup memory (CPU adapters, see [`crate::Gpu::prefers_direct_kernels`]).
pub const CROSS_ENTROPY_ROWS: KernelDesc = KernelDesc {
    entry: "cross_entropy_rows",
    ..CROSS_ENTROPY
};

/// Rows per workgroup of [`CROSS_ENTROPY_ROWS`] (WGSL `ROWS_WG`).
pub const CROSS_ENTROPY_ROWS_WG: usize = 64;

/// Entry `mse`: bindings 9 pred, 10 target, 11 grad, 12 partials.
pub const MSE: KernelDesc = KernelDesc {
    shader: Shader::Loss,
    entry: "mse",
    base: 8,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::ReadWrite),
    ],
};

/// Entry `loss_reduce`: bindings 17 src, 18 dst.
pub const LOSS_REDUCE: KernelDesc = KernelDesc {
    shader: Shader::Loss,
    entry: "loss_reduce",
    base: 16,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Mirror of WGSL `CrossEntropyParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CrossEntropyParams {
    /// Rows N.
    pub rows: u32,
    /// Vocabulary V (columns).
    pub vocab: u32,
    /// Element offset of logits row 0.
    pub logits_off: u32,
    /// Padding.
    pub _pad0: u32,
    /// Factor of the gradient (`scale / rows` for the mean).
    pub grad_scale: f32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// Mirror of WGSL `MseParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct MseParams {
    /// Elements n.
    pub n: u32,
    /// Elements per workgroup.
    pub chunk: u32,
    /// Padding.
    pub _pad0: [u32; 2],
    /// Factor of the gradient (`scale / n` for the mean).
    pub grad_scale: f32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// Flag bits of [`ReduceParams::flags`] (WGSL consts of the same names).
pub mod flags {
    /// `dst += ...` instead of `dst = ...`.
    pub const ACCUMULATE: u32 = 1;
}

/// Mirror of WGSL `ReduceParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ReduceParams {
    /// Elements summed.
    pub n: u32,
    /// Element offset of the result in dst.
    pub dst_off: u32,
    /// See [`flags`].
    pub flags: u32,
    /// Padding.
    pub _pad0: u32,
    /// Factor of the sum.
    pub scale: f32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// `row_loss[r] = logsumexp(logits[r]) - logits[r, targets[r]]` and
/// `dlogits[r, v] = grad_scale * (softmax(logits[r])[v] - [v == targets[r]])` for `r < rows`,
/// logits `[rows, vocab]` from element `logits_off`, dlogits from element 0. `targets` is a
/// u32 buffer whose first `rows` entries must be `< vocab` (the caller checks).
#[allow(clippy::too_many_arguments)]
pub fn encode_cross_entropy(
    rec: &mut Recorder,
    logits: &wgpu::Buffer,
    logits_off: usize,
    targets: &wgpu::Buffer,
    rows: usize,
    vocab: usize,
    grad_scale: f32,
    dlogits: &wgpu::Buffer,
    row_loss: &wgpu::Buffer,
) -> Result<()> {
    let per_row = rec.gpu().prefers_direct_kernels();
    let desc = if per_row {
        &CROSS_ENTROPY_ROWS
    } else {
        &CROSS_ENTROPY
    };
    let bind = rec.bind(desc, &[logits, targets, dlogits, row_loss])?;
    u32_of("cross_entropy logits", rows.saturating_mul(vocab))?;
    let p = CrossEntropyParams {
        rows: u32_of("cross_entropy rows", rows)?,
        vocab: u32_of("cross_entropy vocab", vocab)?,
        logits_off: u32_of("cross_entropy logits offset", logits_off)?,
        grad_scale,
        ..Default::default()
    };
    let workgroups = if per_row {
        rows.div_ceil(CROSS_ENTROPY_ROWS_WG)
    } else {
        rows
    };
    rec.dispatch(bind, &p, grid(workgroups)?)
}

/// Elements each `mse` workgroup owns for `n` elements: a multiple of the workgroup size,
/// chosen so at most 256 workgroups (and partial sums) are needed.
pub fn mse_chunk(n: usize) -> usize {
    n.div_ceil(256).div_ceil(LOSS_WG).max(1) * LOSS_WG
}

/// Number of partial sums `mse` writes for `n` elements (the size `partials` needs).
pub fn mse_partials(n: usize) -> usize {
    n.div_ceil(mse_chunk(n))
}

/// `grad[i] = grad_scale * 2 * (pred[i] - target[i])` and one partial sum of squared errors
/// per workgroup into `partials[0..mse_partials(n)]`.
pub fn encode_mse(
    rec: &mut Recorder,
    pred: &wgpu::Buffer,
    target: &wgpu::Buffer,
    n: usize,
    grad_scale: f32,
    grad: &wgpu::Buffer,
    partials: &wgpu::Buffer,
) -> Result<()> {
    let bind = rec.bind(&MSE, &[pred, target, grad, partials])?;
    let chunk = mse_chunk(n);
    let p = MseParams {
        n: u32_of("mse elements", n)?,
        chunk: u32_of("mse chunk", chunk)?,
        grad_scale,
        ..Default::default()
    };
    rec.dispatch(bind, &p, grid(n.div_ceil(chunk))?)
}

/// `dst[dst_off] = (accumulate ? dst[dst_off] : 0) + scale * sum(src[0..n])`, one
/// workgroup, deterministic.
pub fn encode_loss_reduce(
    rec: &mut Recorder,
    src: &wgpu::Buffer,
    n: usize,
    scale: f32,
    dst: &wgpu::Buffer,
    dst_off: usize,
    accumulate: bool,
) -> Result<()> {
    let bind = rec.bind(&LOSS_REDUCE, &[src, dst])?;
    let p = ReduceParams {
        n: u32_of("loss_reduce elements", n)?,
        dst_off: u32_of("loss_reduce offset", dst_off)?,
        flags: if accumulate { flags::ACCUMULATE } else { 0 },
        scale,
        ..Default::default()
    };
    rec.dispatch(bind, &p, [1, 1, 1])
}
