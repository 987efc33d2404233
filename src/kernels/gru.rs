//! `shaders/gru.wgsl`: the fused GRU step kernels. Parameter structs and the
//! encode functions are shared in [`super::step`].

use super::{Access, KernelDesc, Shader};

/// Entry `gru_step_forward` (bindings 0..6, see [`super::step`]).
pub const STEP_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::Gru,
    entry: "gru_step_forward",
    base: 0,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
        None,
        Some(Access::ReadWrite),
        Some(Access::ReadWrite),
    ],
};

/// Entry `gru_step_backward` (bindings 8..15, see [`super::step`]).
pub const STEP_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::Gru,
    entry: "gru_step_backward",
    base: 8,
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

/// Entry `gru_step_forward_direct`: [`STEP_FORWARD`] without workgroup memory (CPU adapters).
pub const STEP_FORWARD_DIRECT: KernelDesc = KernelDesc {
    entry: "gru_step_forward_direct",
    ..STEP_FORWARD
};

/// Entry `gru_step_backward_direct`: [`STEP_BACKWARD`] without workgroup memory.
pub const STEP_BACKWARD_DIRECT: KernelDesc = KernelDesc {
    entry: "gru_step_backward_direct",
    ..STEP_BACKWARD
};

/// Entry `gru_step_forward_small`: [`STEP_FORWARD`] for batches of at most 4 rows, the
/// sum over k split between a workgroup's threads (`shaders/step_small_batch.wgsl`).
pub const STEP_FORWARD_SMALL: KernelDesc = KernelDesc {
    entry: "gru_step_forward_small",
    ..STEP_FORWARD
};

/// Entry `gru_step_backward_small`: [`STEP_BACKWARD`] for batches of at most 4 rows, the
/// sum over the rows of W_hh split between a workgroup's threads
/// (`shaders/step_small_batch.wgsl`).
pub const STEP_BACKWARD_SMALL: KernelDesc = KernelDesc {
    entry: "gru_step_backward_small",
    ..STEP_BACKWARD
};
