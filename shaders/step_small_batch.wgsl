// The recurrent products of a step for small batches (B <= SB_ROWS), forward and backward,
// shared by rnn.wgsl, lstm.wgsl and gru.wgsl (prepended to each after step_common.wgsl by the
// shader registry, src/gpu/kernel.rs; forward reads their globals `p`, `hs`, the weights
// through `param` and their gate count `G`; backward their operand readers `product_lhs` and
// `product_rhs`, as step_tiled_backward.wgsl does).
//
// With B = 1 the 16x16 tiles of the tiled step kernels keep 15 of 16 thread rows idle and
// spread one matrix-vector product over only H/16 workgroups. Here a workgroup of SB_THREADS
// threads owns SB_UNITS hidden units across all gates and every batch row, and splits the
// sum over k between its threads (adjacent threads read adjacent elements of a W_hh row);
// each thread keeps its partial sums of all (row, gate, unit) in registers, then one pass
// through workgroup memory adds the threads' partials, so H / SB_UNITS workgroups run a step.
// How the partials reach workgroup memory is the build's (prepended before this file):
// sb_partials_shared.wgsl stores every thread's (32 rows), sb_partials_subgroup.wgsl adds
// them within each subgroup first (subgroupAdd; one row per subgroup).
//
//   acc[b, g, u] = sum_k h_prev[b, k] * W_hh[g*H + j0 + u, k]
//
// Backward likewise: a workgroup owns SB_UNITS columns of dh and splits the sum over the rows
// of W_hh (G*H of them) between its threads.

const SB_THREADS: u32 = 32u;
const SB_UNITS: u32 = 4u;
const SB_ROWS: u32 = 4u;
// Values a workgroup reduces: SB_ROWS * 4 gates * SB_UNITS; the partials of thread t live at
// sb_part[t * SB_STRIDE + v] (one padding column against bank conflicts).
const SB_VALUES: u32 = 64u;
const SB_STRIDE: u32 = 65u;

var<workgroup> sb_part: array<f32, 2080>;

// Value index of (row b, gate g, unit u).
fn sb_index(b: u32, g: u32, u: u32) -> u32 {
    return (b * 4u + g) * SB_UNITS + u;
}

// Fills sb_part[0 .. SB_VALUES] with acc[b, g, u] for units j0 .. j0+SB_UNITS-1 (zero past H)
// of every row b < B. Called by every thread of the workgroup (it has barriers).
fn small_batch_product(lid: u32, j0: u32) {
    let H = p.hidden;
    let S = p.state;
    let B = min(p.batch, SB_ROWS);
    var acc: array<f32, 64>;
    for (var k = lid; k < S; k += SB_THREADS) {
        for (var b = 0u; b < SB_ROWS; b++) {
            if b < B {
                let hv = hs[p.hprev_off + b * S + k];
                for (var g = 0u; g < G; g++) {
                    for (var u = 0u; u < SB_UNITS; u++) {
                        let row = g * H + min(j0 + u, H - 1u);
                        acc[sb_index(b, g, u)] = fma(hv, param(p.whh_off + row * S + k), acc[sb_index(b, g, u)]);
                    }
                }
            }
        }
    }
    for (var v = 0u; v < SB_VALUES; v++) {
        sb_partial(lid, v, acc[v]);
    }
    small_batch_reduce(lid, SB_VALUES);
}

// After every thread has handed its partials of values v < count to sb_partial (rows
// 0 .. sb_rows() of sb_part hold them): sb_part[v] = the sum of the rows, added in row order
// (deterministic). Called by every thread of the workgroup (it has barriers).
fn small_batch_reduce(lid: u32, count: u32) {
    let rows = sb_rows();
    workgroupBarrier();
    // Thread t adds up values t, t + SB_THREADS, ... over all rows, in a fixed order.
    var sums: array<f32, 2>;
    for (var i = 0u; i < SB_VALUES / SB_THREADS; i++) {
        let v = lid + i * SB_THREADS;
        var s = 0.0;
        if v < count {
            for (var t = 0u; t < rows; t++) {
                s += sb_part[t * SB_STRIDE + v];
            }
        }
        sums[i] = s;
    }
    workgroupBarrier();
    for (var i = 0u; i < SB_VALUES / SB_THREADS; i++) {
        let v = lid + i * SB_THREADS;
        if v < count {
            sb_part[v] = sums[i];
        }
    }
    workgroupBarrier();
}

// Backward (B <= SB_ROWS): workgroup x owns columns k0 = SB_UNITS*x .. k0+SB_UNITS-1 (< width)
// of every row, and its threads split the sum over r, each reading SB_UNITS adjacent values
// of a row of the matrix:
//   sb_part[b * SB_UNITS + u] = sum_{r < rows} product_lhs(src, b, r) * product_rhs(src, r, k0 + u)
// with the cell file's operand readers (as step_tiled_backward.wgsl's product). Called by every
// thread of the workgroup (it has barriers).
fn small_batch_backward_product(lid: u32, k0: u32, src: u32, batch: u32, rows: u32, width: u32) {
    let B = min(batch, SB_ROWS);
    var acc: array<f32, 16>;
    for (var r = lid; r < rows; r += SB_THREADS) {
        var w: array<f32, 4>;
        for (var u = 0u; u < SB_UNITS; u++) {
            w[u] = product_rhs(src, r, min(k0 + u, width - 1u));
        }
        for (var b = 0u; b < SB_ROWS; b++) {
            if b < B {
                let d = product_lhs(src, b, r);
                for (var u = 0u; u < SB_UNITS; u++) {
                    acc[b * SB_UNITS + u] = fma(d, w[u], acc[b * SB_UNITS + u]);
                }
            }
        }
    }
    for (var v = 0u; v < SB_ROWS * SB_UNITS; v++) {
        sb_partial(lid, v, acc[v]);
    }
    small_batch_reduce(lid, SB_ROWS * SB_UNITS);
}
