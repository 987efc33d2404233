//! Host tensors to and from the device, shapes kept: [`Gpu::upload`] makes a device
//! [`Tensor`] of a [`HostTensor`]'s shape, [`Gpu::download`] reads one back with its shape,
//! [`Gpu::read_into`] and [`Gpu::write_from`] reuse buffers of the same shape. Labels (shown
//! in wgpu validation errors) are optional: `upload` names the buffer `host`, and
//! [`Gpu::upload_labeled`] takes one.
//!
//! ```
//! # fn main() -> recur::Result<()> {
//! use recur::{Gpu, HostTensor};
//! let gpu = Gpu::new()?;
//! let x = HostTensor::new(vec![2, 3], vec![1., 2., 3., 4., 5., 6.])?;
//! let t = gpu.upload(&x)?; // a (2, 3) device tensor
//! assert_eq!(gpu.download(&t)?, x); // shape and values
//! let mut back = HostTensor::zeros(vec![2, 3])?;
//! gpu.read_into(&t, &mut back)?; // into a buffer of the same shape
//! let wrong = HostTensor::zeros(vec![3, 2])?;
//! let err = gpu.write_from(&t, &wrong).unwrap_err().to_string();
//! assert!(err.contains("expected [2, 3], got [3, 2]"), "{err}");
//! # Ok(())
//! # }
//! ```

use super::HostTensor;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};

fn same_shape(what: &str, device: &Tensor, host: &HostTensor) -> Result<()> {
    host.check(what)?;
    if device.shape != host.shape {
        return Err(Error::Shape {
            what: what.to_string(),
            expected: device.shape.clone(),
            got: host.shape.clone(),
        });
    }
    Ok(())
}

impl Gpu {
    /// Uploads `t` as a device tensor of its shape (labelled `host`).
    pub fn upload(&self, t: &HostTensor) -> Result<Tensor> {
        self.upload_labeled("host", t)
    }

    /// Uploads `t` as a device tensor of its shape, labelled `label` in GPU errors.
    pub fn upload_labeled(&self, label: &str, t: &HostTensor) -> Result<Tensor> {
        t.check(label)?;
        self.tensor(label, &t.shape, &t.data)
    }

    /// Reads `t` back with its shape (waits for the work submitted before).
    pub fn download(&self, t: &Tensor) -> Result<HostTensor> {
        HostTensor::new(t.shape.clone(), self.read(t)?)
    }

    /// Reads `t` into `out`, which must have `t`'s shape ([`Error::Shape`] naming both
    /// shapes otherwise); waits for the work submitted before.
    pub fn read_into(&self, t: &Tensor, out: &mut HostTensor) -> Result<()> {
        same_shape("read_into: the host tensor", t, out)?;
        let data = self.read(t)?;
        out.data.copy_from_slice(&data);
        Ok(())
    }

    /// Overwrites device tensor `t` with `host`, which must have `t`'s shape (queued, ordered
    /// before later submissions).
    pub fn write_from(&self, t: &Tensor, host: &HostTensor) -> Result<()> {
        same_shape("write_from: the host tensor", t, host)?;
        self.write(t, &host.data)
    }
}
