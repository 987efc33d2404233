//! `shaders/step_onnx.wgsl`: the general forward step of ONNX's `RNN`, `GRU` and `LSTM`
//! cells — the activations attribute (every function ONNX lists, with alpha/beta), `clip`,
//! LSTM peepholes and `input_forget`, GRU `linear_before_reset = 0` — one kernel driven by
//! its uniform, inference only. The fast kernels ([`super::step`]) stay for the default cells;
//! this one runs only where a node needs more (see [`crate::rnn::CellVariant`]).
//!
//! Bindings (uniform at 0): 1 params (flat, read), 2 gx (read), 3 hs (rw), 4 cs (rw; a
//! placeholder except for the LSTM), 5 y (rw), 6 rh (rw, `[B, H]` scratch of the GRU's
//! reset-before step), 7 peepholes (read). A GRU step with [`flags::RESET_BEFORE`] is two
//! dispatches: [`encode_gru_reset_forward`], then [`encode_step_forward`].

use bytemuck::{Pod, Zeroable};

use super::{Access, KernelDesc, Shader};
use crate::error::Result;
use crate::gpu::{BindId, Recorder};

/// Invocations of a workgroup, one (row, unit) each (WGSL `ONNX_WG`).
pub const WORKGROUP: usize = 64;

const BINDINGS: &[Option<Access>] = &[
    Some(Access::Read),
    Some(Access::Read),
    Some(Access::ReadWrite),
    Some(Access::ReadWrite),
    Some(Access::ReadWrite),
    Some(Access::ReadWrite),
    Some(Access::Read),
];

/// Entry `onnx_step_forward`: one step of any cell (bindings 0..7).
pub const STEP_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::StepOnnx,
    entry: "onnx_step_forward",
    base: 0,
    bindings: BINDINGS,
};

/// Entry `onnx_gru_reset_forward`: `rh = r * h_prev`, the first half of a GRU step with
/// [`flags::RESET_BEFORE`] (bindings 0..3 and 6).
pub const GRU_RESET_FORWARD: KernelDesc = KernelDesc {
    shader: Shader::StepOnnx,
    entry: "onnx_gru_reset_forward",
    base: 0,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
        None,
        None,
        Some(Access::ReadWrite),
        None,
    ],
};

/// Values of [`OnnxStepParams::cell`] (WGSL `CELL_*`).
pub mod cell {
    /// Elman RNN: one gate block.
    pub const RNN: u32 = 0;
    /// LSTM, gates `[i | f | g | o]`.
    pub const LSTM: u32 = 1;
    /// GRU, gates `[r | z | n]`.
    pub const GRU: u32 = 2;
}

/// Flag bits of [`OnnxStepParams::flags`].
pub mod flags {
    /// Add `b_hh` to the recurrent product (the bit of [`super::super::step::flags::HAS_BIAS`]).
    pub const HAS_BIAS: u32 = 2;
    /// Clamp every pre-activation to `[-clip, clip]`.
    pub const CLIP: u32 = 16;
    /// LSTM peepholes: `i`, `f` add `P ⊙ c_prev`, `o` adds `P ⊙ c`.
    pub const PEEPHOLE: u32 = 32;
    /// LSTM: `f = 1 - i`.
    pub const INPUT_FORGET: u32 = 64;
    /// GRU `linear_before_reset = 0`: the candidate's product is `W_hn (r ⊙ h_prev)`.
    pub const RESET_BEFORE: u32 = 128;
}

/// An activation function of ONNX's RNN operators (their `activations` attribute); the
/// discriminant is the WGSL `ACT_*` code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ActivationKind {
    /// `max(0, x)`.
    Relu = 0,
    /// `tanh(x)`.
    Tanh = 1,
    /// `1 / (1 + e^-x)`.
    Sigmoid = 2,
    /// `alpha * x + beta`.
    Affine = 3,
    /// `x` if `x >= 0`, else `alpha * x`.
    LeakyRelu = 4,
    /// `x` if `x > alpha`, else 0.
    ThresholdedRelu = 5,
    /// `alpha * tanh(beta * x)`.
    ScaledTanh = 6,
    /// `min(max(alpha * x + beta, 0), 1)`.
    HardSigmoid = 7,
    /// `x` if `x >= 0`, else `alpha * (e^x - 1)`.
    Elu = 8,
    /// `x / (1 + |x|)`.
    Softsign = 9,
    /// `log(1 + e^x)`.
    Softplus = 10,
}

impl ActivationKind {
    /// All of them, in code order.
    pub const ALL: [ActivationKind; 11] = [
        ActivationKind::Relu,
        ActivationKind::Tanh,
        ActivationKind::Sigmoid,
        ActivationKind::Affine,
        ActivationKind::LeakyRelu,
        ActivationKind::ThresholdedRelu,
        ActivationKind::ScaledTanh,
        ActivationKind::HardSigmoid,
        ActivationKind::Elu,
        ActivationKind::Softsign,
        ActivationKind::Softplus,
    ];

    /// ONNX's name (`LeakyRelu`).
    pub fn name(self) -> &'static str {
        match self {
            ActivationKind::Relu => "Relu",
            ActivationKind::Tanh => "Tanh",
            ActivationKind::Sigmoid => "Sigmoid",
            ActivationKind::Affine => "Affine",
            ActivationKind::LeakyRelu => "LeakyRelu",
            ActivationKind::ThresholdedRelu => "ThresholdedRelu",
            ActivationKind::ScaledTanh => "ScaledTanh",
            ActivationKind::HardSigmoid => "HardSigmoid",
            ActivationKind::Elu => "Elu",
            ActivationKind::Softsign => "Softsign",
            ActivationKind::Softplus => "Softplus",
        }
    }

    /// The function named `name` (ONNX's names, any case).
    pub fn parse(name: &str) -> Option<ActivationKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// Whether it takes `alpha` (it then consumes the next value of `activation_alpha`).
    pub fn uses_alpha(self) -> bool {
        matches!(
            self,
            ActivationKind::Affine
                | ActivationKind::LeakyRelu
                | ActivationKind::ThresholdedRelu
                | ActivationKind::ScaledTanh
                | ActivationKind::HardSigmoid
                | ActivationKind::Elu
        )
    }

    /// Whether it takes `beta` (it then consumes the next value of `activation_beta`).
    pub fn uses_beta(self) -> bool {
        matches!(
            self,
            ActivationKind::Affine | ActivationKind::ScaledTanh | ActivationKind::HardSigmoid
        )
    }

    /// `(alpha, beta)` when the attributes give none: onnxruntime's (LeakyRelu 0.01,
    /// HardSigmoid 0.2 and 0.5, Elu 1; 0 otherwise).
    pub fn default_alpha_beta(self) -> (f32, f32) {
        match self {
            ActivationKind::LeakyRelu => (0.01, 0.0),
            ActivationKind::HardSigmoid => (0.2, 0.5),
            ActivationKind::Elu => (1.0, 0.0),
            _ => (0.0, 0.0),
        }
    }
}

/// An activation function with its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activation {
    /// The function.
    pub kind: ActivationKind,
    /// Its `alpha` (unused by functions without one).
    pub alpha: f32,
    /// Its `beta` (unused by functions without one).
    pub beta: f32,
}

impl Activation {
    /// `kind` with its default alpha and beta.
    pub fn new(kind: ActivationKind) -> Self {
        let (alpha, beta) = kind.default_alpha_beta();
        Activation { kind, alpha, beta }
    }

    /// `Relu`, `Tanh`, `Sigmoid`.
    pub const fn plain(kind: ActivationKind) -> Self {
        Activation {
            kind,
            alpha: 0.0,
            beta: 0.0,
        }
    }
}

/// Mirror of WGSL `OnnxStepParams` (offsets in elements).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OnnxStepParams {
    /// Batch rows processed.
    pub batch: u32,
    /// Hidden units H.
    pub hidden: u32,
    /// Offset of `gx[t]` (`[B, G*H]`).
    pub gx_off: u32,
    /// Offset of h_prev in hs.
    pub hprev_off: u32,
    /// Offset where h_t is written in hs.
    pub hout_off: u32,
    /// Offset of c_prev in cs.
    pub cprev_off: u32,
    /// Offset where c_t is written in cs.
    pub cout_off: u32,
    /// Offset of y[t, 0, d*H].
    pub y_off: u32,
    /// Row stride of y.
    pub y_stride: u32,
    /// Offset of W_hh (`[G*H, H]`) in the flat parameters.
    pub whh_off: u32,
    /// Offset of b_hh in the flat parameters.
    pub bhh_off: u32,
    /// Offset of this (layer, direction)'s `[P_i | P_o | P_f]` in the peephole buffer.
    pub peep_off: u32,
    /// A [`cell`] value.
    pub cell: u32,
    /// [`flags`] bits.
    pub flags: u32,
    /// The clip bound (with [`flags::CLIP`]).
    pub clip: f32,
    /// Code of activation slot f (gates).
    pub act_f: u32,
    /// Code of activation slot g (candidate).
    pub act_g: u32,
    /// Code of activation slot h (LSTM output).
    pub act_h: u32,
    /// Alpha of slot f.
    pub alpha_f: f32,
    /// Alpha of slot g.
    pub alpha_g: f32,
    /// Alpha of slot h.
    pub alpha_h: f32,
    /// Beta of slot f.
    pub beta_f: f32,
    /// Beta of slot g.
    pub beta_g: f32,
    /// Beta of slot h.
    pub beta_h: f32,
}

impl OnnxStepParams {
    /// Sets the activations of the slots f, g, h.
    pub fn with_activations(mut self, a: &[Activation; 3]) -> Self {
        (self.act_f, self.act_g, self.act_h) =
            (a[0].kind as u32, a[1].kind as u32, a[2].kind as u32);
        (self.alpha_f, self.alpha_g, self.alpha_h) = (a[0].alpha, a[1].alpha, a[2].alpha);
        (self.beta_f, self.beta_g, self.beta_h) = (a[0].beta, a[1].beta, a[2].beta);
        self
    }
}

/// Buffers of the general step.
#[derive(Clone, Copy, Debug)]
pub struct OnnxBuffers<'a> {
    /// Flat parameters.
    pub params: &'a wgpu::Buffer,
    /// Input projection `[T, B, G*H]`.
    pub gx: &'a wgpu::Buffer,
    /// Hidden states.
    pub hs: &'a wgpu::Buffer,
    /// Cell states (LSTM), else a placeholder of its own.
    pub cs: &'a wgpu::Buffer,
    /// Layer output.
    pub y: &'a wgpu::Buffer,
    /// `[B, H]` scratch (GRU reset-before), else a placeholder of its own.
    pub rh: &'a wgpu::Buffer,
    /// Peepholes (LSTM), else a placeholder of its own.
    pub peep: &'a wgpu::Buffer,
}

/// Bind group of `desc` ([`STEP_FORWARD`] or [`GRU_RESET_FORWARD`]) over `b`.
pub fn bind(rec: &mut Recorder, desc: &KernelDesc, b: &OnnxBuffers) -> Result<BindId> {
    let all = [
        Some(b.params),
        Some(b.gx),
        Some(b.hs),
        Some(b.cs),
        Some(b.y),
        Some(b.rh),
        Some(b.peep),
    ];
    let bufs = super::step::select(desc, &all)?;
    rec.bind(desc, &bufs)
}

fn grid(p: &OnnxStepParams) -> Result<[u32; 3]> {
    super::grid((p.batch as usize * p.hidden as usize).div_ceil(WORKGROUP))
}

/// Records `onnx_step_forward` over `p.batch` rows x `p.hidden` units (bind group of
/// [`STEP_FORWARD`]).
pub fn encode_step_forward(rec: &mut Recorder, bind: BindId, p: &OnnxStepParams) -> Result<()> {
    rec.dispatch(bind, p, grid(p)?)
}

/// Records `onnx_gru_reset_forward` (bind group of [`GRU_RESET_FORWARD`]): must precede the
/// [`encode_step_forward`] of the same step.
pub fn encode_gru_reset_forward(
    rec: &mut Recorder,
    bind: BindId,
    p: &OnnxStepParams,
) -> Result<()> {
    rec.dispatch(bind, p, grid(p)?)
}
