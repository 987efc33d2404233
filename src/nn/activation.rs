//! Elementwise pieces between layers: [`Tanh`] (torch's `nn.Tanh`) with its gradient,
//! [`record_add`] (`a + b`, whose gradient is the output gradient for both inputs) and
//! [`record_mul`] (`a ⊙ b`, with [`record_mul_backward`]). With them a small MLP
//! (`Linear → Tanh → Linear`) or a fusion of two feature vectors (`tanh(W_a a + W_b b)`, or
//! the product `tanh(W_a a) ⊙ tanh(W_b b)`) trains on the device. Both run on the generic elementwise kernels
//! of `shaders/eager.wgsl` ([`crate::kernels::eager`]).

use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::kernels::eager::{encode_binary, encode_unary, Binary, Unary};

/// `tanh` as a layer, without parameters: forward `y = tanh(x)`, backward
/// `dx = dy ⊙ (1 − y²)` from the forward's output (so the input need not be kept).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tanh;

/// `numel` of a non-empty tensor, or [`Error::Shape`].
fn non_empty(what: &str, t: &Tensor) -> Result<usize> {
    if t.numel() == 0 {
        return Err(Error::Shape {
            what: format!("{what} (non-empty)"),
            expected: vec![],
            got: t.shape.clone(),
        });
    }
    Ok(t.numel())
}

/// [`Error::Shape`] unless `b` is shaped like `a`.
fn same_shape(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape != b.shape {
        return Err(Error::Shape {
            what: what.to_string(),
            expected: a.shape.clone(),
            got: b.shape.clone(),
        });
    }
    Ok(())
}

impl Tanh {
    /// Records `y = tanh(x)`: a new tensor shaped like `x`.
    pub fn record_forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let n = non_empty("tanh input", x)?;
        let y = rec.gpu().zeros("tanh.out", &x.shape)?;
        encode_unary(rec, Unary::Tanh, (&x.buffer, 0, n), (&y.buffer, 0, n), 1, n)?;
        Ok(y)
    }

    /// Records `dx = dy ⊙ (1 − y²)` for the forward's output `y` and output gradient `dy`
    /// (same shape): a new tensor shaped like `y`.
    pub fn record_backward(&self, rec: &mut Recorder, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let n = non_empty("tanh output", y)?;
        same_shape("tanh output gradient", y, dy)?;
        let gpu = rec.gpu();
        let slope = gpu.zeros("tanh.slope", &y.shape)?;
        let dx = gpu.zeros("tanh.dx", &y.shape)?;
        encode_unary(
            rec,
            Unary::DTanh,
            (&y.buffer, 0, n),
            (&slope.buffer, 0, n),
            1,
            n,
        )?;
        encode_binary(
            rec,
            Binary::Mul,
            (&slope.buffer, 0, n),
            (&dy.buffer, 0, n),
            (&dx.buffer, 0, n),
            1,
            n,
        )?;
        Ok(dx)
    }
}

/// Records `a + b` (same shape): a new tensor. Its backward needs no kernel: the output
/// gradient is the gradient of both `a` and `b`.
pub fn record_add(rec: &mut Recorder, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let n = non_empty("add input", a)?;
    same_shape("add: second input", a, b)?;
    let out = rec.gpu().zeros("add.out", &a.shape)?;
    encode_binary(
        rec,
        Binary::Add,
        (&a.buffer, 0, n),
        (&b.buffer, 0, n),
        (&out.buffer, 0, n),
        1,
        n,
    )?;
    Ok(out)
}

/// Records `a ⊙ b` (elementwise product, same shape): a new tensor.
pub fn record_mul(rec: &mut Recorder, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let n = non_empty("mul input", a)?;
    same_shape("mul: second input", a, b)?;
    let out = rec.gpu().zeros("mul.out", &a.shape)?;
    encode_binary(
        rec,
        Binary::Mul,
        (&a.buffer, 0, n),
        (&b.buffer, 0, n),
        (&out.buffer, 0, n),
        1,
        n,
    )?;
    Ok(out)
}

/// Records the backward of [`record_mul`] for its inputs `a`, `b` and output gradient `dy`
/// (all one shape): returns `(da, db) = (dy ⊙ b, dy ⊙ a)`.
pub fn record_mul_backward(
    rec: &mut Recorder,
    a: &Tensor,
    b: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor)> {
    same_shape("mul backward: output gradient", a, dy)?;
    let da = record_mul(rec, dy, b)?;
    let db = record_mul(rec, dy, a)?;
    Ok((da, db))
}
