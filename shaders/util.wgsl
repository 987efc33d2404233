// Small data-movement and reduction kernels around the RNN plan.

// Each entry has its own parameter struct (mirrored in src/kernels/util.rs) and bindings: a
// uniform, then its buffers.

struct SumRowsParams {
    rows: u32,
    cols: u32,
    src_off: u32,
    src_ld: u32,
    dst_off: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> sr: SumRowsParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// dst[dst_off + j] += sum_r src[src_off + r * src_ld + j], r < rows, j < cols.
// One thread a column, rows summed in order: deterministic, no atomics (bias gradients).
@compute @workgroup_size(64, 1, 1)
fn sum_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if j >= sr.cols {
        return;
    }
    var s = 0.0;
    for (var r = 0u; r < sr.rows; r++) {
        s += src[sr.src_off + r * sr.src_ld + j];
    }
    dst[sr.dst_off + j] += s;
}

@group(0) @binding(16) var<uniform> sr4: SumRowsParams;
@group(0) @binding(17) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(18) var<storage, read_write> dst4: array<vec4<f32>>;

// sum_rows for CPU adapters, four columns an invocation on vec4-typed storage (cols, ld and
// the offsets multiples of 4): a quarter of the loads, the same sums in the same order.
@compute @workgroup_size(16, 1, 1)
fn sum_rows_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x * 4u;
    if j >= sr4.cols {
        return;
    }
    var s = vec4<f32>(0.0);
    var i = (sr4.src_off + j) / 4u;
    let ld = sr4.src_ld / 4u;
    for (var r = 0u; r < sr4.rows; r++) {
        s += src4[i];
        i += ld;
    }
    let d = (sr4.dst_off + j) / 4u;
    dst4[d] = dst4[d] + s;
}

struct Transpose01Params {
    d0: u32,
    d1: u32,
    inner: u32,
    _pad0: u32,
}

@group(0) @binding(4) var<uniform> tp: Transpose01Params;
@group(0) @binding(5) var<storage, read> t_src: array<f32>;
@group(0) @binding(6) var<storage, read_write> t_dst: array<f32>;

// Swaps the two leading axes of a [d0, d1, inner] tensor: dst[j, i, f] = src[i, j, f]
// ((B, T, F) <-> (T, B, F) for batch_first).
@compute @workgroup_size(64, 1, 1)
fn transpose01(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let inner = tp.inner;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= tp.d0 * tp.d1 * inner {
        return;
    }
    let f = idx % inner;
    let ij = idx / inner;
    let j = ij % tp.d1;
    let i = ij / tp.d1;
    t_dst[(j * tp.d0 + i) * inner + f] = t_src[idx];
}

struct CopyRowsParams {
    rows: u32,
    cols: u32,
    src_off: u32,
    src_ld: u32,
    dst_off: u32,
    dst_ld: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(8) var<uniform> cp: CopyRowsParams;
@group(0) @binding(9) var<storage, read> c_src: array<f32>;
@group(0) @binding(10) var<storage, read_write> c_dst: array<f32>;

// dst[dst_off + r * dst_ld + j] = src[src_off + r * src_ld + j], r < rows, j < cols: moves a
// block of rows between strided layouts (an LSTM projection's states into the output).
@compute @workgroup_size(64, 1, 1)
fn copy_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let cols = cp.cols;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= cp.rows * cols {
        return;
    }
    let r = idx / cols;
    let j = idx % cols;
    c_dst[cp.dst_off + r * cp.dst_ld + j] = c_src[cp.src_off + r * cp.src_ld + j];
}

struct GatherRowsParams {
    outer: u32,
    rows: u32,
    inner: u32,
    _pad0: u32,
}

@group(0) @binding(12) var<uniform> gp: GatherRowsParams;
@group(0) @binding(13) var<storage, read> g_src: array<f32>;
@group(0) @binding(14) var<storage, read_write> g_dst: array<f32>;
@group(0) @binding(15) var<storage, read> rows_idx: array<u32>;

// dst[o, j, :] = src[o, rows_idx[j], :] for an [outer, rows, inner] tensor: reorders the batch
// rows of a sequence or a state (variable-length batches sort their rows by length once, and
// put them back after).
@compute @workgroup_size(64, 1, 1)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let rows = gp.rows;
    let inner = gp.inner;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= gp.outer * rows * inner {
        return;
    }
    let f = idx % inner;
    let oj = idx / inner;
    let j = oj % rows;
    let o = oj / rows;
    g_dst[idx] = g_src[(o * rows + rows_idx[j]) * inner + f];
}
