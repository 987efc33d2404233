//! `Tensor`: an f32 storage buffer with a shape, and host transfers.

use super::context::Gpu;
use crate::error::{Error, Result};

/// A row-major f32 tensor in a GPU storage buffer.
///
/// The buffer is at least 4 bytes (wgpu rejects empty bindings), rounded up to 16 where the
/// limit allows (the vec4 kernels read whole vec4s), and may be larger than the shape when it was allocated for reuse; `numel` counts the elements the shape covers.
#[derive(Clone, Debug)]
pub struct Tensor {
    /// The storage buffer (usable as storage, copy source and copy destination).
    pub buffer: wgpu::Buffer,
    /// Row-major shape.
    pub shape: Vec<usize>,
}

impl Tensor {
    /// Number of elements the shape covers.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size in bytes of the elements the shape covers.
    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Gpu {
    /// Checks that a tensor of `numel` f32 elements fits the adapter's binding limit
    /// ([`Error::Limit`] otherwise) before anything is allocated, on the host or the device.
    pub fn check_elements(&self, label: &str, numel: usize) -> Result<()> {
        self.check_size(label, numel).map(|_| ())
    }

    fn check_size(&self, label: &str, numel: usize) -> Result<u64> {
        let bytes = (numel as u64).saturating_mul(4);
        let (limit, max) = self.binding_limit();
        if bytes > max {
            return Err(Error::Limit {
                what: label.to_string(),
                size: bytes,
                limit,
                max,
            });
        }
        // Sizes round up to 16 bytes so that every buffer can be bound as `array<vec4<f32>>`
        // (the vec4 kernels read whole vec4s), unless that would pass the limit.
        let rounded = bytes.max(4).next_multiple_of(16);
        Ok(if rounded <= max { rounded } else { bytes })
    }

    /// A buffer of at least `numel` f32s for a temporary that a recording writes in full
    /// before it reads it (the copy of Aᵀ of [`crate::kernels::matmul::encode_matmul`]): one
    /// for the `Gpu`, replaced by a larger one when a request outgrows it, so that repeated
    /// calls allocate (and zero) nothing. Sharing it is safe because the queue runs
    /// submissions in order and, inside one, every use writes it before reading it and wgpu
    /// orders the dispatches that touch it.
    pub(crate) fn scratch(&self, numel: usize) -> Result<wgpu::Buffer> {
        let size = self.check_size("scratch", numel)?;
        // A poisoned lock only means another thread panicked while holding it: the buffer
        // handle inside is still whole.
        let mut held = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_ref() {
            Some(b) if b.size() >= size => Ok(b.clone()),
            _ => {
                let b = self.zeros("scratch", &[numel])?.buffer;
                *held = Some(b.clone());
                Ok(b)
            }
        }
    }

    /// Uploads `data` as a tensor of `shape`.
    pub fn tensor(&self, label: &str, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        if numel != data.len() {
            // Element counts on both sides; the shape is named in the message.
            return Err(Error::Shape {
                what: format!("{label}: elements for shape {shape:?}"),
                expected: vec![numel],
                got: vec![data.len()],
            });
        }
        let size = self.check_size(label, numel)?;
        // create_buffer + write_buffer rather than create_buffer_init, which panics when the
        // device is lost.
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: USAGE,
            mapped_at_creation: false,
        });
        if !data.is_empty() {
            self.queue
                .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(Tensor {
            buffer,
            shape: shape.to_vec(),
        })
    }

    /// A zero-filled tensor of `shape` (wgpu zero-initialises new buffers).
    pub fn zeros(&self, label: &str, shape: &[usize]) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        let size = self.check_size(label, numel)?;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: USAGE,
            mapped_at_creation: false,
        });
        Ok(Tensor {
            buffer,
            shape: shape.to_vec(),
        })
    }

    /// Overwrites the start of `t` with `data` (queued; ordered before later submissions).
    pub fn write(&self, t: &Tensor, data: &[f32]) -> Result<()> {
        if data.len() != t.numel() {
            return Err(Error::Shape {
                what: format!("write: elements for shape {:?}", t.shape),
                expected: vec![t.numel()],
                got: vec![data.len()],
            });
        }
        if !data.is_empty() {
            self.queue
                .write_buffer(&t.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Copies the tensor back to the host (waits for all submitted work).
    pub fn read(&self, t: &Tensor) -> Result<Vec<f32>> {
        self.read_buffer(&t.buffer, 0, t.numel())
    }

    /// [`Gpu::read`] as a future, for the browser, where nothing may block: resolves when
    /// the GPU has finished the work before it and the copy is mapped.
    pub async fn read_async(&self, t: &Tensor) -> Result<Vec<f32>> {
        self.read_buffer_async(&t.buffer, 0, t.numel()).await
    }

    /// Copies `len` f32 elements starting at element `offset` of `buffer` back to the host
    /// (waits for all submitted work).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_buffer(
        &self,
        buffer: &wgpu::Buffer,
        offset: usize,
        len: usize,
    ) -> Result<Vec<f32>> {
        // Natively the future is ready once read_buffer_async has polled the device.
        pollster::block_on(self.read_buffer_async(buffer, offset, len))
    }

    /// In a browser nothing may block: use [`Gpu::read_async`].
    #[cfg(target_arch = "wasm32")]
    pub fn read_buffer(&self, _: &wgpu::Buffer, _: usize, _: usize) -> Result<Vec<f32>> {
        Err(Error::Gpu(
            "blocking readback is not available in a browser: use Gpu::read_async".into(),
        ))
    }

    /// [`Gpu::read_buffer`] as a future.
    pub async fn read_buffer_async(
        &self,
        buffer: &wgpu::Buffer,
        offset: usize,
        len: usize,
    ) -> Result<Vec<f32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let bytes = len as u64 * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("recur.readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("recur.readback"),
            });
        enc.copy_buffer_to_buffer(buffer, offset as u64 * 4, &staging, 0, bytes);
        self.submit(enc.finish());
        let data = self.map_read(&staging).await?;
        Ok(bytemuck::pod_collect_to_vec(&data))
    }

    /// Maps a MAP_READ buffer and copies its bytes out, once the work before it is done.
    pub(crate) async fn map_read(&self, staging: &wgpu::Buffer) -> Result<Vec<u8>> {
        let (send, recv) = super::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., send);
        // Natively the callback runs inside poll; in a browser the event loop runs it.
        #[cfg(not(target_arch = "wasm32"))]
        self.wait()?;
        recv.await
            .map_err(|e| Error::Gpu(format!("readback failed: {e}")))?;
        self.check()?;
        let out = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("readback failed: {e}")))?
            .to_vec();
        staging.unmap();
        Ok(out)
    }
}
