// GRU: one fused dispatch per time step, forward and backward (PyTorch's form).
//
// Gates [r | z | n]; b_hn stays inside the reset product:
//   gh[g] = sum_k h_prev[b, k] * W_hh[gH + j, k] + b_hh[gH + j]
//   r = sigmoid(gx_r + gh_r), z = sigmoid(gx_z + gh_z), n = tanh(gx_n + r * gh_n)
//   h = (1 - z) * n + z * h_prev
// gx holds x·W_ihᵀ + b_ih (b_hh is added here, because b_hn must stay inside r * (...)).
// Thread (x, y) of a 16x16 workgroup owns unit j of batch row b across the three gates.
// When SAVE, acts[t, b, 4H] keeps (r, z, n, gh_n) for backward.
//
// Backward, thread (x, y) owns unit k of batch row b:
//   dh = dy + carry_h + sum_r dgh_next[b, r] * W_hh[r, k]     (carry_h = dh_next * z_next)
//   dn = dh (1 - z), dz = dh (h_prev - n), da_n = dn (1 - n^2), dr = da_n gh_n
//   dgx = [dr r(1-r), dz z(1-z), da_n]   (gradient of the input-side pre-activations)
//   dgh = [dr r(1-r), dz z(1-z), da_n r] (gradient of the hidden-side pre-activations)
// dgx feeds dW_ih, db_ih and dx; dgh feeds dW_hh, db_hh and the next step's dh.

const G: u32 = 3u;

// ---------------------------------------------------------------------------------------
// forward: bindings 0..6 (no 4). Backward uses 8..15 so that no two globals of the module share a
// binding (some backends declare every global).

@group(0) @binding(0) var<uniform> p: StepParams;
// binding 1, params: weights_f32.wgsl or weights_f16.wgsl (param(i)).
@group(0) @binding(2) var<storage, read> gx: array<f32>;
@group(0) @binding(3) var<storage, read_write> hs: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> acts: array<f32>;

@compute @workgroup_size(16, 16, 1)
fn gru_step_forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let acc = tiled_forward_product(lid, wid);
    let j = wid.x * T16 + lid.x;
    let b = wid.y * T16 + lid.y;
    if b >= p.batch || j >= p.hidden {
        return;
    }
    gru_forward_cell(b, j, array<f32, 3>(acc[0], acc[1], acc[2]));
}


// The per-unit tail of gru_step_forward and its direct twin.
fn gru_forward_cell(b: u32, j: u32, acc_in: array<f32, 3>) {
    let H = p.hidden;
    var acc = acc_in;
    let GH = G * H;
    if (p.flags & HAS_BIAS) != 0u {
        for (var g = 0u; g < G; g++) {
            acc[g] += param(p.bhh_off + g * H + j);
        }
    }
    let xb = p.gx_off + b * GH + j;
    let r = sigmoid(gx[xb] + acc[0]);
    let z = sigmoid(gx[xb + H] + acc[1]);
    let n = tanh_c(gx[xb + 2u * H] + r * acc[2]);
    let h_prev = hs[p.hprev_off + b * H + j];
    let h = (1.0 - z) * n + z * h_prev;
    hs[p.hout_off + b * H + j] = h;
    y[p.y_off + b * p.y_stride + j] = h;
    if (p.flags & SAVE) != 0u {
        let a = p.act_off + b * 4u * H + j;
        acts[a] = r;
        acts[a + H] = z;
        acts[a + 2u * H] = n;
        acts[a + 3u * H] = acc[2];
    }
}

// Without workgroup memory, for CPU adapters: thread = (b, j), index b*H + j.
@compute @workgroup_size(64, 1, 1)
fn gru_step_forward_direct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
    var a = vec3<f32>(0.0);
    for (var k = 0u; k < S; k++) {
        let w = vec3<f32>(param(w0 + k), param(w0 + ws + k), param(w0 + 2u * ws + k));
        a = fma(vec3<f32>(hs[hb + k]), w, a);
    }
    gru_forward_cell(b, j, array<f32, 3>(a.x, a.y, a.z));
}

// Small batches (B <= SB_ROWS, see step_small_batch.wgsl): workgroup x owns units
// 4x .. 4x+3 of every row; after the product, thread (b, u) runs the cell of row b, unit u.
@compute @workgroup_size(SB_THREADS, 1, 1)
fn gru_step_forward_small(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let j0 = wid.x * SB_UNITS;
    small_batch_product(lid, j0);
    if lid < SB_UNITS * SB_ROWS {
        let b = lid / SB_UNITS;
        let u = lid % SB_UNITS;
        if b < p.batch && j0 + u < p.hidden {
            var acc: array<f32, 3>;
            for (var g = 0u; g < G; g++) {
                acc[g] = sb_part[sb_index(b, g, u)];
            }
            gru_forward_cell(b, j0 + u, acc);
        }
    }
}

// ---------------------------------------------------------------------------------------
// backward

@group(0) @binding(8) var<uniform> q: StepBackParams;
@group(0) @binding(9) var<storage, read> bparams: array<f32>;
@group(0) @binding(10) var<storage, read> dy: array<f32>;
@group(0) @binding(11) var<storage, read> bacts: array<f32>;
@group(0) @binding(12) var<storage, read> bhs: array<f32>;
@group(0) @binding(13) var<storage, read_write> dgx: array<f32>;
@group(0) @binding(14) var<storage, read_write> carry_h: array<f32>;
@group(0) @binding(15) var<storage, read_write> dgh: array<f32>;

// The operands of the tiled backward product (step_tiled_backward.wgsl): dg_h of the step processed
// before through W_hh.
fn product_lhs(src: u32, b: u32, r: u32) -> f32 {
    return dgh[q.dgn_off + b * G * q.hidden + r];
}

fn product_rhs(src: u32, r: u32, k: u32) -> f32 {
    return bparams[q.whh_off + r * q.hidden + k];
}

@compute @workgroup_size(16, 16, 1)
fn gru_step_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = q.hidden;
    let rows = select(0u, G * H, (q.flags & HAS_NEXT) != 0u);
    let acc = tiled_backward_product(lid, wid, 0u, q.batch, rows, H);
    let k = wid.x * T16 + lid.x;
    let b = wid.y * T16 + lid.y;
    if b >= q.batch || k >= H {
        return;
    }
    gru_backward_cell(b, k, acc);
}

// Small batches (B <= SB_ROWS, see step_small_batch.wgsl): workgroup x owns units
// 4x .. 4x+3 of every row; after the product, thread (b, u) runs the tail of row b, unit u.
@compute @workgroup_size(SB_THREADS, 1, 1)
fn gru_step_backward_small(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let H = q.hidden;
    let rows = select(0u, G * H, (q.flags & HAS_NEXT) != 0u);
    let k0 = wid.x * SB_UNITS;
    small_batch_backward_product(lid, k0, 0u, q.batch, rows, H);
    let b = lid / SB_UNITS;
    let k = k0 + lid % SB_UNITS;
    if lid < SB_ROWS * SB_UNITS && b < q.batch && k < H {
        gru_backward_cell(b, k, sb_part[lid]);
    }
}

// The per-unit tail of gru_step_backward and its direct twin.
fn gru_backward_cell(b: u32, k: u32, acc: f32) {
    let H = q.hidden;
    let GH = G * H;
    let ci = q.carry_off + b * H + k;
    let dh = acc + dy[q.dy_off + b * q.dy_stride + k] + carry_h[ci];
    let a = q.act_off + b * 4u * H + k;
    let act = vec4<f32>(bacts[a], bacts[a + H], bacts[a + 2u * H], bacts[a + 3u * H]);
    let da = gru_cell_grad(dh, act, bhs[q.hprev_off + b * H + k]);
    let d = q.dg_off + b * GH + k;
    dgx[d] = da.x;
    dgx[d + H] = da.y;
    dgx[d + 2u * H] = da.z;
    dgh[d] = da.x;
    dgh[d + H] = da.y;
    dgh[d + 2u * H] = da.z * act.x;
    carry_h[ci] = dh * act.y;
}

// Without workgroup memory, for CPU adapters: thread = (b, k), index b*H + k.
@compute @workgroup_size(64, 1, 1)
fn gru_step_backward_direct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = q.hidden;
    let GH = G * H;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= q.batch * H {
        return;
    }
    let b = idx / H;
    let k = idx % H;
    var acc = 0.0;
    if (q.flags & HAS_NEXT) != 0u {
        for (var r = 0u; r < GH; r++) {
            acc = fma(dgh[q.dgn_off + b * GH + r], bparams[q.whh_off + r * H + k], acc);
        }
    }
    gru_backward_cell(b, k, acc);
}
