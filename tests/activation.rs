//! `nn::Tanh`, `nn::record_add` and `nn::record_mul` (and its backward) against the f64 formulas on several shapes (odd sizes,
//! more than one workgroup of 64), and a small MLP (`Linear → Tanh → Linear`, squared
//! error) whose first-layer gradient and input gradient are checked by finite differences of
//! an f64 forward on the host: the chain an example's image encoder trains with.

mod common;

use common::{assert_close, gpu};
use recur::nn::{record_add, record_mul, record_mul_backward, Linear, Tanh};
use recur::rng::Rng;
use recur::Recorder;

const SHAPES: [&[usize]; 4] = [&[1], &[7], &[3, 65], &[5, 2, 33]];

#[test]
fn tanh_forward_and_backward_match_f64() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(5);
    for shape in SHAPES {
        let n: usize = shape.iter().product();
        let x = rng.vec_uniform_f32(n, -4.0, 4.0);
        let dy = rng.vec_uniform_f32(n, -1.0, 1.0);
        let xt = gpu.tensor("x", shape, &x).unwrap();
        let dyt = gpu.tensor("dy", shape, &dy).unwrap();
        let mut rec = Recorder::new(&gpu);
        let y = Tanh.record_forward(&mut rec, &xt).unwrap();
        let dx = Tanh.record_backward(&mut rec, &y, &dyt).unwrap();
        rec.run().unwrap();
        assert_eq!(y.shape, shape);
        assert_eq!(dx.shape, shape);
        let want_y: Vec<f64> = x.iter().map(|&v| f64::from(v).tanh()).collect();
        let want_dx: Vec<f64> = want_y
            .iter()
            .zip(&dy)
            .map(|(y, &g)| f64::from(g) * (1.0 - y * y))
            .collect();
        assert_close(
            &format!("tanh {shape:?}"),
            &gpu.read(&y).unwrap(),
            &want_y,
            1e-6,
        );
        assert_close(
            &format!("tanh backward {shape:?}"),
            &gpu.read(&dx).unwrap(),
            &want_dx,
            1e-5,
        );
    }
}

#[test]
fn add_matches_f64_and_refuses_other_shapes() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(6);
    for shape in SHAPES {
        let n: usize = shape.iter().product();
        let a = rng.vec_uniform_f32(n, -1.0, 1.0);
        let b = rng.vec_uniform_f32(n, -1.0, 1.0);
        let at = gpu.tensor("a", shape, &a).unwrap();
        let bt = gpu.tensor("b", shape, &b).unwrap();
        let mut rec = Recorder::new(&gpu);
        let s = record_add(&mut rec, &at, &bt).unwrap();
        rec.run().unwrap();
        let want: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) + f64::from(*y))
            .collect();
        assert_close(
            &format!("add {shape:?}"),
            &gpu.read(&s).unwrap(),
            &want,
            1e-7,
        );
    }
    let a = gpu.zeros("a", &[2, 3]).unwrap();
    let b = gpu.zeros("b", &[3, 2]).unwrap();
    let mut rec = Recorder::new(&gpu);
    assert!(matches!(
        record_add(&mut rec, &a, &b),
        Err(recur::Error::Shape { .. })
    ));
    assert!(matches!(
        Tanh.record_backward(&mut rec, &a, &b),
        Err(recur::Error::Shape { .. })
    ));
}

#[test]
fn mul_and_its_backward_match_f64() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(8);
    for shape in SHAPES {
        let n: usize = shape.iter().product();
        let [a, b, dy] = [0, 1, 2].map(|_| rng.vec_uniform_f32(n, -2.0, 2.0));
        let [at, bt, dyt] = [&a, &b, &dy].map(|v| gpu.tensor("in", shape, v).unwrap());
        let mut rec = Recorder::new(&gpu);
        let p = record_mul(&mut rec, &at, &bt).unwrap();
        let (da, db) = record_mul_backward(&mut rec, &at, &bt, &dyt).unwrap();
        rec.run().unwrap();
        let prod = |x: &[f32], y: &[f32]| -> Vec<f64> {
            x.iter()
                .zip(y)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .collect()
        };
        assert_close(
            &format!("mul {shape:?}"),
            &gpu.read(&p).unwrap(),
            &prod(&a, &b),
            1e-7,
        );
        assert_close(
            &format!("mul da {shape:?}"),
            &gpu.read(&da).unwrap(),
            &prod(&dy, &b),
            1e-7,
        );
        assert_close(
            &format!("mul db {shape:?}"),
            &gpu.read(&db).unwrap(),
            &prod(&dy, &a),
            1e-7,
        );
    }
    let a = gpu.zeros("a", &[2, 3]).unwrap();
    let b = gpu.zeros("b", &[6]).unwrap();
    let mut rec = Recorder::new(&gpu);
    assert!(matches!(
        record_mul(&mut rec, &a, &b),
        Err(recur::Error::Shape { .. })
    ));
    assert!(matches!(
        record_mul_backward(&mut rec, &a, &a, &b),
        Err(recur::Error::Shape { .. })
    ));
}

/// `L = ½ Σ (W2 tanh(W1 x + b1) + b2 − t)²` in f64 on the host.
fn mlp_loss(w1: &[f64], w2: &[f64], x: &[f64], t: &[f64], dims: (usize, usize, usize)) -> f64 {
    let (i, h, o) = dims;
    let rows = x.len() / i;
    let mut loss = 0.0;
    for r in 0..rows {
        let hid: Vec<f64> = (0..h)
            .map(|k| {
                let s: f64 = (0..i).map(|j| w1[k * i + j] * x[r * i + j]).sum();
                (s + w1[h * i + k]).tanh()
            })
            .collect();
        for m in 0..o {
            let s: f64 = (0..h).map(|k| w2[m * h + k] * hid[k]).sum::<f64>() + w2[o * h + m];
            loss += 0.5 * (s - t[r * o + m]).powi(2);
        }
    }
    loss
}

#[test]
fn mlp_gradients_match_finite_differences() {
    let Some(gpu) = gpu() else { return };
    let (i, h, o, rows) = (5, 9, 3, 4);
    let mut rng = Rng::new(7);
    let w1 = rng.vec_uniform_f32(Linear::param_count(i, h, true), -0.8, 0.8);
    let w2 = rng.vec_uniform_f32(Linear::param_count(h, o, true), -0.8, 0.8);
    let x = rng.vec_uniform_f32(rows * i, -1.0, 1.0);
    let t = rng.vec_uniform_f32(rows * o, -1.0, 1.0);
    let l1 = Linear::new(&gpu, i, h, true, &w1).unwrap();
    let l2 = Linear::new(&gpu, h, o, true, &w2).unwrap();
    let xt = gpu.tensor("x", &[rows, i], &x).unwrap();
    // dL/dout = out − t, formed on the host from a forward-only run.
    let mut rec = Recorder::new(&gpu);
    let z = l1.record_forward(&mut rec, &xt).unwrap();
    let a = Tanh.record_forward(&mut rec, &z).unwrap();
    let out = l2.record_forward(&mut rec, &a).unwrap();
    rec.run().unwrap();
    let dout: Vec<f32> = gpu
        .read(&out)
        .unwrap()
        .iter()
        .zip(&t)
        .map(|(y, t)| y - t)
        .collect();
    let doutt = gpu.tensor("dout", &[rows, o], &dout).unwrap();
    let mut rec = Recorder::new(&gpu);
    let da = l2.record_backward(&mut rec, &a, &doutt, false).unwrap();
    let dz = Tanh.record_backward(&mut rec, &a, &da).unwrap();
    let dx = l1.record_backward(&mut rec, &xt, &dz, false).unwrap();
    rec.run().unwrap();

    let f = |v: &[f32]| v.iter().map(|&e| f64::from(e)).collect::<Vec<f64>>();
    let (w1d, w2d, xd, td) = (f(&w1), f(&w2), f(&x), f(&t));
    let eps = 1e-6;
    let fd = |k: usize, of_x: bool| {
        let (mut wp, mut wm, mut xp, mut xm) = (w1d.clone(), w1d.clone(), xd.clone(), xd.clone());
        if of_x {
            xp[k] += eps;
            xm[k] -= eps;
        } else {
            wp[k] += eps;
            wm[k] -= eps;
        }
        (mlp_loss(&wp, &w2d, &xp, &td, (i, h, o)) - mlp_loss(&wm, &w2d, &xm, &td, (i, h, o)))
            / (2.0 * eps)
    };
    let want_dw1: Vec<f64> = (0..w1.len()).map(|k| fd(k, false)).collect();
    let want_dx: Vec<f64> = (0..x.len()).map(|k| fd(k, true)).collect();
    assert_close(
        "mlp dW1, db1",
        &gpu.read(&l1.grads).unwrap(),
        &want_dw1,
        1e-4,
    );
    assert_close("mlp dx", &gpu.read(&dx).unwrap(), &want_dx, 1e-4);
}
