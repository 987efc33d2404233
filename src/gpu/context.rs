//! The GPU context: instance, adapter choice, device, queue, features and limits.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

use super::pipelines::PipelineCache;

/// Optional features recur uses when the adapter has them.
pub const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::TIMESTAMP_QUERY);

/// An adapter as `recur info` shows it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// wgpu's description of the adapter.
    pub info: wgpu::AdapterInfo,
    /// The features it offers.
    pub features: wgpu::Features,
    /// Its limits.
    pub limits: wgpu::Limits,
}

/// The device recur runs on, with the pipeline cache and the error sink.
///
/// Errors the device reports outside an error scope (validation, out of memory, device lost)
/// are collected by the uncaptured-error handler and turned into [`Error::Gpu`] by
/// [`Gpu::check`], which every submitting call runs after waiting.
///
/// ```
/// # fn main() -> recur::Result<()> {
/// use recur::Gpu;
/// let gpu = Gpu::new()?; // RECUR_BACKEND / RECUR_ADAPTER choose among adapters
/// println!("{} ({:?})", gpu.info().name, gpu.info().backend);
/// let t = gpu.tensor("x", &[2, 2], &[1.0, 2.0, 3.0, 4.0])?; // host -> device
/// assert_eq!(gpu.read(&t)?, [1.0, 2.0, 3.0, 4.0]); // device -> host (waits)
/// # Ok(())
/// # }
/// ```
pub struct Gpu {
    /// The wgpu instance.
    pub(crate) instance: wgpu::Instance,
    /// The chosen adapter.
    pub(crate) adapter: wgpu::Adapter,
    /// The device.
    pub(crate) device: wgpu::Device,
    /// Its queue.
    pub(crate) queue: wgpu::Queue,
    /// The adapter's description.
    pub(crate) info: wgpu::AdapterInfo,
    /// Features enabled on the device.
    pub(crate) features: wgpu::Features,
    /// Limits requested for the device.
    pub(crate) limits: wgpu::Limits,
    /// Whether kernels use their variants without workgroup memory: see
    /// [`Gpu::prefers_direct_kernels`] and [`Gpu::set_direct_kernels`].
    direct_kernels: bool,
    /// Whether the small-batch step kernels reduce with subgroup operations: see
    /// [`Gpu::uses_subgroups`].
    subgroups: bool,
    pub(crate) pipelines: PipelineCache,
    errors: Arc<Mutex<Vec<String>>>,
    submissions: std::sync::atomic::AtomicU64,
    /// Bumped by every library write of parameters (optimizer steps, checkpoint loads): see
    /// [`Gpu::param_writes`].
    param_writes: std::sync::atomic::AtomicU64,
    /// The buffer [`Gpu::scratch`] hands out.
    pub(crate) scratch: Mutex<Option<wgpu::Buffer>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish()
    }
}

/// Backends selected by `RECUR_BACKEND` (all when unset).
pub fn backends_from_env() -> Result<wgpu::Backends> {
    match std::env::var("RECUR_BACKEND") {
        Err(_) => Ok(wgpu::Backends::all()),
        Ok(v) => match v.to_ascii_lowercase().as_str() {
            "" | "all" => Ok(wgpu::Backends::all()),
            "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
            "metal" | "mtl" => Ok(wgpu::Backends::METAL),
            "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
            "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
            "webgpu" | "browser" => Ok(wgpu::Backends::BROWSER_WEBGPU),
            _ => Err(Error::BadEnv {
                var: "RECUR_BACKEND",
                value: v,
                expected: "one of vulkan, metal, dx12, gl, webgpu",
            }),
        },
    }
}

fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Preference order: discrete, integrated, virtual, CPU (software), other.
#[cfg(not(target_arch = "wasm32"))]
fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// All adapters wgpu sees on the backends `RECUR_BACKEND` allows, in recur's preference
/// order (the first one that matches `RECUR_ADAPTER` is the one [`Gpu::new`] picks).
#[cfg(not(target_arch = "wasm32"))]
pub fn list_adapters() -> Result<Vec<AdapterSummary>> {
    let instance = new_instance(backends_from_env()?);
    Ok(sorted_adapters(&instance)
        .into_iter()
        .map(|a| AdapterSummary {
            info: a.get_info(),
            features: a.features(),
            limits: a.limits(),
        })
        .collect())
}

#[cfg(not(target_arch = "wasm32"))]
fn sorted_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    // Stable: among equal types, wgpu's order (which lists Vulkan before GL) is kept.
    adapters.sort_by_key(|a| type_rank(a.get_info().device_type));
    adapters
}

/// The instance and the adapter recur runs on.
#[cfg(not(target_arch = "wasm32"))]
async fn pick_adapter() -> Result<(wgpu::Instance, wgpu::Adapter)> {
    let backends = backends_from_env()?;
    let filter = std::env::var("RECUR_ADAPTER")
        .ok()
        .filter(|s| !s.is_empty());
    let instance = new_instance(backends);
    let adapter = sorted_adapters(&instance)
        .into_iter()
        .find(|a| adapter_matches(&a.get_info(), filter.as_deref()))
        .ok_or_else(|| {
            let mut detail = String::new();
            if let Ok(b) = std::env::var("RECUR_BACKEND") {
                detail += &format!(" for RECUR_BACKEND={b}");
            }
            if let Some(f) = &filter {
                detail += &format!(" matching RECUR_ADAPTER={f}");
            }
            Error::NoAdapter { detail }
        })?;
    Ok((instance, adapter))
}

/// In a browser there is one adapter to ask for (WebGPU cannot enumerate).
#[cfg(target_arch = "wasm32")]
async fn pick_adapter() -> Result<(wgpu::Instance, wgpu::Adapter)> {
    let instance = new_instance(wgpu::Backends::BROWSER_WEBGPU);
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::NoAdapter {
            detail: format!(" (WebGPU: {e})"),
        })?;
    Ok((instance, adapter))
}

/// Whether `info` matches the `RECUR_ADAPTER` filter (a case-insensitive part of the name).
pub fn adapter_matches(info: &wgpu::AdapterInfo, filter: Option<&str>) -> bool {
    match filter {
        None => true,
        Some(f) => info.name.to_lowercase().contains(&f.to_lowercase()),
    }
}

impl Gpu {
    /// Picks an adapter (high performance first; `RECUR_BACKEND` and `RECUR_ADAPTER` choose)
    /// and opens a device with the optional features it has and the limits recur needs.
    /// Blocks; in a browser use [`Gpu::new_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Gpu> {
        pollster::block_on(Self::new_async())
    }

    /// [`Gpu::new`] as a future: the form a browser (WebGPU) needs.
    pub async fn new_async() -> Result<Gpu> {
        let (instance, adapter) = pick_adapter().await?;
        Self::from_adapter_async(instance, adapter).await
    }

    /// Opens a device on a given adapter (blocks; see [`Gpu::from_adapter_async`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_adapter(instance: wgpu::Instance, adapter: wgpu::Adapter) -> Result<Gpu> {
        pollster::block_on(Self::from_adapter_async(instance, adapter))
    }

    /// Opens a device on a given adapter.
    pub async fn from_adapter_async(
        instance: wgpu::Instance,
        adapter: wgpu::Adapter,
    ) -> Result<Gpu> {
        let info = adapter.get_info();
        let features = adapter.features() & OPTIONAL_FEATURES;
        let limits = required_limits(&adapter.limits());
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("recur"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice(e.to_string()))?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut v) = lost.lock() {
                v.push(format!("device lost ({reason:?}): {msg}"));
            }
        });
        Ok(Gpu {
            instance,
            adapter,
            device,
            queue,
            info: info.clone(),
            features,
            limits,
            // The browser's WGSL needs `enable subgroups;`, which naga (native) refuses: the
            // subgroup builds are native only.
            subgroups: features.contains(wgpu::Features::SUBGROUP) && !cfg!(target_arch = "wasm32"),
            direct_kernels: match std::env::var("RECUR_KERNELS").as_deref() {
                Ok("tiled") => false,
                Ok("direct") => true,
                Err(_) | Ok("") => info.device_type == wgpu::DeviceType::Cpu,
                Ok(other) => {
                    return Err(Error::BadEnv {
                        var: "RECUR_KERNELS",
                        value: other.to_string(),
                        expected: "tiled or direct",
                    })
                }
            },
            pipelines: PipelineCache::default(),
            errors,
            submissions: Default::default(),
            param_writes: Default::default(),
            scratch: Mutex::default(),
        })
    }

    /// Submits one command buffer (every recur submission goes through here, so
    /// [`Gpu::submissions`] counts them).
    pub fn submit(&self, cmd: wgpu::CommandBuffer) -> wgpu::SubmissionIndex {
        self.submissions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.queue.submit([cmd])
    }

    /// Queue submissions made through recur on this device so far (readbacks included).
    pub fn submissions(&self) -> u64 {
        self.submissions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many times the library recorded, submitted or made a write of parameters on this
    /// device (an optimizer step over any groups counts when recorded and again when
    /// submitted; a checkpoint load once). Derived copies of parameters, such as the f16 copy
    /// of [`crate::WeightStorage::F16`], are re-made when it moves.
    pub fn param_writes(&self) -> u64 {
        self.param_writes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Counts a write of parameters (see [`Gpu::param_writes`]).
    pub(crate) fn note_param_write(&self) {
        self.param_writes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Returns the first error the device reported since the last check, if any.
    pub fn check(&self) -> Result<()> {
        let mut v = self
            .errors
            .lock()
            .map_err(|_| Error::Internal("error sink poisoned".into()))?;
        if v.is_empty() {
            Ok(())
        } else {
            let first = v.remove(0);
            v.clear();
            Err(Error::Gpu(first))
        }
    }

    /// Blocks until all submitted work is done, then reports device errors.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        self.check()
    }

    /// Blocks until submission `index` (from `Queue::submit`) has finished (in a browser,
    /// where nothing may block, the poll returns at once: await the work instead).
    pub fn wait_for_submission(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map(|_| ())
            .map_err(|e| Error::Gpu(e.to_string()))
    }

    /// Whether kernels use their variants without workgroup memory. On CPU adapters
    /// (lavapipe, WARP, SwiftShader) workgroup memory is ordinary cached memory and barriers
    /// are expensive, so tiling through it only costs; the default is true there and false on
    /// GPUs, and `RECUR_KERNELS=tiled|direct` overrides it. Results agree either way (tests
    /// run both).
    pub fn prefers_direct_kernels(&self) -> bool {
        self.direct_kernels
    }

    /// Chooses the kernel family: `true` for the variants without workgroup memory (CPU
    /// adapters), `false` for the tiled ones (GPUs). Recordings made after the call use it.
    pub fn set_direct_kernels(&mut self, direct: bool) {
        self.direct_kernels = direct;
    }

    /// Whether kernels use subgroup operations where they have a build for them: the
    /// small-batch step kernels (GPU family, B ≤ 4) add their partial sums with them
    /// (`shaders/sb_partials_subgroup.wgsl`) rather than through workgroup memory alone, and
    /// CPU adapters share loads with them ([`Gpu::shares_subgroup_loads`]). By default where
    /// the device has `Features::SUBGROUP` (not on wasm32); never with f16 weights (no such
    /// build).
    pub fn uses_subgroups(&self) -> bool {
        self.subgroups
    }

    /// Whether the CPU-adapter kernels share their loads across a subgroup
    /// (`shaders/matmul_subgroup.wgsl`): on an adapter that prefers the direct kernels, with
    /// [`Gpu::uses_subgroups`] on, whose subgroups are exactly 8 lanes (lavapipe's SIMD rows;
    /// those kernels take a subgroup to be one 8-wide row of their workgroup).
    /// [`Gpu::set_subgroups`]`(false)` turns it off with the rest.
    pub fn shares_subgroup_loads(&self) -> bool {
        self.direct_kernels
            && self.subgroups
            && self.info.subgroup_min_size == 8
            && self.info.subgroup_max_size == 8
    }

    /// Turns the subgroup reduction of [`Gpu::uses_subgroups`] off, or back on where the
    /// device has `Features::SUBGROUP` (elsewhere it stays off). Recordings made after the
    /// call use it.
    pub fn set_subgroups(&mut self, on: bool) {
        self.subgroups =
            on && self.features.contains(wgpu::Features::SUBGROUP) && !cfg!(target_arch = "wasm32");
    }

    /// Live buffers and the bytes they hold on the device, from wgpu's internal counters
    /// (zeros where the backend does not count, as in a browser). A soak run watches these
    /// stay flat.
    pub fn memory(&self) -> (u64, u64) {
        let c = self.device.get_internal_counters();
        (
            c.hal.buffers.read().max(0) as u64,
            c.hal.buffer_memory.read().max(0) as u64,
        )
    }

    /// The wgpu instance.
    pub fn instance(&self) -> &wgpu::Instance {
        &self.instance
    }

    /// The chosen adapter.
    pub fn adapter(&self) -> &wgpu::Adapter {
        &self.adapter
    }

    /// The device, for work of your own beside recur's (buffers, pipelines).
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The device's queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter's description (name, backend, device type, driver).
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The optional features enabled on the device (of SHADER_F16, SUBGROUP,
    /// TIMESTAMP_QUERY, those the adapter has).
    pub fn features(&self) -> wgpu::Features {
        self.features
    }

    /// The limits requested for the device.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Whether shaders may use `pack2x16float` / `unpack2x16float` (wgpu's
    /// `DownlevelFlags::SHADER_F16_IN_F32`: Vulkan, Metal, DX12, GL 4.4+ and WebGPU; not Mesa's
    /// Vulkan without `SHADER_F16`, nor GL ES): what [`crate::WeightStorage::F16`] needs.
    pub fn has_f16_in_f32(&self) -> bool {
        self.adapter
            .get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::SHADER_F16_IN_F32)
    }

    /// Whether the device has timestamp queries.
    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Largest storage buffer binding, in bytes: no tensor may be larger.
    pub fn max_binding_bytes(&self) -> u64 {
        binding_limit(&self.limits).1
    }

    /// The limit that caps a tensor's size, by name, and its value in bytes: the smaller of
    /// `max_storage_buffer_binding_size` and `max_buffer_size`.
    pub fn binding_limit(&self) -> (&'static str, u64) {
        binding_limit(&self.limits)
    }
}

/// See [`Gpu::binding_limit`].
fn binding_limit(limits: &wgpu::Limits) -> (&'static str, u64) {
    let binding = limits.max_storage_buffer_binding_size;
    if limits.max_buffer_size < binding {
        ("max_buffer_size", limits.max_buffer_size)
    } else {
        ("max_storage_buffer_binding_size", binding)
    }
}

/// WebGPU's defaults, raised to what the adapter offers where bigger is better for recur:
/// buffer and binding sizes (sequence activations), storage buffers per stage (fused step
/// kernels bind up to 7), workgroup memory.
pub fn required_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    let base = wgpu::Limits::default().or_worse_values_from(adapter);
    wgpu::Limits {
        max_buffer_size: adapter.max_buffer_size,
        max_storage_buffer_binding_size: adapter.max_storage_buffer_binding_size,
        max_storage_buffers_per_shader_stage: adapter.max_storage_buffers_per_shader_stage,
        max_compute_workgroup_storage_size: adapter.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: adapter.max_compute_invocations_per_workgroup,
        max_compute_workgroup_size_x: adapter.max_compute_workgroup_size_x,
        max_compute_workgroup_size_y: adapter.max_compute_workgroup_size_y,
        max_compute_workgroups_per_dimension: adapter.max_compute_workgroups_per_dimension,
        ..base
    }
}

#[cfg(test)]
mod tests {
    use super::binding_limit;

    #[test]
    fn binding_limit_names_the_smaller_of_the_two_limits() {
        let mut l = wgpu::Limits {
            max_storage_buffer_binding_size: 1 << 30,
            max_buffer_size: 1 << 28,
            ..Default::default()
        };
        assert_eq!(binding_limit(&l), ("max_buffer_size", 1 << 28));
        l.max_buffer_size = 1 << 31;
        assert_eq!(
            binding_limit(&l),
            ("max_storage_buffer_binding_size", 1 << 30)
        );
    }
}
