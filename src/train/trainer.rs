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
//!
//! In a browser nothing may block: [`Trainer::step_async`] awaits the oldest step instead of
//! waiting for it, and [`Trainer::flush_metrics_async`] and [`Trainer::checkpoint_async`]
//! read back through `map_async` futures that the page's event loop completes.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, STEP_KEY};
use super::clip::{record_clip_value, Clip, GradNorm};
use super::loss::{record_loss, LossSink, Targets};
use super::metrics::{MetricLog, StepMetrics};
use super::optim::{Optimizer, OptimizerConfig};
use super::tbptt::{CarriedState, Tbptt};
use crate::error::{Error, Result};
use crate::gpu::oneshot::{self, Receiver};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::nn::{SeqInput, SeqModel};
use crate::rnn::GradFlowProbe;

mod checkpointing;

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
    /// Submitted steps: their index (to wait for natively) and a future that resolves when
    /// the queue has finished them (to await in a browser).
    in_flight: VecDeque<(wgpu::SubmissionIndex, Receiver<()>)>,
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
        let rec = self.record_step(gpu, micro, probes)?;
        if let Err(e) = self.wait_for_room(gpu) {
            self.metrics.discard_recorded();
            return Err(e);
        }
        self.submit_step(gpu, rec)
    }

    /// [`Trainer::step`] for the browser, where nothing may block: when `max_in_flight`
    /// steps are queued, it awaits the oldest (the page keeps running meanwhile) instead of
    /// waiting for it.
    pub async fn step_async(&mut self, gpu: &Gpu, micro: &[Batch<'_>]) -> Result<()> {
        self.step_with_async(gpu, micro, &[]).await
    }

    /// [`Trainer::step_async`]; with `probes` (one per micro-batch, or none) the gradient
    /// flow too.
    pub(super) async fn step_with_async(
        &mut self,
        gpu: &Gpu,
        micro: &[Batch<'_>],
        probes: &[GradFlowProbe],
    ) -> Result<()> {
        let rec = self.record_step(gpu, micro, probes)?;
        while self.in_flight.len() >= self.cfg.max_in_flight {
            if let Some((_idx, done)) = self.in_flight.pop_front() {
                // Natively the callback runs inside a poll; in a browser, the event loop's.
                #[cfg(not(target_arch = "wasm32"))]
                if let Err(e) = gpu.wait_for_submission(_idx) {
                    self.metrics.discard_recorded();
                    return Err(e);
                }
                done.await;
            }
        }
        self.submit_step(gpu, rec)
    }

    /// Blocks until fewer than `max_in_flight` steps are queued.
    fn wait_for_room(&mut self, gpu: &Gpu) -> Result<()> {
        while self.in_flight.len() >= self.cfg.max_in_flight {
            if let Some((idx, _)) = self.in_flight.pop_front() {
                gpu.wait_for_submission(idx)?;
            }
        }
        Ok(())
    }

    /// Records one optimizer step over `micro` (not submitted).
    fn record_step<'g>(
        &mut self,
        gpu: &'g Gpu,
        micro: &[Batch],
        probes: &[GradFlowProbe],
    ) -> Result<Recorder<'g>> {
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
        Ok(rec)
    }

    /// Submits a recorded step and requests its metric maps.
    fn submit_step(&mut self, gpu: &Gpu, rec: Recorder) -> Result<()> {
        let idx = match rec.submit() {
            Ok(idx) => idx,
            Err(e) => {
                self.metrics.discard_recorded();
                return Err(e);
            }
        };
        self.metrics.after_submit();
        // Fires once the queue has done everything submitted so far: this step.
        let (send, done) = oneshot::channel();
        gpu.queue.on_submitted_work_done(move || send(()));
        self.in_flight.push_back((idx, done));
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
    /// returned yet (the end of training, or a test). In a browser,
    /// [`Trainer::flush_metrics_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn flush_metrics(&mut self, gpu: &Gpu) -> Result<Vec<StepMetrics>> {
        self.submit_flush(gpu)?;
        self.metrics.wait(gpu)
    }

    /// [`Trainer::flush_metrics`] as a future, for the browser, where nothing may block.
    pub async fn flush_metrics_async(&mut self, gpu: &Gpu) -> Result<Vec<StepMetrics>> {
        self.submit_flush(gpu)?;
        self.metrics.wait_async(gpu).await
    }

    /// Submits a copy of the steps still in the ring.
    fn submit_flush(&mut self, gpu: &Gpu) -> Result<()> {
        let mut rec = Recorder::new(gpu);
        self.metrics.record_flush(gpu, &mut rec)?;
        rec.submit()?;
        self.metrics.after_submit();
        Ok(())
    }

    /// Forgets the submitted steps after a readback queued behind them has completed (queue
    /// order: they have finished).
    pub(super) fn forget_finished_steps(&mut self) {
        self.in_flight.clear();
    }

    /// Waits for every submitted step.
    pub fn wait(&mut self, gpu: &Gpu) -> Result<()> {
        self.in_flight.clear();
        gpu.wait()
    }
}
