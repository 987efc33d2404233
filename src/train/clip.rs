//! Gradient clipping on the device (`shaders/clip.wgsl`): by global norm with the semantics of
//! `torch.nn.utils.clip_grad_norm_` (norm 2, `clip_coef = max_norm / (total_norm + 1e-6)`
//! clamped to 1, every gradient multiplied), and by value (`clip_grad_value_`).
//!
//! The norm is computed by a deterministic two-stage reduction (partial sums per workgroup,
//! then one workgroup), stays in a device buffer, and the scale dispatch reads the
//! coefficient from it: no host round trip, so a training step never waits for it. The host
//! reads the norm later, through [`crate::train::MetricLog`] or [`GradNorm::read`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::kernels::clip::{
    encode_norm_finish, encode_norm_partials, encode_scale, encode_value, partial_count,
};
use crate::nn::ParamGroup;

/// How gradients are clipped before the optimizer step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clip {
    /// No clipping (the norm is still computed for logging).
    None,
    /// `clip_grad_norm_(max_norm)`.
    Norm(f32),
    /// `clip_grad_value_(clip_value)`.
    Value(f32),
}

impl Clip {
    /// Checks the threshold is positive and finite.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Clip::Norm(x) | Clip::Value(x) if !(x.is_finite() && x > 0.0) => Err(
                Error::InvalidConfig(format!("clip threshold must be positive, got {x}")),
            ),
            _ => Ok(()),
        }
    }
}

/// The global gradient norm of a fixed list of parameter groups, on the device.
///
/// `norm` holds `[total_norm, clip_coef]` after [`GradNorm::record`].
#[derive(Debug)]
pub struct GradNorm {
    sizes: Vec<usize>,
    partials: Tensor,
    /// `[total_norm, clip_coef]`.
    pub norm: Tensor,
}

impl GradNorm {
    /// Scratch for the groups of these element counts.
    pub fn new(gpu: &Gpu, sizes: &[usize]) -> Result<Self> {
        let total: usize = sizes.iter().map(|&n| partial_count(n)).sum();
        Ok(GradNorm {
            sizes: sizes.to_vec(),
            partials: gpu.zeros("clip.partials", &[total.max(1)])?,
            norm: gpu.zeros("clip.norm", &[2])?,
        })
    }

    /// Scratch for `groups`.
    pub fn for_groups(gpu: &Gpu, groups: &[ParamGroup]) -> Result<Self> {
        let sizes: Vec<usize> = groups.iter().map(|g| g.grads.numel()).collect();
        Self::new(gpu, &sizes)
    }

    /// Records the total norm of every gradient in `groups` into [`GradNorm::norm`]; with
    /// `max_norm`, also multiplies every gradient by the clip coefficient.
    pub fn record(
        &self,
        rec: &mut Recorder,
        groups: &[ParamGroup],
        max_norm: Option<f32>,
    ) -> Result<()> {
        if groups.len() != self.sizes.len()
            || groups
                .iter()
                .zip(&self.sizes)
                .any(|(g, &n)| g.grads.numel() != n)
        {
            return Err(Error::InvalidConfig(format!(
                "gradient norm scratch was built for groups of sizes {:?}",
                self.sizes
            )));
        }
        if let Some(m) = max_norm {
            Clip::Norm(m).validate()?;
        }
        let mut off = 0;
        for g in groups {
            let n = g.grads.numel();
            encode_norm_partials(rec, &g.grads.buffer, n, &self.partials.buffer, off)?;
            off += partial_count(n);
        }
        encode_norm_finish(
            rec,
            &self.partials.buffer,
            off,
            max_norm.unwrap_or(f32::INFINITY),
            &self.norm.buffer,
            0,
        )?;
        if max_norm.is_some() {
            for g in groups {
                encode_scale(rec, &self.norm.buffer, 0, &g.grads.buffer, g.grads.numel())?;
            }
        }
        Ok(())
    }

    /// Reads `(total_norm, clip_coef)` back (waits for the GPU: for tests and rare use).
    pub fn read(&self, gpu: &Gpu) -> Result<(f32, f32)> {
        let v = gpu.read(&self.norm)?;
        match v.as_slice() {
            [n, c] => Ok((*n, *c)),
            _ => Err(Error::Gpu("norm buffer has the wrong size".into())),
        }
    }
}

/// Records `clip_grad_value_(clip)` over every group.
pub fn record_clip_value(rec: &mut Recorder, groups: &[ParamGroup], clip: f32) -> Result<()> {
    Clip::Value(clip).validate()?;
    for g in groups {
        encode_value(rec, &g.grads.buffer, g.grads.numel(), clip)?;
    }
    Ok(())
}
