//! criterion benches: the matmul kernel and a whole LSTM sequence (forward, and training),
//! each iteration synchronised with the device (`Recorder::run` waits) before the clock is
//! read. Sizes are small enough for a software adapter; `recur bench` has the full suites.
//!
//!     cargo bench --bench kernels

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use recur::kernels::matmul::{encode_matmul, Gemm, MatRef};
use recur::rng::Rng;
use recur::rnn::Rnn;
use recur::{CellKind, Gpu, ParamLayout, Recorder, RnnConfig};

fn gpu() -> Option<Gpu> {
    match Gpu::new() {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

fn matmul(c: &mut Criterion) {
    let Some(gpu) = gpu() else { return };
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    let mut rng = Rng::new(1);
    for n in [64usize, 128, 256] {
        let a = gpu
            .tensor("a", &[n * n], &rng.vec_normal_f32(n * n))
            .unwrap();
        let b = gpu
            .tensor("b", &[n * n], &rng.vec_normal_f32(n * n))
            .unwrap();
        let out = gpu.zeros("c", &[n * n]).unwrap();
        group.throughput(Throughput::Elements((2 * n * n * n) as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bch, &n| {
            bch.iter(|| {
                let mut rec = Recorder::new(&gpu);
                encode_matmul(
                    &mut rec,
                    &Gemm {
                        m: n,
                        n,
                        k: n,
                        a: MatRef::new(&a.buffer, 0, n),
                        trans_a: false,
                        b: MatRef::new(&b.buffer, 0, n),
                        trans_b: true,
                        bias: None,
                        c: MatRef::new(&out.buffer, 0, n),
                        accumulate: false,
                    },
                )
                .unwrap();
                rec.run().unwrap();
            })
        });
    }
    group.finish();
}

fn lstm_sequence(c: &mut Criterion) {
    let Some(gpu) = gpu() else { return };
    let mut group = c.benchmark_group("lstm_sequence");
    group.sample_size(10);
    // (input, hidden, seq, batch) of a small LSTM.
    let (input, hidden, seq, batch) = (32, 64, 32, 8);
    for train in [false, true] {
        let cfg = RnnConfig::new(CellKind::Lstm, input, hidden);
        let mut rng = Rng::new(2);
        let total = ParamLayout::new(&cfg).total;
        let rnn = Rnn::new(&gpu, cfg, &rng.vec_uniform_f32(total, -0.1, 0.1)).unwrap();
        let x = gpu
            .tensor(
                "x",
                &[seq, batch, input],
                &rng.vec_normal_f32(seq * batch * input),
            )
            .unwrap();
        let dy = gpu
            .tensor(
                "dy",
                &[seq, batch, hidden],
                &rng.vec_normal_f32(seq * batch * hidden),
            )
            .unwrap();
        group.throughput(Throughput::Elements((seq * batch) as u64));
        let mode = if train { "train" } else { "forward" };
        let label = format!("lstm I={input} H={hidden} T={seq} B={batch}");
        group.bench_function(BenchmarkId::new(mode, label), |bch| {
            bch.iter(|| {
                let mut rec = Recorder::new(&gpu);
                if train {
                    let (_, saved) = rnn.record_train(&mut rec, &x, None, None).unwrap();
                    // x needs no gradient, as in `recur bench`'s train rows.
                    rnn.record_weight_backward(&mut rec, &saved, &dy, None, None, false)
                        .unwrap();
                } else {
                    rnn.record_inference(&mut rec, &x, None, None).unwrap();
                }
                rec.run().unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matmul, lstm_sequence);
criterion_main!(benches);
