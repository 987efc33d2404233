//! `shaders/eager.wgsl`: generic strided elementwise ops for the bench's host-loop baseline
//! (how a general tensor library runs an RNN) and for [`crate::nn::Tanh`],
//! [`crate::nn::record_add`] and [`crate::nn::record_mul`]. recur's RNN path does not use them.

use bytemuck::{Pod, Zeroable};

use super::{u32_of, Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::Recorder;

/// Entry `ew_binary`.
pub const EW_BINARY: KernelDesc = KernelDesc {
    shader: Shader::Eager,
    entry: "ew_binary",
    base: 0,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
    ],
};

/// Entry `ew_unary`.
pub const EW_UNARY: KernelDesc = KernelDesc {
    shader: Shader::Eager,
    entry: "ew_unary",
    base: 8,
    bindings: &[Some(Access::Read), Some(Access::ReadWrite)],
};

/// Mirror of WGSL `EwParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct EwParams {
    /// Rows of the block.
    pub rows: u32,
    /// Columns of the block.
    pub cols: u32,
    /// Offset of a.
    pub a_off: u32,
    /// Row stride of a.
    pub a_ld: u32,
    /// Offset of b.
    pub b_off: u32,
    /// Row stride of b.
    pub b_ld: u32,
    /// Offset of d.
    pub d_off: u32,
    /// Row stride of d.
    pub d_ld: u32,
    /// The operation (see the shader).
    pub op: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// Binary operations.
#[derive(Clone, Copy, Debug)]
pub enum Binary {
    /// a + b
    Add = 0,
    /// a * b
    Mul = 1,
}

/// Unary operations.
#[derive(Clone, Copy, Debug)]
pub enum Unary {
    /// 1 / (1 + e^-x)
    Sigmoid = 0,
    /// tanh x
    Tanh = 1,
    /// x (1 - x): sigmoid' from its output
    DSigmoid = 2,
    /// 1 - x²: tanh' from its output
    DTanh = 3,
    /// x
    Copy = 4,
}

/// A strided block operand: buffer, element offset, row stride.
pub type Block<'a> = (&'a wgpu::Buffer, usize, usize);

/// Workgroups of 64 covering `n` elements, folded into y past the per-dimension limit.
fn grid(n: usize) -> Result<[u32; 3]> {
    super::grid(n.div_ceil(64))
}

/// `d = a op b` over a `rows x cols` block.
pub fn encode_binary(
    rec: &mut Recorder,
    op: Binary,
    a: Block,
    b: Block,
    d: Block,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let bind = rec.bind(&EW_BINARY, &[a.0, b.0, d.0])?;
    let p = EwParams {
        rows: u32_of("rows", rows)?,
        cols: u32_of("cols", cols)?,
        a_off: u32_of("offset", a.1)?,
        a_ld: u32_of("ld", a.2)?,
        b_off: u32_of("offset", b.1)?,
        b_ld: u32_of("ld", b.2)?,
        d_off: u32_of("offset", d.1)?,
        d_ld: u32_of("ld", d.2)?,
        op: op as u32,
        _pad: [0; 3],
    };
    rec.dispatch(bind, &p, grid(rows * cols)?)
}

/// `d = op(a)` over a `rows x cols` block.
pub fn encode_unary(
    rec: &mut Recorder,
    op: Unary,
    a: Block,
    d: Block,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let bind = rec.bind(&EW_UNARY, &[a.0, d.0])?;
    let p = EwParams {
        rows: u32_of("rows", rows)?,
        cols: u32_of("cols", cols)?,
        a_off: u32_of("offset", a.1)?,
        a_ld: u32_of("ld", a.2)?,
        d_off: u32_of("offset", d.1)?,
        d_ld: u32_of("ld", d.2)?,
        op: op as u32,
        ..Default::default()
    };
    rec.dispatch(bind, &p, grid(rows * cols)?)
}
