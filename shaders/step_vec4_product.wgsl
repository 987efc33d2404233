// The recurrent products of step_vec4.wgsl, each invocation loading its own NB batch rows
// (NB = 4, or 1 for a batch of one; prepended with NB by the shader registry).
//
// Forward: the rows of h_prev and of W_hh (both contiguous along k) as dot products of vec4s:
// per 4 k, 4*G vec4s of W_hh and NB of h_prev, 16*G*NB FMAs. Backward: per 4 rows r of W_hh,
// four vec4s of W_hh (rows r, adjacent across x) and NB of dg_rec, 16*NB FMAs.

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
    // W_hh row of gate g, unit j0 + u: (whh_off + (g*H + j0 + u) * S) / 4 (units past H
    // read the last ones).
    let w0 = (sp.whh_off + min(j0, H - 4u) * S) / 4u;
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
    var wi = (sq.whh_off + min(k0, H - 4u)) / 4u;
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
