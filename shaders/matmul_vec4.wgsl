// The GEMMs of matmul.wgsl for CPU adapters (lavapipe and the like), with the operands bound
// as `array<vec4<f32>>`: one load is 16 contiguous bytes, and the 8 invocations that share a
// SIMD register (x = 0..7 of an 8x8 workgroup) read 8 adjacent vec4s of B, or the same vec4
// of A. No workgroup memory, no barriers, no bounds checks inside the k loop.
//
//   C[m, n] (+)= sum_k op(A)[m, k] * op(B)[k, n] (+ bias[n])
//
// Invocation (x, y) owns rows 8y .. 8y+7 and the eight adjacent columns 8x .. 8x+7 of C
// (two vec4s; the second is not stored past n): 64 accumulators in registers, which halves
// the loads per FMA against 8x4 (measured: ~25 against ~19 GFLOP/s at 512³ on lavapipe).
//
// Preconditions, checked on the host (src/kernels/matmul.rs::vec4_kernel): lda, ldb, ldc
// and the offsets of A, B, C and the bias are multiples of 4, and n is a multiple of 4.
// Rows past m and the k tail read in-bounds neighbours (or zero, under robust access) that
// are masked or never stored.

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> c: array<vec4<f32>>;

// Row gm, columns gn .. gn+3 of C (bias, accumulate), when gm is a row of C.
fn store4(gm: u32, gn: u32, v: vec4<f32>) {
    if gm >= p.m {
        return;
    }
    var x = v;
    if (p.flags & BIAS) != 0u {
        x += bias[(p.bias_off + gn) / 4u];
    }
    let idx = (p.c_off + gm * p.ldc + gn) / 4u;
    if (p.flags & ACCUMULATE) != 0u {
        x += c[idx];
    }
    c[idx] = x;
}

fn store8(m0: u32, n0: u32, acc: array<vec4<f32>, 8>) {
    for (var i = 0u; i < 8u; i++) {
        store4(m0 + i, n0, acc[i]);
    }
}

// A [m, k] row-major, B [k, n] row-major (dX = dG·W_ih). Per 4 k: eight vec4s of A (one per
// row, the same for all x), eight of B (two adjacent per row of B), 256 FMAs.
@compute @workgroup_size(8, 8, 1)
fn matmul_nn_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 8u;
    let m0 = gid.y * 8u;
    if n0 >= p.n || m0 >= p.m {
        return;
    }
    var acc: array<vec4<f32>, 8>;
    var acc2: array<vec4<f32>, 8>;
    // Rows past m read row m-1 (in bounds) and are not stored.
    var arow: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        arow[i] = (p.a_off + min(m0 + i, p.m - 1u) * p.lda) / 4u;
    }
    let lb = p.ldb / 4u;
    var bi = (p.b_off + n0) / 4u;
    let k4 = p.k / 4u;
    for (var kq = 0u; kq < k4; kq++) {
        let b0 = b[bi];
        let b1 = b[bi + lb];
        let b2 = b[bi + 2u * lb];
        let b3 = b[bi + 3u * lb];
        let c0 = b[bi + 1u];
        let c1 = b[bi + lb + 1u];
        let c2 = b[bi + 2u * lb + 1u];
        let c3 = b[bi + 3u * lb + 1u];
        bi += 4u * lb;
        for (var i = 0u; i < 8u; i++) {
            let av = a[arow[i] + kq];
            acc[i] = fma(vec4<f32>(av.x), b0, acc[i]);
            acc[i] = fma(vec4<f32>(av.y), b1, acc[i]);
            acc[i] = fma(vec4<f32>(av.z), b2, acc[i]);
            acc[i] = fma(vec4<f32>(av.w), b3, acc[i]);
            acc2[i] = fma(vec4<f32>(av.x), c0, acc2[i]);
            acc2[i] = fma(vec4<f32>(av.y), c1, acc2[i]);
            acc2[i] = fma(vec4<f32>(av.z), c2, acc2[i]);
            acc2[i] = fma(vec4<f32>(av.w), c3, acc2[i]);
        }
    }
    // k tail: one to three rows of B.
    for (var k = k4 * 4u; k < p.k; k++) {
        let bv = b[bi];
        let cv = b[bi + 1u];
        bi += lb;
        for (var i = 0u; i < 8u; i++) {
            let av = vec4<f32>(a[arow[i] + k / 4u][k % 4u]);
            acc[i] = fma(av, bv, acc[i]);
            acc2[i] = fma(av, cv, acc2[i]);
        }
    }
    store8(m0, n0, acc);
    if n0 + 4u < p.n {
        store8(m0, n0 + 4u, acc2);
    }
}

// A [m, k] row-major, B [n, k] row-major (Gx = X·W_ihᵀ): both operands run along k, so C's
// columns are dot products. Invocation (x, y) owns rows 8y .. 8y+7 and columns 8x .. 8x+7
// (columns past n read row n-1 of B and are not stored). Per 4 k: eight vec4s of A (the same
// for all x) and eight of B, 256 FMAs.
@compute @workgroup_size(8, 8, 1)
fn matmul_nt_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 8u;
    let m0 = gid.y * 8u;
    if n0 >= p.n || m0 >= p.m {
        return;
    }
    var acc: array<vec4<f32>, 8>;
    var acc2: array<vec4<f32>, 8>;
    var arow: array<u32, 8>;
    var brow: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        arow[i] = (p.a_off + min(m0 + i, p.m - 1u) * p.lda) / 4u;
        brow[i] = (p.b_off + min(n0 + i, p.n - 1u) * p.ldb) / 4u;
    }
    let full = p.k / 4u;
    for (var kq = 0u; kq < full; kq++) {
        var bv: array<vec4<f32>, 8>;
        for (var j = 0u; j < 8u; j++) {
            bv[j] = b[brow[j] + kq];
        }
        for (var i = 0u; i < 8u; i++) {
            let av = a[arow[i] + kq];
            acc[i] += vec4<f32>(dot(av, bv[0]), dot(av, bv[1]), dot(av, bv[2]), dot(av, bv[3]));
            acc2[i] += vec4<f32>(dot(av, bv[4]), dot(av, bv[5]), dot(av, bv[6]), dot(av, bv[7]));
        }
    }
    if full * 4u < p.k {
        // The k tail: the components past k (neighbouring data, possibly not finite) are
        // replaced by zeros on both sides.
        let keep = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.k - full * 4u);
        let z = vec4<f32>(0.0);
        var bv: array<vec4<f32>, 8>;
        for (var j = 0u; j < 8u; j++) {
            bv[j] = select(z, b[brow[j] + full], keep);
        }
        for (var i = 0u; i < 8u; i++) {
            let av = select(z, a[arow[i] + full], keep);
            acc[i] += vec4<f32>(dot(av, bv[0]), dot(av, bv[1]), dot(av, bv[2]), dot(av, bv[3]));
            acc2[i] += vec4<f32>(dot(av, bv[4]), dot(av, bv[5]), dot(av, bv[6]), dot(av, bv[7]));
        }
    }
    store8(m0, n0, acc);
    if n0 + 4u < p.n {
        store8(m0, n0 + 4u, acc2);
    }
}

// A [k, m] row-major, B [k, n] row-major (dW = dGᵀ·X, a long k = T·B). Per k, two vec4s of
// A (rows m0..m0+7, the same for all x) and two of B, 64 FMAs.
@compute @workgroup_size(8, 8, 1)
fn matmul_tn_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 8u;
    let m0 = gid.y * 8u;
    if n0 >= p.n || m0 >= p.m {
        return;
    }
    var acc: array<vec4<f32>, 8>;
    var acc2: array<vec4<f32>, 8>;
    let la = p.lda / 4u;
    let lb = p.ldb / 4u;
    var ai = (p.a_off + m0) / 4u;
    var bi = (p.b_off + n0) / 4u;
    for (var k = 0u; k < p.k; k++) {
        let a0 = a[ai];
        let a1 = a[ai + 1u];
        let bv = b[bi];
        let bw = b[bi + 1u];
        ai += la;
        bi += lb;
        for (var i = 0u; i < 4u; i++) {
            acc[i] = fma(vec4<f32>(a0[i]), bv, acc[i]);
            acc[i + 4u] = fma(vec4<f32>(a1[i]), bv, acc[i + 4u]);
            acc2[i] = fma(vec4<f32>(a0[i]), bw, acc2[i]);
            acc2[i + 4u] = fma(vec4<f32>(a1[i]), bw, acc2[i + 4u]);
        }
    }
    store8(m0, n0, acc);
    if n0 + 4u < p.n {
        store8(m0, n0 + 4u, acc2);
    }
}
