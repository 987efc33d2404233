//! Attention, as the course tells it: a sequence-to-sequence model that looks back at the
//! source at every output step (Bahdanau et al., additive attention), beside the plain
//! encoder-decoder whose only view of the source is the encoder's last state.
//!
//! The task: dates written in words, one to three of them joined by "and" ("third of march
//! nineteen eighty-one and twenty-second of may twenty oh-five"), to ISO form
//! ("1981-03-03 2005-05-22"; years 1950 to 2049, days 1 to 28). The output is three tokens
//! a date (year, month, day: the year first, so the model must reorder), then `<end>`. The
//! source grows by six words a date.
//!
//! Both models: an embedding (16) and a GRU (hidden 64) encode the source; the decoder is a
//! GRU started from the encoder's last state, fed the previous output token, with a linear
//! layer over the 141 output tokens. The plain model runs its decoder over the whole target
//! at once (teacher forcing). The attention model runs its decoder one step at a time: at
//! step t the query `W_a s_{t-1}` scores every encoder output `h_s` by
//! `v · tanh(W_a s_{t-1} + U_a h_s)`, a softmax over s gives the weights `alpha_t`, and the
//! context `Σ_s alpha_t[s] h_s` joins the token's embedding as the GRU's input
//! (`kernels::attention`: scores, softmax and context in one dispatch). Training
//! backpropagates through the steps in reverse: each step's `Rnn::record_backward` gives
//! dh0, which with the query's gradient is the previous step's dhn; the contexts' gradients
//! reach the encoder outputs, and the last one the encoder's final state. Greedy decoding
//! runs on an `RnnStream`.
//!
//! Expect (300 steps of 64 sources, one to three dates each): with attention the loss falls
//! under 0.05 on one-date batches by step 250, and per-token accuracy stays high as the
//! source grows (about 1.0, 0.94, 0.88 for one, two, three dates; whole outputs 1.0, 0.6,
//! 0.1: three dates want more training); without attention it falls from about 0.79 to
//! 0.46 (whole outputs 0.15, then none). The printout shows the attention weights of one
//! three-date source: each month, day and year looks at its own word or the word after it
//! (the encoder runs left to right, so its state after a word still holds that word). `main` writes them as an SVG heatmap too (`translate_attention.svg`, or the
//! path given as the first argument). Measured on lavapipe (release, a shared machine):
//! tokens 1.000 / 0.943 / 0.883 with attention, 0.786 / 0.669 / 0.455 without; whole
//! outputs 1.000 / 0.602 / 0.117 and 0.152 / 0.000 / 0.000; 75 s.
//!
//!     cargo run --release --example translate_attention

use recur::kernels::attention::{
    encode_backward, encode_forward, AttentionBackward, AttentionForward, AttentionOffsets,
    AttentionShape,
};
use recur::kernels::util::{encode_copy_rows, encode_sum_rows};
use recur::nn::{record_add, Embedding, Linear, Module, ParamGroup, TokenIds};
use recur::rng::Rng;
use recur::rnn::{Rnn, Saved};
use recur::train::{record_cross_entropy, LossSink, Optimizer, OptimizerConfig};
use recur::{CellKind, Gpu, Recorder, Result, RnnConfig, RnnStream, Tensor};

#[path = "common/dates.rs"]
mod dates;
#[path = "common/attention_gradcheck.rs"]
mod gradcheck;
#[path = "common/heatmap.rs"]
mod heatmap;
use dates::{out_word, src_len, src_word, task, tgt_len, GO, MAX_DATES, OUT_VOCAB, SRC_VOCAB};
pub use gradcheck::gradient_check;

const EMBED: usize = 16;
const HIDDEN: usize = 64;
const ATT: usize = 32;
fn gru(gpu: &Gpu, input: usize, rng: &mut Rng) -> Result<Rnn> {
    let cfg = RnnConfig::new(CellKind::Gru, input, HIDDEN);
    Rnn::new(gpu, cfg.clone(), &recur::nn::init::rnn_params(&cfg, rng))
}

/// The parts both models share: source embedding and encoder, target embedding, head.
struct Common {
    src_emb: Embedding,
    enc: Rnn,
    tgt_emb: Embedding,
    head: Linear,
}

impl Common {
    fn new(gpu: &Gpu, rng: &mut Rng) -> Result<Self> {
        Ok(Common {
            src_emb: Embedding::init(gpu, SRC_VOCAB, EMBED, rng)?,
            enc: gru(gpu, EMBED, rng)?,
            tgt_emb: Embedding::init(gpu, OUT_VOCAB + 1, EMBED, rng)?,
            head: Linear::init(gpu, HIDDEN, OUT_VOCAB, true, rng)?,
        })
    }

    fn groups(&self) -> Vec<ParamGroup<'_>> {
        vec![
            self.src_emb.group(),
            self.enc.group(),
            self.tgt_emb.group(),
            self.head.group(),
        ]
    }
}

/// The plain encoder-decoder: the decoder sees the source through its initial state only.
struct Plain {
    c: Common,
    dec: Rnn,
}

/// The attention model: `U_a` on the encoder outputs (the keys), `W_a` on the decoder's
/// state (the query), the score vector `v`, and a decoder whose input is
/// `[embedding; context]`.
struct Attentive {
    c: Common,
    u_a: Linear,
    w_a: Linear,
    v: Tensor,
    v_grad: Tensor,
    dec: Rnn,
}

impl Attentive {
    fn new(gpu: &Gpu, rng: &mut Rng) -> Result<Self> {
        let bound = 1.0 / (ATT as f32).sqrt();
        Ok(Attentive {
            c: Common::new(gpu, rng)?,
            u_a: Linear::init(gpu, HIDDEN, ATT, true, rng)?,
            w_a: Linear::init(gpu, HIDDEN, ATT, false, rng)?,
            v: gpu.tensor(
                "attention.v",
                &[ATT],
                &rng.vec_uniform_f32(ATT, -bound, bound),
            )?,
            v_grad: gpu.zeros("attention.v.grad", &[ATT])?,
            dec: gru(gpu, EMBED + HIDDEN, rng)?,
        })
    }

    fn groups(&self) -> Vec<ParamGroup<'_>> {
        let mut g = self.c.groups();
        g.extend([
            self.u_a.group(),
            self.w_a.group(),
            ParamGroup {
                params: &self.v,
                grads: &self.v_grad,
            },
            self.dec.group(),
        ]);
        g
    }
}

fn shape(s_len: usize, batch: usize) -> AttentionShape {
    AttentionShape {
        s_len,
        batch,
        a_dim: ATT,
        d_dim: HIDDEN,
    }
}

/// Records one attention step for decoder state `s_prev` `(1, B, H)`: the query, then the
/// weights into `alpha` at `alpha_off` and the context into a new `(1, B, H)` tensor.
fn record_attend(
    rec: &mut Recorder,
    m: &Attentive,
    keys: &Tensor,
    values: &Tensor,
    s_prev: &Tensor,
    alpha: &Tensor,
    alpha_off: usize,
) -> Result<(Tensor, Tensor)> {
    let (s_len, batch) = (values.shape[0], values.shape[1]);
    let query = m.w_a.record_forward(rec, s_prev)?;
    let ctx = rec.gpu().zeros("attention.ctx", &[1, batch, HIDDEN])?;
    let off = AttentionOffsets {
        alpha: alpha_off,
        ..Default::default()
    };
    let bufs = AttentionForward {
        keys: &keys.buffer,
        query: &query.buffer,
        v: &m.v.buffer,
        values: &values.buffer,
        alpha: &alpha.buffer,
        ctx: &ctx.buffer,
    };
    encode_forward(rec, shape(s_len, batch), off, bufs)?;
    Ok((query, ctx))
}

/// `[emb | ctx]` `(1, B, E + H)` from rows `(B, E)` of `emb` at `emb_off` and `ctx`.
fn record_concat(rec: &mut Recorder, emb: &Tensor, emb_off: usize, ctx: &Tensor) -> Result<Tensor> {
    let batch = ctx.shape[1];
    let w = EMBED + HIDDEN;
    let x = rec.gpu().zeros("decoder.input", &[1, batch, w])?;
    encode_copy_rows(
        rec,
        &emb.buffer,
        emb_off,
        EMBED,
        &x.buffer,
        0,
        w,
        batch,
        EMBED,
    )?;
    encode_copy_rows(
        rec,
        &ctx.buffer,
        0,
        HIDDEN,
        &x.buffer,
        EMBED,
        w,
        batch,
        HIDDEN,
    )?;
    Ok(x)
}

/// What one training step of the attention decoder keeps for its backward.
struct StepSaved {
    s_prev: Tensor,
    query: Tensor,
    saved: Saved,
}

/// Records one training step of the attention model on `src` `(S, B)`, `dec_in`/`tgt`
/// `(T, B)`; the loss goes to `loss[0]`.
fn record_attentive_step(
    rec: &mut Recorder,
    m: &Attentive,
    src: &TokenIds,
    dec_in: &TokenIds,
    tgt: &TokenIds,
    loss: &Tensor,
) -> Result<()> {
    let gpu = rec.gpu();
    let (s_len, batch) = (src.shape[0], src.shape[1]);
    let t_len = dec_in.shape[0];
    let xe = m.c.src_emb.record_forward(rec, src)?;
    let (enc, enc_saved) = m.c.enc.record_train(rec, &xe, None, None)?;
    let keys = m.u_a.record_forward(rec, &enc.y)?;
    let emb = m.c.tgt_emb.record_forward(rec, dec_in)?; // (T, B, E)
    let alpha = gpu.zeros("alpha", &[t_len, s_len, batch])?;
    let ys = gpu.zeros("decoder.y", &[t_len, batch, HIDDEN])?;
    let mut s_prev = enc.hn.clone();
    let mut steps = Vec::with_capacity(t_len);
    for t in 0..t_len {
        let (query, ctx) =
            record_attend(rec, m, &keys, &enc.y, &s_prev, &alpha, t * s_len * batch)?;
        let x = record_concat(rec, &emb, t * batch * EMBED, &ctx)?;
        let (out, saved) = m.dec.record_train(rec, &x, Some(&s_prev), None)?;
        rec.copy(
            &out.y.buffer,
            0,
            &ys.buffer,
            t * batch * HIDDEN,
            batch * HIDDEN,
        );
        steps.push(StepSaved {
            s_prev,
            query,
            saved,
        });
        s_prev = out.hn;
    }
    let logits = m.c.head.record_forward(rec, &ys)?;
    let sink = LossSink {
        tensor: loss,
        offset: 0,
        accumulate: false,
    };
    let dlogits = record_cross_entropy(rec, &logits, tgt, 1.0, sink)?;
    let dys = m.c.head.record_backward(rec, &ys, &dlogits, false)?;
    // Backward through the steps in reverse. Gradients of what every step shares (the
    // decoder's and W_a's weights, the keys, the encoder outputs, v) accumulate after the
    // first (last) step.
    let demb = gpu.zeros("decoder.demb", &[t_len, batch, EMBED])?;
    let dkeys = gpu.zeros("attention.dkeys", &[s_len, batch, ATT])?;
    let dvalues = gpu.zeros("attention.dvalues", &[s_len, batch, HIDDEN])?;
    let dscores = gpu.zeros("attention.dscores", &[s_len, batch])?;
    let dv_rows = gpu.zeros("attention.dv_rows", &[batch, ATT])?;
    let mut carry: Option<Tensor> = None;
    for (t, st) in steps.iter().enumerate().rev() {
        let acc = t + 1 != t_len;
        let dy = gpu.zeros("decoder.dy", &[1, batch, HIDDEN])?;
        rec.copy(
            &dys.buffer,
            t * batch * HIDDEN,
            &dy.buffer,
            0,
            batch * HIDDEN,
        );
        let g = m
            .dec
            .record_backward(rec, &st.saved, &dy, carry.as_ref(), None, acc)?;
        let w = EMBED + HIDDEN;
        encode_copy_rows(
            rec,
            &g.dx.buffer,
            0,
            w,
            &demb.buffer,
            t * batch * EMBED,
            EMBED,
            batch,
            EMBED,
        )?;
        let dctx = gpu.zeros("attention.dctx", &[1, batch, HIDDEN])?;
        encode_copy_rows(
            rec,
            &g.dx.buffer,
            EMBED,
            w,
            &dctx.buffer,
            0,
            HIDDEN,
            batch,
            HIDDEN,
        )?;
        let dquery = gpu.zeros("attention.dquery", &[1, batch, ATT])?;
        let bufs = AttentionBackward {
            keys: &keys.buffer,
            query: &st.query.buffer,
            v: &m.v.buffer,
            values: &enc.y.buffer,
            alpha: &alpha.buffer,
            dctx: &dctx.buffer,
            dscores: &dscores.buffer,
            dvalues: &dvalues.buffer,
            dkeys: &dkeys.buffer,
            dquery: &dquery.buffer,
            dv_rows: &dv_rows.buffer,
        };
        let off = AttentionOffsets {
            alpha: t * s_len * batch,
            ..Default::default()
        };
        encode_backward(rec, shape(s_len, batch), off, acc, bufs)?;
        let ds = m.w_a.record_backward(rec, &st.s_prev, &dquery, acc)?;
        carry = Some(record_add(rec, &g.dh0, &ds)?);
    }
    m.c.tgt_emb.record_backward(rec, dec_in, &demb, false)?;
    rec.clear(&m.v_grad.buffer, 0, ATT);
    encode_sum_rows(
        rec,
        &dv_rows.buffer,
        0,
        ATT,
        batch,
        ATT,
        &m.v_grad.buffer,
        0,
    )?;
    let from_keys = m.u_a.record_backward(rec, &enc.y, &dkeys, false)?;
    let denc = record_add(rec, &dvalues, &from_keys)?;
    let ge =
        m.c.enc
            .record_backward(rec, &enc_saved, &denc, carry.as_ref(), None, false)?;
    m.c.src_emb.record_backward(rec, src, &ge.dx, false)
}

/// Records one training step of the plain model (teacher forcing over the whole target).
fn record_plain_step(
    rec: &mut Recorder,
    m: &Plain,
    src: &TokenIds,
    dec_in: &TokenIds,
    tgt: &TokenIds,
    loss: &Tensor,
) -> Result<()> {
    let xe = m.c.src_emb.record_forward(rec, src)?;
    let (enc, enc_saved) = m.c.enc.record_train(rec, &xe, None, None)?;
    let xd = m.c.tgt_emb.record_forward(rec, dec_in)?;
    let (dec, dec_saved) = m.dec.record_train(rec, &xd, Some(&enc.hn), None)?;
    let logits = m.c.head.record_forward(rec, &dec.y)?;
    let sink = LossSink {
        tensor: loss,
        offset: 1,
        accumulate: false,
    };
    let dlogits = record_cross_entropy(rec, &logits, tgt, 1.0, sink)?;
    let dy = m.c.head.record_backward(rec, &dec.y, &dlogits, false)?;
    let gd = m
        .dec
        .record_backward(rec, &dec_saved, &dy, None, None, false)?;
    m.c.tgt_emb.record_backward(rec, dec_in, &gd.dx, false)?;
    let zero = rec.gpu().zeros("enc.dy", &enc.y.shape)?; // the decoder reads hn only
    let ge =
        m.c.enc
            .record_backward(rec, &enc_saved, &zero, Some(&gd.dh0), None, false)?;
    m.c.src_emb.record_backward(rec, src, &ge.dx, false)
}

/// Exact and per-token accuracy of greedy decoding, for one number of dates.
#[derive(Clone, Copy, Debug)]
pub struct Score {
    /// Dates in each source.
    pub dates: usize,
    /// Fraction of outputs right token for token, `<end>` included.
    pub exact: f64,
    /// Fraction of the tokens right.
    pub tokens: f64,
}

/// Both models' scores for each number of dates, and one source's attention weights.
#[derive(Debug)]
pub struct Report {
    /// The plain encoder-decoder.
    pub plain: Vec<Score>,
    /// The attention model.
    pub attention: Vec<Score>,
    /// The words of one source of the most dates.
    pub source: Vec<String>,
    /// The attention model's output for it.
    pub output: Vec<String>,
    /// Its weights, one row per output token, one column per source word.
    pub weights: Vec<Vec<f32>>,
}

fn argmax(row: &[f32]) -> u32 {
    (0..row.len()).fold(0, |best, v| if row[v] > row[best] { v } else { best }) as u32
}

fn score(dates: usize, got: &[u32], want: &[u32], n: usize) -> Score {
    let t_len = tgt_len(dates);
    let exact = (0..n)
        .filter(|&b| (0..t_len).all(|t| got[t * n + b] == want[t * n + b]))
        .count();
    let right = got.iter().zip(want).filter(|(a, b)| a == b).count();
    Score {
        dates,
        exact: exact as f64 / n as f64,
        tokens: right as f64 / got.len() as f64,
    }
}

/// Greedy decoding of `src` `(S, N)` by either model, one token a submission on a stream;
/// returns the tokens `(T, N)` and, for the attention model, the weights `(T, S, N)`.
fn decode(
    gpu: &Gpu,
    common: &Common,
    attentive: Option<&Attentive>,
    plain_dec: Option<&Rnn>,
    src: &TokenIds,
    t_len: usize,
) -> Result<(Vec<u32>, Vec<f32>)> {
    let (s_len, n) = (src.shape[0], src.shape[1]);
    let mut rec = Recorder::new(gpu);
    let xe = common.src_emb.record_forward(&mut rec, src)?;
    let enc = common.enc.record_inference(&mut rec, &xe, None, None)?;
    let keys = match attentive {
        Some(m) => Some(m.u_a.record_forward(&mut rec, &enc.y)?),
        None => None,
    };
    rec.run()?;
    let dec = match (attentive, plain_dec) {
        (Some(m), _) => &m.dec,
        (None, Some(d)) => d,
        (None, None) => return Err(recur::Error::Internal("no decoder".into())),
    };
    let mut stream = RnnStream::with_state(dec, enc.hn.clone(), None)?;
    let alpha = gpu.zeros("alpha", &[t_len, s_len, n])?;
    let mut prev = vec![GO; n];
    let mut out = Vec::with_capacity(t_len * n);
    for t in 0..t_len {
        let ids = TokenIds::new(gpu, "decoder.in", &[1, n], &prev, OUT_VOCAB + 1)?;
        let mut rec = Recorder::new(gpu);
        let emb = common.tgt_emb.record_forward(&mut rec, &ids)?;
        let x = match (attentive, &keys) {
            (Some(m), Some(keys)) => {
                let off = t * s_len * n;
                let (_, ctx) = record_attend(&mut rec, m, keys, &enc.y, stream.h(), &alpha, off)?;
                record_concat(&mut rec, &emb, 0, &ctx)?
            }
            _ => emb,
        };
        let y = stream.record(&mut rec, dec, &x)?;
        let logits = common.head.record_forward(&mut rec, &y)?;
        rec.run()?;
        prev = gpu
            .read(&logits)?
            .chunks_exact(OUT_VOCAB)
            .map(argmax)
            .collect();
        out.extend_from_slice(&prev);
    }
    let weights = if attentive.is_some() {
        gpu.read(&alpha)?
    } else {
        Vec::new()
    };
    Ok((out, weights))
}

/// Trains both models for `steps` steps of 64 sources (one to `max_dates` dates, at most
/// [`MAX_DATES`], drawn a batch at a time; both see the same batches); returns their scores
/// on 256 fresh sources of each length.
pub fn run(gpu: &Gpu, steps: usize, max_dates: usize, verbose: bool) -> Result<Report> {
    if !(1..=MAX_DATES).contains(&max_dates) {
        return Err(recur::Error::InvalidConfig(format!(
            "dates per source: 1..={MAX_DATES}, got {max_dates}"
        )));
    }
    const B: usize = 64;
    let mut rng = Rng::new(41);
    let att = Attentive::new(gpu, &mut rng)?;
    let plain = Plain {
        c: Common::new(gpu, &mut rng)?,
        dec: gru(gpu, EMBED, &mut rng)?,
    };
    let plain_groups = || {
        let mut g = plain.c.groups();
        g.push(plain.dec.group());
        g
    };
    let adam = OptimizerConfig::adam().with_lr(1e-2);
    let mut opt = Optimizer::new(gpu, adam, &att.groups())?;
    let mut plain_opt = Optimizer::new(gpu, adam, &plain_groups())?;
    let loss = gpu.zeros("loss", &[2])?;
    for step in 1..=steps {
        if step == steps * 3 / 4 {
            opt.set_lr(3e-3)?; // the last quarter at a third of the rate
            plain_opt.set_lr(3e-3)?;
        }
        let k = 1 + (rng.next_u64() % max_dates as u64) as usize;
        let (s, d, t) = task(&mut rng, k, B);
        let src = TokenIds::new(gpu, "src", &[src_len(k), B], &s, SRC_VOCAB)?;
        let dec_in = TokenIds::new(gpu, "dec_in", &[tgt_len(k), B], &d, OUT_VOCAB + 1)?;
        let tgt = TokenIds::new(gpu, "tgt", &[tgt_len(k), B], &t, OUT_VOCAB)?;
        let mut rec = Recorder::new(gpu);
        record_attentive_step(&mut rec, &att, &src, &dec_in, &tgt, &loss)?;
        opt.record_step(&mut rec, &att.groups())?;
        record_plain_step(&mut rec, &plain, &src, &dec_in, &tgt, &loss)?;
        plain_opt.record_step(&mut rec, &plain_groups())?;
        rec.submit()?;
        if verbose && (step % 25 == 0 || step == 1) {
            let l = gpu.read(&loss)?;
            println!(
                "step {step:4}  ({k} dates)  loss: attention {:.4}  plain {:.4}",
                l[0], l[1]
            );
        }
    }
    const N: usize = 256;
    let mut report = Report {
        plain: Vec::new(),
        attention: Vec::new(),
        source: Vec::new(),
        output: Vec::new(),
        weights: Vec::new(),
    };
    for k in 1..=max_dates {
        let (s, _, t) = task(&mut Rng::new(500 + k as u64), k, N);
        let src = TokenIds::new(gpu, "src.test", &[src_len(k), N], &s, SRC_VOCAB)?;
        let (got, alpha) = decode(gpu, &att.c, Some(&att), None, &src, tgt_len(k))?;
        report.attention.push(score(k, &got, &t, N));
        let (got_plain, _) = decode(gpu, &plain.c, None, Some(&plain.dec), &src, tgt_len(k))?;
        report.plain.push(score(k, &got_plain, &t, N));
        if k == max_dates {
            let (s_len, t_len) = (src_len(k), tgt_len(k));
            report.source = (0..s_len).map(|i| src_word(s[i * N])).collect();
            report.output = (0..t_len).map(|i| out_word(got[i * N])).collect();
            report.weights = (0..t_len)
                .map(|i| (0..s_len).map(|j| alpha[(i * s_len + j) * N]).collect())
                .collect();
        }
    }
    Ok(report)
}

fn main() -> Result<()> {
    let gpu = Gpu::new()?;
    println!(
        "seq2seq with additive attention: dates in words to ISO form, beside a plain \
         encoder-decoder, on {}",
        gpu.info().name
    );
    let start = std::time::Instant::now();
    let r = run(&gpu, 300, MAX_DATES, true)?;
    println!("dates  source words  exact (attention / plain)  tokens (attention / plain)");
    for (a, p) in r.attention.iter().zip(&r.plain) {
        println!(
            "{:5}  {:12}  {:.3} / {:.3}              {:.3} / {:.3}",
            a.dates,
            src_len(a.dates),
            a.exact,
            p.exact,
            a.tokens,
            p.tokens
        );
    }
    println!("attention weights of one source (rows: output tokens; '#' >= 0.5, '+' >= 0.1):");
    println!("  {}", r.source.join(" "));
    for (row, out) in r.weights.iter().zip(&r.output) {
        let marks: String = row
            .iter()
            .map(|&a| {
                if a >= 0.5 {
                    '#'
                } else if a >= 0.1 {
                    '+'
                } else {
                    '.'
                }
            })
            .collect();
        println!("  {out:>6}  {marks}");
    }
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "translate_attention.svg".into());
    recur::io::files::write_all_atomic(&[(
        std::path::Path::new(&path),
        heatmap::svg(&r.source, &r.output, &r.weights).as_bytes(),
    )])?;
    println!("wrote {path}; {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
