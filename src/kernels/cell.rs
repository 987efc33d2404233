//! Cell kinds and their gate layouts, as PyTorch stores them. The kind lives below the
//! kernels, which pick a cell's entry points by it; [`crate::rnn`] and the crate root
//! re-export it (`recur::CellKind`).

use std::fmt;

/// The recurrent cell of a layer.
///
/// Gate rows of `weight_ih_l{k}` / `weight_hh_l{k}`, in PyTorch's order:
/// - `RnnTanh`, `RnnRelu`: one block, `h' = act(W_ih x + b_ih + W_hh h + b_hh)`;
/// - `Lstm`: `[i | f | g | o]`, `c' = f*c + i*g`, `h' = o*tanh(c')`;
/// - `Gru`: `[r | z | n]`, `n = tanh(W_in x + b_in + r*(W_hn h + b_hn))`, `h' = (1-z)*n + z*h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellKind {
    /// Elman RNN with tanh.
    RnnTanh,
    /// Elman RNN with relu.
    RnnRelu,
    /// Long short-term memory.
    Lstm,
    /// Gated recurrent unit (PyTorch's form, `linear_before_reset = 1` in ONNX terms).
    Gru,
}

impl CellKind {
    /// Number of gate blocks of `hidden` rows in the weight matrices.
    pub fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// Whether the cell carries a cell state `c` beside `h`.
    pub fn has_cell_state(self) -> bool {
        self == CellKind::Lstm
    }

    /// Parses `lstm`, `gru`, `rnn_tanh`/`rnn`/`tanh`, `rnn_relu`/`relu`.
    pub fn parse(s: &str) -> Option<CellKind> {
        match s.to_ascii_lowercase().as_str() {
            "lstm" => Some(CellKind::Lstm),
            "gru" => Some(CellKind::Gru),
            "rnn" | "rnn_tanh" | "tanh" => Some(CellKind::RnnTanh),
            "rnn_relu" | "relu" => Some(CellKind::RnnRelu),
            _ => None,
        }
    }

    /// Short lowercase name (`lstm`, `gru`, `rnn_tanh`, `rnn_relu`).
    pub fn name(self) -> &'static str {
        match self {
            CellKind::RnnTanh => "rnn_tanh",
            CellKind::RnnRelu => "rnn_relu",
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
        }
    }
}

impl fmt::Display for CellKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
