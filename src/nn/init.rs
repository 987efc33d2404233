//! PyTorch's default initialisations, drawn from a seeded [`Rng`] so that a seed fixes every
//! value on every platform (the values differ from torch's, whose generator is not ours; the
//! distributions are the same):
//!
//! - `nn.RNN` / `nn.LSTM` / `nn.GRU`: every parameter (weights, biases, projections)
//!   `U(-1/√H, 1/√H)`, H = hidden_size;
//! - `nn.Embedding`: weight `N(0, 1)`;
//! - `nn.Linear`: weight and bias `U(-1/√in, 1/√in)` (what kaiming_uniform_ with `a = √5`
//!   works out to for the weight, and torch's bias rule).
//!
//! Parameters are drawn in flat-buffer (state_dict) order, one value after another.

use crate::rng::Rng;
use crate::rnn::{ParamLayout, RnnConfig};

/// `n` values of `U(-bound, bound)`.
fn uniform(rng: &mut Rng, n: usize, bound: f64) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-bound, bound) as f32).collect()
}

/// Flat parameters of an RNN stack in [`ParamLayout`] order, each `U(-1/√H, 1/√H)`.
pub fn rnn_params(cfg: &RnnConfig, rng: &mut Rng) -> Vec<f32> {
    let total = ParamLayout::new(cfg).total;
    let bound = 1.0 / (cfg.hidden_size.max(1) as f64).sqrt();
    uniform(rng, total, bound)
}

/// An embedding table `[num, dim]` of `N(0, 1)` values.
pub fn embedding_weight(num: usize, dim: usize, rng: &mut Rng) -> Vec<f32> {
    rng.vec_normal_f32(num * dim)
}

/// Flat parameters of a linear layer: weight `[out, in]` then (if `bias`) bias `[out]`,
/// all `U(-1/√in, 1/√in)`.
pub fn linear_params(
    in_features: usize,
    out_features: usize,
    bias: bool,
    rng: &mut Rng,
) -> Vec<f32> {
    let bound = 1.0 / (in_features.max(1) as f64).sqrt();
    let n = out_features * in_features + if bias { out_features } else { 0 };
    uniform(rng, n, bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rnn::CellKind;

    #[test]
    fn bounds_and_reproducibility() {
        let cfg = RnnConfig::new(CellKind::Lstm, 3, 16);
        let a = rnn_params(&cfg, &mut Rng::new(5));
        assert_eq!(a, rnn_params(&cfg, &mut Rng::new(5)));
        assert_ne!(a, rnn_params(&cfg, &mut Rng::new(6)));
        assert!(a.iter().all(|x| x.abs() <= 0.25));
        assert!(a.iter().any(|x| x.abs() > 0.2));
        let l = linear_params(4, 3, true, &mut Rng::new(1));
        assert_eq!(l.len(), 15);
        assert!(l.iter().all(|x| x.abs() <= 0.5));
        let e = embedding_weight(10, 10, &mut Rng::new(2));
        let var = e.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / 100.0;
        assert!(var > 0.5 && var < 1.6, "{var}");
    }
}
