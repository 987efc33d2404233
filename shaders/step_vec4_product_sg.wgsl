// The recurrent products of step_vec4.wgsl for CPU adapters whose subgroups are their SIMD
// rows of 8 lanes (NB = 8; prepended with NB and subgroup_rows.wgsl by the shader registry).
// A workgroup of the step entries is 8 invocations: one subgroup, lane l = invocation x mod 8,
// all on the same 8 batch rows b0 .. b0+7 and each on its own 4 units. Lane l loads row b0 + l
// of the rows' operand (h_prev forward, the previous gate gradient backward) and lanes8
// hands the 8 rows to every lane, so per 4 k a lane loads 4*G vec4s of W_hh and one of
// h_prev for 8 rows (step_vec4_product.wgsl: 4*G and 4 for 4 rows), and backward per 4 rows
// of W_hh four vec4s of it and one of dg_rec for 8 rows (there: 4 and 4 for 4). Rows past the
// batch read the last row; the cells store nothing for them.

// 4 k of the 8 rows against rows wi, wi+ks, wi+2ks, wi+3ks of W_hh (4 units of one gate).
fn gate_rows(hv: array<vec4<f32>, 8>, wi: u32, ks: u32,
             acc: array<vec4<f32>, 8>) -> array<vec4<f32>, 8> {
    return rows_dot(hv, param4(wi), param4(wi + ks), param4(wi + 2u * ks), param4(wi + 3u * ks), acc);
}

// acc[r][g]: units j0..j0+3 of gate g for row b0 + r, over the first `ng` gates.
fn forward_product(sp: StepParams, b0: u32, j0: u32, ng: u32) -> array<array<vec4<f32>, 4>, NB> {
    let S = sp.state;
    let H = sp.hidden;
    let ks = S / 4u;
    let lane = (j0 / 4u) % LANES;
    let hrow = (sp.hprev_off + min(b0 + lane, sp.batch - 1u) * S) / 4u;
    // W_hh row of gate g, unit j0 + u: (whh_off + (g*H + j0 + u) * S) / 4 (units past H
    // read the last ones).
    let w0 = (sp.whh_off + min(j0, H - 4u) * S) / 4u;
    let gstride = H * ks;
    var a0: array<vec4<f32>, 8>;
    var a1: array<vec4<f32>, 8>;
    var a2: array<vec4<f32>, 8>;
    var a3: array<vec4<f32>, 8>;
    for (var kq = 0u; kq < ks; kq++) {
        let hv = lanes8(hs[hrow + kq]);
        let wi = w0 + kq;
        a0 = gate_rows(hv, wi, ks, a0);
        if ng > 1u {
            a1 = gate_rows(hv, wi + gstride, ks, a1);
        }
        if ng > 2u {
            a2 = gate_rows(hv, wi + 2u * gstride, ks, a2);
        }
        if ng > 3u {
            a3 = gate_rows(hv, wi + 3u * gstride, ks, a3);
        }
    }
    var acc: array<array<vec4<f32>, 4>, NB>;
    for (var r = 0u; r < NB; r++) {
        acc[r] = array<vec4<f32>, 4>(a0[r], a1[r], a2[r], a3[r]);
    }
    return acc;
}

// dh[b0 + r, k0..k0+3] from the previous step's gate gradients (`rows` of them per batch
// row), zero at the first step processed.
fn backward_product(sq: StepBackParams, b0: u32, k0: u32, rows: u32) -> array<vec4<f32>, NB> {
    var acc: array<vec4<f32>, 8>;
    if (sq.flags & HAS_NEXT) == 0u {
        return acc;
    }
    let H = sq.hidden;
    let hq = H / 4u;
    let lane = (k0 / 4u) % LANES;
    let drow = (sq.dgn_off + min(b0 + lane, sq.batch - 1u) * rows) / 4u;
    var wi = (sq.whh_off + min(k0, H - 4u)) / 4u;
    for (var s = 0u; s < rows / 4u; s++) {
        let w0 = bparams[wi];
        let w1 = bparams[wi + hq];
        let w2 = bparams[wi + 2u * hq];
        let w3 = bparams[wi + 3u * hq];
        wi += 4u * hq;
        acc = rows_kb(lanes8(dg_rec[drow + s]), w0, w1, w2, w3, acc);
    }
    return acc;
}
