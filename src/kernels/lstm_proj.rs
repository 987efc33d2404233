//! `shaders/lstm_proj.wgsl`: the first half of an LSTM-with-projection backward step (dh
//! through W_hh's P columns). Its parameter struct and encode functions are in [`super::step`].

use super::{Access, KernelDesc, Shader};

/// Entry `lstm_proj_backward` (bindings 16..21): dh of a step with a projection.
pub const PROJ_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::LstmProj,
    entry: "lstm_proj_backward",
    base: 16,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::ReadWrite),
    ],
};

/// Entry `lstm_proj_backward_direct`: [`PROJ_BACKWARD`] without workgroup memory.
pub const PROJ_BACKWARD_DIRECT: KernelDesc = KernelDesc {
    entry: "lstm_proj_backward_direct",
    ..PROJ_BACKWARD
};
