// Sampling the next token from a row of logits on the device, so that generation runs step
// after step inside one submission and only the chosen tokens come back to the host.
//
// sample_token (uniform at 0): ONE workgroup of WG threads, row x = logits[logits_off ..
// logits_off + V]:
//   greedy (flag bit 0, temperature 0): t = argmax_v x[v] (the lowest index among ties);
//   else:
//     m   = max_v x[v]
//     tau = the k-th largest value (top_k in 1..V-1; every value ties at the k-th are kept),
//           found exactly by a 32-step bisection on order-preserving u32 keys of the f32s;
//     w_v = [x[v] >= tau] * exp((x[v] - m) * inv_temp)
//     u   = a uniform in [0, 1) from a counter-based hash of (seed, step): no RNG state, the
//           same (seed, step) always gives the same u;
//     t   = the first v (in index order) with w_0 + ... + w_v > u * sum_v w_v.
//   The sums are taken in a fixed order (contiguous chunks per thread, then the chunks in
//   order by thread 0), so the choice depends only on the logits, the seed and the step.
// The token is written to cur[0] (the id the next step's embedding reads) and to
// tokens[out_index] (the generated text, read back once at the end).

const WG: u32 = 64u;

// Flag bit of SampleParams.flags, as in src/kernels/sample.rs::flags.
const GREEDY: u32 = 1u;

struct SampleParams {
    vocab: u32,
    logits_off: u32,
    top_k: u32,
    out_index: u32,
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    // bit 0: GREEDY
    flags: u32,
    inv_temp: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> sp: SampleParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> cur: array<u32>;
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>;

var<workgroup> red_f: array<f32, 64>;
var<workgroup> red_u: array<u32, 64>;

// lowbias32 (Chris Wellons): a well-mixing 32-bit hash.
fn hash32(x: u32) -> u32 {
    var h = x;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

// Order-preserving key: a < b as f32 exactly when key(a) < key(b) as u32 (NaN aside).
fn key(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if (b & 0x80000000u) != 0u {
        return ~b;
    }
    return b | 0x80000000u;
}

fn sum_u(lid: u32) -> u32 {
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if lid < s {
            red_u[lid] = red_u[lid] + red_u[lid + s];
        }
    }
    workgroupBarrier();
    let r = red_u[0];
    workgroupBarrier();
    return r;
}

fn emit(t: u32) {
    cur[0] = t;
    tokens[sp.out_index] = t;
}

@compute @workgroup_size(64, 1, 1)
fn sample_token(@builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let V = sp.vocab;
    let base = sp.logits_off;

    // Max (and its lowest index, for greedy): a strided scan, then a tree in which the
    // smaller index wins ties.
    var m = -3.402823e38;
    var mi = 0xffffffffu;
    for (var v = lid; v < V; v += WG) {
        let x = logits[base + v];
        if x > m {
            m = x;
            mi = v;
        }
    }
    red_f[lid] = m;
    red_u[lid] = mi;
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if lid < s {
            let a = red_f[lid];
            let b = red_f[lid + s];
            if b > a || (b == a && red_u[lid + s] < red_u[lid]) {
                red_f[lid] = b;
                red_u[lid] = red_u[lid + s];
            }
        }
    }
    workgroupBarrier();
    m = red_f[0];
    let arg = min(red_u[0], V - 1u);
    workgroupBarrier();
    if (sp.flags & GREEDY) != 0u {
        if lid == 0u {
            emit(arg);
        }
        return;
    }

    // Top-k threshold: the largest key tau with count(key >= tau) >= k, bit by bit.
    var tau = 0u;
    if sp.top_k > 0u && sp.top_k < V {
        for (var bit = 31i; bit >= 0i; bit--) {
            let cand = tau | (1u << u32(bit));
            var c = 0u;
            for (var v = lid; v < V; v += WG) {
                if key(logits[base + v]) >= cand {
                    c += 1u;
                }
            }
            red_u[lid] = c;
            if sum_u(lid) >= sp.top_k {
                tau = cand;
            }
        }
    }

    // Partial sums of the weights over contiguous chunks, one chunk a thread.
    let chunk = (V + WG - 1u) / WG;
    let lo = min(lid * chunk, V);
    let hi = min(lo + chunk, V);
    var part = 0.0;
    for (var v = lo; v < hi; v++) {
        let x = logits[base + v];
        if key(x) >= tau {
            part += exp((x - m) * sp.inv_temp);
        }
    }
    red_f[lid] = part;
    workgroupBarrier();
    if lid != 0u {
        return;
    }
    var total = 0.0;
    for (var i = 0u; i < WG; i++) {
        total += red_f[i];
    }
    let r = hash32(sp.seed_lo ^ hash32(sp.seed_hi ^ hash32(sp.step)));
    let goal = f32(r >> 8u) * (1.0 / 16777216.0) * total;
    // Walk the chunks, then inside the chunk; rounding that runs past the end keeps the last
    // token with a positive weight (the argmax always has one).
    var acc = 0.0;
    var pick = arg;
    for (var i = 0u; i < WG; i++) {
        if acc + red_f[i] > goal {
            let clo = min(i * chunk, V);
            let chi = min(clo + chunk, V);
            for (var v = clo; v < chi; v++) {
                let x = logits[base + v];
                if key(x) >= tau {
                    acc += exp((x - m) * sp.inv_temp);
                    pick = v;
                    if acc > goal {
                        break;
                    }
                }
            }
            break;
        }
        acc += red_f[i];
    }
    emit(pick);
}
