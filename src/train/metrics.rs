//! `MetricLog`: per-step loss and gradient norm, read on the host every N steps without
//! stalling the GPU on any step.
//!
//! Each step records two 4-byte device copies (loss, norm) into slot `i` of a device ring of
//! N slots. When the ring is full, the step also records a copy of the whole ring into a
//! `MAP_READ` staging buffer; after that submission the staging buffer is mapped
//! asynchronously, and [`MetricLog::poll`] (non-blocking) hands the values over once the GPU
//! got there. Queue order makes this safe: the ring copy is recorded after the last slot's
//! write and before the next step overwrites slot 0.
//!
//! A few staging buffers rotate; if the host never polls and all are in flight, the oldest is
//! waited for (back-pressure, not a per-step stall). In a browser nothing may block: there a
//! further staging buffer is made instead (the trainer's own back-pressure,
//! [`crate::train::Trainer::step_async`], bounds how many), and [`MetricLog::wait_async`]
//! awaits the maps.

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::gpu::oneshot::{self, Receiver};
use crate::gpu::{Gpu, Recorder, Tensor};

/// Values of the ring slot: loss, grad norm.
const FIELDS: usize = 2;
/// Staging buffers in flight before [`MetricLog`] waits for the oldest.
const MAX_PENDING: usize = 4;

/// One training step's numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepMetrics {
    /// The optimizer step (1 for the first).
    pub step: u64,
    /// The loss of that step (mean over its micro-batches).
    pub loss: f32,
    /// The global gradient norm before clipping.
    pub grad_norm: f32,
}

impl StepMetrics {
    /// [`Error::Diverged`] when the loss or the gradient norm is NaN or infinite: the step's
    /// update has made the model worthless, and training should stop without saving it.
    pub fn check_finite(&self) -> Result<()> {
        let bad = if !self.loss.is_finite() {
            Some(("loss", self.loss))
        } else if !self.grad_norm.is_finite() {
            Some(("gradient norm", self.grad_norm))
        } else {
            None
        };
        match bad {
            None => Ok(()),
            Some((what, value)) => Err(Error::Diverged {
                step: self.step,
                what,
                value,
            }),
        }
    }
}

type MapResult = std::result::Result<(), wgpu::BufferAsyncError>;

/// A staging copy: recorded (no map requested yet, `done` is `None`) or submitted and mapping.
#[derive(Debug)]
struct Staged {
    buffer: wgpu::Buffer,
    first_step: u64,
    count: usize,
    done: Option<Receiver<MapResult>>,
}

/// The device ring and its staging buffers; see the module documentation.
#[derive(Debug)]
pub struct MetricLog {
    ring: Tensor,
    capacity: usize,
    /// Slots written since the last flush.
    filled: usize,
    /// Step of slot 0.
    first_step: u64,
    /// Copies recorded but not yet submitted.
    recorded: Vec<Staged>,
    /// Submitted, map requested.
    pending: VecDeque<Staged>,
    free: Vec<wgpu::Buffer>,
    ready: VecDeque<StepMetrics>,
}

impl MetricLog {
    /// A ring of `every` slots: values reach the host every `every` steps.
    pub fn new(gpu: &Gpu, every: usize) -> Result<Self> {
        if every == 0 {
            return Err(Error::InvalidConfig(
                "metric log: the interval must be positive".into(),
            ));
        }
        Ok(MetricLog {
            ring: gpu.zeros("metrics.ring", &[every, FIELDS])?,
            capacity: every,
            filled: 0,
            first_step: 1,
            recorded: Vec::new(),
            pending: VecDeque::new(),
            free: Vec::new(),
            ready: VecDeque::new(),
        })
    }

    /// Steps per flush.
    pub fn interval(&self) -> usize {
        self.capacity
    }

    /// Forgets the slots written since the last flush; the next recorded step is `next_step`.
    pub fn reset(&mut self, next_step: u64) {
        self.filled = 0;
        self.first_step = next_step;
    }

    /// Records the metrics of step `step`: copies `loss.0[loss.1]` and `norm.0[norm.1]`
    /// into the ring, and when the ring is full, the ring into a staging buffer. Call
    /// [`MetricLog::after_submit`] after submitting `rec`. Steps are expected in order; a
    /// step that does not follow the last one recorded (a step that failed before its
    /// submission, a restored checkpoint) drops the slots not yet flushed and starts the
    /// ring again at `step`.
    pub fn record(
        &mut self,
        gpu: &Gpu,
        rec: &mut Recorder,
        step: u64,
        loss: (&Tensor, usize),
        norm: (&Tensor, usize),
    ) -> Result<()> {
        if self.filled == 0 || step != self.first_step.saturating_add(self.filled as u64) {
            self.filled = 0;
            self.first_step = step;
        }
        let slot = self.filled * FIELDS;
        rec.copy(&loss.0.buffer, loss.1, &self.ring.buffer, slot, 1);
        rec.copy(&norm.0.buffer, norm.1, &self.ring.buffer, slot + 1, 1);
        self.filled += 1;
        if self.filled == self.capacity {
            self.record_flush(gpu, rec)?;
        }
        Ok(())
    }

    /// Records a copy of the slots written so far (if any) to a staging buffer.
    pub fn record_flush(&mut self, gpu: &Gpu, rec: &mut Recorder) -> Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        if self.pending.len() + self.recorded.len() >= MAX_PENDING && !self.pending.is_empty() {
            #[cfg(not(target_arch = "wasm32"))]
            self.wait_oldest(gpu)?;
            // In a browser: take the oldest if it has arrived, else stage into a new buffer.
            #[cfg(target_arch = "wasm32")]
            self.take_arrived()?;
        }
        let buffer = match self.free.pop() {
            Some(b) => b,
            None => gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("metrics.staging"),
                size: (self.capacity * FIELDS * 4) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        };
        rec.copy(&self.ring.buffer, 0, &buffer, 0, self.filled * FIELDS);
        self.recorded.push(Staged {
            buffer,
            first_step: self.first_step,
            count: self.filled,
            done: None,
        });
        self.first_step = self.first_step.saturating_add(self.filled as u64);
        self.filled = 0;
        Ok(())
    }

    /// Requests the maps of the staging copies recorded into a submission that has now been
    /// submitted. (Mapping before the submit would make the submit invalid.)
    pub fn after_submit(&mut self) {
        for mut s in self.recorded.drain(..) {
            let (send, recv) = oneshot::channel();
            s.buffer
                .map_async(wgpu::MapMode::Read, ..(s.count * FIELDS * 4) as u64, send);
            s.done = Some(recv);
            self.pending.push_back(s);
        }
    }

    /// Forgets staging copies recorded into a submission that was never submitted.
    pub fn discard_recorded(&mut self) {
        for s in self.recorded.drain(..) {
            self.free.push(s.buffer);
        }
    }

    /// Reads a staging copy whose map has completed with `result` into `ready`.
    fn take(&mut self, s: Staged, result: MapResult) -> Result<()> {
        result.map_err(|e| Error::Gpu(format!("metric readback failed: {e}")))?;
        {
            let view = s
                .buffer
                .get_mapped_range(..(s.count * FIELDS * 4) as u64)
                .map_err(|e| Error::Gpu(format!("metric readback failed: {e}")))?;
            let vals: &[f32] = bytemuck::cast_slice(&view);
            for (i, row) in vals.chunks_exact(FIELDS).enumerate() {
                self.ready.push_back(StepMetrics {
                    step: s.first_step.saturating_add(i as u64),
                    loss: row[0],
                    grad_norm: row[1],
                });
            }
        }
        s.buffer.unmap();
        self.free.push(s.buffer);
        Ok(())
    }

    /// Takes the staging copies whose maps have completed, oldest first, without waiting.
    fn take_arrived(&mut self) -> Result<()> {
        while let Some(result) = self
            .pending
            .front()
            .and_then(|s| s.done.as_ref())
            .and_then(Receiver::try_take)
        {
            if let Some(s) = self.pending.pop_front() {
                self.take(s, result)?;
            }
        }
        Ok(())
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn wait_oldest(&mut self, gpu: &Gpu) -> Result<()> {
        let Some(mut s) = self.pending.pop_front() else {
            return Ok(());
        };
        let result = match s.done.take() {
            Some(recv) => {
                if !recv.is_ready() {
                    // Waits for the latest submission, which includes the oldest copy; the
                    // map callback runs inside the poll, so the future is ready after it.
                    gpu.device
                        .poll(wgpu::PollType::wait_indefinitely())
                        .map_err(|e| Error::Gpu(e.to_string()))?;
                    gpu.check()?;
                }
                pollster::block_on(recv)
            }
            None => return Err(Error::Internal("metric copy was never submitted".into())),
        };
        self.take(s, result)
    }

    /// Without blocking: the metrics that have reached the host, in step order.
    pub fn poll(&mut self, gpu: &Gpu) -> Result<Vec<StepMetrics>> {
        gpu.device
            .poll(wgpu::PollType::Poll)
            .map_err(|e| Error::Gpu(e.to_string()))?;
        self.take_arrived()?;
        Ok(self.ready.drain(..).collect())
    }

    /// Blocks until every submitted copy has reached the host, then returns all metrics not
    /// yet returned. (Steps still in the ring need [`MetricLog::record_flush`] first.) In a
    /// browser, [`MetricLog::wait_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&mut self, gpu: &Gpu) -> Result<Vec<StepMetrics>> {
        while !self.pending.is_empty() {
            self.wait_oldest(gpu)?;
        }
        Ok(self.ready.drain(..).collect())
    }

    /// [`MetricLog::wait`] as a future: resolves when every submitted copy has been mapped
    /// (natively it polls the device once; in a browser the event loop runs the maps).
    pub async fn wait_async(&mut self, gpu: &Gpu) -> Result<Vec<StepMetrics>> {
        #[cfg(not(target_arch = "wasm32"))]
        if !self.pending.is_empty() {
            gpu.wait()?;
        }
        while let Some(mut s) = self.pending.pop_front() {
            let Some(recv) = s.done.take() else {
                return Err(Error::Internal("metric copy was never submitted".into()));
            };
            let result = recv.await;
            self.take(s, result)?;
        }
        gpu.check()?;
        Ok(self.ready.drain(..).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_metrics_are_a_divergence() {
        let m = |loss, grad_norm| StepMetrics {
            step: 7,
            loss,
            grad_norm,
        };
        assert!(m(2.5, 0.3).check_finite().is_ok());
        assert!(matches!(
            m(f32::NAN, 0.3).check_finite(),
            Err(Error::Diverged {
                step: 7,
                what: "loss",
                ..
            })
        ));
        let e = m(1.0, f32::INFINITY).check_finite().unwrap_err();
        assert_eq!(
            e.to_string(),
            "training diverged at step 7: the gradient norm is inf"
        );
    }
}
