//! `Embedding`: token ids to vectors (torch's `nn.Embedding`), with its gradient.

use super::{init, Module, NamedSlice, ParamGroup, TokenIds};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Recorder, Tensor};
use crate::kernels::embedding::{encode_backward, encode_forward};
use crate::rng::Rng;

/// A `[num_embeddings, dim]` lookup table in one flat buffer (state_dict name `weight`).
#[derive(Debug)]
pub struct Embedding {
    /// Vocabulary size V.
    pub num_embeddings: usize,
    /// Vector width D.
    pub dim: usize,
    /// The table, `[V, D]` row-major.
    pub params: Tensor,
    /// Its gradient, same layout.
    pub grads: Tensor,
}

impl Embedding {
    /// Uploads a table of `num_embeddings * dim` values.
    pub fn new(gpu: &Gpu, num_embeddings: usize, dim: usize, weight: &[f32]) -> Result<Self> {
        if num_embeddings == 0 || dim == 0 {
            return Err(Error::InvalidConfig(format!(
                "embedding needs a positive size, got {num_embeddings} x {dim}"
            )));
        }
        let shape = [num_embeddings, dim];
        let params = gpu.tensor("embedding.params", &shape, weight)?;
        let grads = gpu.zeros("embedding.grads", &shape)?;
        Ok(Embedding {
            num_embeddings,
            dim,
            params,
            grads,
        })
    }

    /// A table of `N(0, 1)` values drawn from `rng` (torch's default).
    pub fn init(gpu: &Gpu, num_embeddings: usize, dim: usize, rng: &mut Rng) -> Result<Self> {
        gpu.check_elements("embedding", num_embeddings.saturating_mul(dim))?;
        let w = init::embedding_weight(num_embeddings, dim, rng);
        Self::new(gpu, num_embeddings, dim, &w)
    }

    fn check_ids(&self, ids: &TokenIds) -> Result<()> {
        if ids.vocab() > self.num_embeddings {
            return Err(Error::InvalidConfig(format!(
                "token ids checked against a vocabulary of {}, the embedding has {} rows",
                ids.vocab(),
                self.num_embeddings
            )));
        }
        Ok(())
    }

    /// Records `out[.., :] = weight[ids[..], :]`: a new tensor of shape `ids.shape + [D]`.
    pub fn record_forward(&self, rec: &mut Recorder, ids: &TokenIds) -> Result<Tensor> {
        self.check_ids(ids)?;
        let mut shape = ids.shape.clone();
        shape.push(self.dim);
        let out = rec.gpu().zeros("embedding.out", &shape)?;
        encode_forward(
            rec,
            &self.params.buffer,
            &ids.buffer,
            ids.len(),
            self.num_embeddings,
            self.dim,
            &out.buffer,
        )?;
        Ok(out)
    }

    /// Records the gradient of the table for output gradient `dy` (`ids.len() * D`
    /// elements): added to [`Embedding::grads`] with `accumulate`, else overwriting it.
    pub fn record_backward(
        &self,
        rec: &mut Recorder,
        ids: &TokenIds,
        dy: &Tensor,
        accumulate: bool,
    ) -> Result<()> {
        self.check_ids(ids)?;
        if dy.numel() != ids.len() * self.dim {
            let mut expected = ids.shape.clone();
            expected.push(self.dim);
            return Err(Error::Shape {
                what: "embedding output gradient".into(),
                expected,
                got: dy.shape.clone(),
            });
        }
        // The buckets cover the ids' vocabulary (<= V rows): any rows past it receive no
        // gradient, so they are zeroed here unless accumulating.
        let v = ids.vocab();
        if !accumulate && v < self.num_embeddings {
            rec.clear(
                &self.grads.buffer,
                v * self.dim,
                (self.num_embeddings - v) * self.dim,
            );
        }
        encode_backward(
            rec,
            &ids.buffer,
            ids.starts_offset(),
            ids.rows_offset(),
            v,
            self.dim,
            &dy.buffer,
            &self.grads.buffer,
            accumulate,
        )
    }
}

impl Module for Embedding {
    fn group(&self) -> ParamGroup<'_> {
        ParamGroup {
            params: &self.params,
            grads: &self.grads,
        }
    }

    fn slices(&self) -> Vec<NamedSlice> {
        vec![NamedSlice {
            name: "weight".into(),
            shape: vec![self.num_embeddings, self.dim],
            offset: 0,
        }]
    }
}
