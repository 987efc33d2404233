// Gradient-flow diagnostics: the norm of the total gradient reaching each hidden state h_t of
// one (layer, direction), after that direction's backward steps ran.
//
// The step kernels form dh_t inside and keep only the gate gradients dG (and, with an LSTM
// projection, dh_t itself in `dhs`). Before grad_flow_scan runs, `dh[t]` (T, B, W) holds
//   dG_h[next(t)] · W_hh   (one GEMM over all steps; next(t) = t+1 forward, t-1 reverse)
// and, at the first step of the backward walk (t = T-1 forward, 0 reverse), dhn. The scan
// adds the output's gradient dy[t] and, for the GRU, the direct path h' = ... + z * h:
//   dh_t = dh[t] + dy[t] + z_next(t) * dh_next(t)
// so that dh[t] is the whole ∂L/∂h_t. grad_flow_norms then writes ‖dh[t]‖ (Frobenius over
// batch × width) for every t: one f32 a step.

struct FlowParams {
    // rows of the batch, width of h (H, or P with a projection), steps T
    batch: u32,
    width: u32,
    seq: u32,
    // REVERSE: the direction visits t = T-1..0; GRU: add z_next * dh_next
    flags: u32,
    // dy[t, b, k] = dy[dy_off + t * batch * dy_ld + b * dy_ld + k]
    dy_off: u32,
    dy_ld: u32,
    // norms[out_off + t]
    out_off: u32,
    _pad: u32,
}

const REVERSE: u32 = 1u;
const GRU: u32 = 2u;
// workgroup sizes of the scan (one thread an element) and of the norms (one group a step)
const SCAN_WG: u32 = 64u;
const NORM_WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: FlowParams;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dh: array<f32>;
// GRU only: the saved activations (r, z, n, gh_n) per step, (T, B, 4H); z at + H.
@group(0) @binding(3) var<storage, read> acts: array<f32>;
@group(0) @binding(4) var<storage, read_write> norms: array<f32>;

// Thread (b, k), index b * width + k, walks the steps in backward order: each element's
// recursion is independent of every other's, so one dispatch covers the whole sequence.
@compute @workgroup_size(SCAN_WG, 1, 1)
fn grad_flow_scan(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * SCAN_WG;
    let bw = p.batch * p.width;
    if i >= bw {
        return;
    }
    let b = i / p.width;
    let k = i % p.width;
    let rev = (p.flags & REVERSE) != 0u;
    let gru = (p.flags & GRU) != 0u;
    var dh_next = 0.0;
    for (var s = 0u; s < p.seq; s++) {
        // backward order: T-1..0 forward, 0..T-1 reverse
        var t = p.seq - 1u - s;
        if rev {
            t = s;
        }
        let at = t * bw + i;
        var v = dh[at] + dy[p.dy_off + (t * p.batch + b) * p.dy_ld + k];
        if gru && s > 0u {
            var nt = t + 1u;
            if rev {
                nt = t - 1u;
            }
            let z = acts[(nt * p.batch + b) * 4u * p.width + p.width + k];
            v += z * dh_next;
        }
        dh[at] = v;
        dh_next = v;
    }
}

var<workgroup> partial: array<f32, NORM_WG>;

// Tree reduction of partial[] (sum or max) into partial[0]; every thread of the group calls it.
fn reduce_partial(use_max: bool, lid: u32) {
    workgroupBarrier();
    for (var half = NORM_WG / 2u; half > 0u; half >>= 1u) {
        if lid < half {
            if use_max {
                partial[lid] = max(partial[lid], partial[lid + half]);
            } else {
                partial[lid] += partial[lid + half];
            }
        }
        workgroupBarrier();
    }
}

// One workgroup a step t (x + y * num_workgroups.x). Exploding gradients are what this
// measures, so the sum of squares is scaled by the largest magnitude first (as BLAS nrm2
// does): no overflow before the norm itself overflows f32. Fixed reduction order: the same
// result every run, no atomics.
@compute @workgroup_size(NORM_WG, 1, 1)
fn grad_flow_norms(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = wid.x + wid.y * nwg.x;
    // uniform across the workgroup: the whole group returns or none of it does
    if t >= p.seq {
        return;
    }
    let bw = p.batch * p.width;
    var m = 0.0;
    for (var i = lid; i < bw; i += NORM_WG) {
        m = max(m, abs(dh[t * bw + i]));
    }
    partial[lid] = m;
    reduce_partial(true, lid);
    let scale = partial[0];
    workgroupBarrier();
    var s = 0.0;
    if scale > 0.0 {
        for (var i = lid; i < bw; i += NORM_WG) {
            let v = dh[t * bw + i] / scale;
            s += v * v;
        }
    }
    partial[lid] = s;
    reduce_partial(false, lid);
    if lid == 0u {
        // 0 stays 0, an infinite element gives inf (not inf/inf = NaN), NaN stays NaN: a
        // diverged run shows as such
        norms[p.out_off + t] = select(scale * sqrt(partial[0]), scale, scale == 0.0 || scale > 3.0e38);
    }
}
