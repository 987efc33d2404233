// Embedding lookup and its gradient. Weight [V, D] row-major (torch's nn.Embedding.weight).
//
// The id buffer (u32) holds three sections, built on the host by TokenIds:
//   ids[0..n]                  the token of each row (time-major rows t * B + b)
//   starts[starts_off + v]     v <= V: rows whose id is v are rows[rows_off + starts[v] ..
//                              rows_off + starts[v + 1]], in increasing order (a stable
//                              bucket sort, like llm.c's encoder_backward)
//
// embedding_forward (uniform at 0): out[r, d] = weight[ids[r], d], one thread per (r, d);
//   an id >= V (never produced by TokenIds) gives a zero row instead of reading out of range.
// embedding_backward (uniform at 8): one thread per (v, d),
//   dweight[v, d] = (ACCUMULATE ? dweight[v, d] : 0) + sum over rows r with id v, in
//                   increasing r, of dy[r, d]
//   No atomics: each entry has one owner and a fixed summation order.
// Threads are spread over (x, y) workgroups when x would pass 65535.

const WG: u32 = 256u;

// Flag bit of EmbeddingParams.flags, as in src/kernels/embedding.rs::flags.
const ACCUMULATE: u32 = 1u;

struct EmbeddingParams {
    // forward: rows n; backward: vocabulary V
    count: u32,
    dim: u32,
    vocab: u32,
    // bit 0: ACCUMULATE (backward)
    flags: u32,
    starts_off: u32,
    rows_off: u32,
    _pad0: u32,
    _pad1: u32,
}

// ---------------------------------------------------------------------------------------
// embedding_forward: bindings 0..3

@group(0) @binding(0) var<uniform> fp: EmbeddingParams;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> f_ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn embedding_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    if idx >= fp.count * fp.dim {
        return;
    }
    let r = idx / fp.dim;
    let d = idx % fp.dim;
    let id = f_ids[r];
    var v = 0.0;
    if id < fp.vocab {
        v = weight[id * fp.dim + d];
    }
    out[idx] = v;
}

// ---------------------------------------------------------------------------------------
// embedding_backward: bindings 8..11

@group(0) @binding(8) var<uniform> bp: EmbeddingParams;
@group(0) @binding(9) var<storage, read> b_ids: array<u32>;
@group(0) @binding(10) var<storage, read> dy: array<f32>;
@group(0) @binding(11) var<storage, read_write> dweight: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn embedding_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    if idx >= bp.count * bp.dim {
        return;
    }
    let v = idx / bp.dim;
    let d = idx % bp.dim;
    var s = 0.0;
    if (bp.flags & ACCUMULATE) != 0u {
        s = dweight[idx];
    }
    let lo = b_ids[bp.starts_off + v];
    let hi = b_ids[bp.starts_off + v + 1u];
    for (var k = lo; k < hi; k++) {
        let r = b_ids[bp.rows_off + k];
        s += dy[r * bp.dim + d];
    }
    dweight[idx] = s;
}
