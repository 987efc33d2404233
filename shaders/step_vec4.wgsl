// The fused step kernels of rnn.wgsl, lstm.wgsl and gru.wgsl for CPU adapters (lavapipe and
// the like), with every buffer bound as `array<vec4<f32>>`: an invocation owns four adjacent
// hidden units (one vec4) of NB batch rows, across all gates, so the recurrent product, the
// cell and every load and store run on whole vec4s. No workgroup memory, no barriers.
// Prefixed with step_common.wgsl (StepParams, StepBackParams, the scalar activations).
//
// Preconditions, checked on the host (StepFamily::choose in src/kernels/step.rs, and the
// offsets again by step_vec4.rs's check_*_vec4): H and the state width are multiples of 4,
// as are every offset and stride; no projection.
//
// Forward, invocation (x, y) owns units j0 = 4x .. 4x+3 of rows b0 = NB*y .. NB*y+NB-1:
//   pre[b, gH + j] = gx[t, b, gH + j] + sum_k h_prev[b, k] * W_hh[gH + j, k] (+ b_hh)
// Backward, invocation (x, y) owns units k0 = 4x .. 4x+3 of rows b0 .. b0+NB-1:
//   dh[b, k] = dy[t, b, k] + carry_h[b, k] + sum_r dg_rec[b, r] * W_hh[r, k]
// where dg_rec is the gate gradient of the step processed before (HAS_NEXT) that feeds the
// recurrent product: dg for the RNN and the LSTM, dg_h for the GRU.
//
// The products (forward_product, backward_product) are prepended by the shader registry
// (src/gpu/kernel.rs) with NB: step_vec4_product.wgsl, where each invocation loads its own
// rows (NB = 4, or 1 for a batch of one), or step_vec4_product_sg.wgsl, where the 8 lanes of
// a subgroup share 8 rows (NB = 8). This file holds the cells, built once for each. Rows past
// the batch store nothing; units past H take part in the product (the subgroup build needs
// every lane) and store nothing.

// Gate rows per hidden unit of each cell.
const G_RNN: u32 = 1u;
const G_LSTM: u32 = 4u;
const G_GRU: u32 = 3u;

// ---------------------------------------------------------------------------------------
// forward: bindings 0..6, as in the scalar kernels

@group(0) @binding(0) var<uniform> p: StepParams;
// binding 1, params: weights_f32_vec4.wgsl or weights_f16_vec4.wgsl (param4(q)).
@group(0) @binding(2) var<storage, read> gx: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> hs: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> cs: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> acts: array<vec4<f32>>;

fn sigmoid4(x: vec4<f32>) -> vec4<f32> {
    return 1.0 / (1.0 + exp(-x));
}

fn tanh4(x: vec4<f32>) -> vec4<f32> {
    return tanh(clamp(x, vec4<f32>(-15.0), vec4<f32>(15.0)));
}

// b_hh of gate g for units j0..j0+3, or zero without a bias.
fn bias_hh(sp: StepParams, g: u32, j0: u32) -> vec4<f32> {
    if (sp.flags & HAS_BIAS) == 0u {
        return vec4<f32>(0.0);
    }
    return param4((sp.bhh_off + g * sp.hidden + j0) / 4u);
}

// One step of the RNN for units j0..j0+3 of rows b0..b0+NB-1.
fn rnn_forward4(sp: StepParams, j0: u32, b0: u32) {
    let H = sp.hidden;
    if b0 >= sp.batch {
        return;
    }
    // The product first: in the subgroup build every lane of a subgroup takes part in it.
    let acc = forward_product(sp, b0, j0, G_RNN);
    if j0 >= H {
        return;
    }
    let bh = bias_hh(sp, 0u, j0);
    for (var r = 0u; r < NB; r++) {
        let b = b0 + r;
        if b < sp.batch {
            let pre = acc[r][0] + bh + gx[(sp.gx_off + b * H + j0) / 4u];
            var h: vec4<f32>;
            if (sp.flags & RELU) != 0u {
                h = max(pre, vec4<f32>(0.0));
            } else {
                h = tanh4(pre);
            }
            hs[(sp.hout_off + b * H + j0) / 4u] = h;
            y[(sp.y_off + b * sp.y_stride + j0) / 4u] = h;
        }
    }
}

// One step of the LSTM for units j0..j0+3 of rows b0..b0+NB-1.
fn lstm_forward4(sp: StepParams, j0: u32, b0: u32) {
    let H = sp.hidden;
    let GH = G_LSTM * H;
    if b0 >= sp.batch {
        return;
    }
    // The product first: in the subgroup build every lane of a subgroup takes part in it.
    let acc = forward_product(sp, b0, j0, G_LSTM);
    if j0 >= H {
        return;
    }
    var bh: array<vec4<f32>, 4>;
    for (var g = 0u; g < G_LSTM; g++) {
        bh[g] = bias_hh(sp, g, j0);
    }
    for (var r = 0u; r < NB; r++) {
        let b = b0 + r;
        if b < sp.batch {
            let xb = (sp.gx_off + b * GH + j0) / 4u;
            let hq = H / 4u;
            let i = sigmoid4(acc[r][0] + bh[0] + gx[xb]);
            let f = sigmoid4(acc[r][1] + bh[1] + gx[xb + hq]);
            let gg = tanh4(acc[r][2] + bh[2] + gx[xb + 2u * hq]);
            let o = sigmoid4(acc[r][3] + bh[3] + gx[xb + 3u * hq]);
            let c = f * cs[(sp.cprev_off + b * H + j0) / 4u] + i * gg;
            let h = o * tanh4(c);
            cs[(sp.cout_off + b * H + j0) / 4u] = c;
            hs[(sp.hout_off + b * H + j0) / 4u] = h;
            y[(sp.y_off + b * sp.y_stride + j0) / 4u] = h;
            if (sp.flags & SAVE) != 0u {
                let a = (sp.act_off + b * GH + j0) / 4u;
                acts[a] = i;
                acts[a + hq] = f;
                acts[a + 2u * hq] = gg;
                acts[a + 3u * hq] = o;
            }
        }
    }
}

// One step of the GRU for units j0..j0+3 of rows b0..b0+NB-1.
fn gru_forward4(sp: StepParams, j0: u32, b0: u32) {
    let H = sp.hidden;
    let GH = G_GRU * H;
    if b0 >= sp.batch {
        return;
    }
    // The product first: in the subgroup build every lane of a subgroup takes part in it.
    let acc = forward_product(sp, b0, j0, G_GRU);
    if j0 >= H {
        return;
    }
    var bh: array<vec4<f32>, 3>;
    for (var g = 0u; g < G_GRU; g++) {
        bh[g] = bias_hh(sp, g, j0);
    }
    for (var r = 0u; r < NB; r++) {
        let b = b0 + r;
        if b < sp.batch {
            let xb = (sp.gx_off + b * GH + j0) / 4u;
            let hq = H / 4u;
            // b_hn stays inside the reset product (PyTorch's form).
            let ghn = acc[r][2] + bh[2];
            let rg = sigmoid4(gx[xb] + acc[r][0] + bh[0]);
            let z = sigmoid4(gx[xb + hq] + acc[r][1] + bh[1]);
            let n = tanh4(gx[xb + 2u * hq] + rg * ghn);
            let h = (1.0 - z) * n + z * hs[(sp.hprev_off + b * H + j0) / 4u];
            hs[(sp.hout_off + b * H + j0) / 4u] = h;
            y[(sp.y_off + b * sp.y_stride + j0) / 4u] = h;
            if (sp.flags & SAVE) != 0u {
                let a = (sp.act_off + b * 4u * H + j0) / 4u;
                acts[a] = rg;
                acts[a + hq] = z;
                acts[a + 2u * hq] = n;
                acts[a + 3u * hq] = ghn;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// backward: bindings 8..15, as in the scalar kernels except 13 and 15 for the GRU (13 is the
// gradient that feeds the recurrent product, dg_h; 15 is dg_x).

@group(0) @binding(8) var<uniform> q: StepBackParams;
@group(0) @binding(9) var<storage, read> bparams: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> bacts: array<vec4<f32>>;
// LSTM: the cell states; RNN, GRU: the hidden states.
@group(0) @binding(12) var<storage, read> bstates: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> dg_rec: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> carry_h: array<vec4<f32>>;
// LSTM: carry_c; GRU: dg_x.
@group(0) @binding(15) var<storage, read_write> aux: array<vec4<f32>>;

// dy + carry_h for row b, units k0..k0+3.
fn dh_in(sq: StepBackParams, b: u32, k0: u32) -> vec4<f32> {
    return dy[(sq.dy_off + b * sq.dy_stride + k0) / 4u] + carry_h[(sq.carry_off + b * sq.hidden + k0) / 4u];
}

// One backward step of the RNN for units k0..k0+3 of rows b0..b0+NB-1.
fn rnn_backward4(sq: StepBackParams, k0: u32, b0: u32) {
    let H = sq.hidden;
    if b0 >= sq.batch {
        return;
    }
    let acc = backward_product(sq, b0, k0, G_RNN * H);
    if k0 >= H {
        return;
    }
    for (var r = 0u; r < NB; r++) {
        let b = b0 + r;
        if b < sq.batch {
            let dh = acc[r] + dh_in(sq, b, k0);
            let h = bstates[(sq.hout_off + b * H + k0) / 4u];
            var da: vec4<f32>;
            if (sq.flags & RELU) != 0u {
                da = select(vec4<f32>(0.0), dh, h > vec4<f32>(0.0));
            } else {
                da = dh * (1.0 - h * h);
            }
            dg_rec[(sq.dg_off + b * H + k0) / 4u] = da;
            carry_h[(sq.carry_off + b * H + k0) / 4u] = vec4<f32>(0.0);
        }
    }
}

// One backward step of the LSTM for units k0..k0+3 of rows b0..b0+NB-1.
fn lstm_backward4(sq: StepBackParams, k0: u32, b0: u32) {
    let H = sq.hidden;
    let GH = G_LSTM * H;
    let hq = H / 4u;
    if b0 >= sq.batch {
        return;
    }
    let acc = backward_product(sq, b0, k0, GH);
    if k0 >= H {
        return;
    }
    for (var r = 0u; r < NB; r++) {
        let b = b0 + r;
        if b < sq.batch {
            let ci = (sq.carry_off + b * H + k0) / 4u;
            let dh = acc[r] + dh_in(sq, b, k0);
            let a = (sq.act_off + b * GH + k0) / 4u;
            let i = bacts[a];
            let f = bacts[a + hq];
            let gg = bacts[a + 2u * hq];
            let o = bacts[a + 3u * hq];
            let c = bstates[(sq.cout_off + b * H + k0) / 4u];
            let c_prev = bstates[(sq.cprev_off + b * H + k0) / 4u];
            let tc = tanh4(c);
            let dc = aux[ci] + dh * o * (1.0 - tc * tc);
            let d = (sq.dg_off + b * GH + k0) / 4u;
            dg_rec[d] = dc * gg * i * (1.0 - i);
            dg_rec[d + hq] = dc * c_prev * f * (1.0 - f);
            dg_rec[d + 2u * hq] = dc * i * (1.0 - gg * gg);
            dg_rec[d + 3u * hq] = dh * tc * o * (1.0 - o);
            aux[ci] = dc * f;
            carry_h[ci] = vec4<f32>(0.0);
        }
    }
}

// One backward step of the GRU for units k0..k0+3 of rows b0..b0+NB-1.
fn gru_backward4(sq: StepBackParams, k0: u32, b0: u32) {
    let H = sq.hidden;
    let GH = G_GRU * H;
    let hq = H / 4u;
    if b0 >= sq.batch {
        return;
    }
    let acc = backward_product(sq, b0, k0, GH);
    if k0 >= H {
        return;
    }
    for (var r = 0u; r < NB; r++) {
        let b = b0 + r;
        if b < sq.batch {
            let ci = (sq.carry_off + b * H + k0) / 4u;
            let dh = acc[r] + dh_in(sq, b, k0);
            let a = (sq.act_off + b * 4u * H + k0) / 4u;
            let rg = bacts[a];
            let z = bacts[a + hq];
            let n = bacts[a + 2u * hq];
            let ghn = bacts[a + 3u * hq];
            let h_prev = bstates[(sq.hprev_off + b * H + k0) / 4u];
            let dan = dh * (1.0 - z) * (1.0 - n * n);
            let dar = dan * ghn * rg * (1.0 - rg);
            let daz = dh * (h_prev - n) * z * (1.0 - z);
            let d = (sq.dg_off + b * GH + k0) / 4u;
            aux[d] = dar;
            aux[d + hq] = daz;
            aux[d + 2u * hq] = dan;
            dg_rec[d] = dar;
            dg_rec[d + hq] = daz;
            dg_rec[d + 2u * hq] = dan * rg;
            carry_h[ci] = dh * z;
        }
    }
}

// ---------------------------------------------------------------------------------------
// entries: one step per dispatch (grid: units/4 x rows/NB; a workgroup of 8 invocations is
// one subgroup of the subgroup build). The plain builds add the whole-sequence entries
// (step_vec4_sequence.wgsl).

@compute @workgroup_size(8, 1, 1)
fn rnn_step_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    rnn_forward4(p, gid.x * 4u, gid.y * NB);
}

@compute @workgroup_size(8, 1, 1)
fn lstm_step_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    lstm_forward4(p, gid.x * 4u, gid.y * NB);
}

@compute @workgroup_size(8, 1, 1)
fn gru_step_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    gru_forward4(p, gid.x * 4u, gid.y * NB);
}

@compute @workgroup_size(8, 1, 1)
fn rnn_step_backward_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    rnn_backward4(q, gid.x * 4u, gid.y * NB);
}

@compute @workgroup_size(8, 1, 1)
fn lstm_step_backward_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    lstm_backward4(q, gid.x * 4u, gid.y * NB);
}

@compute @workgroup_size(8, 1, 1)
fn gru_step_backward_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    gru_backward4(q, gid.x * 4u, gid.y * NB);
}
