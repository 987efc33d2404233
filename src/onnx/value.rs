//! The host values an ONNX graph passes between its nodes (`f32` and `i64` tensors), and
//! their reading from `TensorProto`s with every size checked before anything is allocated.

use super::proto::{tensor_proto, TensorProto};
use super::{malformed, unsupported};
use crate::error::{Error, Result};
use crate::io::HostTensor;

/// Largest number of elements one host value may hold (512 MiB of `f32`): a shape that a
/// mutated file makes huge is refused before it is allocated.
pub const MAX_ELEMENTS: usize = 1 << 27;

/// A dense, row-major tensor of `T`.
#[derive(Clone, Debug, PartialEq)]
pub struct Array<T> {
    /// Dimensions, slowest first; empty for a scalar.
    pub shape: Vec<usize>,
    /// The elements; `data.len()` is the product of `shape`.
    pub data: Vec<T>,
}

/// A value of the graph: ONNX `float` (also `double`, narrowed) or `int64` (also `int32`).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `tensor(float)`.
    F32(Array<f32>),
    /// `tensor(int64)`.
    I64(Array<i64>),
}

/// The element count of `shape`, or [`Error::Format`] naming `what` when it overflows or
/// passes [`MAX_ELEMENTS`]. Zero dimensions count as one for the limit: an empty tensor of
/// shape `[0, 2^40]` is refused too, so that every product of a valid shape's dimensions
/// (strides, per-axis index lists, concatenated lengths) stays under the limit.
pub(crate) fn numel(path: &str, what: &str, shape: &[usize]) -> Result<usize> {
    let bound = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d.max(1)));
    match (
        bound,
        shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)),
    ) {
        (Some(b), Some(n)) if b <= MAX_ELEMENTS => Ok(n),
        _ => Err(malformed(
            path,
            format!("{what} has shape {shape:?}, over the limit of {MAX_ELEMENTS} elements"),
        )),
    }
}

impl<T> Array<T> {
    /// An array of `shape` holding `data`, checked.
    pub(crate) fn new(path: &str, what: &str, shape: Vec<usize>, data: Vec<T>) -> Result<Self> {
        let n = numel(path, what, &shape)?;
        if n != data.len() {
            return Err(malformed(
                path,
                format!(
                    "{what} has shape {shape:?} ({n} elements) but {} values",
                    data.len()
                ),
            ));
        }
        Ok(Array { shape, data })
    }
}

impl Value {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F32(a) => &a.shape,
            Value::I64(a) => &a.shape,
        }
    }

    /// Elements held (the data, not the shape).
    pub fn len(&self) -> usize {
        match self {
            Value::F32(a) => a.data.len(),
            Value::I64(a) => a.data.len(),
        }
    }

    /// Whether the value holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `f32` tensor, or [`Error::Format`] naming `what` if this is an integer tensor.
    pub fn as_f32(&self, path: &str, what: &str) -> Result<&Array<f32>> {
        match self {
            Value::F32(a) => Ok(a),
            Value::I64(_) => Err(malformed(path, format!("{what} is int64, expected float"))),
        }
    }

    /// The `i64` tensor, or [`Error::Format`] naming `what` if this is a float tensor.
    pub fn as_i64(&self, path: &str, what: &str) -> Result<&Array<i64>> {
        match self {
            Value::I64(a) => Ok(a),
            Value::F32(_) => Err(malformed(path, format!("{what} is float, expected int64"))),
        }
    }
}

impl From<HostTensor> for Value {
    fn from(t: HostTensor) -> Self {
        Value::F32(Array {
            shape: t.shape,
            data: t.data,
        })
    }
}

impl TryFrom<Value> for HostTensor {
    type Error = Error;
    fn try_from(v: Value) -> Result<HostTensor> {
        match v {
            Value::F32(a) => HostTensor::new(a.shape, a.data),
            Value::I64(a) => HostTensor::new(a.shape, a.data.iter().map(|&x| x as f32).collect()),
        }
    }
}

/// Reads a `TensorProto` (an initializer or a `Constant`'s `value`) named `what`.
pub(crate) fn from_proto(path: &str, what: &str, t: &TensorProto) -> Result<Value> {
    use tensor_proto::DataType;
    if t.data_location == Some(tensor_proto::DataLocation::External as i32) {
        return Err(unsupported(
            path,
            format!("{what}: external tensor data (save the model with its weights inside)"),
        ));
    }
    if t.segment.is_some() {
        return Err(unsupported(path, format!("{what}: segmented tensor data")));
    }
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<Vec<usize>, _>>()
        .map_err(|_| {
            malformed(
                path,
                format!("{what} has a negative dimension {:?}", t.dims),
            )
        })?;
    let n = numel(path, what, &shape)?;
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    // Each branch checks the byte or value count against `n` before it allocates.
    let width_check = |width: usize, len: usize| -> Result<()> {
        if len != n.saturating_mul(width) {
            return Err(malformed(
                path,
                format!(
                    "{what} has shape {shape:?} ({n} elements) but {len} bytes of raw data (expected {})",
                    n.saturating_mul(width)
                ),
            ));
        }
        Ok(())
    };
    let data_type = t.data_type.unwrap_or(0);
    let value = match DataType::try_from(data_type) {
        Ok(DataType::Float) => {
            let data = match raw {
                Some(r) => {
                    width_check(4, r.len())?;
                    le_words(r, f32::from_le_bytes)
                }
                None => t.float_data.clone(),
            };
            Value::F32(Array::new(path, what, shape, data)?)
        }
        Ok(DataType::Double) => {
            let data = match raw {
                Some(r) => {
                    width_check(8, r.len())?;
                    le_words(r, |b| f64::from_le_bytes(b) as f32)
                }
                None => t.double_data.iter().map(|&x| x as f32).collect(),
            };
            Value::F32(Array::new(path, what, shape, data)?)
        }
        Ok(DataType::Int64) => {
            let data = match raw {
                Some(r) => {
                    width_check(8, r.len())?;
                    le_words(r, i64::from_le_bytes)
                }
                None => t.int64_data.clone(),
            };
            Value::I64(Array::new(path, what, shape, data)?)
        }
        Ok(DataType::Int32) => {
            let data = match raw {
                Some(r) => {
                    width_check(4, r.len())?;
                    le_words(r, |b| i64::from(i32::from_le_bytes(b)))
                }
                None => t.int32_data.iter().map(|&x| x as i64).collect(),
            };
            Value::I64(Array::new(path, what, shape, data)?)
        }
        Ok(other) => {
            return Err(unsupported(
                path,
                format!("{what}: element type {}", other.as_str_name()),
            ))
        }
        Err(_) => {
            return Err(malformed(
                path,
                format!("{what} has an unknown element type {data_type}"),
            ))
        }
    };
    Ok(value)
}

/// `raw` read as little-endian words of N bytes, each converted by `word` (the caller has
/// checked that the length is a multiple of N; a short tail is ignored).
fn le_words<const N: usize, T>(raw: &[u8], word: impl Fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            word(b)
        })
        .collect()
}
