//! Scratch directories and seeded host tensors shared by the file-format tests
//! (tests/io.rs, tests/npy.rs, tests/state_dict.rs).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use recur::io::HostTensor;

/// A fresh empty directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recur-io-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// xorshift64*: a small seeded PRNG, so failures reproduce.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

pub fn tensor(rng: &mut Rng, shape: &[usize]) -> HostTensor {
    let n = shape.iter().product();
    HostTensor::new(shape.to_vec(), (0..n).map(|_| rng.f32()).collect()).unwrap()
}

pub fn sample_tensors() -> Vec<(String, HostTensor)> {
    let mut rng = Rng(7);
    vec![
        ("lstm.weight_ih_l0".into(), tensor(&mut rng, &[8, 3])),
        ("lstm.bias_ih_l0".into(), tensor(&mut rng, &[8])),
        ("scalar".into(), tensor(&mut rng, &[])),
        ("empty".into(), tensor(&mut rng, &[0, 4])),
        ("cube".into(), tensor(&mut rng, &[2, 3, 5])),
    ]
}
