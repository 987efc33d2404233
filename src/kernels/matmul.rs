//! `shaders/matmul.wgsl`: `C (+)= op(A)·op(B) (+ bias)`, the GEMMs around the time loop.

use bytemuck::{Pod, Zeroable};

use super::{groups, u32_of, Access, KernelDesc, Shader};
use crate::error::{Error, Result};
use crate::gpu::Recorder;

/// Entry `matmul`.
pub const MATMUL: KernelDesc = KernelDesc {
    shader: Shader::Matmul,
    entry: "matmul",
    base: 0,
    bindings: &[
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::Read),
        Some(Access::ReadWrite),
    ],
};

/// Entry `matmul_direct`: no workgroup memory, for CPU adapters.
pub const MATMUL_DIRECT: KernelDesc = KernelDesc {
    shader: Shader::Matmul,
    entry: "matmul_direct",
    base: 0,
    bindings: MATMUL.bindings,
};

/// Entries of `shaders/matmul_vec4.wgsl` (CPU adapters, vec4-aligned operands): one per
/// storage order, A·B, A·Bᵀ and Aᵀ·B.
pub const MATMUL_NN_VEC4: KernelDesc = KernelDesc {
    shader: Shader::MatmulVec4,
    entry: "matmul_nn_vec4",
    base: 0,
    bindings: MATMUL.bindings,
};

/// See [`MATMUL_NN_VEC4`].
pub const MATMUL_NT_VEC4: KernelDesc = KernelDesc {
    entry: "matmul_nt_vec4",
    ..MATMUL_NN_VEC4
};

/// See [`MATMUL_NN_VEC4`].
pub const MATMUL_TN_VEC4: KernelDesc = KernelDesc {
    entry: "matmul_tn_vec4",
    ..MATMUL_NN_VEC4
};

/// Entries of `shaders/matmul_subgroup.wgsl` (CPU adapters whose subgroups are 8 lanes, see
/// [`crate::Gpu::shares_subgroup_loads`]; the operands as for the vec4 ones): one per storage
/// order, A·B, A·Bᵀ and Aᵀ·B.
pub const MATMUL_NN_SG: KernelDesc = KernelDesc {
    shader: Shader::MatmulSubgroup,
    entry: "matmul_nn_sg",
    base: 0,
    bindings: MATMUL.bindings,
};

/// See [`MATMUL_NN_SG`].
pub const MATMUL_NT_SG: KernelDesc = KernelDesc {
    entry: "matmul_nt_sg",
    ..MATMUL_NN_SG
};

/// See [`MATMUL_NN_SG`].
pub const MATMUL_TN_SG: KernelDesc = KernelDesc {
    entry: "matmul_tn_sg",
    ..MATMUL_NN_SG
};

/// Entry `transpose_sg` of `shaders/matmul_subgroup.wgsl`: `C[m, k] = A[k, m]ᵀ` in 4x4
/// blocks, the copy [`encode_matmul`] makes where [`transposes_a`].
pub const TRANSPOSE_SG: KernelDesc = KernelDesc {
    entry: "transpose_sg",
    bindings: &[Some(Access::Read), None, None, Some(Access::ReadWrite)],
    ..MATMUL_NN_SG
};

/// Flag bits of [`MatmulParams::flags`] (WGSL consts of the same names).
pub mod flags {
    /// A is stored transposed.
    pub const TRANS_A: u32 = 1;
    /// B is stored transposed.
    pub const TRANS_B: u32 = 2;
    /// `C += ...` instead of `C = ...`.
    pub const ACCUMULATE: u32 = 4;
    /// Add the bias over columns.
    pub const BIAS: u32 = 8;
}

/// Rows and columns of C one workgroup of `matmul` owns (WGSL `TM`, `TN`): 16x16
/// invocations of 4x4.
pub const TILE: (usize, usize) = (64, 64);

/// Rows and columns of C one invocation of `matmul_direct` owns (8x8 invocations a
/// workgroup).
pub const DIRECT_BLOCK: (usize, usize) = (4, 4);

/// Rows and columns of C one invocation of a vec4 kernel owns (8x8 invocations a workgroup).
pub const VEC4_BLOCK: (usize, usize) = (8, 8);

/// Rows and columns of C one subgroup kernel's workgroup owns: 4 subgroups (WGSL
/// `@workgroup_size(32)`) of 32 rows, each of their 8 lanes 4 columns.
pub const SG_WORKGROUP_BLOCK: (usize, usize) = (4 * 32, 8 * 4);

/// The subgroup GEMMs run only for more rows of C than this (see [`matmul_kernel`]).
pub const SUBGROUP_MIN_ROWS: usize = 16;

/// Mirror of WGSL `MatmulParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct MatmulParams {
    /// Rows of C.
    pub m: u32,
    /// Columns of C.
    pub n: u32,
    /// Inner dimension.
    pub k: u32,
    /// Leading dimension of A as stored.
    pub lda: u32,
    /// Leading dimension of B as stored.
    pub ldb: u32,
    /// Leading dimension of C.
    pub ldc: u32,
    /// Element offset of A.
    pub a_off: u32,
    /// Element offset of B.
    pub b_off: u32,
    /// Element offset of C.
    pub c_off: u32,
    /// Element offset of the bias.
    pub bias_off: u32,
    /// See [`flags`].
    pub flags: u32,
    /// Padding.
    pub _pad: u32,
}

/// A matrix inside a buffer: element offset and leading dimension (row stride as stored).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// The buffer.
    pub buffer: &'a wgpu::Buffer,
    /// Element offset of the first element.
    pub offset: usize,
    /// Row stride as stored.
    pub ld: usize,
}

impl<'a> MatRef<'a> {
    /// The matrix at element `offset` of `buffer`, rows `ld` elements apart as stored.
    pub fn new(buffer: &'a wgpu::Buffer, offset: usize, ld: usize) -> Self {
        MatRef { buffer, offset, ld }
    }
}

/// One GEMM: `C[m, n] (+)= op(A)[m, k] · op(B)[k, n] (+ bias[n])`.
#[derive(Clone, Copy, Debug)]
pub struct Gemm<'a> {
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// A, stored `[m, k]`, or `[k, m]` when `trans_a`.
    pub a: MatRef<'a>,
    /// Whether A is stored transposed.
    pub trans_a: bool,
    /// B, stored `[k, n]`, or `[n, k]` when `trans_b`.
    pub b: MatRef<'a>,
    /// Whether B is stored transposed.
    pub trans_b: bool,
    /// Optional bias over columns: buffer and element offset.
    pub bias: Option<(&'a wgpu::Buffer, usize)>,
    /// C.
    pub c: MatRef<'a>,
    /// `C += ...` instead of `C = ...`.
    pub accumulate: bool,
}

/// The vec4 kernel for `g` (the subgroup one with `subgroups`), when its storage order has one
/// and every leading dimension and offset is a multiple of 4 (whole vec4s) and so is n (C's
/// columns come four at a time).
fn vec4_kernel(g: &Gemm, subgroups: bool) -> Option<&'static KernelDesc> {
    let aligned = [
        g.n,
        g.a.ld,
        g.b.ld,
        g.c.ld,
        g.a.offset,
        g.b.offset,
        g.c.offset,
        g.bias.map_or(0, |b| b.1),
    ]
    .iter()
    .all(|x| x.is_multiple_of(4));
    match (aligned, subgroups, g.trans_a, g.trans_b) {
        (true, false, false, false) => Some(&MATMUL_NN_VEC4),
        (true, false, false, true) => Some(&MATMUL_NT_VEC4),
        (true, false, true, false) => Some(&MATMUL_TN_VEC4),
        (true, true, false, false) => Some(&MATMUL_NN_SG),
        (true, true, false, true) => Some(&MATMUL_NT_SG),
        (true, true, true, false) => Some(&MATMUL_TN_SG),
        _ => None,
    }
}

/// The kernel `encode_matmul` records for `g` on `gpu`: the tiled one on GPUs; on CPU adapters
/// (see [`crate::Gpu::prefers_direct_kernels`]) where the operands allow a vec4 one, the
/// subgroup build where [`crate::Gpu::shares_subgroup_loads`] and C has more than
/// [`SUBGROUP_MIN_ROWS`] rows, else the plain vec4 one; else the scalar direct one.
pub fn matmul_kernel(gpu: &crate::Gpu, g: &Gemm) -> &'static KernelDesc {
    if !gpu.prefers_direct_kernels() {
        return &MATMUL;
    }
    // A subgroup owns 32 rows of C: for 16 rows or fewer half of its work would be wasted,
    // and the 8-row blocks of the plain vec4 kernels are faster there.
    let subgroups = gpu.shares_subgroup_loads() && g.m > SUBGROUP_MIN_ROWS;
    vec4_kernel(g, subgroups).unwrap_or(&MATMUL_DIRECT)
}

/// Elements of A from which [`transposes_a`] holds: up to here A stays in the CPU's caches
/// and the Aᵀ·B kernel keeps up.
pub const TRANSPOSE_MIN_ELEMENTS: usize = 1 << 20;

/// Whether [`encode_matmul`] runs `g`, an Aᵀ·B, as A·B on a copy of Aᵀ made by
/// [`TRANSPOSE_SG`] on `gpu` (in [`crate::Gpu`]'s scratch buffer): where the subgroup Aᵀ·B
/// kernel would run, m and k are multiples of 4 and A has at least
/// [`TRANSPOSE_MIN_ELEMENTS`]. Each step of that kernel's k loop reads a row of A and of B,
/// each from another page; our reading is that the CPU's prefetchers do not follow that, so
/// once A outgrows the caches the kernel waits on memory. On lavapipe (2 cores, n = 128, four
/// alternating rounds) the copy and `matmul_nn_sg` together ran m x k = 768..2048 x
/// 1024..2048 at 22-25 GFLOP/s against `matmul_tn_sg`'s 13-18, and 1024 x 256 x 2048 at 30
/// against 21; with A at 1.5 MB and less (384 x 1024, 512 x 512, 256 x 256) `matmul_tn_sg`
/// was 1.07-1.3x faster than the copy and product. Unrolling its k loop by 4 and loading a
/// row ahead did not help. The scratch buffer stays with the `Gpu`, as large as the largest
/// such A so far.
pub fn transposes_a(gpu: &crate::Gpu, g: &Gemm) -> bool {
    // The copy's grid grows with k, the Aᵀ·B kernel's does not: past the adapter's
    // workgroups per dimension A stays in place.
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    g.trans_a
        && std::ptr::eq(matmul_kernel(gpu, g), &MATMUL_TN_SG)
        && g.m.is_multiple_of(4)
        && g.k.is_multiple_of(4)
        && g.m.saturating_mul(g.k) >= TRANSPOSE_MIN_ELEMENTS
        && g.m.div_ceil(TRANSPOSE_BLOCK) <= max
        && g.k.div_ceil(TRANSPOSE_BLOCK) <= max
}

/// Rows and columns of A one workgroup of [`TRANSPOSE_SG`] moves (8x8 invocations of 4x4).
pub const TRANSPOSE_BLOCK: usize = 32;

/// Records one GEMM.
pub fn encode_matmul(rec: &mut Recorder, g: &Gemm) -> Result<()> {
    encode_matmuls_sharing_a(rec, std::slice::from_ref(g))
}

/// Whether two matrices are the same elements of the same buffer, read the same way.
fn same_matrix(a: &MatRef, b: &MatRef) -> bool {
    std::ptr::eq(a.buffer, b.buffer) && a.offset == b.offset && a.ld == b.ld
}

/// Records `gemms`. Those that [`transposes_a`] and read the first such one's A (the same
/// matrix, m and k) share one transposed copy of it: an LSTM's `dW_ih += dGᵀ·X` and
/// `dW_hh += dGᵀ·H_prev` both read dG. The others are recorded as [`encode_matmul`] would,
/// after them. None of `gemms` may write what another reads (A is copied once, before all).
pub fn encode_matmuls_sharing_a(rec: &mut Recorder, gemms: &[Gemm]) -> Result<()> {
    let gpu = rec.gpu();
    let copies = |g: &Gemm| g.m > 0 && g.n > 0 && transposes_a(gpu, g);
    let Some(first) = gemms.iter().find(|g| copies(g)) else {
        return gemms.iter().try_for_each(|g| encode_gemm(rec, g));
    };
    let shares =
        |g: &Gemm| copies(g) && g.m == first.m && g.k == first.k && same_matrix(&g.a, &first.a);
    // A copy over the adapter's buffer limits leaves the Aᵀ·B kernel to read A in place.
    match gpu.scratch(first.m.saturating_mul(first.k)) {
        Ok(a_t) => {
            encode_transpose(rec, first.a, first.k, first.m, &a_t)?;
            for g in gemms.iter().filter(|g| shares(g)) {
                let a = MatRef::new(&a_t, 0, g.k);
                encode_gemm(
                    rec,
                    &Gemm {
                        a,
                        trans_a: false,
                        ..*g
                    },
                )?;
            }
        }
        Err(Error::Limit { .. }) => gemms
            .iter()
            .filter(|g| shares(g))
            .try_for_each(|g| encode_gemm(rec, g))?,
        Err(e) => return Err(e),
    }
    // Each of the others on its own: some may take a copy of their own A.
    gemms
        .iter()
        .filter(|g| !shares(g))
        .try_for_each(|g| encode_matmul(rec, g))
}

/// Records one GEMM as the kernel [`matmul_kernel`] picks, reading A in place.
fn encode_gemm(rec: &mut Recorder, g: &Gemm) -> Result<()> {
    if g.m == 0 || g.n == 0 {
        return Ok(());
    }
    let bias_buf = g.bias.map(|b| b.0).unwrap_or(g.a.buffer);
    let desc = matmul_kernel(rec.gpu(), g);
    let bind = rec.bind(desc, &[g.a.buffer, g.b.buffer, bias_buf, g.c.buffer])?;
    let bit = |on: bool, flag: u32| if on { flag } else { 0 };
    let flags = bit(g.trans_a, flags::TRANS_A)
        | bit(g.trans_b, flags::TRANS_B)
        | bit(g.accumulate, flags::ACCUMULATE)
        | bit(g.bias.is_some(), flags::BIAS);
    let p = MatmulParams {
        m: u32_of("matmul m", g.m)?,
        n: u32_of("matmul n", g.n)?,
        k: u32_of("matmul k", g.k)?,
        lda: u32_of("matmul lda", g.a.ld)?,
        ldb: u32_of("matmul ldb", g.b.ld)?,
        ldc: u32_of("matmul ldc", g.c.ld)?,
        a_off: u32_of("matmul a offset", g.a.offset)?,
        b_off: u32_of("matmul b offset", g.b.offset)?,
        c_off: u32_of("matmul c offset", g.c.offset)?,
        bias_off: u32_of("matmul bias offset", g.bias.map(|b| b.1).unwrap_or(0))?,
        flags,
        _pad: 0,
    };
    // C per workgroup: the tile, or 8x8 invocations of a block.
    let (rows, cols) = if desc.shader == Shader::MatmulSubgroup {
        SG_WORKGROUP_BLOCK
    } else if desc.shader == Shader::MatmulVec4 {
        (8 * VEC4_BLOCK.0, 8 * VEC4_BLOCK.1)
    } else if desc.entry == MATMUL_DIRECT.entry {
        (8 * DIRECT_BLOCK.0, 8 * DIRECT_BLOCK.1)
    } else {
        TILE
    };
    rec.dispatch(bind, &p, [groups(g.n, cols)?, groups(g.m, rows)?, 1])
}

/// Records `out[m, k] = A[k, m]ᵀ` ([`TRANSPOSE_SG`]; `out` row-major, no padding), A `rows`
/// x `cols` at `a`: the copy [`encode_matmul`] reads where [`transposes_a`]. Needs an adapter
/// with subgroups of 8 lanes ([`crate::Gpu::shares_subgroup_loads`]), `rows`, `cols`, A's
/// leading dimension and offset multiples of 4, and `out` large enough
/// ([`crate::Error::Internal`] otherwise).
pub fn encode_transpose(
    rec: &mut Recorder,
    a: MatRef,
    rows: usize,
    cols: usize,
    out: &wgpu::Buffer,
) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    if !rec.gpu().shares_subgroup_loads() {
        return Err(Error::Internal(
            "transpose_sg needs subgroups of 8 lanes (Gpu::shares_subgroup_loads)".into(),
        ));
    }
    if [rows, cols, a.ld, a.offset]
        .iter()
        .any(|x| !x.is_multiple_of(4))
        || a.ld < cols
        || (rows as u64).saturating_mul(cols as u64).saturating_mul(4) > out.size()
    {
        return Err(Error::Internal(format!(
            "transpose_sg: {rows} x {cols} at offset {} (ld {}) into {} bytes: sizes, offset \
             and ld must be multiples of 4, ld >= columns, the output large enough",
            a.offset,
            a.ld,
            out.size()
        )));
    }
    let bind = rec.bind(&TRANSPOSE_SG, &[a.buffer, out])?;
    let p = MatmulParams {
        m: u32_of("transpose columns", cols)?,
        n: 0,
        k: u32_of("transpose rows", rows)?,
        lda: u32_of("transpose lda", a.ld)?,
        ldb: 0,
        ldc: u32_of("transpose ldc", rows)?,
        a_off: u32_of("transpose a offset", a.offset)?,
        b_off: 0,
        c_off: 0,
        bias_off: 0,
        flags: 0,
        _pad: 0,
    };
    let b = TRANSPOSE_BLOCK;
    rec.dispatch(bind, &p, [groups(cols, b)?, groups(rows, b)?, 1])
}

/// A linear layer's parameters inside a buffer: `W` `[out, in]` at element `weight`, and the
/// bias `[out]` at `bias` (see [`encode_linear_forward`]).
#[derive(Clone, Copy, Debug)]
pub struct LinearParams<'a> {
    /// The buffer holding them (the flat parameters).
    pub buffer: &'a wgpu::Buffer,
    /// Element offset of `W`.
    pub weight: usize,
    /// Element offset of the bias, if the layer has one.
    pub bias: Option<usize>,
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
}

/// `y[rows, out] = x[rows, in]·Wᵀ + b` (llm.c's `matmul_forward`): the input projection of an
/// RNN layer and `nn::Linear` alike.
pub fn encode_linear_forward(
    rec: &mut Recorder,
    p: &LinearParams,
    x: MatRef,
    rows: usize,
    y: MatRef,
) -> Result<()> {
    encode_matmul(
        rec,
        &Gemm {
            m: rows,
            n: p.out_features,
            k: p.in_features,
            a: x,
            trans_a: false,
            b: MatRef::new(p.buffer, p.weight, p.in_features),
            trans_b: true,
            bias: p.bias.map(|o| (p.buffer, o)),
            c: y,
            accumulate: false,
        },
    )
}

/// The backward of [`encode_linear_forward`] (llm.c's `matmul_backward`) for `rows` rows of
/// output gradient `dy`: `dW (+)= dyᵀ·x` and `db (+)= Σ_rows dy` into `grads` (laid out as
/// the parameters; added to what is there with `accumulate`, else overwritten), and with
/// `dx = Some((dx, add))`, `dx (+)= dy·W`. `with_dw` are more GEMMs that read `dyᵀ` as their
/// A, recorded right after `dW` through [`encode_matmuls_sharing_a`] (an RNN layer's
/// `dW_hh += dGᵀ·H_prev`, whose dG is often this `dy`).
#[allow(clippy::too_many_arguments)]
pub fn encode_linear_backward(
    rec: &mut Recorder,
    p: &LinearParams,
    grads: &wgpu::Buffer,
    accumulate: bool,
    x: MatRef,
    dy: MatRef,
    rows: usize,
    dx: Option<(MatRef, bool)>,
    with_dw: &[Gemm],
) -> Result<()> {
    let (n_in, n_out) = (p.in_features, p.out_features);
    let dw = Gemm {
        m: n_out,
        n: n_in,
        k: rows,
        a: dy,
        trans_a: true,
        b: x,
        trans_b: false,
        bias: None,
        c: MatRef::new(grads, p.weight, n_in),
        accumulate,
    };
    let gemms: Vec<Gemm> = std::iter::once(dw).chain(with_dw.iter().copied()).collect();
    encode_matmuls_sharing_a(rec, &gemms)?;
    if let Some(b) = p.bias {
        // sum_rows always adds.
        if !accumulate {
            rec.clear(grads, b, n_out);
        }
        super::util::encode_sum_rows(rec, dy.buffer, dy.offset, dy.ld, rows, n_out, grads, b)?;
    }
    if let Some((dx, add)) = dx {
        encode_matmul(
            rec,
            &Gemm {
                m: rows,
                n: n_in,
                k: n_out,
                a: dy,
                trans_a: false,
                b: MatRef::new(p.buffer, p.weight, n_in),
                trans_b: false,
                bias: None,
                c: dx,
                accumulate: add,
            },
        )?;
    }
    Ok(())
}
