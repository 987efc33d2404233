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
// the product of the rows of h_prev and of W_hh (both contiguous along k) as dot products of
// vec4s: per 4 k, 4*G vec4s of W_hh and NB of h_prev, 16*G*NB FMAs.
//
// Backward, invocation (x, y) owns units k0 = 4x .. 4x+3 of rows b0 .. b0+NB-1:
//   dh[b, k] = dy[t, b, k] + carry_h[b, k] + sum_r dg_rec[b, r] * W_hh[r, k]
// where dg_rec is the gate gradient of the step processed before (HAS_NEXT) that feeds the
// recurrent product: dg for the RNN and the LSTM, dg_h for the GRU. Per 4 r: four vec4s of
// W_hh (rows r, adjacent across x) and NB of dg_rec, 16*NB FMAs.
//
// Rows past the batch are skipped in the products and store nothing.

// NB, the batch rows an invocation owns (4, or 1 for a batch of one), is prepended by the
// shader registry (src/kernels/mod.rs): this file is built once for each.
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

// acc[r][g]: units j0..j0+3 of gate g for row b0 + r, over the first `ng` gates.
fn forward_product(sp: StepParams, b0: u32, j0: u32, ng: u32) -> array<array<vec4<f32>, 4>, NB> {
    let S = sp.state;
    let H = sp.hidden;
    let ks = S / 4u;
    let rows = min(NB, sp.batch - b0);
    var hrow: array<u32, NB>;
    for (var r = 0u; r < NB; r++) {
        hrow[r] = (sp.hprev_off + min(b0 + r, sp.batch - 1u) * S) / 4u;
    }
    // W_hh row of gate g, unit j0 + u: (whh_off + (g*H + j0 + u) * S) / 4.
    let w0 = (sp.whh_off + j0 * S) / 4u;
    let gstride = H * ks;
    var acc: array<array<vec4<f32>, 4>, NB>;
    for (var kq = 0u; kq < ks; kq++) {
        var hv: array<vec4<f32>, NB>;
        for (var r = 0u; r < NB; r++) {
            hv[r] = hs[hrow[r] + kq];
        }
        for (var g = 0u; g < 4u; g++) {
            if g < ng {
                let wi = w0 + g * gstride + kq;
                let wa = param4(wi);
                let wb = param4(wi + ks);
                let wc = param4(wi + 2u * ks);
                let wd = param4(wi + 3u * ks);
                for (var r = 0u; r < NB; r++) {
                    // Rows past the batch are skipped (B < NB: small batches pay for their
                    // own rows only).
                    if r < rows {
                        acc[r][g] += vec4<f32>(dot(hv[r], wa), dot(hv[r], wb), dot(hv[r], wc), dot(hv[r], wd));
                    }
                }
            }
        }
    }
    return acc;
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
    if j0 >= H || b0 >= sp.batch {
        return;
    }
    let acc = forward_product(sp, b0, j0, G_RNN);
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
    if j0 >= H || b0 >= sp.batch {
        return;
    }
    let acc = forward_product(sp, b0, j0, G_LSTM);
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
    if j0 >= H || b0 >= sp.batch {
        return;
    }
    let acc = forward_product(sp, b0, j0, G_GRU);
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

// dh[b0 + r, k0..k0+3] from the previous step's gate gradients (`rows` of them per batch
// row), zero at the first step processed.
fn backward_product(sq: StepBackParams, b0: u32, k0: u32, rows: u32) -> array<vec4<f32>, NB> {
    var acc: array<vec4<f32>, NB>;
    if (sq.flags & HAS_NEXT) == 0u {
        return acc;
    }
    let H = sq.hidden;
    let hq = H / 4u;
    let rq = rows / 4u;
    let nrows = min(NB, sq.batch - b0);
    var drow: array<u32, NB>;
    for (var r = 0u; r < NB; r++) {
        drow[r] = (sq.dgn_off + min(b0 + r, sq.batch - 1u) * rows) / 4u;
    }
    var wi = (sq.whh_off + k0) / 4u;
    for (var s = 0u; s < rq; s++) {
        let w0 = bparams[wi];
        let w1 = bparams[wi + hq];
        let w2 = bparams[wi + 2u * hq];
        let w3 = bparams[wi + 3u * hq];
        wi += 4u * hq;
        for (var r = 0u; r < NB; r++) {
            if r < nrows {
                let d = dg_rec[drow[r] + s];
                acc[r] = fma(vec4<f32>(d.x), w0, acc[r]);
                acc[r] = fma(vec4<f32>(d.y), w1, acc[r]);
                acc[r] = fma(vec4<f32>(d.z), w2, acc[r]);
                acc[r] = fma(vec4<f32>(d.w), w3, acc[r]);
            }
        }
    }
    return acc;
}

// dy + carry_h for row b, units k0..k0+3.
fn dh_in(sq: StepBackParams, b: u32, k0: u32) -> vec4<f32> {
    return dy[(sq.dy_off + b * sq.dy_stride + k0) / 4u] + carry_h[(sq.carry_off + b * sq.hidden + k0) / 4u];
}

// One backward step of the RNN for units k0..k0+3 of rows b0..b0+NB-1.
fn rnn_backward4(sq: StepBackParams, k0: u32, b0: u32) {
    let H = sq.hidden;
    if k0 >= H || b0 >= sq.batch {
        return;
    }
    let acc = backward_product(sq, b0, k0, G_RNN * H);
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
    if k0 >= H || b0 >= sq.batch {
        return;
    }
    let acc = backward_product(sq, b0, k0, GH);
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
    if k0 >= H || b0 >= sq.batch {
        return;
    }
    let acc = backward_product(sq, b0, k0, GH);
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
// entries: one step per dispatch (grid: units/4 x rows/NB), or a whole sequence in one
// workgroup (the plan's per-step parameters in a storage array at binding 7 or 16, in the
// order the steps run; a storage barrier between steps). The sequence form is for steps small
// enough that one workgroup computes them faster than a CPU adapter dispatches them: within
// one workgroup the barrier is portable, across workgroups nothing orders the steps.

@group(0) @binding(7) var<storage, read> fwd_steps: array<StepParams>;
@group(0) @binding(16) var<storage, read> bwd_steps: array<StepBackParams>;

// Invocations of the sequence kernels' one workgroup.
const SEQ_WG: u32 = 16u;

// Blocks of (4 units, NB rows) in a step, and the first unit and row of block v.
fn block_count(hidden: u32, batch: u32) -> u32 {
    return (hidden / 4u) * ((batch + NB - 1u) / NB);
}

fn block_unit(v: u32, hidden: u32) -> u32 {
    return (v % (hidden / 4u)) * 4u;
}

fn block_row(v: u32, hidden: u32) -> u32 {
    return (v / (hidden / 4u)) * NB;
}

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

@compute @workgroup_size(16, 1, 1)
fn rnn_sequence_forward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&fwd_steps); s++) {
        let sp = fwd_steps[s];
        for (var v = lane; v < block_count(sp.hidden, sp.batch); v += SEQ_WG) {
            rnn_forward4(sp, block_unit(v, sp.hidden), block_row(v, sp.hidden));
        }
        storageBarrier();
    }
}

@compute @workgroup_size(16, 1, 1)
fn lstm_sequence_forward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&fwd_steps); s++) {
        let sp = fwd_steps[s];
        for (var v = lane; v < block_count(sp.hidden, sp.batch); v += SEQ_WG) {
            lstm_forward4(sp, block_unit(v, sp.hidden), block_row(v, sp.hidden));
        }
        storageBarrier();
    }
}

@compute @workgroup_size(16, 1, 1)
fn gru_sequence_forward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&fwd_steps); s++) {
        let sp = fwd_steps[s];
        for (var v = lane; v < block_count(sp.hidden, sp.batch); v += SEQ_WG) {
            gru_forward4(sp, block_unit(v, sp.hidden), block_row(v, sp.hidden));
        }
        storageBarrier();
    }
}

@compute @workgroup_size(16, 1, 1)
fn rnn_sequence_backward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&bwd_steps); s++) {
        let sq = bwd_steps[s];
        for (var v = lane; v < block_count(sq.hidden, sq.batch); v += SEQ_WG) {
            rnn_backward4(sq, block_unit(v, sq.hidden), block_row(v, sq.hidden));
        }
        storageBarrier();
    }
}

@compute @workgroup_size(16, 1, 1)
fn lstm_sequence_backward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&bwd_steps); s++) {
        let sq = bwd_steps[s];
        for (var v = lane; v < block_count(sq.hidden, sq.batch); v += SEQ_WG) {
            lstm_backward4(sq, block_unit(v, sq.hidden), block_row(v, sq.hidden));
        }
        storageBarrier();
    }
}

@compute @workgroup_size(16, 1, 1)
fn gru_sequence_backward_vec4(@builtin(local_invocation_index) lane: u32) {
    for (var s = 0u; s < arrayLength(&bwd_steps); s++) {
        let sq = bwd_steps[s];
        for (var v = lane; v < block_count(sq.hidden, sq.batch); v += SEQ_WG) {
            gru_backward4(sq, block_unit(v, sq.hidden), block_row(v, sq.hidden));
        }
        storageBarrier();
    }
}
