//! The pieces of a character language model that are not layers: the [`Vocab`] (characters
//! to ids and back), the corpus's [`unigram_entropy`] (the loss a model that ignores context
//! can reach, the bar a trained model must pass), and [`generate`]: sampling step by step on
//! the device (one-to-many), with the recurrent state resident and the whole generation in
//! ONE submission, so that only the chosen tokens come back.

use std::collections::HashMap;

use super::{SeqInput, SeqModel, TokenIds};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::kernels::sample::encode_sample_token;

pub use crate::kernels::sample::Sampling;

/// The distinct characters of a corpus, in a fixed order; id `i` is the `i`-th character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    chars: Vec<char>,
    index: HashMap<char, u32>,
}

impl Vocab {
    /// The distinct characters of `text`, sorted by code point.
    /// [`Error::InvalidConfig`] for an empty text.
    pub fn from_text(text: &str) -> Result<Self> {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        if chars.is_empty() {
            return Err(Error::InvalidConfig("the text is empty".into()));
        }
        Self::from_chars(chars)
    }

    /// The characters of `s` in order (what [`Vocab::as_string`] gives), which must be
    /// distinct and not empty.
    pub fn from_string(s: &str) -> Result<Self> {
        Self::from_chars(s.chars().collect())
    }

    fn from_chars(chars: Vec<char>) -> Result<Self> {
        if chars.is_empty() || u32::try_from(chars.len()).is_err() {
            return Err(Error::InvalidConfig(
                "a vocabulary needs 1 to 2^32 characters".into(),
            ));
        }
        let mut index = HashMap::with_capacity(chars.len());
        for (i, &c) in chars.iter().enumerate() {
            if index.insert(c, i as u32).is_some() {
                return Err(Error::InvalidConfig(format!(
                    "vocabulary lists {c:?} twice"
                )));
            }
        }
        Ok(Vocab { chars, index })
    }

    /// The characters in id order, as one string (how checkpoints keep the vocabulary).
    pub fn as_string(&self) -> String {
        self.chars.iter().collect()
    }

    /// Number of characters V.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether there are no characters (never: construction refuses that).
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The id of `c`, if it is in the vocabulary.
    pub fn id(&self, c: char) -> Option<u32> {
        self.index.get(&c).copied()
    }

    /// The ids of `text`; [`Error::UnknownChar`] at the first character not in the
    /// vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .enumerate()
            .map(|(index, ch)| self.id(ch).ok_or(Error::UnknownChar { ch, index }))
            .collect()
    }

    /// The text of `ids`; an id outside the vocabulary becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&i| {
                self.chars
                    .get(i as usize)
                    .copied()
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect()
    }
}

/// Entropy in nats of the id frequencies of `ids` (over a vocabulary of `vocab`): the
/// cross-entropy of the best model that ignores context, in the unit of the training loss.
pub fn unigram_entropy(ids: &[u32], vocab: usize) -> f64 {
    let mut counts = vec![0u64; vocab];
    for &i in ids {
        if let Some(c) = counts.get_mut(i as usize) {
            *c += 1;
        }
    }
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.ln()
        })
        .sum()
}

/// Generates `length` tokens after `prompt` from a token model (embedding → RNN → head over
/// the same vocabulary), on the device, in one submission (a few hundred tokens a submission
/// for long samples):
///
/// 1. the prompt runs forward as one sequence `(P, 1)` from zero states;
/// 2. the sampling kernel draws token 0 from the last row of logits into a one-id input
///    buffer and into the output list;
/// 3. each later token is one forward step `(1, 1)` from the previous step's final states,
///    reading the id the kernel wrote, then one draw (random counter = the token's index).
///
/// Nothing returns to the host until the end, when the `length` ids are read back: the state
/// and the last id stay on the device from one submission to the next. The same
/// model, prompt, sampling and seed give the same tokens on the same device.
///
/// ```
/// # fn main() -> recur::Result<()> {
/// use recur::nn::{generate, Sampling, SeqModel, SeqModelConfig, Vocab};
/// use recur::{rng::Rng, CellKind, Gpu, RnnConfig};
/// let gpu = Gpu::new()?;
/// let vocab = Vocab::from_text("hello world")?;
/// let v = vocab.len();
/// let cfg = SeqModelConfig::new(Some(v), RnnConfig::new(CellKind::Lstm, 4, 8), v);
/// let model = SeqModel::init(&gpu, cfg, &mut Rng::new(0))?; // untrained: noise
/// let sampling = Sampling { temperature: 0.8, top_k: 0, seed: 1 };
/// let ids = generate(&gpu, &model, &vocab.encode("hel")?, 12, &sampling)?;
/// assert_eq!(ids.len(), 12);
/// println!("{}", vocab.decode(&ids));
/// # Ok(())
/// # }
/// ```
pub fn generate(
    gpu: &Gpu,
    model: &SeqModel,
    prompt: &[u32],
    length: usize,
    sampling: &Sampling,
) -> Result<Vec<u32>> {
    let Some(tokens) = record_and_submit(gpu, model, prompt, length, sampling)? else {
        return Ok(Vec::new());
    };
    Ok(gpu.read(&tokens)?.into_iter().map(f32::to_bits).collect())
}

/// [`generate`] for the browser, where nothing may block: the same submissions, and the
/// tokens come back through [`Gpu::read_async`].
pub async fn generate_async(
    gpu: &Gpu,
    model: &SeqModel,
    prompt: &[u32],
    length: usize,
    sampling: &Sampling,
) -> Result<Vec<u32>> {
    let Some(tokens) = record_and_submit(gpu, model, prompt, length, sampling)? else {
        return Ok(Vec::new());
    };
    Ok(gpu
        .read_async(&tokens)
        .await?
        .into_iter()
        .map(f32::to_bits)
        .collect())
}

/// Dispatches a submission may hold before the next token starts a new one: each token
/// allocates a few small buffers that live until its submission completes, so a long sample
/// is cut into submissions of a few hundred tokens to keep memory bounded. Short samples
/// (the usual case) stay one submission.
const DISPATCHES_PER_SUBMISSION: usize = 4096;

/// The device-side state of a generation between tokens.
struct GenState {
    vocab: usize,
    /// The one-id input of every step after the prompt; the sampling kernel overwrites it.
    cur: TokenIds,
    /// The generated ids (u32 bits in an f32-typed buffer: copied, never converted).
    tokens: Tensor,
    h: Tensor,
    c: Option<Tensor>,
    /// The next token to draw.
    next: usize,
}

/// Records and submits the whole generation; the tokens buffer, or `None` for `length` 0.
fn record_and_submit(
    gpu: &Gpu,
    model: &SeqModel,
    prompt: &[u32],
    length: usize,
    sampling: &Sampling,
) -> Result<Option<Tensor>> {
    let mut rec = Recorder::new(gpu);
    let Some(mut st) = record_prompt(&mut rec, gpu, model, prompt, length, sampling)? else {
        return Ok(None);
    };
    while st.next < length {
        if rec.dispatch_count() >= DISPATCHES_PER_SUBMISSION {
            rec.submit()?;
            rec = Recorder::new(gpu);
        }
        record_token(&mut rec, model, &mut st, sampling)?;
    }
    rec.submit()?;
    Ok(Some(st.tokens))
}

/// Records the prompt's forward pass and the draw of token 0; `None` when there is nothing
/// to generate.
fn record_prompt(
    rec: &mut Recorder,
    gpu: &Gpu,
    model: &SeqModel,
    prompt: &[u32],
    length: usize,
    sampling: &Sampling,
) -> Result<Option<GenState>> {
    let vocab = match model.cfg.vocab {
        Some(v) if v == model.cfg.out_features => v,
        _ => {
            return Err(Error::InvalidConfig(
                "generation needs a token model whose head scores its own vocabulary".into(),
            ))
        }
    };
    if model.cfg.rnn.bidirectional {
        return Err(Error::InvalidConfig(
            "a bidirectional model cannot generate left to right".into(),
        ));
    }
    if prompt.is_empty() {
        return Err(Error::InvalidConfig(
            "generation needs a prompt of at least one token".into(),
        ));
    }
    if length == 0 {
        return Ok(None);
    }
    let ids = TokenIds::new(gpu, "generate.prompt", &[prompt.len(), 1], prompt, vocab)?;
    let cur = TokenIds::new(gpu, "generate.cur", &[1, 1], &[0], vocab)?;
    let tokens = gpu.zeros("generate.tokens", &[length])?;
    let out = model.record_inference(rec, SeqInput::Tokens(&ids), None, None)?;
    rec.phase("sample");
    encode_sample_token(
        rec,
        &out.out.buffer,
        (prompt.len() - 1) * vocab,
        vocab,
        sampling,
        0,
        &cur.buffer,
        &tokens.buffer,
        0,
    )?;
    Ok(Some(GenState {
        vocab,
        cur,
        tokens,
        h: out.hn,
        c: out.cn,
        next: 1,
    }))
}

/// Records one step from the previous token (read on the device) and the draw of the next.
fn record_token(
    rec: &mut Recorder,
    model: &SeqModel,
    st: &mut GenState,
    sampling: &Sampling,
) -> Result<()> {
    let o = model.record_inference(rec, SeqInput::Tokens(&st.cur), Some(&st.h), st.c.as_ref())?;
    rec.phase("sample");
    encode_sample_token(
        rec,
        &o.out.buffer,
        0,
        st.vocab,
        sampling,
        st.next,
        &st.cur.buffer,
        &st.tokens.buffer,
        st.next,
    )?;
    st.h = o.hn;
    st.c = o.cn;
    st.next += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_round_trips_and_reports_unknown_chars() {
        let v = Vocab::from_text("hello, wörld").unwrap();
        assert_eq!(v.as_string(), " ,dehlorw\u{f6}");
        assert_eq!(Vocab::from_string(&v.as_string()).unwrap(), v);
        let ids = v.encode("world").unwrap();
        assert_eq!(v.decode(&ids), "world");
        assert!(matches!(
            v.encode("hex"),
            Err(Error::UnknownChar { ch: 'x', index: 2 })
        ));
        assert!(Vocab::from_text("").is_err());
        assert!(Vocab::from_string("aba").is_err());
        assert_eq!(v.decode(&[999]), "\u{fffd}");
    }

    #[test]
    fn unigram_entropy_in_nats() {
        assert!((unigram_entropy(&[0, 1, 0, 1], 2) - std::f64::consts::LN_2).abs() < 1e-12);
        assert_eq!(unigram_entropy(&[3, 3, 3], 4), 0.0);
        assert_eq!(unigram_entropy(&[], 4), 0.0);
    }
}
