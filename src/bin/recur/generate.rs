//! `recur generate`: text from a `recur train` checkpoint, sampled on the GPU.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use recur::nn::Sampling;
use recur::train::{CharLm, Checkpoint};
use recur::Gpu;

/// Arguments of `recur generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A checkpoint written by `recur train`.
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Text to start from (every character must be in the model's vocabulary)
    /// [default: a newline].
    #[arg(long)]
    prompt: Option<String>,
    /// Softmax temperature; 0 always takes the most likely character.
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    temperature: f32,
    /// Sample among the K most likely characters only; 0: all.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    top_k: usize,
    /// Characters to generate.
    #[arg(long, default_value_t = 400, allow_negative_numbers = true)]
    length: usize,
    /// Seed: the same seed gives the same text.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    seed: u64,
}

pub fn generate(a: &GenerateArgs) -> anyhow::Result<()> {
    if !(a.temperature >= 0.0 && a.temperature.is_finite()) {
        bail!("--temperature must be a finite number >= 0");
    }
    // Refused on load: a damaged file, or a model holding a NaN or infinity.
    let ckpt = Checkpoint::load(&a.checkpoint)?;
    let gpu = Gpu::new()?;
    let max_length = gpu.max_binding_bytes() / 4;
    if a.length as u64 > max_length {
        bail!(
            "--length {} is over this adapter's limit of {max_length} characters",
            a.length
        );
    }
    let lm = CharLm::from_checkpoint(&gpu, &ckpt).map_err(|e| e.at_path(&a.checkpoint))?;
    let prompt = match &a.prompt {
        Some(p) => p.clone(),
        None if lm.vocab.id('\n').is_some() => "\n".into(),
        None => lm.vocab.decode(&[0]),
    };
    let text = lm.generate(
        &gpu,
        &prompt,
        a.length,
        &Sampling {
            temperature: a.temperature,
            top_k: a.top_k,
            seed: a.seed,
        },
    )?;
    println!("{}{}", prompt.trim_start_matches('\n'), text);
    Ok(())
}
