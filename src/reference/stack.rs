//! The whole stack (layers x directions) over a sequence, forward and backward.

use super::cells::{
    gru_step_backward, gru_step_forward, lstm_step_backward, lstm_step_forward, rnn_step_backward,
    rnn_step_forward, StepGrads, StepOut,
};
use super::matmul::{matmul, sum_rows};
use crate::rnn::{CellKind, ParamKind, ParamLayout, RnnConfig};

/// What one (layer, direction) kept from the forward pass, indexed by time `t` (not by the
/// order the direction visits the steps).
#[derive(Clone, Debug, PartialEq)]
pub struct DirCache {
    /// `h_t` after step `t`, `(T, B, H)` (`(T, B, P)` with a projection).
    pub h: Vec<f64>,
    /// The unprojected `o * tanh(c_t)`, `(T, B, H)`; empty unless the LSTM has a projection.
    pub r: Vec<f64>,
    /// `c_t` after step `t`, `(T, B, H)`; empty unless LSTM.
    pub c: Vec<f64>,
    /// The step's `gates` (see [`StepOut::gates`]), `(T, B, K)`.
    pub gates: Vec<f64>,
}

/// The result of [`rnn_forward`], with what [`rnn_backward`] needs.
#[derive(Clone, Debug, PartialEq)]
pub struct RefForward {
    /// The top layer's output, `(T, B, D*H)`: `[forward H | reverse H]` on the feature axis.
    pub y: Vec<f64>,
    /// Final hidden states, `(L*D, B, H)`, index `layer*D + direction`. For the reverse
    /// direction that is the state after `t = 0`.
    pub hn: Vec<f64>,
    /// Final cell states, `(L*D, B, H)`; `Some` only for the LSTM.
    pub cn: Option<Vec<f64>>,
    /// The input of each layer, `(T, B, in_l)`: `x` for layer 0, layer `l-1`'s output above.
    pub layer_inputs: Vec<Vec<f64>>,
    /// Per (layer, direction), index `layer*D + direction`.
    pub dirs: Vec<DirCache>,
}

/// The gradients computed by [`rnn_backward`].
#[derive(Clone, Debug, PartialEq)]
pub struct RefGrads {
    /// Gradient of every parameter, flat in [`ParamLayout`] order.
    pub dparams: Vec<f64>,
    /// Gradient of `x`, `(T, B, I)`.
    pub dx: Vec<f64>,
    /// Gradient of `h0`, `(L*D, B, H)` (returned even when `h0` was `None`).
    pub dh0: Vec<f64>,
    /// Gradient of `c0`, `(L*D, B, H)`; `Some` only for the LSTM.
    pub dc0: Option<Vec<f64>>,
    /// `‖∂L/∂h_t‖` (Frobenius over batch × hidden of the total gradient reaching `h_t`: from
    /// the output at `t` and from the step after it), index `(layer*D + direction)*T + t`.
    pub dh_norms: Vec<f64>,
}

/// The parameter slices of one (layer, direction).
struct DirParams<'a> {
    w_ih: &'a [f64],
    w_hh: &'a [f64],
    b_ih: Option<&'a [f64]>,
    b_hh: Option<&'a [f64]>,
    w_hr: Option<&'a [f64]>,
}

fn dir_params<'a>(
    layout: &ParamLayout,
    params: &'a [f64],
    layer: usize,
    dir: usize,
) -> DirParams<'a> {
    let get = |kind| layout.find(layer, dir, kind).map(|e| &params[e.range()]);
    DirParams {
        w_ih: get(ParamKind::WeightIh).expect("weight_ih"),
        w_hh: get(ParamKind::WeightHh).expect("weight_hh"),
        b_ih: get(ParamKind::BiasIh),
        b_hh: get(ParamKind::BiasHh),
        w_hr: get(ParamKind::WeightHr),
    }
}

/// Width of the per-step `gates` cache of a cell.
fn cache_width(cell: CellKind, hidden: usize) -> usize {
    match cell {
        CellKind::RnnTanh | CellKind::RnnRelu => hidden,
        CellKind::Lstm | CellKind::Gru => 4 * hidden,
    }
}

/// The times a direction visits, in order: `0..T` forward, `T-1..=0` reverse.
fn step_order(dir: usize, seq_len: usize) -> Vec<usize> {
    if dir == 0 {
        (0..seq_len).collect()
    } else {
        (0..seq_len).rev().collect()
    }
}

/// Runs the stack forward. See the module comment of [`crate::reference`] for layouts.
///
/// `params` is flat in `ParamLayout::new(cfg)` order; `x` is `(T, B, I)` (time-major whatever
/// `cfg.batch_first` says); `h0`, `c0` are `(L*D, B, H)` or `None` for zeros (`c0` is read
/// only by the LSTM).
pub fn rnn_forward(
    cfg: &RnnConfig,
    params: &[f64],
    x: &[f64],
    seq_len: usize,
    batch: usize,
    h0: Option<&[f64]>,
    c0: Option<&[f64]>,
) -> RefForward {
    let layout = ParamLayout::new(cfg);
    assert_eq!(params.len(), layout.total, "params length");
    assert_eq!(x.len(), seq_len * batch * cfg.input_size, "x length");
    let (hs, nd, nl) = (cfg.hidden_size, cfg.num_directions(), cfg.num_layers);
    // h is `oh` wide (P with a projection, else H); c is always H wide.
    let oh = cfg.out_hidden();
    let state_len = nl * nd * batch * oh;
    let cstate_len = nl * nd * batch * hs;
    if let Some(h0) = h0 {
        assert_eq!(h0.len(), state_len, "h0 length");
    }
    if let Some(c0) = c0 {
        assert_eq!(c0.len(), cstate_len, "c0 length");
    }
    let lstm = cfg.cell == CellKind::Lstm;
    let gr = cfg.gate_rows();
    let kw = cache_width(cfg.cell, hs);
    let out_w = nd * oh;
    let rows = seq_len * batch;
    let bh = batch * hs;
    let bo = batch * oh;

    let mut hn = vec![0.0; state_len];
    let mut cn = vec![0.0; cstate_len];
    let mut layer_inputs = Vec::with_capacity(nl);
    let mut dirs = Vec::with_capacity(nl * nd);
    let mut input = x.to_vec();
    for layer in 0..nl {
        let in_w = cfg.layer_input_size(layer);
        let mut y = vec![0.0; rows * out_w];
        for dir in 0..nd {
            let p = dir_params(&layout, params, layer, dir);
            // this direction's slot in h0/hn (so) and c0/cn (s)
            let so = (layer * nd + dir) * bo;
            let s = (layer * nd + dir) * bh;
            // Gx = X · W_ihᵀ + b_ih for all T*B rows at once
            let gx = matmul(&input, p.w_ih, rows, gr, in_w, false, true, p.b_ih);
            let mut h = h0.map_or(vec![0.0; bo], |h0| h0[so..so + bo].to_vec());
            let mut c = c0.map_or(vec![0.0; bh], |c0| c0[s..s + bh].to_vec());
            let mut cache = DirCache {
                h: vec![0.0; rows * oh],
                r: if p.w_hr.is_some() {
                    vec![0.0; rows * hs]
                } else {
                    Vec::new()
                },
                c: if lstm {
                    vec![0.0; rows * hs]
                } else {
                    Vec::new()
                },
                gates: vec![0.0; rows * kw],
            };
            for t in step_order(dir, seq_len) {
                let gx_t = &gx[t * batch * gr..(t + 1) * batch * gr];
                let out: StepOut = match cfg.cell {
                    CellKind::RnnTanh | CellKind::RnnRelu => rnn_step_forward(
                        cfg.cell == CellKind::RnnRelu,
                        gx_t,
                        &h,
                        p.w_hh,
                        p.b_hh,
                        batch,
                        hs,
                    ),
                    CellKind::Lstm => lstm_step_forward(gx_t, &h, &c, p.w_hh, p.b_hh, batch, hs),
                    CellKind::Gru => gru_step_forward(gx_t, &h, p.w_hh, p.b_hh, batch, hs),
                };
                h = match p.w_hr {
                    // h = W_hr · (o * tanh(c))
                    Some(w_hr) => {
                        cache.r[t * bh..(t + 1) * bh].copy_from_slice(&out.h);
                        matmul(&out.h, w_hr, batch, oh, hs, false, true, None)
                    }
                    None => out.h,
                };
                cache.h[t * bo..(t + 1) * bo].copy_from_slice(&h);
                cache.gates[t * batch * kw..(t + 1) * batch * kw].copy_from_slice(&out.gates);
                if let Some(cv) = out.c {
                    c = cv;
                    cache.c[t * bh..(t + 1) * bh].copy_from_slice(&c);
                }
                for b in 0..batch {
                    let dst = (t * batch + b) * out_w + dir * oh;
                    y[dst..dst + oh].copy_from_slice(&h[b * oh..(b + 1) * oh]);
                }
            }
            hn[so..so + bo].copy_from_slice(&h);
            cn[s..s + bh].copy_from_slice(&c);
            dirs.push(cache);
        }
        layer_inputs.push(std::mem::replace(&mut input, y));
    }
    RefForward {
        y: input,
        hn,
        cn: if lstm { Some(cn) } else { None },
        layer_inputs,
        dirs,
    }
}

/// Backpropagates through the stack: the gradients of
/// `L = sum(y*dy) + sum(hn*dhn) + sum(cn*dcn)`.
///
/// `cfg`, `params`, `x`, `seq_len`, `batch`, `h0`, `c0` are what [`rnn_forward`] got and
/// `fwd` what it returned. `dy` is `(T, B, D*H)`; `dhn`, `dcn` are `(L*D, B, H)` or `None`
/// for zeros (`dcn` is read only by the LSTM).
#[allow(clippy::too_many_arguments)]
pub fn rnn_backward(
    cfg: &RnnConfig,
    params: &[f64],
    x: &[f64],
    seq_len: usize,
    batch: usize,
    h0: Option<&[f64]>,
    c0: Option<&[f64]>,
    fwd: &RefForward,
    dy: &[f64],
    dhn: Option<&[f64]>,
    dcn: Option<&[f64]>,
) -> RefGrads {
    let layout = ParamLayout::new(cfg);
    assert_eq!(params.len(), layout.total, "params length");
    assert_eq!(x.len(), seq_len * batch * cfg.input_size, "x length");
    let (hs, nd, nl) = (cfg.hidden_size, cfg.num_directions(), cfg.num_layers);
    let oh = cfg.out_hidden();
    let out_w = nd * oh;
    let rows = seq_len * batch;
    let bh = batch * hs;
    let bo = batch * oh;
    let state_len = nl * nd * bo;
    let cstate_len = nl * nd * bh;
    assert_eq!(dy.len(), rows * out_w, "dy length");
    if let Some(d) = dhn {
        assert_eq!(d.len(), state_len, "dhn length");
    }
    if let Some(d) = dcn {
        assert_eq!(d.len(), cstate_len, "dcn length");
    }
    let lstm = cfg.cell == CellKind::Lstm;
    let gr = cfg.gate_rows();
    let kw = cache_width(cfg.cell, hs);

    let mut dparams = vec![0.0; layout.total];
    let mut dh_norms = vec![0.0; nl * nd * seq_len];
    let mut dh0 = vec![0.0; state_len];
    let mut dc0 = vec![0.0; cstate_len];
    // gradient of the current layer's output y, (T, B, D*H); starts as dy at the top
    let mut dout = dy.to_vec();
    for layer in (0..nl).rev() {
        let in_w = cfg.layer_input_size(layer);
        let input: &[f64] = if layer == 0 {
            x
        } else {
            &fwd.layer_inputs[layer]
        };
        let mut dinput = vec![0.0; rows * in_w];
        for dir in 0..nd {
            let p = dir_params(&layout, params, layer, dir);
            let s = (layer * nd + dir) * bh;
            let so = (layer * nd + dir) * bo;
            let cache = &fwd.dirs[layer * nd + dir];
            let h_init = h0.map_or(vec![0.0; bo], |h0| h0[so..so + bo].to_vec());
            let c_init = c0.map_or(vec![0.0; bh], |c0| c0[s..s + bh].to_vec());
            // the step before step t in this direction's order: t-1 forward, t+1 reverse
            let prev = |t: usize| -> Option<usize> {
                if dir == 0 {
                    t.checked_sub(1)
                } else if t + 1 < seq_len {
                    Some(t + 1)
                } else {
                    None
                }
            };
            let h_prev_of = |t: usize| -> &[f64] {
                match prev(t) {
                    Some(u) => &cache.h[u * bo..(u + 1) * bo],
                    None => &h_init,
                }
            };
            let c_prev_of = |t: usize| -> &[f64] {
                match prev(t) {
                    Some(u) => &cache.c[u * bh..(u + 1) * bh],
                    None => &c_init,
                }
            };

            let mut dgx_all = vec![0.0; rows * gr];
            let mut dgh_all = vec![0.0; rows * gr];
            // h_prev of each step, laid out by t, for dW_hh = Σ_t dGh_tᵀ · h_prev_t
            let mut hprev_all = vec![0.0; rows * oh];
            let mut dw_hr = vec![0.0; oh * hs];
            let mut dh = dhn.map_or(vec![0.0; bo], |d| d[so..so + bo].to_vec());
            let mut dc = dcn.map_or(vec![0.0; bh], |d| d[s..s + bh].to_vec());
            for t in step_order(dir, seq_len).into_iter().rev() {
                // dh_t = dy[t] (this direction's slice) + what step t+1 carried back
                for b in 0..batch {
                    let src = (t * batch + b) * out_w + dir * oh;
                    for j in 0..oh {
                        dh[b * oh + j] += dout[src + j];
                    }
                }
                dh_norms[(layer * nd + dir) * seq_len + t] =
                    dh.iter().map(|v| v * v).sum::<f64>().sqrt();
                // Through the projection: dr = dh · W_hr, dW_hr += dhᵀ · r.
                let dh_cell = match p.w_hr {
                    Some(w_hr) => {
                        let r = &cache.r[t * bh..(t + 1) * bh];
                        let g = matmul(&dh, r, oh, hs, batch, true, false, None);
                        for (a, v) in dw_hr.iter_mut().zip(&g) {
                            *a += v;
                        }
                        matmul(&dh, w_hr, batch, hs, oh, false, false, None)
                    }
                    None => dh.clone(),
                };
                let gates = &cache.gates[t * batch * kw..(t + 1) * batch * kw];
                let h_prev = h_prev_of(t);
                let g: StepGrads = match cfg.cell {
                    CellKind::RnnTanh | CellKind::RnnRelu => rnn_step_backward(
                        cfg.cell == CellKind::RnnRelu,
                        gates,
                        p.w_hh,
                        &dh,
                        batch,
                        hs,
                    ),
                    CellKind::Lstm => lstm_step_backward(
                        gates,
                        c_prev_of(t),
                        &cache.c[t * bh..(t + 1) * bh],
                        p.w_hh,
                        &dh_cell,
                        &dc,
                        batch,
                        hs,
                    ),
                    CellKind::Gru => gru_step_backward(gates, h_prev, p.w_hh, &dh, batch, hs),
                };
                dgx_all[t * batch * gr..(t + 1) * batch * gr].copy_from_slice(&g.dgx);
                dgh_all[t * batch * gr..(t + 1) * batch * gr].copy_from_slice(&g.dgh);
                hprev_all[t * bo..(t + 1) * bo].copy_from_slice(h_prev);
                dh = g.dh_prev;
                if let Some(d) = g.dc_prev {
                    dc = d;
                }
            }
            dh0[so..so + bo].copy_from_slice(&dh);
            dc0[s..s + bh].copy_from_slice(&dc);

            // weight gradients over all steps at once
            let mut put = |kind: ParamKind, grad: Vec<f64>| {
                let e = layout.find(layer, dir, kind).expect("param entry");
                dparams[e.range()].copy_from_slice(&grad);
            };
            // dW_ih = dGxᵀ · X  ([G*H, in])
            put(
                ParamKind::WeightIh,
                matmul(&dgx_all, input, gr, in_w, rows, true, false, None),
            );
            // dW_hh = dGhᵀ · H_prev  ([G*H, H])
            put(
                ParamKind::WeightHh,
                matmul(&dgh_all, &hprev_all, gr, oh, rows, true, false, None),
            );
            if p.w_hr.is_some() {
                put(ParamKind::WeightHr, dw_hr);
            }
            if cfg.bias {
                put(ParamKind::BiasIh, sum_rows(&dgx_all, rows, gr));
                put(ParamKind::BiasHh, sum_rows(&dgh_all, rows, gr));
            }
            // dX += dGx · W_ih  ([T*B, in])
            let dxd = matmul(&dgx_all, p.w_ih, rows, in_w, gr, false, false, None);
            for (d, v) in dinput.iter_mut().zip(&dxd) {
                *d += v;
            }
        }
        dout = dinput;
    }
    RefGrads {
        dparams,
        dx: dout,
        dh0,
        dc0: if lstm { Some(dc0) } else { None },
        dh_norms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn randv(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| scale * rng.normal()).collect()
    }

    /// One layer, one direction, run step by step by hand, equals rnn_forward.
    #[test]
    fn single_layer_matches_manual_loop() {
        let (t_len, b, i, h) = (3, 2, 3, 4);
        let cfg = RnnConfig::new(CellKind::Gru, i, h);
        let layout = ParamLayout::new(&cfg);
        let mut rng = Rng::new(5);
        let params = randv(&mut rng, layout.total, 0.5);
        let x = randv(&mut rng, t_len * b * i, 1.0);
        let h0 = randv(&mut rng, b * h, 1.0);
        let f = rnn_forward(&cfg, &params, &x, t_len, b, Some(&h0), None);
        let p = |n: &str| &params[layout.by_name(n).unwrap().range()];
        let mut hs = h0.clone();
        for t in 0..t_len {
            let xt = &x[t * b * i..(t + 1) * b * i];
            let gx = matmul(
                xt,
                p("weight_ih_l0"),
                b,
                3 * h,
                i,
                false,
                true,
                Some(p("bias_ih_l0")),
            );
            hs = gru_step_forward(&gx, &hs, p("weight_hh_l0"), Some(p("bias_hh_l0")), b, h).h;
            assert_eq!(&f.y[t * b * h..(t + 1) * b * h], &hs[..]);
        }
        assert_eq!(f.hn, hs);
        assert!(f.cn.is_none());
    }

    /// Bidirectional: the forward half of y at T-1 and the reverse half at 0 are hn; the
    /// reverse direction sees the sequence backwards.
    #[test]
    fn bidirectional_layout() {
        let (t_len, b, i, h) = (4, 3, 2, 3);
        let cfg = RnnConfig::new(CellKind::Lstm, i, h)
            .layers(2)
            .bidirectional(true);
        let layout = ParamLayout::new(&cfg);
        let mut rng = Rng::new(9);
        let params = randv(&mut rng, layout.total, 0.4);
        let x = randv(&mut rng, t_len * b * i, 1.0);
        let f = rnn_forward(&cfg, &params, &x, t_len, b, None, None);
        let ow = 2 * h;
        assert_eq!(f.y.len(), t_len * b * ow);
        assert_eq!(f.hn.len(), 4 * b * h);
        for bb in 0..b {
            // top layer (1): forward slot 2, reverse slot 3
            let fwd_last = &f.y[((t_len - 1) * b + bb) * ow..][..h];
            let rev_first = &f.y[bb * ow + h..][..h];
            assert_eq!(&f.hn[(2 * b + bb) * h..][..h], fwd_last);
            assert_eq!(&f.hn[(3 * b + bb) * h..][..h], rev_first);
        }

        // Reversing x in time: layer 0's reverse direction on x is its forward pass on the
        // reversed x, with the reverse weights.
        let one = RnnConfig::new(CellKind::Lstm, i, h);
        let l1 = ParamLayout::new(&one);
        let mut p1 = vec![0.0; l1.total];
        for e in &l1.entries {
            let src = layout.by_name(&format!("{}_reverse", e.name)).unwrap();
            p1[e.range()].copy_from_slice(&params[src.range()]);
        }
        let mut xr = vec![0.0; x.len()];
        for t in 0..t_len {
            xr[t * b * i..(t + 1) * b * i]
                .copy_from_slice(&x[(t_len - 1 - t) * b * i..(t_len - t) * b * i]);
        }
        let g = rnn_forward(&one, &p1, &xr, t_len, b, None, None);
        let y0 = &f.layer_inputs[1];
        for t in 0..t_len {
            for bb in 0..b {
                let want = &g.y[((t_len - 1 - t) * b + bb) * h..][..h];
                let got = &y0[(t * b + bb) * ow + h..][..h];
                for (a, c) in got.iter().zip(want) {
                    assert!((a - c).abs() < 1e-14);
                }
            }
        }
        assert_eq!(&f.hn[b * h..2 * b * h], &g.hn[..]);
        assert_eq!(
            &f.cn.as_ref().unwrap()[b * h..2 * b * h],
            &g.cn.unwrap()[..]
        );
    }

    /// The gradient of a linear loss in y alone, through one tanh RNN step, by hand.
    #[test]
    fn one_step_rnn_backward_by_hand() {
        let cfg = RnnConfig::new(CellKind::RnnTanh, 1, 1);
        // [w_ih, w_hh, b_ih, b_hh]
        let params = [0.7, -0.4, 0.1, 0.2];
        let x = [0.5];
        let h0 = [0.3];
        let f = rnn_forward(&cfg, &params, &x, 1, 1, Some(&h0), None);
        let pre: f64 = 0.7 * 0.5 - 0.4 * 0.3 + 0.1 + 0.2;
        assert!((f.y[0] - pre.tanh()).abs() < 1e-15);
        let g = rnn_backward(
            &cfg,
            &params,
            &x,
            1,
            1,
            Some(&h0),
            None,
            &f,
            &[2.0],
            Some(&[1.0]),
            None,
        );
        let d = 3.0 * (1.0 - pre.tanh().powi(2));
        let want = [d * 0.5, d * 0.3, d, d];
        for (a, b) in g.dparams.iter().zip(&want) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
        assert!((g.dx[0] - d * 0.7).abs() < 1e-15);
        assert!((g.dh0[0] + d * 0.4).abs() < 1e-15);
        assert!(g.dc0.is_none());
    }
}
