// Shared by matmul.wgsl and matmul_vec4.wgsl (prepended to each in the shader registry,
// src/gpu/kernel.rs): the parameter struct, mirrored by src/kernels/matmul.rs::MatmulParams,
// and its flag bits, as in src/kernels/matmul.rs::flags.

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
    // bit 0: TRANS_A, bit 1: TRANS_B, bit 2: ACCUMULATE (C += ...), bit 3: BIAS
    flags: u32,
    _pad: u32,
}

const TRANS_A: u32 = 1u;
const TRANS_B: u32 = 2u;
const ACCUMULATE: u32 = 4u;
const BIAS: u32 = 8u;
