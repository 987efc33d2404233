// The small-batch kernels' partial sums (step_small_batch.wgsl) without subgroup operations:
// thread t's partial of value v goes to row t of sb_part, SB_THREADS rows in all. The
// portable build; sb_partials_subgroup.wgsl is the other.

fn sb_partial(lid: u32, v: u32, x: f32) {
    sb_part[lid * SB_STRIDE + v] = x;
}

fn sb_rows() -> u32 {
    return SB_THREADS;
}
