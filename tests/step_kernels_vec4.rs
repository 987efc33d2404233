//! The vec4 step kernels (4 rows and 1 row an invocation, and 8 rows shared by a subgroup's
//! lanes), one dispatch a step and the whole-sequence entries (one dispatch for several
//! steps), the resident-weight sequence kernels, and the f16-weight build of every kernel
//! family, against the f64 reference cells.
//! The scalar families are in tests/step_kernels.rs; the shapes, offsets and comparisons in
//! tests/common/steps.rs.

mod common;
#[path = "common/steps.rs"]
mod steps;

use common::gpu;
use recur::kernels::step::StepFamily;
use recur::kernels::step_vec4;
use recur::CellKind;
use steps::{
    run_backward, run_forward, shapes, single_steps, single_steps_on, step, Dispatch, Shape, Step,
};

#[test]
fn vec4_steps_should_match_reference() {
    single_steps(StepFamily::Vec4 { rows: 4 });
}

/// The one-row build, on every B (the library picks it for B = 1 only).
#[test]
fn vec4_row_steps_should_match_reference() {
    single_steps(StepFamily::Vec4 { rows: 1 });
}

/// The subgroup build (8 rows shared by the 8 lanes of a subgroup; the library picks it for
/// B > 4 where `Gpu::shares_subgroup_loads`), on every B and H: H = 20 leaves lanes past the
/// units in a subgroup, B = 17 a last row group of one.
#[test]
fn vec4_subgroup_steps_should_match_reference() {
    let Some(gpu) = gpu() else { return };
    if !gpu.shares_subgroup_loads() {
        // lavapipe (CI's Vulkan adapter) has subgroups of 8 lanes: there this build must run.
        assert!(!common::is_lavapipe(&gpu));
        eprintln!("SKIPPED: no subgroups of 8 lanes on this adapter");
        return;
    }
    single_steps_on(
        &gpu,
        StepFamily::Vec4 {
            rows: step_vec4::SUBGROUP_ROWS,
        },
    );
}

/// The `*_sequence_*_vec4` entries: T = 3 steps in one dispatch, states by time (step t reads
/// slot t, writes slot t + 1), backward from t = 2 down with HAS_NEXT after the first.
#[test]
fn vec4_sequences_should_match_reference() {
    let Some(gpu) = gpu() else { return };
    const T: usize = 3;
    let fwd: Vec<Step> = (0..T).map(|t| step(t, t, t + 1, None)).collect();
    let bwd: Vec<Step> = (0..T)
        .rev()
        .map(|t| step(t, t, t + 1, (t + 1 < T).then_some(t + 1)))
        .collect();
    let mut seed = 1000;
    for rows in [4, 1] {
        // The library's condition for these entries (at most 64 blocks of 4 units x rows).
        let fits = |s: &Shape| step_vec4::whole_sequence(s.family, s.h, s.h, s.cell.gates(), s.b);
        for s in shapes(StepFamily::Vec4 { rows }).filter(fits) {
            for flags in [(false, true), (true, true), (true, false)] {
                seed += 1;
                run_forward(
                    &gpu,
                    s,
                    flags,
                    false,
                    (T, T + 1),
                    &fwd,
                    Dispatch::Sequence,
                    seed,
                );
            }
            seed += 1;
            run_backward(&gpu, s, (T, T + 1), &bwd, Dispatch::Sequence, seed);
        }
    }
}

/// The resident-weight kernels (`step_resident.wgsl`, W_hh held by the invocations for the
/// whole sequence; the library picks them for small steps where `Gpu::shares_subgroup_loads`):
/// every cell on B = 1, 3, 5 and H = 8, 20, 64 (the narrow build: lanes past the units, a
/// partial and a full 64 k), 68 and 128 (the wide build: a partial and a full second 64 k),
/// with and without b_hh and SAVE; T = 3 in time order and in reverse order with the state
/// slots out of order (each step reads the slot the one before it wrote, the first a slot no
/// step writes); the batch in one workgroup, in two (B = 3: rows 2 + 1) and one a row.
/// Backward likewise (`*_resident_backward`, column k of W_hh in invocation k): from t = 2
/// down, and from t = 0 up (the reverse direction), in one and in two workgroups.
#[test]
fn resident_sequences_should_match_reference_forward_and_backward() {
    let Some(gpu) = gpu() else { return };
    if !gpu.shares_subgroup_loads() {
        assert!(!common::is_lavapipe(&gpu));
        eprintln!("SKIPPED: no subgroups of 8 lanes on this adapter");
        return;
    }
    const T: usize = 3;
    let forward: Vec<Step> = (0..T).map(|t| step(t, t, t + 1, None)).collect();
    let reverse = [
        step(2, 3, 0, None),
        step(1, 0, 2, None),
        step(0, 2, 1, None),
    ];
    // Backward: t = 2 down with HAS_NEXT after the first, and the reverse direction's order.
    let backward: Vec<Step> = (0..T)
        .rev()
        .map(|t| step(t, t, t + 1, (t + 1 < T).then_some(t + 1)))
        .collect();
    let back_reverse = [
        step(0, 2, 1, None),
        step(1, 0, 2, Some(0)),
        step(2, 3, 0, Some(1)),
    ];
    let mut seed = 3000;
    for cell in [
        CellKind::RnnTanh,
        CellKind::RnnRelu,
        CellKind::Lstm,
        CellKind::Gru,
    ] {
        for h in [8, 20, 64, 68, 128] {
            for b in [1, 3, 5] {
                let s = Shape {
                    cell,
                    family: StepFamily::Vec4 { rows: 1 },
                    b,
                    h,
                };
                for (flags, order, groups) in [
                    ((false, false), &forward[..], 1),
                    ((true, true), &forward[..], 2),
                    ((true, false), &reverse[..], b),
                ] {
                    seed += 1;
                    let how = Dispatch::Resident(groups);
                    run_forward(&gpu, s, flags, false, (T, T + 1), order, how, seed);
                }
                for (order, groups) in [(&backward[..], 1), (&back_reverse[..], 2)] {
                    seed += 1;
                    let how = Dispatch::Resident(groups);
                    run_backward(&gpu, s, (T, T + 1), order, how, seed);
                }
            }
        }
    }
}

/// The f16-weight builds (`Rnn::weight_storage = F16`): every forward kernel of every family,
/// one step and (vec4) whole sequences, against the reference on the same f16-rounded
/// weights, to the f32 tolerance.
#[test]
fn f16_weight_steps_should_match_reference_on_rounded_weights() {
    let Some(gpu) = common::f16_gpu() else { return };
    let mut seed = 2000;
    for family in [
        StepFamily::Tiled,
        StepFamily::SmallBatch,
        StepFamily::Direct,
        StepFamily::Vec4 { rows: 4 },
        StepFamily::Vec4 { rows: 1 },
        StepFamily::Vec4 {
            rows: step_vec4::SUBGROUP_ROWS,
        },
    ] {
        if family
            == (StepFamily::Vec4 {
                rows: step_vec4::SUBGROUP_ROWS,
            })
            && !gpu.shares_subgroup_loads()
        {
            continue;
        }
        for s in shapes(family) {
            for flags in [(false, false), (true, true)] {
                seed += 1;
                run_forward(
                    &gpu,
                    s,
                    flags,
                    true,
                    (2, 3),
                    &[step(1, 2, 1, None)],
                    Dispatch::Steps,
                    seed,
                );
            }
        }
    }
    const T: usize = 3;
    let fwd: Vec<Step> = (0..T).map(|t| step(t, t, t + 1, None)).collect();
    for rows in [4, 1] {
        let fits = |s: &Shape| step_vec4::whole_sequence(s.family, s.h, s.h, s.cell.gates(), s.b);
        for s in shapes(StepFamily::Vec4 { rows }).filter(fits) {
            seed += 1;
            run_forward(
                &gpu,
                s,
                (true, true),
                true,
                (T, T + 1),
                &fwd,
                Dispatch::Sequence,
                seed,
            );
        }
    }
}

/// The resident encoders refuse what their kernels cannot run, as `Error::Internal` and
/// before recording anything: H not a multiple of 4 (the forward entries move two units as a
/// vec2, the exchange whole vec4s), H past `MAX_HIDDEN`, and steps of another hidden size.
#[test]
fn resident_encoders_should_refuse_steps_they_cannot_run() {
    use recur::kernels::step::{ForwardBuffers, StepParams};
    use recur::kernels::step_resident::{encode_resident_forward, MAX_HIDDEN};
    use recur::{Error, Recorder};
    let Some(gpu) = gpu() else { return };
    let buf = gpu.zeros("any", &[64]).unwrap();
    let bufs = ForwardBuffers {
        params: &buf.buffer,
        f16_weights: false,
        gx: &buf.buffer,
        hs: &buf.buffer,
        cs: Some(&buf.buffer),
        y: &buf.buffer,
        acts: Some(&buf.buffer),
    };
    let step = |hidden: usize| StepParams {
        batch: 1,
        hidden: hidden as u32,
        y_stride: 8,
        state: hidden as u32,
        ..StepParams::default()
    };
    let table = gpu.zeros("table", &[64]).unwrap();
    for steps in [
        vec![step(6)],
        vec![step(MAX_HIDDEN + 4)],
        vec![step(8), step(12)],
    ] {
        let mut rec = Recorder::new(&gpu);
        let r = encode_resident_forward(&mut rec, CellKind::Lstm, &bufs, &steps, &table, 1);
        assert!(matches!(r, Err(Error::Internal(_))), "{steps:?}: {r:?}");
        assert_eq!(rec.dispatch_count(), 0);
    }
}
