//! PyTorch state_dicts to and from an [`RnnConfig`] and its flat parameter buffer.
//!
//! `nn.RNN`, `nn.LSTM` and `nn.GRU` store `weight_ih_l{k}[_reverse]`, `weight_hh_l{k}[_reverse]`,
//! `bias_ih_l{k}[_reverse]`, `bias_hh_l{k}[_reverse]` (and `weight_hr_l{k}` with `proj_size`).
//! The shapes fix everything but the vanilla RNN's nonlinearity and `batch_first`, which a
//! state_dict does not record: the nonlinearity comes from the caller or the file's metadata,
//! and `batch_first` is left `false` for the caller to set.

use std::collections::BTreeMap;

use super::cell::CellKind;
use super::config::RnnConfig;
use super::params::ParamLayout;
use crate::error::{Error, Result};
use crate::io::HostTensor;

/// Metadata key holding a vanilla RNN's nonlinearity (`tanh` or `relu`).
pub const NONLINEARITY_KEY: &str = "nonlinearity";

/// Whether `name` (prefix removed) looks like a parameter of an RNN layer:
/// `weight_*` or `bias_*` with an `_l<digit>` part, and no `.`.
fn looks_like_rnn_param(name: &str) -> bool {
    if name.contains('.') || !(name.starts_with("weight_") || name.starts_with("bias_")) {
        return false;
    }
    name.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'_' && w[1] == b'l' && w[2].is_ascii_digit())
}

/// `Some(k)` if `name` is exactly `weight_ih_l{k}` (forward direction, decimal `k`).
fn forward_weight_ih_layer(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("weight_ih_l")?;
    // Plain decimal: `l01` is not layer 1 (PyTorch never writes it).
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// The RNN nonlinearity named by a metadata value.
fn parse_nonlinearity(value: &str) -> Option<CellKind> {
    match value.trim().to_ascii_lowercase().as_str() {
        "tanh" | "rnn_tanh" => Some(CellKind::RnnTanh),
        "relu" | "rnn_relu" => Some(CellKind::RnnRelu),
        _ => None,
    }
}

/// The 2-D shape of `name`, or [`Error::MissingTensor`] / [`Error::InvalidConfig`].
fn matrix_shape<'a>(
    rnn: &BTreeMap<&str, &'a HostTensor>,
    prefix: &str,
    name: &str,
) -> Result<(&'a HostTensor, usize, usize)> {
    let t = rnn
        .get(name)
        .copied()
        .ok_or_else(|| Error::MissingTensor(format!("{prefix}{name}")))?;
    match t.shape[..] {
        [rows, cols] => Ok((t, rows, cols)),
        _ => Err(Error::InvalidConfig(format!(
            "{prefix}{name} must be a matrix, got shape {:?}",
            t.shape
        ))),
    }
}

/// Infers an RNN stack from the PyTorch state_dict tensors whose names start with `prefix`
/// (for example `"lstm."`, or `""` for a bare `nn.LSTM`), and gathers its parameters into one
/// flat buffer in [`ParamLayout::new`] order.
///
/// - layers: the number of `weight_ih_l{k}`; bidirectional if `_reverse` tensors exist;
///   biased if `bias_ih_l0`/`bias_hh_l0` exist;
/// - `H` is `weight_hh_l0.shape[1]`, `I` is `weight_ih_l0.shape[1]`, and
///   `weight_ih_l0.shape[0]` is `4H` (LSTM), `3H` (GRU) or `H` (vanilla RNN);
/// - a vanilla RNN's nonlinearity is `nonlinearity` if given, else the metadata key
///   [`NONLINEARITY_KEY`] (`tanh`/`relu`), else tanh. Passing `Some` of a kind the tensors
///   contradict (relu for an LSTM, GRU for 4H rows) is [`Error::InvalidConfig`];
/// - `batch_first` is `false`.
///
/// `weight_hr_l*` tensors make an LSTM with `proj_size` (H from their columns, P from their
/// rows).
///
/// Errors: no RNN tensors under `prefix`, or inconsistent sizes: [`Error::InvalidConfig`]; an expected tensor absent:
/// [`Error::MissingTensor`]; a tensor of the wrong shape: [`Error::Shape`]; any other
/// `weight_*_l<k>`/`bias_*_l<k>` tensor under `prefix`: [`Error::UnexpectedTensor`]. Other
/// tensors (a `fc.weight` beside the RNN, say) are ignored.
pub fn config_from_state_dict(
    tensors: &BTreeMap<String, HostTensor>,
    prefix: &str,
    nonlinearity: Option<CellKind>,
    metadata: &BTreeMap<String, String>,
) -> Result<(RnnConfig, Vec<f32>)> {
    let rnn: BTreeMap<&str, &HostTensor> = tensors
        .iter()
        .filter_map(|(name, t)| name.strip_prefix(prefix).map(|rest| (rest, t)))
        .filter(|(rest, _)| looks_like_rnn_param(rest))
        .collect();

    if rnn.is_empty() {
        return Err(no_rnn_tensors(tensors, prefix));
    }
    let (_, rows, input_size) = matrix_shape(&rnn, prefix, "weight_ih_l0")?;
    // With an LSTM projection (`weight_hr_l0`, [P, H]), weight_hh is [4H, P]: H comes from
    // weight_hr's columns instead.
    let (hidden_size, proj_size) = if rnn.contains_key("weight_hr_l0") {
        let (_, p, h) = matrix_shape(&rnn, prefix, "weight_hr_l0")?;
        (h, p)
    } else {
        let (_, _, h) = matrix_shape(&rnn, prefix, "weight_hh_l0")?;
        (h, 0)
    };
    if hidden_size == 0 || input_size == 0 {
        return Err(Error::InvalidConfig(format!(
            "{prefix}weight_ih_l0 / weight_hh_l0 give input_size {input_size} and hidden_size \
             {hidden_size}; both must be positive"
        )));
    }
    let inferred = match (rows % hidden_size, rows / hidden_size) {
        (0, 4) => CellKind::Lstm,
        (0, 3) => CellKind::Gru,
        (0, 1) => CellKind::RnnTanh,
        _ => {
            return Err(Error::InvalidConfig(format!(
                "{prefix}weight_ih_l0 has {rows} rows, which is not 4H (LSTM), 3H (GRU) or H \
                 (RNN) for hidden_size H = {hidden_size} from {prefix}weight_hh_l0"
            )))
        }
    };
    let cell = match inferred {
        CellKind::RnnTanh | CellKind::RnnRelu => match nonlinearity {
            Some(k @ (CellKind::RnnTanh | CellKind::RnnRelu)) => k,
            Some(other) => return Err(contradiction(prefix, other, rows, hidden_size)),
            None => match metadata.get(NONLINEARITY_KEY) {
                Some(v) => parse_nonlinearity(v).ok_or_else(|| {
                    Error::InvalidConfig(format!(
                        "metadata {NONLINEARITY_KEY}={v:?} is not tanh or relu"
                    ))
                })?,
                None => CellKind::RnnTanh,
            },
        },
        kind => match nonlinearity {
            Some(k) if k != kind => return Err(contradiction(prefix, k, rows, hidden_size)),
            _ => kind,
        },
    };

    let num_layers = rnn
        .keys()
        .filter(|n| forward_weight_ih_layer(n).is_some())
        .count();
    let bidirectional = rnn.keys().any(|n| n.ends_with("_reverse"));
    let bias = rnn.contains_key("bias_ih_l0") || rnn.contains_key("bias_hh_l0");

    let cfg = RnnConfig {
        cell,
        input_size,
        hidden_size,
        num_layers,
        bidirectional,
        bias,
        batch_first: false,
        proj_size,
    };
    cfg.validate()?;

    let layout = ParamLayout::new(&cfg);
    // Every tensor is checked before the flat buffer is allocated: the sizes come from the
    // file, and only tensors that are really there (and so already in memory) may size it.
    for e in &layout.entries {
        let full = format!("{prefix}{}", e.name);
        let t = rnn
            .get(e.name.as_str())
            .copied()
            .ok_or_else(|| Error::MissingTensor(full.clone()))?;
        if t.shape != e.shape {
            return Err(Error::Shape {
                what: full,
                expected: e.shape.clone(),
                got: t.shape.clone(),
            });
        }
    }
    let mut flat = vec![0.0f32; layout.total];
    for e in &layout.entries {
        let full = format!("{prefix}{}", e.name);
        let t = rnn
            .get(e.name.as_str())
            .copied()
            .ok_or_else(|| Error::MissingTensor(full.clone()))?;
        if t.shape != e.shape {
            return Err(Error::Shape {
                what: full,
                expected: e.shape.clone(),
                got: t.shape.clone(),
            });
        }
        if t.data.len() != e.len() {
            return Err(Error::Shape {
                what: format!("{full} (data holds {} elements)", t.data.len()),
                expected: e.shape.clone(),
                got: vec![t.data.len()],
            });
        }
        flat[e.range()].copy_from_slice(&t.data);
    }
    if let Some(extra) = rnn.keys().find(|n| layout.by_name(n).is_none()) {
        return Err(Error::UnexpectedTensor(format!("{prefix}{extra}")));
    }
    Ok((cfg, flat))
}

fn contradiction(prefix: &str, asked: CellKind, rows: usize, hidden: usize) -> Error {
    Error::InvalidConfig(format!(
        "{asked} was asked for, but {prefix}weight_ih_l0 has {rows} rows for hidden_size \
         {hidden}, which is {}",
        match rows / hidden {
            4 => "an LSTM",
            3 => "a GRU",
            _ => "a vanilla RNN",
        }
    ))
}

/// The error for a state_dict with no RNN tensor under `prefix`: lists a few names, and the
/// prefixes that would have found `weight_ih_l0`.
fn no_rnn_tensors(tensors: &BTreeMap<String, HostTensor>, prefix: &str) -> Error {
    const SHOW: usize = 6;
    let mut found: Vec<&str> = tensors.keys().take(SHOW).map(String::as_str).collect();
    if tensors.len() > SHOW {
        found.push("...");
    }
    let hints: Vec<String> = tensors
        .keys()
        .filter_map(|n| n.strip_suffix("weight_ih_l0"))
        .map(|p| format!("{p:?}"))
        .take(3)
        .collect();
    let mut msg = format!(
        "no RNN tensors (weight_ih_l0, weight_hh_l0, ...) under prefix {prefix:?}; the {} \
         tensors found include [{}]",
        tensors.len(),
        found.join(", ")
    );
    if !hints.is_empty() {
        msg.push_str(&format!("; try prefix {}", hints.join(" or ")));
    }
    Error::InvalidConfig(msg)
}

/// The PyTorch state_dict of `cfg` whose parameters are `flat` (in [`ParamLayout::new`] order):
/// each tensor named `prefix` + its PyTorch name, in state_dict order.
///
/// [`Error::Shape`] if `flat` does not hold exactly the layout's element count.
pub fn state_dict_from_params(
    cfg: &RnnConfig,
    flat: &[f32],
    prefix: &str,
) -> Result<Vec<(String, HostTensor)>> {
    let layout = ParamLayout::new(cfg);
    if flat.len() != layout.total {
        return Err(Error::Shape {
            what: format!("flat parameters of {} {cfg:?}", cfg.cell),
            expected: vec![layout.total],
            got: vec![flat.len()],
        });
    }
    Ok(layout
        .entries
        .iter()
        .map(|e| {
            (
                format!("{prefix}{}", e.name),
                HostTensor {
                    shape: e.shape.clone(),
                    data: flat[e.range()].to_vec(),
                },
            )
        })
        .collect())
}

/// Metadata to save beside [`state_dict_from_params`] so that [`config_from_state_dict`]
/// finds the same config: `nonlinearity` = `tanh`/`relu` for a vanilla RNN, nothing otherwise.
pub fn state_dict_metadata(cfg: &RnnConfig) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let value = match cfg.cell {
        CellKind::RnnTanh => "tanh",
        CellKind::RnnRelu => "relu",
        CellKind::Lstm | CellKind::Gru => return m,
    };
    m.insert(NONLINEARITY_KEY.to_string(), value.to_string());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(cfg: &RnnConfig, prefix: &str) -> BTreeMap<String, HostTensor> {
        let n = ParamLayout::new(cfg).total;
        let flat: Vec<f32> = (0..n).map(|i| i as f32).collect();
        state_dict_from_params(cfg, &flat, prefix)
            .unwrap()
            .into_iter()
            .collect()
    }

    #[test]
    fn state_dict_round_trip_every_kind() {
        let none = BTreeMap::new();
        for cell in [CellKind::RnnTanh, CellKind::Lstm, CellKind::Gru] {
            for (layers, bidir, bias) in [(1, false, true), (3, true, false), (2, true, true)] {
                let cfg = RnnConfig::new(cell, 5, 7)
                    .layers(layers)
                    .bidirectional(bidir)
                    .bias(bias);
                let d = dict(&cfg, "m.rnn.");
                let (got, flat) = config_from_state_dict(&d, "m.rnn.", None, &none).unwrap();
                assert_eq!(got, cfg);
                assert_eq!(flat, (0..flat.len()).map(|i| i as f32).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn state_dict_rejects_a_wrong_flat_length() {
        let cfg = RnnConfig::new(CellKind::Gru, 2, 3);
        assert!(matches!(
            state_dict_from_params(&cfg, &[0.0; 5], ""),
            Err(Error::Shape { .. })
        ));
    }

    #[test]
    fn state_dict_name_helpers() {
        assert!(looks_like_rnn_param("weight_ih_l0"));
        assert!(looks_like_rnn_param("bias_hh_l12_reverse"));
        assert!(looks_like_rnn_param("weight_hr_l0"));
        assert!(!looks_like_rnn_param("weight"));
        assert!(!looks_like_rnn_param("fc.weight_l0"));
        assert!(!looks_like_rnn_param("weight_ih_lx"));
        assert_eq!(forward_weight_ih_layer("weight_ih_l10"), Some(10));
        assert_eq!(forward_weight_ih_layer("weight_ih_l0_reverse"), None);
        assert_eq!(forward_weight_ih_layer("weight_ih_l"), None);
    }
}
