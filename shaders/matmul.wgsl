// Batched-free general matrix multiply for the RNN plan.
//
//   C[m, n] (+)= sum_k op(A)[m, k] * op(B)[k, n] (+ bias[n])
//
// op(A) = A stored [m, k] with leading dimension lda, or A stored [k, m] when TRANS_A.
// op(B) = B stored [k, n] with leading dimension ldb, or B stored [n, k] when TRANS_B.
// The RNN needs all three forms: Gx = X·W_ihᵀ + b_ih (NT), dX = dG·W_ih (NN),
// dW = dGᵀ·X (TN, accumulated). Offsets are in elements, so one bound buffer can hold many
// matrices (the flat parameter buffer, a time slice of a sequence).
//
// Tiling: a 16x16 workgroup computes a 64x64 tile of C; thread (x, y) owns rows y + 16i
// (i < 4) and the four adjacent columns 4x..4x+3, accumulated as vec4s in registers. K advances 16 at a time
// through workgroup memory; tile loads pick the thread-to-element map that reads memory
// contiguously for each storage order.

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// tile_a: [TK][TM] scalars; tile_b: [TK][TN/4] vec4s (four adjacent columns).
var<workgroup> tile_a: array<f32, 1024>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16, 1)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tid = lid.y * 16u + lid.x;
    let m0 = wid.y * TM;
    let n0 = wid.x * TN;
    let trans_a = (p.flags & TRANS_A) != 0u;
    let trans_b = (p.flags & TRANS_B) != 0u;
    // Thread (x, y) owns rows y + 16i (i < 4) and columns 4x .. 4x+3: four vec4
    // accumulators that stay in registers.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var i = 0u; i < 4u; i++) {
            let e = tid + i * 256u;
            // A tile element (kk, mm)
            var kk: u32;
            var mm: u32;
            if trans_a {
                kk = e / TM;
                mm = e % TM;
            } else {
                kk = e % TK;
                mm = e / TK;
            }
            let gm = m0 + mm;
            let gk = k0 + kk;
            var va = 0.0;
            if gm < p.m && gk < p.k {
                if trans_a {
                    va = a[p.a_off + gk * p.lda + gm];
                } else {
                    va = a[p.a_off + gm * p.lda + gk];
                }
            }
            tile_a[kk * TM + mm] = va;
            // B tile element (kb, nn)
            var kb: u32;
            var nn: u32;
            if trans_b {
                kb = e % TK;
                nn = e / TK;
            } else {
                kb = e / TN;
                nn = e % TN;
            }
            let gn = n0 + nn;
            let gkb = k0 + kb;
            var vb = 0.0;
            if gn < p.n && gkb < p.k {
                if trans_b {
                    vb = b[p.b_off + gn * p.ldb + gkb];
                } else {
                    vb = b[p.b_off + gkb * p.ldb + gn];
                }
            }
            tile_b[kb * 16u + nn / 4u][nn % 4u] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let bv = tile_b[kk * 16u + lid.x];
            let ab = kk * TM + lid.y;
            acc0 = fma(vec4<f32>(tile_a[ab]), bv, acc0);
            acc1 = fma(vec4<f32>(tile_a[ab + 16u]), bv, acc1);
            acc2 = fma(vec4<f32>(tile_a[ab + 32u]), bv, acc2);
            acc3 = fma(vec4<f32>(tile_a[ab + 48u]), bv, acc3);
        }
        workgroupBarrier();
    }
    store_row(m0 + lid.y, n0 + 4u * lid.x, acc0);
    store_row(m0 + lid.y + 16u, n0 + 4u * lid.x, acc1);
    store_row(m0 + lid.y + 32u, n0 + 4u * lid.x, acc2);
    store_row(m0 + lid.y + 48u, n0 + 4u * lid.x, acc3);
}

// Writes up to four adjacent elements of row gm from column gn, with bias and accumulate.
fn store_row(gm: u32, gn: u32, v: vec4<f32>) {
    if gm >= p.m {
        return;
    }
    let accumulate = (p.flags & ACCUMULATE) != 0u;
    let has_bias = (p.flags & BIAS) != 0u;
    for (var j = 0u; j < 4u; j++) {
        let n = gn + j;
        if n >= p.n {
            return;
        }
        var x = v[j];
        if has_bias {
            x += bias[p.bias_off + n];
        }
        let idx = p.c_off + gm * p.ldc + n;
        if accumulate {
            x += c[idx];
        }
        c[idx] = x;
    }
}

// The same product without workgroup memory or barriers, for adapters where workgroup
// memory is ordinary cached memory and barriers are expensive (CPU adapters such as
// lavapipe): thread (x, y) of an 8x8 workgroup computes a 4x4 block of C straight from
// A and B.
@compute @workgroup_size(8, 8, 1)
fn matmul_direct(@builtin(global_invocation_id) gid: vec3<u32>) {
    let trans_a = (p.flags & TRANS_A) != 0u;
    let trans_b = (p.flags & TRANS_B) != 0u;
    let m0 = gid.y * 4u;
    let n0 = gid.x * 4u;
    if m0 >= p.m || n0 >= p.n {
        return;
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    // Rows and columns past the edge read row/column 0 (in range) and are not stored.
    let mr = vec4<u32>(m0, m0 + 1u, m0 + 2u, m0 + 3u);
    let nc = vec4<u32>(n0, n0 + 1u, n0 + 2u, n0 + 3u);
    let ms = select(vec4<u32>(0u), mr, mr < vec4<u32>(p.m));
    let ns = select(vec4<u32>(0u), nc, nc < vec4<u32>(p.n));
    for (var k = 0u; k < p.k; k++) {
        var av: vec4<f32>;
        var bv: vec4<f32>;
        if trans_a {
            let base = p.a_off + k * p.lda;
            av = vec4<f32>(a[base + ms.x], a[base + ms.y], a[base + ms.z], a[base + ms.w]);
        } else {
            av = vec4<f32>(a[p.a_off + ms.x * p.lda + k], a[p.a_off + ms.y * p.lda + k], a[p.a_off + ms.z * p.lda + k], a[p.a_off + ms.w * p.lda + k]);
        }
        if trans_b {
            bv = vec4<f32>(b[p.b_off + ns.x * p.ldb + k], b[p.b_off + ns.y * p.ldb + k], b[p.b_off + ns.z * p.ldb + k], b[p.b_off + ns.w * p.ldb + k]);
        } else {
            let base = p.b_off + k * p.ldb;
            bv = vec4<f32>(b[base + ns.x], b[base + ns.y], b[base + ns.z], b[base + ns.w]);
        }
        acc0 = fma(vec4<f32>(av.x), bv, acc0);
        acc1 = fma(vec4<f32>(av.y), bv, acc1);
        acc2 = fma(vec4<f32>(av.z), bv, acc2);
        acc3 = fma(vec4<f32>(av.w), bv, acc3);
    }
    store_row(m0, n0, acc0);
    store_row(m0 + 1u, n0, acc1);
    store_row(m0 + 2u, n0, acc2);
    store_row(m0 + 3u, n0, acc3);
}
