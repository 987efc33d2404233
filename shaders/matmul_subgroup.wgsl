// The GEMMs of matmul_vec4.wgsl for CPU adapters whose subgroups are their SIMD rows of 8
// lanes (lavapipe: wgpu's Features::SUBGROUP, subgroup size 8), operands bound as
// `array<vec4<f32>>`.
//
//   C[m, n] (+)= sum_k op(A)[m, k] * op(B)[k, n] (+ bias[n])
//
// On such an adapter a storage load costs a loop over the lanes (one scalar load each, with a
// bounds check), whatever the addresses, while arithmetic runs on all 8 lanes at once: loads,
// not FMAs, set the speed. Here the 8 lanes of a subgroup own the same 32 rows of C and each
// lane its own 4 adjacent columns (one vec4). The rows' operand is loaded once per subgroup,
// a quarter by each lane, and handed to the others with subgroupBroadcast (a register
// shuffle); only the columns' operand is loaded per lane. Per 4 k: 4 + 4 vec4 loads per
// lane for 512 FMAs, against 16 for 256 in matmul_vec4.wgsl's 8x8 blocks.
//
// A workgroup is 4 subgroups of 8 lanes (32 invocations, one-dimensional: naga gives
// subgroup_invocation_id only there). Lane l of subgroup s owns columns
// n0 = 4 * (8 * workgroup x + l) .. +3 and rows m0 = 32 * (4 * workgroup y + s) .. +31. The
// host picks these kernels only where the subgroup size is 8
// (AdapterInfo::subgroup_min_size = max = 8); subgroup s is taken to be local invocations
// 8s .. 8s+7, as lavapipe lays them out (its SIMD rows).
//
// Every lane takes part in every broadcast: lanes whose columns are past n read clamped
// columns and store nothing; a subgroup whose rows all lie past m leaves together. Rows past
// m read row m-1. Preconditions as matmul_vec4.wgsl (checked in src/kernels/matmul.rs): lda,
// ldb, ldc, n and every offset are multiples of 4. Prefixed with matmul_common.wgsl and
// subgroup_rows.wgsl (lanes8, rows_kb, rows_dot: each block of 8 rows as statements on
// constant indices).

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> c: array<vec4<f32>>;

// Rows of C a subgroup owns, and subgroups a workgroup.
const SG_ROWS: u32 = 32u;
const SUBGROUPS: u32 = 4u;

// Aᵀ·B: acc[4q + j] += av[q][j] * bv for the 8 rows 8h .. 8h+7 held by lanes 2h and 2h+1
// (four rows each, as one vec4 of a row of A stored [k, m]).
fn rows_outer(av: array<vec4<f32>, 8>, h: u32, bv: vec4<f32>,
              acc_in: array<vec4<f32>, 8>) -> array<vec4<f32>, 8> {
    let lo = av[2u * h];
    let hi = av[2u * h + 1u];
    var acc = acc_in;
    acc[0] = fma(vec4<f32>(lo.x), bv, acc[0]);
    acc[1] = fma(vec4<f32>(lo.y), bv, acc[1]);
    acc[2] = fma(vec4<f32>(lo.z), bv, acc[2]);
    acc[3] = fma(vec4<f32>(lo.w), bv, acc[3]);
    acc[4] = fma(vec4<f32>(hi.x), bv, acc[4]);
    acc[5] = fma(vec4<f32>(hi.y), bv, acc[5]);
    acc[6] = fma(vec4<f32>(hi.z), bv, acc[6]);
    acc[7] = fma(vec4<f32>(hi.w), bv, acc[7]);
    return acc;
}

// Rows m0 .. m0+31, columns n0 .. n0+3 of C from the four accumulator blocks (rows past m and
// columns past n store nothing); the bias, when there is one, is loaded once.
fn store32(m0: u32, n0: u32, acc0: array<vec4<f32>, 8>, acc1: array<vec4<f32>, 8>,
           acc2: array<vec4<f32>, 8>, acc3: array<vec4<f32>, 8>) {
    if n0 >= p.n {
        return;
    }
    var bv = vec4<f32>(0.0);
    if (p.flags & BIAS) != 0u {
        bv = bias[(p.bias_off + n0) / 4u];
    }
    for (var i = 0u; i < 8u; i++) {
        store4(m0 + i, n0, acc0[i] + bv);
        store4(m0 + 8u + i, n0, acc1[i] + bv);
        store4(m0 + 16u + i, n0, acc2[i] + bv);
        store4(m0 + 24u + i, n0, acc3[i] + bv);
    }
}

// Row gm, columns gn .. gn+3 of C (accumulating), when gm is a row of C.
fn store4(gm: u32, gn: u32, v: vec4<f32>) {
    if gm >= p.m {
        return;
    }
    let idx = (p.c_off + gm * p.ldc + gn) / 4u;
    if (p.flags & ACCUMULATE) != 0u {
        c[idx] = v + c[idx];
    } else {
        c[idx] = v;
    }
}

// Row r of A (stored [m, k]) as a vec4 index, clamped to the last row.
fn a_row(m0: u32, r: u32) -> u32 {
    return (p.a_off + min(m0 + r, p.m - 1u) * p.lda) / 4u;
}

// The k tail's 1..3 components of a vec4 along k, the others zero (the storage past k may
// hold anything, NaN included).
fn k_tail(v: vec4<f32>) -> vec4<f32> {
    let keep = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.k % 4u);
    return select(vec4<f32>(0.0), v, keep);
}

// A [m, k] row-major, B [k, n] row-major (dX = dG·W_ih).
@compute @workgroup_size(32, 1, 1)
fn matmul_nn_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(subgroup_invocation_id) lane: u32) {
    let n0 = (wg.x * LANES + lane) * 4u;
    let m0 = (wg.y * SUBGROUPS + lid.x / LANES) * SG_ROWS;
    if m0 >= p.m {
        return;
    }
    let lb = p.ldb / 4u;
    // Lanes past n read the last columns (every lane loads its share of A's rows).
    var bi = (p.b_off + min(n0, p.n - 4u)) / 4u;
    let r0 = a_row(m0, lane);
    let r1 = a_row(m0, 8u + lane);
    let r2 = a_row(m0, 16u + lane);
    let r3 = a_row(m0, 24u + lane);
    var acc0: array<vec4<f32>, 8>;
    var acc1: array<vec4<f32>, 8>;
    var acc2: array<vec4<f32>, 8>;
    var acc3: array<vec4<f32>, 8>;
    let full = p.k / 4u;
    for (var kq = 0u; kq < full; kq++) {
        let b0 = b[bi];
        let b1 = b[bi + lb];
        let b2 = b[bi + 2u * lb];
        let b3 = b[bi + 3u * lb];
        bi += 4u * lb;
        acc0 = rows_kb(lanes8(a[r0 + kq]), b0, b1, b2, b3, acc0);
        acc1 = rows_kb(lanes8(a[r1 + kq]), b0, b1, b2, b3, acc1);
        acc2 = rows_kb(lanes8(a[r2 + kq]), b0, b1, b2, b3, acc2);
        acc3 = rows_kb(lanes8(a[r3 + kq]), b0, b1, b2, b3, acc3);
    }
    let tail = p.k % 4u;
    if tail != 0u {
        // Rows of B past k are never used (zeros; the loads stay on row k-1).
        let last = bi + (tail - 1u) * lb;
        let z = vec4<f32>(0.0);
        let b0 = b[bi];
        let b1 = select(z, b[min(bi + lb, last)], tail > 1u);
        let b2 = select(z, b[min(bi + 2u * lb, last)], tail > 2u);
        acc0 = rows_kb(lanes8(k_tail(a[r0 + full])), b0, b1, b2, z, acc0);
        acc1 = rows_kb(lanes8(k_tail(a[r1 + full])), b0, b1, b2, z, acc1);
        acc2 = rows_kb(lanes8(k_tail(a[r2 + full])), b0, b1, b2, z, acc2);
        acc3 = rows_kb(lanes8(k_tail(a[r3 + full])), b0, b1, b2, z, acc3);
    }
    store32(m0, n0, acc0, acc1, acc2, acc3);
}

// A [m, k] row-major, B [n, k] row-major (Gx = X·W_ihᵀ): C's columns are dot products
// along k of A's rows (shared) with the lane's four rows of B.
@compute @workgroup_size(32, 1, 1)
fn matmul_nt_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(subgroup_invocation_id) lane: u32) {
    let n0 = (wg.x * LANES + lane) * 4u;
    let m0 = (wg.y * SUBGROUPS + lid.x / LANES) * SG_ROWS;
    if m0 >= p.m {
        return;
    }
    var brow: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) {
        brow[j] = (p.b_off + min(n0 + j, p.n - 1u) * p.ldb) / 4u;
    }
    let r0 = a_row(m0, lane);
    let r1 = a_row(m0, 8u + lane);
    let r2 = a_row(m0, 16u + lane);
    let r3 = a_row(m0, 24u + lane);
    var acc0: array<vec4<f32>, 8>;
    var acc1: array<vec4<f32>, 8>;
    var acc2: array<vec4<f32>, 8>;
    var acc3: array<vec4<f32>, 8>;
    let full = p.k / 4u;
    for (var kq = 0u; kq < full; kq++) {
        let b0 = b[brow[0] + kq];
        let b1 = b[brow[1] + kq];
        let b2 = b[brow[2] + kq];
        let b3 = b[brow[3] + kq];
        acc0 = rows_dot(lanes8(a[r0 + kq]), b0, b1, b2, b3, acc0);
        acc1 = rows_dot(lanes8(a[r1 + kq]), b0, b1, b2, b3, acc1);
        acc2 = rows_dot(lanes8(a[r2 + kq]), b0, b1, b2, b3, acc2);
        acc3 = rows_dot(lanes8(a[r3 + kq]), b0, b1, b2, b3, acc3);
    }
    if p.k % 4u != 0u {
        let b0 = k_tail(b[brow[0] + full]);
        let b1 = k_tail(b[brow[1] + full]);
        let b2 = k_tail(b[brow[2] + full]);
        let b3 = k_tail(b[brow[3] + full]);
        acc0 = rows_dot(lanes8(k_tail(a[r0 + full])), b0, b1, b2, b3, acc0);
        acc1 = rows_dot(lanes8(k_tail(a[r1 + full])), b0, b1, b2, b3, acc1);
        acc2 = rows_dot(lanes8(k_tail(a[r2 + full])), b0, b1, b2, b3, acc2);
        acc3 = rows_dot(lanes8(k_tail(a[r3 + full])), b0, b1, b2, b3, acc3);
    }
    store32(m0, n0, acc0, acc1, acc2, acc3);
}

// A [k, m] row-major, B [k, n] row-major (dW = dGᵀ·X, a long k = T·B). Per k, lane l loads
// columns m0 + 4l .. 4l+3 of A's row k (C's rows, shared) and its own vec4 of B's row k.
@compute @workgroup_size(32, 1, 1)
fn matmul_tn_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(subgroup_invocation_id) lane: u32) {
    let n0 = (wg.x * LANES + lane) * 4u;
    let m0 = (wg.y * SUBGROUPS + lid.x / LANES) * SG_ROWS;
    if m0 >= p.m {
        return;
    }
    let la = p.lda / 4u;
    let lb = p.ldb / 4u;
    // A's columns past m: the vec4 holding column m-1 (inside the row: lda >= m).
    var ai = (p.a_off + min(m0 + 4u * lane, (p.m - 1u) / 4u * 4u)) / 4u;
    var bi = (p.b_off + min(n0, p.n - 4u)) / 4u;
    var acc0: array<vec4<f32>, 8>;
    var acc1: array<vec4<f32>, 8>;
    var acc2: array<vec4<f32>, 8>;
    var acc3: array<vec4<f32>, 8>;
    for (var k = 0u; k < p.k; k++) {
        let av = lanes8(a[ai]);
        let bv = b[bi];
        ai += la;
        bi += lb;
        acc0 = rows_outer(av, 0u, bv, acc0);
        acc1 = rows_outer(av, 1u, bv, acc1);
        acc2 = rows_outer(av, 2u, bv, acc2);
        acc3 = rows_outer(av, 3u, bv, acc3);
    }
    store32(m0, n0, acc0, acc1, acc2, acc3);
}

// Aᵀ of A [k, m] (lda) into C [m, k] (ldc), for the Aᵀ·B products that encode_matmul runs as
// A·B on the copy (src/kernels/matmul.rs, transposes_a): on lavapipe, with A of 2^20
// elements and more, the copy and matmul_nn_sg ran 1.3-1.9x faster than matmul_tn_sg.
// Invocation (x, y) moves the 4x4 block of rows 4y .. 4y+3 (k) and columns 4x .. 4x+3 (m):
// four vec4 loads, four vec4 stores.
// Preconditions (checked on the host): m, k, lda, ldc and the offsets multiples of 4.
@compute @workgroup_size(8, 8, 1)
fn transpose_sg(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m0 = 4u * gid.x;
    let k0 = 4u * gid.y;
    if m0 >= p.m || k0 >= p.k {
        return;
    }
    let la = p.lda / 4u;
    let src = (p.a_off + k0 * p.lda + m0) / 4u;
    let t = transpose(mat4x4<f32>(a[src], a[src + la], a[src + 2u * la], a[src + 3u * la]));
    let lc = p.ldc / 4u;
    let dst = (p.c_off + m0 * p.ldc + k0) / 4u;
    c[dst] = t[0];
    c[dst + lc] = t[1];
    c[dst + 2u * lc] = t[2];
    c[dst + 3u * lc] = t[3];
}
