//! The GPU layer: context and adapter choice, tensors and readback, the pipeline cache, and
//! the recorder that turns a whole sequence into one submission.

pub mod arena;
pub mod context;
pub mod kernel;
pub(crate) mod oneshot;
pub mod pipelines;
pub mod recorder;
pub mod tensor;

pub use arena::Arena;
#[cfg(not(target_arch = "wasm32"))]
pub use context::list_adapters;
pub use context::{AdapterSummary, Gpu};
pub use kernel::{Access, KernelDesc, Shader};
pub use recorder::{BindId, Profile, Recorder};
pub use tensor::Tensor;
