// The whole-sequence forward kernels for CPU adapters whose subgroups are their SIMD rows of 8
// lanes (Gpu::shares_subgroup_loads), with W_hh held in the invocations' own variables for
// the whole sequence: each invocation owns two adjacent hidden units 2m and 2m+1 and loads
// their G rows of W_hh once, before the first step; every step then multiplies from registers
// (or, past the register file, from the invocation's spill slots, which a CPU adapter reads as
// whole SIMD vectors) instead of reloading W_hh from the storage buffer. On lavapipe a storage
// load is one bounds-checked scalar load per lane and component; the GEMV of a small batch
// reads every weight once a step and so is bound by those loads, which this removes. The
// persistent-RNN idea (weights resident across time steps), on one workgroup, where a barrier
// orders the steps.
//
// Two units an invocation: every SIMD row of a workgroup loads the whole h_prev row each step
// and lavapipe switches every SIMD row at each barrier, so half the invocations do half of
// that, and the cell reads and writes its operands (gx, c, y, the activations) as vec2s. On
// lavapipe (H = 128, B = 16, five rounds) this ran the LSTM's and the GRU's steps 1.29x and
// 1.23x faster than one unit an invocation, where four units ran the LSTM forward at 0.79x:
// the loop body per SIMD row grows with the units, and at four it no longer ran from the
// CPU's instruction caches (our reading).
//
// Prepended by the shader registry: step_common.wgsl, weights_f32_vec4.wgsl (param4), and
// `const KH` (1 or 2: halves of 64 k of each row of W_hh that stay resident) and `const WG`
// (the backward entries' invocations, one a unit: 32, 64 or 128; 64 * KH >= WG); the forward
// entries run WG2 = WG / 2. Preconditions, checked on the host (step_resident.rs): H == state
// width, H % 4 == 0, H <= WG, every offset and y's stride multiples of 4, subgroups of 8.
//
// A workgroup runs every step for its own block of batch rows (group_rows): the rows do not
// depend on each other, and on a CPU adapter each workgroup is one thread.
//
// Step s (table fwd_steps, binding 7, in the order the steps run) for every batch row b and
// each of the invocation's units j:
//   pre[g] = b_hh[gH + j] + sum_k h_prev[b, k] * W_hh[gH + j, k]   (g < G)
// h_prev is read from hs at the step's hprev_off: lane l of each subgroup loads vec4s l, l+8
// (and l+16, l+24) of the row and subgroupBroadcast hands them round, so a lane loads 2 (or
// 4) vec4s a row instead of 16 (32). Then the cell of step_vec4.wgsl for the two units, on
// vec2s, and a storage barrier before the next step reads what this one wrote. Invocations
// past H (2m >= H) take part in the loads and broadcasts and store nothing.

// Invocations of a forward workgroup: two units each.
const WG2: u32 = WG / 2u;

@group(0) @binding(0) var<uniform> p: StepParams;
// binding 1, params: weights_f32_vec4.wgsl (param4(q)).
// vec2s: the two units of an invocation; hs in vec4s, which the exchange loads.
@group(0) @binding(2) var<storage, read> gx: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> hs: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> cs: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> y: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> acts: array<vec2<f32>>;
// The step table: StepParams of each step as 16 words.
@group(0) @binding(7) var<storage, read> fwd_steps: array<u32>;

// 16 vec4s: 64 consecutive k of one row.
alias Row16 = array<vec4<f32>, 16>;

// The resident rows of W_hh of one unit: gate g's first 64 k in a[g], the next 64 in b[g]
// (KH = 2 only). Written out, not indexed by a loop variable, so that they stay values.
struct Resident {
    a0: Row16,
    a1: Row16,
    a2: Row16,
    a3: Row16,
    b0: Row16,
    b1: Row16,
    b2: Row16,
    b3: Row16,
}

// Vec4 i of the parameters from vec4 q, zero at or past n (n >= 1).
fn wv(q: u32, i: u32, n: u32) -> vec4<f32> {
    return select(vec4<f32>(0.0), param4(q + min(i, n - 1u)), i < n);
}

// Vec4s i .. i+15 of the row at vec4 q of the parameters (n vec4s long).
fn load16(q: u32, i: u32, n: u32) -> Row16 {
    return Row16(
        wv(q, i + 0u, n), wv(q, i + 1u, n), wv(q, i + 2u, n), wv(q, i + 3u, n),
        wv(q, i + 4u, n), wv(q, i + 5u, n), wv(q, i + 6u, n), wv(q, i + 7u, n),
        wv(q, i + 8u, n), wv(q, i + 9u, n), wv(q, i + 10u, n), wv(q, i + 11u, n),
        wv(q, i + 12u, n), wv(q, i + 13u, n), wv(q, i + 14u, n), wv(q, i + 15u, n)
    );
}

// The first `ng` gate rows of W_hh for unit j (rows of the last unit past H).
fn resident_weights(sp: StepParams, j: u32, ng: u32) -> Resident {
    let ks = sp.state / 4u;
    let q = (sp.whh_off + min(j, sp.hidden - 1u) * sp.state) / 4u;
    let gs = sp.hidden * ks;
    var w: Resident;
    w.a0 = load16(q, 0u, ks);
    if ng > 1u {
        w.a1 = load16(q + gs, 0u, ks);
        w.a2 = load16(q + 2u * gs, 0u, ks);
    }
    if ng > 3u {
        w.a3 = load16(q + 3u * gs, 0u, ks);
    }
    if KH > 1u {
        w.b0 = load16(q, 16u, ks);
        if ng > 1u {
            w.b1 = load16(q + gs, 16u, ks);
            w.b2 = load16(q + 2u * gs, 16u, ks);
        }
        if ng > 3u {
            w.b3 = load16(q + 3u * gs, 16u, ks);
        }
    }
    return w;
}

// The resident rows of the two units of an invocation.
struct ResidentPair {
    u0: Resident,
    u1: Resident,
}

// The first `ng` gate rows of W_hh for units 2m and 2m+1.
fn resident_pair(sp: StepParams, m: u32, ng: u32) -> ResidentPair {
    return ResidentPair(resident_weights(sp, 2u * m, ng), resident_weights(sp, 2u * m + 1u, ng));
}

// The two elements of v, a vec4 of the parameters or of hs, from element e (e even).
fn half_of(v: vec4<f32>, e: u32) -> vec2<f32> {
    return select(v.xy, v.zw, (e % 4u) != 0u);
}

// b_hh of gate g for units 2m and 2m+1, or zero without a bias.
fn bias_pair(sp: StepParams, m: u32, g: u32) -> vec2<f32> {
    if (sp.flags & HAS_BIAS) == 0u {
        return vec2<f32>(0.0);
    }
    let e = sp.bhh_off + g * sp.hidden + 2u * min(m, sp.hidden / 2u - 1u);
    return half_of(param4(e / 4u), e);
}

// The h_prev row a subgroup shares: k 0..63 in a, 64..127 in b (KH = 2 only).
struct HRow {
    a: Row16,
    b: Row16,
}

// Vec4 i of the hidden-state row at vec4 q of hs, zero at or past n.
fn hrow(q: u32, i: u32, n: u32) -> vec4<f32> {
    return select(vec4<f32>(0.0), hs[q + min(i, n - 1u)], i < n);
}

// The row of h_prev at element e of hs (ks vec4s), every lane's copy from the lanes' loads.
fn exchange(e: u32, ks: u32, l: u32) -> HRow {
    var h: HRow;
    h.a = bcast16(hrow(e / 4u, l, ks), hrow(e / 4u, l + 8u, ks));
    if KH > 1u {
        h.b = bcast16(hrow(e / 4u, l + 16u, ks), hrow(e / 4u, l + 24u, ks));
    }
    return h;
}

// sum_k h_prev[k] * W_hh[gH + j, k] for the first `ng` gates of one unit, in gate order.
fn unit_product(w: Resident, h: HRow, ng: u32) -> vec4<f32> {
    var pre = vec4<f32>(dot16(w.a0, h.a, 0.0), 0.0, 0.0, 0.0);
    if ng > 1u {
        pre.y = dot16(w.a1, h.a, 0.0);
        pre.z = dot16(w.a2, h.a, 0.0);
    }
    if ng > 3u {
        pre.w = dot16(w.a3, h.a, 0.0);
    }
    if KH > 1u {
        pre.x = dot16(w.b0, h.b, pre.x);
        if ng > 1u {
            pre.y = dot16(w.b1, h.b, pre.y);
            pre.z = dot16(w.b2, h.b, pre.z);
        }
        if ng > 3u {
            pre.w = dot16(w.b3, h.b, pre.w);
        }
    }
    return pre;
}

// The products of the two units, column g gate g's for units 2m and 2m+1.
fn pair_product(w: ResidentPair, h: HRow, ng: u32) -> mat4x2<f32> {
    return transpose(mat2x4<f32>(unit_product(w.u0, h, ng), unit_product(w.u1, h, ng)));
}

// sigmoid of each component.
fn sigmoid2(x: vec2<f32>) -> vec2<f32> {
    return 1.0 / (1.0 + exp(-x));
}

// tanh_c of each component.
fn tanh2(x: vec2<f32>) -> vec2<f32> {
    return tanh(clamp(x, vec2<f32>(-15.0), vec2<f32>(15.0)));
}

// Every lane's 16 vec4s from the 8 lanes' a and b: lane m's a is vec4 m, its b vec4 m + 8.
fn bcast16(a: vec4<f32>, b: vec4<f32>) -> Row16 {
    return Row16(
        subgroupBroadcast(a, 0u), subgroupBroadcast(a, 1u), subgroupBroadcast(a, 2u), subgroupBroadcast(a, 3u),
        subgroupBroadcast(a, 4u), subgroupBroadcast(a, 5u), subgroupBroadcast(a, 6u), subgroupBroadcast(a, 7u),
        subgroupBroadcast(b, 0u), subgroupBroadcast(b, 1u), subgroupBroadcast(b, 2u), subgroupBroadcast(b, 3u),
        subgroupBroadcast(b, 4u), subgroupBroadcast(b, 5u), subgroupBroadcast(b, 6u), subgroupBroadcast(b, 7u)
    );
}

// Step s of the table: lane l loads words l and l + 8, and the lanes hand them round.
fn step_params(s: u32, l: u32) -> StepParams {
    let a = fwd_steps[s * 16u + l];
    let b = fwd_steps[s * 16u + 8u + l];
    return StepParams(
        subgroupBroadcast(a, 0u), subgroupBroadcast(a, 1u), subgroupBroadcast(a, 2u), subgroupBroadcast(a, 3u),
        subgroupBroadcast(a, 4u), subgroupBroadcast(a, 5u), subgroupBroadcast(a, 6u), subgroupBroadcast(a, 7u),
        subgroupBroadcast(b, 0u), subgroupBroadcast(b, 1u), subgroupBroadcast(b, 2u), subgroupBroadcast(b, 3u),
        subgroupBroadcast(b, 4u), subgroupBroadcast(b, 5u), subgroupBroadcast(b, 6u), subgroupBroadcast(b, 7u)
    );
}

// acc + the dot products of h and w, one vec4 at a time in order: the arithmetic of the
// per-step kernels' products (step_vec4_product*.wgsl), so that a sequence run here equals it
// run one step at a time bit for bit (RnnStream's chunks); past the state width h and w are
// zero and add +0.
fn dot16(w: Row16, h: Row16, acc_in: f32) -> f32 {
    var acc = acc_in;
    acc += dot(h[0], w[0]);
    acc += dot(h[1], w[1]);
    acc += dot(h[2], w[2]);
    acc += dot(h[3], w[3]);
    acc += dot(h[4], w[4]);
    acc += dot(h[5], w[5]);
    acc += dot(h[6], w[6]);
    acc += dot(h[7], w[7]);
    acc += dot(h[8], w[8]);
    acc += dot(h[9], w[9]);
    acc += dot(h[10], w[10]);
    acc += dot(h[11], w[11]);
    acc += dot(h[12], w[12]);
    acc += dot(h[13], w[13]);
    acc += dot(h[14], w[14]);
    acc += dot(h[15], w[15]);
    return acc;
}

// Batch rows of each workgroup: workgroup g runs rows g*rows .. g*rows + rows - 1 (of those
// each step has), so that the workgroups (the CPU adapter's threads) split the batch.
fn group_rows(batch: u32, groups: u32) -> u32 {
    return (batch + groups - 1u) / groups;
}

// h_prev of units 2m and 2m+1 at element e of hs (e even).
fn h_pair(e: u32) -> vec2<f32> {
    return half_of(hs[e / 4u], e);
}

// hs[e], hs[e + 1] = v (e even).
fn set_h_pair(e: u32, v: vec2<f32>) {
    hs[e / 4u][e % 4u] = v.x;
    hs[e / 4u][e % 4u + 1u] = v.y;
}

// The entries below repeat their loop rather than share one driver that picks the cell: a
// function an entry calls uses its bindings statically, and the RNN and the GRU have no cs.
// Indices in vec2s (units 2m and 2m+1): xb of the row's gate 0 in gx.

@compute @workgroup_size(WG2, 1, 1)
fn rnn_resident_forward(@builtin(local_invocation_index) m: u32,
                        @builtin(subgroup_invocation_id) l: u32,
                        @builtin(workgroup_id) group: vec3<u32>,
                        @builtin(num_workgroups) groups: vec3<u32>) {
    let H = p.hidden;
    let H2 = H / 2u;
    let rows = group_rows(p.batch, groups.x);
    let b0 = group.x * rows;
    let w = resident_pair(p, m, 1u);
    let bh = bias_pair(p, m, 0u);
    for (var s = 0u; s < arrayLength(&fwd_steps) / 16u; s++) {
        let sp = step_params(s, l);
        for (var b = b0; b < min(b0 + rows, sp.batch); b++) {
            let acc = pair_product(w, exchange(sp.hprev_off + b * H, H / 4u, l), 1u)[0];
            if m < H2 {
                let pre = acc + bh + gx[sp.gx_off / 2u + b * H2 + m];
                var h: vec2<f32>;
                if (sp.flags & RELU) != 0u {
                    h = max(pre, vec2<f32>(0.0));
                } else {
                    h = tanh2(pre);
                }
                set_h_pair(sp.hout_off + b * H + 2u * m, h);
                y[(sp.y_off + b * sp.y_stride) / 2u + m] = h;
            }
        }
        storageBarrier();
    }
}

@compute @workgroup_size(WG2, 1, 1)
fn lstm_resident_forward(@builtin(local_invocation_index) m: u32,
                         @builtin(subgroup_invocation_id) l: u32,
                         @builtin(workgroup_id) group: vec3<u32>,
                         @builtin(num_workgroups) groups: vec3<u32>) {
    let H = p.hidden;
    let H2 = H / 2u;
    let rows = group_rows(p.batch, groups.x);
    let b0 = group.x * rows;
    let w = resident_pair(p, m, 4u);
    let bh = mat4x2<f32>(bias_pair(p, m, 0u), bias_pair(p, m, 1u), bias_pair(p, m, 2u),
                         bias_pair(p, m, 3u));
    for (var s = 0u; s < arrayLength(&fwd_steps) / 16u; s++) {
        let sp = step_params(s, l);
        for (var b = b0; b < min(b0 + rows, sp.batch); b++) {
            let acc = pair_product(w, exchange(sp.hprev_off + b * H, H / 4u, l), 4u) + bh;
            if m < H2 {
                let xb = sp.gx_off / 2u + b * 4u * H2 + m;
                let i = sigmoid2(acc[0] + gx[xb]);
                let f = sigmoid2(acc[1] + gx[xb + H2]);
                let g = tanh2(acc[2] + gx[xb + 2u * H2]);
                let o = sigmoid2(acc[3] + gx[xb + 3u * H2]);
                let c = f * cs[sp.cprev_off / 2u + b * H2 + m] + i * g;
                let h = o * tanh2(c);
                cs[sp.cout_off / 2u + b * H2 + m] = c;
                set_h_pair(sp.hout_off + b * H + 2u * m, h);
                y[(sp.y_off + b * sp.y_stride) / 2u + m] = h;
                if (sp.flags & SAVE) != 0u {
                    let a = sp.act_off / 2u + b * 4u * H2 + m;
                    acts[a] = i;
                    acts[a + H2] = f;
                    acts[a + 2u * H2] = g;
                    acts[a + 3u * H2] = o;
                }
            }
        }
        storageBarrier();
    }
}

@compute @workgroup_size(WG2, 1, 1)
fn gru_resident_forward(@builtin(local_invocation_index) m: u32,
                        @builtin(subgroup_invocation_id) l: u32,
                        @builtin(workgroup_id) group: vec3<u32>,
                        @builtin(num_workgroups) groups: vec3<u32>) {
    let H = p.hidden;
    let H2 = H / 2u;
    let rows = group_rows(p.batch, groups.x);
    let b0 = group.x * rows;
    let w = resident_pair(p, m, 3u);
    let bh = mat3x2<f32>(bias_pair(p, m, 0u), bias_pair(p, m, 1u), bias_pair(p, m, 2u));
    for (var s = 0u; s < arrayLength(&fwd_steps) / 16u; s++) {
        let sp = step_params(s, l);
        for (var b = b0; b < min(b0 + rows, sp.batch); b++) {
            let acc = pair_product(w, exchange(sp.hprev_off + b * H, H / 4u, l), 3u);
            if m < H2 {
                let xb = sp.gx_off / 2u + b * 3u * H2 + m;
                // b_hn stays inside the reset product (PyTorch's form). The sums in the
                // order of step_vec4.wgsl (bit for bit the same).
                let ghn = acc[2] + bh[2];
                let r = sigmoid2(gx[xb] + acc[0] + bh[0]);
                let z = sigmoid2(gx[xb + H2] + acc[1] + bh[1]);
                let n = tanh2(gx[xb + 2u * H2] + r * ghn);
                let h = (1.0 - z) * n + z * h_pair(sp.hprev_off + b * H + 2u * m);
                set_h_pair(sp.hout_off + b * H + 2u * m, h);
                y[(sp.y_off + b * sp.y_stride) / 2u + m] = h;
                if (sp.flags & SAVE) != 0u {
                    let a = sp.act_off / 2u + b * 4u * H2 + m;
                    acts[a] = r;
                    acts[a + H2] = z;
                    acts[a + 2u * H2] = n;
                    acts[a + 3u * H2] = ghn;
                }
            }
        }
        storageBarrier();
    }
}
