//! Determinism, the adapter's limits, device faults and the async readback path.

mod common;

use common::gpu;
use recur::rng::Rng;
use recur::rnn::Rnn;
use recur::{CellKind, Error, ParamLayout, RnnConfig};

/// Same inputs, same adapter: bit-identical outputs and gradients, run after run (no
/// atomics anywhere; every reduction has a fixed order).
#[test]
fn forward_and_backward_are_bit_identical_run_after_run() {
    let Some(gpu) = gpu() else { return };
    for cell in [CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru] {
        let cfg = RnnConfig::new(cell, 7, 19).layers(2).bidirectional(true);
        let mut rng = Rng::new(5);
        let total = ParamLayout::new(&cfg).total;
        let params = rng.vec_uniform_f32(total, -0.3, 0.3);
        let (t, b) = (9, 17);
        let x = gpu
            .tensor("x", &[t, b, 7], &rng.vec_normal_f32(t * b * 7))
            .unwrap();
        let dy = gpu
            .tensor("dy", &[t, b, 38], &rng.vec_normal_f32(t * b * 38))
            .unwrap();
        let mut runs = Vec::new();
        for _ in 0..3 {
            // A fresh stack each time: nothing carried over but the inputs.
            let rnn = Rnn::new(&gpu, cfg.clone(), &params).unwrap();
            let (out, g) = rnn
                .forward_backward(&gpu, &x, None, None, &dy, None, None)
                .unwrap();
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<u32>>();
            runs.push((
                bits(gpu.read(&out.y).unwrap()),
                bits(gpu.read(&out.hn).unwrap()),
                bits(gpu.read(&rnn.grads).unwrap()),
                bits(gpu.read(&g.dx).unwrap()),
                bits(gpu.read(&g.dh0).unwrap()),
            ));
        }
        assert!(runs.windows(2).all(|w| w[0] == w[1]), "{cell}: runs differ");
    }
}

#[test]
fn read_async_matches_read() {
    let Some(gpu) = gpu() else { return };
    let data: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 3.0).collect();
    let t = gpu.tensor("t", &[10, 100], &data).unwrap();
    assert_eq!(pollster::block_on(gpu.read_async(&t)).unwrap(), data);
    assert_eq!(gpu.read(&t).unwrap(), data);
}

/// Buffers past the adapter's binding limit are a typed error naming the limit and the
/// size, never a wgpu validation panic.
#[test]
fn sizes_over_the_adapters_limits_are_typed_errors() {
    let Some(gpu) = gpu() else { return };
    let max = gpu.max_binding_bytes();
    match gpu.zeros("huge", &[(max / 4 + 1) as usize]) {
        Err(Error::Limit {
            what, size, max: m, ..
        }) => {
            assert_eq!(what, "huge");
            assert!(size > m);
        }
        other => panic!("expected a limit error, got {other:?}"),
    }
    // An input that fits whose per-sequence activations do not: the input projection of a
    // long sequence (T·B·G·H floats).
    let h = 64;
    let cfg = RnnConfig::new(CellKind::Gru, 1, h);
    let total = ParamLayout::new(&cfg).total;
    let rnn = Rnn::new(&gpu, cfg, &vec![0.01; total]).unwrap();
    let seq = (max / (4 * 3 * h as u64)) as usize + 1;
    let x = gpu.zeros("x", &[seq, 1, 1]).unwrap();
    match rnn.forward(&gpu, &x, None, None) {
        Err(Error::Limit { limit, .. }) => assert_eq!(limit, "max_storage_buffer_binding_size"),
        other => panic!("expected a limit error, got {other:?}"),
    }
    // Nothing was submitted half-way: the device still works.
    let small = gpu.zeros("x", &[3, 1, 1]).unwrap();
    assert!(rnn.forward(&gpu, &small, None, None).is_ok());
}

/// A lost device surfaces as a typed error from the next call, not an abort.
#[test]
fn a_destroyed_device_gives_typed_errors() {
    let Some(gpu) = gpu() else { return };
    let cfg = RnnConfig::new(CellKind::Lstm, 3, 4);
    let total = ParamLayout::new(&cfg).total;
    let rnn = Rnn::new(&gpu, cfg, &vec![0.1; total]).unwrap();
    let x = gpu.tensor("x", &[2, 1, 3], &[0.5; 6]).unwrap();
    assert!(rnn.forward(&gpu, &x, None, None).is_ok());
    gpu.device().destroy();
    let r = rnn
        .forward(&gpu, &x, None, None)
        .and_then(|o| gpu.read(&o.y));
    assert!(matches!(r, Err(Error::Gpu(_))), "{r:?}");
}

/// Repeated training steps hold no buffers past their submission: device memory is flat.
#[test]
fn repeated_steps_leave_device_memory_flat() {
    let Some(gpu) = gpu() else { return };
    let cfg = RnnConfig::new(CellKind::Lstm, 4, 9).layers(2);
    let total = ParamLayout::new(&cfg).total;
    let rnn = Rnn::new(&gpu, cfg, &vec![0.05; total]).unwrap();
    let x = gpu.tensor("x", &[6, 3, 4], &[0.3; 72]).unwrap();
    let dy = gpu.tensor("dy", &[6, 3, 9], &[0.1; 162]).unwrap();
    let step = || {
        let (out, _) = rnn
            .forward_backward(&gpu, &x, None, None, &dy, None, None)
            .unwrap();
        gpu.read(&out.y).unwrap();
    };
    step();
    gpu.wait().unwrap();
    let before = gpu.memory();
    for _ in 0..30 {
        step();
    }
    gpu.wait().unwrap();
    let after = gpu.memory();
    // wgpu's counters are on (feature "counters"): the parameters, x and dy at least. (The GL
    // backend counts buffers but not their bytes.)
    assert!(before.0 >= 4, "counters: {before:?}");
    assert_eq!(before, after, "(buffers, bytes) before and after 30 steps");
}
