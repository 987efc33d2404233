//! [`Trainer::step_with_gradient_flow`]: a training step that also measures `‖∂L/∂h_t‖`,
//! blocking or (in a browser) as a future.

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
    /// (before the step, for the weights these gradients came from). In a browser,
    /// [`Trainer::step_with_gradient_flow_async`].
    pub fn step_with_gradient_flow(
        &mut self,
        gpu: &Gpu,
        micro: &[Batch],
    ) -> Result<Vec<GradientFlow>> {
        let probes = self.probes_for(gpu, micro)?;
        self.step_with(gpu, micro, &probes)?;
        probes.iter().map(|p| p.read(gpu)).collect()
    }

    /// [`Trainer::step_with_gradient_flow`] for the browser, where nothing may block: the
    /// step is submitted as [`Trainer::step_async`] submits it (the same training, bit for
    /// bit), then the norms come back through `map_async` futures. Only this step waits
    /// for its readback; the steps before and after it are not slowed.
    pub async fn step_with_gradient_flow_async(
        &mut self,
        gpu: &Gpu,
        micro: &[Batch<'_>],
    ) -> Result<Vec<GradientFlow>> {
        let probes = self.probes_for(gpu, micro)?;
        self.step_with_async(gpu, micro, &probes).await?;
        let mut flows = Vec::with_capacity(probes.len());
        for p in &probes {
            flows.push(p.read_async(gpu).await?);
        }
        // The reads were queued after this step: every submitted step has finished.
        self.forget_finished_steps();
        Ok(flows)
    }

    /// One probe per micro-batch, sized to its steps.
    fn probes_for(&self, gpu: &Gpu, micro: &[Batch]) -> Result<Vec<GradFlowProbe>> {
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
        Ok(probes)
    }
}
