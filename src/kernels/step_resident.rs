//! `shaders/step_resident.wgsl` (and its backward entries, `step_resident_backward.wgsl`):
//! every step of a (layer, direction) in one dispatch, forward or backward, each invocation
//! holding its hidden units' rows of W_hh (forward: two units; backward: one unit's column)
//! in its own variables for the whole sequence, for CPU adapters whose subgroups are their
//! SIMD rows ([`crate::Gpu::shares_subgroup_loads`]). Bindings and the step table as the vec4
//! sequence entries ([`super::step_vec4::encode_sequence_forward`]); the batch rows are split
//! over [`groups`] workgroups, each running every step for its rows with a barrier between
//! steps.
//!
//! Why: on lavapipe every storage load is a scalar load per lane, and a step of a small batch
//! reads each weight of W_hh once, so the per-step kernels are bound by reloading W_hh; and
//! each dispatch costs tens of µs (threads woken and waited for). Loaded once, W_hh stays in
//! registers or spill slots, which the CPU reads as whole vectors, and one dispatch runs the
//! sequence. A workgroup's rows then run one after the other on one thread, so
//! [`resident_steps`] takes it only up to [`RESIDENT_MAX_MACS`] a workgroup and step.

use bytemuck::Pod;

use super::step::{
    backward_bindings, flags, forward_bindings, select, BackwardBuffers, ForwardBuffers,
    StepBackParams, StepFamily, StepParams,
};
use super::step_vec4::{self as v4, check_backward_vec4, check_forward_vec4, check_table};
use super::{u32_of, CellKind, KernelDesc, Shader};
use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};

/// Entry `rnn_resident_forward` (in the build for H <= 64; [`for_hidden`] picks the others).
pub const RNN_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::StepResident64,
    entry: "rnn_resident_forward",
    ..v4::RNN_SEQUENCE_FORWARD
};

/// Entry `lstm_resident_forward` (in the build for H <= 64).
pub const LSTM_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::StepResident64,
    entry: "lstm_resident_forward",
    ..v4::LSTM_SEQUENCE_FORWARD
};

/// Entry `gru_resident_forward` (in the build for H <= 64).
pub const GRU_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::StepResident64,
    entry: "gru_resident_forward",
    ..v4::GRU_SEQUENCE_FORWARD
};

/// Entry `rnn_resident_backward` (in the build for H <= 64).
pub const RNN_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::StepResident64,
    entry: "rnn_resident_backward",
    ..v4::RNN_SEQUENCE_BACKWARD
};

/// Entry `lstm_resident_backward` (in the build for H <= 64).
pub const LSTM_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::StepResident64,
    entry: "lstm_resident_backward",
    ..v4::LSTM_SEQUENCE_BACKWARD
};

/// Entry `gru_resident_backward` (in the build for H <= 64).
pub const GRU_BACKWARD: KernelDesc = KernelDesc {
    shader: Shader::StepResident64,
    entry: "gru_resident_backward",
    ..v4::GRU_SEQUENCE_BACKWARD
};

/// The builds of the file and the hidden units each covers (WGSL `WG`; `64 * KH` k of each
/// row of W_hh resident): the backward entries run one invocation a unit, the forward ones
/// one for every [`FORWARD_UNITS`] units. A build with fewer invocations has fewer SIMD rows
/// to switch at each step's barrier.
pub const BUILDS: [(Shader, usize); 3] = [
    (Shader::StepResident32, 32),
    (Shader::StepResident64, 64),
    (Shader::StepResident128, 128),
];

/// Hidden units each invocation of a forward entry owns (WGSL `WG2 = WG / 2`): every SIMD row
/// loads the whole h_prev row a step, so fewer rows load less; on lavapipe two units ran the
/// LSTM forward (H = 128, B = 16) faster than one and four (whose loop body outgrew the CPU's
/// instruction caches) slower.
pub const FORWARD_UNITS: usize = 2;

/// The largest hidden size these kernels take.
pub const MAX_HIDDEN: usize = 128;

/// Most multiply-adds a step may have for each workgroup (rows·G·H·H, rows the batch rows of
/// one of [`groups`]) for [`resident_steps`]: a workgroup's rows run one after the other
/// on one thread, which past this costs more than one dispatch a step spread over the
/// adapter's threads (LSTM on 2 threads: H = 128 up to B = 32, H = 64 up to B = 128). On
/// lavapipe (2 cores, LSTM forward, T = 64, H 32..128, B 4..32, three rounds each) the
/// resident kernel took 1.18-3.9x less time than one dispatch a step up to 2^19, 0.94x at
/// 590K (H = 96, B = 32) and 1.23x at 1M (H = 128, B = 32); the demo's training (H = 128,
/// B = 32, T = 32: 1M a workgroup, forward and backward) ran 300 steps 1.05-1.11x faster
/// with it (two rounds).
pub const RESIDENT_MAX_MACS: usize = 1 << 20;

/// `desc` (one of this file's constants) in the smallest build that covers `hidden` units
/// (at most [`MAX_HIDDEN`]).
pub fn for_hidden(desc: &KernelDesc, hidden: usize) -> KernelDesc {
    let shader = BUILDS
        .iter()
        .find(|&&(_, units)| hidden <= units)
        .map_or(Shader::StepResident128, |&(shader, _)| shader);
    KernelDesc { shader, ..*desc }
}

/// Workgroups a dispatch of `batch` rows splits them over: one a thread of the host (a CPU
/// adapter runs each workgroup on one of its threads, as many as the host has cores), at
/// most one a row.
pub fn groups(batch: usize) -> usize {
    // Asked once: on Linux the answer reads cgroup files, tens of µs a call.
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads =
        *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    batch.clamp(1, threads)
}

/// Fewest steps for [`resident_steps`]: loading W_hh into the invocations costs about as
/// much as a few steps. On lavapipe (LSTM forward, B = 1, two rounds) the resident kernel
/// took 0.63-0.97x the time of the others below 8 steps, and at 16 steps 0.9x (H = 32, 0.04
/// ms more), 1.0x (H = 64) and 1.3x (H = 128); from 64 steps 1.7x and more.
pub const RESIDENT_MIN_STEPS: usize = 16;

/// Whether a (layer, direction) runs its `steps` steps with W_hh resident, forward (f32
/// weights: `f16_weights` false) and backward (which reads f32 weights always): the vec4
/// family (sizes and offsets multiples of 4, no projection: the state width is H) on an
/// adapter that shares subgroup loads (`subgroup_rows`, [`crate::Gpu::shares_subgroup_loads`]),
/// f32 weights (an f16 copy halves the loads this kernel does once), H at most
/// [`MAX_HIDDEN`], at least [`RESIDENT_MIN_STEPS`] steps and at most [`RESIDENT_MAX_MACS`]
/// multiply-adds a step for each of the [`groups`] workgroups.
pub fn resident_steps(
    family: StepFamily,
    subgroup_rows: bool,
    f16_weights: bool,
    hidden: usize,
    gates: usize,
    batch: usize,
    steps: usize,
) -> bool {
    family.is_vec4()
        && subgroup_rows
        && !f16_weights
        && hidden <= MAX_HIDDEN
        && steps >= RESIDENT_MIN_STEPS
        && batch.div_ceil(groups(batch)) * gates * hidden * hidden <= RESIDENT_MAX_MACS
}

/// Records every forward step of a (layer, direction) as one dispatch of `groups`
/// workgroups (each runs all steps for its block of batch rows; [`groups`] is the library's
/// choice) with W_hh resident, `steps` in the order they run, `table` a buffer that holds
/// [`v4::steps_table`]`(steps)` when the submission runs. The caller checks
/// [`resident_steps`]; what it cannot see (the adapter's subgroups, f32 weights, the
/// hidden size of every step) is checked here.
pub fn encode_resident_forward(
    rec: &mut Recorder,
    cell: CellKind,
    b: &ForwardBuffers,
    steps: &[StepParams],
    table: &Tensor,
    groups: usize,
) -> Result<()> {
    let Some(first) = steps.first() else {
        return Ok(());
    };
    if b.f16_weights {
        return Err(Error::Internal(
            "resident step kernels read f32 weights".into(),
        ));
    }
    for p in steps {
        check_forward_vec4(p)?;
        if p.hidden != first.hidden
            || p.hidden % 4 != 0
            || p.state != p.hidden
            || p.whh_off != first.whh_off
            || p.bhh_off != first.bhh_off
            || p.flags != first.flags
            || p.hidden as usize > MAX_HIDDEN
        {
            return Err(mixed_steps(p, first));
        }
    }
    let desc = match cell {
        CellKind::RnnTanh | CellKind::RnnRelu => &RNN_FORWARD,
        CellKind::Lstm => &LSTM_FORWARD,
        CellKind::Gru => &GRU_FORWARD,
    };
    let head = StepParams {
        batch: steps.iter().map(|p| p.batch).max().unwrap_or(first.batch),
        ..*first
    };
    let buffers = forward_bindings(b);
    let desc = for_hidden(desc, first.hidden as usize);
    dispatch_resident(rec, &desc, &buffers, table, steps, head, groups)
}

/// Records every backward step of a (layer, direction) as one dispatch of `groups`
/// workgroups with column k of W_hh resident in invocation k, `steps` in the order they run,
/// `table` a buffer that holds [`v4::steps_table`]`(steps)` when the submission runs; the
/// buffers as [`v4::encode_sequence_backward`] binds them. The caller checks
/// [`resident_steps`] (the same conditions); the rest is checked here.
pub fn encode_resident_backward(
    rec: &mut Recorder,
    cell: CellKind,
    b: &BackwardBuffers,
    steps: &[StepBackParams],
    table: &Tensor,
    groups: usize,
) -> Result<()> {
    let Some(first) = steps.first() else {
        return Ok(());
    };
    for p in steps {
        check_backward_vec4(p)?;
        if p.hidden != first.hidden
            || p.hidden % 4 != 0
            || p.whh_off != first.whh_off
            || p.flags & !flags::HAS_NEXT != first.flags & !flags::HAS_NEXT
            || p.flags & flags::PROJ != 0
            || p.hidden as usize > MAX_HIDDEN
        {
            return Err(mixed_steps(p, first));
        }
    }
    let desc = match cell {
        CellKind::RnnTanh | CellKind::RnnRelu => &RNN_BACKWARD,
        CellKind::Lstm => &LSTM_BACKWARD,
        CellKind::Gru => &GRU_BACKWARD,
    };
    let head = StepBackParams {
        batch: steps.iter().map(|p| p.batch).max().unwrap_or(first.batch),
        ..*first
    };
    let buffers = backward_bindings(cell, StepFamily::Vec4 { rows: 1 }, b);
    let desc = for_hidden(desc, first.hidden as usize);
    dispatch_resident(rec, &desc, &buffers, table, steps, head, groups)
}

/// A step that does not belong with the first of its sequence.
fn mixed_steps(p: &impl std::fmt::Debug, first: &impl std::fmt::Debug) -> Error {
    Error::Internal(format!(
        "resident step kernels take one (layer, direction) of H <= {MAX_HIDDEN}, a multiple of \
         4, with no projection: step {p:?} after {first:?}"
    ))
}

/// Binds `desc` to the step kernel's `buffers` and the step `table`, and dispatches `groups`
/// workgroups with `head` as the uniform: the first step with the most rows of any step,
/// which the kernel splits over the workgroups (a reverse direction over sequences of
/// different lengths starts with the fewest).
fn dispatch_resident<P: Pod>(
    rec: &mut Recorder,
    desc: &KernelDesc,
    buffers: &[Option<&wgpu::Buffer>],
    table: &Tensor,
    steps: &[P],
    head: P,
    groups: usize,
) -> Result<()> {
    if !rec.gpu().shares_subgroup_loads() {
        return Err(Error::Internal(
            "resident step kernels need subgroups of 8 lanes (Gpu::shares_subgroup_loads)".into(),
        ));
    }
    check_table(table, steps)?;
    let mut all = buffers.to_vec();
    all.push(Some(&table.buffer));
    let bufs = select(desc, &all)?;
    let bind = rec.bind(desc, &bufs)?;
    rec.dispatch(bind, &head, [u32_of("workgroups", groups.max(1))?, 1, 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_only_for_small_f32_vec4_steps_with_subgroups() {
        let vec4 = StepFamily::Vec4 { rows: 1 };
        let t = RESIDENT_MIN_STEPS;
        assert!(resident_steps(vec4, true, false, 64, 4, 1, t));
        assert!(!resident_steps(vec4, true, false, 64, 4, 1, t - 1));
        // The batch is split over the host's threads: H = 128 takes 16 rows a thread.
        let threads = groups(usize::MAX);
        assert_eq!(groups(1), 1);
        let lstm = |h, b| resident_steps(vec4, true, false, h, 4, b, t);
        assert!(lstm(128, 16 * threads));
        assert!(!lstm(128, 16 * threads + 1));
        assert!(lstm(64, 64 * threads));
        assert!(!lstm(64, 64 * threads + 1));
        assert!(!resident_steps(vec4, true, false, 132, 1, 1, t));
        assert!(!resident_steps(vec4, false, false, 64, 4, 1, t));
        assert!(!resident_steps(vec4, true, true, 64, 4, 1, t));
        let direct = StepFamily::Direct;
        assert!(!resident_steps(direct, true, false, 64, 4, 1, t));
        let build = |h| for_hidden(&LSTM_FORWARD, h).shader;
        assert_eq!(build(8), Shader::StepResident32);
        assert_eq!(build(32), Shader::StepResident32);
        assert_eq!(build(36), Shader::StepResident64);
        assert_eq!(build(64), Shader::StepResident64);
        assert_eq!(build(68), Shader::StepResident128);
        assert_eq!(build(128), Shader::StepResident128);
    }
}
