//! Truncated backpropagation through time: a long stream is cut into windows of k steps; the
//! final hidden (and cell) state of one window becomes the initial state of the next by a
//! device-side copy, and no gradient crosses the cut (the backward of a window stops at its
//! h0/c0, like torch's `h = h.detach()`).
//!
//! [`TokenStream`] lays out a token sequence as B parallel streams (torch's `batchify` in the
//! word_language_model example): column b is the b-th contiguous chunk of the text, time-major
//! `(T, B)`, and window `[t0, t1)` predicts rows `t0+1..t1+1` from rows `t0..t1`.
//! [`Tbptt`] keeps the carried states, one slot per micro-batch stream.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};

/// Cuts `0..len` into consecutive windows of `k` steps (the last one may be shorter).
pub fn windows(len: usize, k: usize) -> Result<Vec<Range<usize>>> {
    if k == 0 {
        return Err(Error::InvalidConfig(
            "TBPTT window length must be positive".into(),
        ));
    }
    Ok((0..len).step_by(k).map(|s| s..(s + k).min(len)).collect())
}

/// A token sequence as B parallel time-major streams `(T, B)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenStream {
    data: Vec<u32>,
    batch: usize,
    vocab: usize,
}

impl TokenStream {
    /// Splits `tokens` into `batch` contiguous columns of `len / batch` tokens each (the tail
    /// that does not fill a row is dropped), each id checked `< vocab`.
    pub fn batchify(tokens: &[u32], batch: usize, vocab: usize) -> Result<Self> {
        if batch == 0 {
            return Err(Error::InvalidConfig("batch must be positive".into()));
        }
        if let Some((index, &id)) = tokens
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= vocab)
        {
            return Err(Error::TokenRange { index, id, vocab });
        }
        let steps = tokens.len() / batch;
        if steps < 2 {
            return Err(Error::InvalidConfig(format!(
                "{} tokens in {batch} streams leave fewer than 2 steps",
                tokens.len()
            )));
        }
        let mut data = vec![0u32; steps * batch];
        for b in 0..batch {
            for t in 0..steps {
                data[t * batch + b] = tokens[b * steps + t];
            }
        }
        Ok(TokenStream { data, batch, vocab })
    }

    /// Streams B.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Vocabulary the ids were checked against.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Steps T of each stream.
    pub fn steps(&self) -> usize {
        self.data.len() / self.batch
    }

    /// Windows of `k` input steps covering every step that has a next token (`0..T-1`).
    pub fn windows(&self, k: usize) -> Result<Vec<Range<usize>>> {
        windows(self.steps() - 1, k)
    }

    /// Inputs of window `r`: rows `r`, `(len, B)` time-major.
    pub fn inputs(&self, r: &Range<usize>) -> Result<&[u32]> {
        self.rows(r.start, r.end)
    }

    /// Targets of window `r`: rows `r` shifted by one, `(len, B)` time-major.
    pub fn targets(&self, r: &Range<usize>) -> Result<&[u32]> {
        self.rows(r.start + 1, r.end + 1)
    }

    fn rows(&self, a: usize, b: usize) -> Result<&[u32]> {
        if a >= b || b > self.steps() {
            return Err(Error::InvalidConfig(format!(
                "rows {a}..{b} are outside a stream of {} steps",
                self.steps()
            )));
        }
        Ok(&self.data[a * self.batch..b * self.batch])
    }
}

/// The state one stream carries from window to window.
#[derive(Clone, Debug, Default)]
pub struct CarriedState {
    /// Hidden state `(L*D, B, H or P)`; `None` is zeros (before the first window).
    pub h: Option<Tensor>,
    /// Cell state `(L*D, B, H)` (LSTM); `None` is zeros.
    pub c: Option<Tensor>,
}

/// Carried states of the streams being trained, one slot per micro-batch.
#[derive(Debug, Default)]
pub struct Tbptt {
    slots: Vec<CarriedState>,
}

impl Tbptt {
    /// No state yet: every stream starts from zeros.
    pub fn new() -> Self {
        Self::default()
    }

    /// The initial `(h0, c0)` of the next window of stream `slot`.
    pub fn state(&self, slot: usize) -> (Option<&Tensor>, Option<&Tensor>) {
        match self.slots.get(slot) {
            Some(s) => (s.h.as_ref(), s.c.as_ref()),
            None => (None, None),
        }
    }

    /// All slots.
    pub fn slots(&self) -> &[CarriedState] {
        &self.slots
    }

    /// Replaces the slots (restoring a checkpoint).
    pub fn set_slots(&mut self, slots: Vec<CarriedState>) {
        self.slots = slots;
    }

    /// Back to zero states (a new epoch, or an unrelated stream).
    pub fn reset(&mut self) {
        self.slots.clear();
    }

    /// Records the carry of stream `slot`: copies `hn` (and `cn`) into its state tensors,
    /// which are allocated on first use with their shapes. The copy runs after the window's
    /// forward has read the old state (one encoder, in order), and being a plain copy it
    /// takes no part in backward: no gradient crosses the cut.
    pub fn record_carry(
        &mut self,
        rec: &mut Recorder,
        slot: usize,
        hn: &Tensor,
        cn: Option<&Tensor>,
    ) -> Result<()> {
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, CarriedState::default);
        }
        let gpu = rec.gpu();
        let s = &mut self.slots[slot];
        let keep = |cur: &Option<Tensor>, src: &Tensor, label: &str| -> Result<Tensor> {
            match cur {
                Some(t) if t.shape == src.shape => Ok(t.clone()),
                _ => gpu.zeros(label, &src.shape),
            }
        };
        let h = keep(&s.h, hn, "tbptt.h")?;
        rec.copy(&hn.buffer, 0, &h.buffer, 0, hn.numel());
        s.h = Some(h);
        s.c = match cn {
            Some(cn) => {
                let c = keep(&s.c, cn, "tbptt.c")?;
                rec.copy(&cn.buffer, 0, &c.buffer, 0, cn.numel());
                Some(c)
            }
            None => None,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_stream() {
        assert_eq!(windows(10, 4).unwrap(), vec![0..4, 4..8, 8..10]);
        assert_eq!(windows(8, 4).unwrap(), vec![0..4, 4..8]);
        assert!(windows(0, 3).unwrap().is_empty());
        assert!(windows(5, 0).is_err());
    }

    #[test]
    fn batchify_makes_contiguous_columns() {
        let toks: Vec<u32> = (0..11).collect();
        let s = TokenStream::batchify(&toks, 2, 11).unwrap();
        assert_eq!(s.steps(), 5);
        // column 0 is 0..5, column 1 is 5..10
        assert_eq!(s.inputs(&(0..2)).unwrap(), &[0, 5, 1, 6]);
        assert_eq!(s.targets(&(0..2)).unwrap(), &[1, 6, 2, 7]);
        assert_eq!(s.windows(3).unwrap(), vec![0..3, 3..4]);
        assert!(s.targets(&(3..5)).is_err());
        assert!(matches!(
            TokenStream::batchify(&[0, 1, 7], 1, 5),
            Err(Error::TokenRange { index: 2, .. })
        ));
    }
}
