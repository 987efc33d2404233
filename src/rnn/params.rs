//! The flat parameter layout: every tensor of the stack in one buffer, in PyTorch's
//! state_dict order and names (like cuDNN's weight space).

use super::config::RnnConfig;

/// What a parameter tensor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// `weight_ih_l{k}`: `[G*H, in]`.
    WeightIh,
    /// `weight_hh_l{k}`: `[G*H, H]`.
    WeightHh,
    /// `bias_ih_l{k}`: `[G*H]`.
    BiasIh,
    /// `bias_hh_l{k}`: `[G*H]`.
    BiasHh,
    /// `weight_hr_l{k}`: `[P, H]` (LSTM with `proj_size`).
    WeightHr,
}

/// One tensor inside the flat parameter buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamEntry {
    /// PyTorch state_dict name, without any prefix (`weight_ih_l0_reverse`).
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Offset in elements inside the flat buffer.
    pub offset: usize,
    /// Layer index.
    pub layer: usize,
    /// Direction (0 forward, 1 reverse).
    pub direction: usize,
    /// Which tensor of the layer it is.
    pub kind: ParamKind,
}

impl ParamEntry {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements (never, for a valid config).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element range inside the flat buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// The layout of all parameters of an [`RnnConfig`] in one flat buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    /// Tensors in state_dict order: for each layer, for each direction,
    /// `weight_ih, weight_hh, bias_ih, bias_hh` and, with a projection, `weight_hr`.
    pub entries: Vec<ParamEntry>,
    /// Total elements.
    pub total: usize,
}

impl ParamLayout {
    /// Lays out the parameters of `cfg`.
    pub fn new(cfg: &RnnConfig) -> Self {
        let mut entries = Vec::new();
        let mut offset = 0;
        let gh = cfg.gate_rows();
        let h = cfg.hidden_size;
        for layer in 0..cfg.num_layers {
            for direction in 0..cfg.num_directions() {
                let suffix = if direction == 1 { "_reverse" } else { "" };
                let mut push = |kind: ParamKind, stem: &str, shape: Vec<usize>| {
                    let e = ParamEntry {
                        name: format!("{stem}_l{layer}{suffix}"),
                        shape,
                        offset,
                        layer,
                        direction,
                        kind,
                    };
                    offset += e.len();
                    entries.push(e);
                };
                push(
                    ParamKind::WeightIh,
                    "weight_ih",
                    vec![gh, cfg.layer_input_size(layer)],
                );
                push(ParamKind::WeightHh, "weight_hh", vec![gh, cfg.out_hidden()]);
                if cfg.bias {
                    push(ParamKind::BiasIh, "bias_ih", vec![gh]);
                    push(ParamKind::BiasHh, "bias_hh", vec![gh]);
                }
                if cfg.proj_size > 0 {
                    push(ParamKind::WeightHr, "weight_hr", vec![cfg.proj_size, h]);
                }
            }
        }
        ParamLayout {
            entries,
            total: offset,
        }
    }

    /// The entry of `kind` for `layer` and `direction`, if the config has it.
    pub fn find(&self, layer: usize, direction: usize, kind: ParamKind) -> Option<&ParamEntry> {
        self.entries
            .iter()
            .find(|e| e.layer == layer && e.direction == direction && e.kind == kind)
    }

    /// The entry called `name` (no prefix).
    pub fn by_name(&self, name: &str) -> Option<&ParamEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}
