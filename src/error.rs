//! The library's error type.

use thiserror::Error;

/// Everything that can go wrong in recur, typed so callers can react.
#[derive(Debug, Error)]
pub enum Error {
    /// No adapter matched; the message says how to get one.
    #[error("no GPU adapter found{detail}: install a GPU driver, or Mesa's software Vulkan (apt-get install mesa-vulkan-drivers); RECUR_BACKEND and RECUR_ADAPTER choose among adapters")]
    NoAdapter {
        /// What was asked for (backend, adapter name), if anything.
        detail: String,
    },
    /// The device could not be created.
    #[error("could not create the GPU device: {0}")]
    RequestDevice(String),
    /// An environment variable has a value recur does not know.
    #[error("{var}={value} is not valid: {expected}")]
    BadEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A configuration value is not usable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A tensor has the wrong shape.
    #[error("shape mismatch for {what}: expected {expected:?}, got {got:?}")]
    Shape {
        /// Which tensor.
        what: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Actual shape.
        got: Vec<usize>,
    },
    /// A buffer would exceed a limit of the adapter.
    #[error("{what} needs {size} bytes, over the adapter's {limit} limit of {max} bytes")]
    Limit {
        /// Which buffer.
        what: String,
        /// Bytes needed.
        size: u64,
        /// The limit's name.
        limit: &'static str,
        /// The limit's value.
        max: u64,
    },
    /// A state_dict lacks a tensor the model needs.
    #[error("tensor {0:?} is missing")]
    MissingTensor(String),
    /// A state_dict has a tensor the model does not know.
    #[error("unexpected tensor {0:?}")]
    UnexpectedTensor(String),
    /// A tensor has a dtype recur cannot read.
    #[error("tensor {name:?} has dtype {dtype}, expected {expected}")]
    Dtype {
        /// Tensor name (or file).
        name: String,
        /// The dtype found.
        dtype: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// A file is not in the format expected.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A model file asks for something recur cannot run (an ONNX operator, or an attribute
    /// value its kernels do not implement); the message names it.
    #[error("{path}: {what} is not supported")]
    Unsupported {
        /// The file.
        path: String,
        /// What it asks for (`operator MatMul`, `RNN attribute activations = ["Gelu"] ...`).
        what: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The GPU reported an error (validation, out of memory, device lost).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// An invariant of recur itself does not hold: a bug of recur, not of the caller's input
    /// or of the GPU (a kernel given the wrong buffers, a plan offset the kernel cannot take,
    /// a poisoned lock).
    #[error("internal error (a bug of recur, please report it): {0}")]
    Internal(String),
    /// A value is NaN or infinite where that is not allowed.
    #[error("non-finite value in {0}")]
    NonFinite(String),
    /// A token id is not below the vocabulary size.
    #[error("token id {id} at position {index} is out of range for a vocabulary of {vocab}")]
    TokenRange {
        /// Position of the id in the sequence given.
        index: usize,
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// A character of a text is not in the vocabulary of a character model.
    #[error("character {ch:?} at position {index} is not in the model's vocabulary")]
    UnknownChar {
        /// The character.
        ch: char,
        /// Its position (in characters) in the text.
        index: usize,
    },
    /// An output path of a command cannot be written; checked before any work starts.
    #[error("{flag} {path}: {reason}")]
    OutputPath {
        /// The flag that named it (`--checkpoint`).
        flag: String,
        /// The path given.
        path: String,
        /// Why it cannot be written.
        reason: String,
    },
    /// Training diverged: a step's loss or gradient norm is NaN or infinite. The model on the
    /// device is no longer worth saving.
    #[error("training diverged at step {step}: the {what} is {value}")]
    Diverged {
        /// The optimizer step (1 for the first).
        step: u64,
        /// `loss` or `gradient norm`.
        what: &'static str,
        /// The value found.
        value: f32,
    },
    /// A counter would pass its largest value.
    #[error("{0} would overflow")]
    Overflow(String),
    /// A checkpoint does not fit the model or optimizer it is restored into.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file (`<checkpoint>` where it is not known: see [`Error::at_path`]).
        path: String,
        /// What does not fit.
        reason: String,
    },
}

/// The placeholder path of a checkpoint-content error raised where the file is not known
/// ([`Error::at_path`] fills it in).
pub(crate) const UNKNOWN_CHECKPOINT: &str = "<checkpoint>";

impl Error {
    /// This error with `path` as the file of an [`Error::Checkpoint`] that did not know it
    /// (one raised while restoring a checkpoint already in memory); other errors unchanged.
    pub fn at_path(self, path: &std::path::Path) -> Self {
        match self {
            Error::Checkpoint { path: p, reason } if p == UNKNOWN_CHECKPOINT => Error::Checkpoint {
                path: path.display().to_string(),
                reason,
            },
            other => other,
        }
    }
}

/// `Result` with recur's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
