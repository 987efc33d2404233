//! The shape of an RNN stack: cell, sizes, layers, directions, bias, layout.

use super::cell::CellKind;
use crate::error::{Error, Result};

/// Everything that fixes the parameter shapes and the data layout of an RNN stack,
/// with PyTorch's `nn.RNN` / `nn.LSTM` / `nn.GRU` meanings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RnnConfig {
    /// The cell of every layer.
    pub cell: CellKind,
    /// Features of the input `x` (`I`).
    pub input_size: usize,
    /// Features of the hidden state (`H`).
    pub hidden_size: usize,
    /// Stacked layers (`L`); layer k>0 reads the `D*H` features layer k-1 writes.
    pub num_layers: usize,
    /// Two directions (`D = 2`) whose outputs are concatenated on the feature axis.
    pub bidirectional: bool,
    /// Whether `bias_ih_l{k}` and `bias_hh_l{k}` exist.
    pub bias: bool,
    /// Input and output are `(B, T, F)` instead of `(T, B, F)`.
    pub batch_first: bool,
    /// LSTM only: when non-zero, `h = W_hr · (o * tanh(c))` has this many features (`P < H`)
    /// and `weight_hr_l{k}` (`[P, H]`) exists, as PyTorch's `proj_size`.
    pub proj_size: usize,
}

impl RnnConfig {
    /// A one-layer, unidirectional, biased, time-first stack.
    pub fn new(cell: CellKind, input_size: usize, hidden_size: usize) -> Self {
        RnnConfig {
            cell,
            input_size,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            bias: true,
            batch_first: false,
            proj_size: 0,
        }
    }

    /// Sets the number of layers.
    pub fn layers(mut self, n: usize) -> Self {
        self.num_layers = n;
        self
    }

    /// Sets bidirectional.
    pub fn bidirectional(mut self, yes: bool) -> Self {
        self.bidirectional = yes;
        self
    }

    /// Sets whether the layers have biases.
    pub fn bias(mut self, yes: bool) -> Self {
        self.bias = yes;
        self
    }

    /// Sets batch-first layout.
    pub fn batch_first(mut self, yes: bool) -> Self {
        self.batch_first = yes;
        self
    }

    /// Sets the LSTM projection size (`0` = none).
    pub fn proj_size(mut self, p: usize) -> Self {
        self.proj_size = p;
        self
    }

    /// Width of the hidden state `h` and of each direction's output: `P` with a projection,
    /// else `H`. (The LSTM cell state `c` is always `H` wide.)
    pub fn out_hidden(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Number of directions, `D`.
    pub fn num_directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Width of layer `layer`'s input: `I` for layer 0, `D*H` (or `D*P`) above it.
    pub fn layer_input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.output_size()
        }
    }

    /// Width of the output `y`: `D*H` (or `D*P` with a projection).
    pub fn output_size(&self) -> usize {
        self.num_directions() * self.out_hidden()
    }

    /// Rows of the gate matrices: `gates * H`.
    pub fn gate_rows(&self) -> usize {
        self.cell.gates() * self.hidden_size
    }

    /// Checks that every size is positive.
    pub fn validate(&self) -> Result<()> {
        if self.input_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return Err(Error::InvalidConfig(format!(
                "input_size, hidden_size and num_layers must be positive (got {}, {}, {})",
                self.input_size, self.hidden_size, self.num_layers
            )));
        }
        // Far beyond any adapter, and small enough that every parameter count below stays
        // exact in 64 bits (sizes also come from files).
        const MAX_DIM: usize = 1 << 24;
        if self.input_size > MAX_DIM
            || self.hidden_size > MAX_DIM
            || self.proj_size > MAX_DIM
            || self.num_layers > 1024
        {
            return Err(Error::InvalidConfig(format!(
                "sizes too large: input {}, hidden {}, proj {}, layers {} (at most {MAX_DIM} and 1024 layers)",
                self.input_size, self.hidden_size, self.proj_size, self.num_layers
            )));
        }
        if self.proj_size > 0 && self.cell != CellKind::Lstm {
            return Err(Error::InvalidConfig(format!(
                "proj_size is an LSTM option (cell is {})",
                self.cell
            )));
        }
        if self.proj_size >= self.hidden_size && self.proj_size > 0 {
            return Err(Error::InvalidConfig(format!(
                "proj_size ({}) must be smaller than hidden_size ({})",
                self.proj_size, self.hidden_size
            )));
        }
        Ok(())
    }
}
