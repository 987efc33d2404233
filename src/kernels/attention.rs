//! `shaders/attention.wgsl`: additive (Bahdanau) attention for one decoder step, forward
//! and backward, one workgroup per batch row (scores, softmax and context fused in one
//! dispatch; the backward in two). Shapes, time-major: keys `(S, B, A)`, query `(B, A)`,
//! score vector `v` `(A)`, values `(S, B, D)`, weights `alpha` `(S, B)`, context `(B, D)`.
//! The reference is [`crate::reference::attention`].

use bytemuck::{Pod, Zeroable};

use super::{u32_of, Access, KernelDesc, Shader};
use crate::error::{Error, Result};
use crate::gpu::Recorder;

/// Threads per workgroup (one workgroup per batch row).
pub const ATTENTION_WG: usize = 64;
/// The longest source sequence a workgroup holds (its scores live in workgroup memory).
pub const MAX_SOURCE: usize = 256;

/// Entry `attention_forward`: bindings 1 keys, 2 query, 3 v, 4 values, 5 alpha (rw),
/// 6 ctx (rw).
pub const ATTENTION_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::Attention,
    entry: "attention_forward",
    base: 0,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::ReadWrite),
    ],
};

/// Entry `attention_backward_values`: bindings 9 alpha, 10 dctx, 11 values, 12 dvalues
/// (rw), 13 dscores (rw).
pub const ATTENTION_BACKWARD_VALUES: KernelDesc = KernelDesc {
    shader: Shader::Attention,
    entry: "attention_backward_values",
    base: 8,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::ReadWrite),
    ],
};

/// Entry `attention_backward_scores`: bindings 17 keys, 18 query, 19 v, 20 dscores,
/// 21 dkeys (rw), 22 dquery (rw), 23 dv_rows (rw).
pub const ATTENTION_BACKWARD_SCORES: KernelDesc = KernelDesc {
    shader: Shader::Attention,
    entry: "attention_backward_scores",
    base: 16,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::ReadWrite),
        Some(Access::ReadWrite),
    ],
};

/// Flag bits of [`AttentionParams::flags`] (WGSL consts of the same names).
pub mod flags {
    /// Backward: `dvalues`, `dkeys` and `dv_rows` are added to instead of overwritten.
    pub const ACCUMULATE: u32 = 1;
}

/// Mirror of WGSL `AttentionParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct AttentionParams {
    /// Source length S.
    pub s_len: u32,
    /// Batch B.
    pub batch: u32,
    /// Attention width A.
    pub a_dim: u32,
    /// Value width D.
    pub d_dim: u32,
    /// See [`flags`].
    pub flags: u32,
    /// Element offset of the query (and of dquery).
    pub q_off: u32,
    /// Element offset of alpha.
    pub alpha_off: u32,
    /// Element offset of the context (and of dctx).
    pub ctx_off: u32,
}

/// Sizes of one attention step: source length, batch, attention width, value width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Source length S (1..=[`MAX_SOURCE`]).
    pub s_len: usize,
    /// Batch B.
    pub batch: usize,
    /// Width A of keys, query and `v`.
    pub a_dim: usize,
    /// Width D of the values and the context.
    pub d_dim: usize,
}

/// Offsets of the per-step slices: query (and dquery), alpha, context (and dctx).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttentionOffsets {
    /// Element offset of the query `(B, A)`.
    pub query: usize,
    /// Element offset of alpha `(S, B)`.
    pub alpha: usize,
    /// Element offset of the context `(B, D)`.
    pub ctx: usize,
}

fn params(shape: AttentionShape, off: AttentionOffsets, flags: u32) -> Result<AttentionParams> {
    let AttentionShape {
        s_len,
        batch,
        a_dim,
        d_dim,
    } = shape;
    if s_len == 0 || s_len > MAX_SOURCE || batch == 0 || a_dim == 0 || d_dim == 0 {
        return Err(Error::InvalidConfig(format!(
            "attention needs a source length in 1..={MAX_SOURCE} and positive sizes, got S \
             {s_len}, B {batch}, A {a_dim}, D {d_dim}"
        )));
    }
    if batch > 65535 {
        return Err(Error::InvalidConfig(format!(
            "attention batch {batch}: one workgroup a row, at most 65535"
        )));
    }
    // Every index the kernels form stays under the largest tensor's element count.
    u32_of("attention keys", s_len * batch * a_dim.max(d_dim))?;
    Ok(AttentionParams {
        s_len: s_len as u32,
        batch: u32_of("attention batch", batch)?,
        a_dim: a_dim as u32,
        d_dim: d_dim as u32,
        flags,
        q_off: u32_of("attention query offset", off.query)?,
        alpha_off: u32_of("attention alpha offset", off.alpha)?,
        ctx_off: u32_of("attention context offset", off.ctx)?,
    })
}

/// The device buffers of a forward step.
#[derive(Clone, Copy, Debug)]
pub struct AttentionForward<'a> {
    /// `(S, B, A)`.
    pub keys: &'a wgpu::Buffer,
    /// `(B, A)` at `offsets.query`.
    pub query: &'a wgpu::Buffer,
    /// `(A)`.
    pub v: &'a wgpu::Buffer,
    /// `(S, B, D)`.
    pub values: &'a wgpu::Buffer,
    /// Written: `(S, B)` at `offsets.alpha`.
    pub alpha: &'a wgpu::Buffer,
    /// Written: `(B, D)` at `offsets.ctx`.
    pub ctx: &'a wgpu::Buffer,
}

/// Records the forward step: `alpha = softmax_s(v · tanh(q + K[s]))`, `ctx = Σ_s alpha Hs`.
pub fn encode_forward(
    rec: &mut Recorder,
    shape: AttentionShape,
    offsets: AttentionOffsets,
    b: AttentionForward,
) -> Result<()> {
    let p = params(shape, offsets, 0)?;
    let bind = rec.bind(
        &ATTENTION_FORWARD,
        &[b.keys, b.query, b.v, b.values, b.alpha, b.ctx],
    )?;
    rec.dispatch(bind, &p, [p.batch, 1, 1])
}

/// The device buffers of a backward step.
#[derive(Clone, Copy, Debug)]
pub struct AttentionBackward<'a> {
    /// `(S, B, A)`.
    pub keys: &'a wgpu::Buffer,
    /// `(B, A)` at `offsets.query`.
    pub query: &'a wgpu::Buffer,
    /// `(A)`.
    pub v: &'a wgpu::Buffer,
    /// `(S, B, D)`.
    pub values: &'a wgpu::Buffer,
    /// The forward's weights, `(S, B)` at `offsets.alpha`.
    pub alpha: &'a wgpu::Buffer,
    /// The context's gradient, `(B, D)` at `offsets.ctx`.
    pub dctx: &'a wgpu::Buffer,
    /// Scratch `(S, B)`: the scores' gradient.
    pub dscores: &'a wgpu::Buffer,
    /// `(S, B, D)`, added to with `accumulate`.
    pub dvalues: &'a wgpu::Buffer,
    /// `(S, B, A)`, added to with `accumulate`.
    pub dkeys: &'a wgpu::Buffer,
    /// Written: `(B, A)` at `offsets.query`.
    pub dquery: &'a wgpu::Buffer,
    /// `(B, A)`: one row of `v`'s gradient per batch row (their sum is `dv`), added to with
    /// `accumulate`.
    pub dv_rows: &'a wgpu::Buffer,
}

/// Records the backward of [`encode_forward`] for the context's gradient `dctx`.
pub fn encode_backward(
    rec: &mut Recorder,
    shape: AttentionShape,
    offsets: AttentionOffsets,
    accumulate: bool,
    b: AttentionBackward,
) -> Result<()> {
    let p = params(
        shape,
        offsets,
        if accumulate { flags::ACCUMULATE } else { 0 },
    )?;
    let bind = rec.bind(
        &ATTENTION_BACKWARD_VALUES,
        &[b.alpha, b.dctx, b.values, b.dvalues, b.dscores],
    )?;
    rec.dispatch(bind, &p, [p.batch, 1, 1])?;
    let bind = rec.bind(
        &ATTENTION_BACKWARD_SCORES,
        &[
            b.keys, b.query, b.v, b.dscores, b.dkeys, b.dquery, b.dv_rows,
        ],
    )?;
    rec.dispatch(bind, &p, [p.batch, 1, 1])
}
