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
    /// `shaders/matmul_subgroup.wgsl` (needs [`Shader::needs_subgroups`])
    MatmulSubgroup,
    /// `shaders/util.wgsl`
    Util,
    /// `shaders/rnn.wgsl`
    Rnn,
    /// `shaders/lstm.wgsl`
    Lstm,
    /// `shaders/lstm_proj.wgsl` (the first half of a backward step with a projection)
    LstmProj,
    /// `shaders/gru.wgsl`
    Gru,
    /// `shaders/step_vec4.wgsl` with 4 batch rows an invocation
    StepVec4,
    /// `shaders/step_vec4.wgsl` with 1 batch row an invocation
    StepVec4Row,
    /// `shaders/rnn.wgsl` reading its forward weights as f16 (`weights_f16.wgsl`)
    RnnF16,
    /// `shaders/lstm.wgsl` reading its forward weights as f16
    LstmF16,
    /// `shaders/gru.wgsl` reading its forward weights as f16
    GruF16,
    /// `shaders/rnn.wgsl` whose small-batch kernels reduce with subgroup operations
    /// (`sb_partials_subgroup.wgsl`; needs [`Shader::needs_subgroups`])
    RnnSubgroup,
    /// `shaders/lstm.wgsl` whose small-batch kernels reduce with subgroup operations
    LstmSubgroup,
    /// `shaders/gru.wgsl` whose small-batch kernels reduce with subgroup operations
    GruSubgroup,
    /// [`Shader::StepVec4`] reading its forward weights as f16 (`weights_f16_vec4.wgsl`)
    StepVec4F16,
    /// [`Shader::StepVec4Row`] reading its forward weights as f16
    StepVec4RowF16,
    /// `shaders/step_vec4.wgsl` whose 8 lanes of a subgroup share 8 batch rows
    /// (`step_vec4_product_sg.wgsl`; needs [`Shader::needs_subgroups`])
    StepVec4Subgroup,
    /// [`Shader::StepVec4Subgroup`] reading its forward weights as f16
    StepVec4SubgroupF16,
    /// `shaders/step_resident.wgsl` for H <= 32: 32 invocations backward (16 forward, two units
    /// each), 64 k of each row of W_hh resident (needs [`Shader::needs_subgroups`])
    StepResident32,
    /// `shaders/step_resident.wgsl` for H <= 64: 64 invocations (32 forward), 64 k resident
    StepResident64,
    /// `shaders/step_resident.wgsl` for H <= 128: 128 invocations (64 forward), 128 k resident
    StepResident128,
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
    /// `shaders/pack_f16.wgsl` (needs [`Shader::needs_f16_in_f32`])
    PackF16,
    /// `shaders/step_onnx.wgsl` (ONNX's general cells)
    StepOnnx,
    /// `shaders/grad_flow.wgsl`
    GradFlow,
    /// `shaders/attention.wgsl`
    Attention,
}

impl Shader {
    /// All shaders (for validation tests).
    pub const ALL: [Shader; 33] = [
        Shader::Matmul,
        Shader::MatmulVec4,
        Shader::MatmulSubgroup,
        Shader::Util,
        Shader::Rnn,
        Shader::Lstm,
        Shader::LstmProj,
        Shader::Gru,
        Shader::StepVec4,
        Shader::StepVec4Row,
        Shader::RnnF16,
        Shader::LstmF16,
        Shader::GruF16,
        Shader::RnnSubgroup,
        Shader::LstmSubgroup,
        Shader::GruSubgroup,
        Shader::StepVec4F16,
        Shader::StepVec4RowF16,
        Shader::StepVec4Subgroup,
        Shader::StepVec4SubgroupF16,
        Shader::StepResident32,
        Shader::StepResident64,
        Shader::StepResident128,
        Shader::Embedding,
        Shader::Loss,
        Shader::Optim,
        Shader::Clip,
        Shader::Eager,
        Shader::Sample,
        Shader::PackF16,
        Shader::StepOnnx,
        Shader::GradFlow,
        Shader::Attention,
    ];

    /// The WGSL source. Prefixes: the matmul files get `shaders/matmul_common.wgsl`; the
    /// cell files `shaders/step_common.wgsl`, their forward weights' binding
    /// (`weights_f32.wgsl`, or `weights_f16.wgsl` for the f16 builds),
    /// `shaders/step_small_batch.wgsl` and the tiled products `shaders/step_tiled_forward.wgsl`
    /// and `step_tiled_backward.wgsl` (written once); `lstm_proj.wgsl` `step_common.wgsl` and
    /// `step_tiled_backward.wgsl`; the vec4 step file `step_common.wgsl`, its weights
    /// (`weights_f32_vec4.wgsl` or `weights_f16_vec4.wgsl`), its rows-per-invocation
    /// constant `NB` and its products (`step_vec4_product.wgsl`, with the whole-sequence
    /// entries `step_vec4_sequence.wgsl` appended; or `subgroup_rows.wgsl` and
    /// `step_vec4_product_sg.wgsl`); `matmul_subgroup.wgsl` `subgroup_rows.wgsl` too; the
    /// resident-weight file `step_common.wgsl`, `weights_f32_vec4.wgsl` and its constants `KH`
    /// and `WG`, with its backward entries `step_resident_backward.wgsl` appended; the ONNX
    /// step file `step_common.wgsl`.
    pub fn source(self) -> &'static str {
        macro_rules! cell {
            ($weights:literal, $file:literal) => {
                cell!($weights, "sb_partials_shared.wgsl", $file)
            };
            ($weights:literal, $partials:literal, $file:literal) => {
                concat!(
                    include_str!("../../shaders/step_common.wgsl"),
                    include_str!(concat!("../../shaders/", $weights)),
                    include_str!(concat!("../../shaders/", $partials)),
                    include_str!("../../shaders/step_small_batch.wgsl"),
                    include_str!("../../shaders/step_tiled_forward.wgsl"),
                    include_str!("../../shaders/step_tiled_backward.wgsl"),
                    include_str!(concat!("../../shaders/", $file))
                )
            };
        }
        macro_rules! vec4 {
            ($weights:literal, $nb:literal) => {
                vec4!(
                    $weights,
                    $nb,
                    "",
                    include_str!("../../shaders/step_vec4_product.wgsl"),
                    include_str!("../../shaders/step_vec4_sequence.wgsl")
                )
            };
            ($weights:literal, $nb:literal, subgroups) => {
                vec4!(
                    $weights,
                    $nb,
                    include_str!("../../shaders/subgroup_rows.wgsl"),
                    include_str!("../../shaders/step_vec4_product_sg.wgsl"),
                    ""
                )
            };
            ($weights:literal, $nb:literal, $helpers:expr, $product:expr, $tail:expr) => {
                concat!(
                    include_str!("../../shaders/step_common.wgsl"),
                    include_str!(concat!("../../shaders/", $weights)),
                    "const NB: u32 = ",
                    $nb,
                    "u;\n",
                    $helpers,
                    $product,
                    include_str!("../../shaders/step_vec4.wgsl"),
                    $tail
                )
            };
        }
        macro_rules! resident {
            ($kh:literal, $wg:literal) => {
                concat!(
                    include_str!("../../shaders/step_common.wgsl"),
                    include_str!("../../shaders/weights_f32_vec4.wgsl"),
                    "const KH: u32 = ",
                    $kh,
                    ";\nconst WG: u32 = ",
                    $wg,
                    ";\n",
                    include_str!("../../shaders/step_resident.wgsl"),
                    include_str!("../../shaders/step_resident_backward.wgsl")
                )
            };
        }
        match self {
            Shader::Matmul => concat!(
                include_str!("../../shaders/matmul_common.wgsl"),
                include_str!("../../shaders/matmul.wgsl")
            ),
            Shader::MatmulVec4 => concat!(
                include_str!("../../shaders/matmul_common.wgsl"),
                include_str!("../../shaders/matmul_vec4.wgsl")
            ),
            Shader::MatmulSubgroup => concat!(
                include_str!("../../shaders/matmul_common.wgsl"),
                include_str!("../../shaders/subgroup_rows.wgsl"),
                include_str!("../../shaders/matmul_subgroup.wgsl")
            ),
            Shader::Util => include_str!("../../shaders/util.wgsl"),
            Shader::Rnn => cell!("weights_f32.wgsl", "rnn.wgsl"),
            Shader::Lstm => cell!("weights_f32.wgsl", "lstm.wgsl"),
            Shader::Gru => cell!("weights_f32.wgsl", "gru.wgsl"),
            Shader::LstmProj => concat!(
                include_str!("../../shaders/step_common.wgsl"),
                include_str!("../../shaders/step_tiled_backward.wgsl"),
                include_str!("../../shaders/lstm_proj.wgsl")
            ),
            Shader::RnnF16 => cell!("weights_f16.wgsl", "rnn.wgsl"),
            Shader::LstmF16 => cell!("weights_f16.wgsl", "lstm.wgsl"),
            Shader::GruF16 => cell!("weights_f16.wgsl", "gru.wgsl"),
            Shader::RnnSubgroup => {
                cell!("weights_f32.wgsl", "sb_partials_subgroup.wgsl", "rnn.wgsl")
            }
            Shader::LstmSubgroup => {
                cell!("weights_f32.wgsl", "sb_partials_subgroup.wgsl", "lstm.wgsl")
            }
            Shader::GruSubgroup => {
                cell!("weights_f32.wgsl", "sb_partials_subgroup.wgsl", "gru.wgsl")
            }
            Shader::StepVec4 => vec4!("weights_f32_vec4.wgsl", "4"),
            Shader::StepVec4Row => vec4!("weights_f32_vec4.wgsl", "1"),
            Shader::StepVec4F16 => vec4!("weights_f16_vec4.wgsl", "4"),
            Shader::StepVec4RowF16 => vec4!("weights_f16_vec4.wgsl", "1"),
            Shader::StepVec4Subgroup => {
                vec4!("weights_f32_vec4.wgsl", "8", subgroups)
            }
            Shader::StepVec4SubgroupF16 => {
                vec4!("weights_f16_vec4.wgsl", "8", subgroups)
            }
            Shader::StepResident32 => resident!("1u", "32u"),
            Shader::StepResident64 => resident!("1u", "64u"),
            Shader::StepResident128 => resident!("2u", "128u"),
            Shader::Embedding => include_str!("../../shaders/embedding.wgsl"),
            Shader::Loss => include_str!("../../shaders/loss.wgsl"),
            Shader::Optim => include_str!("../../shaders/optim.wgsl"),
            Shader::Clip => include_str!("../../shaders/clip.wgsl"),
            Shader::Eager => include_str!("../../shaders/eager.wgsl"),
            Shader::Sample => include_str!("../../shaders/sample.wgsl"),
            Shader::PackF16 => include_str!("../../shaders/pack_f16.wgsl"),
            Shader::StepOnnx => concat!(
                include_str!("../../shaders/step_common.wgsl"),
                include_str!("../../shaders/step_onnx.wgsl")
            ),
            Shader::GradFlow => include_str!("../../shaders/grad_flow.wgsl"),
            Shader::Attention => include_str!("../../shaders/attention.wgsl"),
        }
    }

    /// The file name under `shaders/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Shader::Matmul => "matmul.wgsl",
            Shader::MatmulVec4 => "matmul_vec4.wgsl",
            Shader::MatmulSubgroup => "matmul_subgroup.wgsl",
            Shader::Util => "util.wgsl",
            Shader::Rnn | Shader::RnnF16 | Shader::RnnSubgroup => "rnn.wgsl",
            Shader::Lstm | Shader::LstmF16 | Shader::LstmSubgroup => "lstm.wgsl",
            Shader::LstmProj => "lstm_proj.wgsl",
            Shader::Gru | Shader::GruF16 | Shader::GruSubgroup => "gru.wgsl",
            Shader::StepVec4
            | Shader::StepVec4Row
            | Shader::StepVec4F16
            | Shader::StepVec4RowF16
            | Shader::StepVec4Subgroup
            | Shader::StepVec4SubgroupF16 => "step_vec4.wgsl",
            Shader::StepResident32 | Shader::StepResident64 | Shader::StepResident128 => {
                "step_resident.wgsl"
            }
            Shader::Embedding => "embedding.wgsl",
            Shader::Loss => "loss.wgsl",
            Shader::Optim => "optim.wgsl",
            Shader::Clip => "clip.wgsl",
            Shader::Eager => "eager.wgsl",
            Shader::Sample => "sample.wgsl",
            Shader::PackF16 => "pack_f16.wgsl",
            Shader::StepOnnx => "step_onnx.wgsl",
            Shader::GradFlow => "grad_flow.wgsl",
            Shader::Attention => "attention.wgsl",
        }
    }

    /// Whether the file uses `pack2x16float` / `unpack2x16float`: it needs the adapter's
    /// `DownlevelFlags::SHADER_F16_IN_F32` ([`crate::Gpu::has_f16_in_f32`]).
    pub fn needs_f16_in_f32(self) -> bool {
        matches!(
            self,
            Shader::PackF16
                | Shader::RnnF16
                | Shader::LstmF16
                | Shader::GruF16
                | Shader::StepVec4F16
                | Shader::StepVec4RowF16
                | Shader::StepVec4SubgroupF16
        )
    }

    /// Whether the file uses subgroup operations: it needs wgpu's `Features::SUBGROUP`
    /// ([`crate::Gpu::uses_subgroups`]).
    pub fn needs_subgroups(self) -> bool {
        matches!(
            self,
            Shader::RnnSubgroup
                | Shader::LstmSubgroup
                | Shader::GruSubgroup
                | Shader::MatmulSubgroup
                | Shader::StepVec4Subgroup
                | Shader::StepVec4SubgroupF16
                | Shader::StepResident32
                | Shader::StepResident64
                | Shader::StepResident128
        )
    }

    /// The build of the same cell file whose small-batch kernels reduce with subgroup
    /// operations (f32 weights only); `None` for the others.
    pub fn with_subgroups(self) -> Option<Shader> {
        match self {
            Shader::Rnn | Shader::RnnSubgroup => Some(Shader::RnnSubgroup),
            Shader::Lstm | Shader::LstmSubgroup => Some(Shader::LstmSubgroup),
            Shader::Gru | Shader::GruSubgroup => Some(Shader::GruSubgroup),
            _ => None,
        }
    }

    /// The build of the same file whose forward step kernels read their weights as f16
    /// (binding 1 holds the parameters packed by `pack_f16.wgsl`), for the step
    /// shaders; `None` for the others.
    pub fn with_f16_weights(self) -> Option<Shader> {
        match self {
            Shader::Rnn | Shader::RnnF16 => Some(Shader::RnnF16),
            Shader::Lstm | Shader::LstmF16 => Some(Shader::LstmF16),
            Shader::Gru | Shader::GruF16 => Some(Shader::GruF16),
            Shader::StepVec4 | Shader::StepVec4F16 => Some(Shader::StepVec4F16),
            Shader::StepVec4Row | Shader::StepVec4RowF16 => Some(Shader::StepVec4RowF16),
            Shader::StepVec4Subgroup | Shader::StepVec4SubgroupF16 => {
                Some(Shader::StepVec4SubgroupF16)
            }
            _ => None,
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

impl KernelDesc {
    /// The same entry point in the subgroup build of its file ([`Shader::with_subgroups`]),
    /// or itself when `subgroups` is false.
    pub fn subgroups(self, subgroups: bool) -> crate::error::Result<KernelDesc> {
        self.in_build(subgroups, Shader::with_subgroups, "subgroup")
    }

    /// The same entry point in the f16-weight build of its file
    /// ([`Shader::with_f16_weights`]), or itself when `f16` is false.
    pub fn weights(self, f16: bool) -> crate::error::Result<KernelDesc> {
        self.in_build(f16, Shader::with_f16_weights, "f16-weight")
    }

    /// The same entry point in another build of its file (`build` of the shader), or itself
    /// when `wanted` is false; a file without that build is [`crate::Error::Internal`].
    fn in_build(
        self,
        wanted: bool,
        build: fn(Shader) -> Option<Shader>,
        what: &str,
    ) -> crate::error::Result<KernelDesc> {
        if !wanted {
            return Ok(self);
        }
        let shader = build(self.shader).ok_or_else(|| {
            crate::error::Error::Internal(format!("{} has no {what} build", self.entry))
        })?;
        Ok(KernelDesc { shader, ..self })
    }
}
