//! The browser's training path (issue 14), run natively: `step_async`, `flush_metrics_async`,
//! `checkpoint_async` and `generate_async` must do exactly what their blocking twins do (the
//! browser demo relies on it: its first loss is checked against `recur train`'s).

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
