//! Device buffers reused from one recording to the next of the same shape.
//!
//! A plan asks for its buffers in the same order every time it records the same shapes, so
//! the arena hands out its slots by that order: the i-th request of a recording gets the i-th
//! slot when the shape matches, and a new buffer otherwise. After the first call of a shape
//! nothing is allocated.
//!
//! Reuse is safe because the queue runs submissions in order: a buffer written by the next
//! recording is written after the previous submission has read it. A slot is NOT zeroed when
//! it is handed out again: callers take from an arena only buffers they overwrite in full, or
//! clear (see [`crate::Rnn::record_inference_in`]).

use super::{Gpu, Tensor};
use crate::error::Result;

/// Buffers reused across recordings of the same shapes (see the module comment).
#[derive(Debug, Default)]
pub struct Arena {
    slots: Vec<Tensor>,
    next: usize,
}

impl Arena {
    /// An empty arena.
    pub fn new() -> Self {
        Arena::default()
    }

    /// Starts a recording: requests are matched to slots from the first again.
    pub fn reset(&mut self) {
        self.next = 0;
    }

    /// The next slot as a tensor of `shape` (its contents are whatever the last use left,
    /// zeros when it is new).
    pub fn take(&mut self, gpu: &Gpu, label: &str, shape: &[usize]) -> Result<Tensor> {
        let i = self.next;
        self.next += 1;
        if let Some(t) = self.slots.get(i) {
            if t.shape == shape {
                return Ok(t.clone());
            }
        }
        let t = gpu.zeros(label, shape)?;
        if i < self.slots.len() {
            self.slots[i] = t.clone();
        } else {
            self.slots.push(t.clone());
        }
        Ok(t)
    }

    /// The next slot holding `data` (a 1-D tensor; written through the queue, so it is in
    /// place before the next submission runs).
    pub fn upload(&mut self, gpu: &Gpu, label: &str, data: &[f32]) -> Result<Tensor> {
        let t = self.take(gpu, label, &[data.len()])?;
        gpu.write(&t, data)?;
        Ok(t)
    }

    /// Buffers held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the arena holds no buffer.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
