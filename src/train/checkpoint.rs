//! Checkpoints: tensors and string metadata in one safetensors file, with a checksum.
//!
//! A training checkpoint ([`crate::train::Trainer::checkpoint`]) holds
//!
//! | tensor | what |
//! |---|---|
//! | `model.<layer>.<name>` | every parameter in PyTorch state_dict names (`model.rnn.weight_ih_l0`, `model.head.bias`, `model.embedding.weight`) |
//! | `optim.<layer>.<state>` | optimizer state over the layer's flat buffer: `momentum_buffer`, or `exp_avg` and `exp_avg_sq` |
//! | `tbptt.<slot>.h`, `tbptt.<slot>.c` | the states carried into the next window |
//!
//! and metadata `format`, `step` (optimizer steps taken), `model` and `train` (the configs as
//! JSON), `checksum`.
//!
//! Writing is atomic ([`crate::io`]: temporary file, sync, rename), and the bytes are parsed
//! and checked before the rename, so a failed or interrupted save never replaces the last
//! good file. Reading checks the safetensors structure ([`Error::Format`] for a truncated or
//! corrupt file) and the checksum, a 64-bit FNV-1a over every name, shape, value and metadata
//! entry, so that flipped bytes inside the data are caught too.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::{self, HostTensor};

/// Value of the `format` metadata key.
pub const FORMAT: &str = "recur.checkpoint.1";
/// Metadata key of the format.
pub const FORMAT_KEY: &str = "format";
/// Metadata key of the checksum.
pub const CHECKSUM_KEY: &str = "checksum";
/// Metadata key of the optimizer step count.
pub const STEP_KEY: &str = "step";

/// Tensors and metadata of a checkpoint, in host memory ([`crate::train::Trainer`] makes and
/// restores them).
///
/// ```
/// # fn main() -> recur::Result<()> {
/// use recur::{train::Checkpoint, HostTensor};
/// let mut c = Checkpoint::default();
/// c.tensors.insert("model.head.bias".into(), HostTensor::new(vec![2], vec![0.5, -0.5])?);
/// c.metadata.insert("step".into(), "3".into());
/// let path = std::env::temp_dir().join(format!("recur-doc-ck-{}.safetensors", std::process::id()));
/// c.save(&path)?; // atomic, with a checksum
/// let back = Checkpoint::load(&path)?; // refuses a corrupt or truncated file
/// assert_eq!((back.step()?, back.tensors), (3, c.tensors));
/// # std::fs::remove_file(&path).ok();
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Tensors by name.
    pub tensors: BTreeMap<String, HostTensor>,
    /// String metadata (the format and checksum keys are managed by save and load).
    pub metadata: BTreeMap<String, String>,
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl Checkpoint {
    /// The checksum of the tensors and of the metadata other than the checksum itself.
    pub fn checksum(&self) -> String {
        let mut h = Fnv::new();
        for (name, t) in &self.tensors {
            h.bytes(name.as_bytes());
            h.bytes(&[0]);
            h.bytes(&(t.shape.len() as u64).to_le_bytes());
            for d in &t.shape {
                h.bytes(&(*d as u64).to_le_bytes());
            }
            for x in &t.data {
                h.bytes(&x.to_le_bytes());
            }
        }
        for (k, v) in &self.metadata {
            if k != CHECKSUM_KEY {
                h.bytes(k.as_bytes());
                h.bytes(&[0]);
                h.bytes(v.as_bytes());
                h.bytes(&[0]);
            }
        }
        format!("{:016x}", h.0)
    }

    /// The step count in the metadata.
    pub fn step(&self) -> Result<u64> {
        self.metadata
            .get(STEP_KEY)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Checkpoint {
                path: crate::error::UNKNOWN_CHECKPOINT.into(),
                reason: format!("metadata {STEP_KEY:?} is missing or not a count"),
            })
    }

    /// The tensor called `name`, or [`Error::MissingTensor`].
    pub fn tensor(&self, name: &str) -> Result<&HostTensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::MissingTensor(name.to_string()))
    }

    /// [`Error::NonFinite`] naming the first tensor holding a NaN or infinite value: such a
    /// checkpoint is never written, and refused on load.
    pub fn check_finite(&self) -> Result<()> {
        for (name, t) in &self.tensors {
            io::check_finite(&format!("checkpoint tensor {name:?}"), &t.data)?;
        }
        Ok(())
    }

    /// The file's bytes: safetensors with the format and checksum keys set (the same
    /// checkpoint always gives the same bytes). [`Error::NonFinite`] if a tensor holds a NaN
    /// or infinite value.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.check_finite()?;
        let mut c = self.clone();
        c.metadata.insert(FORMAT_KEY.into(), FORMAT.into());
        let sum = c.checksum();
        c.metadata.insert(CHECKSUM_KEY.into(), sum);
        let tensors: Vec<(String, HostTensor)> = c.tensors.into_iter().collect();
        io::to_safetensors_bytes(&tensors, &c.metadata)
    }

    /// Parses and checks a checkpoint's bytes; `path` names them in errors. A NaN or infinite
    /// value in any tensor is [`Error::NonFinite`], even under a valid checksum.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Self> {
        let (tensors, metadata) = io::load_bytes(bytes).map_err(|e| match e {
            Error::Format { reason, .. } => Error::Format {
                path: path.to_string(),
                reason,
            },
            other => other,
        })?;
        let c = Checkpoint { tensors, metadata };
        let corrupt = |reason: String| Error::Format {
            path: path.to_string(),
            reason,
        };
        match c.metadata.get(FORMAT_KEY) {
            Some(f) if f == FORMAT => {}
            other => {
                return Err(corrupt(format!(
                    "not a recur checkpoint (format {other:?}, expected {FORMAT:?})"
                )))
            }
        }
        let want = c
            .metadata
            .get(CHECKSUM_KEY)
            .ok_or_else(|| corrupt("checkpoint has no checksum".into()))?;
        let got = c.checksum();
        if *want != got {
            return Err(corrupt(format!(
                "checksum mismatch (stored {want}, computed {got}): the file is corrupt"
            )));
        }
        c.check_finite().map_err(|e| match e {
            Error::NonFinite(what) => Error::NonFinite(format!("{what} in {path}")),
            other => other,
        })?;
        Ok(c)
    }

    /// [`Checkpoint::to_bytes`], parsed back and checked as [`Checkpoint::load`] would
    /// before anything is written; `path` names them in errors.
    pub fn to_checked_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let bytes = self.to_bytes()?;
        Self::from_bytes(&bytes, path)?;
        Ok(bytes)
    }

    /// Writes the checkpoint to `path` atomically; the bytes are verified before the rename,
    /// so on any error whatever was at `path` is left as it was.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_checked_bytes(&path.display().to_string())?;
        io::write_atomic(path, &bytes)
    }

    /// Reads and checks a checkpoint: [`Error::Io`] if unreadable, [`Error::Format`] if
    /// truncated, corrupt or not a checkpoint.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = io::read_file(path)?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let mut c = Checkpoint::default();
        c.tensors.insert(
            "a".into(),
            HostTensor::new(vec![2], vec![1.0, 2.0]).unwrap(),
        );
        c.metadata.insert(STEP_KEY.into(), "7".into());
        c
    }

    #[test]
    fn round_trip_and_corruption() {
        let c = sample();
        let bytes = c.to_bytes().unwrap();
        let back = Checkpoint::from_bytes(&bytes, "x").unwrap();
        assert_eq!(back.tensors, c.tensors);
        assert_eq!(back.step().unwrap(), 7);
        // A flipped bit in the last value: still valid safetensors, caught by the checksum.
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert!(matches!(
            Checkpoint::from_bytes(&bad, "x"),
            Err(Error::Format { .. })
        ));
        assert!(matches!(
            Checkpoint::from_bytes(&bytes[..bytes.len() - 3], "x"),
            Err(Error::Format { .. })
        ));
    }

    #[test]
    fn non_finite_checkpoints_are_neither_written_nor_loaded() {
        let mut c = sample();
        c.tensors.insert(
            "model.w".into(),
            HostTensor::new(vec![3], vec![0.5, f32::NAN, 1.0]).unwrap(),
        );
        assert!(matches!(c.to_bytes(), Err(Error::NonFinite(m)) if m.contains("model.w")));
        let dir = std::env::temp_dir().join(format!("recur-ckpt-nan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.safetensors");
        sample().save(&p).unwrap();
        let good = std::fs::read(&p).unwrap();
        assert!(c.save(&p).is_err());
        assert_eq!(
            std::fs::read(&p).unwrap(),
            good,
            "the good file was replaced"
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
        // A file that carries a NaN under a correct checksum (made by another writer).
        c.metadata.insert(FORMAT_KEY.into(), FORMAT.into());
        let mut meta = c.metadata.clone();
        meta.insert(CHECKSUM_KEY.into(), c.checksum());
        let tensors: Vec<(String, HostTensor)> = c.tensors.clone().into_iter().collect();
        let bytes = io::to_safetensors_bytes(&tensors, &meta).unwrap();
        match Checkpoint::from_bytes(&bytes, "x.safetensors") {
            Err(Error::NonFinite(m)) => {
                assert!(m.contains("model.w") && m.contains("x.safetensors"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_same_checkpoint_gives_the_same_bytes() {
        let mut c = sample();
        for k in ["zeta", "alpha", "model", "train", "lm.vocab", "lm.text"] {
            c.metadata.insert(k.into(), format!("{{\"{k}\": 1}}"));
        }
        let first = c.to_bytes().unwrap();
        for _ in 0..8 {
            assert_eq!(c.clone().to_bytes().unwrap(), first);
        }
    }
}
