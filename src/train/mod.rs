//! Training on the device: losses, optimizers, gradient clipping, the truncated-BPTT driver,
//! metrics that reach the host without stalling, and checkpoints.
//!
//! - [`loss`]: fused softmax + cross-entropy and mean-squared error, with gradients;
//! - [`optim`]: SGD (momentum, Nesterov), Adam, AdamW over flat parameter buffers;
//! - [`clip`]: global-norm clipping (`clip_grad_norm_`) and value clipping;
//! - [`tbptt`]: windows, token streams and the carried states;
//! - [`metrics`]: the device ring of per-step loss and norm, mapped asynchronously;
//! - [`checkpoint`]: safetensors checkpoints with a checksum, written atomically;
//! - [`text`]: a character language model trained on a text, and loaded back to generate;
//! - [`trainer`]: all of it for a [`crate::nn::SeqModel`], one submission per step.
//!
//! Nothing here reads the GPU inside a step; the host reads losses and norms every N steps.

pub mod checkpoint;
pub mod clip;
mod flow;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod tbptt;
pub mod text;
pub mod trainer;

pub use checkpoint::Checkpoint;
pub use clip::{record_clip_value, Clip, GradNorm};
pub use loss::{record_cross_entropy, record_loss, record_mse, LossSink, Targets};
pub use metrics::{MetricLog, StepMetrics};
pub use optim::{Optimizer, OptimizerConfig};
pub use tbptt::{windows, CarriedState, Tbptt, TokenStream};
pub use text::{CharLm, CharModelShape, TextState, TextTrainer};
pub use trainer::{Batch, TrainConfig, TrainMode, Trainer, MODE_KEY};
