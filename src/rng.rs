//! A small seeded pseudo-random generator for tests, benchmarks and weight initialisation.
//!
//! xoshiro256** (Blackman and Vigna), its 256-bit state filled from the seed by splitmix64.
//! No crate, no global state: the same seed gives the same stream on every platform.

/// A seeded xoshiro256** generator.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

/// One step of splitmix64: advances `state` and returns the next output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole stream is fixed by `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform `f64` in `[0, 1)` with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform `f64` in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// A standard normal `f64` (mean 0, variance 1), by Box-Muller.
    ///
    /// Each call draws two uniforms and returns the cosine branch only, so the stream stays
    /// a plain function of the number of calls.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]: ln is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// `n` uniform values in `[lo, hi)` as `f32`.
    pub fn vec_uniform_f32(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| self.uniform(lo as f64, hi as f64) as f32)
            .collect()
    }

    /// `n` standard normal values as `f32`.
    pub fn vec_normal_f32(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal() as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = Rng::new(43);
        let mut a = Rng::new(42);
        let same = (0..100).filter(|_| a.next_u64() == c.next_u64()).count();
        assert_eq!(same, 0);
    }

    #[test]
    fn seed_zero_is_not_stuck() {
        let mut r = Rng::new(0);
        let v: Vec<u64> = (0..8).map(|_| r.next_u64()).collect();
        assert!(v.iter().all(|&x| x != 0));
        assert!(v.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn uniform_is_roughly_uniform() {
        let mut r = Rng::new(7);
        let n = 100_000;
        let mut bins = [0usize; 10];
        let mut sum = 0.0;
        for _ in 0..n {
            let u = r.uniform(-2.0, 3.0);
            assert!((-2.0..3.0).contains(&u));
            sum += u;
            bins[((u + 2.0) / 0.5) as usize] += 1;
        }
        let mean = sum / n as f64;
        assert!((mean - 0.5).abs() < 0.03, "mean {mean}");
        for (i, &c) in bins.iter().enumerate() {
            // expected 10_000 per bin, standard deviation about 95
            assert!((c as i64 - 10_000).abs() < 600, "bin {i}: {c}");
        }
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::new(11);
        let v: Vec<f64> = (0..100_000).map(|_| r.normal()).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "var {var}");
        assert!(v.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn f32_vectors() {
        let mut r = Rng::new(3);
        let u = r.vec_uniform_f32(1000, -0.5, 0.5);
        assert_eq!(u.len(), 1000);
        assert!(u.iter().all(|&x| (-0.5..=0.5).contains(&x)));
        let n = r.vec_normal_f32(1000);
        assert_eq!(n.len(), 1000);
        assert!(n.iter().all(|x| x.is_finite()));
        assert_eq!(Rng::new(3).vec_uniform_f32(1000, -0.5, 0.5), u);
    }
}
