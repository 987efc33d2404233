//! Cell variants beyond PyTorch's cells, from ONNX's `RNN`/`GRU`/`LSTM` attributes: other
//! activation functions in each slot, `clip`, LSTM peepholes and `input_forget`, and the GRU
//! of `linear_before_reset = 0`. Inference only. A stack with a variant records each step
//! with the general kernel of [`crate::kernels::step_onnx`] (two dispatches for the GRU
//! reset-before step) instead of the fast ones; everything else — the input GEMM, directions,
//! layers, per-row lengths, state slots — is the same plan.

use crate::error::{Error, Result};
use crate::gpu::{BindId, Gpu, Recorder, Tensor};
use crate::kernels::step::{ForwardBuffers, StepParams};
use crate::kernels::step_onnx::{self, flags, Activation, ActivationKind, OnnxStepParams};
use crate::kernels::u32_of;

use super::model::{Buffers, Rnn};
use super::CellKind;

/// The options of a cell variant (see the module comment). Slots as ONNX names them:
/// `f` the gates (RNN: its only activation), `g` the candidate (LSTM cell input, GRU `n`),
/// `h` the LSTM output's function of `c`; a slot the cell lacks is ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct CellVariant {
    /// `[f, g, h]` for each direction (one entry: the same for both).
    pub activations: Vec<[Activation; 3]>,
    /// Pre-activations clamped to `[-clip, clip]` (ONNX `clip`).
    pub clip: Option<f32>,
    /// LSTM: `f = 1 - i` (ONNX `input_forget = 1`).
    pub input_forget: bool,
    /// GRU: `n = g(W_in x + b_in + W_hn (r ⊙ h) + b_hn)` (ONNX `linear_before_reset = 0`)
    /// instead of PyTorch's `r ⊙ (W_hn h + b_hn)`.
    pub reset_before: bool,
    /// LSTM peepholes, `[L*D, 3H]`: for each (layer, direction) `[P_i | P_o | P_f]`
    /// (ONNX's order): `i` and `f` add `P ⊙ c_prev`, `o` adds `P_o ⊙ c`.
    pub peepholes: Option<Vec<f32>>,
}

impl CellVariant {
    /// `cell` as recur's fast kernels compute it (ONNX's default activations).
    pub fn plain(cell: CellKind) -> CellVariant {
        use ActivationKind::{Relu, Sigmoid, Tanh};
        let a = |k| Activation::plain(k);
        let acts = match cell {
            CellKind::RnnTanh => [a(Tanh), a(Tanh), a(Tanh)],
            CellKind::RnnRelu => [a(Relu), a(Tanh), a(Tanh)],
            CellKind::Lstm | CellKind::Gru => [a(Sigmoid), a(Tanh), a(Tanh)],
        };
        CellVariant {
            activations: vec![acts],
            clip: None,
            input_forget: false,
            reset_before: false,
            peepholes: None,
        }
    }

    /// Whether the fast kernels compute it for `cell`: the activations of
    /// [`CellVariant::plain`] in the slots the cell has, nothing else set.
    pub fn is_plain(&self, cell: CellKind) -> bool {
        let slots = match cell {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Gru => 2,
            CellKind::Lstm => 3,
        };
        let plain = CellVariant::plain(cell).activations[0];
        self.clip.is_none()
            && !self.input_forget
            && !self.reset_before
            && self.peepholes.is_none()
            && self
                .activations
                .iter()
                .all(|a| a[..slots] == plain[..slots])
    }

    fn check(&self, rnn: &Rnn) -> Result<()> {
        let cfg = &rnn.cfg;
        let bad = |what: String| Err(Error::InvalidConfig(what));
        let n = self.activations.len();
        if n == 0 || n > cfg.num_directions() {
            return bad(format!(
                "{n} activation sets for {} direction(s)",
                cfg.num_directions()
            ));
        }
        if cfg.proj_size > 0 {
            return bad("cell variants with an LSTM projection (proj_size)".into());
        }
        if let Some(c) = self.clip {
            if !(c.is_finite() && c > 0.0) {
                return bad(format!("clip {c} (must be positive and finite)"));
            }
        }
        if self.input_forget && cfg.cell != CellKind::Lstm {
            return bad(format!(
                "input_forget is an LSTM option (cell is {})",
                cfg.cell
            ));
        }
        if self.reset_before && cfg.cell != CellKind::Gru {
            return bad(format!(
                "reset_before is a GRU option (cell is {})",
                cfg.cell
            ));
        }
        if let Some(p) = &self.peepholes {
            let want = cfg.num_layers * cfg.num_directions() * 3 * cfg.hidden_size;
            if cfg.cell != CellKind::Lstm {
                return bad(format!(
                    "peepholes are an LSTM option (cell is {})",
                    cfg.cell
                ));
            }
            if p.len() != want {
                return Err(Error::Shape {
                    what: "peepholes [L*D, 3H]".into(),
                    expected: vec![want],
                    got: vec![p.len()],
                });
            }
        }
        Ok(())
    }
}

/// A variant with its peepholes on the device.
#[derive(Debug)]
pub(super) struct DeviceVariant {
    variant: CellVariant,
    peepholes: Option<Tensor>,
}

/// The general steps of one (layer, direction): bind groups and the options part of the
/// uniform, filled per step from the plan's [`StepParams`].
pub(super) struct GeneralSteps {
    step: BindId,
    reset: Option<BindId>,
    base: OnnxStepParams,
}

impl GeneralSteps {
    /// Records step `p` (offsets and rows as the fast kernels take them).
    pub(super) fn encode(&self, rec: &mut Recorder, p: &StepParams) -> Result<()> {
        let q = OnnxStepParams {
            batch: p.batch,
            hidden: p.hidden,
            gx_off: p.gx_off,
            hprev_off: p.hprev_off,
            hout_off: p.hout_off,
            cprev_off: p.cprev_off,
            cout_off: p.cout_off,
            y_off: p.y_off,
            y_stride: p.y_stride,
            whh_off: p.whh_off,
            bhh_off: p.bhh_off,
            ..self.base
        };
        if let Some(reset) = self.reset {
            step_onnx::encode_gru_reset_forward(rec, reset, &q)?;
        }
        step_onnx::encode_step_forward(rec, self.step, &q)
    }
}

impl Rnn {
    /// This stack with cell variant `variant` (checked against its config; its peepholes
    /// uploaded). A plain variant ([`CellVariant::is_plain`]) keeps the fast kernels. A stack
    /// with a variant runs inference only: a training forward is
    /// [`Error::InvalidConfig`].
    pub fn with_variant(mut self, gpu: &Gpu, variant: CellVariant) -> Result<Rnn> {
        variant.check(&self)?;
        if variant.is_plain(self.cfg.cell) {
            self.variant = None;
            return Ok(self);
        }
        let peepholes = variant
            .peepholes
            .as_ref()
            .map(|p| gpu.tensor("rnn.peepholes", &[p.len()], p))
            .transpose()?;
        self.variant = Some(DeviceVariant { variant, peepholes });
        Ok(self)
    }

    /// The cell variant this stack runs, if any (see [`Rnn::with_variant`]).
    pub fn variant(&self) -> Option<&CellVariant> {
        self.variant.as_ref().map(|v| &v.variant)
    }

    /// The general steps of (layer, dir) at `batch` rows, or `None` on the fast path.
    pub(super) fn general_steps(
        &self,
        rec: &mut Recorder,
        bufs: &mut Buffers,
        (layer, dir, batch): (usize, usize, usize),
        fwd: &ForwardBuffers,
    ) -> Result<Option<GeneralSteps>> {
        let Some(dv) = &self.variant else {
            return Ok(None);
        };
        let gpu = rec.gpu();
        let (v, h, d_n) = (&dv.variant, self.cfg.hidden_size, self.cfg.num_directions());
        let cs_hold;
        let cs = match fwd.cs {
            Some(c) => c,
            None => {
                cs_hold = bufs.zeros(gpu, "rnn.cs.unused", &[1])?;
                &cs_hold.buffer
            }
        };
        let rh = if v.reset_before {
            bufs.zeros(gpu, "rnn.rh", &[batch, h])?
        } else {
            bufs.zeros(gpu, "rnn.rh.unused", &[1])?
        };
        let peep_hold;
        let peep = match &dv.peepholes {
            Some(p) => &p.buffer,
            None => {
                peep_hold = bufs.zeros(gpu, "rnn.peepholes.unused", &[1])?;
                &peep_hold.buffer
            }
        };
        let b = step_onnx::OnnxBuffers {
            params: fwd.params,
            gx: fwd.gx,
            hs: fwd.hs,
            cs,
            y: fwd.y,
            rh: &rh.buffer,
            peep,
        };
        let step = step_onnx::bind(rec, &step_onnx::STEP_FORWARD, &b)?;
        let reset = if v.reset_before {
            Some(step_onnx::bind(rec, &step_onnx::GRU_RESET_FORWARD, &b)?)
        } else {
            None
        };
        let cell = match self.cfg.cell {
            CellKind::RnnTanh | CellKind::RnnRelu => step_onnx::cell::RNN,
            CellKind::Lstm => step_onnx::cell::LSTM,
            CellKind::Gru => step_onnx::cell::GRU,
        };
        let fl = |on: bool, bit: u32| if on { bit } else { 0 };
        let base = OnnxStepParams {
            peep_off: u32_of("peephole offset", (layer * d_n + dir) * 3 * h)?,
            cell,
            flags: fl(self.cfg.bias, flags::HAS_BIAS)
                | fl(v.clip.is_some(), flags::CLIP)
                | fl(dv.peepholes.is_some(), flags::PEEPHOLE)
                | fl(v.input_forget, flags::INPUT_FORGET)
                | fl(v.reset_before, flags::RESET_BEFORE),
            clip: v.clip.unwrap_or(0.0),
            ..Default::default()
        }
        .with_activations(&v.activations[dir.min(v.activations.len() - 1)]);
        Ok(Some(GeneralSteps { step, reset, base }))
    }
}
