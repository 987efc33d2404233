//! `shaders/sample.wgsl`: the next token drawn on the device from a row of logits, with
//! temperature, top-k and a counter-based random number (a hash of the seed and the step), so
//! that a whole generation is one submission and only the tokens are read back.

use bytemuck::{Pod, Zeroable};

use super::{u32_of, Access, KernelDesc, Shader};
use crate::error::{Error, Result};
use crate::gpu::Recorder;

/// Entry `sample_token`: bindings 1 logits, 2 cur (u32, rw), 3 tokens (u32, rw).
pub const SAMPLE_TOKEN: KernelDesc = KernelDesc {
    shader: Shader::Sample,
    entry: "sample_token",
    base: 0,
    bindings: &[
        Some(Access::Read),
        Some(Access::ReadWrite),
        Some(Access::ReadWrite),
    ],
};

/// Flag bits of [`SampleParams::flags`] (WGSL consts of the same names).
pub mod flags {
    /// Argmax (temperature 0) instead of a draw.
    pub const GREEDY: u32 = 1;
}

/// Mirror of WGSL `SampleParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SampleParams {
    /// Vocabulary V (the row's length).
    pub vocab: u32,
    /// Element offset of the row in the logits buffer.
    pub logits_off: u32,
    /// Keep the k largest logits (0 or `>= V`: all of them).
    pub top_k: u32,
    /// Element index in `tokens` that receives the token.
    pub out_index: u32,
    /// Low 32 bits of the seed.
    pub seed_lo: u32,
    /// High 32 bits of the seed.
    pub seed_hi: u32,
    /// The step (the random number's counter).
    pub step: u32,
    /// See [`flags`].
    pub flags: u32,
    /// 1 / temperature.
    pub inv_temp: f32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// How [`encode_sample_token`] draws a token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; 0 picks the largest logit (greedy).
    pub temperature: f32,
    /// Keep the k largest logits (ties at the k-th all kept); 0 keeps all.
    pub top_k: usize,
    /// Seed of the counter-based random numbers.
    pub seed: u64,
}

/// Draws a token from `logits[logits_off .. logits_off + vocab]` as `s` says, with random
/// counter `step`, and writes it to `cur[0]` and `tokens[out_index]` (both u32 buffers).
#[allow(clippy::too_many_arguments)]
pub fn encode_sample_token(
    rec: &mut Recorder,
    logits: &wgpu::Buffer,
    logits_off: usize,
    vocab: usize,
    s: &Sampling,
    step: usize,
    cur: &wgpu::Buffer,
    tokens: &wgpu::Buffer,
    out_index: usize,
) -> Result<()> {
    if vocab == 0 || !(s.temperature >= 0.0 && s.temperature.is_finite()) {
        return Err(Error::InvalidConfig(format!(
            "sampling needs a vocabulary and a finite temperature >= 0 (vocab {vocab}, \
             temperature {})",
            s.temperature
        )));
    }
    let greedy = s.temperature == 0.0;
    let bind = rec.bind(&SAMPLE_TOKEN, &[logits, cur, tokens])?;
    let p = SampleParams {
        vocab: u32_of("sample vocab", vocab)?,
        logits_off: u32_of("sample logits offset", logits_off)?,
        top_k: u32_of("sample top-k", s.top_k.min(vocab))?,
        out_index: u32_of("sample output index", out_index)?,
        seed_lo: s.seed as u32,
        seed_hi: (s.seed >> 32) as u32,
        step: u32_of("sample step", step)?,
        flags: if greedy { flags::GREEDY } else { 0 },
        inv_temp: if greedy { 0.0 } else { 1.0 / s.temperature },
        ..Default::default()
    };
    rec.dispatch(bind, &p, [1, 1, 1])
}
