//! The Aᵀ·B products that `encode_matmul` runs as A·B on a transposed copy of A, on CPU
//! adapters whose subgroups are 8 lanes, once A is large (`matmul::transposes_a`): the copy
//! kernel alone against the exact transpose, and whole products past the size against the f64
//! reference, two in one recording sharing the `Gpu`'s scratch buffer, and products that read
//! one A sharing one copy of it.

mod common;

use common::{assert_close, bits, f64s, gemm_result, gpu};
use recur::kernels::matmul::{
    encode_matmul, encode_matmuls_sharing_a, encode_transpose, matmul_kernel, transposes_a, Gemm,
    MatRef, MATMUL_NN_SG, TRANSPOSE_MIN_ELEMENTS,
};
use recur::rng::Rng;
use recur::{reference, Error, Recorder};

/// The test adapter where its subgroups are 8 lanes (always on lavapipe, CI's Vulkan adapter);
/// `None`, said on stderr, elsewhere.
fn subgroup_gpu() -> Option<recur::Gpu> {
    let gpu = gpu()?;
    if !gpu.shares_subgroup_loads() {
        assert!(!common::is_lavapipe(&gpu));
        eprintln!("SKIPPED: no subgroups of 8 lanes on this adapter");
        return None;
    }
    Some(gpu)
}

/// `rows x cols` values from `rng` stored at element `off` with rows `ld` apart, NaN around
/// them (a kernel that reads the padding shows it).
fn padded(rng: &mut Rng, rows: usize, cols: usize, off: usize, ld: usize) -> (Vec<f32>, Vec<f32>) {
    let a = rng.vec_uniform_f32(rows * cols, -1.0, 1.0);
    let mut store = vec![f32::NAN; off + rows * ld + 8];
    for i in 0..rows {
        store[off + i * ld..][..cols].copy_from_slice(&a[i * cols..][..cols]);
    }
    (a, store)
}

/// `transpose_sg`, one dispatch, on shapes of one 4x4 block, a partial workgroup of blocks in
/// either direction and several workgroups, from an offset with a padded leading dimension:
/// every element lands where the transpose puts it, bit for bit; a shape off the vec4 grid is
/// refused.
#[test]
fn transpose_should_copy_every_element_to_its_transposed_place() {
    let Some(gpu) = subgroup_gpu() else { return };
    let mut rng = Rng::new(21);
    for (rows, cols) in [(4, 4), (8, 36), (68, 12), (132, 260)] {
        let (off, ld) = (4, cols + 8);
        let (a, store) = padded(&mut rng, rows, cols, off, ld);
        let ta = gpu.tensor("a", &[store.len()], &store).unwrap();
        let out = gpu.zeros("a_t", &[rows * cols]).unwrap();
        let mut rec = Recorder::new(&gpu);
        encode_transpose(
            &mut rec,
            MatRef::new(&ta.buffer, off, ld),
            rows,
            cols,
            &out.buffer,
        )
        .unwrap();
        rec.run().unwrap();
        let mut want = vec![0.0f32; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                want[j * rows + i] = a[i * cols + j];
            }
        }
        let got = gpu.read(&out).unwrap();
        assert_eq!(bits(&got), bits(&want), "transpose of {rows} x {cols}");
    }
    let ta = gpu.zeros("a", &[64]).unwrap();
    let out = gpu.zeros("a_t", &[64]).unwrap();
    let mut rec = Recorder::new(&gpu);
    for (rows, cols, off, ld) in [(5, 4, 0, 4), (4, 6, 0, 8), (4, 4, 2, 4), (4, 8, 0, 4)] {
        let r = encode_transpose(
            &mut rec,
            MatRef::new(&ta.buffer, off, ld),
            rows,
            cols,
            &out.buffer,
        );
        assert!(
            matches!(r, Err(Error::Internal(_))),
            "{rows} x {cols} at {off}, ld {ld}: {r:?}"
        );
    }
}

/// Aᵀ·B with A past [`TRANSPOSE_MIN_ELEMENTS`]: the library takes the copy and A·B (two
/// dispatches), and two such products in one recording, the second's copy in the scratch
/// buffer the first's product read (the first accumulating into C with a bias; A and B from
/// offsets with padded leading dimensions), match the f64 reference.
#[test]
fn large_transposed_products_should_match_reference() {
    let Some(gpu) = subgroup_gpu() else { return };
    let mut rng = Rng::new(22);
    // (m, n, k, accumulate and bias): A of 516 x 2048, then 1024 x 1028 elements (fewer: the
    // second copy overwrites the first's scratch buffer after the first product has read it).
    let cases = [(516, 20, 2048, true), (1024, 12, 1028, false)];
    let mut rec = Recorder::new(&gpu);
    let mut checks = Vec::new();
    for &(m, n, k, acc) in &cases {
        assert!(m * k >= TRANSPOSE_MIN_ELEMENTS);
        let (lda, ldb, ldc) = (m + 4, n + 8, n + 4);
        let (a, a_store) = padded(&mut rng, k, m, 8, lda);
        let (b, b_store) = padded(&mut rng, k, n, 4, ldb);
        let c_store = rng.vec_uniform_f32(12 + m * ldc, -1.0, 1.0);
        let bias = rng.vec_uniform_f32(n + 4, -1.0, 1.0);
        let ta = gpu.tensor("a", &[a_store.len()], &a_store).unwrap();
        let tb = gpu.tensor("b", &[b_store.len()], &b_store).unwrap();
        let tc = gpu.tensor("c", &[c_store.len()], &c_store).unwrap();
        let tbias = gpu.tensor("bias", &[n + 4], &bias).unwrap();
        let g = Gemm {
            m,
            n,
            k,
            a: MatRef::new(&ta.buffer, 8, lda),
            trans_a: true,
            b: MatRef::new(&tb.buffer, 4, ldb),
            trans_b: false,
            bias: acc.then_some((&tbias.buffer, 4)),
            c: MatRef::new(&tc.buffer, 12, ldc),
            accumulate: acc,
        };
        assert!(
            transposes_a(&gpu, &g),
            "{m} x {n} x {k} should take the copy"
        );
        // The kernel of the product itself is A·B's.
        let as_nn = Gemm {
            trans_a: false,
            a: MatRef::new(&ta.buffer, 0, k),
            ..g
        };
        assert_eq!(matmul_kernel(&gpu, &as_nn).entry, MATMUL_NN_SG.entry);
        // Two dispatches: the copy and the product.
        let before = rec.dispatch_count();
        encode_matmul(&mut rec, &g).unwrap();
        assert_eq!(rec.dispatch_count(), before + 2);
        let bias64 = f64s(&bias[4..]);
        let prod = reference::matmul(
            &f64s(&a),
            &f64s(&b),
            m,
            n,
            k,
            true,
            false,
            acc.then_some(&bias64[..]),
        );
        let want = gemm_result(&c_store, (12, ldc), &prod, (m, n), acc);
        checks.push((format!("Aᵀ·B m={m} n={n} k={k} acc={acc}"), tc, want));
    }
    rec.run().unwrap();
    for (what, tc, want) in checks {
        assert_close(&what, &gpu.read(&tc).unwrap(), &want, 1e-6);
    }
}

/// `encode_matmuls_sharing_a`: two Aᵀ·B that read the same large A (as an LSTM's dW_ih and
/// dW_hh read dG) take one copy and two products, three dispatches; two that read different
/// A's take a copy each, four; one that cannot take a copy reads A in place beside one that
/// does, three; every C matches the f64 reference.
#[test]
fn products_reading_one_a_should_share_its_copy() {
    let Some(gpu) = subgroup_gpu() else { return };
    let mut rng = Rng::new(23);
    let (m, k) = (516, 2048);
    assert!(m * k >= TRANSPOSE_MIN_ELEMENTS);
    let lda = m + 4;
    let mut a_host = Vec::new();
    let mut a_dev = Vec::new();
    for _ in 0..2 {
        let (a, store) = padded(&mut rng, k, m, 8, lda);
        a_dev.push(gpu.tensor("a", &[store.len()], &store).unwrap());
        a_host.push(a);
    }
    // (which A, n, accumulate) of each product, in two recordings, and their dispatches.
    type Products = &'static [(usize, usize, bool)];
    let groups: [(Products, usize); 3] = [
        (&[(0, 20, true), (0, 12, false)], 3),
        (&[(0, 8, false), (1, 16, true)], 4),
        // n = 7 is off the vec4 grid: that product reads A in place, the other copies it.
        (&[(0, 7, false), (0, 20, true)], 3),
    ];
    for (products, dispatches) in groups {
        let mut rec = Recorder::new(&gpu);
        let mut stores = Vec::new();
        for &(which, n, _) in products {
            let ldb = n + 4;
            let (b, b_store) = padded(&mut rng, k, n, 4, ldb);
            let c_store = rng.vec_uniform_f32(4 + m * n, -1.0, 1.0);
            let tb = gpu.tensor("b", &[b_store.len()], &b_store).unwrap();
            let tc = gpu.tensor("c", &[c_store.len()], &c_store).unwrap();
            stores.push((which, n, b, c_store, tb, tc));
        }
        let gemms: Vec<Gemm> = stores
            .iter()
            .zip(products)
            .map(|((which, n, _, _, tb, tc), &(_, _, acc))| Gemm {
                m,
                n: *n,
                k,
                a: MatRef::new(&a_dev[*which].buffer, 8, lda),
                trans_a: true,
                b: MatRef::new(&tb.buffer, 4, n + 4),
                trans_b: false,
                bias: None,
                c: MatRef::new(&tc.buffer, 4, *n),
                accumulate: acc,
            })
            .collect();
        let before = rec.dispatch_count();
        encode_matmuls_sharing_a(&mut rec, &gemms).unwrap();
        assert_eq!(rec.dispatch_count(), before + dispatches, "{products:?}");
        rec.run().unwrap();
        for ((which, n, b, c_store, _, tc), &(_, _, acc)) in stores.iter().zip(products) {
            let a = f64s(&a_host[*which]);
            let prod = reference::matmul(&a, &f64s(b), m, *n, k, true, false, None);
            let want = gemm_result(c_store, (4, *n), &prod, (m, *n), acc);
            let what = format!("A{which}ᵀ·B m={m} n={n} k={k} acc={acc}");
            assert_close(&what, &gpu.read(tc).unwrap(), &want, 1e-6);
        }
    }
}
