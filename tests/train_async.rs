//! The browser's training path (issue 14), run natively: `step_async`, `flush_metrics_async`,
//! `checkpoint_async`, `generate_async` and `step_with_gradient_flow_async` must do exactly
//! what their blocking twins do (the browser demo relies on it: its first loss is checked
//! against `recur train`'s).

mod common;

use common::gpu;
use recur::nn::Sampling;
use recur::train::{CharModelShape, Clip, OptimizerConfig, TextTrainer, TrainConfig};
use recur::{CellKind, Gpu};

const TEXT: &str = "the quick brown fox jumps over the lazy dog; pack my box with five dozen \
                    liquor jugs. sphinx of black quartz, judge my vow!\n";

fn trainer(gpu: &Gpu, cell: CellKind, log_every: usize) -> TextTrainer {
    let cfg = TrainConfig {
        optimizer: OptimizerConfig::adam().with_lr(0.01),
        clip: Clip::Norm(1.0),
        log_every,
        max_in_flight: 2,
    };
    let shape = CharModelShape::with_hidden(cell, 9, 2);
    TextTrainer::new(gpu, &TEXT.repeat(3), shape, cfg, 3, 5, 7).unwrap()
}

#[test]
fn async_training_matches_the_blocking_trainer_bit_for_bit() {
    let Some(gpu) = gpu() else { return };
    for (cell, log_every) in [
        (CellKind::Lstm, 4),
        (CellKind::Gru, 1),
        (CellKind::RnnTanh, 3),
    ] {
        let mut blocking = trainer(&gpu, cell, log_every);
        let mut future = trainer(&gpu, cell, log_every);
        // More steps than windows in an epoch: the wrap-around (state reset) is covered.
        let steps = blocking.steps_per_epoch() + 3;
        let mut polled = Vec::new();
        for _ in 0..steps {
            blocking.step(&gpu).unwrap();
            pollster::block_on(future.step_async(&gpu)).unwrap();
            polled.extend(future.trainer.poll_metrics(&gpu).unwrap());
        }
        let want = blocking.trainer.flush_metrics(&gpu).unwrap();
        polled.extend(pollster::block_on(future.trainer.flush_metrics_async(&gpu)).unwrap());
        assert_eq!(want.len(), steps, "{cell}: one metric a step");
        assert_eq!(polled, want, "{cell}: async metrics differ");
        assert!(
            want.last().unwrap().loss < want[0].loss,
            "{cell}: the loss did not fall: {want:?}"
        );
        assert_eq!(future.state(), blocking.state(), "{cell}: stream position");

        let a = blocking.checkpoint(&gpu).unwrap().to_bytes().unwrap();
        let b = pollster::block_on(future.checkpoint_async(&gpu))
            .unwrap()
            .to_bytes()
            .unwrap();
        assert!(a == b, "{cell}: checkpoint_async differs from checkpoint");

        let s = Sampling {
            temperature: 0.8,
            top_k: 0,
            seed: 3,
        };
        let want = blocking.generate(&gpu, "the ", 40, &s).unwrap();
        let got = pollster::block_on(future.generate_async(&gpu, "the ", 40, &s)).unwrap();
        assert_eq!(got, want, "{cell}: generate_async");
        assert_eq!(got.chars().count(), 40);
    }
}

/// A checkpoint written by the async path resumes, on the blocking path, to the same next step.
#[test]
fn async_checkpoint_resumes_where_it_stopped() {
    let Some(gpu) = gpu() else { return };
    let mut a = trainer(&gpu, CellKind::Lstm, 2);
    for _ in 0..5 {
        pollster::block_on(a.step_async(&gpu)).unwrap();
    }
    let ckpt = pollster::block_on(a.checkpoint_async(&gpu)).unwrap();
    let mut b = TextTrainer::resume(&gpu, &TEXT.repeat(3), &ckpt).unwrap();
    pollster::block_on(a.step_async(&gpu)).unwrap();
    b.step(&gpu).unwrap();
    let ma = pollster::block_on(a.trainer.flush_metrics_async(&gpu)).unwrap();
    let mb = b.trainer.flush_metrics(&gpu).unwrap();
    assert_eq!(mb.len(), 1, "{mb:?}");
    assert_eq!(mb[0].step, 6);
    assert_eq!(ma.last(), mb.last(), "the resumed step differs");
}

/// The page's probed step: `step_with_gradient_flow_async` reads the same norms as the
/// blocking `step_with_gradient_flow`, bit for bit, and trains exactly as a plain step does
/// (metrics and checkpoints of three trainers equal, probed steps at the start, in the middle
/// and across the epoch's wrap-around).
#[test]
fn async_probed_steps_match_blocking_ones_and_train_as_plain_steps() {
    let Some(gpu) = gpu() else { return };
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let mut plain = trainer(&gpu, cell, 2);
        let mut blocking = trainer(&gpu, cell, 2);
        let mut future = trainer(&gpu, cell, 2);
        let steps = plain.steps_per_epoch() + 3;
        let probed = [0, 3, plain.steps_per_epoch() - 1, plain.steps_per_epoch()];
        let mut flows = 0;
        for i in 0..steps {
            plain.step(&gpu).unwrap();
            if probed.contains(&i) {
                let want = blocking.step_with_gradient_flow(&gpu).unwrap();
                let got = pollster::block_on(future.step_with_gradient_flow_async(&gpu)).unwrap();
                assert_eq!(
                    (got.num_layers, got.num_directions, got.seq_len),
                    (2, 1, 5),
                    "{cell}: flow shape"
                );
                assert_eq!(got.dh_norms.len(), 2 * 5);
                assert!(
                    got.dh_norms.iter().all(|v| v.is_finite() && *v > 0.0),
                    "{cell} step {i}: {got:?}"
                );
                let bits = |f: &recur::rnn::GradientFlow| -> Vec<u32> {
                    f.dh_norms.iter().map(|v| v.to_bits()).collect()
                };
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{cell} step {i}: async flow differs"
                );
                assert_eq!(got, want);
                flows += 1;
            } else {
                blocking.step(&gpu).unwrap();
                pollster::block_on(future.step_async(&gpu)).unwrap();
            }
        }
        assert_eq!(flows, probed.len());
        let want = plain.trainer.flush_metrics(&gpu).unwrap();
        assert_eq!(want.len(), steps);
        assert_eq!(
            blocking.trainer.flush_metrics(&gpu).unwrap(),
            want,
            "{cell}: probed blocking steps trained differently"
        );
        assert_eq!(
            pollster::block_on(future.trainer.flush_metrics_async(&gpu)).unwrap(),
            want,
            "{cell}: probed async steps trained differently"
        );
        assert_eq!(future.state(), plain.state(), "{cell}: stream position");
        let a = plain.checkpoint(&gpu).unwrap().to_bytes().unwrap();
        let b = blocking.checkpoint(&gpu).unwrap().to_bytes().unwrap();
        let c = pollster::block_on(future.checkpoint_async(&gpu))
            .unwrap()
            .to_bytes()
            .unwrap();
        assert!(a == b, "{cell}: blocking probed checkpoint differs");
        assert!(a == c, "{cell}: async probed checkpoint differs");
    }
}
