//! The pipeline cache: every compute pipeline is built once per (shader, entry point).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::kernel::{Access, KernelDesc, Shader};
use crate::error::{Error, Result};

/// A compiled kernel: its pipeline and bind group layout.
#[derive(Debug)]
pub struct Pipeline {
    /// The compute pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Layout of bind group 0.
    pub layout: wgpu::BindGroupLayout,
}

/// Shader modules and pipelines, compiled on first use and kept for the device's life.
/// Nothing else in recur calls `create_shader_module`.
#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<Shader, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<(Shader, &'static str), Arc<Pipeline>>>,
}

impl PipelineCache {
    /// The pipeline for `desc`, compiling it on first use.
    ///
    /// Compilation errors are caught with an error scope and returned as [`Error::Gpu`].
    pub fn get(&self, device: &wgpu::Device, desc: &KernelDesc) -> Result<Arc<Pipeline>> {
        let key = (desc.shader, desc.entry);
        {
            let map = self.pipelines.lock().map_err(poisoned)?;
            if let Some(p) = map.get(&key) {
                return Ok(p.clone());
            }
        }
        // Natively, compilation errors are caught here; a browser cannot block on the scope,
        // so there they reach the uncaptured-error handler and Gpu::check.
        #[cfg(not(target_arch = "wasm32"))]
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.module(device, desc.shader)?;
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: desc.base,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, access) in desc.bindings.iter().enumerate() {
            let Some(access) = access else { continue };
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: desc.base + 1 + i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(desc.entry),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(desc.entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(desc.entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(desc.entry),
            compilation_options: Default::default(),
            cache: None,
        });
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("building kernel {}: {e}", desc.entry)));
        }
        let p = Arc::new(Pipeline { pipeline, layout });
        self.pipelines
            .lock()
            .map_err(poisoned)?
            .insert(key, p.clone());
        Ok(p)
    }

    fn module(&self, device: &wgpu::Device, shader: Shader) -> Result<Arc<wgpu::ShaderModule>> {
        let mut map = self.modules.lock().map_err(poisoned)?;
        if let Some(m) = map.get(&shader) {
            return Ok(m.clone());
        }
        let m = Arc::new(device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(shader.file_name()),
            source: wgpu::ShaderSource::Wgsl(shader.source().into()),
        }));
        map.insert(shader, m.clone());
        Ok(m)
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("pipeline cache lock poisoned".into())
}
