// Elman RNN (tanh or relu): one fused dispatch per time step, forward and backward.
//
//   h = act(gx[t, b, j] + sum_k h_prev[b, k] * W_hh[j, k] + b_hh[j]),  act = tanh | relu (RELU flag)
// gx holds x·W_ihᵀ + b_ih. No activations are saved: backward reads h itself from hs
// (tanh' = 1 - h^2, relu' = [h > 0]).
//
// Backward, thread (x, y) owns unit k of batch row b:
//   dh = dy + carry_h + sum_r dg_next[b, r] * W_hh[r, k],  dg[t, b, k] = dh * act'(h)

const G: u32 = 1u;

// ---------------------------------------------------------------------------------------
// forward: bindings 0..5 (no 4). Backward uses 8..15 so that no two globals of the module share a
// binding (some backends declare every global).

@group(0) @binding(0) var<uniform> p: StepParams;
// binding 1, params: weights_f32.wgsl or weights_f16.wgsl (param(i)).
@group(0) @binding(2) var<storage, read> gx: array<f32>;
@group(0) @binding(3) var<storage, read_write> hs: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(16, 16, 1)
fn rnn_step_forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let acc = tiled_forward_product(lid, wid);
    let j = wid.x * T16 + lid.x;
    let b = wid.y * T16 + lid.y;
    if b >= p.batch || j >= p.hidden {
        return;
    }
    rnn_forward_cell(b, j, acc[0]);
}


// The per-unit tail of rnn_step_forward and its direct twin.
fn rnn_forward_cell(b: u32, j: u32, acc: f32) {
    let H = p.hidden;
    var pre = acc + gx[p.gx_off + b * H + j];
    if (p.flags & HAS_BIAS) != 0u {
        pre += param(p.bhh_off + j);
    }
    var h: f32;
    if (p.flags & RELU) != 0u {
        h = max(pre, 0.0);
    } else {
        h = tanh_c(pre);
    }
    hs[p.hout_off + b * H + j] = h;
    y[p.y_off + b * p.y_stride + j] = h;
}

// Without workgroup memory, for CPU adapters: thread = (b, j), index b*H + j.
@compute @workgroup_size(64, 1, 1)
fn rnn_step_forward_direct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
    var acc = 0.0;
    for (var k = 0u; k < S; k++) {
        acc = fma(hs[hb + k], param(w0 + k), acc);
    }
    rnn_forward_cell(b, j, acc);
}

// Small batches (B <= SB_ROWS, see step_small_batch.wgsl): workgroup x owns units
// 4x .. 4x+3 of every row; after the product, thread (b, u) runs the cell of row b, unit u.
@compute @workgroup_size(SB_THREADS, 1, 1)
fn rnn_step_forward_small(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let j0 = wid.x * SB_UNITS;
    small_batch_product(lid, j0);
    if lid < SB_UNITS * SB_ROWS {
        let b = lid / SB_UNITS;
        let u = lid % SB_UNITS;
        if b < p.batch && j0 + u < p.hidden {
            rnn_forward_cell(b, j0 + u, sb_part[sb_index(b, 0u, u)]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// backward

@group(0) @binding(8) var<uniform> q: StepBackParams;
@group(0) @binding(9) var<storage, read> bparams: array<f32>;
@group(0) @binding(10) var<storage, read> dy: array<f32>;
@group(0) @binding(12) var<storage, read> bhs: array<f32>;
@group(0) @binding(13) var<storage, read_write> dg: array<f32>;
@group(0) @binding(14) var<storage, read_write> carry_h: array<f32>;

// The operands of the tiled backward product (step_tiled_backward.wgsl): dg_next through W_hh.
fn product_lhs(src: u32, b: u32, r: u32) -> f32 {
    return dg[q.dgn_off + b * q.hidden + r];
}

fn product_rhs(src: u32, r: u32, k: u32) -> f32 {
    return bparams[q.whh_off + r * q.hidden + k];
}

@compute @workgroup_size(16, 16, 1)
fn rnn_step_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = q.hidden;
    let rows = select(0u, H, (q.flags & HAS_NEXT) != 0u);
    let acc = tiled_backward_product(lid, wid, 0u, q.batch, rows, H);
    let k = wid.x * T16 + lid.x;
    let b = wid.y * T16 + lid.y;
    if b >= q.batch || k >= H {
        return;
    }
    rnn_backward_cell(b, k, acc);
}

// Small batches (B <= SB_ROWS, see step_small_batch.wgsl): workgroup x owns units
// 4x .. 4x+3 of every row; after the product, thread (b, u) runs the tail of row b, unit u.
@compute @workgroup_size(SB_THREADS, 1, 1)
fn rnn_step_backward_small(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = q.hidden;
    let rows = select(0u, H, (q.flags & HAS_NEXT) != 0u);
    let k0 = wid.x * SB_UNITS;
    small_batch_backward_product(lid, k0, 0u, q.batch, rows, H);
    let b = lid / SB_UNITS;
    let k = k0 + lid % SB_UNITS;
    if lid < SB_ROWS * SB_UNITS && b < q.batch && k < H {
        rnn_backward_cell(b, k, sb_part[lid]);
    }
}

// The per-unit tail of rnn_step_backward and its direct twin.
fn rnn_backward_cell(b: u32, k: u32, acc: f32) {
    let H = q.hidden;
    let ci = q.carry_off + b * H + k;
    let dh = acc + dy[q.dy_off + b * q.dy_stride + k] + carry_h[ci];
    let h = bhs[q.hout_off + b * H + k];
    dg[q.dg_off + b * H + k] = rnn_cell_grad(dh, h, (q.flags & RELU) != 0u);
    carry_h[ci] = 0.0;
}

// Without workgroup memory, for CPU adapters: thread = (b, k), index b*H + k.
@compute @workgroup_size(64, 1, 1)
fn rnn_step_backward_direct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = q.hidden;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= q.batch * H {
        return;
    }
    let b = idx / H;
    let k = idx % H;
    var acc = 0.0;
    if (q.flags & HAS_NEXT) != 0u {
        for (var r = 0u; r < H; r++) {
            acc = fma(dg[q.dgn_off + b * H + r], bparams[q.whh_off + r * H + k], acc);
        }
    }
    rnn_backward_cell(b, k, acc);
}
