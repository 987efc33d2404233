//! `shaders/step_vec4.wgsl`: the fused step kernels of every cell for CPU adapters, on
//! vec4-typed storage (four hidden units an invocation). Bindings as in [`super::step`],
//! except the GRU backward, which takes dg_h at 13 (it feeds the recurrent product) and dg_x
//! at 15. The file is built twice: [`Shader::StepVec4`] with 4 batch rows an invocation
//! (rows share each load of W_hh) and [`Shader::StepVec4Row`] with one (a batch of one pays
//! for one row); the constants below name the first build, [`for_rows`] picks the other.

use super::{gru, lstm, rnn, Access, KernelDesc, Shader};

const R: Option<Access> = Some(Access::Read);
const RW: Option<Access> = Some(Access::ReadWrite);

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

/// The sequence entries add one storage binding after the step kernels' own: the per-step
/// parameter array (binding 7 forward, 16 backward).
macro_rules! with_steps {
    ($($a:expr),*) => {
        &[$($a),*, Some(Access::Read)]
    };
}

/// Entry `rnn_sequence_forward_vec4`: every step of [`RNN_FORWARD`] in one workgroup.
pub const RNN_SEQUENCE_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "rnn_sequence_forward_vec4",
    base: 0,
    bindings: with_steps!(R, R, RW, None, RW, None),
};

/// Entry `lstm_sequence_forward_vec4`: every step of [`LSTM_FORWARD`] in one workgroup.
pub const LSTM_SEQUENCE_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "lstm_sequence_forward_vec4",
    base: 0,
    bindings: with_steps!(R, R, RW, RW, RW, RW),
};

/// Entry `gru_sequence_forward_vec4`: every step of [`GRU_FORWARD`] in one workgroup.
pub const GRU_SEQUENCE_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "gru_sequence_forward_vec4",
    base: 0,
    bindings: with_steps!(R, R, RW, None, RW, RW),
};

/// Entry `rnn_sequence_backward_vec4`: every step of [`RNN_BACKWARD`] in one workgroup.
pub const RNN_SEQUENCE_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "rnn_sequence_backward_vec4",
    base: 8,
    bindings: with_steps!(R, R, None, R, RW, RW, None),
};

/// Entry `lstm_sequence_backward_vec4`: every step of [`LSTM_BACKWARD`] in one workgroup.
pub const LSTM_SEQUENCE_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "lstm_sequence_backward_vec4",
    base: 8,
    bindings: with_steps!(R, R, R, R, RW, RW, RW),
};

/// Entry `gru_sequence_backward_vec4`: every step of [`GRU_BACKWARD`] in one workgroup.
pub const GRU_SEQUENCE_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::StepVec4,
    entry: "gru_sequence_backward_vec4",
    base: 8,
    bindings: with_steps!(R, R, R, R, RW, RW, RW),
};

/// Invocations of the one workgroup of the sequence entries (WGSL `SEQ_WG`).
pub const SEQUENCE_WORKGROUP: usize = 16;

/// Most (4 units, rows) blocks a step of a sequence entry has: four per invocation.
pub const SEQUENCE_BLOCKS: usize = 4 * SEQUENCE_WORKGROUP;

/// `desc` (one of this file's constants) in the build for `rows` batch rows an invocation.
pub fn for_rows(desc: &KernelDesc, rows: usize) -> KernelDesc {
    let shader = if rows == 1 {
        Shader::StepVec4Row
    } else {
        Shader::StepVec4
    };
    KernelDesc { shader, ..*desc }
}
