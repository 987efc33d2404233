//! [`Trainer::step_with_gradient_flow`]: a training step that also measures `‖∂L/∂h_t‖`.

use super::trainer::{Batch, Trainer};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::SeqInput;
use crate::rnn::{GradFlowProbe, GradientFlow};

impl Trainer {
    /// [`Trainer::step`] that also measures the gradient flow: `‖∂L/∂h_t‖` of every step,
    /// layer and direction of the RNN, one [`GradientFlow`] per micro-batch (reduced on the
    /// device; see [`crate::rnn::gradient_flow`]). Waits for the step: the norms are the one
    /// small readback. `σ_max(W_hh)` is [`crate::Rnn::sigma_max_hh`] of `self.model.rnn`
    /// (before the step, for the weights these gradients came from).
    pub fn step_with_gradient_flow(
        &mut self,
        gpu: &Gpu,
        micro: &[Batch],
    ) -> Result<Vec<GradientFlow>> {
        let mut probes = Vec::with_capacity(micro.len());
        for mb in micro {
            let seq = match mb.input {
                SeqInput::Tokens(ids) => ids.shape.first().copied(),
                SeqInput::Dense(x) => {
                    let i = usize::from(self.model.cfg.rnn.batch_first);
                    x.shape.get(i).copied()
                }
            }
            .ok_or_else(|| Error::InvalidConfig("a micro-batch input without steps".into()))?;
            probes.push(GradFlowProbe::new(gpu, &self.model.cfg.rnn, seq)?);
        }
        self.step_with(gpu, micro, &probes)?;
        probes.iter().map(|p| p.read(gpu)).collect()
    }
}
