//! `Trainer`: one optimizer step of a [`SeqModel`] as one GPU submission.
//!
//! A step over M micro-batches (M parallel groups of streams, each with its own carried
//! state) records, in order:
//! 1. per micro-batch i: forward from the carried state of slot i, the loss scaled by 1/M
//!    (added into the step's loss), backward (parameter gradients overwritten for i = 0 and
//!    accumulated after), and the carry of hn/cn into slot i;
//! 2. the global gradient norm (always, for logging), then clipping by norm or value;
//! 3. the optimizer step over every layer's flat buffer;
//! 4. the copy of loss and norm into the metric ring ([`MetricLog`]).
//!
//! The trainer is built for one of two [`TrainMode`]s, said out loud at construction:
//! [`TrainMode::Stateful`] (truncated BPTT over long streams: each step starts from the state
//! the previous step ended in, so consecutive batches must continue the same B streams) or
//! [`TrainMode::Independent`] (every batch is a set of unrelated sequences starting from zero
//! state; the batch size may change from step to step).
//!
//! It is submitted once and not waited for: the host can prepare the next batch while the
//! GPU works. At most `max_in_flight` steps are queued; the step after that waits for the
//! oldest (back-pressure). Loss and norm reach the host every `log_every` steps through
//! [`Trainer::poll_metrics`].

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, STEP_KEY};
use super::clip::{record_clip_value, Clip, GradNorm};
use super::loss::{record_loss, LossSink, Targets};
use super::metrics::{MetricLog, StepMetrics};
use super::optim::{Optimizer, OptimizerConfig};
use super::tbptt::{CarriedState, Tbptt};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::io::HostTensor;
use crate::nn::{SeqInput, SeqModel, SeqModelConfig};
use crate::rnn::GradFlowProbe;

/// Metadata key of the model config (JSON).
pub const MODEL_KEY: &str = "model";
/// Metadata key of the training config (JSON).
pub const TRAIN_KEY: &str = "train";
/// Metadata key of the [`TrainMode`] (`stateful` or `independent`; absent means stateful).
pub const MODE_KEY: &str = "mode";

/// What a step starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainMode {
    /// Truncated BPTT over streams: the final state of micro-batch slot i in one step is the
    /// initial state of slot i in the next (no gradient crosses the cut). Consecutive batches
    /// must continue the same streams, so their batch size is fixed until
    /// [`Trainer::reset_state`]. What `recur train` does.
    Stateful,
    /// Independent sequences: every step starts from zero state and carries nothing, and the
    /// batch size may change from step to step (a classifier over windows, say).
    Independent,
}

impl TrainMode {
    /// `stateful` or `independent`.
    pub fn name(self) -> &'static str {
        match self {
            TrainMode::Stateful => "stateful",
            TrainMode::Independent => "independent",
        }
    }
}

/// How a [`Trainer`] steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Gradient clipping.
    pub clip: Clip,
    /// Steps between metric readbacks (the metric ring's size).
    pub log_every: usize,
    /// Submitted steps allowed in flight before a step waits for the oldest.
    pub max_in_flight: usize,
}

impl Default for TrainConfig {
    /// Adam with torch's defaults, no clipping, metrics every 10 steps, 2 steps in flight.
    fn default() -> Self {
        TrainConfig {
            optimizer: OptimizerConfig::adam(),
            clip: Clip::None,
            log_every: 10,
            max_in_flight: 2,
        }
    }
}

impl TrainConfig {
    /// Checks every part.
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        self.clip.validate()?;
        if self.log_every == 0 || self.max_in_flight == 0 {
            return Err(Error::InvalidConfig(
                "log_every and max_in_flight must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// One micro-batch of a step: a window's input and its targets.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Tokens `(T, B)` or features `(T, B, I)`.
    pub input: SeqInput<'a>,
    /// Token ids `(T, B)` (cross-entropy) or values like the model output (MSE).
    pub targets: Targets<'a>,
}

/// A model with its optimizer, clipping, carried states and metric log; see the module
/// documentation.
#[derive(Debug)]
pub struct Trainer {
    /// The model being trained.
    pub model: SeqModel,
    cfg: TrainConfig,
    mode: TrainMode,
    optimizer: Optimizer,
    norm: GradNorm,
    tbptt: Tbptt,
    metrics: MetricLog,
    loss: Tensor,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
}

/// A checkpoint-content error (the file is fine, what it holds is not).
pub(crate) fn ckpt_err(reason: String) -> Error {
    Error::Checkpoint {
        path: crate::error::UNKNOWN_CHECKPOINT.into(),
        reason,
    }
}

impl Trainer {
    /// A trainer at step 0 with zero optimizer state and zero carried states, stepping in
    /// `mode` (see [`TrainMode`]).
    ///
    /// ```
    /// # fn main() -> recur::Result<()> {
    /// use recur::nn::{SeqInput, SeqModel, SeqModelConfig};
    /// use recur::train::{Batch, Targets, TrainConfig, TrainMode, Trainer};
    /// use recur::{rng::Rng, CellKind, Gpu, RnnConfig};
    /// let gpu = Gpu::new()?;
    /// // Sequences of 2 features -> LSTM(8) -> one value at the last step.
    /// let cfg = SeqModelConfig::new(None, RnnConfig::new(CellKind::Lstm, 2, 8), 1).last_step();
    /// let model = SeqModel::init(&gpu, cfg, &mut Rng::new(0))?;
    /// let mut trainer = Trainer::new(&gpu, model, TrainConfig::default(), TrainMode::Independent)?;
    /// for batch in [4, 3] {
    ///     // Independent sequences: the batch size may change between steps.
    ///     let x = gpu.tensor("x", &[6, batch, 2], &vec![0.5; 6 * batch * 2])?; // (T, B, I)
    ///     let y = gpu.tensor("y", &[batch, 1], &vec![1.0; batch])?; // (B, out)
    ///     trainer.step(&gpu, &[Batch { input: SeqInput::Dense(&x), targets: Targets::Dense(&y) }])?;
    /// }
    /// let metrics = trainer.flush_metrics(&gpu)?; // loss and gradient norm of each step
    /// assert_eq!(metrics.len(), 2);
    /// assert!(metrics[1].loss.is_finite());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(gpu: &Gpu, model: SeqModel, cfg: TrainConfig, mode: TrainMode) -> Result<Self> {
        cfg.validate()?;
        let groups = model.groups();
        let optimizer = Optimizer::new(gpu, cfg.optimizer, &groups)?;
        let norm = GradNorm::for_groups(gpu, &groups)?;
        let metrics = MetricLog::new(gpu, cfg.log_every)?;
        Ok(Trainer {
            model,
            cfg,
            mode,
            optimizer,
            norm,
            tbptt: Tbptt::new(),
            metrics,
            loss: gpu.zeros("train.loss", &[1])?,
            in_flight: VecDeque::new(),
        })
    }

    /// The training config.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Whether steps carry state ([`TrainMode`]).
    pub fn mode(&self) -> TrainMode {
        self.mode
    }

    /// Optimizer steps taken.
    pub fn step_count(&self) -> u64 {
        self.optimizer.step_count()
    }

    /// The optimizer (its state and step count).
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// Changes the learning rate for later steps.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.optimizer.set_lr(lr)?;
        self.cfg.optimizer = *self.optimizer.config();
        Ok(())
    }

    /// The carried states.
    pub fn tbptt(&self) -> &Tbptt {
        &self.tbptt
    }

    /// Zero carried states for the next window (a new epoch or new streams).
    pub fn reset_state(&mut self) {
        self.tbptt.reset();
    }

    /// The device tensor holding the last step's loss (`[1]`).
    pub fn loss_tensor(&self) -> &Tensor {
        &self.loss
    }

    /// The device buffer holding `[total_norm, clip_coef]` of the last step.
    pub fn norm_tensor(&self) -> &Tensor {
        &self.norm.norm
    }

    /// Reads the last step's loss (waits for the GPU: for tests, not for the training loop).
    pub fn read_loss(&self, gpu: &Gpu) -> Result<f32> {
        gpu.read(&self.loss)?
            .first()
            .copied()
            .ok_or_else(|| Error::Gpu("empty loss buffer".into()))
    }

    /// Records and submits one optimizer step over `micro` (one micro-batch per carried
    /// state slot); returns without waiting for the GPU.
    ///
    /// In [`TrainMode::Stateful`], a micro-batch whose batch size differs from the state its
    /// slot carries is [`Error::InvalidConfig`] saying what to do (nothing is recorded).
    pub fn step(&mut self, gpu: &Gpu, micro: &[Batch]) -> Result<()> {
        self.step_with(gpu, micro, &[])
    }

    /// A step; with `probes` (one per micro-batch, or none) the gradient flow too.
    pub(super) fn step_with(
        &mut self,
        gpu: &Gpu,
        micro: &[Batch],
        probes: &[GradFlowProbe],
    ) -> Result<()> {
        if micro.is_empty() {
            return Err(Error::InvalidConfig(
                "a step needs at least one micro-batch".into(),
            ));
        }
        if self.mode == TrainMode::Stateful {
            self.check_carried_batches(micro)?;
        }
        let mut rec = Recorder::new(gpu);
        let scale = 1.0 / micro.len() as f32;
        for (i, mb) in micro.iter().enumerate() {
            let (h0, c0) = match self.mode {
                TrainMode::Stateful => self.tbptt.state(i),
                TrainMode::Independent => (None, None),
            };
            let (out, saved) = self.model.record_train(&mut rec, mb.input, h0, c0)?;
            let dout = record_loss(
                &mut rec,
                &out.out,
                mb.targets,
                scale,
                LossSink {
                    tensor: &self.loss,
                    offset: 0,
                    accumulate: i > 0,
                },
            )?;
            match probes.get(i) {
                Some(p) => self
                    .model
                    .record_backward_probed(&mut rec, &saved, &dout, i > 0, p)?,
                None => self.model.record_backward(&mut rec, &saved, &dout, i > 0)?,
            }
            if self.mode == TrainMode::Stateful {
                self.tbptt
                    .record_carry(&mut rec, i, &out.hn, out.cn.as_ref())?;
            }
        }
        let groups = self.model.groups();
        let max_norm = match self.cfg.clip {
            Clip::Norm(m) => Some(m),
            _ => None,
        };
        self.norm.record(&mut rec, &groups, max_norm)?;
        if let Clip::Value(v) = self.cfg.clip {
            record_clip_value(&mut rec, &groups, v)?;
        }
        // Loss and norm are final here: the metric copies may precede the optimizer step,
        // which is recorded (and counted) last so that a failure leaves the count alone.
        let step = self
            .optimizer
            .step_count()
            .checked_add(1)
            .ok_or_else(|| Error::Overflow("the optimizer's step count".into()))?;
        if let Err(e) =
            self.metrics
                .record(gpu, &mut rec, step, (&self.loss, 0), (&self.norm.norm, 0))
        {
            self.metrics.discard_recorded();
            return Err(e);
        }
        if let Err(e) = self.optimizer.record_step(&mut rec, &groups) {
            self.metrics.discard_recorded();
            return Err(e);
        }
        while self.in_flight.len() >= self.cfg.max_in_flight {
            if let Some(idx) = self.in_flight.pop_front() {
                gpu.device
                    .poll(wgpu::PollType::Wait {
                        submission_index: Some(idx),
                        timeout: None,
                    })
                    .map_err(|e| Error::Gpu(e.to_string()))?;
            }
        }
        let idx = match rec.submit() {
            Ok(idx) => idx,
            Err(e) => {
                self.metrics.discard_recorded();
                return Err(e);
            }
        };
        self.metrics.after_submit();
        self.in_flight.push_back(idx);
        gpu.check()
    }

    /// [`Error::InvalidConfig`] unless every micro-batch has the batch size of the state its
    /// slot carries (slots without state take any size).
    fn check_carried_batches(&self, micro: &[Batch]) -> Result<()> {
        for (i, mb) in micro.iter().enumerate() {
            let rows = match mb.input {
                SeqInput::Tokens(ids) => ids.shape.get(1).copied(),
                SeqInput::Dense(x) => x.shape.get(1).copied(),
            };
            let carried = self.tbptt.state(i).0.and_then(|h| h.shape.get(1).copied());
            if let (Some(rows), Some(carried)) = (rows, carried) {
                if rows != carried {
                    return Err(Error::InvalidConfig(format!(
                        "micro-batch {i} has {rows} sequences, but this stateful (TBPTT) trainer \
                         carries the state of {carried} streams from the last step into it: \
                         call reset_state() before starting new streams of another batch size, \
                         or build the trainer with TrainMode::Independent to start every batch \
                         from zero state"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Without blocking: loss and gradient norm of the steps whose metrics have reached the
    /// host (every `log_every` steps), in step order.
    pub fn poll_metrics(&mut self, gpu: &Gpu) -> Result<Vec<StepMetrics>> {
        self.metrics.poll(gpu)
    }

    /// Blocking: submits a copy of the steps still in the ring and returns every metric not
    /// returned yet (the end of training, or a test).
    pub fn flush_metrics(&mut self, gpu: &Gpu) -> Result<Vec<StepMetrics>> {
        let mut rec = Recorder::new(gpu);
        self.metrics.record_flush(gpu, &mut rec)?;
        rec.submit()?;
        self.metrics.after_submit();
        self.metrics.wait(gpu)
    }

    /// Waits for every submitted step.
    pub fn wait(&mut self, gpu: &Gpu) -> Result<()> {
        self.in_flight.clear();
        gpu.wait()
    }

    /// Everything needed to resume: parameters, optimizer state, step count, carried states
    /// and both configs (reads the GPU, so it waits for submitted steps).
    pub fn checkpoint(&mut self, gpu: &Gpu) -> Result<Checkpoint> {
        self.wait(gpu)?;
        let mut c = Checkpoint::default();
        for (gi, (layer, m)) in self.model.modules().into_iter().enumerate() {
            let flat = gpu.read(m.group().params)?;
            for s in m.slices() {
                let data = flat
                    .get(s.offset..s.offset + s.len())
                    .ok_or_else(|| Error::Gpu(format!("{layer}.{} out of range", s.name)))?
                    .to_vec();
                c.tensors.insert(
                    format!("model.{layer}.{}", s.name),
                    HostTensor::new(s.shape.clone(), data)?,
                );
            }
            let names = self.optimizer.config().state_names();
            for (name, t) in names.iter().zip(self.optimizer.state(gi)) {
                c.tensors.insert(
                    format!("optim.{layer}.{name}"),
                    HostTensor::new(t.shape.clone(), gpu.read(t)?)?,
                );
            }
        }
        for (i, s) in self.tbptt.slots().iter().enumerate() {
            for (part, t) in [("h", &s.h), ("c", &s.c)] {
                if let Some(t) = t {
                    c.tensors.insert(
                        format!("tbptt.{i}.{part}"),
                        HostTensor::new(t.shape.clone(), gpu.read(t)?)?,
                    );
                }
            }
        }
        c.metadata
            .insert(STEP_KEY.into(), self.step_count().to_string());
        c.metadata
            .insert(MODEL_KEY.into(), self.model.cfg.to_json().to_string());
        c.metadata
            .insert(MODE_KEY.into(), self.mode.name().to_string());
        c.metadata.insert(
            TRAIN_KEY.into(),
            serde_json::to_string(&self.cfg).map_err(|e| Error::Gpu(e.to_string()))?,
        );
        Ok(c)
    }

    /// Writes [`Trainer::checkpoint`] to `path` atomically (the old file stays on error).
    pub fn save_checkpoint(&mut self, gpu: &Gpu, path: &Path) -> Result<()> {
        self.checkpoint(gpu)?.save(path)
    }

    /// The model and training configs a checkpoint was made with.
    pub fn configs_of(ckpt: &Checkpoint) -> Result<(SeqModelConfig, TrainConfig)> {
        let get = |k: &str| {
            ckpt.metadata
                .get(k)
                .ok_or_else(|| ckpt_err(format!("metadata {k:?} is missing")))
        };
        let model: serde_json::Value = serde_json::from_str(get(MODEL_KEY)?)
            .map_err(|e| ckpt_err(format!("metadata {MODEL_KEY:?}: {e}")))?;
        let model = SeqModelConfig::from_json(&model)?;
        let train: TrainConfig = serde_json::from_str(get(TRAIN_KEY)?)
            .map_err(|e| ckpt_err(format!("metadata {TRAIN_KEY:?}: {e}")))?;
        train.validate()?;
        Ok((model, train))
    }

    /// The [`TrainMode`] a checkpoint was made in (stateful when it does not say: the only
    /// mode before there were two).
    pub fn mode_of(ckpt: &Checkpoint) -> Result<TrainMode> {
        match ckpt.metadata.get(MODE_KEY).map(String::as_str) {
            None | Some("stateful") => Ok(TrainMode::Stateful),
            Some("independent") => Ok(TrainMode::Independent),
            Some(other) => Err(ckpt_err(format!(
                "metadata {MODE_KEY:?} is {other:?}, expected stateful or independent"
            ))),
        }
    }

    /// A trainer rebuilt from a checkpoint: its configs, mode, parameters, optimizer state,
    /// step count and carried states.
    ///
    /// ```
    /// # fn main() -> recur::Result<()> {
    /// use recur::nn::{SeqModel, SeqModelConfig};
    /// use recur::train::{Checkpoint, TrainConfig, TrainMode, Trainer};
    /// use recur::{rng::Rng, CellKind, Gpu, RnnConfig};
    /// let gpu = Gpu::new()?;
    /// let cfg = SeqModelConfig::new(Some(5), RnnConfig::new(CellKind::Gru, 3, 4), 5);
    /// let model = SeqModel::init(&gpu, cfg, &mut Rng::new(0))?;
    /// let mut trainer = Trainer::new(&gpu, model, TrainConfig::default(), TrainMode::Stateful)?;
    /// let path = std::env::temp_dir().join(format!("recur-doc-ckpt-{}.safetensors", std::process::id()));
    /// trainer.save_checkpoint(&gpu, &path)?; // model, optimizer state, step, carried states
    /// let resumed = Trainer::from_checkpoint(&gpu, &Checkpoint::load(&path)?)?;
    /// assert_eq!((resumed.step_count(), resumed.mode()), (0, TrainMode::Stateful));
    /// # std::fs::remove_file(&path).ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_checkpoint(gpu: &Gpu, ckpt: &Checkpoint) -> Result<Self> {
        let (mcfg, tcfg) = Self::configs_of(ckpt)?;
        let mode = Self::mode_of(ckpt)?;
        let mut rng = crate::rng::Rng::new(0);
        let model = SeqModel::init(gpu, mcfg, &mut rng)?;
        let mut t = Trainer::new(gpu, model, tcfg, mode)?;
        t.restore(gpu, ckpt)?;
        Ok(t)
    }

    /// Loads a checkpoint into this trainer, whose model config must be the checkpoint's.
    /// Everything is checked before anything is written, so on error the trainer is as it
    /// was. The training config stays this trainer's (its optimizer kind must match).
    pub fn restore(&mut self, gpu: &Gpu, ckpt: &Checkpoint) -> Result<()> {
        let (mcfg, _) = Self::configs_of(ckpt)?;
        if mcfg != self.model.cfg {
            return Err(ckpt_err(format!(
                "model config {} does not match this trainer's {}",
                mcfg.to_json(),
                self.model.cfg.to_json()
            )));
        }
        let step = ckpt.step()?;
        let mut used: BTreeSet<String> = BTreeSet::new();
        let mut uploads: Vec<(Tensor, Vec<f32>)> = Vec::new();
        let mut take = |key: String, shape: &[usize]| -> Result<&HostTensor> {
            let t = ckpt.tensor(&key)?;
            if t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
                return Err(Error::Shape {
                    what: key,
                    expected: shape.to_vec(),
                    got: t.shape.clone(),
                });
            }
            used.insert(key);
            Ok(t)
        };
        let names = self.optimizer.config().state_names();
        for (gi, (layer, m)) in self.model.modules().into_iter().enumerate() {
            let group = m.group();
            let mut flat = vec![0.0f32; group.params.numel()];
            for s in m.slices() {
                let t = take(format!("model.{layer}.{}", s.name), &s.shape)?;
                flat[s.offset..s.offset + s.len()].copy_from_slice(&t.data);
            }
            uploads.push((group.params.clone(), flat));
            for (name, st) in names.iter().zip(self.optimizer.state(gi)) {
                let t = take(format!("optim.{layer}.{name}"), &st.shape)?;
                uploads.push((st.clone(), t.data.clone()));
            }
        }
        // Carried states: (L*D, B, h width) and, for the LSTM, (L*D, B, H); B is free.
        let r = &self.model.cfg.rnn;
        let ld = r.num_layers * r.num_directions();
        let mut slots: Vec<(Option<&HostTensor>, Option<&HostTensor>)> = Vec::new();
        loop {
            let i = slots.len();
            let h = ckpt.tensors.get(&format!("tbptt.{i}.h"));
            let c = ckpt.tensors.get(&format!("tbptt.{i}.c"));
            if h.is_none() && c.is_none() {
                break;
            }
            let h = h.ok_or_else(|| ckpt_err(format!("tbptt.{i}.c without tbptt.{i}.h")))?;
            let batch = h.shape.get(1).copied().unwrap_or(0);
            take(format!("tbptt.{i}.h"), &[ld, batch, r.out_hidden()])?;
            match (c, r.cell.has_cell_state()) {
                (Some(_), true) => {
                    take(format!("tbptt.{i}.c"), &[ld, batch, r.hidden_size])?;
                }
                (None, false) => {}
                _ => {
                    return Err(ckpt_err(format!(
                        "tbptt.{i}.c does not fit a {} stack",
                        r.cell
                    )))
                }
            }
            slots.push((Some(h), c));
        }
        if let Some(extra) = ckpt.tensors.keys().find(|k| !used.contains(*k)) {
            return Err(ckpt_err(format!(
                "unexpected tensor {extra:?} (another model or optimizer?)"
            )));
        }
        // Everything fits: write.
        let mut carried = Vec::with_capacity(slots.len());
        for (i, (h, c)) in slots.into_iter().enumerate() {
            let up = |t: Option<&HostTensor>, label: String| -> Result<Option<Tensor>> {
                t.map(|t| gpu.tensor(&label, &t.shape, &t.data)).transpose()
            };
            carried.push(CarriedState {
                h: up(h, format!("tbptt.{i}.h"))?,
                c: up(c, format!("tbptt.{i}.c"))?,
            });
        }
        self.wait(gpu)?;
        for (t, data) in &uploads {
            gpu.write(t, data)?;
        }
        self.tbptt.set_slots(carried);
        self.optimizer.set_step_count(step);
        self.metrics.reset(step.saturating_add(1));
        gpu.wait()
    }
}
