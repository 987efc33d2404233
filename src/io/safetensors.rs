//! safetensors files: what `safetensors.torch.save_file(model.state_dict(), ...)` writes.
//!
//! [`load`] accepts `F32`, `F16`, `BF16` and `F64` tensors and converts them to `f32` (`F64`
//! values outside the `f32` range become infinite); any other dtype is [`Error::Dtype`].
//! [`save`] writes `F32` tensors and the string metadata (`__metadata__`), atomically.

use std::collections::BTreeMap;
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
/// ```
/// # fn main() -> recur::Result<()> {
/// use std::collections::BTreeMap;
/// use recur::HostTensor;
/// let w = HostTensor::new(vec![2, 3], vec![1., 2., 3., 4., 5., 6.])?;
/// let path = std::env::temp_dir().join(format!("recur-doc-st-{}.safetensors", std::process::id()));
/// recur::io::save(&path, &[("fc.weight".to_string(), w.clone())], &BTreeMap::new())?;
/// let (tensors, _metadata) = recur::io::load(&path)?; // what safetensors.torch.load_file reads
/// assert_eq!(tensors["fc.weight"], w);
/// # std::fs::remove_file(&path).ok();
/// # Ok(())
/// # }
/// ```
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
    let json = |v: &str| serde_json::Value::from(v).to_string();
    // The header is written here rather than by the safetensors crate, whose metadata map is
    // a HashMap: its key order (and so the file's bytes) changed from run to run. Keys come
    // in a fixed order: `__metadata__` (keys sorted), then the tensors sorted by name, whose
    // data follows in the same order.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| tensors[a].0.cmp(&tensors[b].0));
    let mut header = String::from("{");
    if !metadata.is_empty() {
        header += "\"__metadata__\":{";
        let entries: Vec<String> = metadata
            .iter()
            .map(|(k, v)| format!("{}:{}", json(k), json(v)))
            .collect();
        header += &entries.join(",");
        header += "}";
    }
    let mut offset = 0usize;
    for (n, &i) in order.iter().enumerate() {
        let (name, t) = &tensors[i];
        let end = offset + bytes[i].len();
        if n > 0 || !metadata.is_empty() {
            header += ",";
        }
        let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        header += &format!(
            "{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            json(name),
            shape.join(",")
        );
        offset = end;
    }
    header += "}";
    // Pad with spaces so that the data starts 8-byte aligned, as the crate does.
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &i in &order {
        out.extend_from_slice(&bytes[i]);
    }
    // Checked by the reader it is written for.
    SafeTensors::deserialize(&out).map_err(|e| Error::Format {
        path: path.to_string(),
        reason: format!("cannot serialize: {e}"),
    })?;
    Ok(out)
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
    fn io_safetensors_bytes_are_deterministic() {
        let t = |v: f32| HostTensor::new(vec![1, 2], vec![v, -v]).unwrap();
        let tensors = vec![
            ("z.w".to_string(), t(1.0)),
            ("a \"quoted\" ü".to_string(), t(2.0)),
            (
                "empty".to_string(),
                HostTensor::new(vec![0, 3], vec![]).unwrap(),
            ),
        ];
        let meta: BTreeMap<String, String> = (0..20)
            .map(|i| (format!("key{i}"), format!("{{\"v\": \"{i}\\n\"}}")))
            .collect();
        let first = to_safetensors_bytes(&tensors, &meta).unwrap();
        let mut reversed = tensors.clone();
        reversed.reverse();
        for _ in 0..5 {
            assert_eq!(to_safetensors_bytes(&tensors, &meta).unwrap(), first);
            assert_eq!(to_safetensors_bytes(&reversed, &meta).unwrap(), first);
        }
        let (got, m) = load_bytes(&first).unwrap();
        assert_eq!(m, meta);
        for (k, v) in &tensors {
            assert_eq!(&got[k], v, "{k}");
        }
        // Without metadata, too.
        let plain = to_safetensors_bytes(&tensors, &BTreeMap::new()).unwrap();
        assert_eq!(load_bytes(&plain).unwrap().0, got);
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
