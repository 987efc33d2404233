//! Streaming inference: an RNN whose state lives on the GPU between calls, fed a chunk of
//! T ≥ 1 steps at a time, as a keyword spotter, a sensor monitor or a token-by-token decoder
//! runs it.
//!
//! A chunk is one submission (the whole plan of [`Rnn::record_inference`] for T steps, then the
//! final states copied into the stream's state in place), its outputs stay on the device, and
//! after the first chunk of a length nothing is allocated: the plan's buffers come from an
//! [`Arena`]. Chunked equals whole: the steps run the same kernels in the same order
//! whatever the chunking (`tests/stream.rs` checks it bit for bit).
//!
//! ```
//! # fn main() -> recur::Result<()> {
//! use recur::{CellKind, Gpu, Rnn, RnnConfig, RnnStream};
//! let gpu = Gpu::new()?;
//! let cfg = RnnConfig::new(CellKind::Lstm, 3, 16);
//! let flat = vec![0.1; recur::ParamLayout::new(&cfg).total];
//! let rnn = Rnn::new(&gpu, cfg, &flat)?;
//! let mut stream = RnnStream::new(&gpu, &rnn, 1)?;
//! for _ in 0..10 {
//!     let x = gpu.tensor("x", &[1, 1, 3], &[0.5, -0.5, 1.0])?; // one step, (T, B, I)
//!     let y = stream.push(&gpu, &rnn, &x)?; // (1, 1, 16), on the device
//!     let _h = gpu.read(&y)?; // optional readback
//! }
//! # Ok(())
//! # }
//! ```

use crate::error::{Error, Result};
use crate::gpu::{Arena, Gpu, Recorder, Tensor};

use super::{CellKind, Rnn};

/// The state of a stream of `batch` rows through an [`Rnn`] (see the module comment).
#[derive(Debug)]
pub struct RnnStream {
    batch: usize,
    /// `(L, B, H)` (`(L, B, P)` with a projection).
    h: Tensor,
    /// `(L, B, H)`, LSTM only.
    c: Option<Tensor>,
    arena: Arena,
}

impl RnnStream {
    /// A stream of `batch` rows through `rnn`, starting from zero states. A bidirectional
    /// stack cannot stream (its reverse direction starts from the end of the sequence).
    pub fn new(gpu: &Gpu, rnn: &Rnn, batch: usize) -> Result<Self> {
        let (h_shape, c_shape) = Self::state_shapes(rnn, batch)?;
        let h = gpu.zeros("stream.h", &h_shape)?;
        let c = match rnn.cfg.cell {
            CellKind::Lstm => Some(gpu.zeros("stream.c", &c_shape)?),
            _ => None,
        };
        Ok(RnnStream {
            batch,
            h,
            c,
            arena: Arena::new(),
        })
    }

    /// A stream starting from `h0` (`(L, B, H)`, or `(L, B, P)` with a projection) and, for
    /// an LSTM, `c0` (`(L, B, H)`; required, as in PyTorch). The tensors become the stream's
    /// state and are updated in place.
    pub fn with_state(rnn: &Rnn, h0: Tensor, c0: Option<Tensor>) -> Result<Self> {
        let batch = h0.shape.get(1).copied().unwrap_or(0);
        let (h_shape, c_shape) = Self::state_shapes(rnn, batch)?;
        check("h0", &h0, &h_shape)?;
        let c = match (rnn.cfg.cell, c0) {
            (CellKind::Lstm, Some(c0)) => {
                check("c0", &c0, &c_shape)?;
                Some(c0)
            }
            (CellKind::Lstm, None) => {
                return Err(Error::InvalidConfig(
                    "an LSTM stream needs c0 with h0 (PyTorch's (h0, c0) pair)".into(),
                ))
            }
            (cell, Some(_)) => {
                return Err(Error::InvalidConfig(format!("c0 given to a {cell} stream")))
            }
            (_, None) => None,
        };
        Ok(RnnStream {
            batch,
            h: h0,
            c,
            arena: Arena::new(),
        })
    }

    fn state_shapes(rnn: &Rnn, batch: usize) -> Result<([usize; 3], [usize; 3])> {
        let cfg = &rnn.cfg;
        if cfg.bidirectional {
            return Err(Error::InvalidConfig(
                "a bidirectional stack cannot stream: its reverse direction starts from the \
                 end of the sequence"
                    .into(),
            ));
        }
        if batch == 0 {
            return Err(Error::Shape {
                what: "stream batch (rows): must be positive".into(),
                expected: vec![],
                got: vec![0],
            });
        }
        Ok((
            [cfg.num_layers, batch, cfg.out_hidden()],
            [cfg.num_layers, batch, cfg.hidden_size],
        ))
    }

    /// Rows of the stream.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The hidden state `(L, B, H)` on the device (read it with [`Gpu::read`] to save a
    /// session).
    pub fn h(&self) -> &Tensor {
        &self.h
    }

    /// The cell state `(L, B, H)` of an LSTM.
    pub fn c(&self) -> Option<&Tensor> {
        self.c.as_ref()
    }

    /// Runs chunk `x` (`(T, B, I)`, or `(B, T, I)` with `batch_first`, T ≥ 1) from the
    /// current state, leaves the final state in place, and returns the outputs
    /// (`(T, B, H)` or `(B, T, H)`) on the device, valid until the next call. One submission;
    /// nothing waits for it (a read of the outputs or the state does).
    pub fn push(&mut self, gpu: &Gpu, rnn: &Rnn, x: &Tensor) -> Result<Tensor> {
        let mut rec = Recorder::new(gpu);
        let y = self.record(&mut rec, rnn, x)?;
        rec.submit()?;
        Ok(y)
    }

    /// [`RnnStream::push`] recorded into `rec`, so that the next GPU stage (a head, a loss,
    /// sampling) goes into the same submission.
    pub fn record(&mut self, rec: &mut Recorder, rnn: &Rnn, x: &Tensor) -> Result<Tensor> {
        let (h_shape, c_shape) = Self::state_shapes(rnn, self.batch)?;
        check("stream state h (another stack?)", &self.h, &h_shape)?;
        if let Some(c) = &self.c {
            check("stream state c (another stack?)", c, &c_shape)?;
        }
        let rows = if rnn.cfg.batch_first {
            x.shape.first()
        } else {
            x.shape.get(1)
        };
        if rows != Some(&self.batch) {
            return Err(Error::Shape {
                what: format!(
                    "stream chunk {} with the stream's {} rows",
                    if rnn.cfg.batch_first {
                        "(B, T, I)"
                    } else {
                        "(T, B, I)"
                    },
                    self.batch
                ),
                expected: vec![],
                got: x.shape.clone(),
            });
        }
        let out =
            rnn.record_inference_in(rec, x, Some(&self.h), self.c.as_ref(), &mut self.arena)?;
        rec.copy(&out.hn.buffer, 0, &self.h.buffer, 0, self.h.numel());
        if let (Some(cn), Some(c)) = (&out.cn, &self.c) {
            rec.copy(&cn.buffer, 0, &c.buffer, 0, c.numel());
        }
        Ok(out.y)
    }

    /// Zeroes the state of batch rows `rows` in every layer (a new sequence starts in those
    /// rows); one submission.
    pub fn reset_rows(&mut self, gpu: &Gpu, rows: &[usize]) -> Result<()> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.batch) {
            return Err(Error::Shape {
                what: format!("reset of row {r} in a stream of {} rows", self.batch),
                expected: vec![self.batch],
                got: vec![r],
            });
        }
        let mut rec = Recorder::new(gpu);
        for t in std::iter::once(&self.h).chain(self.c.as_ref()) {
            let (layers, width) = (t.shape[0], t.shape[2]);
            for l in 0..layers {
                for &r in rows {
                    rec.clear(&t.buffer, (l * self.batch + r) * width, width);
                }
            }
        }
        rec.submit()?;
        Ok(())
    }
}

fn check(what: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.shape != expected {
        return Err(Error::Shape {
            what: what.to_string(),
            expected: expected.to_vec(),
            got: t.shape.clone(),
        });
    }
    Ok(())
}
