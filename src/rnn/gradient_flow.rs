//! Gradient-flow diagnostics: how large the gradient reaching each hidden state is, and the
//! largest singular value of each recurrent weight — the two quantities the lecture's claims
//! about vanishing and exploding gradients are about.
//!
//! - `‖∂L/∂h_t‖`: [`Rnn::record_backward_probed`] records, after each (layer, direction)'s
//!   backward steps, the total gradient reaching `h_t` (from the output at `t` and from the
//!   step after it; for the GRU also the direct `z·h` path) for every `t`, and reduces it on
//!   the device to one f32 per (layer, direction, t) in a [`GradFlowProbe`]: one GEMM
//!   (`dG_h[next(t)]·W_hh` over all steps at once), one scan dispatch and one norm dispatch per
//!   (layer, direction). Nothing is read back inside the sequence; [`GradFlowProbe::read`]
//!   (or [`GradFlowProbe::read_async`] in a browser) is the one small readback, after the
//!   submission.
//! - `σ_max(W_hh)`: [`Rnn::sigma_max_hh`] reads the parameters and computes the spectral
//!   norm on the host in f64 ([`spectral_norm`]: cyclic Jacobi on `WᵀW`). Exact to f64
//!   rounding, unlike power iteration, which converges slowly exactly when the two largest
//!   singular values are close (as in a random matrix rescaled to σ_max = 1), and which
//!   would need a stopping rule; at the sizes one plots (H ≤ a few hundred) it costs
//!   milliseconds, and the diagnostics read it every few steps, not every step.
//!
//! Everything here except the recording is plain host data, usable from a wasm32 build.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::kernels::grad_flow::{self, flags, flow_params, FlowBuffers};
use crate::kernels::matmul::{encode_matmul, Gemm, MatRef};

use super::{CellKind, ParamKind, Rnn, RnnConfig};

/// The device buffer that [`Rnn::record_backward_probed`] writes `‖∂L/∂h_t‖` into: one f32
/// per (layer, direction, t), index `(layer·D + direction)·T + t`. Made once for a config and
/// a sequence length, reused every step.
#[derive(Debug)]
pub struct GradFlowProbe {
    norms: Tensor,
    num_layers: usize,
    num_directions: usize,
    seq_len: usize,
}

/// `‖∂L/∂h_t‖` of one backward pass, on the host.
///
/// `h_t` is the state after step `t` (`t = 0` is the state after the first input, the
/// lecture's `h_1`). The norm is Frobenius over batch × hidden of the total gradient
/// reaching `h_t` — what PyTorch's `h_t.retain_grad()` leaves in `h_t.grad` for an unrolled
/// cell. With an LSTM projection `h_t` is the projected state.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientFlow {
    /// Layers of the stack.
    pub num_layers: usize,
    /// Directions (1 or 2).
    pub num_directions: usize,
    /// Steps T.
    pub seq_len: usize,
    /// The norms, index `(layer·D + direction)·T + t`.
    pub dh_norms: Vec<f32>,
}

impl GradientFlow {
    /// The norms of one (layer, direction) over t (time order, whatever the direction).
    /// Panics if `layer` or `dir` is out of range (a caller's indexing bug, not input).
    pub fn norms(&self, layer: usize, dir: usize) -> &[f32] {
        assert!(layer < self.num_layers && dir < self.num_directions);
        let s = (layer * self.num_directions + dir) * self.seq_len;
        &self.dh_norms[s..s + self.seq_len]
    }

    /// `‖∂L/∂h_first‖ / ‖∂L/∂h_last‖` in the order the direction visits the steps (`h_1`
    /// over `h_T` forward, `h_T` over `h_1` reverse): far below 1 when gradients vanish on
    /// the way back, far above when they explode. `NaN` when either is not finite or the
    /// last is zero.
    pub fn ratio_first_last(&self, layer: usize, dir: usize) -> f64 {
        let n = self.norms(layer, dir);
        let (first, last) = if dir == 0 {
            (n[0], n[self.seq_len - 1])
        } else {
            (n[self.seq_len - 1], n[0])
        };
        let (first, last) = (f64::from(first), f64::from(last));
        if !first.is_finite() || !last.is_finite() || last == 0.0 {
            return f64::NAN;
        }
        first / last
    }
}

impl GradFlowProbe {
    /// A probe for stacks shaped like `cfg` over `seq_len` steps.
    pub fn new(gpu: &Gpu, cfg: &RnnConfig, seq_len: usize) -> Result<Self> {
        if seq_len == 0 {
            return Err(Error::InvalidConfig(
                "a gradient-flow probe needs at least one step".into(),
            ));
        }
        let n = cfg
            .num_layers
            .checked_mul(cfg.num_directions())
            .and_then(|v| v.checked_mul(seq_len))
            .ok_or_else(|| Error::Overflow("gradient-flow probe size".into()))?;
        Ok(GradFlowProbe {
            norms: gpu.zeros("rnn.grad_flow", &[n])?,
            num_layers: cfg.num_layers,
            num_directions: cfg.num_directions(),
            seq_len,
        })
    }

    /// Steps T this probe measures.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// The device tensor of norms (`[L·D·T]`).
    pub fn tensor(&self) -> &Tensor {
        &self.norms
    }

    /// Reads the norms of the last recorded backward (waits for the GPU).
    pub fn read(&self, gpu: &Gpu) -> Result<GradientFlow> {
        Ok(GradientFlow {
            num_layers: self.num_layers,
            num_directions: self.num_directions,
            seq_len: self.seq_len,
            dh_norms: gpu.read(&self.norms)?,
        })
    }

    /// [`GradFlowProbe::read`] as a future, for the browser, where nothing may block: the
    /// copy is queued after the work submitted so far and resolves once it is mapped
    /// (`map_async`), so only this readback waits for the probed step.
    pub async fn read_async(&self, gpu: &Gpu) -> Result<GradientFlow> {
        Ok(GradientFlow {
            num_layers: self.num_layers,
            num_directions: self.num_directions,
            seq_len: self.seq_len,
            dh_norms: gpu.read_async(&self.norms).await?,
        })
    }

    /// [`Error::InvalidConfig`] unless the probe fits `cfg` and `seq` steps.
    pub(super) fn check(&self, cfg: &RnnConfig, seq: usize) -> Result<()> {
        if self.num_layers != cfg.num_layers
            || self.num_directions != cfg.num_directions()
            || self.seq_len != seq
        {
            return Err(Error::InvalidConfig(format!(
                "the gradient-flow probe is for {} layers x {} directions x {} steps, the \
                 backward has {} x {} x {seq}",
                self.num_layers,
                self.num_directions,
                self.seq_len,
                cfg.num_layers,
                cfg.num_directions()
            )));
        }
        Ok(())
    }
}

/// What one (layer, direction) of the backward hands the probe.
pub(super) struct DirFlow<'a> {
    pub(super) layer: usize,
    pub(super) dir: usize,
    pub(super) seq: usize,
    pub(super) batch: usize,
    /// The time-major output gradient of this layer, `(T, B, D·W)`.
    pub(super) dy: &'a Tensor,
    /// Gate gradients on the hidden side, `(T·B, G·H)`.
    pub(super) dgh: &'a Tensor,
    /// The GRU's saved activations.
    pub(super) acts: Option<&'a Tensor>,
    /// With an LSTM projection: each step's `dh_t`, `(T, B, P)`, complete already.
    pub(super) dhs: Option<&'a Tensor>,
    /// The carries of the step kernels (dhn before the steps), and this slot's offset.
    pub(super) carry_h: &'a Tensor,
    pub(super) carry_off: usize,
    /// Offset of W_hh in the parameters.
    pub(super) w_hh: usize,
}

/// The scratch `(T, B, W)` buffer of a (layer, direction) between
/// [`record_before_steps`] and [`record_after_steps`].
pub(super) struct FlowScratch(Option<Tensor>);

/// Before the steps of a (layer, direction) change the carry: keeps dhn as the first
/// backward step's row of the scratch buffer (no scratch with a projection: `dhs` has it).
pub(super) fn record_before_steps(
    rec: &mut Recorder,
    rnn: &Rnn,
    f: &DirFlow,
) -> Result<FlowScratch> {
    if f.dhs.is_some() {
        return Ok(FlowScratch(None));
    }
    let bo = f.batch * rnn.cfg.out_hidden();
    let scratch = rec
        .gpu()
        .zeros("rnn.grad_flow.dh", &[f.seq, f.batch, rnn.cfg.out_hidden()])?;
    let first = if f.dir == 0 { f.seq - 1 } else { 0 };
    rec.copy(
        &f.carry_h.buffer,
        f.carry_off,
        &scratch.buffer,
        first * bo,
        bo,
    );
    Ok(FlowScratch(Some(scratch)))
}

/// After the steps of a (layer, direction): completes `∂L/∂h_t` for every t and writes its
/// norms into the probe.
pub(super) fn record_after_steps(
    rec: &mut Recorder,
    rnn: &Rnn,
    probe: &GradFlowProbe,
    f: &DirFlow,
    scratch: FlowScratch,
) -> Result<()> {
    let cfg = &rnn.cfg;
    let (oh, gh) = (cfg.out_hidden(), cfg.gate_rows());
    let ow = cfg.num_directions() * oh;
    let (seq, batch) = (f.seq, f.batch);
    let out_off = (f.layer * cfg.num_directions() + f.dir) * seq;
    let dh = match (&scratch.0, f.dhs) {
        (_, Some(dhs)) => dhs,
        (Some(s), None) => s,
        (None, None) => {
            return Err(Error::Internal(
                "gradient flow: no scratch buffer and no dhs".into(),
            ))
        }
    };
    rec.phase("grad_flow");
    if scratch.0.is_some() {
        if seq > 1 {
            // dh[t] = dG_h[next(t)] · W_hh for every t with a next step.
            let (a_t, c_t) = if f.dir == 0 { (1, 0) } else { (0, 1) };
            encode_matmul(
                rec,
                &Gemm {
                    m: (seq - 1) * batch,
                    n: oh,
                    k: gh,
                    a: MatRef::new(&f.dgh.buffer, a_t * batch * gh, gh),
                    trans_a: false,
                    b: MatRef::new(&rnn.params.buffer, f.w_hh, oh),
                    trans_b: false,
                    bias: None,
                    c: MatRef::new(&dh.buffer, c_t * batch * oh, oh),
                    accumulate: false,
                },
            )?;
        }
        let gru = cfg.cell == CellKind::Gru;
        let fl = (if f.dir == 1 { flags::REVERSE } else { 0 }) | (if gru { flags::GRU } else { 0 });
        let acts = match (gru, f.acts) {
            (true, Some(a)) => &a.buffer,
            (true, None) => {
                return Err(Error::Internal(
                    "gradient flow: a GRU backward without saved activations".into(),
                ))
            }
            (false, _) => &f.dy.buffer,
        };
        let p = flow_params(batch, oh, seq, fl, f.dir * oh, ow, out_off)?;
        let bufs = FlowBuffers {
            dy: &f.dy.buffer,
            dh: &dh.buffer,
            acts,
            norms: &probe.norms.buffer,
        };
        grad_flow::encode_scan(rec, &bufs, &p)?;
    }
    let p = flow_params(batch, oh, seq, 0, 0, ow, out_off)?;
    let bufs = FlowBuffers {
        dy: &f.dy.buffer,
        dh: &dh.buffer,
        acts: &f.dy.buffer,
        norms: &probe.norms.buffer,
    };
    grad_flow::encode_norms(rec, &bufs, &p)
}

impl Rnn {
    /// `σ_max(W_hh)` of every (layer, direction), index `layer·D + direction`: the largest
    /// singular value of the stored `weight_hh` (`[G·H, H]`, or `[4H, P]` with a projection;
    /// as `torch.linalg.svdvals(weight_hh_l{k})[0]`). Reads the parameters (waits for the
    /// GPU) and computes in f64 on the host ([`spectral_norm`]).
    pub fn sigma_max_hh(&self, gpu: &Gpu) -> Result<Vec<f64>> {
        let flat = gpu.read(&self.params)?;
        let cfg = &self.cfg;
        let mut out = Vec::with_capacity(cfg.num_layers * cfg.num_directions());
        for layer in 0..cfg.num_layers {
            for dir in 0..cfg.num_directions() {
                let e = self
                    .layout
                    .find(layer, dir, ParamKind::WeightHh)
                    .ok_or_else(|| {
                        Error::Internal(format!("no weight_hh for layer {layer} direction {dir}"))
                    })?;
                let w = flat
                    .get(e.range())
                    .ok_or_else(|| Error::Internal("weight_hh outside the parameters".into()))?;
                out.push(spectral_norm(w, cfg.gate_rows(), cfg.out_hidden())?);
            }
        }
        Ok(out)
    }
}

/// The largest singular value of the row-major `rows × cols` matrix `w`, in f64: the square
/// root of the largest eigenvalue of `WᵀW` (`cols × cols`), found by the cyclic Jacobi
/// eigenvalue method, which converges quadratically whatever the gap between eigenvalues.
/// Not finite entries give `NaN`.
pub fn spectral_norm(w: &[f32], rows: usize, cols: usize) -> Result<f64> {
    if rows.checked_mul(cols) != Some(w.len()) || cols == 0 {
        return Err(Error::Shape {
            what: "spectral_norm matrix".into(),
            expected: vec![rows, cols],
            got: vec![w.len()],
        });
    }
    if w.iter().any(|v| !v.is_finite()) {
        return Ok(f64::NAN);
    }
    let n = cols;
    // a = WᵀW
    let mut a = vec![0.0f64; n * n];
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        for i in 0..n {
            let wi = f64::from(row[i]);
            if wi == 0.0 {
                continue;
            }
            for j in i..n {
                a[i * n + j] += wi * f64::from(row[j]);
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            a[i * n + j] = a[j * n + i];
        }
    }
    let frob: f64 = a.iter().map(|v| v * v).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * frob || frob == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (a[p * n + p], a[q * n + q]);
                // Rotation zeroing a[p][q] (Golub & Van Loan, Algorithm 8.4.1).
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let top = (0..n).map(|i| a[i * n + i]).fold(0.0f64, f64::max);
    Ok(top.max(0.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectral_norm_of_known_matrices() {
        // diag(3, -5, 2) padded with a zero row: σ_max = 5
        let w = [3.0, 0.0, 0.0, 0.0, -5.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0];
        assert!((spectral_norm(&w, 4, 3).unwrap() - 5.0).abs() < 1e-12);
        // [[1, 1], [0, 1]]: σ_max = golden ratio
        let g = (1.0 + 5f64.sqrt()) / 2.0;
        assert!((spectral_norm(&[1.0, 1.0, 0.0, 1.0], 2, 2).unwrap() - g).abs() < 1e-12);
        // rank one u vᵀ: σ_max = ‖u‖‖v‖
        let (u, v) = ([1.0f32, 2.0, 2.0], [3.0f32, 4.0]);
        let w: Vec<f32> = u
            .iter()
            .flat_map(|a| v.iter().map(move |b| a * b))
            .collect();
        assert!((spectral_norm(&w, 3, 2).unwrap() - 15.0).abs() < 1e-9);
        assert!(spectral_norm(&w, 2, 2).is_err());
        assert!(spectral_norm(&[f32::NAN], 1, 1).unwrap().is_nan());
    }

    #[test]
    fn spectral_norm_matches_power_iteration_on_a_random_matrix() {
        let mut rng = crate::rng::Rng::new(3);
        let (r, c) = (21, 13);
        let w: Vec<f32> = (0..r * c).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        // many power iterations on WᵀW as an independent check
        let mut x = vec![1.0f64; c];
        let mut lambda = 0.0;
        for _ in 0..5000 {
            let wx: Vec<f64> = (0..r)
                .map(|i| (0..c).map(|j| f64::from(w[i * c + j]) * x[j]).sum())
                .collect();
            let y: Vec<f64> = (0..c)
                .map(|j| (0..r).map(|i| f64::from(w[i * c + j]) * wx[i]).sum())
                .collect();
            lambda = y.iter().map(|v| v * v).sum::<f64>().sqrt();
            x = y.iter().map(|v| v / lambda).collect();
        }
        let s = spectral_norm(&w, r, c).unwrap();
        assert!(
            (s - lambda.sqrt()).abs() < 1e-9 * s,
            "{s} vs {}",
            lambda.sqrt()
        );
    }
}
