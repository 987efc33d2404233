//! The bench harness: the host-loop baseline is a real LSTM (it agrees with the fused path),
//! every forward and every training step is exactly one queue submission whatever the
//! sequence length, and the shared suites parse.

#[path = "../../../../tests/common/numeric.rs"]
mod numeric;

use super::host_loop::HostLoopLstm;
use super::{self as bench, BenchShape, Mode};
use numeric::{assert_close, f64s, gpu};
use recur::rng::Rng;
use recur::rnn::Rnn;
use recur::{CellKind, ParamLayout, RnnConfig};

#[test]
fn suites_parse_and_count_flops() {
    for name in ["cpu", "gpu"] {
        let s = bench::suite(name).unwrap();
        assert!(!s.is_empty());
        for shape in &s {
            assert!(shape.flops().unwrap() > 0.0, "{}", shape.label());
        }
    }
    assert!(bench::suite("nope").is_err());
    // 2·T·B·(I+H)·4H for a 1-layer LSTM forward, three times that for training less dX
    // (2·T·B·I·4H).
    let s = BenchShape {
        cell: "lstm".into(),
        input: 3,
        hidden: 5,
        layers: 1,
        bidirectional: false,
        seq: 7,
        batch: 2,
        mode: Mode::Forward,
    };
    assert_eq!(s.flops().unwrap(), 2.0 * 7.0 * 2.0 * 8.0 * 20.0);
    assert_eq!(
        BenchShape {
            mode: Mode::Train,
            ..s.clone()
        }
        .flops()
        .unwrap(),
        3.0 * s.flops().unwrap() - 2.0 * 7.0 * 2.0 * 3.0 * 20.0
    );
}

#[test]
fn host_loop_baseline_should_match_the_fused_lstm() {
    let Some(gpu) = gpu() else { return };
    let (t, b, i, h) = (5, 3, 4, 7);
    let cfg = RnnConfig::new(CellKind::Lstm, i, h);
    let mut rng = Rng::new(11);
    let total = ParamLayout::new(&cfg).total;
    let rnn = Rnn::new(&gpu, cfg, &rng.vec_uniform_f32(total, -0.4, 0.4)).unwrap();
    let x = gpu
        .tensor("x", &[t, b, i], &rng.vec_normal_f32(t * b * i))
        .unwrap();
    let dy = gpu
        .tensor("dy", &[t, b, h], &rng.vec_normal_f32(t * b * h))
        .unwrap();
    let (out, grads) = rnn
        .forward_backward(&gpu, &x, None, None, &dy, None, None)
        .unwrap();
    let fused_y = f64s(&gpu.read(&out.y).unwrap());
    let fused_dp = f64s(&gpu.read(&rnn.grads).unwrap());
    let fused_dx = f64s(&gpu.read(&grads.dx).unwrap());

    let eager = HostLoopLstm::new(&gpu, &rnn, t, b, true, true).unwrap();
    let r = eager.run(&gpu, &rnn, &x, Some(&dy)).unwrap();
    assert_close("host loop y", &gpu.read(&r.y).unwrap(), &fused_y, 1e-5);
    let host_dp = gpu.read(r.grads.as_ref().unwrap()).unwrap();
    assert_close("host loop grads", &host_dp, &fused_dp, 1e-4);
    assert_close(
        "host loop dx",
        &gpu.read(r.dx.as_ref().unwrap()).unwrap(),
        &fused_dx,
        1e-4,
    );
    // One submission a time step forward and backward, plus one to clear the gradients.
    assert_eq!(r.submissions, 2 * t as u64 + 1);
    // Without the input's gradient (as `recur bench` times it): the same parameter gradients,
    // bit for bit.
    let params_only = HostLoopLstm::new(&gpu, &rnn, t, b, true, false).unwrap();
    let r = params_only.run(&gpu, &rnn, &x, Some(&dy)).unwrap();
    assert!(r.dx.is_none());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&gpu.read(r.grads.as_ref().unwrap()).unwrap()),
        bits(&host_dp),
        "host loop grads without dx"
    );
    assert_eq!(r.submissions, 2 * t as u64 + 1);
}

#[test]
fn one_submission_per_forward_and_per_training_step_at_any_length() {
    let Some(gpu) = gpu() else { return };
    for seq in [1, 7, 40] {
        for mode in [Mode::Forward, Mode::Train] {
            for cell in ["lstm", "gru", "rnn"] {
                let s = BenchShape {
                    cell: cell.into(),
                    input: 5,
                    hidden: 6,
                    layers: 2,
                    bidirectional: true,
                    seq,
                    batch: 2,
                    mode,
                };
                let t = bench::time_shape(&gpu, &s, 1).unwrap();
                assert_eq!(t.submissions, 1, "{}", s.label());
                assert!(t.wall_ms > 0.0);
            }
        }
    }
}
