//! `recur train` (also what `recur` with no subcommand runs): a character language model
//! trained with truncated BPTT on a text, with a progress bar, samples along the way, a
//! summary beside the corpus's unigram entropy, a checkpoint and an optional loss plot.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use recur::nn::Sampling;
use recur::train::{CharModelShape, Checkpoint, Clip, OptimizerConfig, TextTrainer, TrainConfig};
use recur::{CellKind, Gpu};

use crate::plot;

/// The default corpus: recur's own sources and shaders (see build.rs).
const CORPUS: &str = include_str!(concat!(env!("OUT_DIR"), "/corpus.txt"));

/// Arguments of `recur train`. Sizes left out get defaults that suit the adapter: small on a
/// CPU adapter (lavapipe: about two minutes), larger on a GPU.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// UTF-8 text to train on [default: recur's own source files, built into the binary].
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// The recurrent cell [default: lstm].
    #[arg(long, value_parser = ["lstm", "gru", "rnn"], conflicts_with = "resume")]
    cell: Option<String>,
    /// Hidden size [default: 128 on a CPU adapter, 512 on a GPU].
    #[arg(long, conflicts_with = "resume")]
    hidden: Option<usize>,
    /// Stacked layers [default: 1 on a CPU adapter, 2 on a GPU].
    #[arg(long, conflicts_with = "resume")]
    layers: Option<usize>,
    /// Window length of truncated BPTT, in characters [default: 32 on a CPU adapter, 64].
    #[arg(long, conflicts_with = "resume")]
    seq_len: Option<usize>,
    /// Parallel streams per step [default: 32 on a CPU adapter, 64].
    #[arg(long, conflicts_with = "resume")]
    batch: Option<usize>,
    /// Optimizer steps to run [default: 900 on a CPU adapter, 3000 on a GPU].
    #[arg(long)]
    steps: Option<usize>,
    /// Adam learning rate [default: 0.004; on --resume, the checkpoint's].
    #[arg(long)]
    lr: Option<f64>,
    /// Clip gradients to this global norm; 0 turns clipping off [on --resume, the
    /// checkpoint's].
    #[arg(long, default_value_t = 1.0, conflicts_with = "resume")]
    clip: f64,
    /// Seed of the initial weights and of the samples.
    #[arg(long, default_value_t = 0, conflicts_with = "resume")]
    seed: u64,
    /// Where to write the checkpoint at the end (atomically).
    #[arg(long, value_name = "FILE", default_value = "charlm.safetensors")]
    checkpoint: PathBuf,
    /// Continue from a checkpoint: its model, optimizer state, carried states and position.
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// Write the loss curve to FILE (.svg or .png).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Print a generated sample every N steps [default: steps / 4]; 0: only at the end.
    #[arg(long, value_name = "N")]
    sample_every: Option<usize>,
    /// Characters per sample.
    #[arg(long, default_value_t = 200)]
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

pub fn train(a: &TrainArgs) -> anyhow::Result<()> {
    if let Some(p) = &a.plot {
        plot::check_name(p)?;
    }
    if !(a.clip >= 0.0 && a.clip.is_finite()) {
        bail!("--clip must be a finite number >= 0");
    }
    let text = match &a.data {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            String::from_utf8(bytes)
                .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text ({e})", p.display()))?
        }
        None => CORPUS.to_string(),
    };
    let resume = match &a.resume {
        Some(p) => Some(Checkpoint::load(p)?),
        None => None,
    };
    let gpu = Gpu::new()?;
    let on_gpu = gpu.info.device_type != wgpu::DeviceType::Cpu;
    let pick =
        |v: Option<usize>, cpu: usize, gpu: usize| v.unwrap_or(if on_gpu { gpu } else { cpu });
    let steps = positive("steps", pick(a.steps, 900, 3000))?;
    let log_every = if on_gpu { 20 } else { 10 };
    let mut lm = match &resume {
        Some(ckpt) => {
            let mut lm = TextTrainer::resume(&gpu, &text, ckpt)?;
            if let Some(lr) = a.lr {
                lm.trainer.set_lr(lr)?;
            }
            lm
        }
        None => {
            let hidden = positive("hidden", pick(a.hidden, 128, 512))?;
            let shape = CharModelShape {
                cell: cell_of(a.cell.as_deref().unwrap_or("lstm"))?,
                embed: (hidden / 2).clamp(16, 64),
                hidden,
                layers: positive("layers", pick(a.layers, 1, 2))?,
            };
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
    let m = &lm.trainer.model.cfg.rnn;
    let source = a
        .data
        .as_ref()
        .map_or("recur's own sources (built in)".to_string(), |p| {
            p.display().to_string()
        });
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
        gpu.info.name,
        gpu.info.device_type,
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
    let first_step = lm.trainer.step_count();
    let start = Instant::now();
    let mut log: Vec<(u64, f32)> = Vec::new();
    let per_step = lm.tokens_per_step();
    let show = |pb: &ProgressBar, log: &[(u64, f32)], done: usize| {
        let tps = (done * per_step) as f64 / start.elapsed().as_secs_f64().max(1e-9);
        if let Some((_, loss)) = log.last() {
            pb.set_message(format!("loss {loss:.3} | {tps:.0} chars/s"));
        }
    };
    for i in 1..=steps {
        lm.step(&gpu)?;
        let new = lm.trainer.poll_metrics(&gpu)?;
        log.extend(new.iter().map(|m| (m.step, m.loss)));
        if let Some(bad) = new.iter().find(|m| !m.loss.is_finite()) {
            pb.abandon();
            bail!("the loss is {} at step {}: lower --lr", bad.loss, bad.step);
        }
        pb.set_position(i as u64);
        show(&pb, &log, i);
        if sample_every > 0 && i % sample_every == 0 && i < steps {
            let s = lm.generate(&gpu, &prompt, a.sample_len, &sampling)?;
            pb.suspend(|| {
                println!("--- sample at step {} ---", first_step + i as u64);
                println!("{}{}", prompt.trim_start_matches('\n'), s);
            });
        }
    }
    log.extend(
        lm.trainer
            .flush_metrics(&gpu)?
            .iter()
            .map(|m| (m.step, m.loss)),
    );
    lm.trainer.wait(&gpu)?;
    let secs = start.elapsed().as_secs_f64();
    pb.finish_and_clear();

    let tail = &log[log.len().saturating_sub(log_every)..];
    let final_loss = tail.iter().map(|p| f64::from(p.1)).sum::<f64>() / tail.len().max(1) as f64;
    let sample = lm.generate(&gpu, &prompt, a.sample_len, &sampling)?;
    println!("--- sample at the end ---");
    println!("{}{}", prompt.trim_start_matches('\n'), sample);
    println!("---");
    lm.save_checkpoint(&gpu, &a.checkpoint)?;
    let entropy = lm.unigram_entropy();
    println!(
        "steps {} (total {}) in {secs:.1} s, {:.0} characters/s on {}",
        steps,
        lm.trainer.step_count(),
        (steps * lm.tokens_per_step()) as f64 / secs,
        gpu.info.name
    );
    println!(
        "final loss {final_loss:.3} nats (mean of the last {} steps); unigram entropy of the \
         corpus {entropy:.3} nats",
        tail.len()
    );
    println!("checkpoint: {}", a.checkpoint.display());
    if let Some(p) = &a.plot {
        plot::write(p, &log, entropy)?;
        println!("loss curve: {}", p.display());
    }
    Ok(())
}
