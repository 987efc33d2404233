//! Training a character language model on a text: the corpus becomes B parallel streams
//! ([`TokenStream`]), cut into windows of `seq_len` steps trained one after another with
//! truncated BPTT (the state carries across windows, and is reset when the streams wrap
//! round for the next epoch). [`TextTrainer`] feeds the windows to a [`Trainer`];
//! [`CharLm`] is the trained model with its vocabulary, loaded from a checkpoint, for
//! [`generate`].
//!
//! Checkpoints are [`Trainer`]'s, with two more metadata keys: [`VOCAB_KEY`] (the characters
//! in id order) and [`TEXT_KEY`] (batch, window length and the position in the stream, as
//! JSON), so that a resumed run continues with the window that comes next.

use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checkpoint::Checkpoint;
use super::loss::Targets;
use super::tbptt::TokenStream;
use super::trainer::{ckpt_err, Batch, TrainConfig, Trainer};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::charlm::{generate, unigram_entropy, Sampling, Vocab};
use crate::nn::{SeqInput, SeqModel, SeqModelConfig, TokenIds};
use crate::rng::Rng;
use crate::rnn::{CellKind, GradientFlow, RnnConfig};

/// Metadata key of the vocabulary (its characters in id order).
pub const VOCAB_KEY: &str = "lm.vocab";
/// Metadata key of the stream position ([`TextState`] as JSON).
pub const TEXT_KEY: &str = "lm.text";

/// The built-in corpus: recur's own Rust sources and WGSL shaders, concatenated in path order
/// by the build script (what `recur train` and the browser demo train on by default).
pub const BUILT_IN_TEXT: &str = include_str!(concat!(env!("OUT_DIR"), "/corpus.txt"));

/// The shape of a character language model: `Embedding(V, embed) → cell stack → Linear(V)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CharModelShape {
    /// The recurrent cell.
    pub cell: CellKind,
    /// Embedding width (the RNN's input size).
    pub embed: usize,
    /// Hidden size H.
    pub hidden: usize,
    /// Stacked layers.
    pub layers: usize,
}

impl CharModelShape {
    /// `layers` of `cell` with hidden size `hidden` and the embedding width `recur train`
    /// gives them: half the hidden size, kept within 16 to 64.
    pub fn with_hidden(cell: CellKind, hidden: usize, layers: usize) -> Self {
        CharModelShape {
            cell,
            embed: (hidden / 2).clamp(16, 64),
            hidden,
            layers,
        }
    }

    /// The [`SeqModelConfig`] for a vocabulary of `vocab` characters.
    pub fn config(&self, vocab: usize) -> SeqModelConfig {
        SeqModelConfig {
            vocab: Some(vocab),
            rnn: RnnConfig::new(self.cell, self.embed, self.hidden).layers(self.layers),
            out_features: vocab,
            readout: crate::nn::Readout::EveryStep,
        }
    }
}

/// Where a [`TextTrainer`] is in its corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextState {
    /// Parallel streams B.
    pub batch: usize,
    /// Window length (TBPTT steps) K.
    pub seq_len: usize,
    /// Index of the next window.
    pub next_window: usize,
    /// Completed passes over the corpus.
    pub epoch: u64,
}

/// A trained character model and its vocabulary.
#[derive(Debug)]
pub struct CharLm {
    /// The model.
    pub model: SeqModel,
    /// Its characters.
    pub vocab: Vocab,
}

/// The vocabulary kept in a checkpoint's metadata.
pub fn vocab_of(ckpt: &Checkpoint) -> Result<Vocab> {
    let s = ckpt.metadata.get(VOCAB_KEY).ok_or_else(|| {
        ckpt_err(format!(
            "metadata {VOCAB_KEY:?} is missing: not a character model"
        ))
    })?;
    Vocab::from_string(s)
}

/// A checkpoint-content error unless the model reads and scores exactly the characters of
/// `vocab`.
fn check_vocab(cfg: &SeqModelConfig, vocab: &Vocab) -> Result<()> {
    match cfg.vocab {
        Some(n) if n == vocab.len() => Ok(()),
        Some(n) => Err(ckpt_err(format!(
            "the model reads {n} token ids, but metadata {VOCAB_KEY:?} holds {} characters",
            vocab.len()
        ))),
        None => Err(ckpt_err(format!(
            "the model reads feature vectors, not the {} characters of {VOCAB_KEY:?}",
            vocab.len()
        ))),
    }
}

impl CharLm {
    /// The model and vocabulary of a [`TextTrainer`] checkpoint.
    pub fn from_checkpoint(gpu: &Gpu, ckpt: &Checkpoint) -> Result<Self> {
        let vocab = vocab_of(ckpt)?;
        let model = Trainer::from_checkpoint(gpu, ckpt)?.model;
        check_vocab(&model.cfg, &vocab)?;
        Ok(CharLm { model, vocab })
    }

    /// `length` characters sampled after `prompt` (see [`generate`]);
    /// [`Error::UnknownChar`] when the prompt has a character the model does not know.
    pub fn generate(
        &self,
        gpu: &Gpu,
        prompt: &str,
        length: usize,
        sampling: &Sampling,
    ) -> Result<String> {
        sample_text(gpu, &self.model, &self.vocab, prompt, length, sampling)
    }
}

impl CharLm {
    /// [`CharLm::generate`] for the browser (see [`crate::nn::charlm::generate_async`]).
    pub async fn generate_async(
        &self,
        gpu: &Gpu,
        prompt: &str,
        length: usize,
        sampling: &Sampling,
    ) -> Result<String> {
        let ids = self.vocab.encode(prompt)?;
        let out =
            crate::nn::charlm::generate_async(gpu, &self.model, &ids, length, sampling).await?;
        Ok(self.vocab.decode(&out))
    }
}

/// The flow of a step's only micro-batch.
fn one_flow(flows: Vec<GradientFlow>) -> Result<GradientFlow> {
    flows
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal("a probed step returned no gradient flow".into()))
}

fn sample_text(
    gpu: &Gpu,
    model: &SeqModel,
    vocab: &Vocab,
    prompt: &str,
    length: usize,
    sampling: &Sampling,
) -> Result<String> {
    let ids = vocab.encode(prompt)?;
    Ok(vocab.decode(&generate(gpu, model, &ids, length, sampling)?))
}

/// A [`Trainer`] fed window after window from a text; see the module documentation.
#[derive(Debug)]
pub struct TextTrainer {
    /// The trainer (model, optimizer, carried states, metrics).
    pub trainer: Trainer,
    /// The corpus's characters.
    pub vocab: Vocab,
    state: TextState,
    stream: TokenStream,
    windows: Vec<Range<usize>>,
    entropy: f64,
    x: TokenIds,
    y: TokenIds,
}

impl TextTrainer {
    /// A fresh model of `shape` over the characters of `text`, initialised from `seed`.
    pub fn new(
        gpu: &Gpu,
        text: &str,
        shape: CharModelShape,
        train: TrainConfig,
        batch: usize,
        seq_len: usize,
        seed: u64,
    ) -> Result<Self> {
        let vocab = Vocab::from_text(text)?;
        let tokens = vocab.encode(text)?;
        let model = SeqModel::init(gpu, shape.config(vocab.len()), &mut Rng::new(seed))?;
        let trainer = Trainer::new(gpu, model, train, super::TrainMode::Stateful)?;
        let state = TextState {
            batch,
            seq_len,
            next_window: 0,
            epoch: 0,
        };
        Self::assemble(gpu, trainer, vocab, &tokens, state)
    }

    /// Continues a [`TextTrainer::checkpoint`] on `text`, whose characters must all be in the
    /// checkpoint's vocabulary. Model, optimizer, carried states, step count, batch, window
    /// length and stream position come from the checkpoint (on another text, the position
    /// starts over when it is past the end).
    pub fn resume(gpu: &Gpu, text: &str, ckpt: &Checkpoint) -> Result<Self> {
        let vocab = vocab_of(ckpt)?;
        let tokens = vocab.encode(text)?;
        let state: TextState = ckpt
            .metadata
            .get(TEXT_KEY)
            .ok_or_else(|| ckpt_err(format!("metadata {TEXT_KEY:?} is missing")))
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| ckpt_err(format!("metadata {TEXT_KEY:?}: {e}")))
            })?;
        let trainer = Trainer::from_checkpoint(gpu, ckpt)?;
        check_vocab(&trainer.model.cfg, &vocab)?;
        Self::assemble(gpu, trainer, vocab, &tokens, state)
    }

    fn assemble(
        gpu: &Gpu,
        mut trainer: Trainer,
        vocab: Vocab,
        tokens: &[u32],
        mut state: TextState,
    ) -> Result<Self> {
        let (b, k) = (state.batch, state.seq_len);
        if b == 0 || k == 0 {
            return Err(Error::InvalidConfig(
                "batch and sequence length must be positive".into(),
            ));
        }
        let stream = TokenStream::batchify(tokens, b, vocab.len())?;
        // Full windows only: every step has the same shape, so two id buffers serve them all.
        let windows: Vec<Range<usize>> = stream
            .windows(k)?
            .into_iter()
            .filter(|r| r.len() == k)
            .collect();
        if windows.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "a text of {} characters in {b} streams is too short for windows of {k} \
                 (it needs at least {})",
                tokens.len(),
                b.saturating_mul(k.saturating_add(1))
            )));
        }
        if state.next_window >= windows.len() {
            state.next_window = 0;
            trainer.reset_state();
        }
        let first = &windows[0];
        let x = TokenIds::new(gpu, "lm.x", &[k, b], stream.inputs(first)?, vocab.len())?;
        let y = TokenIds::new(gpu, "lm.y", &[k, b], stream.targets(first)?, vocab.len())?;
        Ok(TextTrainer {
            trainer,
            entropy: unigram_entropy(tokens, vocab.len()),
            vocab,
            state,
            stream,
            windows,
            x,
            y,
        })
    }

    /// Records and submits one optimizer step on the next window (without waiting for the
    /// GPU); after the last window, the streams start over with zero states.
    pub fn step(&mut self, gpu: &Gpu) -> Result<()> {
        self.write_window(gpu)?;
        self.trainer.step(gpu, &[window(&self.x, &self.y)])?;
        self.advance();
        Ok(())
    }

    /// [`TextTrainer::step`] for the browser, where nothing may block (see
    /// [`Trainer::step_async`]).
    pub async fn step_async(&mut self, gpu: &Gpu) -> Result<()> {
        self.write_window(gpu)?;
        self.trainer
            .step_async(gpu, &[window(&self.x, &self.y)])
            .await?;
        self.advance();
        Ok(())
    }

    /// [`TextTrainer::step`] that also measures the gradient flow over the window:
    /// `‖∂L/∂h_t‖` for t = 1..`seq_len`, every layer (see
    /// [`Trainer::step_with_gradient_flow`]; waits for the step). In a browser,
    /// [`TextTrainer::step_with_gradient_flow_async`].
    pub fn step_with_gradient_flow(&mut self, gpu: &Gpu) -> Result<GradientFlow> {
        self.write_window(gpu)?;
        let flows = self
            .trainer
            .step_with_gradient_flow(gpu, &[window(&self.x, &self.y)])?;
        self.advance();
        one_flow(flows)
    }

    /// [`TextTrainer::step_async`] that also measures the gradient flow over the window (see
    /// [`Trainer::step_with_gradient_flow_async`]): the same training as a plain step, and
    /// the norms read back through `map_async`, so only this step waits for the GPU.
    pub async fn step_with_gradient_flow_async(&mut self, gpu: &Gpu) -> Result<GradientFlow> {
        self.write_window(gpu)?;
        let flows = self
            .trainer
            .step_with_gradient_flow_async(gpu, &[window(&self.x, &self.y)])
            .await?;
        self.advance();
        one_flow(flows)
    }

    /// Queues the next window's inputs and targets: after the step still running, before
    /// the one about to be submitted.
    fn write_window(&mut self, gpu: &Gpu) -> Result<()> {
        let r = &self.windows[self.state.next_window];
        self.x.write(gpu, self.stream.inputs(r)?)?;
        self.y.write(gpu, self.stream.targets(r)?)
    }

    /// Moves to the next window; after the last, a new epoch from zero states.
    fn advance(&mut self) {
        self.state.next_window += 1;
        if self.state.next_window == self.windows.len() {
            self.state.next_window = 0;
            self.state.epoch = self.state.epoch.saturating_add(1);
            self.trainer.reset_state();
        }
    }

    /// Where the trainer is in the corpus.
    pub fn state(&self) -> TextState {
        self.state
    }

    /// Characters trained on per step (`batch * seq_len`).
    pub fn tokens_per_step(&self) -> usize {
        self.state.batch * self.state.seq_len
    }

    /// Steps in one pass over the corpus.
    pub fn steps_per_epoch(&self) -> usize {
        self.windows.len()
    }

    /// The unigram entropy of the corpus in nats: the loss to beat.
    pub fn unigram_entropy(&self) -> f64 {
        self.entropy
    }

    /// `length` characters sampled after `prompt` from the model as trained so far.
    pub fn generate(
        &self,
        gpu: &Gpu,
        prompt: &str,
        length: usize,
        sampling: &Sampling,
    ) -> Result<String> {
        sample_text(
            gpu,
            &self.trainer.model,
            &self.vocab,
            prompt,
            length,
            sampling,
        )
    }

    /// [`TextTrainer::generate`] for the browser (see [`crate::nn::charlm::generate_async`]).
    pub async fn generate_async(
        &self,
        gpu: &Gpu,
        prompt: &str,
        length: usize,
        sampling: &Sampling,
    ) -> Result<String> {
        let ids = self.vocab.encode(prompt)?;
        let out =
            crate::nn::charlm::generate_async(gpu, &self.trainer.model, &ids, length, sampling)
                .await?;
        Ok(self.vocab.decode(&out))
    }

    /// The trainer's checkpoint with the vocabulary and stream position.
    pub fn checkpoint(&mut self, gpu: &Gpu) -> Result<Checkpoint> {
        let c = self.trainer.checkpoint(gpu)?;
        self.with_text_metadata(c)
    }

    /// [`TextTrainer::checkpoint`] as a future, for the browser: the same file.
    pub async fn checkpoint_async(&mut self, gpu: &Gpu) -> Result<Checkpoint> {
        let c = self.trainer.checkpoint_async(gpu).await?;
        self.with_text_metadata(c)
    }

    fn with_text_metadata(&self, mut c: Checkpoint) -> Result<Checkpoint> {
        c.metadata.insert(VOCAB_KEY.into(), self.vocab.as_string());
        c.metadata.insert(
            TEXT_KEY.into(),
            serde_json::to_string(&self.state).map_err(|e| Error::InvalidConfig(e.to_string()))?,
        );
        Ok(c)
    }

    /// Writes [`TextTrainer::checkpoint`] to `path` atomically.
    pub fn save_checkpoint(&mut self, gpu: &Gpu, path: &Path) -> Result<()> {
        self.checkpoint(gpu)?.save(path)
    }
}

/// A window's inputs and targets as the trainer's one micro-batch.
fn window<'a>(x: &'a TokenIds, y: &'a TokenIds) -> Batch<'a> {
    Batch {
        input: SeqInput::Tokens(x),
        targets: Targets::Tokens(y),
    }
}
