//! safetensors files: what `safetensors.torch.save_file(model.state_dict(), ...)` writes.
//!
//! [`load`] accepts `F32`, `F16`, `BF16` and `F64` tensors and converts them to `f32` (`F64`
//! values outside the `f32` range become infinite); any other dtype is [`Error::Dtype`].
//! [`save`] writes `F32` tensors and the string metadata (`__metadata__`), atomically.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ::safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{read_file, write_atomic, HostTensor};
use crate::error::{Error, Result};

/// What [`load`] returns: tensors by name, and the file's `__metadata__` strings.
pub type Loaded = (BTreeMap<String, HostTensor>, BTreeMap<String, String>);

const ACCEPTED: &str = "F32, F16, BF16 or F64";

/// Reads a safetensors file: the tensors (converted to `f32`) by name, and the metadata
/// (empty if the file has none).
///
/// [`Error::Io`] if the file cannot be read, [`Error::Format`] if it is not a valid
/// safetensors file (truncated, corrupt header, offsets that do not cover the data),
/// [`Error::Dtype`] for a tensor that is not `F32`/`F16`/`BF16`/`F64`.
pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = read_file(path)?;
    parse(&bytes, &path.display().to_string())
}

/// [`load`] from bytes in memory (errors name the file `<memory>`).
pub fn load_bytes(bytes: &[u8]) -> Result<Loaded> {
    parse(bytes, "<memory>")
}

/// Writes `tensors` as `F32` and `metadata` as `__metadata__` (omitted when empty) to `path`,
/// atomically: a temporary file in the same directory is written, synced and renamed over
/// `path`, so on error the old file is untouched and no temporary file is left.
///
/// [`Error::Shape`] for a tensor whose data does not match its shape, [`Error::InvalidConfig`]
/// for a duplicate or reserved (`__metadata__`) name, [`Error::Io`] if writing fails.
pub fn save(
    path: &Path,
    tensors: &[(String, HostTensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let bytes = serialize(tensors, metadata, &path.display().to_string())?;
    write_atomic(path, &bytes)
}

/// The bytes [`save`] would write.
pub fn to_safetensors_bytes(
    tensors: &[(String, HostTensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    serialize(tensors, metadata, "<memory>")
}

fn format_err(path: &str, reason: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.to_string(),
        reason: format!("not a valid safetensors file: {reason}"),
    }
}

fn parse(bytes: &[u8], path: &str) -> Result<Loaded> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format_err(path, e))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.iter() {
        let t = convert(name, &view, path)?;
        tensors.insert(name.to_string(), t);
    }
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| format_err(path, e))?;
    let metadata = meta
        .metadata()
        .as_ref()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default();
    Ok((tensors, metadata))
}

fn convert(name: &str, view: &TensorView<'_>, path: &str) -> Result<HostTensor> {
    let shape = view.shape().to_vec();
    let raw = view.data();
    let dtype = view.dtype();
    let width = match dtype {
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        Dtype::F64 => 8,
        other => {
            return Err(Error::Dtype {
                name: name.to_string(),
                dtype: format!("{other:?}"),
                expected: ACCEPTED,
            })
        }
    };
    // safetensors has validated this already; check again rather than trust it.
    let n = super::checked_numel(&shape)
        .filter(|n| n.checked_mul(width) == Some(raw.len()))
        .ok_or_else(|| {
            format_err(
                path,
                format!(
                    "tensor {name:?}: {} bytes do not hold shape {shape:?} of {dtype:?}",
                    raw.len()
                ),
            )
        })?;
    let data: Vec<f32> = match dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
    };
    debug_assert_eq!(data.len(), n);
    Ok(HostTensor { shape, data })
}

fn serialize(
    tensors: &[(String, HostTensor)],
    metadata: &BTreeMap<String, String>,
    path: &str,
) -> Result<Vec<u8>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut bytes = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if name == "__metadata__" {
            return Err(Error::InvalidConfig(format!(
                "{path}: a tensor cannot be called __metadata__"
            )));
        }
        if !seen.insert(name.as_str()) {
            return Err(Error::InvalidConfig(format!(
                "{path}: tensor name {name:?} appears twice"
            )));
        }
        t.check(name)?;
        let b: Vec<u8> = t.data.iter().flat_map(|x| x.to_le_bytes()).collect();
        bytes.push(b);
    }
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, t), b) in tensors.iter().zip(&bytes) {
        let v = TensorView::new(Dtype::F32, t.shape.clone(), b).map_err(|e| Error::Format {
            path: path.to_string(),
            reason: format!("cannot serialize tensor {name:?}: {e}"),
        })?;
        views.push((name.as_str(), v));
    }
    let info: Option<HashMap<String, String>> = if metadata.is_empty() {
        None
    } else {
        Some(
            metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    ::safetensors::tensor::serialize(views, info).map_err(|e| Error::Format {
        path: path.to_string(),
        reason: format!("cannot serialize: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_safetensors_bytes_round_trip() {
        let t = HostTensor::new(vec![2, 2], vec![1.0, -2.0, 3.5, f32::MIN_POSITIVE]).unwrap();
        let s = HostTensor::new(vec![], vec![7.0]).unwrap();
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        let b = to_safetensors_bytes(&[("a".into(), t.clone()), ("s".into(), s.clone())], &meta)
            .unwrap();
        let (got, m) = load_bytes(&b).unwrap();
        assert_eq!(got["a"], t);
        assert_eq!(got["s"], s);
        assert_eq!(m, meta);
    }

    #[test]
    fn io_safetensors_rejects_bad_input() {
        let t = HostTensor {
            shape: vec![3],
            data: vec![1.0],
        };
        let none = BTreeMap::new();
        assert!(matches!(
            to_safetensors_bytes(&[("a".into(), t)], &none),
            Err(Error::Shape { .. })
        ));
        let ok = HostTensor::new(vec![1], vec![1.0]).unwrap();
        assert!(
            to_safetensors_bytes(&[("a".into(), ok.clone()), ("a".into(), ok)], &none).is_err()
        );
        assert!(matches!(load_bytes(b"\x01"), Err(Error::Format { .. })));
        assert!(matches!(load_bytes(&[]), Err(Error::Format { .. })));
    }
}
