//! `Linear`: `y = x·Wᵀ + b` (torch's `nn.Linear`) with `dW`, `db` and `dx`, on the crate's
//! one linear op ([`encode_linear_forward`], [`encode_linear_backward`]), which an RNN layer's
//! input projection uses too.

use super::{init, Module, NamedSlice, ParamGroup};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::kernels::matmul::{encode_linear_backward, encode_linear_forward, LinearParams, MatRef};
use crate::rng::Rng;

/// A linear layer. Flat parameters: `weight` `[out, in]` at 0, then `bias` `[out]` at
/// `out * in` when it has one (state_dict order).
#[derive(Debug)]
pub struct Linear {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
    /// Weight then bias, flat.
    pub params: Tensor,
    /// Gradients, same layout.
    pub grads: Tensor,
}

impl Linear {
    /// Number of parameters of a layer of this shape.
    pub fn param_count(in_features: usize, out_features: usize, bias: bool) -> usize {
        out_features * in_features + if bias { out_features } else { 0 }
    }

    /// Uploads a layer with parameters `flat` (weight then bias).
    pub fn new(
        gpu: &Gpu,
        in_features: usize,
        out_features: usize,
        bias: bool,
        flat: &[f32],
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::InvalidConfig(format!(
                "linear layer needs positive sizes, got {in_features} -> {out_features}"
            )));
        }
        let n = Self::param_count(in_features, out_features, bias);
        let params = gpu.tensor("linear.params", &[n], flat)?;
        let grads = gpu.zeros("linear.grads", &[n])?;
        Ok(Linear {
            in_features,
            out_features,
            bias,
            params,
            grads,
        })
    }

    /// A layer with torch's default initialisation drawn from `rng`.
    pub fn init(
        gpu: &Gpu,
        in_features: usize,
        out_features: usize,
        bias: bool,
        rng: &mut Rng,
    ) -> Result<Self> {
        gpu.check_elements("linear", (in_features + 1).saturating_mul(out_features))?;
        let flat = init::linear_params(in_features, out_features, bias, rng);
        Self::new(gpu, in_features, out_features, bias, &flat)
    }

    /// Element offset of the bias in the flat buffers.
    pub fn bias_offset(&self) -> usize {
        self.out_features * self.in_features
    }

    /// Rows of `x` (`numel / in`), or [`Error::Shape`] unless its last axis is `in`.
    fn rows_of(&self, what: &str, x: &Tensor, width: usize) -> Result<usize> {
        if x.shape.last() != Some(&width) || x.numel() == 0 {
            return Err(Error::Shape {
                what: format!("{what} (0 = any, last axis fixed)"),
                expected: vec![0, width],
                got: x.shape.clone(),
            });
        }
        Ok(x.numel() / width)
    }

    /// Runs `y = x·Wᵀ + b` for `x` of shape `[.., in]` in one submission: inference without
    /// a [`Recorder`]. The result `[.., out]` stays on the device.
    ///
    /// ```
    /// # fn main() -> recur::Result<()> {
    /// use recur::{nn::Linear, Gpu};
    /// let gpu = Gpu::new()?;
    /// // weight [[1, 2], [3, 4], [5, 6]] (out 3, in 2), then bias [0.5, 0, -0.5]
    /// let head = Linear::new(&gpu, 2, 3, true, &[1., 2., 3., 4., 5., 6., 0.5, 0., -0.5])?;
    /// let x = gpu.tensor("x", &[1, 2], &[1.0, -1.0])?;
    /// let y = head.forward(&gpu, &x)?;
    /// assert_eq!(y.shape, [1, 3]);
    /// assert_eq!(gpu.read(&y)?, [-0.5, -1.0, -1.5]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn forward(&self, gpu: &Gpu, x: &Tensor) -> Result<Tensor> {
        let mut rec = Recorder::new(gpu);
        let y = self.record_forward(&mut rec, x)?;
        rec.run()?;
        Ok(y)
    }

    /// Records `y = x·Wᵀ + b` for `x` of shape `[.., in]`: a new tensor `[.., out]`.
    pub fn record_forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let rows = self.rows_of("linear input", x, self.in_features)?;
        let mut shape = x.shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = self.out_features;
        }
        self.record_forward_rows(rec, x, 0, rows, &shape)
    }

    /// Records the forward of rows `first..first + rows` of `x` (`[.., in]`, read as
    /// `[numel / in, in]`) into a new tensor of `shape` (`rows * out` elements): a head on
    /// the last time step reads the last `B` rows of `(T, B, in)` in place.
    pub(crate) fn record_forward_rows(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        first: usize,
        rows: usize,
        shape: &[usize],
    ) -> Result<Tensor> {
        let total = self.rows_of("linear input", x, self.in_features)?;
        if first + rows > total || shape.iter().product::<usize>() != rows * self.out_features {
            return Err(Error::Shape {
                what: format!("linear rows {first}..{} of the input", first + rows),
                expected: vec![first + rows, self.in_features],
                got: x.shape.clone(),
            });
        }
        let y = rec.gpu().zeros("linear.out", shape)?;
        encode_linear_forward(
            rec,
            &self.as_params(),
            MatRef::new(&x.buffer, first * self.in_features, self.in_features),
            rows,
            MatRef::new(&y.buffer, 0, self.out_features),
        )?;
        Ok(y)
    }

    /// The layer as [`LinearParams`] (weight at 0, bias after it) for the shared linear op.
    fn as_params(&self) -> LinearParams<'_> {
        LinearParams {
            buffer: &self.params.buffer,
            weight: 0,
            bias: self.bias.then(|| self.bias_offset()),
            in_features: self.in_features,
            out_features: self.out_features,
        }
    }

    /// Records the backward of [`Linear::record_forward`] for input `x` and output gradient
    /// `dy`: `dW (+)= dyᵀ·x`, `db (+)= Σ_rows dy` into [`Linear::grads`] (added with
    /// `accumulate`, else overwritten), and returns `dx = dy·W` shaped like `x`.
    pub fn record_backward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        dy: &Tensor,
        accumulate: bool,
    ) -> Result<Tensor> {
        let rows = self.rows_of("linear input", x, self.in_features)?;
        self.record_backward_rows(rec, x, 0, rows, dy, accumulate, true)?
            .ok_or_else(|| Error::Internal("linear backward made no dx".into()))
    }

    /// [`Linear::record_backward`] of the parameters only, when the input needs no gradient
    /// (the first layer of a model): no `dx` is computed.
    pub fn record_weight_backward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        dy: &Tensor,
        accumulate: bool,
    ) -> Result<()> {
        let rows = self.rows_of("linear input", x, self.in_features)?;
        self.record_backward_rows(rec, x, 0, rows, dy, accumulate, false)?;
        Ok(())
    }

    /// The backward of [`Linear::record_forward_rows`]: `dy` holds `rows` rows of output
    /// gradient for rows `first..first + rows` of `x`; `dx` (when wanted) is shaped like `x`,
    /// zero outside those rows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_backward_rows(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        first: usize,
        rows: usize,
        dy: &Tensor,
        accumulate: bool,
        want_dx: bool,
    ) -> Result<Option<Tensor>> {
        let total = self.rows_of("linear input", x, self.in_features)?;
        let dy_rows = self.rows_of("linear output gradient", dy, self.out_features)?;
        if dy_rows != rows || first + rows > total {
            return Err(Error::Shape {
                what: "linear output gradient".into(),
                expected: vec![rows, self.out_features],
                got: dy.shape.clone(),
            });
        }
        let n_in = self.in_features;
        let x_off = first * n_in;
        let x_rows = MatRef::new(&x.buffer, x_off, n_in);
        let dy_rows = MatRef::new(&dy.buffer, 0, self.out_features);
        if !want_dx {
            return encode_linear_backward(
                rec,
                &self.as_params(),
                &self.grads.buffer,
                accumulate,
                x_rows,
                dy_rows,
                rows,
                None,
                &[],
            )
            .map(|()| None);
        }
        // A new buffer is zero: rows outside `first..first + rows` get no gradient.
        let dx = rec.gpu().zeros("linear.dx", &x.shape)?;
        encode_linear_backward(
            rec,
            &self.as_params(),
            &self.grads.buffer,
            accumulate,
            x_rows,
            dy_rows,
            rows,
            Some((MatRef::new(&dx.buffer, x_off, n_in), false)),
            &[],
        )?;
        Ok(Some(dx))
    }
}

impl Module for Linear {
    fn group(&self) -> ParamGroup<'_> {
        ParamGroup {
            params: &self.params,
            grads: &self.grads,
        }
    }

    fn slices(&self) -> Vec<NamedSlice> {
        let mut v = vec![NamedSlice {
            name: "weight".into(),
            shape: vec![self.out_features, self.in_features],
            offset: 0,
        }];
        if self.bias {
            v.push(NamedSlice {
                name: "bias".into(),
                shape: vec![self.out_features],
                offset: self.bias_offset(),
            });
        }
        v
    }
}
