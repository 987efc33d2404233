//! A [`Trainer`]'s checkpoints: what one holds (parameters, optimizer state, step count,
//! carried states, both configs and the mode), read back blocking or as a future, and how a
//! trainer is rebuilt or restored from one.

use std::collections::BTreeSet;
use std::path::Path;

use super::{
    ckpt_err, CarriedState, Checkpoint, TrainConfig, TrainMode, Trainer, MODEL_KEY, MODE_KEY,
    STEP_KEY, TRAIN_KEY,
};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::io::HostTensor;
use crate::nn::{SeqModel, SeqModelConfig};

/// One device tensor a checkpoint reads, and the pieces it is cut into: (name, element
/// offset, shape).
struct CheckpointRead {
    tensor: Tensor,
    pieces: Vec<(String, usize, Vec<usize>)>,
}

impl Trainer {
    /// Everything needed to resume: parameters, optimizer state, step count, carried states
    /// and both configs (reads the GPU, so it waits for submitted steps). In a browser,
    /// [`Trainer::checkpoint_async`].
    pub fn checkpoint(&mut self, gpu: &Gpu) -> Result<Checkpoint> {
        self.wait(gpu)?;
        let reads = self.checkpoint_reads();
        let values = reads
            .iter()
            .map(|r| gpu.read(&r.tensor))
            .collect::<Result<Vec<_>>>()?;
        self.checkpoint_of(&reads, values)
    }

    /// [`Trainer::checkpoint`] as a future, for the browser, where nothing may block: the
    /// reads are queued after every submitted step and resolve when they are mapped.
    pub async fn checkpoint_async(&mut self, gpu: &Gpu) -> Result<Checkpoint> {
        let reads = self.checkpoint_reads();
        let mut values = Vec::with_capacity(reads.len());
        for r in &reads {
            values.push(gpu.read_async(&r.tensor).await?);
        }
        // Queue order: every step submitted before the reads has finished.
        self.in_flight.clear();
        self.checkpoint_of(&reads, values)
    }

    /// The device tensors a checkpoint holds, each with the named pieces it is cut into.
    fn checkpoint_reads(&self) -> Vec<CheckpointRead> {
        let mut reads = Vec::new();
        let whole = |name: String, t: &Tensor| CheckpointRead {
            tensor: t.clone(),
            pieces: vec![(name, 0, t.shape.clone())],
        };
        let names = self.optimizer.config().state_names();
        for (gi, (layer, m)) in self.model.modules().into_iter().enumerate() {
            reads.push(CheckpointRead {
                tensor: m.group().params.clone(),
                pieces: m
                    .slices()
                    .iter()
                    .map(|s| {
                        (
                            format!("model.{layer}.{}", s.name),
                            s.offset,
                            s.shape.clone(),
                        )
                    })
                    .collect(),
            });
            for (name, t) in names.iter().zip(self.optimizer.state(gi)) {
                reads.push(whole(format!("optim.{layer}.{name}"), t));
            }
        }
        for (i, s) in self.tbptt.slots().iter().enumerate() {
            for (part, t) in [("h", &s.h), ("c", &s.c)] {
                if let Some(t) = t {
                    reads.push(whole(format!("tbptt.{i}.{part}"), t));
                }
            }
        }
        reads
    }

    /// The checkpoint of `values` (one per read, in order) and this trainer's metadata.
    fn checkpoint_of(&self, reads: &[CheckpointRead], values: Vec<Vec<f32>>) -> Result<Checkpoint> {
        let mut c = Checkpoint::default();
        for (r, flat) in reads.iter().zip(values) {
            for (name, offset, shape) in &r.pieces {
                let len: usize = shape.iter().product();
                let data = flat
                    .get(*offset..offset + len)
                    .ok_or_else(|| Error::Gpu(format!("{name} out of range")))?
                    .to_vec();
                c.tensors
                    .insert(name.clone(), HostTensor::new(shape.clone(), data)?);
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
        gpu.note_param_write();
        self.tbptt.set_slots(carried);
        self.optimizer.set_step_count(step);
        self.metrics.reset(step.saturating_add(1));
        gpu.wait()
    }
}
