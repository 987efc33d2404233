//! Helpers shared by the GPU tests.
#![allow(dead_code)]

pub mod cli;
mod numeric;

pub use numeric::*;
