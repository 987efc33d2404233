//! Reading and writing tensors on the host: safetensors (in PyTorch state_dict names) and
//! NumPy `.npy` files.
//!
//! Everything read from a file is checked: a missing file is [`Error::Io`], a corrupt or
//! truncated one is [`Error::Format`], an unsupported element type is [`Error::Dtype`]. Nothing
//! here panics on file contents. Writers are atomic: the bytes go to a temporary file in the
//! same directory, which is flushed to disk and then renamed over the target, so a reader sees
//! either the old file or the complete new one.

pub mod npy;
pub mod safetensors;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

pub use self::npy::{read_f32, read_f32_bytes, to_npy_bytes, write_f32};
pub use self::safetensors::{load, load_bytes, save, to_safetensors_bytes};

/// A dense, row-major (C order) `f32` tensor in host memory.
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

    /// [`Error::Shape`] naming `what` unless `data.len()` is the product of `shape`.
    pub(crate) fn check(&self, what: &str) -> Result<()> {
        match checked_numel(&self.shape) {
            Some(n) if n == self.data.len() => Ok(()),
            _ => Err(Error::Shape {
                what: format!("{what} (data holds {} elements)", self.data.len()),
                expected: self.shape.clone(),
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

/// Reads a whole file, [`Error::Io`] if it cannot be read.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| io_err(path, e))
}

/// Writes `bytes` to `path` atomically: into a fresh temporary file in the same directory,
/// synced to disk, then renamed over `path`. On any error the temporary file is removed and
/// whatever was at `path` is left as it was.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let file_name = path.file_name().ok_or_else(|| {
        io_err(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };

    // Find a free temporary name; `create_new` never clobbers another writer's file.
    let mut attempt = 0;
    let (tmp, file) = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = std::ffi::OsString::from(".");
        name.push(file_name);
        name.push(format!(".{}.{n}.tmp", std::process::id()));
        let tmp = dir.join(name);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(io_err(path, e)),
        }
    };

    if let Err(e) = fill_and_rename(file, &tmp, path, bytes) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    // Make the rename itself durable (best effort; not possible on every platform).
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The fallible middle of [`write_atomic`]: fill `file` (at `tmp`), sync it, rename it to `path`.
fn fill_and_rename(
    mut file: fs::File,
    tmp: &Path,
    path: &Path,
    bytes: &[u8],
) -> std::io::Result<()> {
    // Keep the permissions of the file being replaced, if any (best effort).
    if let Ok(meta) = fs::metadata(path) {
        if meta.is_file() {
            let _ = file.set_permissions(meta.permissions());
        }
    }
    file.write_all(bytes)?;
    file.flush()?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
