//! Training modes said out loud (issue 11): a trainer is built for stateful TBPTT over
//! streams or for independent sequences, and a head may read the last step only.

mod common;

use common::gpu;
use recur::nn::{Readout, SeqInput, SeqModel, SeqModelConfig, TokenIds};
use recur::rnn::GradFlowProbe;
use recur::train::{Batch, Targets, TrainConfig, TrainMode, Trainer, MODE_KEY};
use recur::{rng::Rng, CellKind, Error, Gpu, Recorder, RnnConfig};

const V: usize = 7;

fn lm(gpu: &Gpu) -> SeqModel {
    let cfg = SeqModelConfig::new(Some(V), RnnConfig::new(CellKind::Lstm, 5, 8), V);
    SeqModel::init(gpu, cfg, &mut Rng::new(3)).unwrap()
}

fn ids(gpu: &Gpu, t: usize, b: usize, seed: u64) -> TokenIds {
    let mut rng = Rng::new(seed);
    let v: Vec<u32> = (0..t * b)
        .map(|_| (rng.next_u64() % V as u64) as u32)
        .collect();
    TokenIds::new(gpu, "ids", &[t, b], &v, V).unwrap()
}

fn step(gpu: &Gpu, tr: &mut Trainer, b: usize, seed: u64) -> recur::Result<()> {
    let (x, y) = (ids(gpu, 4, b, seed), ids(gpu, 4, b, seed + 100));
    tr.step(
        gpu,
        &[Batch {
            input: SeqInput::Tokens(&x),
            targets: Targets::Tokens(&y),
        }],
    )
}

/// A stateful trainer carries the state of B streams: a batch of another size is an error
/// that says what to do, and works after `reset_state`.
#[test]
fn stateful_refuses_another_batch_size_and_says_what_to_do() {
    let Some(gpu) = gpu() else { return };
    let mut t = Trainer::new(&gpu, lm(&gpu), TrainConfig::default(), TrainMode::Stateful).unwrap();
    step(&gpu, &mut t, 4, 1).unwrap();
    step(&gpu, &mut t, 4, 2).unwrap();
    match step(&gpu, &mut t, 3, 3) {
        Err(Error::InvalidConfig(m)) => {
            assert!(m.contains("3 sequences") && m.contains("4 streams"), "{m}");
            assert!(
                m.contains("reset_state()") && m.contains("TrainMode::Independent"),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.step_count(), 2, "the refused step was not counted");
    t.reset_state();
    step(&gpu, &mut t, 3, 3).unwrap();
    assert_eq!(t.step_count(), 3);
}

/// An independent trainer starts every step from zero state: its losses are those of a
/// stateful trainer reset before every step, bit for bit; the batch size may change; its
/// checkpoint carries no state and says its mode.
#[test]
fn independent_steps_start_from_zero_state() {
    let Some(gpu) = gpu() else { return };
    let cfg = TrainConfig {
        log_every: 1,
        ..TrainConfig::default()
    };
    let mut ind = Trainer::new(&gpu, lm(&gpu), cfg, TrainMode::Independent).unwrap();
    let mut st = Trainer::new(&gpu, lm(&gpu), cfg, TrainMode::Stateful).unwrap();
    for (i, b) in [4, 4, 2, 5].into_iter().enumerate() {
        step(&gpu, &mut ind, b, i as u64).unwrap();
        st.reset_state();
        step(&gpu, &mut st, b, i as u64).unwrap();
        assert_eq!(
            ind.read_loss(&gpu).unwrap().to_bits(),
            st.read_loss(&gpu).unwrap().to_bits(),
            "step {i}"
        );
    }
    assert!(ind.tbptt().slots().is_empty());
    let ckpt = ind.checkpoint(&gpu).unwrap();
    assert_eq!(ckpt.metadata[MODE_KEY], "independent");
    assert!(!ckpt.tensors.keys().any(|k| k.starts_with("tbptt.")));
    let back = Trainer::from_checkpoint(&gpu, &ckpt).unwrap();
    assert_eq!(back.mode(), TrainMode::Independent);
    let st_ckpt = st.checkpoint(&gpu).unwrap();
    assert_eq!(Trainer::mode_of(&st_ckpt).unwrap(), TrainMode::Stateful);
}

/// The last-step head's backward is the every-step head's with an output gradient that is
/// zero except at the last step: same parameter gradients, bit for bit (one GEMM over the
/// same rows).
#[test]
fn last_step_head_backward_matches_every_step_with_a_zero_gradient_elsewhere() {
    let Some(gpu) = gpu() else { return };
    let (t, b, out) = (5, 3, 4);
    let rnn = RnnConfig::new(CellKind::Gru, 2, 6);
    let every = SeqModelConfig::new(None, rnn.clone(), out);
    let m_every = SeqModel::init(&gpu, every.clone(), &mut Rng::new(9)).unwrap();
    let m_last = SeqModel::init(&gpu, every.last_step(), &mut Rng::new(9)).unwrap();
    assert_eq!(m_last.cfg.readout, Readout::LastStep);
    let mut rng = Rng::new(4);
    let x = gpu
        .tensor("x", &[t, b, 2], &rng.vec_normal_f32(t * b * 2))
        .unwrap();
    let d_last = rng.vec_normal_f32(b * out);
    let mut d_full = vec![0.0f32; t * b * out];
    d_full[(t - 1) * b * out..].copy_from_slice(&d_last);
    let grads = |m: &SeqModel, dout: &recur::Tensor| -> Vec<Vec<f32>> {
        let mut rec = Recorder::new(&gpu);
        let (o, saved) = m
            .record_train(&mut rec, SeqInput::Dense(&x), None, None)
            .unwrap();
        assert_eq!(o.out.shape, dout.shape);
        m.record_backward(&mut rec, &saved, dout, false).unwrap();
        rec.run().unwrap();
        m.groups()
            .iter()
            .map(|g| gpu.read(g.grads).unwrap())
            .collect()
    };
    let g_last = grads(&m_last, &gpu.tensor("d", &[b, out], &d_last).unwrap());
    let g_every = grads(&m_every, &gpu.tensor("d", &[t, b, out], &d_full).unwrap());
    for (i, (a, e)) in g_last.iter().zip(&g_every).enumerate() {
        common::assert_close(
            &format!("layer {i} gradient"),
            a,
            &e.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            1e-6,
        );
    }
}

/// A step count at u64::MAX (a hand-made checkpoint) is refused by the next step rather than
/// wrapped to 0, and the count stays where it was; restoring such a count (for generation)
/// does not overflow either. (Moved from a unit test of src/train/trainer.rs.)
#[test]
fn a_full_step_counter_is_an_error_not_a_wrap() {
    let Some(gpu) = gpu() else { return };
    let cfg = SeqModelConfig::new(Some(4), RnnConfig::new(CellKind::Gru, 4, 4), 4);
    let model = SeqModel::init(&gpu, cfg, &mut Rng::new(0)).unwrap();
    let mut t = Trainer::new(&gpu, model, TrainConfig::default(), TrainMode::Stateful).unwrap();
    let x = TokenIds::new(&gpu, "x", &[2, 1], &[0, 1], 4).unwrap();
    let y = TokenIds::new(&gpu, "y", &[2, 1], &[1, 2], 4).unwrap();
    let batch = [Batch {
        input: SeqInput::Tokens(&x),
        targets: Targets::Tokens(&y),
    }];
    t.step(&gpu, &batch).unwrap();
    let mut ckpt = t.checkpoint(&gpu).unwrap();
    ckpt.metadata.insert(
        recur::train::checkpoint::STEP_KEY.into(),
        u64::MAX.to_string(),
    );
    t.restore(&gpu, &ckpt).unwrap();
    assert_eq!(t.step_count(), u64::MAX);
    assert!(matches!(t.step(&gpu, &batch), Err(Error::Overflow(_))));
    assert_eq!(t.step_count(), u64::MAX);
}

/// A model fed features (no embedding) leaves out the RNN's dX; its gradient-flow probe
/// still works through that path: the probed backward gives the unprobed one's gradients bit
/// for bit and a positive, finite norm at every step, and a probe made for another length is
/// refused.
#[test]
fn dense_model_probed_backward_should_match_the_plain_one() {
    let Some(gpu) = gpu() else { return };
    let (t, b, i) = (6, 3, 4);
    let rnn = RnnConfig::new(CellKind::Lstm, i, 8).layers(2);
    let cfg = SeqModelConfig::new(None, rnn.clone(), 5);
    let model = SeqModel::init(&gpu, cfg, &mut Rng::new(21)).unwrap();
    let mut rng = Rng::new(22);
    let x = gpu
        .tensor("x", &[t, b, i], &rng.vec_normal_f32(t * b * i))
        .unwrap();
    let dout = gpu
        .tensor("dout", &[t, b, 5], &rng.vec_normal_f32(t * b * 5))
        .unwrap();
    let run = |probe: Option<&GradFlowProbe>| -> recur::Result<Vec<Vec<u32>>> {
        let mut rec = Recorder::new(&gpu);
        let (_, saved) = model.record_train(&mut rec, SeqInput::Dense(&x), None, None)?;
        match probe {
            Some(p) => model.record_backward_probed(&mut rec, &saved, &dout, false, p)?,
            None => model.record_backward(&mut rec, &saved, &dout, false)?,
        }
        rec.run()?;
        let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect();
        model
            .groups()
            .iter()
            .map(|g| gpu.read(g.grads).map(bits))
            .collect()
    };
    let plain = run(None).unwrap();
    let probe = GradFlowProbe::new(&gpu, &rnn, t).unwrap();
    assert_eq!(run(Some(&probe)).unwrap(), plain);
    let flow = probe.read(&gpu).unwrap();
    assert_eq!(flow.dh_norms.len(), 2 * t);
    assert!(flow.dh_norms.iter().all(|n| n.is_finite() && *n > 0.0));
    let wrong = GradFlowProbe::new(&gpu, &rnn, t + 1).unwrap();
    assert!(run(Some(&wrong)).is_err());
}
