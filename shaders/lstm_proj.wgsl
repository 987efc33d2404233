// The LSTM with a projection (proj_size P): the first half of a backward step, its own file so
// that its operands of the shared tiled product (step_tiled_backward.wgsl, prepended with
// step_common.wgsl by the shader registry) are its own; the second half is lstm.wgsl's
// lstm_step_backward with PROJ. Bindings 16..21, as when it lived in lstm.wgsl. Thread (x, y) owns
// unit p < P of batch row b:
//   dh[t, b, p] = dy[t, b, p] + carry_h[b, p] + sum_r dg_next[b, r] * W_hh[r, p]  (r < 4H)
// written to dhs at dg_off; then lstm_step_backward (PROJ) turns dh into dr = dh · W_hr and
// the gate gradients.

const G: u32 = 4u;

// Mirrored by src/kernels/lstm_proj.rs::ProjBackParams.
struct ProjBackParams {
    batch: u32,
    hidden: u32,
    // P: the width of dh, h and W_hh's rows here
    proj: u32,
    // HAS_NEXT: dg_next is valid
    flags: u32,
    dy_off: u32,
    dy_stride: u32,
    // offset of dg_next (the gate gradient of the step processed before)
    dgn_off: u32,
    // offset of dh[t] in dhs
    dh_off: u32,
    whh_off: u32,
    carry_off: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(16) var<uniform> u: ProjBackParams;
@group(0) @binding(17) var<storage, read> pparams: array<f32>;
@group(0) @binding(18) var<storage, read> pdy: array<f32>;
@group(0) @binding(19) var<storage, read> pdg: array<f32>;
@group(0) @binding(20) var<storage, read_write> pcarry_h: array<f32>;
@group(0) @binding(21) var<storage, read_write> dhs: array<f32>;

// The operands of the tiled product: dg_next through W_hh's P columns.
fn product_lhs(src: u32, b: u32, r: u32) -> f32 {
    return pdg[u.dgn_off + b * G * u.hidden + r];
}

fn product_rhs(src: u32, r: u32, k: u32) -> f32 {
    return pparams[u.whh_off + r * u.proj + k];
}

@compute @workgroup_size(16, 16, 1)
fn lstm_proj_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let P = u.proj;
    let rows = select(0u, G * u.hidden, (u.flags & HAS_NEXT) != 0u);
    let acc = tiled_backward_product(lid, wid, 0u, u.batch, rows, P);
    let pp = wid.x * T16 + lid.x;
    let b = wid.y * T16 + lid.y;
    if b >= u.batch || pp >= P {
        return;
    }
    lstm_proj_backward_cell(b, pp, acc);
}

// The per-unit tail of lstm_proj_backward and its direct twin.
fn lstm_proj_backward_cell(b: u32, pp: u32, acc: f32) {
    let P = u.proj;
    let ci = u.carry_off + b * P + pp;
    dhs[u.dh_off + b * P + pp] = acc + pdy[u.dy_off + b * u.dy_stride + pp] + pcarry_h[ci];
    pcarry_h[ci] = 0.0;
}

// Without workgroup memory, for CPU adapters: thread = (b, p), index b*P + p.
@compute @workgroup_size(64, 1, 1)
fn lstm_proj_backward_direct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let H = u.hidden;
    let P = u.proj;
    let GH = G * H;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if idx >= u.batch * P {
        return;
    }
    let b = idx / P;
    let pp = idx % P;
    var acc = 0.0;
    if (u.flags & HAS_NEXT) != 0u {
        for (var r = 0u; r < GH; r++) {
            acc = fma(pdg[u.dgn_off + b * GH + r], pparams[u.whh_off + r * P + pp], acc);
        }
    }
    lstm_proj_backward_cell(b, pp, acc);
}
