//! The sequence plan: cell kinds, the flat parameter layout and the scheduler that records a
//! whole sequence, forward and backward, into one command encoder.

pub mod config;
pub mod lengths;
pub mod params;
pub mod state_dict;

pub use crate::kernels::cell;
pub use cell::CellKind;
pub use config::RnnConfig;
pub use params::{ParamEntry, ParamKind, ParamLayout};
mod backward;
mod forward;
pub mod gradient_flow;
pub mod model;
mod packed;
pub mod plan;
pub mod stream;
pub mod variant;

pub use gradient_flow::{GradFlowProbe, GradientFlow};
pub use model::{InputGrads, Rnn, RnnOutput, Saved, StateGrads, WeightStorage};
pub use stream::RnnStream;
pub use variant::CellVariant;
