//! Additive attention (`shaders/attention.wgsl`) against the f64 reference
//! (`reference::attention`) on several shapes: one of everything, odd sizes, a source longer
//! than the workgroup (S > 64) and the longest one (S = 256); query, alpha and context at
//! non-zero offsets; the backward overwriting and accumulating. The reference's backward is
//! checked by finite differences first.

mod common;

use common::{assert_close, gpu};
use recur::kernels::attention::{
    encode_backward, encode_forward, AttentionBackward, AttentionForward, AttentionOffsets,
    AttentionShape, MAX_SOURCE,
};
use recur::reference::attention::{attention_backward, attention_forward, Dims};
use recur::rng::Rng;
use recur::Recorder;

struct Case {
    keys: Vec<f64>,
    query: Vec<f64>,
    v: Vec<f64>,
    values: Vec<f64>,
    dctx: Vec<f64>,
}

fn case(n: Dims, seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    let mut draw = |len: usize, scale: f64| -> Vec<f64> {
        // Through f32, so that the GPU sees exactly these values.
        (0..len)
            .map(|_| f64::from(rng.uniform(-scale, scale) as f32))
            .collect()
    };
    Case {
        keys: draw(n.s * n.b * n.a, 1.0),
        query: draw(n.b * n.a, 1.0),
        v: draw(n.a, 1.5),
        values: draw(n.s * n.b * n.d, 1.0),
        dctx: draw(n.b * n.d, 1.0),
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    let n = Dims {
        s: 5,
        b: 3,
        a: 4,
        d: 6,
    };
    let c = case(n, 1);
    let loss = |k: &[f64], q: &[f64], v: &[f64], h: &[f64]| -> f64 {
        let out = attention_forward(n, k, q, v, h);
        out.ctx.iter().zip(&c.dctx).map(|(x, g)| x * g).sum()
    };
    let g = attention_backward(n, &c.keys, &c.query, &c.v, &c.values, &c.dctx);
    let eps = 1e-6;
    // Each input in turn: (which, analytic gradient).
    for (which, grad) in [&g.dkeys, &g.dquery, &g.dv, &g.dvalues]
        .into_iter()
        .enumerate()
    {
        for i in 0..grad.len() {
            let mut ins = [
                c.keys.clone(),
                c.query.clone(),
                c.v.clone(),
                c.values.clone(),
            ];
            ins[which][i] += eps;
            let up = loss(&ins[0], &ins[1], &ins[2], &ins[3]);
            ins[which][i] -= 2.0 * eps;
            let down = loss(&ins[0], &ins[1], &ins[2], &ins[3]);
            let fd = (up - down) / (2.0 * eps);
            assert!(
                (fd - grad[i]).abs() <= 1e-7 + 1e-6 * fd.abs(),
                "input {which} element {i}: analytic {}, finite differences {fd}",
                grad[i]
            );
        }
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// `pad` zeros, then `v`.
fn padded(v: &[f64], pad: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; pad];
    out.extend(f32s(v));
    out
}

#[test]
fn kernels_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let shapes = [
        (1, 1, 1, 1),
        (7, 3, 5, 9),
        (13, 5, 16, 33),
        (70, 2, 65, 20),
        (256, 1, 3, 2),
    ];
    for (i, &(s, b, a, d)) in shapes.iter().enumerate() {
        let n = Dims { s, b, a, d };
        let c = case(n, 10 + i as u64);
        let want = attention_forward(n, &c.keys, &c.query, &c.v, &c.values);
        let want_g = attention_backward(n, &c.keys, &c.query, &c.v, &c.values, &c.dctx);
        // Non-zero offsets for the per-step slices.
        let off = AttentionOffsets {
            query: 3,
            alpha: 5,
            ctx: 2,
        };
        let shape = AttentionShape {
            s_len: s,
            batch: b,
            a_dim: a,
            d_dim: d,
        };
        let t = |label: &str, data: &[f32]| gpu.tensor(label, &[data.len()], data).unwrap();
        let keys = t("keys", &f32s(&c.keys));
        let query = t("query", &padded(&c.query, off.query));
        let v = t("v", &f32s(&c.v));
        let values = t("values", &f32s(&c.values));
        let alpha = gpu.zeros("alpha", &[off.alpha + s * b]).unwrap();
        let ctx = gpu.zeros("ctx", &[off.ctx + b * d]).unwrap();
        let dctx = t("dctx", &padded(&c.dctx, off.ctx));
        let dscores = gpu.zeros("dscores", &[s * b]).unwrap();
        let dvalues = gpu.zeros("dvalues", &[s * b * d]).unwrap();
        let dkeys = gpu.zeros("dkeys", &[s * b * a]).unwrap();
        let dquery = gpu.zeros("dquery", &[off.query + b * a]).unwrap();
        let dv_rows = gpu.zeros("dv_rows", &[b * a]).unwrap();
        let bufs = AttentionBackward {
            keys: &keys.buffer,
            query: &query.buffer,
            v: &v.buffer,
            values: &values.buffer,
            alpha: &alpha.buffer,
            dctx: &dctx.buffer,
            dscores: &dscores.buffer,
            dvalues: &dvalues.buffer,
            dkeys: &dkeys.buffer,
            dquery: &dquery.buffer,
            dv_rows: &dv_rows.buffer,
        };
        let what = format!("S {s} B {b} A {a} D {d}");
        // Backward twice: overwriting, then accumulating (the parameter-like gradients
        // double, dquery is written again).
        for (round, accumulate) in [false, true].into_iter().enumerate() {
            let mut rec = Recorder::new(&gpu);
            let fwd = AttentionForward {
                keys: &keys.buffer,
                query: &query.buffer,
                v: &v.buffer,
                values: &values.buffer,
                alpha: &alpha.buffer,
                ctx: &ctx.buffer,
            };
            encode_forward(&mut rec, shape, off, fwd).unwrap();
            encode_backward(&mut rec, shape, off, accumulate, bufs).unwrap();
            rec.run().unwrap();
            let k = (round + 1) as f64;
            let times = |v: &[f64]| v.iter().map(|x| x * k).collect::<Vec<f64>>();
            let read = |t: &recur::Tensor, from: usize| gpu.read(t).unwrap()[from..].to_vec();
            assert_close(
                &format!("{what}: alpha"),
                &read(&alpha, off.alpha),
                &want.alpha,
                1e-5,
            );
            assert!(
                read(&alpha, 0)[..off.alpha].iter().all(|&x| x == 0.0),
                "{what}: alpha written before its offset"
            );
            assert_close(
                &format!("{what}: ctx"),
                &read(&ctx, off.ctx),
                &want.ctx,
                1e-5,
            );
            let tag = format!("{what}, round {round}");
            assert_close(
                &format!("{tag}: dvalues"),
                &read(&dvalues, 0),
                &times(&want_g.dvalues),
                1e-5,
            );
            assert_close(
                &format!("{tag}: dkeys"),
                &read(&dkeys, 0),
                &times(&want_g.dkeys),
                1e-4,
            );
            assert_close(
                &format!("{tag}: dquery"),
                &read(&dquery, off.query),
                &want_g.dquery,
                1e-4,
            );
            let rows = read(&dv_rows, 0);
            let dv: Vec<f32> = (0..a)
                .map(|j| (0..b).map(|r| rows[r * a + j]).sum())
                .collect();
            assert_close(&format!("{tag}: dv"), &dv, &times(&want_g.dv), 1e-4);
        }
    }
}

#[test]
fn sizes_out_of_range_are_errors() {
    let Some(gpu) = gpu() else { return };
    let buf = gpu.zeros("any", &[4]).unwrap();
    let fwd = AttentionForward {
        keys: &buf.buffer,
        query: &buf.buffer,
        v: &buf.buffer,
        values: &buf.buffer,
        alpha: &buf.buffer,
        ctx: &buf.buffer,
    };
    for (s, b) in [(0, 1), (MAX_SOURCE + 1, 1), (3, 0), (3, 70_000)] {
        let shape = AttentionShape {
            s_len: s,
            batch: b,
            a_dim: 1,
            d_dim: 1,
        };
        let mut rec = Recorder::new(&gpu);
        let r = encode_forward(&mut rec, shape, AttentionOffsets::default(), fwd);
        assert!(
            matches!(r, Err(recur::Error::InvalidConfig(_))),
            "S {s} B {b}: {r:?}"
        );
    }
}
