//! The one matrix product every other reference function is built from.

/// `C[m, n] = op(A)[m, k] · op(B)[k, n] + bias[n]`, row-major, in f64.
///
/// `A` is stored `[m, k]`, or `[k, m]` when `trans_a` (then `op(A) = Aᵀ`); `B` is stored
/// `[k, n]`, or `[n, k]` when `trans_b`. `bias`, if given, has `n` elements and is added to
/// every row. With weights stored `[out, in]`, `x · Wᵀ + b` is
/// `matmul(x, w, rows, out, in, false, true, Some(b))`.
///
/// # Panics
/// If a slice length does not match the sizes.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f64],
    b: &[f64],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    bias: Option<&[f64]>,
) -> Vec<f64> {
    assert_eq!(
        a.len(),
        m * k,
        "matmul: A has {} elements, not m*k",
        a.len()
    );
    assert_eq!(
        b.len(),
        k * n,
        "matmul: B has {} elements, not k*n",
        b.len()
    );
    if let Some(bias) = bias {
        assert_eq!(
            bias.len(),
            n,
            "matmul: bias has {} elements, not n",
            bias.len()
        );
    }
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0;
            for p in 0..k {
                let av = if trans_a { a[p * m + i] } else { a[i * k + p] };
                let bv = if trans_b { b[j * k + p] } else { b[p * n + j] };
                acc += av * bv;
            }
            if let Some(bias) = bias {
                acc += bias[j];
            }
            c[i * n + j] = acc;
        }
    }
    c
}

/// Sums the `rows` rows of a row-major `[rows, cols]` matrix: the gradient of a bias that was
/// added to every row.
pub fn sum_rows(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    assert_eq!(a.len(), rows * cols, "sum_rows: wrong length");
    let mut out = vec![0.0; cols];
    for r in 0..rows {
        for (o, v) in out.iter_mut().zip(&a[r * cols..(r + 1) * cols]) {
            *o += v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn randv(rng: &mut Rng, n: usize) -> Vec<f64> {
        (0..n).map(|_| rng.normal()).collect()
    }

    /// Transposes a row-major `[rows, cols]` matrix.
    fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
        let mut t = vec![0.0; a.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        t
    }

    #[test]
    fn small_by_hand() {
        // [1 2 3; 4 5 6] · [1 0; 0 1; 1 1] + [10, 20] = [14 25; 20 31]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let c = matmul(&a, &b, 2, 2, 3, false, false, Some(&[10.0, 20.0]));
        assert_eq!(c, vec![14.0, 25.0, 20.0, 31.0]);
        // the same with B given as [n, k]: x · Wᵀ
        let w = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        let c = matmul(&a, &w, 2, 2, 3, false, true, Some(&[10.0, 20.0]));
        assert_eq!(c, vec![14.0, 25.0, 20.0, 31.0]);
    }

    #[test]
    fn transposes_match_explicit_loops() {
        let mut rng = Rng::new(1);
        let (m, n, k) = (5, 3, 7);
        let a = randv(&mut rng, m * k); // [m, k]
        let b = randv(&mut rng, k * n); // [k, n]
        let bias = randv(&mut rng, n);
        let mut want = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias[j];
                for p in 0..k {
                    s += a[i * k + p] * b[p * n + j];
                }
                want[i * n + j] = s;
            }
        }
        let at = transpose(&a, m, k); // [k, m]
        let bt = transpose(&b, k, n); // [n, k]
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let aa = if ta { &at } else { &a };
            let bb = if tb { &bt } else { &b };
            let got = matmul(aa, bb, m, n, k, ta, tb, Some(&bias));
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-12,
                    "trans_a={ta} trans_b={tb}: {g} vs {w}"
                );
            }
        }
        let nobias = matmul(&a, &b, m, n, k, false, false, None);
        for i in 0..m {
            for j in 0..n {
                assert!((nobias[i * n + j] + bias[j] - want[i * n + j]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn sum_rows_by_hand() {
        assert_eq!(
            sum_rows(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2),
            vec![9.0, 12.0]
        );
    }
}
