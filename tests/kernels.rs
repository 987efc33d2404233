//! Each kernel against the f64 CPU reference, on several shapes including sizes that are not
//! multiples of the workgroup tile (16) or the GEMM tile (64).

mod common;

use common::{assert_close, f64s, gemm_result, gpu};
use recur::kernels::matmul::{encode_matmul, Gemm, MatRef};
use recur::kernels::pack::encode_pack_f16;
use recur::kernels::util::{encode_sum_rows, encode_transpose01};
use recur::rng::Rng;
use recur::{reference, Recorder};

#[test]
fn matmul_should_match_reference_for_every_transpose_bias_and_accumulate() {
    let Some(mut gpu) = gpu() else { return };
    // Both variants: tiled through workgroup memory, and direct (CPU adapters).
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        check_matmul(&gpu);
    }
}

fn check_matmul(gpu: &recur::Gpu) {
    let mut rng = Rng::new(1);
    // (m, n, k): one tile, a partial tile on each edge, several tiles, a skinny K, K = 1.
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (64, 64, 16),
        (65, 70, 33),
        (130, 17, 100),
        (7, 129, 1),
    ];
    for &(m, n, k) in &shapes {
        for flags in 0..16u32 {
            let (ta, tb, acc, bias) = (
                flags & 1 != 0,
                flags & 2 != 0,
                flags & 4 != 0,
                flags & 8 != 0,
            );
            let a = rng.vec_uniform_f32(m * k, -1.0, 1.0);
            let b = rng.vec_uniform_f32(k * n, -1.0, 1.0);
            let c0 = rng.vec_uniform_f32(m * n, -1.0, 1.0);
            let bv = rng.vec_uniform_f32(n + 3, -1.0, 1.0);
            let ta_buf = gpu.tensor("a", &[m * k], &a).unwrap();
            let tb_buf = gpu.tensor("b", &[k * n], &b).unwrap();
            let tbias = gpu.tensor("bias", &[n + 3], &bv).unwrap();
            let tc = gpu.tensor("c", &[m * n], &c0).unwrap();
            let mut rec = Recorder::new(gpu);
            encode_matmul(
                &mut rec,
                &Gemm {
                    m,
                    n,
                    k,
                    a: MatRef::new(&ta_buf.buffer, 0, if ta { m } else { k }),
                    trans_a: ta,
                    b: MatRef::new(&tb_buf.buffer, 0, if tb { k } else { n }),
                    trans_b: tb,
                    bias: bias.then_some((&tbias.buffer, 3)),
                    c: MatRef::new(&tc.buffer, 0, n),
                    accumulate: acc,
                },
            )
            .unwrap();
            rec.run().unwrap();
            let got = gpu.read(&tc).unwrap();
            let bias64 = f64s(&bv[3..]);
            let mut want = reference::matmul(
                &f64s(&a),
                &f64s(&b),
                m,
                n,
                k,
                ta,
                tb,
                bias.then_some(&bias64[..]),
            );
            if acc {
                for (w, c) in want.iter_mut().zip(&c0) {
                    *w += f64::from(*c);
                }
            }
            assert_close(
                &format!("matmul m={m} n={n} k={k} ta={ta} tb={tb} acc={acc} bias={bias}"),
                &got,
                &want,
                1e-6,
            );
        }
    }
}

/// The vec4 kernels of CPU adapters (`shaders/matmul_vec4.wgsl`, and
/// `shaders/matmul_subgroup.wgsl` where the adapter's subgroups are 8 lanes) on operands that
/// qualify (n, leading dimensions and offsets multiples of 4) inside padded storage: m not a
/// multiple of the 8-row block nor of a subgroup's 32 rows, k with every tail length (k mod
/// 4 = 0..3), padding that holds NaN (the k tail must not read it into C), and a bias at an
/// offset.
#[test]
fn matmul_vec4_should_match_reference_with_padding_tails_and_offsets() {
    use recur::kernels::matmul::{
        MATMUL_NN_SG, MATMUL_NN_VEC4, MATMUL_NT_SG, MATMUL_NT_VEC4, MATMUL_TN_SG, MATMUL_TN_VEC4,
    };
    let Some(mut gpu) = gpu() else { return };
    gpu.set_direct_kernels(true);
    gpu.set_subgroups(false);
    check_matmul_vec4(&gpu, [&MATMUL_NN_VEC4, &MATMUL_NT_VEC4, &MATMUL_TN_VEC4]);
    gpu.set_subgroups(true);
    if gpu.shares_subgroup_loads() {
        check_matmul_vec4(&gpu, [&MATMUL_NN_SG, &MATMUL_NT_SG, &MATMUL_TN_SG]);
    } else {
        // lavapipe (CI's Vulkan adapter) has subgroups of 8 lanes: there these kernels must
        // run (llvmpipe on GL has no subgroups).
        assert!(
            !common::is_lavapipe(&gpu),
            "lavapipe should share subgroup loads"
        );
        eprintln!("SKIPPED: the subgroup GEMMs (no subgroups of 8 lanes here)");
    }
}

/// The vec4 case of [`matmul_vec4_should_match_reference_with_padding_tails_and_offsets`] with
/// the kernels `want` (A·B, A·Bᵀ, Aᵀ·B) that `matmul_kernel` must pick on `gpu`.
fn check_matmul_vec4(gpu: &recur::Gpu, want: [&recur::kernels::KernelDesc; 3]) {
    use recur::kernels::matmul::{
        matmul_kernel, MATMUL_NN_VEC4, MATMUL_NT_VEC4, MATMUL_TN_VEC4, SUBGROUP_MIN_ROWS,
    };
    let mut rng = Rng::new(11);
    // (m, n, k): one invocation, a partial 8-row block, k tails 1, 2, 3, several workgroups
    // (and subgroups, from 17 rows on: 17 rows are part of one, 70 two and a part, 160
    // columns five of 32).
    let shapes: [(usize, usize, usize); 8] = [
        (1, 4, 1),
        (17, 12, 7),
        (5, 8, 6),
        (13, 12, 7),
        (9, 36, 5),
        (70, 68, 33),
        (64, 32, 64),
        (161, 160, 18),
    ];
    for &(m, n, k) in &shapes {
        for (ta, tb, want_kernel, fallback) in [
            (false, false, want[0], &MATMUL_NN_VEC4),
            (false, true, want[1], &MATMUL_NT_VEC4),
            (true, false, want[2], &MATMUL_TN_VEC4),
        ] {
            for (acc, bias) in [(false, false), (true, true)] {
                // Stored shapes and padded leading dimensions (multiples of 4, past the data).
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let (lda, ldb, ldc) = (
                    ac.next_multiple_of(4) + 4,
                    bc.next_multiple_of(4) + 8,
                    n + 4,
                );
                let (a_off, b_off, c_off) = (8, 4, 12);
                let a = rng.vec_uniform_f32(ar * ac, -1.0, 1.0);
                let b = rng.vec_uniform_f32(br * bc, -1.0, 1.0);
                let mut a_store = vec![f32::NAN; a_off + ar * lda + 8];
                for i in 0..ar {
                    a_store[a_off + i * lda..][..ac].copy_from_slice(&a[i * ac..][..ac]);
                }
                let mut b_store = vec![f32::NAN; b_off + br * ldb + 8];
                for i in 0..br {
                    b_store[b_off + i * ldb..][..bc].copy_from_slice(&b[i * bc..][..bc]);
                }
                let c_store = rng.vec_uniform_f32(c_off + m * ldc, -1.0, 1.0);
                let bv = rng.vec_uniform_f32(n + 4, -1.0, 1.0);
                let ta_buf = gpu.tensor("a", &[a_store.len()], &a_store).unwrap();
                let tb_buf = gpu.tensor("b", &[b_store.len()], &b_store).unwrap();
                let tbias = gpu.tensor("bias", &[n + 4], &bv).unwrap();
                let tc = gpu.tensor("c", &[c_store.len()], &c_store).unwrap();
                let g = Gemm {
                    m,
                    n,
                    k,
                    a: MatRef::new(&ta_buf.buffer, a_off, lda),
                    trans_a: ta,
                    b: MatRef::new(&tb_buf.buffer, b_off, ldb),
                    trans_b: tb,
                    bias: bias.then_some((&tbias.buffer, 4)),
                    c: MatRef::new(&tc.buffer, c_off, ldc),
                    accumulate: acc,
                };
                // Few rows of C keep the plain vec4 kernels.
                let want_kernel = if m > SUBGROUP_MIN_ROWS {
                    want_kernel
                } else {
                    fallback
                };
                assert_eq!(matmul_kernel(gpu, &g).entry, want_kernel.entry);
                let mut rec = Recorder::new(gpu);
                encode_matmul(&mut rec, &g).unwrap();
                rec.run().unwrap();
                let got = gpu.read(&tc).unwrap();
                let bias64 = f64s(&bv[4..]);
                let prod = reference::matmul(
                    &f64s(&a),
                    &f64s(&b),
                    m,
                    n,
                    k,
                    ta,
                    tb,
                    bias.then_some(&bias64[..]),
                );
                let want = gemm_result(&c_store, (c_off, ldc), &prod, (m, n), acc);
                assert_close(
                    &format!("vec4 matmul m={m} n={n} k={k} ta={ta} tb={tb} acc={acc}"),
                    &got,
                    &want,
                    1e-6,
                );
            }
        }
    }
}

#[test]
fn matmul_should_honour_offsets_and_leading_dimensions() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(2);
    // A 5x4 block at row 2, column 3 of a 9x11 matrix, times a 4x6 block inside a wider one.
    let (m, n, k) = (5, 6, 4);
    let big_a = rng.vec_uniform_f32(9 * 11, -1.0, 1.0);
    let big_b = rng.vec_uniform_f32(4 * 10, -1.0, 1.0);
    let ta = gpu.tensor("a", &[99], &big_a).unwrap();
    let tb = gpu.tensor("b", &[40], &big_b).unwrap();
    let tc = gpu.zeros("c", &[8 * 13]).unwrap();
    let mut rec = Recorder::new(&gpu);
    encode_matmul(
        &mut rec,
        &Gemm {
            m,
            n,
            k,
            a: MatRef::new(&ta.buffer, 2 * 11 + 3, 11),
            trans_a: false,
            b: MatRef::new(&tb.buffer, 1, 10),
            trans_b: false,
            bias: None,
            c: MatRef::new(&tc.buffer, 13 + 2, 13),
            accumulate: false,
        },
    )
    .unwrap();
    rec.run().unwrap();
    let got = gpu.read(&tc).unwrap();
    let a: Vec<f64> = (0..m)
        .flat_map(|i| (0..k).map(move |j| (i, j)))
        .map(|(i, j)| f64::from(big_a[(2 + i) * 11 + 3 + j]))
        .collect();
    let b: Vec<f64> = (0..k)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| f64::from(big_b[1 + i * 10 + j]))
        .collect();
    let want = reference::matmul(&a, &b, m, n, k, false, false, None);
    let mut full = vec![0.0; 8 * 13];
    for i in 0..m {
        for j in 0..n {
            full[13 + 2 + i * 13 + j] = want[i * n + j];
        }
    }
    assert_close("matmul with offsets", &got, &full, 1e-6);
}

/// Both kernels: one column an invocation, and on CPU adapters four (vec4 storage) where
/// cols, ld and both offsets are multiples of 4; rows padded past cols with NaN, which must
/// not be read.
#[test]
fn sum_rows_should_match_reference() {
    let Some(mut gpu) = gpu() else { return };
    let mut rng = Rng::new(3);
    // (rows, cols, src_off, ld, dst_off): the last three qualify for the vec4 kernel.
    let cases = [
        (1, 1, 0, 1, 2),
        (7, 5, 1, 6, 2),
        (33, 65, 0, 65, 2),
        (200, 130, 0, 130, 2),
        (1, 4, 0, 4, 0),
        (33, 64, 4, 68, 4),
        (200, 132, 8, 136, 8),
    ];
    for direct in [false, true] {
        gpu.set_direct_kernels(direct);
        for &(rows, cols, src_off, ld, dst_off) in &cases {
            let a = rng.vec_uniform_f32(rows * cols, -1.0, 1.0);
            let mut stored = vec![f32::NAN; src_off + rows * ld];
            for r in 0..rows {
                stored[src_off + r * ld..][..cols].copy_from_slice(&a[r * cols..][..cols]);
            }
            let init = rng.vec_uniform_f32(dst_off + cols + 2, -1.0, 1.0);
            let ta = gpu.tensor("a", &[stored.len()], &stored).unwrap();
            let out = gpu.tensor("out", &[init.len()], &init).unwrap();
            let mut rec = Recorder::new(&gpu);
            encode_sum_rows(
                &mut rec,
                &ta.buffer,
                src_off,
                ld,
                rows,
                cols,
                &out.buffer,
                dst_off,
            )
            .unwrap();
            rec.run().unwrap();
            let got = gpu.read(&out).unwrap();
            let sums = reference::sum_rows(&f64s(&a), rows, cols);
            let mut want = f64s(&init);
            for j in 0..cols {
                want[dst_off + j] += sums[j];
            }
            assert_close(
                &format!("sum_rows {rows}x{cols} at {src_off}, ld {ld}, direct {direct}"),
                &got,
                &want,
                1e-6,
            );
        }
    }
}

#[test]
fn transpose01_should_swap_the_leading_axes() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(4);
    for &(d0, d1, inner) in &[(1, 1, 1), (3, 5, 7), (17, 2, 33)] {
        let a = rng.vec_uniform_f32(d0 * d1 * inner, -1.0, 1.0);
        let ta = gpu.tensor("a", &[d0, d1, inner], &a).unwrap();
        let out = gpu.zeros("out", &[d1, d0, inner]).unwrap();
        let mut rec = Recorder::new(&gpu);
        encode_transpose01(&mut rec, &ta.buffer, &out.buffer, d0, d1, inner).unwrap();
        rec.run().unwrap();
        let got = gpu.read(&out).unwrap();
        let mut want = vec![0.0; a.len()];
        for i in 0..d0 {
            for j in 0..d1 {
                for f in 0..inner {
                    want[(j * d0 + i) * inner + f] = f64::from(a[(i * d1 + j) * inner + f]);
                }
            }
        }
        assert_close("transpose01", &got, &want, 0.0);
    }
}

/// `pack_f16`: each word holds f16(src[2w]) in its low half and f16(src[2w + 1]) in its high
/// half, each the f16 nearest the value or its other neighbour (WGSL lets a conversion round
/// either way); past the end of src, zero. Sizes odd and even, values of every magnitude f16
/// holds (normal, subnormal, zero, negative).
#[test]
fn pack_f16_should_hold_each_value_to_one_f16_step() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(5);
    for n in [1usize, 2, 7, 64, 1001] {
        let mut a = rng.vec_uniform_f32(n, -3.0, 3.0);
        for (i, v) in a.iter_mut().enumerate() {
            // Every third a small value: f16 subnormals and tiny normals.
            if i % 3 == 1 {
                *v *= 1e-5;
            }
        }
        a[0] = 0.0;
        let words = n.div_ceil(2);
        let src = gpu.tensor("src", &[n], &a).unwrap();
        // One word more than packed: it must stay as it was (zero).
        let dst = gpu.zeros("dst", &[words + 1]).unwrap();
        let mut rec = Recorder::new(&gpu);
        encode_pack_f16(&mut rec, &src.buffer, &dst.buffer, words).unwrap();
        rec.run().unwrap();
        let got: Vec<u32> = gpu
            .read(&dst)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        for (i, &v) in a.iter().enumerate() {
            let bits = (got[i / 2] >> (16 * (i % 2))) & 0xffff;
            let h = half::f16::from_bits(bits as u16).to_f32();
            // h is a legal rounding of v when v lies strictly between h's two neighbours.
            let mag = bits & 0x7fff;
            let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
            let at = |m: u32| half::f16::from_bits(m as u16).to_f32();
            let (lo, hi) = if mag == 0 {
                (-at(1), at(1))
            } else {
                let (a, b) = (sign * at(mag - 1), sign * at(mag + 1));
                (a.min(b), a.max(b))
            };
            assert!(
                lo < v && v < hi,
                "n={n} element {i}: {v} packed as {h}, not one of its two nearest f16"
            );
        }
        if n % 2 == 1 {
            assert_eq!(got[words - 1] >> 16, 0, "n={n}: the half past the end");
        }
        assert_eq!(got[words], 0, "n={n}: the word past the packed ones");
    }
}

/// The recorder's promise: one bind group per (kernel, buffer set), also for callers that bind
/// per call (`encode_matmul`); other buffers, another order or another kernel, another group.
#[test]
fn recorder_should_share_one_bind_group_per_kernel_and_buffers() {
    use recur::kernels::util::{COPY_ROWS, SUM_ROWS};
    let Some(gpu) = gpu() else { return };
    let a = gpu.tensor("a", &[4], &[0.0; 4]).unwrap();
    let b = gpu.tensor("b", &[4], &[0.0; 4]).unwrap();
    let mut rec = Recorder::new(&gpu);
    let first = rec.bind(&SUM_ROWS, &[&a.buffer, &b.buffer]).unwrap();
    assert_eq!(rec.bind(&SUM_ROWS, &[&a.buffer, &b.buffer]).unwrap(), first);
    assert_ne!(rec.bind(&SUM_ROWS, &[&b.buffer, &a.buffer]).unwrap(), first);
    assert_ne!(
        rec.bind(&COPY_ROWS, &[&a.buffer, &b.buffer]).unwrap(),
        first
    );
}

/// The RNN forward step reads h_prev and W_hh rows `state` wide (`StepParams::state`) in every
/// family, as the LSTM with a projection does: run with a state width unlike H (19 against
/// 21, both past one 16-wide tile), each family must give `tanh(gx + h_prev · W_hhᵀ + b_hh)`.
#[test]
fn rnn_step_forward_should_honour_the_state_width_in_every_family() {
    use recur::kernels::step::{
        bind_step_forward, encode_step_forward, flags, ForwardBuffers, StepFamily, StepParams,
    };
    let Some(gpu) = gpu() else { return };
    let (h, s) = (21usize, 19usize);
    let mut rng = Rng::new(15);
    let whh = rng.vec_uniform_f32(h * s, -0.4, 0.4);
    let bhh = rng.vec_uniform_f32(h, -0.4, 0.4);
    let bhh_off = (h * s).next_multiple_of(4);
    let mut flat = whh.clone();
    flat.resize(bhh_off, 0.0);
    flat.extend(&bhh);
    let params = gpu.tensor("params", &[flat.len()], &flat).unwrap();
    for (batch, family) in [
        (3, StepFamily::Tiled),
        (3, StepFamily::SmallBatch),
        (3, StepFamily::Direct),
        (17, StepFamily::Tiled),
        (17, StepFamily::Direct),
    ] {
        let gx = rng.vec_uniform_f32(batch * h, -1.0, 1.0);
        let hprev = rng.vec_uniform_f32(batch * s, -1.0, 1.0);
        let hout_off = batch * s;
        let mut hs_data = hprev.clone();
        hs_data.resize(hout_off + batch * h, 0.0);
        let gx_t = gpu.tensor("gx", &[batch, h], &gx).unwrap();
        let hs = gpu.tensor("hs", &[hs_data.len()], &hs_data).unwrap();
        let y = gpu.tensor("y", &[batch, h], &vec![0.0; batch * h]).unwrap();
        let mut rec = Recorder::new(&gpu);
        let bufs = ForwardBuffers {
            params: &params.buffer,
            f16_weights: false,
            gx: &gx_t.buffer,
            hs: &hs.buffer,
            cs: None,
            y: &y.buffer,
            acts: None,
        };
        let bind = bind_step_forward(&mut rec, recur::CellKind::RnnTanh, family, &bufs).unwrap();
        let p = StepParams {
            batch: batch as u32,
            hidden: h as u32,
            hout_off: hout_off as u32,
            y_stride: h as u32,
            bhh_off: bhh_off as u32,
            flags: flags::HAS_BIAS,
            state: s as u32,
            ..Default::default()
        };
        encode_step_forward(&mut rec, bind, family, &p).unwrap();
        rec.run().unwrap();
        let mut want = vec![0.0f64; batch * h];
        for b in 0..batch {
            for j in 0..h {
                let mut pre = f64::from(gx[b * h + j]) + f64::from(bhh[j]);
                for k in 0..s {
                    pre += f64::from(hprev[b * s + k]) * f64::from(whh[j * s + k]);
                }
                want[b * h + j] = pre.tanh();
            }
        }
        let got = gpu.read(&y).unwrap();
        assert_close(&format!("{family:?} B={batch} y"), &got, &want, 1e-5);
    }
}
