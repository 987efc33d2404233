//! The GPU and the numeric comparisons of the tests (also included by the binary's harness
//! tests, which cannot use `cli`).
#![allow(dead_code)]

use recur::Gpu;

/// The GPU to test on. Without an adapter the test is skipped loudly, unless
/// `RECUR_REQUIRE_GPU=1` (CI sets it), which turns a missing adapter into a failure.
pub fn gpu() -> Option<Gpu> {
    match Gpu::new() {
        Ok(g) => Some(g),
        Err(e) => {
            if std::env::var("RECUR_REQUIRE_GPU").is_ok_and(|v| v != "0" && !v.is_empty()) {
                panic!("RECUR_REQUIRE_GPU is set and there is no GPU: {e}");
            }
            eprintln!("SKIPPED: no GPU adapter ({e})");
            None
        }
    }
}

/// [`gpu`] where it can run the f16-weight kernels (`pack2x16float`: wgpu's
/// `SHADER_F16_IN_F32`); elsewhere the test is skipped, saying why.
pub fn f16_gpu() -> Option<Gpu> {
    let gpu = gpu()?;
    if !gpu.has_f16_in_f32() {
        eprintln!("skipped: the adapter has no pack2x16float (SHADER_F16_IN_F32)");
        return None;
    }
    Some(gpu)
}

/// Whether `gpu` is Mesa's lavapipe (llvmpipe on Vulkan, CI's adapter): subgroups of 8 lanes,
/// SHADER_F16, timestamps.
pub fn is_lavapipe(gpu: &Gpu) -> bool {
    gpu.info().name.contains("llvmpipe") && gpu.info().backend == wgpu::Backend::Vulkan
}

/// The bit patterns of `v`, to assert that two results are identical (NaN and -0.0 included).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// ‖got − want‖ / ‖want‖ (absolute norm when want is zero).
pub fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        num += (f64::from(*g) - w).powi(2);
        den += w * w;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Asserts the relative error is under `tol`; on failure prints the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    let err = rel_err(got, want);
    if err.is_nan() || err > tol {
        let (i, g, w) = got
            .iter()
            .zip(want)
            .enumerate()
            .map(|(i, (g, w))| (i, *g, *w))
            .max_by(|a, b| {
                (f64::from(a.1) - a.2)
                    .abs()
                    .total_cmp(&(f64::from(b.1) - b.2).abs())
            })
            .unwrap_or((0, 0.0, 0.0));
        panic!("{what}: relative error {err:.3e} > {tol:.1e}; worst at index {i}: got {g}, expected {w}");
    }
}

/// f32 to f64.
pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// C as a GEMM leaves it: `prod` (m x n) written over, or with `accumulate` added to, the
/// block of rows `ldc` apart at element `c_off` of `c_before`; everything outside the block
/// keeps its value.
pub fn gemm_result(
    c_before: &[f32],
    (c_off, ldc): (usize, usize),
    prod: &[f64],
    (m, n): (usize, usize),
    accumulate: bool,
) -> Vec<f64> {
    let mut want = f64s(c_before);
    for i in 0..m {
        for j in 0..n {
            let w = &mut want[c_off + i * ldc + j];
            *w = prod[i * n + j] + if accumulate { *w } else { 0.0 };
        }
    }
    want
}
