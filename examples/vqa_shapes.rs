//! Visual question answering, as the course tells it: visual features + an RNN-encoded
//! question → a classifier over answers.
//!
//! The scenes are those of `caption_shapes` (`common/scenes.rs`: one to three coloured
//! shapes in the thirds of a 32×32 image). The questions: "what colour is the circle ?"
//! (asked when there is exactly one), "what shape is the red one ?" (likewise), "what colour
//! is the leftmost shape ?", "how many shapes are there ?", "is there a square ?" and "is
//! there a green triangle ?" (yes and no equally often). The 11 answers: three colours,
//! three shapes, one/two/three, yes/no.
//!
//! An LSTM (embedding 16, hidden 64) reads the question up to its length
//! (`Rnn::record_train_packed`); a small MLP (3072 → 128, tanh) codes the pixels; the two
//! are fused as the product `tanh(W_q hn + b_q) ⊙ tanh(W_i code + b_i)` (`Linear`,
//! `nn::Tanh`, `nn::record_mul` and its backward), and a linear layer over the fusion gives
//! the answer's logits. Beside it a question-only baseline (the same LSTM, then Linear →
//! Tanh → Linear, no image) trains on the same batches: it learns the answers' priors per
//! question and can do no better.
//!
//! Expect, on 1024 questions about scenes whose contents were held out of training, after
//! 800 steps of 64 questions: 0.75 or more right with the image, about 0.37 from the
//! question alone. Colours and counts are answered almost perfectly; shapes are the hard
//! part (one answer a question is little signal to learn them from; `caption_shapes`, with
//! two shape words a caption, learns them better). Measured on lavapipe (release, a shared
//! machine): 0.820 with the image, 0.366 question only; per kind 0.809 / 0.236 (colour of a
//! shape), 0.475 / 0.248 (shape of a colour), 1.000 / 0.269 (leftmost colour), 1.000 / 0.343
//! (count), 0.702 / 0.601 (is there a shape), 0.849 / 0.467 (is there a coloured shape);
//! 63 to 75 s.
//!
//!     cargo run --release --example vqa_shapes

#[path = "common/scenes.rs"]
#[allow(dead_code)] // each example uses part of it
mod scenes;

use recur::nn::{
    record_mul, record_mul_backward, Embedding, Linear, Module, ParamGroup, Tanh, TokenIds,
};
use recur::rng::Rng;
use recur::rnn::Rnn;
use recur::train::{record_cross_entropy, LossSink, Optimizer, OptimizerConfig};
use recur::{CellKind, Gpu, Recorder, Result, RnnConfig, Tensor};
use scenes::{images, Scene, COLOURS, PIXELS, SHAPES};

/// Question words; id 0 pads rows past their length. Colours and shapes are in
/// [`COLOURS`] / [`SHAPES`] order.
const WORDS: [&str; 21] = [
    "<pad>", "what", "colour", "is", "the", "shape", "one", "how", "many", "shapes", "are",
    "there", "a", "leftmost", "?", "red", "green", "blue", "square", "circle", "triangle",
];
const V: usize = WORDS.len();
const FIRST_COLOUR_WORD: u32 = 15;
const FIRST_SHAPE_WORD: u32 = FIRST_COLOUR_WORD + COLOURS.len() as u32;
/// The answers: colours, shapes, counts, yes/no.
const ANSWERS: [&str; 11] = [
    "red", "green", "blue", "square", "circle", "triangle", "one", "two", "three", "yes", "no",
];
const N_ANSWERS: usize = ANSWERS.len();
const FIRST_SHAPE_ANSWER: u32 = COLOURS.len() as u32;
const FIRST_COUNT_ANSWER: u32 = FIRST_SHAPE_ANSWER + SHAPES.len() as u32;
const YES: u32 = FIRST_COUNT_ANSWER + 3;
const NO: u32 = YES + 1;
/// The longest question: "what shape is the red one ?".
const T: usize = 7;
const EMBED: usize = 16;
const HIDDEN: usize = 64;
const CODE: usize = 128;
const FUSED: usize = 128;

/// The kinds of question, for the per-kind accuracies.
const KINDS: [&str; 6] = [
    "what colour is the <shape> ?",
    "what shape is the <colour> one ?",
    "what colour is the leftmost shape ?",
    "how many shapes are there ?",
    "is there a <shape> ?",
    "is there a <colour> <shape> ?",
];

fn pick(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// A question about `scene`: its words, its answer and its kind (index into [`KINDS`]).
/// The kind is drawn first, uniformly, then yes or no equally; questions that would have no
/// single answer ("what colour is the circle ?" with two circles, or none) are drawn again
/// within the kind (the kind again when the scene allows none).
fn question(rng: &mut Rng, scene: &Scene) -> (Vec<u32>, u32, usize) {
    let objs = scene.objects();
    let colour_word = |c: usize| FIRST_COLOUR_WORD + c as u32;
    let shape_word = |s: usize| FIRST_SHAPE_WORD + s as u32;
    let yes_no = |yes: bool| if yes { YES } else { NO };
    let count = |f: &dyn Fn(&scenes::Object) -> bool| objs.iter().filter(|o| f(o)).count();
    loop {
        let kind = pick(rng, KINDS.len());
        let yes = rng.next_u64().is_multiple_of(2);
        // The candidates of this kind, then one of them at random.
        let mut asks: Vec<(Vec<u32>, u32)> = Vec::new();
        match kind {
            0 => {
                for o in &objs {
                    if count(&|p| p.shape == o.shape) == 1 {
                        asks.push((vec![1, 2, 3, 4, shape_word(o.shape), 14], o.colour as u32));
                    }
                }
            }
            1 => {
                for o in &objs {
                    if count(&|p| p.colour == o.colour) == 1 {
                        let answer = FIRST_SHAPE_ANSWER + o.shape as u32;
                        asks.push((vec![1, 5, 3, 4, colour_word(o.colour), 6, 14], answer));
                    }
                }
            }
            2 => asks.push((vec![1, 2, 3, 4, 13, 5, 14], objs[0].colour as u32)),
            3 => asks.push((
                vec![7, 8, 9, 10, 11, 14],
                FIRST_COUNT_ANSWER + objs.len() as u32 - 1,
            )),
            4 => {
                for s in 0..SHAPES.len() {
                    if (count(&|p| p.shape == s) > 0) == yes {
                        asks.push((vec![3, 11, 12, shape_word(s), 14], yes_no(yes)));
                    }
                }
            }
            _ => {
                for c in 0..COLOURS.len() {
                    for s in 0..SHAPES.len() {
                        if (count(&|p| p.colour == c && p.shape == s) > 0) == yes {
                            let words = vec![3, 11, 12, colour_word(c), shape_word(s), 14];
                            asks.push((words, yes_no(yes)));
                        }
                    }
                }
            }
        }
        if !asks.is_empty() {
            let (words, answer) = asks.swap_remove(pick(rng, asks.len()));
            return (words, answer, kind);
        }
    }
}

/// A batch: scenes, padded question ids `(T, B)` time-major, lengths, answers, kinds.
struct Batch {
    scenes: Vec<Scene>,
    ids: Vec<u32>,
    lengths: Vec<usize>,
    answers: Vec<u32>,
    kinds: Vec<usize>,
}

fn batch(rng: &mut Rng, n: usize, held_out: bool) -> Batch {
    let mut b = Batch {
        scenes: Vec::with_capacity(n),
        ids: vec![0; T * n],
        lengths: Vec::with_capacity(n),
        answers: Vec::with_capacity(n),
        kinds: Vec::with_capacity(n),
    };
    for r in 0..n {
        let scene = Scene::random(rng, held_out);
        let (words, answer, kind) = question(rng, &scene);
        for (t, &w) in words.iter().enumerate() {
            b.ids[t * n + r] = w;
        }
        b.lengths.push(words.len());
        b.answers.push(answer);
        b.kinds.push(kind);
        b.scenes.push(scene);
    }
    b
}

/// Embedding → LSTM over the question words, read at each row's last word.
struct QuestionEncoder {
    emb: Embedding,
    lstm: Rnn,
}

impl QuestionEncoder {
    fn new(gpu: &Gpu, rng: &mut Rng) -> Result<Self> {
        let cfg = RnnConfig::new(CellKind::Lstm, EMBED, HIDDEN);
        Ok(QuestionEncoder {
            emb: Embedding::init(gpu, V, EMBED, rng)?,
            lstm: Rnn::new(gpu, cfg.clone(), &recur::nn::init::rnn_params(&cfg, rng))?,
        })
    }
}

/// The question encoder, the image MLP, the fusion and the answer layer.
struct Vqa {
    q: QuestionEncoder,
    enc: Linear,
    from_q: Linear,
    from_img: Linear,
    answer: Linear,
}

/// What [`Vqa::head`] computes.
struct Fused {
    q: Tensor,
    i: Tensor,
    fused: Tensor,
    logits: Tensor,
}

/// The question encoder, then Linear → Tanh → Linear: no image.
struct QuestionOnly {
    q: QuestionEncoder,
    hidden: Linear,
    answer: Linear,
}

impl Vqa {
    /// The image code `tanh(enc(img))`.
    fn code(&self, rec: &mut Recorder, img: &Tensor) -> Result<Tensor> {
        let z = self.enc.record_forward(rec, img)?;
        Tanh.record_forward(rec, &z)
    }

    /// The fusion `tanh(W_q hn + b_q) ⊙ tanh(W_i code + b_i)`: its two factors, then the
    /// answer logits on their product.
    fn head(&self, rec: &mut Recorder, hn: &Tensor, code: &Tensor) -> Result<Fused> {
        let pre_q = self.from_q.record_forward(rec, hn)?;
        let q = Tanh.record_forward(rec, &pre_q)?;
        let pre_i = self.from_img.record_forward(rec, code)?;
        let i = Tanh.record_forward(rec, &pre_i)?;
        let fused = record_mul(rec, &q, &i)?;
        let logits = self.answer.record_forward(rec, &fused)?;
        Ok(Fused {
            q,
            i,
            fused,
            logits,
        })
    }

    fn groups(&self) -> Vec<ParamGroup<'_>> {
        vec![
            self.q.emb.group(),
            self.q.lstm.group(),
            self.enc.group(),
            self.from_q.group(),
            self.from_img.group(),
            self.answer.group(),
        ]
    }
}

impl QuestionOnly {
    /// The hidden layer `tanh(W hn + b)` and the answer logits on it.
    fn head(&self, rec: &mut Recorder, hn: &Tensor) -> Result<(Tensor, Tensor)> {
        let pre = self.hidden.record_forward(rec, hn)?;
        let hid = Tanh.record_forward(rec, &pre)?;
        let logits = self.answer.record_forward(rec, &hid)?;
        Ok((hid, logits))
    }

    fn groups(&self) -> Vec<ParamGroup<'_>> {
        vec![
            self.q.emb.group(),
            self.q.lstm.group(),
            self.hidden.group(),
            self.answer.group(),
        ]
    }
}

/// Device inputs of one batch.
struct Inputs {
    img: Tensor,
    ids: TokenIds,
    answers: TokenIds,
}

/// Records one training step of both models (each its own optimizer) on `inp`; the losses
/// go to `loss[0]` (with the image) and `loss[1]` (question only).
#[allow(clippy::too_many_arguments)]
fn record_step(
    rec: &mut Recorder,
    m: &Vqa,
    qo: &QuestionOnly,
    opts: (&mut Optimizer, &mut Optimizer),
    inp: &Inputs,
    lengths: &[usize],
    dy: &Tensor,
    loss: &Tensor,
) -> Result<()> {
    let sink = |offset| LossSink {
        tensor: loss,
        offset,
        accumulate: false,
    };
    // With the image: tanh(W_q hn + b_q) ⊙ tanh(W_i code + b_i) → answer.
    let xq = m.q.emb.record_forward(rec, &inp.ids)?;
    let (out, saved) =
        m.q.lstm
            .record_train_packed(rec, &xq, lengths, None, None)?;
    let code = m.code(rec, &inp.img)?;
    let f = m.head(rec, &out.hn, &code)?;
    let dlogits = record_cross_entropy(rec, &f.logits, &inp.answers, 1.0, sink(0))?;
    let dfused = m.answer.record_backward(rec, &f.fused, &dlogits, false)?;
    let (dq, di) = record_mul_backward(rec, &f.q, &f.i, &dfused)?;
    let dpre_q = Tanh.record_backward(rec, &f.q, &dq)?;
    let dhn = m.from_q.record_backward(rec, &out.hn, &dpre_q, false)?;
    let dpre_i = Tanh.record_backward(rec, &f.i, &di)?;
    let dcode = m.from_img.record_backward(rec, &code, &dpre_i, false)?;
    let dz = Tanh.record_backward(rec, &code, &dcode)?;
    m.enc.record_weight_backward(rec, &inp.img, &dz, false)?;
    let g =
        m.q.lstm
            .record_backward(rec, &saved, dy, Some(&dhn), None, false)?;
    m.q.emb.record_backward(rec, &inp.ids, &g.dx, false)?;
    opts.0.record_step(rec, &m.groups())?;
    // Question only.
    let xq = qo.q.emb.record_forward(rec, &inp.ids)?;
    let (out, saved) =
        qo.q.lstm
            .record_train_packed(rec, &xq, lengths, None, None)?;
    let (hid, logits) = qo.head(rec, &out.hn)?;
    let dlogits = record_cross_entropy(rec, &logits, &inp.answers, 1.0, sink(1))?;
    let dhid = qo.answer.record_backward(rec, &hid, &dlogits, false)?;
    let dpre = Tanh.record_backward(rec, &hid, &dhid)?;
    let dhn = qo.hidden.record_backward(rec, &out.hn, &dpre, false)?;
    let g =
        qo.q.lstm
            .record_backward(rec, &saved, dy, Some(&dhn), None, false)?;
    qo.q.emb.record_backward(rec, &inp.ids, &g.dx, false)?;
    opts.1.record_step(rec, &qo.groups())
}

/// Accuracies on questions about held-out scenes.
#[derive(Debug)]
pub struct Report {
    /// With the image.
    pub vqa: f64,
    /// The question-only baseline.
    pub question_only: f64,
    /// With the image, per kind of question ([`KINDS`] order).
    pub vqa_by_kind: Vec<f64>,
    /// The baseline per kind of question.
    pub question_only_by_kind: Vec<f64>,
}

/// Trains both models for `steps` steps of 64 questions; returns their accuracies on 1024
/// questions about held-out scenes.
pub fn run(gpu: &Gpu, steps: usize, verbose: bool) -> Result<Report> {
    const B: usize = 64;
    let mut rng = Rng::new(31);
    let m = Vqa {
        q: QuestionEncoder::new(gpu, &mut rng)?,
        enc: Linear::init(gpu, PIXELS, CODE, true, &mut rng)?,
        from_q: Linear::init(gpu, HIDDEN, FUSED, true, &mut rng)?,
        from_img: Linear::init(gpu, CODE, FUSED, true, &mut rng)?,
        answer: Linear::init(gpu, FUSED, N_ANSWERS, true, &mut rng)?,
    };
    let qo = QuestionOnly {
        q: QuestionEncoder::new(gpu, &mut rng)?,
        hidden: Linear::init(gpu, HIDDEN, FUSED, true, &mut rng)?,
        answer: Linear::init(gpu, FUSED, N_ANSWERS, true, &mut rng)?,
    };
    let adam = OptimizerConfig::adam().with_lr(3e-3);
    let mut opt = Optimizer::new(gpu, adam, &m.groups())?;
    let mut qo_opt = Optimizer::new(gpu, adam, &qo.groups())?;
    let inp = Inputs {
        img: gpu.zeros("images", &[1, B, PIXELS])?,
        ids: TokenIds::new(gpu, "question", &[T, B], &[0; T * B], V)?,
        answers: TokenIds::new(gpu, "answers", &[B], &[0; B], N_ANSWERS)?,
    };
    let dy = gpu.zeros("dy", &[T, B, HIDDEN])?; // the answer reads hn only
    let loss = gpu.zeros("loss", &[2])?;
    for step in 1..=steps {
        if step == steps * 3 / 4 {
            opt.set_lr(1e-3)?; // the last quarter at a third of the rate
            qo_opt.set_lr(1e-3)?;
        }
        let b = batch(&mut rng, B, false);
        gpu.write(&inp.img, &images(&b.scenes))?;
        inp.ids.write(gpu, &b.ids)?;
        inp.answers.write(gpu, &b.answers)?;
        let mut rec = Recorder::new(gpu);
        let opts = (&mut opt, &mut qo_opt);
        record_step(&mut rec, &m, &qo, opts, &inp, &b.lengths, &dy, &loss)?;
        rec.submit()?;
        if verbose && (step % 100 == 0 || step == 1) {
            let l = gpu.read(&loss)?;
            println!(
                "step {step:4}  loss: with the image {:.4}  question only {:.4}",
                l[0], l[1]
            );
        }
    }
    evaluate(gpu, &m, &qo, verbose)
}

/// Both models on 1024 questions about held-out scenes.
fn evaluate(gpu: &Gpu, m: &Vqa, qo: &QuestionOnly, verbose: bool) -> Result<Report> {
    const N: usize = 1024;
    let b = batch(&mut Rng::new(4242), N, true);
    let img = gpu.tensor("images.test", &[1, N, PIXELS], &images(&b.scenes))?;
    let ids = TokenIds::new(gpu, "question.test", &[T, N], &b.ids, V)?;
    let mut rec = Recorder::new(gpu);
    let xq = m.q.emb.record_forward(&mut rec, &ids)?;
    let out =
        m.q.lstm
            .record_inference_packed(&mut rec, &xq, &b.lengths, None, None)?;
    let code = m.code(&mut rec, &img)?;
    let logits = m.head(&mut rec, &out.hn, &code)?.logits;
    let xq = qo.q.emb.record_forward(&mut rec, &ids)?;
    let out =
        qo.q.lstm
            .record_inference_packed(&mut rec, &xq, &b.lengths, None, None)?;
    let (_, qo_logits) = qo.head(&mut rec, &out.hn)?;
    rec.run()?;
    let argmax = |l: Vec<f32>| -> Vec<u32> {
        l.chunks_exact(N_ANSWERS)
            .map(|r| (0..N_ANSWERS).fold(0, |best, v| if r[v] > r[best] { v } else { best }) as u32)
            .collect()
    };
    let got = argmax(gpu.read(&logits)?);
    let qo_got = argmax(gpu.read(&qo_logits)?);
    let by_kind = |pred: &[u32]| -> Vec<f64> {
        (0..KINDS.len())
            .map(|k| {
                let rows: Vec<usize> = (0..N).filter(|&r| b.kinds[r] == k).collect();
                let right = rows.iter().filter(|&&r| pred[r] == b.answers[r]).count();
                right as f64 / rows.len().max(1) as f64
            })
            .collect()
    };
    let overall = |pred: &[u32]| {
        pred.iter().zip(&b.answers).filter(|(p, a)| p == a).count() as f64 / N as f64
    };
    if verbose {
        println!("held-out scene 0 (one character per pixel, every other row):");
        print!("{}", b.scenes[0].ascii());
        let q = |r: usize| {
            let w: Vec<&str> = (0..b.lengths[r])
                .map(|t| WORDS[b.ids[t * N + r] as usize])
                .collect();
            w.join(" ")
        };
        for r in 0..4 {
            println!(
                "  scene {r}: \"{}\" {} (question only: {}; true: {})",
                q(r),
                ANSWERS[got[r] as usize],
                ANSWERS[qo_got[r] as usize],
                ANSWERS[b.answers[r] as usize]
            );
        }
    }
    Ok(Report {
        vqa: overall(&got),
        question_only: overall(&qo_got),
        vqa_by_kind: by_kind(&got),
        question_only_by_kind: by_kind(&qo_got),
    })
}

fn main() -> Result<()> {
    let gpu = Gpu::new()?;
    println!(
        "visual question answering: an LSTM-encoded question times an MLP image code, \
         beside a question-only baseline, on {}",
        gpu.info().name
    );
    let start = std::time::Instant::now();
    let r = run(&gpu, 800, true)?;
    println!("accuracy per kind of question (with the image / question only):");
    for (k, name) in KINDS.iter().enumerate() {
        println!(
            "  {name:38} {:.3} / {:.3}",
            r.vqa_by_kind[k], r.question_only_by_kind[k]
        );
    }
    println!(
        "1024 questions about held-out scenes: {:.3} with the image, {:.3} question only \
         (expected >= 0.75 and about 0.37), {:.1} s",
        r.vqa,
        r.question_only,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
