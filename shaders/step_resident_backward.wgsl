// The backward steps of step_resident.wgsl (appended to it by the shader registry, which
// holds the helpers): every backward step of a (layer, direction) in one dispatch, each
// invocation owning hidden unit k and holding column k of W_hh (unit k's weight in each of
// the G*H gate rows) for the whole sequence, loaded once. Per step and batch row b:
//   dh[b, k] = sum_r dg_next[b, r] * W_hh[r, k] (HAS_NEXT) + dy[b, k] + carry_h[b, k]
// with dg_next the gate gradient of the step processed before (dg for the RNN and the LSTM,
// dg_h for the GRU: binding 13, as in step_vec4.wgsl); the lanes of a subgroup share its row
// (2 vec4 loads a lane per 64 rows, and subgroupBroadcast). Then the cell of step_vec4.wgsl
// for unit k, scalar; a storage barrier orders the steps. The batch rows are split over the
// workgroups as forward. Preconditions as forward, and G*H <= 256 * KH (the column's
// capacity: LSTM H <= 64 * KH).

@group(0) @binding(8) var<uniform> q: StepBackParams;
@group(0) @binding(9) var<storage, read> bparams: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> dy: array<f32>;
@group(0) @binding(11) var<storage, read> bacts: array<f32>;
// LSTM: the cell states; RNN, GRU: the hidden states.
@group(0) @binding(12) var<storage, read> bstates: array<f32>;
// vec4s: the exchange loads whole vec4s of the previous step's row.
@group(0) @binding(13) var<storage, read_write> dg_rec: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> carry_h: array<f32>;
// LSTM: carry_c; GRU: dg_x.
@group(0) @binding(15) var<storage, read_write> aux: array<f32>;
// The step table: StepBackParams of each step as 16 words.
@group(0) @binding(16) var<storage, read> bwd_steps: array<u32>;

// Element e of the parameters.
fn bparam(e: u32) -> f32 {
    return bparams[e / 4u][e % 4u];
}

// Rows 4i .. 4i+3 of the column whose row 0 is element e0 (rows h elements apart), zero at
// or past vec4 n.
fn colv(e0: u32, i: u32, h: u32, n: u32) -> vec4<f32> {
    let r = 4u * min(i, n - 1u);
    let v = vec4<f32>(bparam(e0 + r * h), bparam(e0 + (r + 1u) * h),
                      bparam(e0 + (r + 2u) * h), bparam(e0 + (r + 3u) * h));
    return select(vec4<f32>(0.0), v, i < n);
}

// Rows 4i .. 4i+63 of the column.
fn col16(e0: u32, i: u32, h: u32, n: u32) -> Row16 {
    return Row16(
        colv(e0, i + 0u, h, n), colv(e0, i + 1u, h, n), colv(e0, i + 2u, h, n), colv(e0, i + 3u, h, n),
        colv(e0, i + 4u, h, n), colv(e0, i + 5u, h, n), colv(e0, i + 6u, h, n), colv(e0, i + 7u, h, n),
        colv(e0, i + 8u, h, n), colv(e0, i + 9u, h, n), colv(e0, i + 10u, h, n), colv(e0, i + 11u, h, n),
        colv(e0, i + 12u, h, n), colv(e0, i + 13u, h, n), colv(e0, i + 14u, h, n), colv(e0, i + 15u, h, n)
    );
}

// Column k of W_hh, its `rows` (G*H) rows in a0 .. a3, b0 .. b3, 64 each.
fn resident_column(sq: StepBackParams, k: u32, rows: u32) -> Resident {
    let h = sq.hidden;
    let e0 = sq.whh_off + min(k, h - 1u);
    let n = rows / 4u;
    var w: Resident;
    w.a0 = col16(e0, 0u, h, n);
    if rows > 64u {
        w.a1 = col16(e0, 16u, h, n);
    }
    if rows > 128u {
        w.a2 = col16(e0, 32u, h, n);
    }
    if rows > 192u {
        w.a3 = col16(e0, 48u, h, n);
    }
    if KH > 1u {
        if rows > 256u {
            w.b0 = col16(e0, 64u, h, n);
        }
        if rows > 320u {
            w.b1 = col16(e0, 80u, h, n);
        }
        if rows > 384u {
            w.b2 = col16(e0, 96u, h, n);
        }
        if rows > 448u {
            w.b3 = col16(e0, 112u, h, n);
        }
    }
    return w;
}

// Vec4s i0 .. i0+15 of the gate-gradient row at element e, zero at or past vec4 n.
fn dg16(e: u32, i0: u32, n: u32, l: u32) -> Row16 {
    let q0 = e / 4u;
    let x = select(vec4<f32>(0.0), dg_rec[q0 + min(i0 + l, n - 1u)], i0 + l < n);
    let y = select(vec4<f32>(0.0), dg_rec[q0 + min(i0 + 8u + l, n - 1u)], i0 + 8u + l < n);
    return bcast16(x, y);
}

// sum_r dg_next[r] * W_hh[r, k] over the `rows` rows, dg_next at element e of dg_rec.
fn column_product(w: Resident, e: u32, rows: u32, l: u32) -> f32 {
    let n = rows / 4u;
    var acc = dot16(w.a0, dg16(e, 0u, n, l), 0.0);
    if rows > 64u {
        acc = dot16(w.a1, dg16(e, 16u, n, l), acc);
    }
    if rows > 128u {
        acc = dot16(w.a2, dg16(e, 32u, n, l), acc);
    }
    if rows > 192u {
        acc = dot16(w.a3, dg16(e, 48u, n, l), acc);
    }
    if KH > 1u {
        if rows > 256u {
            acc = dot16(w.b0, dg16(e, 64u, n, l), acc);
        }
        if rows > 320u {
            acc = dot16(w.b1, dg16(e, 80u, n, l), acc);
        }
        if rows > 384u {
            acc = dot16(w.b2, dg16(e, 96u, n, l), acc);
        }
        if rows > 448u {
            acc = dot16(w.b3, dg16(e, 112u, n, l), acc);
        }
    }
    return acc;
}

// Step s of the backward table, as step_params.
fn back_params(s: u32, l: u32) -> StepBackParams {
    let a = bwd_steps[s * 16u + l];
    let b = bwd_steps[s * 16u + 8u + l];
    return StepBackParams(
        subgroupBroadcast(a, 0u), subgroupBroadcast(a, 1u), subgroupBroadcast(a, 2u), subgroupBroadcast(a, 3u),
        subgroupBroadcast(a, 4u), subgroupBroadcast(a, 5u), subgroupBroadcast(a, 6u), subgroupBroadcast(a, 7u),
        subgroupBroadcast(b, 0u), subgroupBroadcast(b, 1u), subgroupBroadcast(b, 2u), subgroupBroadcast(b, 3u),
        subgroupBroadcast(b, 4u), subgroupBroadcast(b, 5u), subgroupBroadcast(b, 6u), subgroupBroadcast(b, 7u)
    );
}

// The recurrent product for row b of step sq, zero at the first step processed.
fn back_product(w: Resident, sq: StepBackParams, b: u32, rows: u32, l: u32) -> f32 {
    if (sq.flags & HAS_NEXT) == 0u {
        return 0.0;
    }
    return column_product(w, sq.dgn_off + b * rows, rows, l);
}

// dg_rec[e] = v.
fn set_dg(e: u32, v: f32) {
    dg_rec[e / 4u][e % 4u] = v;
}

// dy + carry_h for row b, unit k.
fn dh_in1(sq: StepBackParams, b: u32, k: u32) -> f32 {
    return dy[sq.dy_off + b * sq.dy_stride + k] + carry_h[sq.carry_off + b * sq.hidden + k];
}

@compute @workgroup_size(WG, 1, 1)
fn rnn_resident_backward(@builtin(local_invocation_index) k: u32,
                         @builtin(subgroup_invocation_id) l: u32,
                         @builtin(workgroup_id) group: vec3<u32>,
                         @builtin(num_workgroups) groups: vec3<u32>) {
    let H = q.hidden;
    let w = resident_column(q, k, H);
    let rows = group_rows(q.batch, groups.x);
    let b0 = group.x * rows;
    for (var s = 0u; s < arrayLength(&bwd_steps) / 16u; s++) {
        let sq = back_params(s, l);
        for (var b = b0; b < min(b0 + rows, sq.batch); b++) {
            let acc = back_product(w, sq, b, H, l);
            if k < H {
                let dh = acc + dh_in1(sq, b, k);
                let h = bstates[sq.hout_off + b * H + k];
                set_dg(sq.dg_off + b * H + k, rnn_cell_grad(dh, h, (sq.flags & RELU) != 0u));
                carry_h[sq.carry_off + b * H + k] = 0.0;
            }
        }
        storageBarrier();
    }
}

@compute @workgroup_size(WG, 1, 1)
fn lstm_resident_backward(@builtin(local_invocation_index) k: u32,
                          @builtin(subgroup_invocation_id) l: u32,
                          @builtin(workgroup_id) group: vec3<u32>,
                          @builtin(num_workgroups) groups: vec3<u32>) {
    let H = q.hidden;
    let GH = 4u * H;
    let w = resident_column(q, k, GH);
    let rows = group_rows(q.batch, groups.x);
    let b0 = group.x * rows;
    for (var s = 0u; s < arrayLength(&bwd_steps) / 16u; s++) {
        let sq = back_params(s, l);
        for (var b = b0; b < min(b0 + rows, sq.batch); b++) {
            let acc = back_product(w, sq, b, GH, l);
            if k < H {
                let ci = sq.carry_off + b * H + k;
                let dh = acc + dh_in1(sq, b, k);
                let a = sq.act_off + b * GH + k;
                let act = vec4<f32>(bacts[a], bacts[a + H], bacts[a + 2u * H],
                                    bacts[a + 3u * H]);
                let c = bstates[sq.cout_off + b * H + k];
                let c_prev = bstates[sq.cprev_off + b * H + k];
                let g = lstm_cell_grad(dh, aux[ci], act, c, c_prev);
                let d = sq.dg_off + b * GH + k;
                set_dg(d, g.dg.x);
                set_dg(d + H, g.dg.y);
                set_dg(d + 2u * H, g.dg.z);
                set_dg(d + 3u * H, g.dg.w);
                aux[ci] = g.dc * act.y;
                carry_h[ci] = 0.0;
            }
        }
        storageBarrier();
    }
}

@compute @workgroup_size(WG, 1, 1)
fn gru_resident_backward(@builtin(local_invocation_index) k: u32,
                         @builtin(subgroup_invocation_id) l: u32,
                         @builtin(workgroup_id) group: vec3<u32>,
                         @builtin(num_workgroups) groups: vec3<u32>) {
    let H = q.hidden;
    let GH = 3u * H;
    let w = resident_column(q, k, GH);
    let rows = group_rows(q.batch, groups.x);
    let b0 = group.x * rows;
    for (var s = 0u; s < arrayLength(&bwd_steps) / 16u; s++) {
        let sq = back_params(s, l);
        for (var b = b0; b < min(b0 + rows, sq.batch); b++) {
            let acc = back_product(w, sq, b, GH, l);
            if k < H {
                let ci = sq.carry_off + b * H + k;
                let dh = acc + dh_in1(sq, b, k);
                let a = sq.act_off + b * 4u * H + k;
                let act = vec4<f32>(bacts[a], bacts[a + H], bacts[a + 2u * H],
                                    bacts[a + 3u * H]);
                let da = gru_cell_grad(dh, act, bstates[sq.hprev_off + b * H + k]);
                let d = sq.dg_off + b * GH + k;
                // dg_x (binding 15) and dg_h (13, the recurrent product's input).
                aux[d] = da.x;
                aux[d + H] = da.y;
                aux[d + 2u * H] = da.z;
                set_dg(d, da.x);
                set_dg(d + H, da.y);
                set_dg(d + 2u * H, da.z * act.x);
                carry_h[ci] = dh * act.y;
            }
        }
        storageBarrier();
    }
}
