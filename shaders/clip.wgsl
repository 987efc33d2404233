// Gradient clipping on the device, with torch.nn.utils.clip_grad_norm_ semantics:
//   total_norm = sqrt(sum over every gradient buffer of sum g^2)
//   coef = min(max_norm / (total_norm + 1e-6), 1.0),   g = g * coef   (always multiplied)
// and clip_grad_value_: g = clamp(g, -clip, clip).
//
// The norm is a deterministic two-stage reduction, never an atomic, and never leaves the
// device: the scale dispatch reads coef from the norm buffer.
//   clip_norm_partials (uniform at 0): workgroup w of one gradient buffer sums g^2 over its
//     elements [w * chunk, (w+1) * chunk) and writes partials[part_off + w]; each buffer of a
//     model gets its own range of partials. On CPU adapters clip_norm_partials_rows: one
//     invocation a chunk, summed in order.
//   clip_norm_finish (uniform at 4): one workgroup sums partials[0..num_partials] and writes
//     norm[norm_off] = total_norm, norm[norm_off + 1] = coef.
//   clip_scale (uniform at 8): g[i] *= norm[norm_off + 1].
//   clip_value (uniform at 12): g[i] = clamp(g[i], -clip, clip).
// Inside a workgroup every thread sums a fixed strided subset in order, then a fixed tree:
// the result depends on the sizes only, not on scheduling.
// Elements and workgroups are spread over (x, y) when x would pass 65535.

const WG: u32 = 256u;
// Chunks per workgroup of clip_norm_partials_rows.
const ROWS_WG: u32 = 64u;

struct ClipParams {
    n: u32,
    // partials: elements per workgroup
    chunk: u32,
    // partials: first partial slot; finish: number of partials
    part_off: u32,
    // finish, scale: where total_norm (and coef after it) live in the norm buffer
    norm_off: u32,
    // finish: max_norm; value: the clip value
    x: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

var<workgroup> red: array<f32, 256>;

// Tree sum of red[0..WG]; thread 0 holds the result afterwards.
fn tree_sum(lid: u32) {
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        workgroupBarrier();
        if lid < k {
            red[lid] = red[lid] + red[lid + k];
        }
    }
}

// ---------------------------------------------------------------------------------------
// clip_norm_partials: bindings 0..2

@group(0) @binding(0) var<uniform> pp: ClipParams;
@group(0) @binding(1) var<storage, read> p_grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> p_partials: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn clip_norm_partials(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let w = wid.x + wid.y * nwg.x;
    let start = w * pp.chunk;
    if start >= pp.n {
        return;
    }
    let end = min(start + pp.chunk, pp.n);
    var s = 0.0;
    for (var i = start + lid; i < end; i += WG) {
        let g = p_grads[i];
        s += g * g;
    }
    red[lid] = s;
    tree_sum(lid);
    if lid == 0u {
        p_partials[pp.part_off + w] = red[0];
    }
}

// clip_norm_partials_rows: the same partials, one invocation per chunk summing it in order
// (CPU adapters: no workgroup memory and no barriers, which cost lavapipe a switch of every
// SIMD row of the workgroup each).
@compute @workgroup_size(64, 1, 1)
fn clip_norm_partials_rows(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = (wid.x + wid.y * nwg.x) * ROWS_WG + lid3.x;
    let start = w * pp.chunk;
    if start >= pp.n {
        return;
    }
    let end = min(start + pp.chunk, pp.n);
    var s = 0.0;
    for (var i = start; i < end; i++) {
        let g = p_grads[i];
        s += g * g;
    }
    p_partials[pp.part_off + w] = s;
}

// ---------------------------------------------------------------------------------------
// clip_norm_finish: bindings 4..6

@group(0) @binding(4) var<uniform> fp: ClipParams;
@group(0) @binding(5) var<storage, read> f_partials: array<f32>;
@group(0) @binding(6) var<storage, read_write> f_norm: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn clip_norm_finish(@builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    var s = 0.0;
    for (var i = lid; i < fp.part_off; i += WG) {
        s += f_partials[i];
    }
    red[lid] = s;
    tree_sum(lid);
    if lid == 0u {
        let total = sqrt(red[0]);
        f_norm[fp.norm_off] = total;
        f_norm[fp.norm_off + 1u] = min(fp.x / (total + 1e-6), 1.0);
    }
}

// ---------------------------------------------------------------------------------------
// clip_scale: bindings 8..10

@group(0) @binding(8) var<uniform> sp: ClipParams;
@group(0) @binding(9) var<storage, read> s_norm: array<f32>;
@group(0) @binding(10) var<storage, read_write> s_grads: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn clip_scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= sp.n {
        return;
    }
    s_grads[i] = s_grads[i] * s_norm[sp.norm_off + 1u];
}

// ---------------------------------------------------------------------------------------
// clip_value: bindings 12..13

@group(0) @binding(12) var<uniform> vp: ClipParams;
@group(0) @binding(13) var<storage, read_write> v_grads: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn clip_value(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= vp.n {
        return;
    }
    v_grads[i] = clamp(v_grads[i], -vp.x, vp.x);
}
