// Losses with their gradients, reduced on the device without atomics.
//
// cross_entropy (uniform at 0): fused softmax + cross-entropy over the vocabulary, one
// workgroup per row r < rows of logits [rows, V] (row r at logits_off + r * V; on CPU
// adapters cross_entropy_rows, one invocation per row):
//   m = max_v x[r, v],  lse = m + log(sum_v exp(x[r, v] - m))          (stable log-sum-exp)
//   row_loss[r] = lse - x[r, target[r]]
//   dlogits[r, v] = grad_scale * (exp(x[r, v] - lse) - [v == target[r]])
// grad_scale is scale / rows for torch's mean reduction (scale = 1/M over M micro-batches).
// Targets are u32 ids, checked < V on the host (TokenIds); the loss read is clamped into the
// row anyway so that no id can reach another row's logits.
//
// mse (uniform at 8): over n elements, workgroup w owns elements [w * chunk, (w+1) * chunk):
//   grad[i] = grad_scale * 2 * (pred[i] - mse_target[i])
//   partials[w] = sum over its elements of (pred[i] - mse_target[i])^2
//
// loss_reduce (uniform at 16): one workgroup,
//   dst[dst_off] = (ACCUMULATE ? dst[dst_off] : 0) + scale * sum_{i < n} src[i]
// Each thread sums a fixed strided subset in order, then a fixed tree over the workgroup:
// the result depends only on n, never on scheduling (deterministic run to run).
//
// Rows and elements are spread over (x, y) workgroups when x would pass 65535; the index is
// folded back with num_workgroups.

const WG: u32 = 128u;
const RWG: u32 = 256u;
// Rows per workgroup of cross_entropy_rows.
const ROWS_WG: u32 = 64u;

// Flag bit of ReduceParams.flags, as in src/kernels/loss.rs::flags.
const ACCUMULATE: u32 = 1u;

// ---------------------------------------------------------------------------------------
// cross_entropy: bindings 0..4

struct CrossEntropyParams {
    rows: u32,
    vocab: u32,
    logits_off: u32,
    _pad0: u32,
    grad_scale: f32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> ce: CrossEntropyParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;

var<workgroup> red: array<f32, 128>;

// Tree reduction of red[0..WG] (max when take_max, else sum); every thread gets the result.
fn reduce_wg(lid: u32, take_max: bool) -> f32 {
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if lid < s {
            if take_max {
                red[lid] = max(red[lid], red[lid + s]);
            } else {
                red[lid] = red[lid] + red[lid + s];
            }
        }
    }
    workgroupBarrier();
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(128, 1, 1)
fn cross_entropy(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let r = wid.x + wid.y * nwg.x;
    // Uniform control flow: the whole workgroup leaves together.
    if r >= ce.rows {
        return;
    }
    let V = ce.vocab;
    let base = ce.logits_off + r * V;
    var m = -3.402823e38;
    for (var v = lid; v < V; v += WG) {
        m = max(m, logits[base + v]);
    }
    red[lid] = m;
    m = reduce_wg(lid, true);
    var s = 0.0;
    for (var v = lid; v < V; v += WG) {
        s += exp(logits[base + v] - m);
    }
    red[lid] = s;
    s = reduce_wg(lid, false);
    let lse = m + log(s);
    let t = targets[r];
    for (var v = lid; v < V; v += WG) {
        var g = exp(logits[base + v] - lse);
        if v == t {
            g -= 1.0;
        }
        dlogits[r * V + v] = ce.grad_scale * g;
    }
    if lid == 0u {
        row_loss[r] = lse - logits[base + min(t, V - 1u)];
    }
}

// cross_entropy_rows: the same, one invocation per row (CPU adapters: no workgroup memory and
// no barriers, which cost lavapipe a switch of every SIMD row of the workgroup each). Same
// bindings and parameters; the sums run along v in order instead of as a tree.
@compute @workgroup_size(64, 1, 1)
fn cross_entropy_rows(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = (wid.x + wid.y * nwg.x) * ROWS_WG + lid3.x;
    if r >= ce.rows {
        return;
    }
    let V = ce.vocab;
    let base = ce.logits_off + r * V;
    var m = -3.402823e38;
    for (var v = 0u; v < V; v++) {
        m = max(m, logits[base + v]);
    }
    var s = 0.0;
    for (var v = 0u; v < V; v++) {
        s += exp(logits[base + v] - m);
    }
    let lse = m + log(s);
    let t = targets[r];
    for (var v = 0u; v < V; v++) {
        var g = exp(logits[base + v] - lse);
        if v == t {
            g -= 1.0;
        }
        dlogits[r * V + v] = ce.grad_scale * g;
    }
    row_loss[r] = lse - logits[base + min(t, V - 1u)];
}

// ---------------------------------------------------------------------------------------
// mse: bindings 8..12

struct MseParams {
    n: u32,
    chunk: u32,
    _pad0: u32,
    _pad1: u32,
    grad_scale: f32,
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
}

@group(0) @binding(8) var<uniform> ms: MseParams;
@group(0) @binding(9) var<storage, read> pred: array<f32>;
@group(0) @binding(10) var<storage, read> mse_target: array<f32>;
@group(0) @binding(11) var<storage, read_write> grad: array<f32>;
@group(0) @binding(12) var<storage, read_write> partials: array<f32>;

var<workgroup> red_m: array<f32, 128>;

@compute @workgroup_size(128, 1, 1)
fn mse(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let w = wid.x + wid.y * nwg.x;
    let start = w * ms.chunk;
    if start >= ms.n {
        return;
    }
    let end = min(start + ms.chunk, ms.n);
    var s = 0.0;
    for (var i = start + lid; i < end; i += WG) {
        let d = pred[i] - mse_target[i];
        grad[i] = ms.grad_scale * 2.0 * d;
        s += d * d;
    }
    red_m[lid] = s;
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        workgroupBarrier();
        if lid < k {
            red_m[lid] = red_m[lid] + red_m[lid + k];
        }
    }
    if lid == 0u {
        partials[w] = red_m[0];
    }
}

// ---------------------------------------------------------------------------------------
// loss_reduce: bindings 16..18

struct ReduceParams {
    n: u32,
    dst_off: u32,
    // bit 0: ACCUMULATE (dst += ...)
    flags: u32,
    _pad0: u32,
    scale: f32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(16) var<uniform> rp: ReduceParams;
@group(0) @binding(17) var<storage, read> src: array<f32>;
@group(0) @binding(18) var<storage, read_write> dst: array<f32>;

var<workgroup> red_r: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn loss_reduce(@builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    var s = 0.0;
    for (var i = lid; i < rp.n; i += RWG) {
        s += src[i];
    }
    red_r[lid] = s;
    for (var k = RWG / 2u; k > 0u; k >>= 1u) {
        workgroupBarrier();
        if lid < k {
            red_r[lid] = red_r[lid] + red_r[lid + k];
        }
    }
    if lid == 0u {
        var v = rp.scale * red_r[0];
        if (rp.flags & ACCUMULATE) != 0u {
            v += dst[rp.dst_off];
        }
        dst[rp.dst_off] = v;
    }
}
