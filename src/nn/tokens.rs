//! `TokenIds`: token ids in a u32 storage buffer, checked against the vocabulary, with the
//! bucket sort that makes the embedding gradient deterministic.

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Token ids on the device: the inputs of an [`Embedding`](super::Embedding) or the targets
/// of a cross-entropy loss.
///
/// The u32 buffer holds three sections (see `shaders/embedding.wgsl`):
/// `ids[0..n]`, then `starts[0..=V]` at [`TokenIds::starts_offset`], then `rows[0..n]` at
/// [`TokenIds::rows_offset`]: the rows holding id `v` are `rows[starts[v]..starts[v+1]]` in
/// increasing order. The host builds the buckets (O(n + V)) when it uploads the ids, as
/// llm.c's `encoder_backward` does, so the gradient kernel needs no atomics.
///
/// Invariant: every id is `< vocab` (checked on upload, [`Error::TokenRange`] otherwise).
#[derive(Clone, Debug)]
pub struct TokenIds {
    /// The u32 buffer described above.
    pub buffer: wgpu::Buffer,
    /// Shape of the ids, e.g. `[T, B]` time-major; its product is [`TokenIds::len`].
    pub shape: Vec<usize>,
    vocab: usize,
}

/// The buffer contents for `ids`: ids, bucket starts, bucketed rows.
fn sections(ids: &[u32], vocab: usize) -> Result<Vec<u32>> {
    let n = ids.len();
    let mut counts = vec![0u32; vocab + 1];
    for (index, &id) in ids.iter().enumerate() {
        if id as usize >= vocab {
            return Err(Error::TokenRange { index, id, vocab });
        }
        counts[id as usize + 1] += 1;
    }
    for v in 0..vocab {
        counts[v + 1] += counts[v];
    }
    let mut out = Vec::with_capacity(2 * n + vocab + 1);
    out.extend_from_slice(ids);
    out.extend_from_slice(&counts);
    let mut rows = vec![0u32; n];
    let mut next = counts;
    for (r, &id) in ids.iter().enumerate() {
        let slot = &mut next[id as usize];
        rows[*slot as usize] = r as u32;
        *slot += 1;
    }
    out.extend_from_slice(&rows);
    Ok(out)
}

impl TokenIds {
    /// Uploads `ids` of `shape` (product = `ids.len()`), each `< vocab`.
    pub fn new(
        gpu: &Gpu,
        label: &str,
        shape: &[usize],
        ids: &[u32],
        vocab: usize,
    ) -> Result<TokenIds> {
        Self::check(label, shape, ids, vocab)?;
        let data = sections(ids, vocab)?;
        let bytes = data.len() as u64 * 4;
        if bytes > gpu.max_binding_bytes() {
            return Err(Error::Limit {
                what: label.to_string(),
                size: bytes,
                limit: "max_storage_buffer_binding_size",
                max: gpu.max_binding_bytes(),
            });
        }
        // create_buffer + write_buffer rather than create_buffer_init, which panics when the
        // device is lost.
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        gpu.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(&data));
        Ok(TokenIds {
            buffer,
            shape: shape.to_vec(),
            vocab,
        })
    }

    fn check(label: &str, shape: &[usize], ids: &[u32], vocab: usize) -> Result<()> {
        let n = crate::io::checked_numel(shape);
        if n != Some(ids.len()) || ids.is_empty() {
            return Err(Error::Shape {
                what: format!("{label} (token ids, non-empty)"),
                expected: shape.to_vec(),
                got: vec![ids.len()],
            });
        }
        if vocab == 0 || u32::try_from(vocab).is_err() || u32::try_from(ids.len()).is_err() {
            return Err(Error::InvalidConfig(format!(
                "{label}: vocabulary {vocab} and {} ids must be in 1..2^32",
                ids.len()
            )));
        }
        Ok(())
    }

    /// Replaces the ids (same count, same vocabulary) with a queued write: ordered after work
    /// already submitted and before later submissions, so the host can feed the next batch
    /// while the GPU still runs the previous step.
    pub fn write(&self, gpu: &Gpu, ids: &[u32]) -> Result<()> {
        if ids.len() != self.len() {
            return Err(Error::Shape {
                what: "token ids write".into(),
                expected: self.shape.clone(),
                got: vec![ids.len()],
            });
        }
        let data = sections(ids, self.vocab)?;
        gpu.queue
            .write_buffer(&self.buffer, 0, bytemuck::cast_slice(&data));
        Ok(())
    }

    /// Number of ids, `n`.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether there are no ids (never: [`TokenIds::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The vocabulary size the ids were checked against.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Element offset of the `V + 1` bucket starts.
    pub fn starts_offset(&self) -> usize {
        self.len()
    }

    /// Element offset of the bucketed rows.
    pub fn rows_offset(&self) -> usize {
        self.len() + self.vocab + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_list_rows_by_id_in_order() {
        let s = sections(&[2, 0, 2, 1, 0], 4).unwrap();
        assert_eq!(&s[..5], &[2, 0, 2, 1, 0]);
        assert_eq!(&s[5..10], &[0, 2, 3, 5, 5]);
        assert_eq!(&s[10..], &[1, 4, 3, 0, 2]);
    }

    #[test]
    fn out_of_range_id_is_a_typed_error() {
        assert!(matches!(
            sections(&[0, 3], 3),
            Err(Error::TokenRange {
                index: 1,
                id: 3,
                vocab: 3
            })
        ));
    }
}
