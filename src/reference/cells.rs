//! One time step of one direction of one layer, for a batch of `B` rows, forward and backward.
//!
//! Every step function takes the input projection already computed for the whole sequence,
//! `gx = x_t · W_ihᵀ + b_ih` (`[B, G*H]`), and adds the recurrent projection itself,
//! `gh = h_prev · W_hhᵀ + b_hh` (`[B, G*H]`), because the GRU needs the two apart.
//!
//! Backward returns a [`StepGrads`]: the gradient of the loss with respect to `gx` (which
//! becomes `dW_ih`, `db_ih` and `dx` after the time loop), with respect to `gh` (which becomes
//! `dW_hh` and `db_hh`), and the gradients carried to the previous step, `dh_prev` (and
//! `dc_prev` for the LSTM). `dh_prev` already includes the path through `W_hh`.

use super::matmul::matmul;

/// `σ(x) = 1 / (1 + e^-x)`.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The result of one forward step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOut {
    /// The new hidden state `h_t`, `[B, H]`.
    pub h: Vec<f64>,
    /// The new cell state `c_t`, `[B, H]` (LSTM only).
    pub c: Option<Vec<f64>>,
    /// What backward needs, `[B, K]` row-major, per cell:
    /// - RNN (`K = H`): the pre-activation `gx + gh`;
    /// - LSTM (`K = 4H`): the activated gates `[i | f | g | o]`;
    /// - GRU (`K = 4H`): `[r | z | n | gh_n]`, the activated gates and `W_hn h_prev + b_hn`.
    pub gates: Vec<f64>,
}

/// The gradients of one backward step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepGrads {
    /// `dL/dgx`, `[B, G*H]`: the gradient of the input projection `x_t · W_ihᵀ + b_ih`.
    pub dgx: Vec<f64>,
    /// `dL/dgh`, `[B, G*H]`: the gradient of the recurrent projection `h_prev · W_hhᵀ + b_hh`
    /// (equal to `dgx` except for the GRU's `n` block).
    pub dgh: Vec<f64>,
    /// `dL/dh_prev`, `[B, H]`, through every path.
    pub dh_prev: Vec<f64>,
    /// `dL/dc_prev`, `[B, H]` (LSTM only).
    pub dc_prev: Option<Vec<f64>>,
}

/// `gh = h_prev · W_hhᵀ + b_hh`, `[B, G*H]`. `h_prev` is `[B, K]` with `K = H`, or `P` for an
/// LSTM with a projection (`W_hh` is then `[4H, P]`).
fn recurrent(
    h_prev: &[f64],
    w_hh: &[f64],
    b_hh: Option<&[f64]>,
    batch: usize,
    _hidden: usize,
) -> Vec<f64> {
    let k = h_prev.len() / batch;
    let gh_rows = w_hh.len() / k;
    matmul(h_prev, w_hh, batch, gh_rows, k, false, true, b_hh)
}

/// `dgh · W_hh`, `[B, K]`: the gradient reaching `h_prev` through the recurrent matrix.
fn recurrent_back(dgh: &[f64], w_hh: &[f64], batch: usize, _hidden: usize) -> Vec<f64> {
    let gh_rows = dgh.len() / batch;
    let k = w_hh.len() / gh_rows;
    matmul(dgh, w_hh, batch, k, gh_rows, false, false, None)
}

/// One step of the Elman RNN: `h = act(gx + h_prev · W_hhᵀ + b_hh)`, `act` = relu when
/// `relu`, else tanh.
///
/// Shapes: `gx` `[B, H]`, `h_prev` `[B, H]`, `w_hh` `[H, H]`, `b_hh` `[H]`.
pub fn rnn_step_forward(
    relu: bool,
    gx: &[f64],
    h_prev: &[f64],
    w_hh: &[f64],
    b_hh: Option<&[f64]>,
    batch: usize,
    hidden: usize,
) -> StepOut {
    assert_eq!(gx.len(), batch * hidden);
    let mut pre = recurrent(h_prev, w_hh, b_hh, batch, hidden);
    for (p, g) in pre.iter_mut().zip(gx) {
        *p += g;
    }
    let h = pre
        .iter()
        .map(|&p| if relu { p.max(0.0) } else { p.tanh() })
        .collect();
    StepOut {
        h,
        c: None,
        gates: pre,
    }
}

/// Backward of [`rnn_step_forward`]: `pre` is its `gates` (the pre-activation, `[B, H]`), `dh`
/// the gradient of `h` (`[B, H]`). The relu derivative is 1 where `pre > 0` and 0 elsewhere
/// (0 at exactly 0).
pub fn rnn_step_backward(
    relu: bool,
    pre: &[f64],
    w_hh: &[f64],
    dh: &[f64],
    batch: usize,
    hidden: usize,
) -> StepGrads {
    assert_eq!(pre.len(), batch * hidden);
    assert_eq!(dh.len(), batch * hidden);
    let dpre: Vec<f64> = pre
        .iter()
        .zip(dh)
        .map(|(&p, &d)| {
            if relu {
                if p > 0.0 {
                    d
                } else {
                    0.0
                }
            } else {
                let t = p.tanh();
                d * (1.0 - t * t)
            }
        })
        .collect();
    let dh_prev = recurrent_back(&dpre, w_hh, batch, hidden);
    StepGrads {
        dgx: dpre.clone(),
        dgh: dpre,
        dh_prev,
        dc_prev: None,
    }
}

/// One LSTM step. Gates `[i | f | g | o]` of `gx + h_prev · W_hhᵀ + b_hh`; `i, f, o` sigmoid,
/// `g` tanh; `c = f*c_prev + i*g`, `h = o*tanh(c)`.
///
/// Shapes: `gx` `[B, 4H]`, `h_prev`, `c_prev` `[B, H]`, `w_hh` `[4H, H]`, `b_hh` `[4H]`. With a
/// projection `h_prev` is `[B, P]` and `w_hh` `[4H, P]`; the returned `h` is then the
/// unprojected `o * tanh(c)` (`[B, H]`), which the caller multiplies by `W_hrᵀ`.
#[allow(clippy::too_many_arguments)]
pub fn lstm_step_forward(
    gx: &[f64],
    h_prev: &[f64],
    c_prev: &[f64],
    w_hh: &[f64],
    b_hh: Option<&[f64]>,
    batch: usize,
    hidden: usize,
) -> StepOut {
    let hs = hidden;
    assert_eq!(gx.len(), batch * 4 * hs);
    assert_eq!(c_prev.len(), batch * hs);
    let gh = recurrent(h_prev, w_hh, b_hh, batch, hs);
    let mut gates = vec![0.0; batch * 4 * hs];
    let mut c = vec![0.0; batch * hs];
    let mut h = vec![0.0; batch * hs];
    for b in 0..batch {
        let row = b * 4 * hs;
        for j in 0..hs {
            let pre = |gate: usize| gx[row + gate * hs + j] + gh[row + gate * hs + j];
            let i = sigmoid(pre(0));
            let f = sigmoid(pre(1));
            let g = pre(2).tanh();
            let o = sigmoid(pre(3));
            let cn = f * c_prev[b * hs + j] + i * g;
            c[b * hs + j] = cn;
            h[b * hs + j] = o * cn.tanh();
            gates[row + j] = i;
            gates[row + hs + j] = f;
            gates[row + 2 * hs + j] = g;
            gates[row + 3 * hs + j] = o;
        }
    }
    StepOut {
        h,
        c: Some(c),
        gates,
    }
}

/// Backward of [`lstm_step_forward`]: `gates` `[B, 4H]` and `c` `[B, H]` are what it returned,
/// `c_prev` its input; `dh`, `dc` the gradients of `h` and `c` from later on (`[B, H]`).
#[allow(clippy::too_many_arguments)]
pub fn lstm_step_backward(
    gates: &[f64],
    c_prev: &[f64],
    c: &[f64],
    w_hh: &[f64],
    dh: &[f64],
    dc: &[f64],
    batch: usize,
    hidden: usize,
) -> StepGrads {
    let hs = hidden;
    assert_eq!(gates.len(), batch * 4 * hs);
    let mut dpre = vec![0.0; batch * 4 * hs];
    let mut dc_prev = vec![0.0; batch * hs];
    for b in 0..batch {
        let row = b * 4 * hs;
        for j in 0..hs {
            let k = b * hs + j;
            let i = gates[row + j];
            let f = gates[row + hs + j];
            let g = gates[row + 2 * hs + j];
            let o = gates[row + 3 * hs + j];
            let tc = c[k].tanh();
            // h = o * tanh(c)
            let d_o = dh[k] * tc;
            let dct = dc[k] + dh[k] * o * (1.0 - tc * tc);
            // c = f * c_prev + i * g
            let di = dct * g;
            let df = dct * c_prev[k];
            let dg = dct * i;
            dc_prev[k] = dct * f;
            dpre[row + j] = di * i * (1.0 - i);
            dpre[row + hs + j] = df * f * (1.0 - f);
            dpre[row + 2 * hs + j] = dg * (1.0 - g * g);
            dpre[row + 3 * hs + j] = d_o * o * (1.0 - o);
        }
    }
    let dh_prev = recurrent_back(&dpre, w_hh, batch, hs);
    StepGrads {
        dgx: dpre.clone(),
        dgh: dpre,
        dh_prev,
        dc_prev: Some(dc_prev),
    }
}

/// One GRU step (PyTorch's form). With `gh = h_prev · W_hhᵀ + b_hh`, blocks `[r | z | n]`:
/// `r = σ(gx_r + gh_r)`, `z = σ(gx_z + gh_z)`, `n = tanh(gx_n + r * gh_n)`,
/// `h = (1-z)*n + z*h_prev`.
///
/// Shapes: `gx` `[B, 3H]`, `h_prev` `[B, H]`, `w_hh` `[3H, H]`, `b_hh` `[3H]`.
pub fn gru_step_forward(
    gx: &[f64],
    h_prev: &[f64],
    w_hh: &[f64],
    b_hh: Option<&[f64]>,
    batch: usize,
    hidden: usize,
) -> StepOut {
    let hs = hidden;
    assert_eq!(gx.len(), batch * 3 * hs);
    let gh = recurrent(h_prev, w_hh, b_hh, batch, hs);
    let mut gates = vec![0.0; batch * 4 * hs];
    let mut h = vec![0.0; batch * hs];
    for b in 0..batch {
        let row3 = b * 3 * hs;
        let row4 = b * 4 * hs;
        for j in 0..hs {
            let r = sigmoid(gx[row3 + j] + gh[row3 + j]);
            let z = sigmoid(gx[row3 + hs + j] + gh[row3 + hs + j]);
            let ghn = gh[row3 + 2 * hs + j];
            let n = (gx[row3 + 2 * hs + j] + r * ghn).tanh();
            h[b * hs + j] = (1.0 - z) * n + z * h_prev[b * hs + j];
            gates[row4 + j] = r;
            gates[row4 + hs + j] = z;
            gates[row4 + 2 * hs + j] = n;
            gates[row4 + 3 * hs + j] = ghn;
        }
    }
    StepOut { h, c: None, gates }
}

/// Backward of [`gru_step_forward`]: `gates` `[B, 4H]` is what it returned, `h_prev` its
/// input, `dh` the gradient of `h` (`[B, H]`).
pub fn gru_step_backward(
    gates: &[f64],
    h_prev: &[f64],
    w_hh: &[f64],
    dh: &[f64],
    batch: usize,
    hidden: usize,
) -> StepGrads {
    let hs = hidden;
    assert_eq!(gates.len(), batch * 4 * hs);
    let mut dgx = vec![0.0; batch * 3 * hs];
    let mut dgh = vec![0.0; batch * 3 * hs];
    let mut direct = vec![0.0; batch * hs];
    for b in 0..batch {
        let row3 = b * 3 * hs;
        let row4 = b * 4 * hs;
        for j in 0..hs {
            let k = b * hs + j;
            let r = gates[row4 + j];
            let z = gates[row4 + hs + j];
            let n = gates[row4 + 2 * hs + j];
            let ghn = gates[row4 + 3 * hs + j];
            // h = (1-z)*n + z*h_prev
            let dn = dh[k] * (1.0 - z);
            let dz = dh[k] * (h_prev[k] - n);
            direct[k] = dh[k] * z;
            // n = tanh(gx_n + r*gh_n)
            let dn_pre = dn * (1.0 - n * n);
            let dr = dn_pre * ghn;
            let dr_pre = dr * r * (1.0 - r);
            let dz_pre = dz * z * (1.0 - z);
            dgx[row3 + j] = dr_pre;
            dgx[row3 + hs + j] = dz_pre;
            dgx[row3 + 2 * hs + j] = dn_pre;
            dgh[row3 + j] = dr_pre;
            dgh[row3 + hs + j] = dz_pre;
            dgh[row3 + 2 * hs + j] = dn_pre * r;
        }
    }
    let mut dh_prev = recurrent_back(&dgh, w_hh, batch, hs);
    for (d, e) in dh_prev.iter_mut().zip(&direct) {
        *d += e;
    }
    StepGrads {
        dgx,
        dgh,
        dh_prev,
        dc_prev: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn lstm_one_unit_by_hand() {
        // H = 1, B = 1: w_hh = [wi, wf, wg, wo]ᵀ, b_hh = [bi, bf, bg, bo].
        let gx = [0.5, -0.25, 0.75, 0.1];
        let w_hh = [0.2, -0.3, 0.4, 0.6];
        let b_hh = [0.05, 0.0, -0.1, 0.2];
        let (h0, c0) = (0.3, -0.7);
        let out = lstm_step_forward(&gx, &[h0], &[c0], &w_hh, Some(&b_hh), 1, 1);
        let i = sigmoid(0.5 + 0.2 * 0.3 + 0.05);
        let f = sigmoid(-0.25 - 0.3 * 0.3);
        let g = (0.75 + 0.4 * 0.3 - 0.1f64).tanh();
        let o = sigmoid(0.1 + 0.6 * 0.3 + 0.2);
        let c = f * c0 + i * g;
        let h = o * c.tanh();
        close(out.c.as_ref().unwrap()[0], c);
        close(out.h[0], h);
        assert_eq!(out.gates, vec![i, f, g, o]);

        // backward with dh = 1, dc = 0.5, by hand
        let grads = lstm_step_backward(&out.gates, &[c0], &[c], &w_hh, &[1.0], &[0.5], 1, 1);
        let dct = 0.5 + o * (1.0 - c.tanh().powi(2));
        let want = [
            dct * g * i * (1.0 - i),
            dct * c0 * f * (1.0 - f),
            dct * i * (1.0 - g * g),
            c.tanh() * o * (1.0 - o),
        ];
        for (a, b) in grads.dgx.iter().zip(&want) {
            close(*a, *b);
        }
        assert_eq!(grads.dgx, grads.dgh);
        close(grads.dc_prev.unwrap()[0], dct * f);
        let dh0: f64 = want.iter().zip(&w_hh).map(|(d, w)| d * w).sum();
        close(grads.dh_prev[0], dh0);
    }

    #[test]
    fn gru_one_unit_by_hand() {
        let gx = [0.4, -0.2, 0.3];
        let w_hh = [0.5, -0.6, 0.7];
        let b_hh = [0.1, 0.2, -0.3];
        let h0 = 0.8;
        let out = gru_step_forward(&gx, &[h0], &w_hh, Some(&b_hh), 1, 1);
        let r = sigmoid(0.4 + 0.5 * 0.8 + 0.1);
        let z = sigmoid(-0.2 - 0.6 * 0.8 + 0.2);
        let ghn = 0.7 * 0.8 - 0.3;
        let n = (0.3 + r * ghn).tanh();
        close(out.h[0], (1.0 - z) * n + z * h0);
        assert_eq!(out.gates, vec![r, z, n, ghn]);
        assert!(out.c.is_none());
    }

    #[test]
    fn rnn_steps_by_hand() {
        // H = 2, B = 1
        let gx = [0.5, -1.0];
        let w_hh = [1.0, 2.0, -1.0, 0.5];
        let h0 = [0.1, 0.2];
        let pre: [f64; 2] = [0.5 + 0.1 + 0.4, -1.0 - 0.1 + 0.1];
        let t = rnn_step_forward(false, &gx, &h0, &w_hh, None, 1, 2);
        close(t.h[0], pre[0].tanh());
        close(t.h[1], pre[1].tanh());
        let r = rnn_step_forward(true, &gx, &h0, &w_hh, None, 1, 2);
        close(r.h[0], pre[0]);
        close(r.h[1], 0.0);
        let g = rnn_step_backward(true, &r.gates, &w_hh, &[1.0, 1.0], 1, 2);
        assert_eq!(g.dgx, vec![1.0, 0.0]);
        // dh_prev = dpre · W_hh = [1, 0] · [[1, 2], [-1, 0.5]]
        assert_eq!(g.dh_prev, vec![1.0, 2.0]);
        // the relu derivative at exactly 0 is 0
        let z = rnn_step_backward(true, &[0.0], &[1.0], &[1.0], 1, 1);
        assert_eq!(z.dgx, vec![0.0]);
    }
}
