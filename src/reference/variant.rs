//! One forward step of the general cells of ONNX's `RNN`, `GRU` and `LSTM` operators in f64:
//! the oracle of `shaders/step_onnx.wgsl` ([`crate::kernels::step_onnx`]). Gate blocks in
//! recur's (PyTorch's) order — LSTM `[i | f | g | o]`, GRU `[r | z | n]` — and the options of
//! [`crate::rnn::CellVariant`], with onnxruntime's order of operations: a peephole term is
//! added before the clip, the clip is applied to every pre-activation (bias included) before
//! its activation, never to `c`.

use super::cells::sigmoid;
use super::matmul::matmul;
use crate::kernels::step_onnx::{Activation, ActivationKind};
use crate::rnn::CellKind;

/// `a` at `x`.
pub fn activation(a: Activation, x: f64) -> f64 {
    let (alpha, beta) = (f64::from(a.alpha), f64::from(a.beta));
    match a.kind {
        ActivationKind::Relu => x.max(0.0),
        ActivationKind::Tanh => x.tanh(),
        ActivationKind::Sigmoid => sigmoid(x),
        ActivationKind::Affine => alpha * x + beta,
        ActivationKind::LeakyRelu => {
            if x >= 0.0 {
                x
            } else {
                alpha * x
            }
        }
        ActivationKind::ThresholdedRelu => {
            if x > alpha {
                x
            } else {
                0.0
            }
        }
        ActivationKind::ScaledTanh => alpha * (beta * x).tanh(),
        ActivationKind::HardSigmoid => (alpha * x + beta).clamp(0.0, 1.0),
        ActivationKind::Elu => {
            if x >= 0.0 {
                x
            } else {
                alpha * (x.exp() - 1.0)
            }
        }
        ActivationKind::Softsign => x / (1.0 + x.abs()),
        ActivationKind::Softplus => x.exp().ln_1p(),
    }
}

/// The options of one direction's cell (see [`crate::rnn::CellVariant`]).
#[derive(Clone, Copy, Debug)]
pub struct GeneralCell<'a> {
    /// RNN (either kind: the activation is slot f), LSTM or GRU.
    pub cell: CellKind,
    /// Slots f, g, h.
    pub activations: [Activation; 3],
    /// Clip bound of the pre-activations.
    pub clip: Option<f64>,
    /// LSTM `f = 1 - i`.
    pub input_forget: bool,
    /// GRU `linear_before_reset = 0`.
    pub reset_before: bool,
    /// LSTM `[P_i | P_o | P_f]`, `3H`.
    pub peepholes: Option<&'a [f64]>,
}

/// One step of `cell`: `gx` `[B, G*H]` (`x·W_ihᵀ + b_ih`), `h_prev` `[B, H]`, `c_prev`
/// `[B, H]` (LSTM), `w_hh` `[G*H, H]`, `b_hh` `[G*H]`. Returns `h` and, for the LSTM, `c`.
#[allow(clippy::too_many_arguments)]
pub fn general_step_forward(
    cell: &GeneralCell,
    gx: &[f64],
    h_prev: &[f64],
    c_prev: Option<&[f64]>,
    w_hh: &[f64],
    b_hh: Option<&[f64]>,
    batch: usize,
    hidden: usize,
) -> (Vec<f64>, Option<Vec<f64>>) {
    let h = hidden;
    let g = cell.cell.gates();
    assert_eq!(gx.len(), batch * g * h);
    assert_eq!(h_prev.len(), batch * h);
    let [af, ag, ah] = cell.activations;
    let clip = |x: f64| cell.clip.map_or(x, |c| x.clamp(-c, c));
    let f = |x: f64| activation(af, clip(x));
    let gg = |x: f64| activation(ag, clip(x));
    // gh = h_prev · W_hhᵀ + b_hh, [B, G*H].
    let gh = matmul(h_prev, w_hh, batch, g * h, h, false, true, b_hh);
    let mut h_out = vec![0.0; batch * h];
    let mut c_out = vec![0.0; batch * h];
    match cell.cell {
        CellKind::RnnTanh | CellKind::RnnRelu => {
            for (k, o) in h_out.iter_mut().enumerate() {
                *o = f(gx[k] + gh[k]);
            }
        }
        CellKind::Lstm => {
            let c_prev = c_prev.expect("an LSTM step takes c_prev");
            for b in 0..batch {
                for j in 0..h {
                    let pre = |gate: usize| gx[(b * 4 + gate) * h + j] + gh[(b * 4 + gate) * h + j];
                    let peep = |k: usize| cell.peepholes.map_or(0.0, |p| p[k * h + j]);
                    let cp = c_prev[b * h + j];
                    let i = f(pre(0) + peep(0) * cp);
                    let fg = if cell.input_forget {
                        1.0 - i
                    } else {
                        f(pre(1) + peep(2) * cp)
                    };
                    let c = fg * cp + i * gg(pre(2));
                    let o = f(pre(3) + peep(1) * c);
                    c_out[b * h + j] = c;
                    h_out[b * h + j] = o * activation(ah, c);
                }
            }
        }
        CellKind::Gru => {
            let mut r = vec![0.0; batch * h];
            for b in 0..batch {
                for j in 0..h {
                    r[b * h + j] = f(gx[b * 3 * h + j] + gh[b * 3 * h + j]);
                }
            }
            // linear_before_reset = 0: W_hn (r ⊙ h_prev) + b_hn.
            let rh: Vec<f64> = r.iter().zip(h_prev).map(|(r, h)| r * h).collect();
            let w_hn = &w_hh[2 * h * h..];
            let b_hn = b_hh.map(|b| &b[2 * h..]);
            let gh_rh = matmul(&rh, w_hn, batch, h, h, false, true, b_hn);
            for b in 0..batch {
                for j in 0..h {
                    let at = |gate: usize| b * 3 * h + gate * h + j;
                    let z = f(gx[at(1)] + gh[at(1)]);
                    let n = if cell.reset_before {
                        gg(gx[at(2)] + gh_rh[b * h + j])
                    } else {
                        gg(gx[at(2)] + r[b * h + j] * gh[at(2)])
                    };
                    h_out[b * h + j] = (1.0 - z) * n + z * h_prev[b * h + j];
                }
            }
        }
    }
    let c = (cell.cell == CellKind::Lstm).then_some(c_out);
    (h_out, c)
}
