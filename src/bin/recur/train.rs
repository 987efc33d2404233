//! `recur train` (also what `recur` with no subcommand runs): a character language model
//! trained with truncated BPTT on a text, with a progress bar, samples along the way, a
//! summary beside the corpus's unigram entropy, a checkpoint and an optional loss plot.
//!
//! Nothing is lost and nothing is silent: every flag and path is checked before the run
//! starts; a non-finite loss or gradient norm stops the run with an error and leaves the
//! checkpoint file as it was (or at the last `--save-every` save); a model holding a NaN is
//! never written; Ctrl-C saves after the step in progress; the checkpoint and the plot are
//! written together.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use recur::io::{self, CommandFiles};
use recur::nn::Sampling;
use recur::train::{
    CharModelShape, Checkpoint, Clip, OptimizerConfig, StepMetrics, TextTrainer, TrainConfig,
};
use recur::{CellKind, Error, Gpu};

use crate::interrupt::{Interrupt, Interrupted};
use crate::plot;

/// The default corpus: recur's own sources and shaders (see build.rs).
const CORPUS: &str = recur::train::text::BUILT_IN_TEXT;

/// Largest `--data` file: 256 MiB (the host keeps four bytes a character, the device more).
const MAX_TEXT_BYTES: u64 = 256 << 20;

/// Arguments of `recur train`. Sizes left out get defaults that suit the adapter: small on a
/// CPU adapter (lavapipe: under a minute on 2 cores), larger on a GPU.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// UTF-8 text to train on [default: recur's own source files, built into the binary].
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// The recurrent cell [default: lstm].
    #[arg(long, value_parser = ["lstm", "gru", "rnn"], conflicts_with = "resume")]
    cell: Option<String>,
    /// Hidden size [default: 128 on a CPU adapter, 512 on a GPU].
    #[arg(long, conflicts_with = "resume", allow_negative_numbers = true)]
    hidden: Option<usize>,
    /// Stacked layers [default: 1 on a CPU adapter, 2 on a GPU].
    #[arg(long, conflicts_with = "resume", allow_negative_numbers = true)]
    layers: Option<usize>,
    /// Window length of truncated BPTT, in characters [default: 32 on a CPU adapter, 64].
    #[arg(long, conflicts_with = "resume", allow_negative_numbers = true)]
    seq_len: Option<usize>,
    /// Parallel streams per step [default: 32 on a CPU adapter, 64].
    #[arg(long, conflicts_with = "resume", allow_negative_numbers = true)]
    batch: Option<usize>,
    /// Optimizer steps to run [default: 1000 on a CPU adapter, 3000 on a GPU].
    #[arg(long, allow_negative_numbers = true)]
    steps: Option<usize>,
    /// Adam learning rate [default: 0.004; on --resume, the checkpoint's].
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Clip gradients to this global norm; 0 turns clipping off. Not with --resume, which
    /// keeps the checkpoint's clipping.
    #[arg(
        long,
        default_value_t = 1.0,
        conflicts_with = "resume",
        allow_negative_numbers = true
    )]
    clip: f64,
    /// Seed of the initial weights and of the samples.
    #[arg(
        long,
        default_value_t = 0,
        conflicts_with = "resume",
        allow_negative_numbers = true
    )]
    seed: u64,
    /// Where to write the checkpoint (atomically) at the end, every --save-every steps and on
    /// Ctrl-C. Never a non-finite model: a run that diverges leaves it as it was.
    #[arg(long, value_name = "FILE", default_value = "charlm.safetensors")]
    checkpoint: PathBuf,
    /// Also write the checkpoint every N steps; 0: only at the end (and on Ctrl-C).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    save_every: usize,
    /// Continue from a checkpoint: its model, optimizer state, carried states and position.
    /// It may be the --checkpoint file itself (read whole before anything is written).
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// Write the loss curve to FILE (.svg or .png), together with the checkpoint.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Write every step's loss and gradient norm to FILE (CSV: step,loss,grad_norm), together
    /// with the checkpoint.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// Print a generated sample every N steps [default: steps / 4]; 0: only at the end.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    sample_every: Option<usize>,
    /// Characters per sample.
    #[arg(long, default_value_t = 200, allow_negative_numbers = true)]
    sample_len: usize,
}

fn cell_of(name: &str) -> anyhow::Result<CellKind> {
    CellKind::parse(name).ok_or_else(|| anyhow::anyhow!("unknown cell {name:?} (lstm, gru or rnn)"))
}

fn positive(name: &str, v: usize) -> anyhow::Result<usize> {
    if v == 0 {
        bail!("--{name} must be positive");
    }
    Ok(v)
}

/// Checks the flags and every path before anything is read, built or trained.
fn check_flags_and_paths(a: &TrainArgs) -> anyhow::Result<()> {
    if let Some(p) = &a.plot {
        plot::check_name(p)?;
    }
    if !(a.clip >= 0.0 && a.clip.is_finite()) {
        bail!("--clip must be a finite number >= 0");
    }
    if let Some(lr) = a.lr {
        if !(lr > 0.0 && lr.is_finite()) {
            bail!("--lr must be a finite number > 0");
        }
    }
    let mut files = CommandFiles::new();
    if let Some(p) = &a.data {
        files.input("--data", p);
    }
    if let Some(p) = &a.resume {
        files.input_replaced_by("--resume", p, "--checkpoint");
    }
    files.output("--checkpoint", &a.checkpoint);
    if let Some(p) = &a.plot {
        files.output("--plot", p);
    }
    if let Some(p) = &a.metrics {
        files.output("--metrics", p);
    }
    files.check()?;
    Ok(())
}

/// The training text: `--data` (a regular UTF-8 file of at most [`MAX_TEXT_BYTES`]) or the
/// built-in corpus.
fn read_text(data: Option<&PathBuf>) -> anyhow::Result<String> {
    let Some(p) = data else {
        return Ok(CORPUS.to_string());
    };
    let bytes = io::read_file_limited(p, MAX_TEXT_BYTES)?;
    String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{}: not UTF-8 text ({e})", p.display()))
}

/// A resumed trainer, with errors that say which file is at fault.
fn resume(gpu: &Gpu, a: &TrainArgs, text: &str, ckpt: &Checkpoint) -> anyhow::Result<TextTrainer> {
    let path = a.resume.as_deref().unwrap_or(Path::new(""));
    TextTrainer::resume(gpu, text, ckpt).map_err(|e| match (e, &a.data) {
        (Error::UnknownChar { ch, index }, None) => anyhow::anyhow!(
            "--resume {} without --data trains on recur's built-in sources, whose character \
             {ch:?} (position {index}) is not in the checkpoint's vocabulary: give --data with \
             the text it was trained on",
            path.display()
        ),
        (Error::UnknownChar { ch, index }, Some(d)) => anyhow::anyhow!(
            "--data {}: character {ch:?} at position {index} is not in the vocabulary of the \
             checkpoint {}",
            d.display(),
            path.display()
        ),
        (e, _) => e.at_path(path).into(),
    })
}

pub fn train(a: &TrainArgs) -> anyhow::Result<()> {
    check_flags_and_paths(a)?;
    let text = read_text(a.data.as_ref())?;
    let resumed = match &a.resume {
        Some(p) => Some(Checkpoint::load(p)?),
        None => None,
    };
    let gpu = Gpu::new()?;
    let on_gpu = gpu.info().device_type != wgpu::DeviceType::Cpu;
    let pick =
        |v: Option<usize>, cpu: usize, gpu: usize| v.unwrap_or(if on_gpu { gpu } else { cpu });
    let steps = positive("steps", pick(a.steps, 1000, 3000))?;
    // Samples are drawn on the device into one buffer of ids: refuse now, not after the run.
    let max_sample = gpu.max_binding_bytes() / 4;
    if a.sample_len as u64 > max_sample {
        bail!(
            "--sample-len {} is over this adapter's limit of {max_sample} characters",
            a.sample_len
        );
    }
    let log_every = if on_gpu { 20 } else { 10 };
    let mut lm = match &resumed {
        Some(ckpt) => {
            let mut lm = resume(&gpu, a, &text, ckpt)?;
            if let Some(lr) = a.lr {
                lm.trainer.set_lr(lr)?;
            }
            lm
        }
        None => {
            let hidden = positive("hidden", pick(a.hidden, 128, 512))?;
            let shape = CharModelShape::with_hidden(
                cell_of(a.cell.as_deref().unwrap_or("lstm"))?,
                hidden,
                positive("layers", pick(a.layers, 1, 2))?,
            );
            let cfg = TrainConfig {
                optimizer: OptimizerConfig::adam().with_lr(a.lr.unwrap_or(4e-3)),
                clip: if a.clip > 0.0 {
                    Clip::Norm(a.clip as f32)
                } else {
                    Clip::None
                },
                log_every,
                max_in_flight: 2,
            };
            TextTrainer::new(
                &gpu,
                &text,
                shape,
                cfg,
                positive("batch", pick(a.batch, 32, 64))?,
                positive("seq-len", pick(a.seq_len, 32, 64))?,
                a.seed,
            )?
        }
    };
    let first_step = lm.trainer.step_count();
    if first_step.checked_add(steps as u64).is_none() {
        bail!(
            "the checkpoint is at step {first_step}: {steps} more steps would overflow the step \
             counter"
        );
    }
    let m = &lm.trainer.model.cfg.rnn;
    let source = a
        .data
        .as_ref()
        .map_or("recur's own sources (built in)".to_string(), |p| {
            p.display().to_string()
        });
    // Installed before the first line is printed: from then on, Ctrl-C saves.
    let interrupt = Interrupt::install()?;
    println!(
        "training a character {} (hidden {}, {} layer{}) on {source}: {} characters, \
         vocabulary {}, {} x {} characters a step, on {} ({:?})",
        m.cell,
        m.hidden_size,
        m.num_layers,
        if m.num_layers == 1 { "" } else { "s" },
        text.chars().count(),
        lm.vocab.len(),
        lm.state().batch,
        lm.state().seq_len,
        gpu.info().name,
        gpu.info().device_type,
    );
    let prompt: String = if lm.vocab.id('\n').is_some() {
        "\n".into()
    } else {
        text.chars().take(1).collect()
    };
    let sampling = Sampling {
        temperature: 0.8,
        top_k: 0,
        seed: a.seed,
    };
    let sample_every = a.sample_every.unwrap_or((steps / 4).max(1));

    let pb = ProgressBar::new(steps as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} step {pos}/{len} {msg} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let mut run = Run {
        log: Vec::new(),
        norms: Vec::new(),
        saved_at: None,
        checkpoint: &a.checkpoint,
    };
    let per_step = lm.tokens_per_step();
    let mut done = 0;
    for i in 1..=steps {
        if interrupt.requested() {
            break;
        }
        lm.step(&gpu)?;
        done = i;
        let new = lm.trainer.poll_metrics(&gpu)?;
        run.take(&new).inspect_err(|_| pb.abandon())?;
        pb.set_position(i as u64);
        if let Some((_, loss)) = run.log.last() {
            let tps = (i * per_step) as f64 / start.elapsed().as_secs_f64().max(1e-9);
            pb.set_message(format!("loss {loss:.3} | {tps:.0} chars/s"));
        }
        if i == steps || interrupt.requested() {
            continue;
        }
        if a.save_every > 0 && i % a.save_every == 0 {
            run.save(&gpu, &mut lm, (None, None), 0.0)
                .inspect_err(|_| pb.abandon())?;
            let at = first_step.saturating_add(i as u64);
            pb.suspend(|| println!("checkpoint at step {at}: {}", a.checkpoint.display()));
        }
        if sample_every > 0 && i % sample_every == 0 {
            let s = lm.generate(&gpu, &prompt, a.sample_len, &sampling)?;
            pb.suspend(|| {
                println!(
                    "--- sample at step {} ---",
                    first_step.saturating_add(i as u64)
                );
                println!("{}{}", prompt.trim_start_matches('\n'), s);
            });
        }
    }
    let interrupted = interrupt.requested() && done < steps;
    if interrupted && done == 0 {
        pb.abandon();
        return Err(Interrupted("stopped before the first step; nothing written".into()).into());
    }
    let flushed = lm.trainer.flush_metrics(&gpu)?;
    run.take(&flushed).inspect_err(|_| pb.abandon())?;
    lm.trainer.wait(&gpu)?;
    let secs = start.elapsed().as_secs_f64();
    pb.finish_and_clear();

    let tail = &run.log[run.log.len().saturating_sub(log_every)..];
    let final_loss = tail.iter().map(|p| f64::from(p.1)).sum::<f64>() / tail.len().max(1) as f64;
    let tail_len = tail.len();
    if !interrupted {
        let sample = lm.generate(&gpu, &prompt, a.sample_len, &sampling)?;
        println!("--- sample at the end ---");
        println!("{}{}", prompt.trim_start_matches('\n'), sample);
        println!("---");
    }
    let entropy = lm.unigram_entropy();
    run.save(
        &gpu,
        &mut lm,
        (a.plot.as_deref(), a.metrics.as_deref()),
        entropy,
    )?;
    println!(
        "steps {} (total {}) in {secs:.1} s, {:.0} characters/s on {}",
        done,
        lm.trainer.step_count(),
        (done * lm.tokens_per_step()) as f64 / secs,
        gpu.info().name
    );
    println!(
        "final loss {final_loss:.3} nats (mean of the last {} steps); unigram entropy of the \
         corpus {entropy:.3} nats",
        tail_len
    );
    println!("checkpoint: {}", a.checkpoint.display());
    if let Some(p) = &a.plot {
        println!("loss curve: {}", p.display());
    }
    if let Some(p) = &a.metrics {
        println!("metrics: {}", p.display());
    }
    if interrupted {
        return Err(Interrupted(format!(
            "stopped by Ctrl-C after step {} of {steps}; {} holds step {}",
            done,
            a.checkpoint.display(),
            lm.trainer.step_count()
        ))
        .into());
    }
    Ok(())
}

/// The metrics of a run so far and what it has saved.
struct Run<'a> {
    /// (step, loss) of every step read back.
    log: Vec<(u64, f32)>,
    /// The gradient norm of each step in `log`.
    norms: Vec<f32>,
    /// The step of the last checkpoint this run wrote.
    saved_at: Option<u64>,
    checkpoint: &'a Path,
}

impl Run<'_> {
    /// Logs `metrics`; a non-finite loss or gradient norm ends the run with an error that
    /// says what became of the checkpoint.
    fn take(&mut self, metrics: &[StepMetrics]) -> anyhow::Result<()> {
        for m in metrics {
            if let Err(e) = m.check_finite() {
                bail!("{e}: lower --lr; {}", self.kept());
            }
            self.log.push((m.step, m.loss));
            self.norms.push(m.grad_norm);
        }
        Ok(())
    }

    /// `step,loss,grad_norm` and one line a step, the numbers as printed by Rust (shortest
    /// form that reads back to the same f32).
    fn csv(&self) -> String {
        let mut out = String::from("step,loss,grad_norm\n");
        for ((step, loss), norm) in self.log.iter().zip(&self.norms) {
            out.push_str(&format!("{step},{loss},{norm}\n"));
        }
        out
    }

    /// What is at the checkpoint path now that this run will not write it again.
    fn kept(&self) -> String {
        match self.saved_at {
            Some(step) => format!(
                "{} keeps step {step}, the last good checkpoint",
                self.checkpoint.display()
            ),
            None if self.checkpoint.exists() => format!(
                "{} was not written (it holds what it held before)",
                self.checkpoint.display()
            ),
            None => format!("no checkpoint was written to {}", self.checkpoint.display()),
        }
    }

    /// Waits for the steps in flight, checks their metrics, and writes the checkpoint (and
    /// the plot and the metrics CSV, if given) together. A model holding a NaN or infinity
    /// is not written.
    fn save(
        &mut self,
        gpu: &Gpu,
        lm: &mut TextTrainer,
        (plot_path, metrics_path): (Option<&Path>, Option<&Path>),
        entropy: f64,
    ) -> anyhow::Result<()> {
        let flushed = lm.trainer.flush_metrics(gpu)?;
        self.take(&flushed)?;
        let ckpt = lm.checkpoint(gpu)?;
        let path = self.checkpoint.display().to_string();
        let bytes = match ckpt.to_checked_bytes(&path) {
            Ok(b) => b,
            Err(e @ Error::NonFinite(_)) => {
                bail!("the model holds a {e}: lower --lr; {}", self.kept())
            }
            Err(e) => return Err(e.into()),
        };
        let plot_bytes = match plot_path {
            Some(p) => Some(plot::render(p, &self.log, entropy)?),
            None => None,
        };
        let csv = metrics_path.map(|_| self.csv());
        let mut files: Vec<(&Path, &[u8])> = vec![(self.checkpoint, &bytes)];
        if let (Some(p), Some(b)) = (plot_path, &plot_bytes) {
            files.push((p, b));
        }
        if let (Some(p), Some(c)) = (metrics_path, &csv) {
            files.push((p, c.as_bytes()));
        }
        io::write_all_atomic(&files)?;
        self.saved_at = Some(lm.trainer.step_count());
        Ok(())
    }
}
