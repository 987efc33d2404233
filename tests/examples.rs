//! The examples in `examples/`, each run at a reduced size: each must reach its bound.
//! (The examples' `main`s are not used here.)
// caption_shapes and vqa_shapes each include examples/common/scenes.rs as a module of their
// own, as they do when built as examples: here that file is loaded twice.
#![allow(clippy::duplicate_mod)]

mod common;

#[path = "../examples/caption_shapes.rs"]
#[allow(dead_code)]
mod caption_shapes;
#[path = "../examples/classify_waves.rs"]
#[allow(dead_code)]
mod classify_waves;
#[path = "../examples/reverse_digits.rs"]
#[allow(dead_code)]
mod reverse_digits;
#[path = "../examples/sentiment_words.rs"]
#[allow(dead_code)]
mod sentiment_words;
#[path = "../examples/stream_anomaly.rs"]
#[allow(dead_code)]
mod stream_anomaly;
#[path = "../examples/translate_attention.rs"]
#[allow(dead_code)]
mod translate_attention;
#[path = "../examples/vqa_shapes.rs"]
#[allow(dead_code)]
mod vqa_shapes;
#[path = "../examples/waves_from_features.rs"]
#[allow(dead_code)]
mod waves_from_features;

use common::gpu;

/// Many-to-one. Measured on lavapipe: loss under 0.01 by step 200, accuracy 0.99.
#[test]
fn many_to_one_classifies_waves() {
    let Some(gpu) = gpu() else { return };
    let acc = classify_waves::run(&gpu, 200, false).unwrap();
    eprintln!("classify_waves: accuracy {acc:.3} after 200 steps");
    assert!(acc >= 0.9, "accuracy {acc} under 0.9");
}

/// One-to-many. Measured on lavapipe: test MSE about 0.008 after 200 steps.
#[test]
fn one_to_many_generates_from_the_initial_state() {
    let Some(gpu) = gpu() else { return };
    let mse = waves_from_features::run(&gpu, 200, false).unwrap();
    eprintln!("waves_from_features: test MSE {mse:.4} after 200 steps");
    assert!(
        mse < 0.05,
        "test MSE {mse} not under 0.05 (predicting zero gives about 0.3)"
    );
}

/// Encoder-decoder. Measured on lavapipe: loss about 0.1 after 150 steps.
#[test]
fn seq2seq_reverses_digits() {
    let Some(gpu) = gpu() else { return };
    let acc = reverse_digits::run(&gpu, 150, false).unwrap();
    eprintln!("reverse_digits: {acc:.3} of the digits right after 150 steps");
    assert!(acc >= 0.9, "digit accuracy {acc} under 0.9");
}

/// Streaming. Measured on lavapipe (200 training steps, 2000 streamed samples): every fault
/// caught, no false alarm.
#[test]
fn streaming_detects_faults_chunk_by_chunk() {
    let Some(gpu) = gpu() else { return };
    let r = stream_anomaly::run(&gpu, 200, 2000, false).unwrap();
    eprintln!(
        "stream_anomaly: {} faults, recall {:.3}, false alarms {:.4}, latency {:?} ms",
        r.faults, r.recall, r.false_alarms, r.latency_ms
    );
    assert!(r.faults >= 10, "only {} faults in the stream", r.faults);
    assert!(r.recall >= 0.8, "recall {} under 0.8", r.recall);
    assert!(
        r.false_alarms <= 0.05,
        "false alarms {} over 0.05",
        r.false_alarms
    );
}

/// Many-to-one over words. Measured on lavapipe after 150 steps: the GRU gets 1.000 of the
/// order-dependent held-out reviews right, the bag of words 0.5 (it cannot do better).
#[test]
fn word_order_beats_a_bag_of_words() {
    let Some(gpu) = gpu() else { return };
    let r = sentiment_words::run(&gpu, 150, false).unwrap();
    eprintln!("sentiment_words after 150 steps: {r:?}");
    assert!(
        r.gru_order >= 0.9,
        "GRU on order-dependent reviews {} under 0.9",
        r.gru_order
    );
    assert!(
        r.gru_all >= 0.9,
        "GRU on held-out reviews {} under 0.9",
        r.gru_all
    );
    assert!(
        r.bow_order <= 0.65,
        "bag of words {} on reviews whose bags are ambiguous: the test set is wrong",
        r.bow_order
    );
    assert!(
        r.bow_all >= 0.65,
        "bag of words {} on reviews drawn as in training: the baseline did not learn",
        r.bow_all
    );
}

/// Captioning from the initial state. Measured on lavapipe after 120 steps: 0.81 of the
/// held-out words and 0.57 to 0.58 of their colours and shapes right (a third without the
/// image).
#[test]
fn image_code_as_initial_state_writes_captions() {
    let Some(gpu) = gpu() else { return };
    let r = caption_shapes::run(&gpu, 120, false).unwrap();
    eprintln!("caption_shapes after 120 steps: {r:?}");
    assert!(
        r.words >= 0.75,
        "held-out words right {} under 0.75",
        r.words
    );
    // Blind to the image, a decoder gets a third of the colours and shapes.
    assert!(
        r.attributes >= 0.5,
        "held-out colours and shapes right {} under 0.5: the image code does not reach the \
         decoder",
        r.attributes
    );
}

/// Question answering. Measured on lavapipe after 150 steps: 0.59 right with the image,
/// 0.40 from the question only; on the two kinds of colour question 0.93 and 0.36.
#[test]
fn the_image_answers_what_the_question_alone_cannot() {
    let Some(gpu) = gpu() else { return };
    let r = vqa_shapes::run(&gpu, 150, false).unwrap();
    eprintln!("vqa_shapes after 150 steps: {r:?}");
    assert!(r.vqa >= 0.55, "with the image {} under 0.55", r.vqa);
    assert!(r.vqa > r.question_only, "{r:?}");
    // "what colour is the <shape> ?", "what colour is the leftmost shape ?": a third each
    // from the question alone.
    let mean = |v: &[f64]| (v[0] + v[2]) / 2.0;
    let (with, without) = (mean(&r.vqa_by_kind), mean(&r.question_only_by_kind));
    assert!(
        with >= 0.75,
        "colour questions {with} under 0.75 with the image"
    );
    assert!(
        without <= 0.55,
        "colour questions {without} from the question only: over 0.55, the questions give \
         their answers away"
    );
}

/// Attention, on one date a source (5 words in, year, month, day and `<end>` out). Measured
/// on lavapipe after 150 steps: every date right with attention (0.11 without); the month's
/// weight on the month word 0.999, the day's on the day word 0.98.
#[test]
fn attention_looks_at_the_words_each_token_comes_from() {
    let Some(gpu) = gpu() else { return };
    let r = translate_attention::run(&gpu, 150, 1, false).unwrap();
    eprintln!("translate_attention after 150 steps: {r:?}");
    let (att, plain) = (r.attention[0], r.plain[0]);
    assert!(
        att.tokens >= 0.9,
        "attention: tokens right {} under 0.9",
        att.tokens
    );
    assert!(
        att.exact >= 0.7,
        "attention: dates right {} under 0.7",
        att.exact
    );
    // The source is "<day> of <month> <century> <year's end>", the output year, month,
    // day: the month and the day put their heaviest weight on the word they come from. (The
    // year is written first, from the state that has just read the year's end: it need not
    // look back.)
    let heaviest = |row: &[f32]| (0..row.len()).fold(0, |b, j| if row[j] > row[b] { j } else { b });
    assert_eq!(r.source.len(), 5);
    assert_eq!(
        heaviest(&r.weights[1]),
        2,
        "the month looks at {:?}",
        r.weights[1]
    );
    assert_eq!(
        heaviest(&r.weights[2]),
        0,
        "the day looks at {:?}",
        r.weights[2]
    );
    eprintln!("plain encoder-decoder on one date: {plain:?}");
}

/// The attention model's backward through its step-by-step decoder against central finite
/// differences of its loss (f32 on the device; the largest gradients of each parameter
/// group and one at random; the loss's f32 rounding is about 2e-5 in these differences).
/// Measured on lavapipe: worst relative error 2.9e-2, the largest gradients within 0.5 %.
#[test]
fn attention_training_gradients_match_finite_differences() {
    let Some(gpu) = gpu() else { return };
    let worst = translate_attention::gradient_check(&gpu).unwrap();
    eprintln!("translate_attention gradient check: worst relative error {worst:.2e}");
    assert!(worst < 0.05, "worst relative error {worst} over 0.05");
}
