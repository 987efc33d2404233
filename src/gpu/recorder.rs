//! `Recorder`: collects dispatches, copies and clears, then records them into one command
//! encoder and submits them as ONE queue submission.
//!
//! Every kernel's binding `base` is a uniform buffer bound with a dynamic offset into one
//! arena of parameter structs, so a whole sequence (thousands of step dispatches) needs one
//! uniform upload and one bind group per (kernel, buffer set), not one per step:
//! [`Recorder::bind`] hands back the same [`BindId`] when asked again for a kernel and buffers
//! it already has, so callers that bind per call (`encode_matmul`) share bind groups too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytemuck::Pod;

use super::context::Gpu;
use super::kernel::{KernelDesc, Shader};
use super::pipelines::Pipeline;
use crate::error::{Error, Result};

/// Bytes reserved for one kernel's parameter struct in the uniform arena.
pub const UNIFORM_SLOT: usize = 256;

/// Handle to a bind group described with [`Recorder::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindId(usize);

struct BindSpec {
    pipeline: Arc<Pipeline>,
    base: u32,
    buffers: Vec<(u32, wgpu::Buffer)>,
}

enum Op {
    Dispatch {
        bind: usize,
        offset: u32,
        groups: [u32; 3],
        phase: &'static str,
    },
    Copy {
        src: wgpu::Buffer,
        src_off: u64,
        dst: wgpu::Buffer,
        dst_off: u64,
        size: u64,
    },
    Clear {
        buf: wgpu::Buffer,
        off: u64,
        size: u64,
    },
}

/// Records GPU work for one submission. See the module documentation.
pub struct Recorder<'g> {
    gpu: &'g Gpu,
    align: usize,
    uniforms: Vec<u8>,
    binds: Vec<BindSpec>,
    /// Index into `binds` of each (kernel, buffers) already described.
    bind_ids: HashMap<(Shader, &'static str, Vec<wgpu::Buffer>), usize>,
    ops: Vec<Op>,
    dispatches: usize,
    phase: &'static str,
    profile: bool,
    /// Set once this recording is submitted (see [`Recorder::on_submit`]).
    on_submit: Vec<Arc<AtomicBool>>,
    /// Whether the recording writes parameters (see [`Recorder::writes_params`]).
    writes_params: bool,
}

/// GPU time per phase of one submission, from timestamp queries.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// `(phase, milliseconds)`, in order of first appearance; a phase's passes are summed.
    pub phases: Vec<(&'static str, f64)>,
    /// From the first pass's start to the last pass's end, in milliseconds.
    pub total_ms: f64,
}

/// Timestamps of a profiled submission, to read after it completes.
// Read only by run_profiled, which blocks and so does not exist in a browser.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
struct PendingProfile {
    staging: wgpu::Buffer,
    passes: Vec<&'static str>,
}

impl<'g> Recorder<'g> {
    /// An empty recording on `gpu`.
    pub fn new(gpu: &'g Gpu) -> Self {
        let align = (gpu.limits.min_uniform_buffer_offset_alignment as usize).max(UNIFORM_SLOT);
        Recorder {
            gpu,
            align,
            uniforms: Vec::new(),
            binds: Vec::new(),
            bind_ids: HashMap::new(),
            ops: Vec::new(),
            dispatches: 0,
            phase: "",
            profile: false,
            on_submit: Vec::new(),
            writes_params: false,
        }
    }

    /// Names the phase of the dispatches recorded from now on (`"input_gemm"`, `"steps"`...).
    /// A new phase starts a new compute pass, so profiling can time it.
    pub fn phase(&mut self, name: &'static str) {
        self.phase = name;
    }

    /// Asks for GPU timestamps around every compute pass (when the device has
    /// `TIMESTAMP_QUERY`); [`Recorder::run_profiled`] then returns the time per phase.
    pub fn profile(&mut self) {
        self.profile = self.gpu.has_timestamps();
    }

    /// The GPU this recording is for.
    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// Sets `flag` when this recording is submitted (never, if it is dropped unsubmitted): how
    /// a cache filled by recorded work learns that the work reached the queue.
    pub(crate) fn on_submit(&mut self, flag: Arc<AtomicBool>) {
        self.on_submit.push(flag);
    }

    /// Whether `flag` was given to [`Recorder::on_submit`] of this recording.
    pub(crate) fn sets_on_submit(&self, flag: &Arc<AtomicBool>) -> bool {
        self.on_submit.iter().any(|f| Arc::ptr_eq(f, flag))
    }

    /// Notes that this recording writes parameters: [`crate::Gpu::param_writes`] moves now
    /// (for what is recorded after it, here or elsewhere) and again when the recording is
    /// submitted, so that a derived copy recorded in between but submitted first (and so made
    /// from the old values) is not kept as current.
    pub(crate) fn writes_params(&mut self) {
        self.gpu.note_param_write();
        self.writes_params = true;
    }

    fn mark_submitted(&self) {
        for f in &self.on_submit {
            f.store(true, Ordering::Release);
        }
        if self.writes_params {
            self.gpu.note_param_write();
        }
    }

    /// Number of dispatches recorded so far.
    pub fn dispatch_count(&self) -> usize {
        self.dispatches
    }

    /// Describes a bind group for kernel `desc`: `buffers` bind, in order, to the kernel's
    /// storage bindings (those that are `Some` in `desc.bindings`). The same kernel and
    /// buffers give the same [`BindId`] (one bind group).
    pub fn bind(&mut self, desc: &KernelDesc, buffers: &[&wgpu::Buffer]) -> Result<BindId> {
        let key = (
            desc.shader,
            desc.entry,
            buffers.iter().map(|b| (*b).clone()).collect::<Vec<_>>(),
        );
        if let Some(&i) = self.bind_ids.get(&key) {
            return Ok(BindId(i));
        }
        let pipeline = self.gpu.pipelines.get(&self.gpu.device, desc)?;
        let slots: Vec<u32> = desc
            .bindings
            .iter()
            .enumerate()
            .filter(|(_, a)| a.is_some())
            .map(|(i, _)| desc.base + 1 + i as u32)
            .collect();
        if slots.len() != buffers.len() {
            return Err(Error::Internal(format!(
                "kernel {} takes {} buffers, got {}",
                desc.entry,
                slots.len(),
                buffers.len()
            )));
        }
        self.binds.push(BindSpec {
            pipeline,
            base: desc.base,
            buffers: slots.into_iter().zip(key.2.iter().cloned()).collect(),
        });
        self.bind_ids.insert(key, self.binds.len() - 1);
        Ok(BindId(self.binds.len() - 1))
    }

    /// Records a dispatch of the kernel behind `bind` with parameter struct `params`.
    pub fn dispatch<P: Pod>(&mut self, bind: BindId, params: &P, groups: [u32; 3]) -> Result<()> {
        let bytes = bytemuck::bytes_of(params);
        if bytes.len() > UNIFORM_SLOT {
            return Err(Error::Internal(format!(
                "parameter struct of {} bytes is over the {UNIFORM_SLOT}-byte uniform slot",
                bytes.len()
            )));
        }
        let max = self.gpu.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::Limit {
                what: format!("dispatch of {:?} workgroups", groups),
                size: u64::from(*groups.iter().max().unwrap_or(&0)),
                limit: "max_compute_workgroups_per_dimension",
                max: u64::from(max),
            });
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let offset = self.uniforms.len();
        self.uniforms.extend_from_slice(bytes);
        self.uniforms.resize(offset + self.align, 0);
        self.ops.push(Op::Dispatch {
            bind: bind.0,
            offset: u32::try_from(offset).map_err(|_| Error::Limit {
                what: "parameter structs of one recording".into(),
                size: offset as u64,
                limit: "u32 dynamic uniform offset",
                max: u64::from(u32::MAX),
            })?,
            groups,
            phase: self.phase,
        });
        self.dispatches += 1;
        Ok(())
    }

    /// Records a copy of `len` f32 elements.
    pub fn copy(
        &mut self,
        src: &wgpu::Buffer,
        src_off: usize,
        dst: &wgpu::Buffer,
        dst_off: usize,
        len: usize,
    ) {
        if len > 0 {
            self.ops.push(Op::Copy {
                src: src.clone(),
                src_off: src_off as u64 * 4,
                dst: dst.clone(),
                dst_off: dst_off as u64 * 4,
                size: len as u64 * 4,
            });
        }
    }

    /// Records zeroing `len` f32 elements from element `off`.
    pub fn clear(&mut self, buf: &wgpu::Buffer, off: usize, len: usize) {
        if len > 0 {
            self.ops.push(Op::Clear {
                buf: buf.clone(),
                off: off as u64 * 4,
                size: len as u64 * 4,
            });
        }
    }

    /// Records everything into one command encoder and submits it once. Does not wait.
    pub fn submit(self) -> Result<wgpu::SubmissionIndex> {
        let (cmd, _) = self.finish()?;
        let index = self.gpu.submit(cmd);
        self.mark_submitted();
        Ok(index)
    }

    /// Submits and waits; device errors come back as [`Error::Gpu`].
    pub fn run(self) -> Result<()> {
        let gpu = self.gpu;
        self.submit()?;
        gpu.wait()
    }

    /// Submits, waits, and returns the GPU time of each phase (empty without timestamps;
    /// call [`Recorder::profile`] first). Blocks, so not in a browser.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_profiled(self) -> Result<Profile> {
        let gpu = self.gpu;
        let (cmd, pending) = self.finish()?;
        gpu.submit(cmd);
        self.mark_submitted();
        gpu.wait()?;
        let Some(pending) = pending else {
            return Ok(Profile::default());
        };
        let ticks: Vec<u64> =
            bytemuck::pod_collect_to_vec(&pollster::block_on(gpu.map_read(&pending.staging))?);
        let ns = f64::from(gpu.queue.get_timestamp_period());
        let mut profile = Profile::default();
        for (i, phase) in pending.passes.iter().enumerate() {
            let ms = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * ns / 1e6;
            match profile.phases.iter_mut().find(|(p, _)| p == phase) {
                Some(e) => e.1 += ms,
                None => profile.phases.push((phase, ms)),
            }
        }
        if let (Some(first), Some(last)) = (ticks.first(), ticks.get(2 * pending.passes.len() - 1))
        {
            profile.total_ms = last.saturating_sub(*first) as f64 * ns / 1e6;
        }
        Ok(profile)
    }

    /// Compute passes: runs of consecutive dispatches of one phase, as `(first op, end op)`.
    fn passes(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.ops.len() {
            if let Op::Dispatch { phase, .. } = &self.ops[i] {
                let start = i;
                while matches!(&self.ops.get(i), Some(Op::Dispatch { phase: p, .. }) if p == phase)
                {
                    i += 1;
                }
                out.push((start, i));
            } else {
                i += 1;
            }
        }
        out
    }

    fn finish(&self) -> Result<(wgpu::CommandBuffer, Option<PendingProfile>)> {
        let gpu = self.gpu;
        let device = &gpu.device;
        let mut arena = self.uniforms.clone();
        arena.resize(arena.len().max(UNIFORM_SLOT), 0);
        // create_buffer + write_buffer rather than create_buffer_init, which panics when the
        // device is lost; this way a lost device reaches Gpu::check as an error.
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("recur.params"),
            size: arena.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue.write_buffer(&uniform, 0, &arena);
        let groups: Vec<wgpu::BindGroup> = self
            .binds
            .iter()
            .map(|spec| {
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: spec.base,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &uniform,
                        offset: 0,
                        size: wgpu::BufferSize::new(UNIFORM_SLOT as u64),
                    }),
                }];
                for (slot, buf) in &spec.buffers {
                    entries.push(wgpu::BindGroupEntry {
                        binding: *slot,
                        resource: buf.as_entire_binding(),
                    });
                }
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &spec.pipeline.layout,
                    entries: &entries,
                })
            })
            .collect();
        let passes = self.passes();
        // Two timestamps a pass, within wgpu's cap on one query set.
        let timed = if self.profile {
            passes.len().min(wgpu::QUERY_SET_MAX_QUERIES as usize / 2)
        } else {
            0
        };
        let queries = (timed > 0).then(|| {
            device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("recur.timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * timed as u32,
            })
        });
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("recur.sequence"),
        });
        let mut next_pass = 0;
        let mut i = 0;
        while i < self.ops.len() {
            match &self.ops[i] {
                Op::Dispatch { phase, .. } => {
                    let (start, end) = passes[next_pass];
                    debug_assert_eq!(start, i);
                    let timestamp_writes = match &queries {
                        Some(q) if next_pass < timed => Some(wgpu::ComputePassTimestampWrites {
                            query_set: q,
                            beginning_of_pass_write_index: Some(2 * next_pass as u32),
                            end_of_pass_write_index: Some(2 * next_pass as u32 + 1),
                        }),
                        _ => None,
                    };
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(if phase.is_empty() {
                            "recur.pass"
                        } else {
                            phase
                        }),
                        timestamp_writes,
                    });
                    for op in &self.ops[start..end] {
                        if let Op::Dispatch {
                            bind,
                            offset,
                            groups: g,
                            ..
                        } = op
                        {
                            pass.set_pipeline(&self.binds[*bind].pipeline.pipeline);
                            pass.set_bind_group(0, &groups[*bind], &[*offset]);
                            pass.dispatch_workgroups(g[0], g[1], g[2]);
                        }
                    }
                    next_pass += 1;
                    i = end;
                }
                Op::Copy {
                    src,
                    src_off,
                    dst,
                    dst_off,
                    size,
                } => {
                    enc.copy_buffer_to_buffer(src, *src_off, dst, *dst_off, *size);
                    i += 1;
                }
                Op::Clear { buf, off, size } => {
                    enc.clear_buffer(buf, *off, Some(*size));
                    i += 1;
                }
            }
        }
        let pending = match &queries {
            Some(q) => {
                let bytes = 16 * timed as u64;
                let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("recur.timestamps.resolve"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                let staging = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("recur.timestamps.read"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                enc.resolve_query_set(q, 0..2 * timed as u32, &resolve, 0);
                enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, bytes);
                let names = passes[..timed]
                    .iter()
                    .map(|(start, _)| match &self.ops[*start] {
                        Op::Dispatch { phase, .. } => *phase,
                        _ => "",
                    })
                    .collect();
                Some(PendingProfile {
                    staging,
                    passes: names,
                })
            }
            None => None,
        };
        Ok((enc.finish(), pending))
    }
}
