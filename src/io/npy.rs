//! NumPy `.npy` files (format versions 1, 2 and 3), through `npyz`.
//!
//! [`read_f32`] accepts little-endian floating-point arrays in C order: `<f4` as is, and `<f8`
//! and `<f2` converted to `f32` (`f64` values outside the `f32` range become infinite). A
//! Fortran-order file is [`Error::Format`]; any other dtype (integers, big-endian, records,
//! pickled objects) is [`Error::Dtype`]. [`write_f32`] writes `<f4`, C order, atomically.

use std::path::Path;

use npyz::{DType, Endianness, NpyHeader, Order, TypeChar, TypeStr, WriterBuilder};

use super::{checked_numel, read_file, write_atomic, HostTensor};
use crate::error::{Error, Result};

const ACCEPTED: &str = "<f4 (or <f8 / <f2, converted to f32), C order";
/// Deepest bracket nesting accepted in a header (numpy writes 1; a record dtype a few more).
const MAX_HEADER_NESTING: usize = 16;

/// Reads a `.npy` file holding a little-endian float array in C order.
///
/// `<f4` is read as is; `<f8` and `<f2` are converted to `f32`. [`Error::Io`] if the file
/// cannot be read, [`Error::Format`] if it is not a valid `.npy` (bad magic, truncated,
/// trailing bytes, unparsable header) or is in Fortran order, [`Error::Dtype`] for any other
/// element type.
pub fn read_f32(path: &Path) -> Result<HostTensor> {
    let bytes = read_file(path)?;
    parse(&bytes, &path.display().to_string())
}

/// Reads a `.npy` file holding a 1-D little-endian `int32` or `int64` array (per-row lengths,
/// ONNX's `sequence_lens`), in C order. [`Error::Dtype`] for any other element type,
/// [`Error::Shape`] for another rank.
pub fn read_i64(path: &Path) -> Result<Vec<i64>> {
    let bytes = read_file(path)?;
    read_i64_bytes(&bytes, &path.display().to_string())
}

/// [`read_i64`] from bytes in memory; errors name `path`.
pub fn read_i64_bytes(bytes: &[u8], path: &str) -> Result<Vec<i64>> {
    let data_start = precheck(bytes, path)?;
    let header = NpyHeader::from_reader(&bytes[..data_start]).map_err(|e| format_err(path, e))?;
    let dtype = header.dtype();
    let width = match &dtype {
        DType::Plain(ts)
            if ts.type_char() == TypeChar::Int
                && ts.endianness() != Endianness::Big
                && matches!(ts.size_field(), 4 | 8) =>
        {
            ts.size_field() as usize
        }
        _ => {
            return Err(Error::Dtype {
                name: path.to_string(),
                dtype: dtype.descr(),
                expected: "<i4 or <i8, C order, one dimension",
            })
        }
    };
    if header.order() == Order::Fortran {
        return Err(format_err(path, "fortran_order is True"));
    }
    let shape = header.shape();
    if shape.len() != 1 {
        return Err(Error::Shape {
            what: format!("{path}: a 1-D array"),
            expected: vec![0],
            got: shape.iter().map(|&d| d as usize).collect(),
        });
    }
    let raw = &bytes[data_start..];
    let n = usize::try_from(shape[0]).map_err(|_| format_err(path, "shape too large"))?;
    if Some(raw.len()) != n.checked_mul(width) {
        return Err(format_err(
            path,
            format!(
                "{n} elements of {} need {} bytes, the file has {}",
                dtype.descr(),
                n.saturating_mul(width),
                raw.len()
            ),
        ));
    }
    Ok(match width {
        4 => raw
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
    })
}

/// [`read_f32`] from bytes in memory (errors name the file `<memory>`).
pub fn read_f32_bytes(bytes: &[u8]) -> Result<HostTensor> {
    parse(bytes, "<memory>")
}

/// Writes `t` as a `<f4`, C-order `.npy` to `path`, atomically: a temporary file in the same
/// directory is written, synced and renamed over `path`, so on error the old file is untouched
/// and no temporary file is left. [`Error::Shape`] if `t.data` does not match `t.shape`.
pub fn write_f32(path: &Path, t: &HostTensor) -> Result<()> {
    let bytes = serialize(t, &path.display().to_string())?;
    write_atomic(path, &bytes)
}

/// The bytes [`write_f32`] would write.
pub fn to_npy_bytes(t: &HostTensor) -> Result<Vec<u8>> {
    serialize(t, "<memory>")
}

fn format_err(path: &str, reason: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.to_string(),
        reason: format!("not a valid .npy file: {reason}"),
    }
}

/// Checks the parts of the header that `npyz` would trust: the lengths, the nesting depth (its
/// parser recurses) and the size of every number (its shape product does not check overflow).
/// Returns where the data starts.
fn precheck(bytes: &[u8], path: &str) -> Result<usize> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format_err(path, "missing the \\x93NUMPY magic"));
    }
    let (text_start, text_len) = match bytes[6] {
        1 => (10usize, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 if bytes.len() >= 12 => (
            12,
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
        ),
        2 | 3 => return Err(format_err(path, "truncated header")),
        v => return Err(format_err(path, format!("unknown format version {v}"))),
    };
    let data_start = text_start
        .checked_add(text_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| format_err(path, "truncated header"))?;
    let text = &bytes[text_start..data_start];

    let mut depth = 0usize;
    for &c in text {
        match c {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_HEADER_NESTING {
                    return Err(format_err(path, "header nests too deeply"));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }

    // Every number literal must be plain decimal, and the product of all of them (zeros
    // counted as one) must fit in u64; that bounds every product npyz forms from the shape.
    let mut bound: u64 = 1;
    for word in text.split(|c| !(c.is_ascii_alphanumeric() || *c == b'_')) {
        if word.first().is_some_and(|c| c.is_ascii_digit()) {
            let value = std::str::from_utf8(word)
                .ok()
                .filter(|w| w.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|w| w.parse::<u64>().ok())
                .ok_or_else(|| {
                    format_err(
                        path,
                        format!("unsupported number {:?}", String::from_utf8_lossy(word)),
                    )
                })?;
            bound = bound
                .checked_mul(value.max(1))
                .ok_or_else(|| format_err(path, "shape too large"))?;
        }
    }
    Ok(data_start)
}

fn parse(bytes: &[u8], path: &str) -> Result<HostTensor> {
    let data_start = precheck(bytes, path)?;
    let header = NpyHeader::from_reader(&bytes[..data_start]).map_err(|e| format_err(path, e))?;

    let dtype = header.dtype();
    let bad_dtype = || Error::Dtype {
        name: path.to_string(),
        dtype: dtype.descr(),
        expected: ACCEPTED,
    };
    let width = match &dtype {
        DType::Plain(ts)
            if ts.type_char() == TypeChar::Float && ts.endianness() == Endianness::Little =>
        {
            match ts.size_field() {
                s @ (2 | 4 | 8) => s as usize,
                _ => return Err(bad_dtype()),
            }
        }
        _ => return Err(bad_dtype()),
    };
    if header.order() == Order::Fortran {
        return Err(format_err(
            path,
            "fortran_order is True; save a C-order array (np.ascontiguousarray)",
        ));
    }

    let shape = header
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| format_err(path, "shape too large"))?;
    let raw = &bytes[data_start..];
    let need = checked_numel(&shape)
        .and_then(|n| n.checked_mul(width))
        .ok_or_else(|| format_err(path, "shape too large"))?;
    if raw.len() != need {
        return Err(format_err(
            path,
            format!(
                "shape {shape:?} of {} needs {need} data bytes, the file has {}",
                dtype.descr(),
                raw.len()
            ),
        ));
    }
    let data: Vec<f32> = match width {
        4 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        2 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
    };
    Ok(HostTensor { shape, data })
}

fn serialize(t: &HostTensor, path: &str) -> Result<Vec<u8>> {
    t.check(path)?;
    let ts: TypeStr = "<f4".parse().map_err(|e| format_err(path, e))?;
    let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
    let mut out = Vec::with_capacity(128 + 4 * t.data.len());
    let mut w = npyz::WriteOptions::<f32>::new()
        .dtype(DType::Plain(ts))
        .shape(&shape)
        .writer(&mut out)
        .begin_nd()
        .map_err(|e| format_err(path, e))?;
    w.extend(t.data.iter().copied())
        .map_err(|e| format_err(path, e))?;
    w.finish().map_err(|e| format_err(path, e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_npy_bytes_round_trip() {
        for shape in [vec![], vec![5], vec![2, 3], vec![2, 0, 4], vec![1, 2, 3, 2]] {
            let n: usize = shape.iter().product();
            let t = HostTensor::new(shape, (0..n).map(|i| i as f32 * 0.5 - 1.0).collect()).unwrap();
            let b = to_npy_bytes(&t).unwrap();
            assert_eq!(read_f32_bytes(&b).unwrap(), t);
        }
    }

    #[test]
    fn io_npy_reads_int32_and_int64_lengths() {
        let make = |descr: &str, shape: &str, data: &[u8]| {
            let dict =
                format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend((dict.len() as u16).to_le_bytes());
            b.extend(dict.as_bytes());
            b.extend(data);
            b
        };
        let i4: Vec<u8> = [3i32, 1, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        let i8: Vec<u8> = [3i64, 1, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            read_i64_bytes(&make("<i4", "(3,)", &i4), "m").unwrap(),
            vec![3, 1, 7]
        );
        assert_eq!(
            read_i64_bytes(&make("<i8", "(3,)", &i8), "m").unwrap(),
            vec![3, 1, 7]
        );
        assert!(matches!(
            read_i64_bytes(&make("<f4", "(3,)", &i4), "m"),
            Err(Error::Dtype { .. })
        ));
        assert!(matches!(
            read_i64_bytes(&make("<i4", "(3, 1)", &i4), "m"),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            read_i64_bytes(&make("<i8", "(3,)", &i4), "m"),
            Err(Error::Format { .. })
        ));
    }

    #[test]
    fn io_npy_rejects_huge_shapes_and_odd_numbers() {
        let make = |dict: &str| {
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend((dict.len() as u16).to_le_bytes());
            b.extend(dict.as_bytes());
            b
        };
        for shape in [
            "(4294967296, 4294967296, 4294967296)",
            "(0, 4294967296, 4294967296, 4294967296)",
            "(99999999999999999999999,)",
            "(0x10,)",
            "(1_0,)",
            "(((((((((((((((((((((1,),),),),),),),),),),),),),),),),),),),),),)",
        ] {
            let b = make(&format!(
                "{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n"
            ));
            assert!(
                matches!(read_f32_bytes(&b), Err(Error::Format { .. })),
                "{shape}"
            );
        }
    }
}
