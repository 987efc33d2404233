//! recur: recurrent neural networks (vanilla RNN, LSTM, GRU) forward and backward on any GPU
//! that wgpu reaches, with fused hand-written WGSL kernels.
//!
//! Layers, top to bottom: [`train`] (losses, optimizers, clipping, truncated BPTT,
//! checkpoints), [`nn`] (embedding, linear, the sequence model), [`rnn`] (the sequence plan),
//! [`kernels`] (one Rust file per WGSL
//! file), [`gpu`] (context, tensors, pipeline cache), [`reference`](mod@reference) (the f64 CPU oracle),
//! [`io`] (safetensors and `.npy`), [`onnx`] (ONNX LSTM/GRU/RNN models and torch exports).
//!
//! The entry points an app uses: [`Gpu`] (the device), [`Rnn`] (a PyTorch-style RNN stack,
//! [`Rnn::load`] from a state_dict), [`RnnStream`] (state kept on the device between chunks),
//! [`SeqModel`] (embedding → RNN → head; [`SeqModel::forward`], [`SeqModel::save`],
//! [`SeqModel::load`]), [`train::Trainer`] (one submission a step, stateful or independent:
//! [`train::TrainMode`]), [`train::Checkpoint`], [`io::load`] / [`io::save`] and
//! [`nn::generate`]. Each has an example that runs.
//!
//! # Example
//!
//! The README's library section (`examples/readme.rs`; `tests/readme.rs` keeps them equal):
//!
#![doc = concat!("```\n", include_str!("../examples/readme.rs"), "```")]
#![warn(missing_docs)]

pub mod error;
pub mod gpu;
pub mod io;
pub mod kernels;
pub mod nn;
pub mod onnx;
pub mod reference;
pub mod rng;
pub mod rnn;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{Gpu, Recorder, Tensor};
pub use io::HostTensor;
pub use nn::{LoadOptions, SeqModel, SeqModelConfig};
pub use rnn::{CellKind, ParamLayout, Rnn, RnnConfig, RnnStream, WeightStorage};
