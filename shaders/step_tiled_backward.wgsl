// The tiled recurrent product of the backward step kernels (the GPU family), written once for
// rnn.wgsl, lstm.wgsl, gru.wgsl and lstm_proj.wgsl (prepended by the shader registry). Each
// file supplies the two operand readers `product_lhs(src, b, r)` and `product_rhs(src, r, k)`
// (`src` picks the operands where a file has two products: the LSTM's, with a projection).
// The function has barriers: every invocation of the workgroup calls it. TILE_LEN (272: 16
// rows padded to 17 against bank conflicts) is in step_common.wgsl.

// Backward: [16 batch rows][17] of the left operand and [16 rows r][17 columns k] of the
// matrix.
var<workgroup> dg_tile: array<f32, TILE_LEN>;
var<workgroup> wb_tile: array<f32, TILE_LEN>;

// sum_{r < rows} product_lhs(src, b, r) * product_rhs(src, r, k) for the invocation's column
// k = 16*wid.x + lid.x (< width) and batch row b = 16*wid.y + lid.y (< batch); zero when
// rows is 0 (the first step processed, which has no later gate gradient).
fn tiled_backward_product(lid: vec3<u32>, wid: vec3<u32>, src: u32, batch: u32, rows: u32, width: u32) -> f32 {
    let k = wid.x * T16 + lid.x;
    let b = wid.y * T16 + lid.y;
    var acc = 0.0;
    for (var r0 = 0u; r0 < rows; r0 += T16) {
        let rr = r0 + lid.x;
        var dv = 0.0;
        if b < batch && rr < rows {
            dv = product_lhs(src, b, rr);
        }
        dg_tile[lid.y * 17u + lid.x] = dv;
        let wr = r0 + lid.y;
        var wv = 0.0;
        if wr < rows && k < width {
            wv = product_rhs(src, wr, k);
        }
        wb_tile[lid.y * 17u + lid.x] = wv;
        workgroupBarrier();
        for (var s = 0u; s < T16; s++) {
            acc = fma(dg_tile[lid.y * 17u + s], wb_tile[s * 17u + lid.x], acc);
        }
        workgroupBarrier();
    }
    return acc;
}
