//! The GPU RNN stack: its parameters, what its passes return and keep, and the entry points
//! that record a whole sequence — every layer, both directions, forward and (for training)
//! backward — into one [`Recorder`], so it reaches the queue as one submission with no
//! readback inside.
//!
//! The scheduler is in three parts: [`super::plan`] (which state slot each step reads and
//! writes, over which rows: pure arithmetic, unit-tested without a GPU), `forward.rs` and
//! `backward.rs` (walk the plan of each (layer, direction) and record the dispatches).

use crate::kernels::matmul::LinearParams;
use crate::kernels::step::StepFamily;
use crate::kernels::{step_resident, step_vec4};

use super::lengths::PackedPlan;
use super::{CellKind, ParamKind, ParamLayout, RnnConfig};
use crate::error::{Error, Result};
use crate::gpu::{Arena, Gpu, Recorder, Tensor};

/// An RNN stack on the GPU: its config, layout, and the flat parameter and gradient buffers.
///
/// ```
/// # fn main() -> recur::Result<()> {
/// use recur::{CellKind, Gpu, ParamLayout, Rnn, RnnConfig};
/// let gpu = Gpu::new()?;
/// // torch.nn.GRU(3, 5, num_layers=2, bidirectional=True)
/// let cfg = RnnConfig::new(CellKind::Gru, 3, 5).layers(2).bidirectional(true);
/// let rnn = Rnn::new(&gpu, cfg.clone(), &vec![0.1; ParamLayout::new(&cfg).total])?;
/// let x = gpu.tensor("x", &[7, 2, 3], &[0.5; 7 * 2 * 3])?; // (T, B, I)
/// let out = rnn.forward(&gpu, &x, None, None)?; // one submission
/// assert_eq!(out.y.shape, [7, 2, 10]); // (T, B, D*H)
/// assert_eq!(out.hn.shape, [4, 2, 5]); // (L*D, B, H)
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Rnn {
    /// Shape of the stack.
    pub cfg: RnnConfig,
    /// Where each tensor lives in `params` and `grads`.
    pub layout: ParamLayout,
    /// All parameters, flat, in state_dict order. A write into this buffer that the library
    /// does not make (through [`Gpu::write`], a kernel or copy of your own) must be followed
    /// by [`Rnn::params_changed`] before the next inference with [`WeightStorage::F16`],
    /// which otherwise reads its f16 copy of the old values. Optimizer steps, checkpoint
    /// loads and assigning a new tensor here need no call.
    pub params: Tensor,
    /// Gradients, same layout as `params`.
    pub grads: Tensor,
    /// How the inference passes' step kernels read the recurrent weights (training, and the
    /// general kernel of a cell variant, always read f32). [`WeightStorage::F32`] unless set.
    pub weight_storage: WeightStorage,
    /// A cell variant beyond PyTorch's cells (see [`Rnn::with_variant`]).
    pub(super) variant: Option<super::variant::DeviceVariant>,
    /// The f16 copy of `params` for [`WeightStorage::F16`], kept between recordings.
    pub(super) f16: super::packed::F16Params,
}

/// How inference reads the recurrent weights (`W_hh`, `b_hh`) in the step kernels.
///
/// With [`WeightStorage::F16`] the step kernels read W_hh from an f16 copy of the flat
/// parameters (half the bytes; round to nearest even) and accumulate in f32: half the weight
/// traffic of every step, the bound of small batches. The stack keeps the copy: the first
/// inference recording packs it (one dispatch, before its steps, in its submission), later
/// ones reuse it until the parameters change (an optimizer step, a checkpoint load, a new
/// tensor in [`Rnn::params`], or [`Rnn::params_changed`], which writes the library does not
/// make into `params` must call), so an [`super::RnnStream`] step does not repack. The input projection (`X·W_ihᵀ`) and an LSTM's `W_hr` stay f32. The f16
/// values are unpacked with WGSL's core `unpack2x16float`, so this needs no
/// `SHADER_F16` feature and works on every adapter. Outputs differ from f32 by the rounding
/// of the weights (relative 2⁻¹¹ each); BENCHMARKS.md reports the error and the speed.
///
/// ```
/// # fn main() -> recur::Result<()> {
/// use recur::{CellKind, Gpu, ParamLayout, Rnn, RnnConfig, WeightStorage};
/// let gpu = Gpu::new()?;
/// let cfg = RnnConfig::new(CellKind::Lstm, 3, 8);
/// let mut rnn = Rnn::new(&gpu, cfg.clone(), &vec![0.1; ParamLayout::new(&cfg).total])?;
/// let x = gpu.tensor("x", &[5, 1, 3], &[0.5; 15])?;
/// let y32 = gpu.read(&rnn.forward(&gpu, &x, None, None)?.y)?;
/// rnn.weight_storage = WeightStorage::F16;
/// let y16 = gpu.read(&rnn.forward(&gpu, &x, None, None)?.y)?;
/// assert!(y32.iter().zip(&y16).all(|(a, b)| (a - b).abs() < 1e-3));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightStorage {
    /// The f32 parameters as they are.
    #[default]
    F32,
    /// An f16 copy of the parameters, f32 accumulation.
    F16,
}

/// What a forward pass returns.
#[derive(Debug)]
pub struct RnnOutput {
    /// `(T, B, D*H)`, or `(B, T, D*H)` with batch_first.
    pub y: Tensor,
    /// `(L*D, B, H)` (`(L*D, B, P)` with an LSTM projection).
    pub hn: Tensor,
    /// `(L*D, B, H)`, LSTM only.
    pub cn: Option<Tensor>,
}

/// Gradients of the inputs of a forward pass (parameter gradients are in [`Rnn::grads`]).
#[derive(Debug)]
pub struct InputGrads {
    /// Same shape as the input.
    pub dx: Tensor,
    /// `(L*D, B, H)` (`(L*D, B, P)` with an LSTM projection).
    pub dh0: Tensor,
    /// `(L*D, B, H)`, LSTM only.
    pub dc0: Option<Tensor>,
}

/// Gradients of the initial state, from [`Rnn::record_weight_backward`] (parameter gradients
/// are in [`Rnn::grads`]).
#[derive(Debug)]
pub struct StateGrads {
    /// `(L*D, B, H)` (`(L*D, B, P)` with an LSTM projection).
    pub dh0: Tensor,
    /// `(L*D, B, H)`, LSTM only.
    pub dc0: Option<Tensor>,
}

/// Per (layer, direction) tensors kept for backward.
#[derive(Debug)]
pub(super) struct SavedDir {
    pub(super) hs: Tensor,
    pub(super) cs: Option<Tensor>,
    pub(super) acts: Option<Tensor>,
    /// `o * tanh(c)` per step, LSTM with a projection only.
    pub(super) rs: Option<Tensor>,
}

/// Activations a training forward keeps for [`Rnn::record_backward`].
#[derive(Debug)]
pub struct Saved {
    pub(super) seq: usize,
    pub(super) batch: usize,
    /// Layer 0 input, time-major.
    pub(super) x: Tensor,
    /// Output of every layer, time-major.
    pub(super) ys: Vec<Tensor>,
    pub(super) dirs: Vec<SavedDir>,
    /// Per-row lengths of a variable-length batch (tensors above in its row order).
    pub(super) lengths: Option<PackedPlan>,
}

/// Where a forward pass gets its buffers: new zeroed tensors, or an arena's slots (reused
/// from the last recording of the same shapes, not zeroed).
pub(super) enum Buffers<'a> {
    Fresh,
    Arena(&'a mut Arena),
}

impl Buffers<'_> {
    pub(super) fn zeros(&mut self, gpu: &Gpu, label: &str, shape: &[usize]) -> Result<Tensor> {
        match self {
            Buffers::Fresh => gpu.zeros(label, shape),
            Buffers::Arena(a) => a.take(gpu, label, shape),
        }
    }

    pub(super) fn upload(&mut self, gpu: &Gpu, label: &str, data: &[f32]) -> Result<Tensor> {
        match self {
            Buffers::Fresh => gpu.tensor(label, &[data.len()], data),
            Buffers::Arena(a) => a.upload(gpu, label, data),
        }
    }

    /// Whether buffers may hold what an earlier recording left.
    pub(super) fn reused(&self) -> bool {
        matches!(self, Buffers::Arena(_))
    }
}

/// What a training forward kept (it always keeps something: a broken invariant otherwise).
fn kept(saved: Option<Saved>) -> Result<Saved> {
    saved.ok_or_else(|| Error::Internal("a training forward kept nothing".into()))
}

/// Sequence length and batch of an input, from its shape and the layout.
pub(super) fn seq_batch(cfg: &RnnConfig, x: &Tensor) -> Result<(usize, usize)> {
    if x.shape.len() != 3 || x.shape[2] != cfg.input_size {
        return Err(Error::Shape {
            what: format!(
                "input {} (0 = any)",
                if cfg.batch_first {
                    "(B, T, I)"
                } else {
                    "(T, B, I)"
                }
            ),
            expected: vec![0, 0, cfg.input_size],
            got: x.shape.clone(),
        });
    }
    let (t, b) = if cfg.batch_first {
        (x.shape[1], x.shape[0])
    } else {
        (x.shape[0], x.shape[1])
    };
    if t == 0 || b == 0 {
        return Err(Error::Shape {
            what: "input: sequence length and batch must be positive".into(),
            expected: vec![],
            got: x.shape.clone(),
        });
    }
    Ok((t, b))
}

pub(super) fn check_shape(what: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.shape != expected {
        return Err(Error::Shape {
            what: what.to_string(),
            expected: expected.to_vec(),
            got: t.shape.clone(),
        });
    }
    Ok(())
}

impl Rnn {
    /// Uploads a stack with parameters `flat` (in [`ParamLayout`] order).
    pub fn new(gpu: &Gpu, cfg: RnnConfig, flat: &[f32]) -> Result<Rnn> {
        cfg.validate()?;
        let layout = ParamLayout::new(&cfg);
        if flat.len() != layout.total {
            return Err(Error::Shape {
                what: "flat parameters".into(),
                expected: vec![layout.total],
                got: vec![flat.len()],
            });
        }
        let params = gpu.tensor("rnn.params", &[layout.total], flat)?;
        let grads = gpu.zeros("rnn.grads", &[layout.total])?;
        Ok(Rnn {
            cfg,
            layout,
            params,
            grads,
            weight_storage: WeightStorage::F32,
            variant: None,
            f16: Default::default(),
        })
    }

    pub(super) fn offset(&self, layer: usize, dir: usize, kind: ParamKind) -> Option<usize> {
        self.layout.find(layer, dir, kind).map(|e| e.offset)
    }

    pub(super) fn weight_offset(&self, layer: usize, dir: usize, kind: ParamKind) -> Result<usize> {
        self.offset(layer, dir, kind).ok_or_else(|| {
            Error::InvalidConfig(format!("no {kind:?} for layer {layer} direction {dir}"))
        })
    }

    /// The input projection of (layer, dir): `X·W_ihᵀ + b_ih` as a linear layer.
    pub(super) fn input_projection(&self, layer: usize, dir: usize) -> Result<LinearParams<'_>> {
        Ok(LinearParams {
            buffer: &self.params.buffer,
            weight: self.weight_offset(layer, dir, ParamKind::WeightIh)?,
            bias: self.offset(layer, dir, ParamKind::BiasIh),
            in_features: self.cfg.layer_input_size(layer),
            out_features: self.cfg.gate_rows(),
        })
    }

    /// The step kernels of (layer, dir) at `batch` rows, and whether the whole sequence runs
    /// in one dispatch (see [`StepFamily::choose`], [`step_vec4::whole_sequence`]).
    pub(super) fn step_kernels(
        &self,
        gpu: &Gpu,
        layer: usize,
        dir: usize,
        batch: usize,
    ) -> Result<(StepFamily, bool)> {
        let cfg = &self.cfg;
        let (h, oh) = (cfg.hidden_size, cfg.out_hidden());
        let w_hh = self.weight_offset(layer, dir, ParamKind::WeightHh)?;
        let b_hh = self.offset(layer, dir, ParamKind::BiasHh).unwrap_or(0);
        let family = StepFamily::choose(
            gpu.prefers_direct_kernels(),
            gpu.shares_subgroup_loads(),
            h,
            oh,
            batch,
            cfg.proj_size > 0,
            &[w_hh, b_hh],
        );
        let whole = step_vec4::whole_sequence(family, h, oh, cfg.gate_rows() / h, batch);
        Ok((family, whole))
    }

    /// Whether a (layer, direction) of `batch` rows runs its `steps` steps with W_hh resident
    /// ([`step_resident::resident_steps`]) in `family`, forward reading f16 weights when
    /// `f16_weights` (backward reads f32).
    pub(super) fn resident_steps(
        &self,
        gpu: &Gpu,
        family: StepFamily,
        f16_weights: bool,
        batch: usize,
        steps: usize,
    ) -> bool {
        let h = self.cfg.hidden_size;
        step_resident::resident_steps(
            family,
            gpu.shares_subgroup_loads(),
            f16_weights,
            h,
            self.cfg.gate_rows() / h,
            batch,
            steps,
        )
    }

    /// Shapes of h0/hn (`(L*D, B, P or H)`) and c0/cn (`(L*D, B, H)`).
    pub(super) fn state_shapes(&self, batch: usize) -> ([usize; 3], [usize; 3]) {
        let ld = self.cfg.num_layers * self.cfg.num_directions();
        (
            [ld, batch, self.cfg.out_hidden()],
            [ld, batch, self.cfg.hidden_size],
        )
    }

    /// Runs the stack forward (inference: nothing is kept for backward) in one submission.
    pub fn forward(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<RnnOutput> {
        let mut rec = Recorder::new(gpu);
        let out = self.record_inference(&mut rec, x, h0, c0)?;
        rec.run()?;
        Ok(out)
    }

    /// Forward, then backward of `L = sum(y*dy) + sum(hn*dhn) + sum(cn*dcn)`, in one
    /// submission. Parameter gradients are written to [`Rnn::grads`] (overwritten).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        dy: &Tensor,
        dhn: Option<&Tensor>,
        dcn: Option<&Tensor>,
    ) -> Result<(RnnOutput, InputGrads)> {
        let mut rec = Recorder::new(gpu);
        let (out, saved) = self.record_train(&mut rec, x, h0, c0)?;
        let grads = self.record_backward(&mut rec, &saved, dy, dhn, dcn, false)?;
        rec.run()?;
        Ok((out, grads))
    }

    /// Records an inference forward pass: nothing is kept for backward. Inference and
    /// training are two functions, so that a backward without the activations it needs
    /// cannot be written.
    pub fn record_inference(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<RnnOutput> {
        let (out, _) =
            self.record_forward_with(rec, x, h0, c0, false, &mut Buffers::Fresh, None)?;
        Ok(out)
    }

    /// Records a training forward pass and returns, with the outputs, what
    /// [`Rnn::record_backward`] needs.
    pub fn record_train(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<(RnnOutput, Saved)> {
        let (out, saved) =
            self.record_forward_with(rec, x, h0, c0, true, &mut Buffers::Fresh, None)?;
        Ok((out, kept(saved)?))
    }

    /// Records an inference forward pass whose buffers come from `arena`: after the first
    /// call of a shape, nothing is allocated. The returned tensors are arena slots, valid
    /// until the next recording with the same arena (which overwrites them).
    pub fn record_inference_in(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        arena: &mut Arena,
    ) -> Result<RnnOutput> {
        arena.reset();
        let (out, _) =
            self.record_forward_with(rec, x, h0, c0, false, &mut Buffers::Arena(arena), None)?;
        Ok(out)
    }

    /// Runs a padded batch whose rows end at `lengths` (one per batch row, each in
    /// `1..=T`; PyTorch's `pack_padded_sequence` with `enforce_sorted=False`, ONNX's
    /// `sequence_lens`), inference, in one submission: outputs past a row's length are zero,
    /// `hn`/`cn` hold each row's state after its last step, and the reverse direction starts
    /// at each row's own last step. Each step runs over the rows still going only.
    pub fn forward_packed(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        lengths: &[usize],
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<RnnOutput> {
        let mut rec = Recorder::new(gpu);
        let out = self.record_inference_packed(&mut rec, x, lengths, h0, c0)?;
        rec.run()?;
        Ok(out)
    }

    /// [`Rnn::record_inference`] for a padded batch with per-row `lengths` (see
    /// [`Rnn::forward_packed`]).
    pub fn record_inference_packed(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        lengths: &[usize],
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<RnnOutput> {
        Ok(self.record_packed(rec, x, lengths, h0, c0, false)?.0)
    }

    /// [`Rnn::record_train`] for a padded batch with per-row `lengths` (see
    /// [`Rnn::forward_packed`]): [`Rnn::record_backward`] then gives zero gradients at the
    /// padded positions, as PyTorch does.
    pub fn record_train_packed(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        lengths: &[usize],
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<(RnnOutput, Saved)> {
        let (out, saved) = self.record_packed(rec, x, lengths, h0, c0, true)?;
        Ok((out, kept(saved)?))
    }

    fn record_packed(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        lengths: &[usize],
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        train: bool,
    ) -> Result<(RnnOutput, Option<Saved>)> {
        let (seq, batch) = seq_batch(&self.cfg, x)?;
        let plan = PackedPlan::new(lengths, seq, batch)?;
        self.record_forward_with(rec, x, h0, c0, train, &mut Buffers::Fresh, Some(plan))
    }
}

impl Rnn {
    /// Loads a stack from a PyTorch state_dict in a safetensors file: the tensors under
    /// `prefix` decide the cell, sizes, layers, directions, bias and projection (see
    /// [`super::state_dict::config_from_state_dict`]); f16, bf16 and f64 files load too.
    pub fn load_safetensors(
        gpu: &Gpu,
        path: &std::path::Path,
        prefix: &str,
        nonlinearity: Option<CellKind>,
    ) -> Result<Rnn> {
        let (tensors, meta) = crate::io::load(path)?;
        let (cfg, flat) =
            super::state_dict::config_from_state_dict(&tensors, prefix, nonlinearity, &meta)?;
        Rnn::new(gpu, cfg, &flat)
    }

    /// Saves the parameters under their state_dict names (with `prefix`) to a safetensors
    /// file that PyTorch's `load_state_dict` takes, atomically (temporary file, then rename).
    pub fn save_safetensors(&self, gpu: &Gpu, path: &std::path::Path, prefix: &str) -> Result<()> {
        let flat = gpu.read(&self.params)?;
        let tensors = super::state_dict::state_dict_from_params(&self.cfg, &flat, prefix)?;
        crate::io::save(
            path,
            &tensors,
            &super::state_dict::state_dict_metadata(&self.cfg),
        )
    }

    /// The parameter gradients as a state_dict (names with `prefix`).
    pub fn grads_state_dict(
        &self,
        gpu: &Gpu,
        prefix: &str,
    ) -> Result<Vec<(String, crate::io::HostTensor)>> {
        let flat = gpu.read(&self.grads)?;
        super::state_dict::state_dict_from_params(&self.cfg, &flat, prefix)
    }
}
