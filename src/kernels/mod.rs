//! Kernels: the one shader registry, and one Rust file per WGSL file with the `#[repr(C)]`
//! parameter structs that mirror the WGSL ones and the `encode_*` functions that record
//! dispatches.

pub mod gru;
pub mod lstm;
pub mod matmul;
pub mod rnn;
pub mod step;
pub mod util;

use crate::error::{Error, Result};

/// Every WGSL file recur has; the only place shader sources are included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    /// `shaders/matmul.wgsl`
    Matmul,
    /// `shaders/util.wgsl`
    Util,
    /// `shaders/rnn.wgsl`
    Rnn,
    /// `shaders/lstm.wgsl`
    Lstm,
    /// `shaders/gru.wgsl`
    Gru,
}

impl Shader {
    /// All shaders (for validation tests).
    pub const ALL: [Shader; 5] = [
        Shader::Matmul,
        Shader::Util,
        Shader::Rnn,
        Shader::Lstm,
        Shader::Gru,
    ];

    /// The WGSL source.
    pub fn source(self) -> &'static str {
        match self {
            Shader::Matmul => include_str!("../../shaders/matmul.wgsl"),
            Shader::Util => include_str!("../../shaders/util.wgsl"),
            Shader::Rnn => include_str!("../../shaders/rnn.wgsl"),
            Shader::Lstm => include_str!("../../shaders/lstm.wgsl"),
            Shader::Gru => include_str!("../../shaders/gru.wgsl"),
        }
    }

    /// The file name under `shaders/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Shader::Matmul => "matmul.wgsl",
            Shader::Util => "util.wgsl",
            Shader::Rnn => "rnn.wgsl",
            Shader::Lstm => "lstm.wgsl",
            Shader::Gru => "gru.wgsl",
        }
    }
}

/// How a kernel uses a storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
}

/// A kernel entry point and its bind group 0: a uniform parameter struct at binding `base`
/// (bound with a dynamic offset), then storage buffers at `base + 1 + i` for each `Some` in
/// `bindings`.
#[derive(Clone, Copy, Debug)]
pub struct KernelDesc {
    /// The WGSL file.
    pub shader: Shader,
    /// The entry point.
    pub entry: &'static str,
    /// Binding number of the uniform.
    pub base: u32,
    /// Storage bindings after the uniform; `None` is a gap.
    pub bindings: &'static [Option<Access>],
}

/// Element offsets and sizes travel to WGSL as u32.
pub(crate) fn u32_of(what: &str, x: usize) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::Limit {
        what: what.to_string(),
        size: x as u64,
        limit: "u32 element index",
        max: u64::from(u32::MAX),
    })
}

/// Workgroups needed to cover `n` items with `per` items each.
pub(crate) fn groups(n: usize, per: usize) -> Result<u32> {
    u32_of("workgroup count", n.div_ceil(per))
}
