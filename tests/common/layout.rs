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

/// The input x and the output gradient dy, given time-major (`[seq, batch, features]`), in
/// the layout `cfg` takes them (batch-first swaps the two leading axes), with their shapes:
/// `(x, x_shape, dy, dy_shape)`; dy has `out` features (D·H or D·P).
pub fn caller_io(
    cfg: &recur::RnnConfig,
    seq: usize,
    batch: usize,
    out: usize,
    x_tm: &[f32],
    dy_tm: &[f32],
) -> (Vec<f32>, [usize; 3], Vec<f32>, [usize; 3]) {
    if cfg.batch_first {
        (
            swap01(x_tm, seq, batch, cfg.input_size),
            [batch, seq, cfg.input_size],
            swap01(dy_tm, seq, batch, out),
            [batch, seq, out],
        )
    } else {
        (
            x_tm.to_vec(),
            [seq, batch, cfg.input_size],
            dy_tm.to_vec(),
            [seq, batch, out],
        )
    }
}
