//! Reading and writing tensors on the host: safetensors (in PyTorch state_dict names) and
//! NumPy `.npy` files.
//!
//! Everything read from a file is checked: a missing file is [`Error::Io`], a corrupt or
//! truncated one is [`Error::Format`], an unsupported element type is [`Error::Dtype`]. Nothing
//! here panics on file contents, and nothing reads a file without an end (see [`files`]).
//! Writers are atomic: the bytes go to a temporary file in the same directory, which is
//! flushed to disk and then renamed over the target, so a reader sees either the old file or
//! the complete new one; the temporary files of an interrupted write are removed by the next.

pub mod files;
pub mod npy;
pub mod safetensors;
pub mod transfer;

use std::path::Path;

use crate::error::{Error, Result};

pub(crate) use self::files::read_file;
pub use self::files::{
    read_file_limited, same_file, write_all_atomic, write_atomic, CommandFiles, MAX_FILE_BYTES,
};
pub use self::npy::{read_f32, read_f32_bytes, read_i64, read_i64_bytes, to_npy_bytes, write_f32};
pub use self::safetensors::{load, load_bytes, save, to_safetensors_bytes};

/// A dense, row-major (C order) `f32` tensor in host memory: what files hold, and what
/// [`crate::Gpu::upload`] / [`crate::Gpu::download`] move to and from the device with its
/// shape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostTensor {
    /// Dimensions, slowest first. An empty shape is a scalar (one element).
    pub shape: Vec<usize>,
    /// The elements in row-major order; `data.len()` equals the product of `shape`.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor of `shape` holding `data`; [`Error::Shape`] unless `data.len()` is the product
    /// of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let t = HostTensor { shape, data };
        t.check(&format!("tensor of shape {:?}", t.shape))?;
        Ok(t)
    }

    /// A tensor of `shape` filled with zeros ([`Error::Shape`] if the element count overflows).
    pub fn zeros(shape: Vec<usize>) -> Result<Self> {
        let n = checked_numel(&shape).ok_or_else(|| Error::Shape {
            what: "tensor (element count overflows)".to_string(),
            expected: Vec::new(),
            got: shape.clone(),
        })?;
        Ok(HostTensor {
            shape,
            data: vec![0.0; n],
        })
    }

    /// Number of elements stored, `data.len()`.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no element is stored.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Number of elements the shape describes (product of `shape`, 1 for a scalar), saturating
    /// at `usize::MAX`. Equals [`len`](Self::len) for a consistent tensor.
    pub fn numel(&self) -> usize {
        checked_numel(&self.shape).unwrap_or(usize::MAX)
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// [`Error::Shape`] naming `what` unless `data.len()` is the product of `shape`; the
    /// error compares element counts with element counts (`expected [6], got [5]`) and names
    /// the shape in `what`.
    pub(crate) fn check(&self, what: &str) -> Result<()> {
        match checked_numel(&self.shape) {
            Some(n) if n == self.data.len() => Ok(()),
            n => Err(Error::Shape {
                what: format!("{what}: element count of shape {:?}", self.shape),
                expected: n.map(|n| vec![n]).unwrap_or_default(),
                got: vec![self.data.len()],
            }),
        }
    }
}

/// The product of `shape`, or `None` on overflow.
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// [`Error::Io`] for `path`.
pub(crate) fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// [`Error::NonFinite`] naming `what`, the index and the value of the first NaN or infinite
/// element of `data`. Weights and inputs get the same rule: a model with a NaN in it gives
/// NaN (PyTorch) or finite garbage (a fused kernel that happens to skip it), never a result
/// worth having.
pub fn check_finite(what: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::NonFinite(format!(
            "{what} (element {i} is {})",
            data[i]
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn io_host_tensor_new_checks_the_product() {
        assert!(HostTensor::new(vec![2, 3], vec![0.0; 6]).is_ok());
        assert!(matches!(
            HostTensor::new(vec![2, 3], vec![0.0; 5]),
            Err(Error::Shape { .. })
        ));
        let s = HostTensor::new(vec![], vec![1.0]).unwrap();
        assert_eq!((s.len(), s.numel(), s.ndim()), (1, 1, 0));
        assert!(HostTensor::new(vec![usize::MAX, 2], vec![]).is_err());
        assert!(HostTensor::zeros(vec![usize::MAX, 2]).is_err());
        let z = HostTensor::zeros(vec![0, 4]).unwrap();
        assert!(z.is_empty());
        assert_eq!(z.numel(), 0);
    }

    #[test]
    fn io_write_atomic_replaces_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("recur-io-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.bin");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new contents").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new contents");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(names.len(), 1);
        // Renaming over a directory fails: the temp file must be gone afterwards.
        let sub = dir.join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("keep"), b"k").unwrap();
        assert!(matches!(write_atomic(&sub, b"zz"), Err(Error::Io { .. })));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        assert_eq!(fs::read(sub.join("keep")).unwrap(), b"k");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn io_check_finite_names_the_first_bad_element() {
        assert!(check_finite("w", &[0.0, -1.5, f32::MAX]).is_ok());
        match check_finite("model.head.bias", &[1.0, f32::NAN, f32::INFINITY]) {
            Err(Error::NonFinite(m)) => assert_eq!(m, "model.head.bias (element 1 is NaN)"),
            other => panic!("{other:?}"),
        }
    }
}
