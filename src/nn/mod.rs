//! Models: the layers around the RNN stack, each with its parameters in one flat GPU buffer
//! and its gradients in another of the same layout (like [`Rnn`]), so an optimizer or a clip
//! is one dispatch per layer.
//!
//! - [`Embedding`]: token ids ([`TokenIds`]) to vectors, with a deterministic gradient;
//! - [`Linear`]: `y = x·Wᵀ + b` with `dW`, `db`, `dx`, on the crate's one GEMM;
//! - [`Tanh`], [`record_add`], [`record_mul`]: the elementwise pieces of a small MLP or a
//!   feature fusion;
//! - [`SeqModel`]: input (embedding or dense features) → [`Rnn`] → [`Linear`] head on every
//!   step or the last ([`Readout`]), the composition the training driver ([`crate::train`])
//!   runs; [`SeqModel::forward`] for inference;
//! - [`saving`]: a model saved and loaded alone, in PyTorch's state_dict names
//!   ([`SeqModel::save`], [`SeqModel::load`], [`Rnn::load`] with [`LoadOptions`]);
//! - [`charlm`]: a character model's vocabulary, the unigram entropy, and generation on the
//!   device (sampling kernel, state resident, one submission);
//! - [`init`]: PyTorch's default initialisations, seeded by [`crate::rng::Rng`].
//!
//! Conventions: rows are time-major (`t * B + b`); forward returns new tensors; backward
//! writes parameter gradients (`accumulate` adds to what is there, else overwrites) and
//! returns the input gradient when asked.

pub mod activation;
pub mod charlm;
pub mod embedding;
pub mod init;
pub mod linear;
pub mod saving;
pub mod seq;
pub mod tokens;

pub use activation::{record_add, record_mul, record_mul_backward, Tanh};
pub use charlm::{generate, unigram_entropy, Sampling, Vocab};
pub use embedding::Embedding;
pub use linear::Linear;
pub use saving::{state_dict, LoadOptions, READOUT_KEY};
pub use seq::{Readout, SeqInput, SeqModel, SeqModelConfig, SeqOutput, SeqSaved};
pub use tokens::TokenIds;

use crate::gpu::Tensor;
use crate::rnn::Rnn;

/// One named tensor inside a layer's flat parameter buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedSlice {
    /// PyTorch state_dict name inside the layer (`weight`, `bias`, `weight_ih_l0`, ...).
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Element offset in the flat buffer.
    pub offset: usize,
}

impl NamedSlice {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A layer's parameter and gradient buffers, as optimizers and clipping see them.
#[derive(Clone, Copy, Debug)]
pub struct ParamGroup<'a> {
    /// Flat parameters.
    pub params: &'a Tensor,
    /// Gradients, same layout and size.
    pub grads: &'a Tensor,
}

/// A layer whose parameters live in one flat buffer with a same-layout gradient buffer.
pub trait Module {
    /// The parameter and gradient buffers.
    fn group(&self) -> ParamGroup<'_>;
    /// The named tensors inside the flat buffer, in state_dict order.
    fn slices(&self) -> Vec<NamedSlice>;
}

impl Module for Rnn {
    fn group(&self) -> ParamGroup<'_> {
        ParamGroup {
            params: &self.params,
            grads: &self.grads,
        }
    }

    fn slices(&self) -> Vec<NamedSlice> {
        self.layout
            .entries
            .iter()
            .map(|e| NamedSlice {
                name: e.name.clone(),
                shape: e.shape.clone(),
                offset: e.offset,
            })
            .collect()
    }
}
