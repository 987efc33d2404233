// LSTM: one fused dispatch per time step, forward and backward (PyTorch's gate order).
//
// Forward, thread (x, y) of a 16x16 workgroup owns hidden unit j = 16*wid.x + x of batch row
// b = 16*wid.y + y across all four gates, so the recurrent product and the cell update happen
// in one pass with no second dispatch:
//   pre[g] = gx[t, b, gH + j] + sum_k h_prev[b, k] * W_hh[gH + j, k] + b_hh[gH + j]
//   i, f, o = sigmoid(pre_i, pre_f, pre_o), g = tanh(pre_g)
//   c = f * c_prev + i * g, h = o * tanh(c)
// gx already holds x·W_ihᵀ + b_ih for every step (one GEMM before the loop).
// W_hh and b_hh are read from the flat parameter buffer at whh_off / bhh_off.
// When SAVE, acts[t, b, gH + j] keeps (i, f, g, o) for backward; c lives in cs per step.
//
// Backward, thread (x, y) owns unit k of batch row b:
//   dh[b, k] = dy[t, b, k] + carry_h[b, k] + sum_r dg_next[b, r] * W_hh[r, k]   (r < 4H)
// where dg_next is the gate gradient of the step processed just before (t+1 forward), then
// the gate gradients of unit k are formed from the saved activations and written to dg[t],
// and carry_c = dc * f is kept for the next step. carry_h/carry_c hold dhn/dcn at the first
// step processed and end as the carried part of dh0/dc0 (the W_hh part of dh0 is one GEMM
// after the loop).

const G: u32 = 4u;

// ---------------------------------------------------------------------------------------
// forward: bindings 0..6. Backward uses 8..15 so that no two globals of the module share a
// binding (some backends declare every global).

@group(0) @binding(0) var<uniform> p: StepParams;
// binding 1, params: weights_f32.wgsl or weights_f16.wgsl (param(i)).
@group(0) @binding(2) var<storage, read> gx: array<f32>;
@group(0) @binding(3) var<storage, read_write> hs: array<f32>;
@group(0) @binding(4) var<storage, read_write> cs: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> acts: array<f32>;

// [G][16 units][17] and [16 batch][17]; the 17th column avoids bank conflicts.
@compute @workgroup_size(16, 16, 1)
fn lstm_step_forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let acc = tiled_forward_product(lid, wid);
    let j = wid.x * T16 + lid.x;
    let b = wid.y * T16 + lid.y;
    if b >= p.batch || j >= p.hidden {
        return;
    }
    lstm_forward_cell(b, j, acc);
}


// The per-unit tail of lstm_step_forward and its direct twin.
fn lstm_forward_cell(b: u32, j: u32, acc: array<f32, 4>) {
    let H = p.hidden;
    let GH = G * H;
    let has_bias = (p.flags & HAS_BIAS) != 0u;
    var pre: array<f32, 4>;
    for (var g = 0u; g < G; g++) {
        var v = acc[g] + gx[p.gx_off + b * GH + g * H + j];
        if has_bias {
            v += param(p.bhh_off + g * H + j);
        }
        pre[g] = v;
    }
    let i = sigmoid(pre[0]);
    let f = sigmoid(pre[1]);
    let gg = tanh_c(pre[2]);
    let o = sigmoid(pre[3]);
    let c = f * cs[p.cprev_off + b * H + j] + i * gg;
    let h = o * tanh_c(c);
    cs[p.cout_off + b * H + j] = c;
    // With PROJ, h here is the unprojected o * tanh(c): it goes to y (bound to the r buffer)
    // and a GEMM with W_hr writes the P-wide state into hs.
    if (p.flags & PROJ) == 0u {
        hs[p.hout_off + b * H + j] = h;
    }
    y[p.y_off + b * p.y_stride + j] = h;
    if (p.flags & SAVE) != 0u {
        let a = p.act_off + b * GH + j;
        acts[a] = i;
        acts[a + H] = f;
        acts[a + 2u * H] = gg;
        acts[a + 3u * H] = o;
    }
}

// Without workgroup memory, for CPU adapters: thread = (b, j), index b*H + j, streaming its
// own rows of W_hh (contiguous in memory) against h_prev[b].
@compute @workgroup_size(64, 1, 1)
fn lstm_step_forward_direct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = p.hidden;
    let S = p.state;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= p.batch * H {
        return;
    }
    let b = idx / H;
    let j = idx % H;
    let hb = p.hprev_off + b * S;
    let w0 = p.whh_off + j * S;
    let ws = H * S;
    var a = vec4<f32>(0.0);
    for (var k = 0u; k < S; k++) {
        let w = vec4<f32>(param(w0 + k), param(w0 + ws + k), param(w0 + 2u * ws + k), param(w0 + 3u * ws + k));
        a = fma(vec4<f32>(hs[hb + k]), w, a);
    }
    lstm_forward_cell(b, j, array<f32, 4>(a.x, a.y, a.z, a.w));
}

// Small batches (B <= SB_ROWS, see step_small_batch.wgsl): workgroup x owns units
// 4x .. 4x+3 of every row; after the product, thread (b, u) runs the cell of row b, unit u.
@compute @workgroup_size(SB_THREADS, 1, 1)
fn lstm_step_forward_small(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let j0 = wid.x * SB_UNITS;
    small_batch_product(lid, j0);
    if lid < SB_UNITS * SB_ROWS {
        let b = lid / SB_UNITS;
        let u = lid % SB_UNITS;
        if b < p.batch && j0 + u < p.hidden {
            var acc: array<f32, 4>;
            for (var g = 0u; g < G; g++) {
                acc[g] = sb_part[sb_index(b, g, u)];
            }
            lstm_forward_cell(b, j0 + u, acc);
        }
    }
}

// ---------------------------------------------------------------------------------------
// backward

@group(0) @binding(8) var<uniform> q: StepBackParams;
@group(0) @binding(9) var<storage, read> bparams: array<f32>;
@group(0) @binding(10) var<storage, read> dy: array<f32>;
@group(0) @binding(11) var<storage, read> bacts: array<f32>;
@group(0) @binding(12) var<storage, read> bcs: array<f32>;
@group(0) @binding(13) var<storage, read_write> dg: array<f32>;
@group(0) @binding(14) var<storage, read_write> carry_h: array<f32>;
@group(0) @binding(15) var<storage, read_write> carry_c: array<f32>;

// The operands of the tiled backward product (step_tiled_backward.wgsl), by `src`: LHS_DG,
// dg_next through W_hh; LHS_DH (PROJ), the step's dh (bound as dy) through W_hr. Both
// matrices are H wide and come from the flat parameters.
const LHS_DG: u32 = 0u;
const LHS_DH: u32 = 1u;

fn product_lhs(src: u32, b: u32, r: u32) -> f32 {
    if src == LHS_DH {
        return dy[q.dy_off + b * q.dy_stride + r];
    }
    return dg[q.dgn_off + b * G * q.hidden + r];
}

fn product_rhs(src: u32, r: u32, k: u32) -> f32 {
    return bparams[q.whh_off + r * q.hidden + k];
}

// (src, rows) of a step's recurrent product: dg_next (4H rows) through W_hh, or with PROJ the
// step's dh (P rows, from the dy binding) through W_hr; none at the first step processed.
fn backward_operands() -> vec2<u32> {
    if (q.flags & PROJ) != 0u {
        return vec2<u32>(LHS_DH, q.grows);
    }
    return vec2<u32>(LHS_DG, select(0u, G * q.hidden, (q.flags & HAS_NEXT) != 0u));
}

@compute @workgroup_size(16, 16, 1)
fn lstm_step_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = q.hidden;
    let op = backward_operands();
    let acc = tiled_backward_product(lid, wid, op.x, q.batch, op.y, H);
    let k = wid.x * T16 + lid.x;
    let b = wid.y * T16 + lid.y;
    if b >= q.batch || k >= H {
        return;
    }
    lstm_backward_cell(b, k, acc);
}

// Small batches (B <= SB_ROWS, see step_small_batch.wgsl): workgroup x owns units
// 4x .. 4x+3 of every row; after the product (the same rows as lstm_step_backward's), thread
// (b, u) runs the tail of row b, unit u.
@compute @workgroup_size(SB_THREADS, 1, 1)
fn lstm_step_backward_small(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = q.hidden;
    let op = backward_operands();
    let k0 = wid.x * SB_UNITS;
    small_batch_backward_product(lid, k0, op.x, q.batch, op.y, H);
    let b = lid / SB_UNITS;
    let k = k0 + lid % SB_UNITS;
    if lid < SB_ROWS * SB_UNITS && b < q.batch && k < H {
        lstm_backward_cell(b, k, sb_part[lid]);
    }
}


// The per-unit tail of lstm_step_backward and its direct twin.
fn lstm_backward_cell(b: u32, k: u32, acc: f32) {
    let H = q.hidden;
    let GH = G * H;
    let proj = (q.flags & PROJ) != 0u;
    let ci = q.carry_off + b * H + k;
    var dh = acc;
    if !proj {
        dh += dy[q.dy_off + b * q.dy_stride + k] + carry_h[ci];
    }
    let a = q.act_off + b * GH + k;
    let act = vec4<f32>(bacts[a], bacts[a + H], bacts[a + 2u * H], bacts[a + 3u * H]);
    let c = bcs[q.cout_off + b * H + k];
    let c_prev = bcs[q.cprev_off + b * H + k];
    let g = lstm_cell_grad(dh, carry_c[ci], act, c, c_prev);
    let d = q.dg_off + b * GH + k;
    dg[d] = g.dg.x;
    dg[d + H] = g.dg.y;
    dg[d + 2u * H] = g.dg.z;
    dg[d + 3u * H] = g.dg.w;
    carry_c[ci] = g.dc * act.y;
    if !proj {
        carry_h[ci] = 0.0;
    }
}

// Without workgroup memory, for CPU adapters: thread = (b, k), index b*H + k.
@compute @workgroup_size(64, 1, 1)
fn lstm_step_backward_direct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = q.hidden;
    let GH = G * H;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= q.batch * H {
        return;
    }
    let b = idx / H;
    let k = idx % H;
    let proj = (q.flags & PROJ) != 0u;
    var acc = 0.0;
    if proj {
        for (var r = 0u; r < q.grows; r++) {
            acc = fma(dy[q.dy_off + b * q.dy_stride + r], bparams[q.whh_off + r * H + k], acc);
        }
    } else if (q.flags & HAS_NEXT) != 0u {
        for (var r = 0u; r < GH; r++) {
            acc = fma(dg[q.dgn_off + b * GH + r], bparams[q.whh_off + r * H + k], acc);
        }
    }
    lstm_backward_cell(b, k, acc);
}
