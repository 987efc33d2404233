//! Kernels: one Rust file per WGSL file with its [`KernelDesc`]s, the `#[repr(C)]` parameter
//! structs that mirror the WGSL ones and the `encode_*` functions that record dispatches. The
//! shader registry ([`Shader`]) and the descriptor type belong to the GPU layer
//! ([`crate::gpu::kernel`]) and are re-exported here.

pub mod attention;
pub mod cell;
pub mod clip;
pub mod eager;
pub mod embedding;
pub mod grad_flow;
pub mod gru;
pub mod loss;
pub mod lstm;
pub mod lstm_proj;
pub mod matmul;
pub mod optim;
pub mod pack;
pub mod rnn;
pub mod sample;
pub mod step;
pub mod step_onnx;
pub mod step_resident;
pub mod step_vec4;
pub mod util;

pub use crate::gpu::kernel::{Access, KernelDesc, Shader};
pub use cell::CellKind;

use crate::error::{Error, Result};

/// Every kernel the library defines, for the GPU-free mirror test (`tests/mirrors.rs`): each
/// entry point's bindings and uniform are checked against the WGSL with naga. The vec4 step
/// kernels come in every build ([`step_vec4::for_rows`] 4, 1 and the subgroup build's 8, which
/// has no whole-sequence entries), and every step kernel in
/// its f16-weight build too ([`KernelDesc::weights`]), and the cell files in their subgroup
/// build ([`KernelDesc::subgroups`]). A new `KernelDesc` belongs
/// here; the test fails on a WGSL entry point that no kernel names.
pub fn all_kernels() -> Vec<KernelDesc> {
    let mut all = vec![
        matmul::MATMUL,
        matmul::MATMUL_DIRECT,
        matmul::MATMUL_NN_VEC4,
        matmul::MATMUL_NT_VEC4,
        matmul::MATMUL_TN_VEC4,
        matmul::MATMUL_NN_SG,
        matmul::MATMUL_NT_SG,
        matmul::MATMUL_TN_SG,
        matmul::TRANSPOSE_SG,
        util::SUM_ROWS,
        util::SUM_ROWS_VEC4,
        util::TRANSPOSE01,
        util::COPY_ROWS,
        util::GATHER_ROWS,
        pack::PACK_F16,
        rnn::STEP_FORWARD,
        rnn::STEP_BACKWARD,
        rnn::STEP_FORWARD_DIRECT,
        rnn::STEP_BACKWARD_DIRECT,
        rnn::STEP_FORWARD_SMALL,
        rnn::STEP_BACKWARD_SMALL,
        lstm::STEP_FORWARD,
        lstm::STEP_BACKWARD,
        lstm_proj::PROJ_BACKWARD,
        lstm::STEP_FORWARD_DIRECT,
        lstm::STEP_BACKWARD_DIRECT,
        lstm_proj::PROJ_BACKWARD_DIRECT,
        lstm::STEP_FORWARD_SMALL,
        lstm::STEP_BACKWARD_SMALL,
        gru::STEP_FORWARD,
        gru::STEP_BACKWARD,
        gru::STEP_FORWARD_DIRECT,
        gru::STEP_BACKWARD_DIRECT,
        gru::STEP_FORWARD_SMALL,
        gru::STEP_BACKWARD_SMALL,
        embedding::EMBEDDING_FORWARD,
        embedding::EMBEDDING_BACKWARD,
        loss::CROSS_ENTROPY,
        loss::CROSS_ENTROPY_ROWS,
        loss::MSE,
        loss::LOSS_REDUCE,
        optim::SGD_STEP,
        optim::ADAM_STEP,
        clip::CLIP_NORM_PARTIALS,
        clip::CLIP_NORM_PARTIALS_ROWS,
        clip::CLIP_NORM_FINISH,
        clip::CLIP_SCALE,
        clip::CLIP_VALUE,
        sample::SAMPLE_TOKEN,
        eager::EW_BINARY,
        eager::EW_UNARY,
        step_onnx::STEP_FORWARD,
        step_onnx::GRU_RESET_FORWARD,
        grad_flow::SCAN,
        grad_flow::NORMS,
        attention::ATTENTION_FORWARD,
        attention::ATTENTION_BACKWARD_VALUES,
        attention::ATTENTION_BACKWARD_SCORES,
    ];
    use step_vec4 as v4;
    let steps = [
        &v4::RNN_FORWARD,
        &v4::RNN_BACKWARD,
        &v4::LSTM_FORWARD,
        &v4::LSTM_BACKWARD,
        &v4::GRU_FORWARD,
        &v4::GRU_BACKWARD,
    ];
    let sequences = [
        &v4::RNN_SEQUENCE_FORWARD,
        &v4::LSTM_SEQUENCE_FORWARD,
        &v4::GRU_SEQUENCE_FORWARD,
        &v4::RNN_SEQUENCE_BACKWARD,
        &v4::LSTM_SEQUENCE_BACKWARD,
        &v4::GRU_SEQUENCE_BACKWARD,
    ];
    for desc in steps.iter().chain(&sequences) {
        all.extend([v4::for_rows(desc, 4), v4::for_rows(desc, 1)]);
    }
    // The resident-weight kernels, forward and backward, in every build (f32 weights only).
    for desc in [
        &step_resident::RNN_FORWARD,
        &step_resident::LSTM_FORWARD,
        &step_resident::GRU_FORWARD,
        &step_resident::RNN_BACKWARD,
        &step_resident::LSTM_BACKWARD,
        &step_resident::GRU_BACKWARD,
    ] {
        all.extend(step_resident::BUILDS.map(|(shader, _)| KernelDesc { shader, ..*desc }));
    }
    // The subgroup build has the per-step entries only.
    all.extend(steps.map(|desc| v4::for_rows(desc, v4::SUBGROUP_ROWS)));
    // The f16-weight and subgroup builds of the step files hold the same entry points.
    let builds: Vec<KernelDesc> = all
        .iter()
        .flat_map(|d| [d.weights(true).ok(), d.subgroups(true).ok()])
        .flatten()
        .collect();
    all.extend(builds);
    all
}

/// Element offsets and sizes travel to WGSL as u32.
pub(crate) fn u32_of(what: &str, x: usize) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::Limit {
        what: what.to_string(),
        size: x as u64,
        limit: "u32 element index",
        max: u64::from(u32::MAX),
    })
}

/// Workgroups needed to cover `n` items with `per` items each.
pub(crate) fn groups(n: usize, per: usize) -> Result<u32> {
    u32_of("workgroup count", n.div_ceil(per))
}

/// Workgroups in x and y covering `count` workgroups in all: x stays under WebGPU's 65535
/// per-dimension limit and the kernel folds `(x, y)` back into one index with
/// `num_workgroups` (`idx = x + y * num_workgroups.x`, or times the workgroup size for a
/// thread index). Some threads of the last row may see an index past the end: kernels check.
pub(crate) fn grid(count: usize) -> Result<[u32; 3]> {
    const MAX_X: usize = 65535;
    let x = count.clamp(1, MAX_X);
    let y = count.div_ceil(x);
    Ok([u32_of("workgroups", x)?, u32_of("workgroups", y)?, 1])
}
