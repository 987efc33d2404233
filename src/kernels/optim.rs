//! `shaders/optim.wgsl`: SGD (momentum, Nesterov) and Adam/AdamW steps over one flat
//! parameter buffer, one dispatch each.

use bytemuck::{Pod, Zeroable};

use super::{grid, u32_of, Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::Recorder;

/// Threads per workgroup of both entries.
pub const OPTIM_WG: usize = 256;

/// Entry `sgd_step`: bindings 1 params (rw), 2 grads, 3 momentum buffer (rw).
pub const SGD_STEP: KernelDesc = KernelDesc {
    shader: Shader::Optim,
    entry: "sgd_step",
    base: 0,
    bindings: &[
        Some(Access::ReadWrite),
        Some(Access::Read),
        Some(Access::ReadWrite),
    ],
};

/// Entry `adam_step`: bindings 9 params (rw), 10 grads, 11 exp_avg (rw), 12 exp_avg_sq (rw).
pub const ADAM_STEP: KernelDesc = KernelDesc {
    shader: Shader::Optim,
    entry: "adam_step",
    base: 8,
    bindings: &[
        Some(Access::ReadWrite),
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::ReadWrite),
    ],
};

/// Flag bits of [`OptimParams::flags`].
pub mod flags {
    /// SGD: momentum is non-zero (the buffer is used).
    pub const HAS_MOMENTUM: u32 = 1;
    /// SGD: Nesterov momentum.
    pub const NESTEROV: u32 = 2;
    /// SGD: first step, the buffer starts as the gradient (torch clones it).
    pub const FIRST: u32 = 4;
    /// Adam: decoupled weight decay (AdamW).
    pub const DECOUPLED: u32 = 1;
}

/// Mirror of WGSL `OptimParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OptimParams {
    /// Elements n.
    pub n: u32,
    /// Step count t (1 on the first step).
    pub step: u32,
    /// See [`flags`].
    pub flags: u32,
    /// Padding.
    pub _pad0: u32,
    /// Learning rate.
    pub lr: f32,
    /// SGD momentum, or Adam beta1.
    pub a: f32,
    /// SGD dampening, or Adam beta2.
    pub b: f32,
    /// Adam eps.
    pub eps: f32,
    /// Weight decay (L2 for SGD and Adam, decoupled for AdamW).
    pub weight_decay: f32,
    /// Adam: `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// Adam: `sqrt(1 - beta2^t)`.
    pub bc2_sqrt: f32,
    /// AdamW: `1 - lr * weight_decay`.
    pub decay: f32,
    /// SGD: `1 - dampening`; Adam: `1 - beta1` (rounded once from f64, as torch does).
    pub one_minus_a: f32,
    /// Adam: `1 - beta2`.
    pub one_minus_b: f32,
    /// Padding.
    pub _pad1: [u32; 2],
}

fn check_len(what: &str, n: usize, t: &wgpu::Buffer) -> Result<()> {
    if (n as u64) * 4 > t.size() {
        return Err(crate::Error::Shape {
            what: format!("{what} ({} bytes)", t.size()),
            expected: vec![n],
            got: vec![(t.size() / 4) as usize],
        });
    }
    Ok(())
}

/// One SGD step over the first `p.n` elements of `params` (see the shader for the formula).
pub fn encode_sgd_step(
    rec: &mut Recorder,
    params: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    momentum_buf: &wgpu::Buffer,
    p: &OptimParams,
) -> Result<()> {
    let n = p.n as usize;
    check_len("sgd params", n, params)?;
    check_len("sgd grads", n, grads)?;
    if p.flags & flags::HAS_MOMENTUM != 0 {
        check_len("sgd momentum buffer", n, momentum_buf)?;
    }
    let bind = rec.bind(&SGD_STEP, &[params, grads, momentum_buf])?;
    rec.dispatch(bind, p, grid(n.div_ceil(OPTIM_WG))?)
}

/// One Adam or AdamW step over the first `p.n` elements of `params`.
pub fn encode_adam_step(
    rec: &mut Recorder,
    params: &wgpu::Buffer,
    grads: &wgpu::Buffer,
    exp_avg: &wgpu::Buffer,
    exp_avg_sq: &wgpu::Buffer,
    p: &OptimParams,
) -> Result<()> {
    let n = p.n as usize;
    check_len("adam params", n, params)?;
    check_len("adam grads", n, grads)?;
    check_len("adam exp_avg", n, exp_avg)?;
    check_len("adam exp_avg_sq", n, exp_avg_sq)?;
    let bind = rec.bind(&ADAM_STEP, &[params, grads, exp_avg, exp_avg_sq])?;
    rec.dispatch(bind, p, grid(n.div_ceil(OPTIM_WG))?)
}

/// The element count as the uniform's u32.
pub fn n_u32(n: usize) -> Result<u32> {
    u32_of("optimizer elements", n)
}
