//! `shaders/step_vec4.wgsl`: the fused step kernels of every cell for CPU adapters, on
//! vec4-typed storage (four hidden units an invocation). Bindings as in [`super::step`],
//! except the GRU backward, which takes dg_h at 13 (it feeds the recurrent product) and dg_x
//! at 15.

use super::{gru, lstm, rnn, KernelDesc, Shader};

/// Batch rows one invocation owns (WGSL `NB`).
pub const ROWS: usize = 4;
/// Hidden units one invocation owns (one vec4).
pub const UNITS: usize = 4;
/// Invocations per workgroup (all along the units).
pub const WORKGROUP: usize = 8;

/// Entry `rnn_step_forward_vec4`.
pub const RNN_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "rnn_step_forward_vec4",
    ..rnn::STEP_FORWARD
};

/// Entry `rnn_step_backward_vec4`.
pub const RNN_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "rnn_step_backward_vec4",
    ..rnn::STEP_BACKWARD
};

/// Entry `lstm_step_forward_vec4`.
pub const LSTM_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "lstm_step_forward_vec4",
    ..lstm::STEP_FORWARD
};

/// Entry `lstm_step_backward_vec4`.
pub const LSTM_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "lstm_step_backward_vec4",
    ..lstm::STEP_BACKWARD
};

/// Entry `gru_step_forward_vec4`.
pub const GRU_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "gru_step_forward_vec4",
    ..gru::STEP_FORWARD
};

/// Entry `gru_step_backward_vec4`.
pub const GRU_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "gru_step_backward_vec4",
    ..gru::STEP_BACKWARD
};
