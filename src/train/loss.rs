//! Losses on the device: fused softmax + cross-entropy over the vocabulary, and mean-squared
//! error, each with its gradient, reduced to the loss without atomics (`shaders/loss.wgsl`).
//!
//! Both use torch's default `reduction="mean"`. `scale` multiplies the loss and the
//! gradient: `1/M` over M micro-batches makes the accumulated gradient the gradient of the
//! mean loss, as `(loss / M).backward()` does in torch.

use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::kernels::loss::{encode_cross_entropy, encode_loss_reduce, encode_mse, mse_partials};
use crate::nn::TokenIds;

/// What a model's output is compared with.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Class ids, one per row of the output: cross-entropy.
    Tokens(&'a TokenIds),
    /// Values shaped like the output: mean-squared error.
    Dense(&'a Tensor),
}

/// Where the loss goes: element `offset` of `tensor`, overwritten or (`accumulate`) added to.
#[derive(Clone, Copy, Debug)]
pub struct LossSink<'a> {
    /// The tensor that receives the loss.
    pub tensor: &'a Tensor,
    /// Element offset of the loss in it.
    pub offset: usize,
    /// Add to what is there instead of overwriting it.
    pub accumulate: bool,
}

fn check_sink(sink: &LossSink) -> Result<()> {
    if sink.offset >= sink.tensor.numel() {
        return Err(Error::Shape {
            what: format!("loss output (offset {})", sink.offset),
            expected: vec![sink.offset + 1],
            got: sink.tensor.shape.clone(),
        });
    }
    Ok(())
}

/// Records mean cross-entropy of `logits` `[.., V]` (rows = all but the last axis) against
/// `targets` (one id per row, each `< V`): writes `scale * loss` to `sink` and returns
/// `scale * d loss / d logits`, shaped like `logits`.
pub fn record_cross_entropy(
    rec: &mut Recorder,
    logits: &Tensor,
    targets: &TokenIds,
    scale: f32,
    sink: LossSink,
) -> Result<Tensor> {
    check_sink(&sink)?;
    let vocab = logits.shape.last().copied().unwrap_or(0);
    if vocab == 0 || logits.numel() / vocab != targets.len() {
        return Err(Error::Shape {
            what: format!("logits for {} targets (0 = any vocabulary)", targets.len()),
            expected: vec![targets.len(), 0],
            got: logits.shape.clone(),
        });
    }
    if targets.vocab() > vocab {
        return Err(Error::InvalidConfig(format!(
            "targets were checked against a vocabulary of {}, the logits have {vocab} classes",
            targets.vocab()
        )));
    }
    let rows = targets.len();
    let gpu = rec.gpu();
    let dlogits = gpu.zeros("ce.dlogits", &logits.shape)?;
    let row_loss = gpu.zeros("ce.row_loss", &[rows])?;
    encode_cross_entropy(
        rec,
        &logits.buffer,
        0,
        &targets.buffer,
        rows,
        vocab,
        scale / rows as f32,
        &dlogits.buffer,
        &row_loss.buffer,
    )?;
    encode_loss_reduce(
        rec,
        &row_loss.buffer,
        rows,
        scale / rows as f32,
        &sink.tensor.buffer,
        sink.offset,
        sink.accumulate,
    )?;
    Ok(dlogits)
}

/// Records mean squared error of `pred` against `target` (same shape): writes
/// `scale * loss` to `sink` and returns `scale * d loss / d pred`.
pub fn record_mse(
    rec: &mut Recorder,
    pred: &Tensor,
    target: &Tensor,
    scale: f32,
    sink: LossSink,
) -> Result<Tensor> {
    check_sink(&sink)?;
    if pred.shape != target.shape || pred.numel() == 0 {
        return Err(Error::Shape {
            what: "mse target (non-empty, like the prediction)".into(),
            expected: pred.shape.clone(),
            got: target.shape.clone(),
        });
    }
    let n = pred.numel();
    let gpu = rec.gpu();
    let grad = gpu.zeros("mse.grad", &pred.shape)?;
    let parts = mse_partials(n);
    let partials = gpu.zeros("mse.partials", &[parts])?;
    encode_mse(
        rec,
        &pred.buffer,
        &target.buffer,
        n,
        scale / n as f32,
        &grad.buffer,
        &partials.buffer,
    )?;
    encode_loss_reduce(
        rec,
        &partials.buffer,
        parts,
        scale / n as f32,
        &sink.tensor.buffer,
        sink.offset,
        sink.accumulate,
    )?;
    Ok(grad)
}

/// [`record_cross_entropy`] or [`record_mse`], by the kind of `targets`.
pub fn record_loss(
    rec: &mut Recorder,
    out: &Tensor,
    targets: Targets,
    scale: f32,
    sink: LossSink,
) -> Result<Tensor> {
    match targets {
        Targets::Tokens(t) => record_cross_entropy(rec, out, t, scale, sink),
        Targets::Dense(t) => record_mse(rec, out, t, scale, sink),
    }
}
