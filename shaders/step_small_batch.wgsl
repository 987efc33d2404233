// The recurrent product of a forward step for small batches (B <= SB_ROWS), shared by
// rnn.wgsl, lstm.wgsl and gru.wgsl (prepended to each after step_common.wgsl by the shader
// registry, src/kernels/mod.rs; it reads their forward globals `p`, `hs`, the weights through `param` and their
// gate count `G`).
//
// With B = 1 the 16x16 tiles of the tiled step kernels keep 15 of 16 thread rows idle and
// spread one matrix-vector product over only H/16 workgroups. Here a workgroup of SB_THREADS
// threads owns SB_UNITS hidden units across all gates and every batch row, and splits the
// sum over k between its threads (adjacent threads read adjacent elements of a W_hh row);
// each thread keeps its partial sums of all (row, gate, unit) in registers, then one pass
// through workgroup memory adds the threads' partials, so H / SB_UNITS workgroups run a step.
//
//   acc[b, g, u] = sum_k h_prev[b, k] * W_hh[g*H + j0 + u, k]

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
        sb_part[lid * SB_STRIDE + v] = acc[v];
    }
    workgroupBarrier();
    // Thread t adds up values t, t + SB_THREADS, ... over all threads, in a fixed order.
    var sums: array<f32, 2>;
    for (var i = 0u; i < SB_VALUES / SB_THREADS; i++) {
        let v = lid + i * SB_THREADS;
        var s = 0.0;
        for (var t = 0u; t < SB_THREADS; t++) {
            s += sb_part[t * SB_STRIDE + v];
        }
        sums[i] = s;
    }
    workgroupBarrier();
    for (var i = 0u; i < SB_VALUES / SB_THREADS; i++) {
        sb_part[lid + i * SB_THREADS] = sums[i];
    }
    workgroupBarrier();
}
