//! `RnnStream`: a sequence pushed in chunks equals the sequence run whole, bit for bit (the
//! same kernels run the same steps in the same order), in both kernel families, every cell,
//! time-first and batch-first; rows reset alone; nothing allocated after the first chunk of a
//! length; bad input refused.

mod common;

use common::{bits, gpu};
use recur::rng::Rng;
use recur::{CellKind, Error, Gpu, ParamLayout, Rnn, RnnConfig, RnnStream};

const I: usize = 3;

fn stack(gpu: &Gpu, cfg: RnnConfig, seed: u64) -> Rnn {
    let n = ParamLayout::new(&cfg).total;
    let k = 1.0 / (cfg.hidden_size as f32).sqrt();
    Rnn::new(gpu, cfg, &Rng::new(seed).vec_uniform_f32(n, -k, k)).unwrap()
}

/// Steps t0..t1 of x (time-first `[T, B, F]` or batch-first `[B, T, F]`), in the same layout.
fn steps(x: &[f32], (t, b, f): (usize, usize, usize), t0: usize, t1: usize, bf: bool) -> Vec<f32> {
    let mut out = Vec::new();
    if bf {
        for row in 0..b {
            out.extend_from_slice(&x[(row * t + t0) * f..(row * t + t1) * f]);
        }
    } else {
        out.extend_from_slice(&x[t0 * b * f..t1 * b * f]);
    }
    out
}

/// Pastes chunk outputs (each in the layout) back into one sequence.
fn paste(chunks: &[(usize, Vec<f32>)], (t, b, f): (usize, usize, usize), bf: bool) -> Vec<f32> {
    let mut y = vec![0.0; t * b * f];
    let mut t0 = 0;
    for (len, c) in chunks {
        for s in 0..*len {
            for row in 0..b {
                let (dst, src) = if bf {
                    ((row * t + t0 + s) * f, (row * len + s) * f)
                } else {
                    (((t0 + s) * b + row) * f, (s * b + row) * f)
                };
                y[dst..dst + f].copy_from_slice(&c[src..src + f]);
            }
        }
        t0 += len;
    }
    y
}

#[test]
fn chunked_should_equal_whole_bit_for_bit() {
    let Some(mut gpu) = gpu() else { return };
    let t = 20;
    // (cell, hidden, batch, layers): on CPU adapters H = 8, 20 and 64 run whole sequences in
    // one dispatch (from 16 steps with W_hh resident where subgroups have 8 lanes: chunks of
    // 16 steps and more too, shorter ones the per-step kernels of every build, B = 1, 3, 5),
    // H = 132 one dispatch a step; 7 is not a multiple of 4 (scalar kernels).
    let shapes = [
        (CellKind::Lstm, 8, 3, 2),
        (CellKind::Gru, 20, 5, 1),
        (CellKind::RnnTanh, 7, 2, 2),
        (CellKind::Lstm, 132, 9, 1),
        (CellKind::Lstm, 64, 1, 1),
    ];
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for (si, &(cell, h, b, layers)) in shapes.iter().enumerate() {
            for bf in [false, true] {
                let cfg = RnnConfig::new(cell, I, h).layers(layers).batch_first(bf);
                let rnn = stack(&gpu, cfg, 10 + si as u64);
                let x = Rng::new(20 + si as u64).vec_normal_f32(t * b * I);
                let shape = |len| if bf { [b, len, I] } else { [len, b, I] };
                let whole = rnn
                    .forward(&gpu, &gpu.tensor("x", &shape(t), &x).unwrap(), None, None)
                    .unwrap();
                let want_y = gpu.read(&whole.y).unwrap();
                let want_h = gpu.read(&whole.hn).unwrap();
                for chunking in [vec![t], vec![1; t], vec![16, 4], vec![3, 17], vec![5, 7, 8]] {
                    let mut stream = RnnStream::new(&gpu, &rnn, b).unwrap();
                    let mut chunks = Vec::new();
                    let mut t0 = 0;
                    for len in chunking.clone() {
                        let xc = steps(&x, (t, b, I), t0, t0 + len, bf);
                        let y = stream
                            .push(&gpu, &rnn, &gpu.tensor("xc", &shape(len), &xc).unwrap())
                            .unwrap();
                        chunks.push((len, gpu.read(&y).unwrap()));
                        t0 += len;
                    }
                    let what = format!(
                        "{cell} H={h} B={b} L={layers} bf={bf} direct={direct} chunks {chunking:?}"
                    );
                    let got = paste(&chunks, (t, b, h), bf);
                    assert_eq!(bits(&got), bits(&want_y), "{what}: y");
                    assert_eq!(
                        bits(&gpu.read(stream.h()).unwrap()),
                        bits(&want_h),
                        "{what}: h"
                    );
                    if let (Some(c), Some(cn)) = (stream.c(), &whole.cn) {
                        assert_eq!(
                            bits(&gpu.read(c).unwrap()),
                            bits(&gpu.read(cn).unwrap()),
                            "{what}: c"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn reset_rows_should_restart_those_rows_only() {
    let Some(gpu) = gpu() else { return };
    let (h, b) = (8, 3);
    let rnn = stack(&gpu, RnnConfig::new(CellKind::Lstm, I, h).layers(2), 1);
    let mut rng = Rng::new(2);
    let first = gpu
        .tensor("x1", &[4, b, I], &rng.vec_normal_f32(4 * b * I))
        .unwrap();
    let second_x = rng.vec_normal_f32(3 * b * I);
    let second = gpu.tensor("x2", &[3, b, I], &second_x).unwrap();
    // Stream A: both chunks, row 1 reset in between. Stream B: both chunks, no reset.
    let mut a = RnnStream::new(&gpu, &rnn, b).unwrap();
    let mut s = RnnStream::new(&gpu, &rnn, b).unwrap();
    a.push(&gpu, &rnn, &first).unwrap();
    s.push(&gpu, &rnn, &first).unwrap();
    a.reset_rows(&gpu, &[1]).unwrap();
    let ya = gpu.read(&a.push(&gpu, &rnn, &second).unwrap()).unwrap();
    let ys = gpu.read(&s.push(&gpu, &rnn, &second).unwrap()).unwrap();
    // Stream C: the second chunk alone, from zero states.
    let mut fresh = RnnStream::new(&gpu, &rnn, b).unwrap();
    let yc = gpu.read(&fresh.push(&gpu, &rnn, &second).unwrap()).unwrap();
    for step in 0..3 {
        for row in 0..b {
            let at = (step * b + row) * h..(step * b + row + 1) * h;
            let want = if row == 1 { &yc } else { &ys };
            assert_eq!(
                bits(&ya[at.clone()]),
                bits(&want[at]),
                "step {step} row {row}"
            );
        }
    }
    assert!(matches!(a.reset_rows(&gpu, &[3]), Err(Error::Shape { .. })));
}

#[test]
fn pushes_after_the_first_of_a_length_should_allocate_nothing() {
    let Some(gpu) = gpu() else { return };
    let rnn = stack(&gpu, RnnConfig::new(CellKind::Gru, I, 16).layers(2), 3);
    let mut stream = RnnStream::new(&gpu, &rnn, 2).unwrap();
    // Chunks of 1 and 5 steps, alternating: one set of buffers for each length.
    let chunks = [
        gpu.tensor("x1", &[1, 2, I], &[0.5; 2 * I]).unwrap(),
        gpu.tensor("x5", &[5, 2, I], &[0.25; 10 * I]).unwrap(),
    ];
    let mut counts = Vec::new();
    let mut outputs: [Vec<recur::Tensor>; 2] = Default::default();
    for i in 0..8 {
        let y = stream.push(&gpu, &rnn, &chunks[i % 2]).unwrap();
        gpu.read(&y).unwrap();
        counts.push(gpu.memory().0);
        outputs[i % 2].push(y);
    }
    // The outputs of every push of a length are one reused buffer ...
    for outs in &outputs {
        assert!(outs.windows(2).all(|w| w[0].buffer == w[1].buffer));
    }
    // ... and the live buffers stay flat once both lengths were seen (wgpu's count; zero
    // where the backend does not count).
    assert!(
        counts[2..].windows(2).all(|w| w[0] == w[1]),
        "live buffers per push: {counts:?}"
    );
}

#[test]
fn streams_should_refuse_what_cannot_stream() {
    let Some(gpu) = gpu() else { return };
    let bi = stack(
        &gpu,
        RnnConfig::new(CellKind::Gru, I, 8).bidirectional(true),
        4,
    );
    assert!(matches!(
        RnnStream::new(&gpu, &bi, 2),
        Err(Error::InvalidConfig(_))
    ));
    let lstm = stack(&gpu, RnnConfig::new(CellKind::Lstm, I, 8), 5);
    assert!(matches!(
        RnnStream::new(&gpu, &lstm, 0),
        Err(Error::Shape { .. })
    ));
    // An LSTM's h0 without c0, as PyTorch refuses it.
    let h0 = gpu.zeros("h0", &[1, 2, 8]).unwrap();
    assert!(matches!(
        RnnStream::with_state(&lstm, h0, None),
        Err(Error::InvalidConfig(_))
    ));
    // A chunk with another number of rows.
    let mut stream = RnnStream::new(&gpu, &lstm, 2).unwrap();
    let x = gpu.tensor("x", &[1, 3, I], &[0.0; 3 * I]).unwrap();
    assert!(matches!(
        stream.push(&gpu, &lstm, &x),
        Err(Error::Shape { .. })
    ));
}
