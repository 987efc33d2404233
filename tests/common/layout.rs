//! Host-side layouts shared by the GPU tests.

/// `[d0, d1, f]` -> `[d1, d0, f]` on the host.
pub fn swap01(v: &[f32], d0: usize, d1: usize, f: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for i in 0..d0 {
        for j in 0..d1 {
            out[(j * d0 + i) * f..(j * d0 + i + 1) * f]
                .copy_from_slice(&v[(i * d1 + j) * f..(i * d1 + j + 1) * f]);
        }
    }
    out
}
