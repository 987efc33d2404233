//! Helpers shared by the GPU tests.
#![allow(dead_code)]

pub mod cli;
pub mod layout;
mod numeric;

pub use numeric::*;
