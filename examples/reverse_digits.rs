//! Many-to-many, encoder-decoder: a seq2seq model that reverses strings of digits.
//!
//! The encoder (embedding → LSTM, hidden 48) reads 5 digits; its final (hn, cn) is the
//! decoder's (h0, c0). The decoder (its own embedding → LSTM → linear over the 10 digits)
//! is trained with teacher forcing: its inputs are a start symbol then the reversed digits,
//! shifted by one. The cross-entropy's gradient flows back through the decoder, into the
//! encoder through dh0/dc0 (`Rnn::record_backward` returns them, and takes them as the
//! encoder's dhn/dcn), and into both embeddings. Each step is one GPU submission.
//! Evaluation decodes greedily, one step at a time, from the encoder's state.
//!
//! Expect: the loss falls from ln 10 ≈ 2.3 to about 0.15 by step 100 and under 0.05 by
//! step 250, when greedy decoding of 512 fresh strings gets 0.95 or more of the digits right
//! (measured: 0.996 after 600 steps; 250 steps take about 50 s on lavapipe in release).
//!
//!     cargo run --release --example reverse_digits

use recur::nn::{Embedding, Linear, Module, TokenIds};
use recur::rng::Rng;
use recur::rnn::Rnn;
use recur::train::{record_cross_entropy, LossSink, Optimizer, OptimizerConfig};
use recur::{CellKind, Gpu, Recorder, Result, RnnConfig};

const L: usize = 5;
const DIGITS: usize = 10;
/// The decoder's start symbol.
const GO: u32 = 10;
const EMBED: usize = 16;
const HIDDEN: usize = 48;

struct Model {
    enc_emb: Embedding,
    enc: Rnn,
    dec_emb: Embedding,
    dec: Rnn,
    head: Linear,
}

impl Model {
    fn new(gpu: &Gpu, rng: &mut Rng) -> Result<Self> {
        let cfg = RnnConfig::new(CellKind::Lstm, EMBED, HIDDEN);
        let rnn =
            |rng: &mut Rng| Rnn::new(gpu, cfg.clone(), &recur::nn::init::rnn_params(&cfg, rng));
        Ok(Model {
            enc_emb: Embedding::init(gpu, DIGITS, EMBED, rng)?,
            enc: rnn(rng)?,
            dec_emb: Embedding::init(gpu, DIGITS + 1, EMBED, rng)?,
            dec: rnn(rng)?,
            head: Linear::init(gpu, HIDDEN, DIGITS, true, rng)?,
        })
    }

    fn groups(&self) -> Vec<recur::nn::ParamGroup<'_>> {
        vec![
            self.enc_emb.group(),
            self.enc.group(),
            self.dec_emb.group(),
            self.dec.group(),
            self.head.group(),
        ]
    }
}

/// `batch` digit strings `(L, batch)` time-major, the decoder inputs (GO, then the reversed
/// string shifted by one) and the targets (the reversed string).
fn task(rng: &mut Rng, batch: usize) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let src: Vec<u32> = (0..L * batch)
        .map(|_| (rng.next_u64() % DIGITS as u64) as u32)
        .collect();
    let mut tgt = vec![0u32; L * batch];
    let mut dec_in = vec![GO; L * batch];
    for b in 0..batch {
        for t in 0..L {
            tgt[t * batch + b] = src[(L - 1 - t) * batch + b];
        }
        for t in 1..L {
            dec_in[t * batch + b] = tgt[(t - 1) * batch + b];
        }
    }
    (src, dec_in, tgt)
}

/// Trains for `steps` steps of 64 strings; returns the fraction of digits right when
/// 512 fresh strings are decoded greedily.
pub fn run(gpu: &Gpu, steps: usize, verbose: bool) -> Result<f64> {
    const B: usize = 64;
    let mut rng = Rng::new(3);
    let m = Model::new(gpu, &mut rng)?;
    let mut opt = Optimizer::new(gpu, OptimizerConfig::adam().with_lr(1e-2), &m.groups())?;
    let src = TokenIds::new(gpu, "src", &[L, B], &[0; L * B], DIGITS)?;
    let dec_in = TokenIds::new(gpu, "dec_in", &[L, B], &[0; L * B], DIGITS + 1)?;
    let tgt = TokenIds::new(gpu, "tgt", &[L, B], &[0; L * B], DIGITS)?;
    let zero_dy = gpu.zeros("enc.dy", &[L, B, HIDDEN])?; // the encoder's outputs are unused
    let loss = gpu.zeros("loss", &[1])?;
    for step in 1..=steps {
        let (s, d, t) = task(&mut rng, B);
        src.write(gpu, &s)?;
        dec_in.write(gpu, &d)?;
        tgt.write(gpu, &t)?;
        let mut rec = Recorder::new(gpu);
        let xe = m.enc_emb.record_forward(&mut rec, &src)?;
        let (enc, enc_saved) = m.enc.record_train(&mut rec, &xe, None, None)?;
        let xd = m.dec_emb.record_forward(&mut rec, &dec_in)?;
        // The encoder's final state starts the decoder.
        let (dec, dec_saved) = m
            .dec
            .record_train(&mut rec, &xd, Some(&enc.hn), enc.cn.as_ref())?;
        let logits = m.head.record_forward(&mut rec, &dec.y)?;
        let sink = LossSink {
            tensor: &loss,
            offset: 0,
            accumulate: false,
        };
        let dlogits = record_cross_entropy(&mut rec, &logits, &tgt, 1.0, sink)?;
        let dy = m.head.record_backward(&mut rec, &dec.y, &dlogits, false)?;
        let gd = m
            .dec
            .record_backward(&mut rec, &dec_saved, &dy, None, None, false)?;
        m.dec_emb
            .record_backward(&mut rec, &dec_in, &gd.dx, false)?;
        // dh0/dc0 of the decoder are dhn/dcn of the encoder.
        let ge = m.enc.record_backward(
            &mut rec,
            &enc_saved,
            &zero_dy,
            Some(&gd.dh0),
            gd.dc0.as_ref(),
            false,
        )?;
        m.enc_emb.record_backward(&mut rec, &src, &ge.dx, false)?;
        opt.record_step(&mut rec, &m.groups())?;
        rec.submit()?;
        if verbose && (step % 50 == 0 || step == 1) {
            println!("step {step:4}  loss {:.4}", gpu.read(&loss)?[0]);
        }
    }
    evaluate(gpu, &m, verbose)
}

/// Greedy decoding of 512 fresh strings: the encoder runs once, then the decoder one step
/// a submission, fed its own previous choice.
fn evaluate(gpu: &Gpu, m: &Model, verbose: bool) -> Result<f64> {
    const N: usize = 512;
    let (s, _, t) = task(&mut Rng::new(1234), N);
    let src = TokenIds::new(gpu, "src.test", &[L, N], &s, DIGITS)?;
    let mut rec = Recorder::new(gpu);
    let xe = m.enc_emb.record_forward(&mut rec, &src)?;
    let enc = m.enc.record_inference(&mut rec, &xe, None, None)?;
    rec.run()?;
    let (mut h, mut c) = (enc.hn, enc.cn);
    let mut prev = vec![GO; N];
    let mut out = vec![0u32; L * N];
    for step in 0..L {
        let ids = TokenIds::new(gpu, "dec.in", &[1, N], &prev, DIGITS + 1)?;
        let mut rec = Recorder::new(gpu);
        let xd = m.dec_emb.record_forward(&mut rec, &ids)?;
        let dec = m
            .dec
            .record_inference(&mut rec, &xd, Some(&h), c.as_ref())?;
        let logits = m.head.record_forward(&mut rec, &dec.y)?;
        rec.run()?;
        let l = gpu.read(&logits)?;
        for (b, row) in l.chunks_exact(DIGITS).enumerate() {
            let best = (0..DIGITS).fold(0, |best, v| if row[v] > row[best] { v } else { best });
            prev[b] = best as u32;
            out[step * N + b] = best as u32;
        }
        h = dec.hn;
        c = dec.cn;
    }
    if verbose {
        for b in 0..3 {
            let show = |v: &[u32]| (0..L).map(|i| v[i * N + b].to_string()).collect::<String>();
            println!("  {} -> {} (expected {})", show(&s), show(&out), show(&t));
        }
    }
    let right = out.iter().zip(&t).filter(|(a, b)| a == b).count();
    Ok(right as f64 / out.len() as f64)
}

fn main() -> Result<()> {
    let gpu = Gpu::new()?;
    println!(
        "many-to-many: an LSTM encoder-decoder reverses 5-digit strings, on {}",
        gpu.info().name
    );
    let start = std::time::Instant::now();
    let acc = run(&gpu, 250, true)?;
    println!(
        "digits right when decoding 512 fresh strings greedily: {:.3} (expected >= 0.95), \
         {:.1} s",
        acc,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
