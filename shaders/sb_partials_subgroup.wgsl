// The small-batch kernels' partial sums (step_small_batch.wgsl) with subgroup operations
// (wgpu's Features::SUBGROUP): each subgroup adds its threads' partials of value v
// (subgroupAdd) and one thread writes the sum to the subgroup's row of sb_part, so the final
// reduction reads SB_THREADS / subgroup size rows instead of SB_THREADS. The subgroup size is
// subgroupAdd(1u) (every thread is active where these run); a subgroup is taken to hold the
// consecutive local indices lid / size * size .. +size, as GPUs lay out one-dimensional
// workgroups (row = the subgroup's smallest local index / size). Called in uniform control
// flow.

fn sb_partial(lid: u32, v: u32, x: f32) {
    let sum = subgroupAdd(x);
    let size = subgroupAdd(1u);
    let row = subgroupMin(lid) / size;
    // One writer a subgroup: its first invocation.
    if subgroupExclusiveAdd(1u) == 0u {
        sb_part[row * SB_STRIDE + v] = sum;
    }
}

fn sb_rows() -> u32 {
    return max(SB_THREADS / subgroupAdd(1u), 1u);
}
