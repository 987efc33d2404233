//! `shaders/step_vec4.wgsl`: the fused step kernels of every cell for CPU adapters, on
//! vec4-typed storage (four hidden units an invocation). Bindings as in [`super::step`],
//! except the GRU backward, which takes dg_h at 13 (it feeds the recurrent product) and dg_x
//! at 15. The file is built three times: [`Shader::StepVec4`] with 4 batch rows an
//! invocation (rows share each load of W_hh), [`Shader::StepVec4Row`] with one (a batch of
//! one pays for one row), and [`Shader::StepVec4Subgroup`] with 8, which the 8 lanes of a
//! subgroup share (each lane loads one row of the rows' operand and broadcasts it; see
//! [`crate::Gpu::shares_subgroup_loads`]; no whole-sequence entries). The constants below
//! name the first build, [`for_rows`] picks the others.

use bytemuck::Pod;

use super::step::{
    backward_bindings, forward_bindings, select, BackwardBuffers, ForwardBuffers, StepBackParams,
    StepFamily, StepParams,
};
use super::CellKind;
use super::{gru, lstm, rnn, Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};

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

/// Batch rows an invocation of the subgroup build owns: the 8 lanes of its subgroup share
/// them ([`StepFamily::Vec4`] `{ rows: SUBGROUP_ROWS }`).
pub const SUBGROUP_ROWS: usize = 8;

/// `desc` (one of this file's constants) in the build for `rows` batch rows an invocation:
/// 1, 4, or [`SUBGROUP_ROWS`] (the subgroup build). An f16-weight desc stays f16.
pub fn for_rows(desc: &KernelDesc, rows: usize) -> KernelDesc {
    let f16 = matches!(
        desc.shader,
        Shader::StepVec4F16 | Shader::StepVec4RowF16 | Shader::StepVec4SubgroupF16
    );
    let shader = match (rows, f16) {
        (1, false) => Shader::StepVec4Row,
        (1, true) => Shader::StepVec4RowF16,
        (SUBGROUP_ROWS, false) => Shader::StepVec4Subgroup,
        (SUBGROUP_ROWS, true) => Shader::StepVec4SubgroupF16,
        (_, false) => Shader::StepVec4,
        (_, true) => Shader::StepVec4F16,
    };
    KernelDesc { shader, ..*desc }
}

/// The vec4 kernels index whole vec4s: an offset that is not a multiple of 4 would be a bug
/// of the plan (see [`StepFamily::choose`]), reported rather than computed wrongly.
fn check_vec4(entry: &str, offsets: &[u32]) -> Result<()> {
    if offsets.iter().any(|o| o % 4 != 0) {
        return Err(crate::Error::Internal(format!(
            "{entry}: vec4 step kernel given offsets {offsets:?}, not all multiples of 4"
        )));
    }
    Ok(())
}

/// Most multiply-adds a step may have (B·G·H·state) for [`whole_sequence`]: past it, the
/// step's arithmetic on one core costs more than a dispatch on all of them.
const SEQUENCE_MAX_MACS: usize = 1 << 15;

/// Whether a (layer, direction) runs all its steps in one dispatch of one workgroup (the
/// `*_sequence_*_vec4` entries): vec4 family (not its subgroup build, which has no such
/// entries), at most [`SEQUENCE_BLOCKS`] (4 units, rows) blocks a step (four per
/// invocation), and little arithmetic a step. On CPU adapters a dispatch costs tens of µs,
/// more than such a step's arithmetic.
pub fn whole_sequence(
    family: StepFamily,
    hidden: usize,
    state: usize,
    gates: usize,
    batch: usize,
) -> bool {
    let StepFamily::Vec4 { rows } = family else {
        return false;
    };
    rows != SUBGROUP_ROWS
        && (hidden / UNITS) * batch.div_ceil(rows) <= SEQUENCE_BLOCKS
        && batch * gates * hidden * state <= SEQUENCE_MAX_MACS
}

/// The per-step parameters of a sequence entry as the words of its storage buffer (the
/// `table` of [`encode_sequence_forward`] and [`encode_sequence_backward`]).
pub fn steps_table<P: Pod>(steps: &[P]) -> &[f32] {
    bytemuck::cast_slice(steps)
}

/// Records every forward step of a (layer, direction) as one dispatch of one workgroup,
/// `steps` in the order they run (see [`whole_sequence`]), `table` a buffer that holds
/// [`steps_table`]`(steps)` when the submission runs.
pub fn encode_sequence_forward(
    rec: &mut Recorder,
    cell: CellKind,
    family: StepFamily,
    b: &ForwardBuffers,
    steps: &[StepParams],
    table: &Tensor,
) -> Result<()> {
    for p in steps {
        check_forward_vec4(p)?;
    }
    let desc = match cell {
        CellKind::RnnTanh | CellKind::RnnRelu => &RNN_SEQUENCE_FORWARD,
        CellKind::Lstm => &LSTM_SEQUENCE_FORWARD,
        CellKind::Gru => &GRU_SEQUENCE_FORWARD,
    };
    let buffers = forward_bindings(b);
    let desc = desc.weights(b.f16_weights)?;
    dispatch_sequence(rec, family, &desc, &buffers, steps, table)
}

/// Records every backward step of a (layer, direction) as one dispatch of one workgroup,
/// `steps` in the order they run (see [`whole_sequence`]), `table` a buffer that holds
/// [`steps_table`]`(steps)` when the submission runs.
pub fn encode_sequence_backward(
    rec: &mut Recorder,
    cell: CellKind,
    family: StepFamily,
    b: &BackwardBuffers,
    steps: &[StepBackParams],
    table: &Tensor,
) -> Result<()> {
    for p in steps {
        check_backward_vec4(p)?;
    }
    let desc = match cell {
        CellKind::RnnTanh | CellKind::RnnRelu => &RNN_SEQUENCE_BACKWARD,
        CellKind::Lstm => &LSTM_SEQUENCE_BACKWARD,
        CellKind::Gru => &GRU_SEQUENCE_BACKWARD,
    };
    let buffers = backward_bindings(cell, family, b);
    dispatch_sequence(rec, family, desc, &buffers, steps, table)
}

/// Binds a sequence entry (in `family`'s build) to the step kernel's `buffers` and the step
/// `table`, and dispatches its one workgroup (the uniform is the first step's parameters; the
/// kernel reads its steps from the table).
fn dispatch_sequence<P: Pod>(
    rec: &mut Recorder,
    family: StepFamily,
    desc: &KernelDesc,
    buffers: &[Option<&wgpu::Buffer>],
    steps: &[P],
    table: &Tensor,
) -> Result<()> {
    let Some(first) = steps.first() else {
        return Ok(());
    };
    let StepFamily::Vec4 { rows } = family else {
        return Err(crate::Error::Internal(
            "whole-sequence step kernels need the vec4 family".into(),
        ));
    };
    if rows == SUBGROUP_ROWS {
        return Err(crate::Error::Internal(
            "the subgroup build of the vec4 step kernels has no whole-sequence entries".into(),
        ));
    }
    check_table(table, steps)?;
    let desc = for_rows(desc, rows);
    let mut all = buffers.to_vec();
    all.push(Some(&table.buffer));
    let bufs = select(&desc, &all)?;
    let bind = rec.bind(&desc, &bufs)?;
    rec.dispatch(bind, first, [1, 1, 1])
}

pub(super) fn check_table<P: Pod>(table: &Tensor, steps: &[P]) -> Result<()> {
    if table.numel() != steps_table(steps).len() {
        return Err(crate::Error::Internal(format!(
            "step table of {} words for {} steps",
            table.numel(),
            steps.len()
        )));
    }
    Ok(())
}

pub(super) fn check_forward_vec4(p: &StepParams) -> Result<()> {
    check_vec4(
        "step forward",
        &[
            p.gx_off,
            p.hprev_off,
            p.hout_off,
            p.cprev_off,
            p.cout_off,
            p.y_off,
            p.y_stride,
            p.act_off,
            p.whh_off,
            p.bhh_off,
        ],
    )
}

pub(super) fn check_backward_vec4(p: &StepBackParams) -> Result<()> {
    check_vec4(
        "step backward",
        &[
            p.dy_off,
            p.dy_stride,
            p.dg_off,
            p.dgn_off,
            p.act_off,
            p.hprev_off,
            p.hout_off,
            p.cprev_off,
            p.cout_off,
            p.whh_off,
            p.carry_off,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::whole_sequence;
    use crate::kernels::step::StepFamily;

    const FOUR: StepFamily = StepFamily::Vec4 { rows: 4 };

    #[test]
    fn whole_sequence_only_for_small_vec4_steps() {
        let one = StepFamily::Vec4 { rows: 1 };
        // The shapes of tests/rnn_stack.rs: H=8 B=5 and H=36 B=1 in one dispatch, H=132 B=9
        // (99 blocks) one dispatch a step.
        assert!(whole_sequence(FOUR, 8, 8, 4, 5));
        assert!(whole_sequence(one, 36, 36, 3, 1));
        assert!(!whole_sequence(FOUR, 132, 132, 4, 9));
        assert!(!whole_sequence(one, 132, 132, 4, 1));
        assert!(!whole_sequence(StepFamily::Direct, 8, 8, 4, 5));
        // The bench's B=1 LSTM (H=64) yes; its B=16 LSTM (H=128) no.
        assert!(whole_sequence(one, 64, 64, 4, 1));
        assert!(!whole_sequence(FOUR, 128, 128, 4, 16));
        // The subgroup build has no sequence entries, however small the step.
        let eight = StepFamily::Vec4 {
            rows: super::SUBGROUP_ROWS,
        };
        assert!(!whole_sequence(eight, 8, 8, 4, 5));
    }
}
