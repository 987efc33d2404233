//! The kernel descriptor and the shader registry: what the pipeline cache and the recorder
//! need to build and bind a kernel. They live in the GPU layer, which owns pipelines;
//! [`crate::kernels`] re-exports them and defines one [`KernelDesc`] per entry point.

/// Every WGSL file recur has; the only place shader sources are included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    /// `shaders/matmul.wgsl`
    Matmul,
    /// `shaders/matmul_vec4.wgsl`
    MatmulVec4,
    /// `shaders/util.wgsl`
    Util,
    /// `shaders/rnn.wgsl`
    Rnn,
    /// `shaders/lstm.wgsl`
    Lstm,
    /// `shaders/gru.wgsl`
    Gru,
    /// `shaders/step_vec4.wgsl` with 4 batch rows an invocation
    StepVec4,
    /// `shaders/step_vec4.wgsl` with 1 batch row an invocation
    StepVec4Row,
    /// `shaders/embedding.wgsl`
    Embedding,
    /// `shaders/loss.wgsl`
    Loss,
    /// `shaders/optim.wgsl`
    Optim,
    /// `shaders/clip.wgsl`
    Clip,
    /// `shaders/eager.wgsl` (the bench's host-loop baseline)
    Eager,
    /// `shaders/sample.wgsl`
    Sample,
    /// `shaders/attention.wgsl`
    Attention,
}

impl Shader {
    /// All shaders (for validation tests).
    pub const ALL: [Shader; 15] = [
        Shader::Matmul,
        Shader::MatmulVec4,
        Shader::Util,
        Shader::Rnn,
        Shader::Lstm,
        Shader::Gru,
        Shader::StepVec4,
        Shader::StepVec4Row,
        Shader::Embedding,
        Shader::Loss,
        Shader::Optim,
        Shader::Clip,
        Shader::Eager,
        Shader::Sample,
        Shader::Attention,
    ];

    /// The WGSL source. Prefixes: the matmul files get `shaders/matmul_common.wgsl`; the
    /// cell files `shaders/step_common.wgsl` and `shaders/step_small_batch.wgsl`; the vec4
    /// step file `step_common.wgsl` and its rows-per-invocation constant `NB`.
    pub fn source(self) -> &'static str {
        match self {
            Shader::Matmul => concat!(
                include_str!("../../shaders/matmul_common.wgsl"),
                include_str!("../../shaders/matmul.wgsl")
            ),
            Shader::MatmulVec4 => concat!(
                include_str!("../../shaders/matmul_common.wgsl"),
                include_str!("../../shaders/matmul_vec4.wgsl")
            ),
            Shader::Util => include_str!("../../shaders/util.wgsl"),
            Shader::Rnn => concat!(
                include_str!("../../shaders/step_common.wgsl"),
                include_str!("../../shaders/step_small_batch.wgsl"),
                include_str!("../../shaders/rnn.wgsl")
            ),
            Shader::Lstm => concat!(
                include_str!("../../shaders/step_common.wgsl"),
                include_str!("../../shaders/step_small_batch.wgsl"),
                include_str!("../../shaders/lstm.wgsl")
            ),
            Shader::Gru => concat!(
                include_str!("../../shaders/step_common.wgsl"),
                include_str!("../../shaders/step_small_batch.wgsl"),
                include_str!("../../shaders/gru.wgsl")
            ),
            Shader::StepVec4 => concat!(
                include_str!("../../shaders/step_common.wgsl"),
                "const NB: u32 = 4u;\n",
                include_str!("../../shaders/step_vec4.wgsl")
            ),
            Shader::StepVec4Row => concat!(
                include_str!("../../shaders/step_common.wgsl"),
                "const NB: u32 = 1u;\n",
                include_str!("../../shaders/step_vec4.wgsl")
            ),
            Shader::Embedding => include_str!("../../shaders/embedding.wgsl"),
            Shader::Loss => include_str!("../../shaders/loss.wgsl"),
            Shader::Optim => include_str!("../../shaders/optim.wgsl"),
            Shader::Clip => include_str!("../../shaders/clip.wgsl"),
            Shader::Eager => include_str!("../../shaders/eager.wgsl"),
            Shader::Sample => include_str!("../../shaders/sample.wgsl"),
            Shader::Attention => include_str!("../../shaders/attention.wgsl"),
        }
    }

    /// The file name under `shaders/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Shader::Matmul => "matmul.wgsl",
            Shader::MatmulVec4 => "matmul_vec4.wgsl",
            Shader::Util => "util.wgsl",
            Shader::Rnn => "rnn.wgsl",
            Shader::Lstm => "lstm.wgsl",
            Shader::Gru => "gru.wgsl",
            Shader::StepVec4 | Shader::StepVec4Row => "step_vec4.wgsl",
            Shader::Embedding => "embedding.wgsl",
            Shader::Loss => "loss.wgsl",
            Shader::Optim => "optim.wgsl",
            Shader::Clip => "clip.wgsl",
            Shader::Eager => "eager.wgsl",
            Shader::Sample => "sample.wgsl",
            Shader::Attention => "attention.wgsl",
        }
    }
}

/// How a kernel uses a storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
}

/// A kernel entry point and its bind group 0: a uniform parameter struct at binding `base`
/// (bound with a dynamic offset), then storage buffers at `base + 1 + i` for each `Some` in
/// `bindings`.
#[derive(Clone, Copy, Debug)]
pub struct KernelDesc {
    /// The WGSL file.
    pub shader: Shader,
    /// The entry point.
    pub entry: &'static str,
    /// Binding number of the uniform.
    pub base: u32,
    /// Storage bindings after the uniform; `None` is a gap.
    pub bindings: &'static [Option<Access>],
}
