//! `SeqModel`: input layer → RNN stack → linear head, the smallest composition the training
//! driver needs. With token input it is a character (or word) language model body:
//! `Embedding(V, I) → Rnn(I, H) → Linear(D*H, out)`; with dense input the embedding is
//! skipped and the input is `(T, B, I)` features.
//!
//! Everything is time-major: inputs `(T, B)` ids or `(T, B, I)` features. The head reads
//! every step ([`Readout::EveryStep`], many-to-many: output `(T, B, out)` whose row
//! `t * B + b` lines up with target `t * B + b`) or the last one only ([`Readout::LastStep`],
//! many-to-one: output `(B, out)`, a classifier or regressor of whole sequences).
//!
//! In PyTorch terms the model is
//!
//! ```python
//! class SeqModel(nn.Module):
//!     def __init__(self, vocab, rnn, out_features, last_step):
//!         super().__init__()
//!         if vocab is not None:
//!             self.embedding = nn.Embedding(vocab, rnn.input_size)
//!         self.rnn = rnn  # nn.RNN / nn.LSTM / nn.GRU, batch_first=False
//!         self.head = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), out_features)
//!         self.last_step = last_step
//!     def forward(self, x, state=None):
//!         if hasattr(self, "embedding"):
//!             x = self.embedding(x)
//!         y, state = self.rnn(x, state)
//!         return self.head(y[-1] if self.last_step else y), state
//! ```
//!
//! and [`SeqModel::save`] writes its `state_dict` names (`embedding.weight`,
//! `rnn.weight_ih_l0`, ..., `head.weight`, `head.bias`).

use serde_json::{json, Value};

use super::{init, Embedding, Linear, Module, ParamGroup, TokenIds};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::rng::Rng;
use crate::rnn::{CellKind, GradFlowProbe, Rnn, RnnConfig, Saved};

/// The shape of a [`SeqModel`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqModelConfig {
    /// `Some(V)`: the input is token ids through an embedding of V rows and width
    /// `rnn.input_size`; `None`: the input is dense `(T, B, rnn.input_size)` features.
    pub vocab: Option<usize>,
    /// The RNN stack (must be time-major: `batch_first` false).
    pub rnn: RnnConfig,
    /// Width of the head's output (the vocabulary for a language model).
    pub out_features: usize,
    /// Which steps the head reads.
    pub readout: Readout,
}

/// Which RNN outputs a [`SeqModel`]'s head reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Readout {
    /// Every step (many-to-many): output `(T, B, out)`, targets `(T, B)` ids or
    /// `(T, B, out)` values. A language model.
    #[default]
    EveryStep,
    /// The last step only (many-to-one, PyTorch's `head(y[-1])`): output `(B, out)`, targets
    /// `(B,)` ids or `(B, out)` values. A sequence classifier or regressor. With a
    /// bidirectional stack the reverse half of `y[-1]` has seen one step only, as in PyTorch.
    LastStep,
}

impl Readout {
    /// `every_step` or `last_step` (the name in configs and file metadata).
    pub fn name(self) -> &'static str {
        match self {
            Readout::EveryStep => "every_step",
            Readout::LastStep => "last_step",
        }
    }

    /// The readout called `name` ([`Readout::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "every_step" => Some(Readout::EveryStep),
            "last_step" => Some(Readout::LastStep),
            _ => None,
        }
    }
}

impl SeqModelConfig {
    /// A model config reading every step ([`Readout::EveryStep`]); `vocab` `Some(V)` puts an
    /// embedding of V rows in front.
    pub fn new(vocab: Option<usize>, rnn: RnnConfig, out_features: usize) -> Self {
        SeqModelConfig {
            vocab,
            rnn,
            out_features,
            readout: Readout::EveryStep,
        }
    }

    /// This config with the head on the last step only ([`Readout::LastStep`]).
    pub fn last_step(mut self) -> Self {
        self.readout = Readout::LastStep;
        self
    }

    /// Checks sizes and layout.
    pub fn validate(&self) -> Result<()> {
        self.rnn.validate()?;
        if self.rnn.batch_first {
            return Err(Error::InvalidConfig(
                "SeqModel is time-major: rnn.batch_first must be false".into(),
            ));
        }
        if self.out_features == 0 || self.vocab == Some(0) {
            return Err(Error::InvalidConfig(
                "SeqModel: out_features and vocab must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The config as JSON (what checkpoints keep in their metadata).
    pub fn to_json(&self) -> Value {
        let r = &self.rnn;
        json!({
            "vocab": self.vocab,
            "out_features": self.out_features,
            "readout": self.readout.name(),
            "rnn": {
                "cell": r.cell.name(),
                "input_size": r.input_size,
                "hidden_size": r.hidden_size,
                "num_layers": r.num_layers,
                "bidirectional": r.bidirectional,
                "bias": r.bias,
                "batch_first": r.batch_first,
                "proj_size": r.proj_size,
            }
        })
    }

    /// Parses [`SeqModelConfig::to_json`]'s output; [`Error::InvalidConfig`] when a field is
    /// missing or has the wrong type. A config without `readout` (written before it existed)
    /// reads every step.
    pub fn from_json(v: &Value) -> Result<Self> {
        let bad = |what: &str| Error::InvalidConfig(format!("model config: bad or missing {what}"));
        let uint = |o: &Value, k: &str| -> Result<usize> {
            o.get(k)
                .and_then(Value::as_u64)
                .and_then(|x| usize::try_from(x).ok())
                .ok_or_else(|| bad(k))
        };
        let boolean = |o: &Value, k: &str| o.get(k).and_then(Value::as_bool).ok_or_else(|| bad(k));
        let r = v.get("rnn").ok_or_else(|| bad("rnn"))?;
        let cell = r
            .get("cell")
            .and_then(Value::as_str)
            .and_then(CellKind::parse)
            .ok_or_else(|| bad("rnn.cell"))?;
        let rnn = RnnConfig::new(cell, uint(r, "input_size")?, uint(r, "hidden_size")?)
            .layers(uint(r, "num_layers")?)
            .bidirectional(boolean(r, "bidirectional")?)
            .bias(boolean(r, "bias")?)
            .batch_first(boolean(r, "batch_first")?)
            .proj_size(uint(r, "proj_size")?);
        let vocab = match v.get("vocab") {
            Some(Value::Null) => None,
            Some(_) => Some(uint(v, "vocab")?),
            None => return Err(bad("vocab")),
        };
        let readout = match v.get("readout") {
            None => Readout::EveryStep,
            Some(r) => r
                .as_str()
                .and_then(Readout::parse)
                .ok_or_else(|| bad("readout (every_step or last_step)"))?,
        };
        let cfg = SeqModelConfig {
            vocab,
            rnn,
            out_features: uint(v, "out_features")?,
            readout,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The input of one window.
#[derive(Clone, Copy, Debug)]
pub enum SeqInput<'a> {
    /// Token ids `(T, B)` (the model must have an embedding).
    Tokens(&'a TokenIds),
    /// Features `(T, B, I)` (the model must not have an embedding).
    Dense(&'a Tensor),
}

/// What [`SeqModel::forward`], [`SeqModel::record_inference`] and [`SeqModel::record_train`]
/// return.
#[derive(Debug)]
pub struct SeqOutput {
    /// Head output: `(T, B, out)` (logits for a language model), or `(B, out)` with
    /// [`Readout::LastStep`].
    pub out: Tensor,
    /// Final hidden state of the RNN.
    pub hn: Tensor,
    /// Final cell state (LSTM).
    pub cn: Option<Tensor>,
}

/// What a training forward keeps for [`SeqModel::record_backward`].
#[derive(Debug)]
pub struct SeqSaved {
    ids: Option<TokenIds>,
    rnn: Saved,
    y: Tensor,
}

/// Input layer → RNN → linear head; see the module documentation.
#[derive(Debug)]
pub struct SeqModel {
    /// The shape.
    pub cfg: SeqModelConfig,
    /// Token embedding, when `cfg.vocab` is set.
    pub embedding: Option<Embedding>,
    /// The RNN stack.
    pub rnn: Rnn,
    /// The output layer, `D*H → out`.
    pub head: Linear,
}

impl SeqModel {
    /// A model initialised as PyTorch does (see [`init`]), drawing embedding, RNN and head
    /// in that order from `rng`.
    pub fn init(gpu: &Gpu, cfg: SeqModelConfig, rng: &mut Rng) -> Result<Self> {
        cfg.validate()?;
        // Sizes come from files too: refuse what cannot fit before allocating host memory.
        let rnn_total = crate::rnn::ParamLayout::new(&cfg.rnn).total;
        gpu.check_elements("rnn parameters", rnn_total)?;
        if let Some(v) = cfg.vocab {
            gpu.check_elements("embedding", v.saturating_mul(cfg.rnn.input_size))?;
        }
        gpu.check_elements(
            "linear head",
            (cfg.rnn.output_size() + 1).saturating_mul(cfg.out_features),
        )?;
        let embedding = match cfg.vocab {
            Some(v) => Some(Embedding::init(gpu, v, cfg.rnn.input_size, rng)?),
            None => None,
        };
        let rnn = Rnn::new(gpu, cfg.rnn.clone(), &init::rnn_params(&cfg.rnn, rng))?;
        let head = Linear::init(gpu, cfg.rnn.output_size(), cfg.out_features, true, rng)?;
        Self::from_parts(cfg, embedding, rnn, head)
    }

    /// Assembles a model from layers, checking they fit `cfg` and each other.
    pub fn from_parts(
        cfg: SeqModelConfig,
        embedding: Option<Embedding>,
        rnn: Rnn,
        head: Linear,
    ) -> Result<Self> {
        cfg.validate()?;
        let emb_ok = match (&embedding, cfg.vocab) {
            (None, None) => true,
            (Some(e), Some(v)) => e.num_embeddings == v && e.dim == cfg.rnn.input_size,
            _ => false,
        };
        if !emb_ok || rnn.cfg != cfg.rnn {
            return Err(Error::InvalidConfig(
                "SeqModel: embedding or RNN does not match the config".into(),
            ));
        }
        if head.in_features != cfg.rnn.output_size()
            || head.out_features != cfg.out_features
            || !head.bias
        {
            return Err(Error::InvalidConfig(format!(
                "SeqModel: the head must be a biased Linear({}, {})",
                cfg.rnn.output_size(),
                cfg.out_features
            )));
        }
        Ok(SeqModel {
            cfg,
            embedding,
            rnn,
            head,
        })
    }

    /// The layers by name (`embedding`, `rnn`, `head`), in parameter order.
    pub fn modules(&self) -> Vec<(&'static str, &dyn Module)> {
        let mut v: Vec<(&'static str, &dyn Module)> = Vec::new();
        if let Some(e) = &self.embedding {
            v.push(("embedding", e));
        }
        v.push(("rnn", &self.rnn));
        v.push(("head", &self.head));
        v
    }

    /// The parameter groups, one per layer, in [`SeqModel::modules`] order.
    pub fn groups(&self) -> Vec<ParamGroup<'_>> {
        self.modules().into_iter().map(|(_, m)| m.group()).collect()
    }

    /// Runs the model forward in one submission (inference: no [`Recorder`], nothing kept for
    /// backward), from `h0`/`c0` or zeros; the outputs stay on the device.
    ///
    /// ```
    /// # fn main() -> recur::Result<()> {
    /// use recur::nn::{SeqInput, SeqModel, SeqModelConfig};
    /// use recur::{rng::Rng, CellKind, Gpu, RnnConfig};
    /// let gpu = Gpu::new()?;
    /// // 3 features -> GRU(8) -> 2 classes, read at the last step (many-to-one).
    /// let cfg = SeqModelConfig::new(None, RnnConfig::new(CellKind::Gru, 3, 8), 2).last_step();
    /// let model = SeqModel::init(&gpu, cfg, &mut Rng::new(7))?;
    /// let x = gpu.tensor("x", &[5, 4, 3], &[0.1; 5 * 4 * 3])?; // (T, B, I)
    /// let out = model.forward(&gpu, SeqInput::Dense(&x), None, None)?;
    /// assert_eq!(out.out.shape, [4, 2]); // (B, out)
    /// assert_eq!(out.hn.shape, [1, 4, 8]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn forward(
        &self,
        gpu: &Gpu,
        input: SeqInput,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<SeqOutput> {
        let mut rec = Recorder::new(gpu);
        let out = self.record_inference(&mut rec, input, h0, c0)?;
        rec.run()?;
        Ok(out)
    }

    /// Records an inference forward pass of one window (nothing kept for backward).
    pub fn record_inference(
        &self,
        rec: &mut Recorder,
        input: SeqInput,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<SeqOutput> {
        Ok(self.record_forward(rec, input, h0, c0, false)?.0)
    }

    /// Records a training forward pass of one window and returns, with the outputs, what
    /// [`SeqModel::record_backward`] needs.
    pub fn record_train(
        &self,
        rec: &mut Recorder,
        input: SeqInput,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<(SeqOutput, SeqSaved)> {
        let (out, saved) = self.record_forward(rec, input, h0, c0, true)?;
        let saved =
            saved.ok_or_else(|| Error::Internal("a training forward kept nothing".into()))?;
        Ok((out, saved))
    }

    fn record_forward(
        &self,
        rec: &mut Recorder,
        input: SeqInput,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        train: bool,
    ) -> Result<(SeqOutput, Option<SeqSaved>)> {
        let (x, ids) = match (input, &self.embedding) {
            (SeqInput::Tokens(ids), Some(e)) => {
                if ids.shape.len() != 2 {
                    return Err(Error::Shape {
                        what: "token input (T, B) (0 = any)".into(),
                        expected: vec![0, 0],
                        got: ids.shape.clone(),
                    });
                }
                (e.record_forward(rec, ids)?, Some(ids.clone()))
            }
            (SeqInput::Dense(x), None) => (x.clone(), None),
            (SeqInput::Tokens(_), None) => {
                return Err(Error::InvalidConfig(
                    "token input given to a model without an embedding".into(),
                ))
            }
            (SeqInput::Dense(_), Some(_)) => {
                return Err(Error::InvalidConfig(
                    "dense input given to a model with an embedding".into(),
                ))
            }
        };
        let (out, saved) = if train {
            let (out, saved) = self.rnn.record_train(rec, &x, h0, c0)?;
            (out, Some(saved))
        } else {
            (self.rnn.record_inference(rec, &x, h0, c0)?, None)
        };
        let logits = match self.cfg.readout {
            Readout::EveryStep => self.head.record_forward(rec, &out.y)?,
            Readout::LastStep => {
                let (seq, batch) = (out.y.shape[0], out.y.shape[1]);
                self.head.record_forward_rows(
                    rec,
                    &out.y,
                    (seq - 1) * batch,
                    batch,
                    &[batch, self.cfg.out_features],
                )?
            }
        };
        let saved = match saved {
            Some(rnn) => Some(SeqSaved {
                ids,
                rnn,
                y: out.y.clone(),
            }),
            None => None,
        };
        Ok((
            SeqOutput {
                out: logits,
                hn: out.hn,
                cn: out.cn,
            },
            saved,
        ))
    }

    /// Records the backward pass for output gradient `dout` (shaped like
    /// [`SeqOutput::out`]; with [`Readout::LastStep`] the other steps get no gradient from the
    /// head): every layer's gradient is added to its `grads` with
    /// `accumulate`, else overwritten. No gradient reaches h0/c0 (truncated BPTT).
    pub fn record_backward(
        &self,
        rec: &mut Recorder,
        saved: &SeqSaved,
        dout: &Tensor,
        accumulate: bool,
    ) -> Result<()> {
        self.record_backward_with(rec, saved, dout, accumulate, None)
    }

    /// [`SeqModel::record_backward`] that also writes the RNN's `‖∂L/∂h_t‖` of every step,
    /// layer and direction into `probe` ([`Rnn::record_backward_probed`]).
    pub fn record_backward_probed(
        &self,
        rec: &mut Recorder,
        saved: &SeqSaved,
        dout: &Tensor,
        accumulate: bool,
        probe: &GradFlowProbe,
    ) -> Result<()> {
        self.record_backward_with(rec, saved, dout, accumulate, Some(probe))
    }

    fn record_backward_with(
        &self,
        rec: &mut Recorder,
        saved: &SeqSaved,
        dout: &Tensor,
        accumulate: bool,
        probe: Option<&GradFlowProbe>,
    ) -> Result<()> {
        let dy = match self.cfg.readout {
            Readout::EveryStep => self.head.record_backward(rec, &saved.y, dout, accumulate)?,
            Readout::LastStep => {
                let (seq, batch) = (saved.y.shape[0], saved.y.shape[1]);
                self.head
                    .record_backward_rows(
                        rec,
                        &saved.y,
                        (seq - 1) * batch,
                        batch,
                        dout,
                        accumulate,
                        true,
                    )?
                    .ok_or_else(|| Error::Internal("linear backward made no dx".into()))?
            }
        };
        // Features straight into the RNN need no gradient: dX only for an embedding.
        let embedding = self.embedding.as_ref().zip(saved.ids.as_ref());
        let (dx, _) = self.rnn.record_backward_with(
            rec,
            &saved.rnn,
            &dy,
            None,
            None,
            accumulate,
            probe,
            embedding.is_some(),
        )?;
        match (embedding, dx) {
            (Some((e, ids)), Some(dx)) => e.record_backward(rec, ids, &dx, accumulate),
            (Some(_), None) => Err(Error::Internal("the RNN's backward made no dX".into())),
            (None, _) => Ok(()),
        }
    }
}
