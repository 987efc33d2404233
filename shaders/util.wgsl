// Small data-movement and reduction kernels around the RNN plan.

struct UtilParams {
    // sum_rows: rows, cols, in_off, in_ld, out_off
    // transpose01: d0, d1, inner (out[j, i, :] = in[i, j, :])
    // copy_rows: rows, cols, src_off, src_ld, dst_off, dst_ld
    a: u32,
    b: u32,
    c: u32,
    d: u32,
    e: u32,
    f: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: UtilParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// out[out_off + j] += sum_r in[in_off + r * in_ld + j], r < rows, j < cols.
// One thread a column, rows summed in order: deterministic, no atomics (bias gradients).
@compute @workgroup_size(64, 1, 1)
fn sum_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let rows = p.a;
    let cols = p.b;
    let j = gid.x;
    if j >= cols {
        return;
    }
    var s = 0.0;
    for (var r = 0u; r < rows; r++) {
        s += src[p.c + r * p.d + j];
    }
    dst[p.e + j] += s;
}

// Swaps the two leading axes of a [d0, d1, inner] tensor: dst[j, i, f] = src[i, j, f]
// ((B, T, F) <-> (T, B, F) for batch_first).
@compute @workgroup_size(64, 1, 1)
fn transpose01(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let d0 = p.a;
    let d1 = p.b;
    let inner = p.c;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= d0 * d1 * inner {
        return;
    }
    let f = idx % inner;
    let ij = idx / inner;
    let j = ij % d1;
    let i = ij / d1;
    dst[(j * d0 + i) * inner + f] = src[idx];
}

// dst[dst_off + r * dst_ld + j] = src[src_off + r * src_ld + j], r < rows, j < cols: moves a
// block of rows between strided layouts (an LSTM projection's states into the output).
@compute @workgroup_size(64, 1, 1)
fn copy_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let rows = p.a;
    let cols = p.b;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= rows * cols {
        return;
    }
    let r = idx / cols;
    let j = idx % cols;
    dst[p.e + r * p.f + j] = src[p.c + r * p.d + j];
}

// dst[o, j, :] = src[o, rows_idx[j], :] for a [outer, rows, inner] tensor (a = outer, b = rows,
// c = inner): reorders the batch rows of a sequence or a state (variable-length batches sort
// their rows by length once, and put them back after).
@group(0) @binding(3) var<storage, read> rows_idx: array<u32>;

@compute @workgroup_size(64, 1, 1)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let rows = p.b;
    let inner = p.c;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= p.a * rows * inner {
        return;
    }
    let f = idx % inner;
    let oj = idx / inner;
    let j = oj % rows;
    let o = oj / rows;
    dst[idx] = src[(o * rows + rows_idx[j]) * inner + f];
}
