//! The training kernels in f64, written plainly: embedding, linear, losses, optimizers and
//! clipping, with PyTorch's formulas (see `shaders/loss.wgsl`, `optim.wgsl`, `clip.wgsl`,
//! `embedding.wgsl` for the GPU side and the same conventions).
//!
//! ```text
//! embedding   out[r, :] = W[ids[r], :];  dW[v, :] = Σ_{r: ids[r] = v} dy[r, :]
//! linear      y = x·Wᵀ + b;  dW = dyᵀ·x,  db = Σ_rows dy,  dx = dy·W
//! CE (mean)   loss = 1/N Σ_r (logsumexp(x[r]) - x[r, t_r]);  dx[r] = (softmax(x[r]) - e_{t_r})/N
//! MSE (mean)  loss = 1/n Σ (p - t)²;  dp = 2(p - t)/n
//! SGD         g += wd·p;  buf = first ? g : μ·buf + (1-τ)·g;  g = nesterov ? g + μ·buf : buf;
//!             p -= lr·g
//! Adam(W)     W: p *= 1 - lr·wd, else g += wd·p;  m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²;
//!             p -= lr/(1-β1^t) · m / (√v/√(1-β2^t) + eps)
//! clip norm   total = √(Σ g²) over all buffers;  g *= min(max/(total + 1e-6), 1);  -> total
//! clip value  g = clamp(g, -c, c)
//! ```
//!
//! # Panics
//! On slices whose lengths do not match the sizes given (test code calls these).

use super::matmul::{matmul, sum_rows};

/// `out[r, :] = weight[ids[r], :]`, weight `[V, dim]`.
pub fn embedding_forward(weight: &[f64], ids: &[usize], dim: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(ids.len() * dim);
    for &id in ids {
        out.extend_from_slice(&weight[id * dim..(id + 1) * dim]);
    }
    out
}

/// `dW[v, :] = Σ_{r: ids[r] = v} dy[r, :]`, `[vocab, dim]`.
pub fn embedding_backward(ids: &[usize], dy: &[f64], vocab: usize, dim: usize) -> Vec<f64> {
    assert_eq!(dy.len(), ids.len() * dim, "embedding_backward: dy length");
    let mut dw = vec![0.0; vocab * dim];
    for (r, &id) in ids.iter().enumerate() {
        for d in 0..dim {
            dw[id * dim + d] += dy[r * dim + d];
        }
    }
    dw
}

/// `y = x·Wᵀ + b` for `x` `[rows, n_in]`, `w` `[n_out, n_in]`.
pub fn linear_forward(
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    rows: usize,
    n_in: usize,
    n_out: usize,
) -> Vec<f64> {
    matmul(x, w, rows, n_out, n_in, false, true, b)
}

/// `(dW, db, dx)` of [`linear_forward`] for output gradient `dy` `[rows, n_out]`.
pub fn linear_backward(
    x: &[f64],
    w: &[f64],
    dy: &[f64],
    rows: usize,
    n_in: usize,
    n_out: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let dw = matmul(dy, x, n_out, n_in, rows, true, false, None);
    let db = sum_rows(dy, rows, n_out);
    let dx = matmul(dy, w, rows, n_in, n_out, false, false, None);
    (dw, db, dx)
}

/// Mean cross-entropy of `logits` `[rows, vocab]` against `targets`, and its gradient.
pub fn cross_entropy(
    logits: &[f64],
    targets: &[usize],
    rows: usize,
    vocab: usize,
) -> (f64, Vec<f64>) {
    assert_eq!(logits.len(), rows * vocab, "cross_entropy: logits length");
    assert_eq!(targets.len(), rows, "cross_entropy: targets length");
    let mut loss = 0.0;
    let mut grad = vec![0.0; rows * vocab];
    for r in 0..rows {
        let x = &logits[r * vocab..(r + 1) * vocab];
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        loss += lse - x[targets[r]];
        for v in 0..vocab {
            let mut g = (x[v] - lse).exp();
            if v == targets[r] {
                g -= 1.0;
            }
            grad[r * vocab + v] = g / rows as f64;
        }
    }
    (loss / rows as f64, grad)
}

/// Mean squared error and its gradient.
pub fn mse(pred: &[f64], target: &[f64]) -> (f64, Vec<f64>) {
    assert_eq!(pred.len(), target.len(), "mse: lengths");
    let n = pred.len() as f64;
    let loss = pred
        .iter()
        .zip(target)
        .map(|(p, t)| (p - t) * (p - t))
        .sum::<f64>()
        / n;
    let grad = pred
        .iter()
        .zip(target)
        .map(|(p, t)| 2.0 * (p - t) / n)
        .collect();
    (loss, grad)
}

/// SGD hyperparameters (torch.optim.SGD).
#[derive(Clone, Copy, Debug)]
pub struct SgdHyper {
    /// Learning rate.
    pub lr: f64,
    /// Momentum μ.
    pub momentum: f64,
    /// Dampening τ.
    pub dampening: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// One SGD step; `first` is torch's "no momentum buffer yet".
pub fn sgd_step(p: &mut [f64], g: &[f64], buf: &mut [f64], first: bool, h: &SgdHyper) {
    for i in 0..p.len() {
        let mut gi = g[i] + h.weight_decay * p[i];
        if h.momentum != 0.0 {
            buf[i] = if first {
                gi
            } else {
                h.momentum * buf[i] + (1.0 - h.dampening) * gi
            };
            gi = if h.nesterov {
                gi + h.momentum * buf[i]
            } else {
                buf[i]
            };
        }
        p[i] -= h.lr * gi;
    }
}

/// Adam / AdamW hyperparameters (torch.optim.Adam, torch.optim.AdamW).
#[derive(Clone, Copy, Debug)]
pub struct AdamHyper {
    /// Learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// eps.
    pub eps: f64,
    /// Weight decay: L2 for Adam, decoupled for AdamW.
    pub weight_decay: f64,
    /// AdamW (decoupled weight decay).
    pub decoupled: bool,
}

/// One Adam/AdamW step number `step` (1 on the first).
pub fn adam_step(p: &mut [f64], g: &[f64], m: &mut [f64], v: &mut [f64], step: u64, h: &AdamHyper) {
    let t = step as i32;
    let bc1 = 1.0 - h.beta1.powi(t);
    let bc2 = 1.0 - h.beta2.powi(t);
    for i in 0..p.len() {
        let mut gi = g[i];
        if h.decoupled {
            p[i] *= 1.0 - h.lr * h.weight_decay;
        } else {
            gi += h.weight_decay * p[i];
        }
        m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * gi;
        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * gi * gi;
        p[i] -= h.lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + h.eps);
    }
}

/// `clip_grad_norm_` over several gradient buffers; returns the total norm before clipping.
pub fn clip_grad_norm(grads: &mut [Vec<f64>], max_norm: f64) -> f64 {
    let total = grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt();
    let coef = (max_norm / (total + 1e-6)).min(1.0);
    for g in grads.iter_mut() {
        for x in g.iter_mut() {
            *x *= coef;
        }
    }
    total
}

/// `clip_grad_value_`: clamps every element to `[-clip, clip]`.
pub fn clip_grad_value(g: &mut [f64], clip: f64) {
    for x in g.iter_mut() {
        *x = x.clamp(-clip, clip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_gradient_matches_finite_differences() {
        let logits = [0.3, -1.2, 2.0, 0.1, 0.5, -0.7];
        let targets = [2, 0];
        let (_, g) = cross_entropy(&logits, &targets, 2, 3);
        for i in 0..6 {
            let mut a = logits;
            let mut b = logits;
            a[i] += 1e-6;
            b[i] -= 1e-6;
            let fd =
                (cross_entropy(&a, &targets, 2, 3).0 - cross_entropy(&b, &targets, 2, 3).0) / 2e-6;
            assert!((fd - g[i]).abs() < 1e-8, "{i}: {fd} vs {}", g[i]);
        }
    }

    #[test]
    fn mse_and_clip_by_hand() {
        let (l, g) = mse(&[1.0, 3.0], &[0.0, 1.0]);
        assert_eq!(l, 2.5);
        assert_eq!(g, vec![1.0, 2.0]);
        let mut gs = vec![vec![3.0], vec![4.0]];
        let n = clip_grad_norm(&mut gs, 1.0);
        assert_eq!(n, 5.0);
        assert!((gs[0][0] - 0.6).abs() < 1e-6 && (gs[1][0] - 0.8).abs() < 1e-6);
        let mut v = [-2.0, 0.5, 3.0];
        clip_grad_value(&mut v, 1.0);
        assert_eq!(v, [-1.0, 0.5, 1.0]);
    }

    #[test]
    fn sgd_first_step_clones_the_gradient() {
        let h = SgdHyper {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.5,
            weight_decay: 0.0,
            nesterov: false,
        };
        let mut p = [1.0];
        let mut buf = [0.0];
        sgd_step(&mut p, &[2.0], &mut buf, true, &h);
        assert_eq!(buf, [2.0]);
        sgd_step(&mut p, &[2.0], &mut buf, false, &h);
        assert!((buf[0] - (0.9 * 2.0 + 0.5 * 2.0)).abs() < 1e-12);
    }
}
