//! Variable-length batches (PyTorch's `pack_padded_sequence`, ONNX's `sequence_lens`): the
//! plan of a padded batch whose rows end at their own lengths.
//!
//! The rows are sorted by length (longest first, ties in their original order) once on the
//! host and the batch is reordered on the device, so that at time `t` the rows still going
//! are the first `active[t]` ones: each step is dispatched over those rows only (cuDNN's packed
//! layout), in the same single submission. Rows of one length form a contiguous group: a
//! group's final states are copied out after the loop, and in the reverse direction its first
//! state (h0) is put in place before the loop, in the slot its first step reads (the states
//! are kept by time, so no later step writes there).

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::kernels::util::encode_gather_rows;

/// The plan of a padded batch with per-row lengths (see the module comment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedPlan {
    /// The lengths in the order the rows are processed (non-increasing).
    pub sorted: Vec<usize>,
    /// `order[j]`: the original row processed as row `j`; `None` when the rows are sorted
    /// already.
    pub order: Option<Vec<u32>>,
    /// Rows still going at each time step (`active[t]` = rows with length > t).
    pub active: Vec<usize>,
    /// `(length, first row, end row)` of each group of rows of one length, longest first.
    pub groups: Vec<(usize, usize, usize)>,
}

impl PackedPlan {
    /// The plan for `lengths` (one per batch row, each in `1..=seq`).
    pub fn new(lengths: &[usize], seq: usize, batch: usize) -> Result<Self> {
        if lengths.len() != batch {
            return Err(Error::Shape {
                what: "lengths (one per batch row)".into(),
                expected: vec![batch],
                got: vec![lengths.len()],
            });
        }
        if let Some((row, &len)) = lengths.iter().enumerate().find(|(_, &l)| l == 0 || l > seq) {
            return Err(Error::InvalidConfig(format!(
                "length {len} of batch row {row} is not in 1..={seq} (the sequence length)"
            )));
        }
        let mut idx: Vec<usize> = (0..batch).collect();
        idx.sort_by_key(|&r| std::cmp::Reverse(lengths[r]));
        let sorted: Vec<usize> = idx.iter().map(|&r| lengths[r]).collect();
        let order = (idx.iter().enumerate().any(|(j, &r)| j != r))
            .then(|| idx.iter().map(|&r| r as u32).collect());
        let active = (0..seq)
            .map(|t| sorted.iter().take_while(|&&l| l > t).count())
            .collect();
        let mut groups: Vec<(usize, usize, usize)> = Vec::new();
        for (j, &l) in sorted.iter().enumerate() {
            match groups.last_mut() {
                Some(g) if g.0 == l => g.2 = j + 1,
                _ => groups.push((l, j, j + 1)),
            }
        }
        Ok(PackedPlan {
            sorted,
            order,
            active,
            groups,
        })
    }

    /// The inverse of [`PackedPlan::order`]: `inverse[r]` is the processed position of
    /// original row `r`.
    fn inverse(&self) -> Option<Vec<u32>> {
        self.order.as_ref().map(|o| {
            let mut inv = vec![0u32; o.len()];
            for (j, &r) in o.iter().enumerate() {
                inv[r as usize] = j as u32;
            }
            inv
        })
    }

    /// `t` (`[outer, batch, inner]`, rows in the caller's order) with its rows in processing
    /// order; `t` itself when the rows are sorted already.
    pub fn to_sorted(&self, rec: &mut Recorder, t: &Tensor, label: &str) -> Result<Tensor> {
        match &self.order {
            Some(order) => gather(rec, t, order, label),
            None => Ok(t.clone()),
        }
    }

    /// A sequence and its two states (`h`/`c`, or their gradients) in the rows' processing
    /// order under `plan`, or as they are without one.
    pub fn sorted_triple(
        plan: Option<&PackedPlan>,
        rec: &mut Recorder,
        seq: &Tensor,
        h: Option<&Tensor>,
        c: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
        match plan {
            Some(pl) => Ok((
                pl.to_sorted(rec, seq, "rnn.seq_sorted")?,
                h.map(|t| pl.to_sorted(rec, t, "rnn.h_sorted"))
                    .transpose()?,
                c.map(|t| pl.to_sorted(rec, t, "rnn.c_sorted"))
                    .transpose()?,
            )),
            None => Ok((seq.clone(), h.cloned(), c.cloned())),
        }
    }

    /// The inverse of [`PackedPlan::to_sorted`].
    pub fn to_caller(&self, rec: &mut Recorder, t: &Tensor, label: &str) -> Result<Tensor> {
        match self.inverse() {
            Some(inv) => gather(rec, t, &inv, label),
            None => Ok(t.clone()),
        }
    }
}

/// `t` viewed as `[outer, rows, inner]` (its axis 1 is the batch) with row `j` taken from row
/// `idx[j]`.
fn gather(rec: &mut Recorder, t: &Tensor, idx: &[u32], label: &str) -> Result<Tensor> {
    let gpu: &Gpu = rec.gpu();
    let (outer, rows) = (t.shape[0], t.shape[1]);
    let inner = t.numel() / (outer * rows).max(1);
    let idx_t = gpu.tensor("rnn.row_order", &[idx.len()], bytemuck::cast_slice(idx))?;
    let out = gpu.zeros(label, &t.shape)?;
    encode_gather_rows(
        rec,
        &t.buffer,
        &out.buffer,
        &idx_t.buffer,
        (outer, rows, inner),
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::PackedPlan;

    #[test]
    fn plan_sorts_rows_and_counts_active_rows_and_groups() {
        let p = PackedPlan::new(&[2, 5, 2, 4], 5, 4).unwrap();
        assert_eq!(p.sorted, vec![5, 4, 2, 2]);
        assert_eq!(p.order, Some(vec![1, 3, 0, 2]));
        assert_eq!(p.active, vec![4, 4, 2, 2, 1]);
        assert_eq!(p.groups, vec![(5, 0, 1), (4, 1, 2), (2, 2, 4)]);
        assert_eq!(p.inverse(), Some(vec![2, 0, 3, 1]));
        let sorted = PackedPlan::new(&[3, 3, 1], 4, 3).unwrap();
        assert_eq!(sorted.order, None);
        assert_eq!(sorted.active, vec![3, 2, 2, 0]);
    }

    #[test]
    fn plan_refuses_bad_lengths() {
        assert!(PackedPlan::new(&[2, 0], 3, 2).is_err());
        assert!(PackedPlan::new(&[2, 4], 3, 2).is_err());
        assert!(PackedPlan::new(&[2], 3, 2).is_err());
    }
}
