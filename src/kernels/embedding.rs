//! `shaders/embedding.wgsl`: embedding lookup and its deterministic gradient (a bucket sort
//! of the rows by id, made on the host, gives each weight row one owner).

use bytemuck::{Pod, Zeroable};

use super::{grid, u32_of, Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::Recorder;

/// Threads per workgroup of both entries.
pub const EMBEDDING_WG: usize = 256;

/// Entry `embedding_forward`: bindings 1 weight, 2 ids (u32), 3 out (rw).
pub const EMBEDDING_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::Embedding,
    entry: "embedding_forward",
    base: 0,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
    ],
};

/// Entry `embedding_backward`: bindings 9 ids with buckets (u32), 10 dy, 11 dweight (rw).
pub const EMBEDDING_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::Embedding,
    entry: "embedding_backward",
    base: 8,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
    ],
};

/// Flag bits of [`EmbeddingParams::flags`] (WGSL consts of the same names).
pub mod flags {
    /// Backward: `dweight += ...` instead of `dweight = ...`.
    pub const ACCUMULATE: u32 = 1;
}

/// Mirror of WGSL `EmbeddingParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct EmbeddingParams {
    /// Forward: rows n; backward: vocabulary V.
    pub count: u32,
    /// Embedding width D.
    pub dim: u32,
    /// Vocabulary V.
    pub vocab: u32,
    /// See [`flags`].
    pub flags: u32,
    /// Backward: element offset of the `V + 1` bucket starts in the id buffer.
    pub starts_off: u32,
    /// Backward: element offset of the bucketed row list in the id buffer.
    pub rows_off: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// `out[r, d] = weight[ids[r], d]` for `r < rows`, `d < dim`; weight `[vocab, dim]`.
pub fn encode_forward(
    rec: &mut Recorder,
    weight: &wgpu::Buffer,
    ids: &wgpu::Buffer,
    rows: usize,
    vocab: usize,
    dim: usize,
    out: &wgpu::Buffer,
) -> Result<()> {
    let total = u32_of("embedding output", rows.saturating_mul(dim))? as usize;
    let bind = rec.bind(&EMBEDDING_FORWARD, &[weight, ids, out])?;
    let p = EmbeddingParams {
        count: u32_of("embedding rows", rows)?,
        dim: u32_of("embedding dim", dim)?,
        vocab: u32_of("embedding vocab", vocab)?,
        ..Default::default()
    };
    rec.dispatch(bind, &p, grid(total.div_ceil(EMBEDDING_WG))?)
}

/// `dweight[v, d] (+)= sum of dy[r, d]` over the rows r with id v, for `v < vocab`, using the
/// buckets at `starts_off` / `rows_off` of `ids` (see the shader).
#[allow(clippy::too_many_arguments)]
pub fn encode_backward(
    rec: &mut Recorder,
    ids: &wgpu::Buffer,
    starts_off: usize,
    rows_off: usize,
    vocab: usize,
    dim: usize,
    dy: &wgpu::Buffer,
    dweight: &wgpu::Buffer,
    accumulate: bool,
) -> Result<()> {
    let total = u32_of("embedding weight", vocab.saturating_mul(dim))? as usize;
    let bind = rec.bind(&EMBEDDING_BACKWARD, &[ids, dy, dweight])?;
    let p = EmbeddingParams {
        count: u32_of("embedding vocab", vocab)?,
        dim: u32_of("embedding dim", dim)?,
        vocab: u32_of("embedding vocab", vocab)?,
        flags: if accumulate { flags::ACCUMULATE } else { 0 },
        starts_off: u32_of("embedding starts offset", starts_off)?,
        rows_off: u32_of("embedding rows offset", rows_off)?,
        ..Default::default()
    };
    rec.dispatch(bind, &p, grid(total.div_ceil(EMBEDDING_WG))?)
}
