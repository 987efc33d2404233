//! Device buffers reused from one recording to the next.
//!
//! A plan asks for its buffers in the same order every time it records the same shapes. The
//! arena keeps, per (label, shape), the buffers handed out so far: the k-th request of a
//! (label, shape) in a recording gets the k-th buffer of that key, made on first need. So
//! after the first call of each shape nothing is allocated, also when calls alternate between
//! shapes (a stream fed chunks of varying lengths keeps one set per length).
//!
//! Reuse is safe because the queue runs submissions in order: a buffer written by the next
//! recording is written after the previous submission has read it. A buffer is NOT zeroed
//! when it is handed out again: callers take from an arena only buffers they overwrite in
//! full, or clear (see [`crate::Rnn::record_inference_in`]).

use std::collections::HashMap;

use super::{Gpu, Tensor};
use crate::error::Result;

type Key = (String, Vec<usize>);

/// Buffers reused across recordings (see the module comment).
#[derive(Debug, Default)]
pub struct Arena {
    buffers: HashMap<Key, Vec<Tensor>>,
    taken: HashMap<Key, usize>,
}

impl Arena {
    /// An empty arena.
    pub fn new() -> Self {
        Arena::default()
    }

    /// Starts a recording: every key's buffers are handed out from the first again.
    pub fn reset(&mut self) {
        self.taken.clear();
    }

    /// A buffer of `shape` for `label` (its contents are whatever its last use left, zeros
    /// when it is new).
    pub fn take(&mut self, gpu: &Gpu, label: &str, shape: &[usize]) -> Result<Tensor> {
        let key = (label.to_string(), shape.to_vec());
        let k = self.taken.entry(key.clone()).or_insert(0);
        let list = self.buffers.entry(key).or_default();
        if *k == list.len() {
            list.push(gpu.zeros(label, shape)?);
        }
        *k += 1;
        Ok(list[*k - 1].clone())
    }

    /// A 1-D buffer holding `data` (written through the queue, so it is in place before the
    /// next submission runs).
    pub fn upload(&mut self, gpu: &Gpu, label: &str, data: &[f32]) -> Result<Tensor> {
        let t = self.take(gpu, label, &[data.len()])?;
        gpu.write(&t, data)?;
        Ok(t)
    }

    /// Buffers held.
    pub fn len(&self) -> usize {
        self.buffers.values().map(Vec::len).sum()
    }

    /// Whether the arena holds no buffer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
