//! `recur info`.

use recur::gpu::context::{adapter_matches, list_adapters, OPTIONAL_FEATURES};
use recur::Gpu;

pub fn info() -> anyhow::Result<()> {
    let adapters = list_adapters()?;
    let filter = std::env::var("RECUR_ADAPTER")
        .ok()
        .filter(|s| !s.is_empty());
    if adapters.is_empty() {
        println!("no adapters found");
    }
    let picked = adapters
        .iter()
        .position(|a| adapter_matches(&a.info, filter.as_deref()));
    for (i, a) in adapters.iter().enumerate() {
        let mark = if Some(i) == picked { "*" } else { " " };
        println!(
            "{mark} [{i}] {} ({:?}, {:?}, driver: {} {})",
            a.info.name, a.info.backend, a.info.device_type, a.info.driver, a.info.driver_info
        );
    }
    let gpu = Gpu::new()?;
    let l = gpu.limits();
    println!();
    println!(
        "recur uses: {} on {:?}",
        gpu.info().name,
        gpu.info().backend
    );
    for (f, name) in [
        (wgpu::Features::SHADER_F16, "SHADER_F16"),
        (wgpu::Features::SUBGROUP, "SUBGROUP"),
        (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
    ] {
        if OPTIONAL_FEATURES.contains(f) {
            let has = gpu.features().contains(f);
            println!("  feature {name:<16} {}", if has { "yes" } else { "no" });
        }
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    if gpu.features().contains(wgpu::Features::SUBGROUP) {
        println!(
            "  subgroup size                        {}..{}",
            gpu.info().subgroup_min_size,
            gpu.info().subgroup_max_size
        );
    }
    println!(
        "  kernels: {} family{}{}",
        if gpu.prefers_direct_kernels() {
            "direct (CPU adapter)"
        } else {
            "tiled (GPU)"
        },
        if gpu.prefers_direct_kernels() {
            format!(
                ", loads shared across subgroups (and W_hh resident for small steps): {}",
                yes(gpu.shares_subgroup_loads())
            )
        } else {
            format!(", subgroup reductions: {}", yes(gpu.uses_subgroups()))
        },
        if gpu.has_f16_in_f32() {
            ", f16 weights: available"
        } else {
            ", f16 weights: not available"
        }
    );
    println!(
        "  max_buffer_size                      {}",
        l.max_buffer_size
    );
    println!(
        "  max_storage_buffer_binding_size      {}",
        l.max_storage_buffer_binding_size
    );
    println!(
        "  max_storage_buffers_per_shader_stage {}",
        l.max_storage_buffers_per_shader_stage
    );
    println!(
        "  max_compute_workgroup_storage_size   {}",
        l.max_compute_workgroup_storage_size
    );
    println!(
        "  max_compute_invocations_per_workgroup {}",
        l.max_compute_invocations_per_workgroup
    );
    println!(
        "  max_compute_workgroups_per_dimension {}",
        l.max_compute_workgroups_per_dimension
    );
    println!(
        "  min_uniform_buffer_offset_alignment  {}",
        l.min_uniform_buffer_offset_alignment
    );
    Ok(())
}
