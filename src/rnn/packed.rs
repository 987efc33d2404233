//! The f16 copy of the parameters that inference with [`WeightStorage::F16`] reads, kept in
//! the [`Rnn`] between recordings and re-made only when the parameters may have changed.
//!
//! The copy is keyed on what can change them: the parameter buffer itself (a new tensor
//! assigned to [`Rnn::params`]), the stack's own generation ([`Rnn::params_changed`], for
//! writes the library cannot see) and the device's count of library parameter writes
//! ([`Gpu::param_writes`]: optimizer steps, counted when recorded and again when submitted,
//! so that a copy recorded in between but submitted first, made from the old values, is not
//! kept; checkpoint loads). A copy is read only once the
//! recording that packed it was submitted, or by that same recording (after the pack, in
//! queue order); a recording dropped unsubmitted leaves a copy that is never read, and the
//! next recording packs again.
//!
//! [`WeightStorage::F16`]: super::WeightStorage::F16
//! [`Gpu::param_writes`]: crate::Gpu::param_writes

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Rnn;
use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::kernels::pack::encode_pack_f16;

/// What the packed copy was made from.
#[derive(Debug, PartialEq, Eq)]
struct Key {
    params: wgpu::Buffer,
    generation: u64,
    device_writes: u64,
}

#[derive(Debug)]
struct Packed {
    key: Key,
    tensor: Tensor,
    /// Set when the recording holding the pack is submitted.
    submitted: Arc<AtomicBool>,
}

/// The cached f16 copy of an [`Rnn`]'s parameters, and the generation that keys it.
#[derive(Debug, Default)]
pub(super) struct F16Params {
    generation: AtomicU64,
    packs: AtomicU64,
    slot: Mutex<Option<Packed>>,
}

impl Rnn {
    /// Tells the stack that its parameters were written where the library cannot see it:
    /// [`crate::Gpu::write`] or a user's own kernel or copy into [`Rnn::params`]. The next
    /// inference with [`super::WeightStorage::F16`] then re-makes its f16 copy (without this
    /// call it would read the copy made from the old values). The library's own writes
    /// (optimizer steps, checkpoint loads, a new tensor assigned to `params`) need no call.
    pub fn params_changed(&self) {
        self.f16.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// How many times the f16 copy of the parameters has been packed (recorded) so far: a
    /// diagnostic, to check that repeated recordings with unchanged parameters pack once.
    pub fn f16_pack_count(&self) -> u64 {
        self.f16.packs.load(Ordering::Acquire)
    }

    /// The f16 copy of the parameters for a recording into `rec`: the cached one when it is
    /// current and reaches the queue before this recording's reads, else a new one packed
    /// into `rec` (before everything recorded after this call).
    pub(super) fn f16_params(&self, rec: &mut Recorder) -> Result<Tensor> {
        let gpu = rec.gpu();
        let key = Key {
            params: self.params.buffer.clone(),
            generation: self.f16.generation.load(Ordering::Acquire),
            device_writes: gpu.param_writes(),
        };
        let mut slot = self
            .f16
            .slot
            .lock()
            .map_err(|_| Error::Internal("f16 parameter cache poisoned".into()))?;
        if let Some(p) = slot.as_ref() {
            if p.key == key
                && (p.submitted.load(Ordering::Acquire) || rec.sets_on_submit(&p.submitted))
            {
                return Ok(p.tensor.clone());
            }
        }
        // A new buffer: an unsubmitted recording may still hold the old one for its reads.
        let words = self.layout.total.div_ceil(2);
        let tensor = gpu.zeros("rnn.params_f16", &[words])?;
        rec.phase("weights");
        encode_pack_f16(rec, &self.params.buffer, &tensor.buffer, words)?;
        let submitted = Arc::new(AtomicBool::new(false));
        rec.on_submit(submitted.clone());
        self.f16.packs.fetch_add(1, Ordering::AcqRel);
        *slot = Some(Packed {
            key,
            tensor: tensor.clone(),
            submitted,
        });
        Ok(tensor)
    }
}
