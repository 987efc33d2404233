//! `shaders/matmul.wgsl`: `C (+)= op(A)·op(B) (+ bias)`, the GEMMs around the time loop.

use bytemuck::{Pod, Zeroable};

use super::{groups, u32_of, Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::Recorder;

/// Entry `matmul`.
pub const MATMUL: KernelDesc = KernelDesc {
    shader: Shader::Matmul,
    entry: "matmul",
    base: 0,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
    ],
};

/// Entry `matmul_direct`: no workgroup memory, for CPU adapters.
pub const MATMUL_DIRECT: KernelDesc = KernelDesc {
    shader: Shader::Matmul,
    entry: "matmul_direct",
    base: 0,
    bindings: MATMUL.bindings,
};

/// Mirror of WGSL `MatmulParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct MatmulParams {
    /// Rows of C.
    pub m: u32,
    /// Columns of C.
    pub n: u32,
    /// Inner dimension.
    pub k: u32,
    /// Leading dimension of A as stored.
    pub lda: u32,
    /// Leading dimension of B as stored.
    pub ldb: u32,
    /// Leading dimension of C.
    pub ldc: u32,
    /// Element offset of A.
    pub a_off: u32,
    /// Element offset of B.
    pub b_off: u32,
    /// Element offset of C.
    pub c_off: u32,
    /// Element offset of the bias.
    pub bias_off: u32,
    /// bit 0 TRANS_A, bit 1 TRANS_B, bit 2 ACCUMULATE, bit 3 BIAS.
    pub flags: u32,
    /// Padding.
    pub _pad: u32,
}

/// A matrix inside a buffer: element offset and leading dimension (row stride as stored).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// The buffer.
    pub buffer: &'a wgpu::Buffer,
    /// Element offset of the first element.
    pub offset: usize,
    /// Row stride as stored.
    pub ld: usize,
}

/// One GEMM: `C[m, n] (+)= op(A)[m, k] · op(B)[k, n] (+ bias[n])`.
#[derive(Clone, Copy, Debug)]
pub struct Gemm<'a> {
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// A, stored `[m, k]`, or `[k, m]` when `trans_a`.
    pub a: MatRef<'a>,
    /// Whether A is stored transposed.
    pub trans_a: bool,
    /// B, stored `[k, n]`, or `[n, k]` when `trans_b`.
    pub b: MatRef<'a>,
    /// Whether B is stored transposed.
    pub trans_b: bool,
    /// Optional bias over columns: buffer and element offset.
    pub bias: Option<(&'a wgpu::Buffer, usize)>,
    /// C.
    pub c: MatRef<'a>,
    /// `C += ...` instead of `C = ...`.
    pub accumulate: bool,
}

/// Records one GEMM.
pub fn encode_matmul(rec: &mut Recorder, g: &Gemm) -> Result<()> {
    let bias_buf = g.bias.map(|b| b.0).unwrap_or(g.a.buffer);
    let direct = rec.gpu().prefers_direct_kernels();
    let desc = if direct { &MATMUL_DIRECT } else { &MATMUL };
    let bind = rec.bind(desc, &[g.a.buffer, g.b.buffer, bias_buf, g.c.buffer])?;
    let flags = u32::from(g.trans_a)
        | (u32::from(g.trans_b) << 1)
        | (u32::from(g.accumulate) << 2)
        | (u32::from(g.bias.is_some()) << 3);
    let p = MatmulParams {
        m: u32_of("matmul m", g.m)?,
        n: u32_of("matmul n", g.n)?,
        k: u32_of("matmul k", g.k)?,
        lda: u32_of("matmul lda", g.a.ld)?,
        ldb: u32_of("matmul ldb", g.b.ld)?,
        ldc: u32_of("matmul ldc", g.c.ld)?,
        a_off: u32_of("matmul a offset", g.a.offset)?,
        b_off: u32_of("matmul b offset", g.b.offset)?,
        c_off: u32_of("matmul c offset", g.c.offset)?,
        bias_off: u32_of("matmul bias offset", g.bias.map(|b| b.1).unwrap_or(0))?,
        flags,
        _pad: 0,
    };
    // 64x64 tiles, or 32x32 (8x8 threads of 4x4) for the direct kernel.
    let tile = if direct { 32 } else { 64 };
    rec.dispatch(bind, &p, [groups(g.n, tile)?, groups(g.m, tile)?, 1])
}
