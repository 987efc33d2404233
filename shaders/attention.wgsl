// Additive (Bahdanau) attention for one decoder step, time-major like the rest of recur.
// One workgroup of WG threads per batch row b; S (source length) <= MAX_S.
//
//   keys    K  (S, B, A)   U_a h_s + b_a, made once per source sequence by a linear layer
//   query   q  (B, A)      W_a s_{t-1}, read at element offset q_off
//   v          (A)         the score vector
//   values  Hs (S, B, D)   the encoder outputs
//
// attention_forward (uniform at 0):
//   e[s]            = sum_a v[a] tanh(q[b, a] + K[s, b, a])
//   alpha[s, b]     = softmax over s of e           (written at alpha_off + s * B + b)
//   ctx[b, d]       = sum_s alpha[s, b] Hs[s, b, d]  (written at ctx_off + b * D + d)
// attention_backward_values (uniform at 8), from dctx (B, D) at ctx_off and alpha at alpha_off:
//   dalpha[s]       = sum_d dctx[b, d] Hs[s, b, d]
//   dscores[s, b]   = alpha[s, b] (dalpha[s] - sum_s' alpha[s', b] dalpha[s'])
//   dvalues[s,b,d]  (+)= alpha[s, b] dctx[b, d]
// attention_backward_scores (uniform at 16), from dscores (S, B):
//   g[s, a]         = dscores[s, b] v[a] (1 - tanh^2(q[b, a] + K[s, b, a]))
//   dkeys[s, b, a]  (+)= g[s, a]
//   dquery[b, a]    = sum_s g[s, a]                  (written at q_off + b * A + a)
//   dv_rows[b, a]   (+)= sum_s dscores[s, b] tanh(q[b, a] + K[s, b, a])
//                   (one row per b: the caller sums the rows, so no atomics are needed)
// (+)= adds with ACCUMULATE, else overwrites. Sums run in a fixed order: deterministic.

const WG: u32 = 64u;
const MAX_S: u32 = 256u;

// Flag bit of AttentionParams.flags, as in src/kernels/attention.rs::flags.
const ACCUMULATE: u32 = 1u;

struct AttentionParams {
    s_len: u32,
    batch: u32,
    a_dim: u32,
    d_dim: u32,
    // bit 0: ACCUMULATE (backward)
    flags: u32,
    q_off: u32,
    alpha_off: u32,
    ctx_off: u32,
}

var<workgroup> w_s: array<f32, MAX_S>;
var<workgroup> w_red: f32;

// ---------------------------------------------------------------------------------------
// attention_forward: bindings 0..6

@group(0) @binding(0) var<uniform> fp: AttentionParams;
@group(0) @binding(1) var<storage, read> f_keys: array<f32>;
@group(0) @binding(2) var<storage, read> f_query: array<f32>;
@group(0) @binding(3) var<storage, read> f_v: array<f32>;
@group(0) @binding(4) var<storage, read> f_values: array<f32>;
@group(0) @binding(5) var<storage, read_write> f_alpha: array<f32>;
@group(0) @binding(6) var<storage, read_write> f_ctx: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn attention_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.x;
    let nb = fp.batch;
    let na = fp.a_dim;
    for (var s = lid.x; s < fp.s_len; s += WG) {
        var e = 0.0;
        for (var a = 0u; a < na; a += 1u) {
            e += f_v[a] * tanh(clamp(f_query[fp.q_off + b * na + a] + f_keys[(s * nb + b) * na + a], -15.0, 15.0));
        }
        w_s[s] = e;
    }
    workgroupBarrier();
    if lid.x == 0u {
        var m = w_s[0];
        for (var s = 1u; s < fp.s_len; s += 1u) {
            m = max(m, w_s[s]);
        }
        var total = 0.0;
        for (var s = 0u; s < fp.s_len; s += 1u) {
            let p = exp(w_s[s] - m);
            w_s[s] = p;
            total += p;
        }
        w_red = 1.0 / total;
    }
    workgroupBarrier();
    for (var s = lid.x; s < fp.s_len; s += WG) {
        f_alpha[fp.alpha_off + s * nb + b] = w_s[s] * w_red;
    }
    for (var d = lid.x; d < fp.d_dim; d += WG) {
        var c = 0.0;
        for (var s = 0u; s < fp.s_len; s += 1u) {
            c += w_s[s] * w_red * f_values[(s * nb + b) * fp.d_dim + d];
        }
        f_ctx[fp.ctx_off + b * fp.d_dim + d] = c;
    }
}

// ---------------------------------------------------------------------------------------
// attention_backward_values: bindings 8..13

@group(0) @binding(8) var<uniform> vp: AttentionParams;
@group(0) @binding(9) var<storage, read> v_alpha: array<f32>;
@group(0) @binding(10) var<storage, read> v_dctx: array<f32>;
@group(0) @binding(11) var<storage, read> v_values: array<f32>;
@group(0) @binding(12) var<storage, read_write> v_dvalues: array<f32>;
@group(0) @binding(13) var<storage, read_write> v_dscores: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn attention_backward_values(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.x;
    let nb = vp.batch;
    let nd = vp.d_dim;
    let acc = (vp.flags & ACCUMULATE) != 0u;
    for (var s = lid.x; s < vp.s_len; s += WG) {
        var da = 0.0;
        for (var d = 0u; d < nd; d += 1u) {
            da += v_dctx[vp.ctx_off + b * nd + d] * v_values[(s * nb + b) * nd + d];
        }
        w_s[s] = da;
    }
    workgroupBarrier();
    if lid.x == 0u {
        var dot = 0.0;
        for (var s = 0u; s < vp.s_len; s += 1u) {
            dot += v_alpha[vp.alpha_off + s * nb + b] * w_s[s];
        }
        w_red = dot;
    }
    workgroupBarrier();
    for (var s = lid.x; s < vp.s_len; s += WG) {
        let al = v_alpha[vp.alpha_off + s * nb + b];
        v_dscores[s * nb + b] = al * (w_s[s] - w_red);
    }
    for (var i = lid.x; i < vp.s_len * nd; i += WG) {
        let s = i / nd;
        let d = i % nd;
        let g = v_alpha[vp.alpha_off + s * nb + b] * v_dctx[vp.ctx_off + b * nd + d];
        let at = (s * nb + b) * nd + d;
        if acc {
            v_dvalues[at] += g;
        } else {
            v_dvalues[at] = g;
        }
    }
}

// ---------------------------------------------------------------------------------------
// attention_backward_scores: bindings 16..23

@group(0) @binding(16) var<uniform> sp: AttentionParams;
@group(0) @binding(17) var<storage, read> s_keys: array<f32>;
@group(0) @binding(18) var<storage, read> s_query: array<f32>;
@group(0) @binding(19) var<storage, read> s_v: array<f32>;
@group(0) @binding(20) var<storage, read> s_dscores: array<f32>;
@group(0) @binding(21) var<storage, read_write> s_dkeys: array<f32>;
@group(0) @binding(22) var<storage, read_write> s_dquery: array<f32>;
@group(0) @binding(23) var<storage, read_write> s_dv_rows: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn attention_backward_scores(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.x;
    let nb = sp.batch;
    let na = sp.a_dim;
    let acc = (sp.flags & ACCUMULATE) != 0u;
    for (var a = lid.x; a < na; a += WG) {
        let qa = s_query[sp.q_off + b * na + a];
        let va = s_v[a];
        var dq = 0.0;
        var dv = 0.0;
        for (var s = 0u; s < sp.s_len; s += 1u) {
            let at = (s * nb + b) * na + a;
            let th = tanh(clamp(qa + s_keys[at], -15.0, 15.0));
            let de = s_dscores[s * nb + b];
            let g = de * va * (1.0 - th * th);
            if acc {
                s_dkeys[at] += g;
            } else {
                s_dkeys[at] = g;
            }
            dq += g;
            dv += de * th;
        }
        s_dquery[sp.q_off + b * na + a] = dq;
        if acc {
            s_dv_rows[b * na + a] += dv;
        } else {
            s_dv_rows[b * na + a] = dv;
        }
    }
}
