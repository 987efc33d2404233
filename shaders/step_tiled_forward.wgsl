// The tiled recurrent product of the forward step kernels (the GPU family), written once for
// rnn.wgsl, lstm.wgsl and gru.wgsl (prepended to each by the shader registry, after
// step_common.wgsl, the weights accessor and step_small_batch.wgsl). Each cell file supplies
// its gate count `G` and its forward globals `p` and `hs`; the weights come through `param`.
// The function has barriers: every invocation of the workgroup calls it.
// TILE_LEN is in step_common.wgsl.

// Forward: [G][16 units][17] of W_hh and [16 batch rows][17] of h_prev.
var<workgroup> w_tile: array<f32, G * TILE_LEN>;
var<workgroup> h_tile: array<f32, TILE_LEN>;

// acc[g] = sum_k h_prev[b, k] * W_hh[g*H + j, k] for the invocation's unit j = 16*wid.x +
// lid.x and batch row b = 16*wid.y + lid.y (gates g < G; zero past the batch or H).
fn tiled_forward_product(lid: vec3<u32>, wid: vec3<u32>) -> array<f32, 4> {
    let H = p.hidden;
    let B = p.batch;
    let j0 = wid.x * T16;
    let b0 = wid.y * T16;
    let S = p.state;
    var acc: array<f32, 4>;
    for (var k0 = 0u; k0 < S; k0 += T16) {
        let kk = k0 + lid.x;
        let hb = b0 + lid.y;
        var hv = 0.0;
        if hb < B && kk < S {
            hv = hs[p.hprev_off + hb * S + kk];
        }
        h_tile[lid.y * 17u + lid.x] = hv;
        let row = j0 + lid.y;
        for (var g = 0u; g < G; g++) {
            var wv = 0.0;
            if row < H && kk < S {
                wv = param(p.whh_off + (g * H + row) * S + kk);
            }
            w_tile[(g * T16 + lid.y) * 17u + lid.x] = wv;
        }
        workgroupBarrier();
        for (var q = 0u; q < T16; q++) {
            let hq = h_tile[lid.y * 17u + q];
            for (var g = 0u; g < G; g++) {
                acc[g] = fma(hq, w_tile[(g * T16 + lid.x) * 17u + q], acc[g]);
            }
        }
        workgroupBarrier();
    }
    return acc;
}
