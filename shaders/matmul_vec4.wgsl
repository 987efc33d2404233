// The GEMMs of matmul.wgsl for CPU adapters (lavapipe and the like), with the operands bound
// as `array<vec4<f32>>`: one load is 16 contiguous bytes, and the 8 invocations that share a
// SIMD register (x = 0..7 of an 8x8 workgroup) read 8 adjacent vec4s of B, or the same vec4
// of A. No workgroup memory, no barriers, no bounds checks inside the k loop.
//
//   C[m, n] (+)= sum_k op(A)[m, k] * op(B)[k, n] (+ bias[n])
//
// Invocation (x, y) owns rows 8y .. 8y+7 and the four adjacent columns 4x .. 4x+3 of C:
// 32 accumulators (eight vec4s) in registers.
//
// Preconditions, checked on the host (src/kernels/matmul.rs::vec4_eligible): lda, ldb, ldc
// and the offsets of A, B, C and the bias are multiples of 4, and n is a multiple of 4.
// Rows past m and the k tail read in-bounds neighbours (or zero, under robust access) that
// are masked or never stored.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
    bias_off: u32,
    flags: u32,
    _pad: u32,
}

// Flag bits, named as in matmul.wgsl and src/kernels/matmul.rs.
const ACCUMULATE: u32 = 4u;
const BIAS: u32 = 8u;

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
// row, the same for all x), four of B (adjacent across x), 128 FMAs.
@compute @workgroup_size(8, 8, 1)
fn matmul_nn_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let m0 = gid.y * 8u;
    if n0 >= p.n || m0 >= p.m {
        return;
    }
    var acc: array<vec4<f32>, 8>;
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
        bi += 4u * lb;
        for (var i = 0u; i < 8u; i++) {
            let av = a[arow[i] + kq];
            acc[i] = fma(vec4<f32>(av.x), b0, acc[i]);
            acc[i] = fma(vec4<f32>(av.y), b1, acc[i]);
            acc[i] = fma(vec4<f32>(av.z), b2, acc[i]);
            acc[i] = fma(vec4<f32>(av.w), b3, acc[i]);
        }
    }
    // k tail: one to three rows of B.
    for (var k = k4 * 4u; k < p.k; k++) {
        let bv = b[bi];
        bi += lb;
        for (var i = 0u; i < 8u; i++) {
            let av = a[arow[i] + k / 4u];
            acc[i] = fma(vec4<f32>(av[k % 4u]), bv, acc[i]);
        }
    }
    store8(m0, n0, acc);
}

// A [m, k] row-major, B [n, k] row-major (Gx = X·W_ihᵀ): both operands run along k, so C's
// four columns are dot products. Per 4 k: eight vec4s of A, four of B, 128 FMAs.
@compute @workgroup_size(8, 8, 1)
fn matmul_nt_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let m0 = gid.y * 8u;
    if n0 >= p.n || m0 >= p.m {
        return;
    }
    var acc: array<vec4<f32>, 8>;
    var arow: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        arow[i] = (p.a_off + min(m0 + i, p.m - 1u) * p.lda) / 4u;
    }
    let lb = p.ldb / 4u;
    let b_base = (p.b_off + n0 * p.ldb) / 4u;
    let full = p.k / 4u;
    for (var kq = 0u; kq < full; kq++) {
        let b0 = b[b_base + kq];
        let b1 = b[b_base + lb + kq];
        let b2 = b[b_base + 2u * lb + kq];
        let b3 = b[b_base + 3u * lb + kq];
        for (var i = 0u; i < 8u; i++) {
            let av = a[arow[i] + kq];
            acc[i] += vec4<f32>(dot(av, b0), dot(av, b1), dot(av, b2), dot(av, b3));
        }
    }
    if full * 4u < p.k {
        // The k tail: the components past k (neighbouring data, possibly not finite) are
        // replaced by zeros on both sides.
        let keep = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.k - full * 4u);
        let z = vec4<f32>(0.0);
        let b0 = select(z, b[b_base + full], keep);
        let b1 = select(z, b[b_base + lb + full], keep);
        let b2 = select(z, b[b_base + 2u * lb + full], keep);
        let b3 = select(z, b[b_base + 3u * lb + full], keep);
        for (var i = 0u; i < 8u; i++) {
            let av = select(z, a[arow[i] + full], keep);
            acc[i] += vec4<f32>(dot(av, b0), dot(av, b1), dot(av, b2), dot(av, b3));
        }
    }
    store8(m0, n0, acc);
}

// A [k, m] row-major, B [k, n] row-major (dW = dGᵀ·X): per k, two vec4s of A (rows m0..m0+7
// of C, the same for all x) and one of B, 32 FMAs.
@compute @workgroup_size(8, 8, 1)
fn matmul_tn_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let m0 = gid.y * 8u;
    if n0 >= p.n || m0 >= p.m {
        return;
    }
    var acc: array<vec4<f32>, 8>;
    let la = p.lda / 4u;
    let lb = p.ldb / 4u;
    var ai = (p.a_off + m0) / 4u;
    var bi = (p.b_off + n0) / 4u;
    for (var k = 0u; k < p.k; k++) {
        let a0 = a[ai];
        let a1 = a[ai + 1u];
        let bv = b[bi];
        ai += la;
        bi += lb;
        acc[0] = fma(vec4<f32>(a0.x), bv, acc[0]);
        acc[1] = fma(vec4<f32>(a0.y), bv, acc[1]);
        acc[2] = fma(vec4<f32>(a0.z), bv, acc[2]);
        acc[3] = fma(vec4<f32>(a0.w), bv, acc[3]);
        acc[4] = fma(vec4<f32>(a1.x), bv, acc[4]);
        acc[5] = fma(vec4<f32>(a1.y), bv, acc[5]);
        acc[6] = fma(vec4<f32>(a1.z), bv, acc[6]);
        acc[7] = fma(vec4<f32>(a1.w), bv, acc[7]);
    }
    store8(m0, n0, acc);
}
