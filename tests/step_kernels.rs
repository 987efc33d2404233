//! Each fused step kernel, forward and backward, against the f64 reference cells
//! (`recur::reference::cells`), one dispatch at a time, in the scalar kernel families: tiled,
//! small batch (with and without subgroups) and direct. The vec4 families, the whole-sequence
//! entries and the f16-weight builds are in tests/step_kernels_vec4.rs; the shapes, offsets and
//! comparisons in tests/common/steps.rs.

mod common;
#[path = "common/steps.rs"]
mod steps;

use common::gpu;
use recur::kernels::step::StepFamily;
use steps::{single_steps, single_steps_on};

#[test]
fn tiled_steps_should_match_reference() {
    single_steps(StepFamily::Tiled);
}

/// `*_step_forward_small` and `*_step_backward_small` (B <= 4), in the build the adapter
/// gets: with subgroup reductions where it has `Features::SUBGROUP`.
#[test]
fn small_batch_steps_should_match_reference() {
    let Some(gpu) = gpu() else { return };
    eprintln!("subgroups: {}", gpu.uses_subgroups());
    single_steps_on(&gpu, StepFamily::SmallBatch);
}

/// The same kernels reducing through workgroup memory alone (the build for adapters without
/// subgroups), on every adapter.
#[test]
fn small_batch_steps_without_subgroups_should_match_reference() {
    let Some(mut gpu) = gpu() else { return };
    gpu.set_subgroups(false);
    assert!(!gpu.uses_subgroups());
    single_steps_on(&gpu, StepFamily::SmallBatch);
}

#[test]
fn direct_steps_should_match_reference() {
    single_steps(StepFamily::Direct);
}
