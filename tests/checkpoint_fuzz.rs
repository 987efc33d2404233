//! Property tests over mutated checkpoints: whatever the bytes, reading never panics; and a
//! checkpoint whose bytes are valid but whose content lies (sizes, shapes, configs) is a
//! typed error when a model is built from it, never a panic or a wgpu validation abort.

mod common;

use common::gpu;
use recur::nn::{SeqModel, SeqModelConfig};
use recur::rng::Rng;
use recur::rnn::{CellKind, RnnConfig};
use recur::train::{Checkpoint, Clip, OptimizerConfig, TrainConfig, Trainer};

fn small_checkpoint(gpu: &recur::Gpu) -> Checkpoint {
    let cfg = SeqModelConfig {
        vocab: Some(6),
        rnn: RnnConfig::new(CellKind::Lstm, 5, 7),
        out_features: 6,
        readout: recur::nn::Readout::EveryStep,
    };
    let model = SeqModel::init(gpu, cfg, &mut Rng::new(1)).unwrap();
    let tcfg = TrainConfig {
        optimizer: OptimizerConfig::adam(),
        clip: Clip::Norm(1.0),
        log_every: 1,
        max_in_flight: 1,
    };
    Trainer::new(gpu, model, tcfg, recur::train::TrainMode::Stateful)
        .unwrap()
        .checkpoint(gpu)
        .unwrap()
}

#[test]
fn mutated_checkpoint_bytes_never_panic() {
    let Some(gpu) = gpu() else { return };
    let bytes = small_checkpoint(&gpu).to_bytes().unwrap();
    assert!(Checkpoint::from_bytes(&bytes, "good").is_ok());
    // Every truncation.
    for n in 0..bytes.len() {
        assert!(
            Checkpoint::from_bytes(&bytes[..n], "cut").is_err(),
            "truncated to {n} loaded"
        );
    }
    // Random flips, overwrites, insertions and deletions.
    let mut rng = Rng::new(9);
    for i in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + i % 4 {
            let at = (rng.next_u64() as usize) % b.len();
            match rng.next_u64() % 4 {
                0 => b[at] ^= 1 << (rng.next_u64() % 8),
                1 => b[at] = rng.next_u64() as u8,
                2 => b.insert(at, rng.next_u64() as u8),
                _ => {
                    b.remove(at);
                }
            }
        }
        // Ok is possible only if the checksum still matches (a flip in padding, say).
        if let Ok(c) = Checkpoint::from_bytes(&b, "mutated") {
            let _ = Trainer::from_checkpoint(&gpu, &c);
        }
    }
}

/// Valid bytes, lying content: configs with absurd or inconsistent sizes, tensors of the
/// wrong shape, a step count that is not a number.
#[test]
fn checkpoints_that_lie_are_typed_errors() {
    let Some(gpu) = gpu() else { return };
    let good = small_checkpoint(&gpu);
    assert!(Trainer::from_checkpoint(&gpu, &good).is_ok());
    let mut rng = Rng::new(4);
    let keys: Vec<String> = good.metadata.keys().cloned().collect();
    let mut tried = 0;
    for key in &keys {
        let value = good.metadata[key].clone();
        // Replace each number in the value by a hostile one, one at a time.
        let digits: Vec<usize> = value
            .char_indices()
            .filter(|(_, c)| c.is_ascii_digit())
            .map(|(i, _)| i)
            .collect();
        for &at in digits.iter().take(12) {
            for hostile in ["0", "99999999999", "4294967297", "-1", "1e30", "\"x\"", "3"] {
                let mut v = value.clone();
                v.replace_range(at..at + 1, hostile);
                let mut c = good.clone();
                c.metadata.insert(key.clone(), v);
                let _ = Trainer::from_checkpoint(&gpu, &c);
                tried += 1;
            }
        }
        // Garbage values.
        for junk in ["", "{", "null", "[]", "{\"a\":1}"] {
            let mut c = good.clone();
            c.metadata.insert(key.clone(), junk.to_string());
            let _ = Trainer::from_checkpoint(&gpu, &c);
            tried += 1;
        }
    }
    // Tensors of the wrong shape or length.
    for name in good.tensors.keys() {
        let mut c = good.clone();
        let t = c.tensors.get_mut(name).unwrap();
        let extra = 1 + (rng.next_u64() % 3) as usize;
        t.shape.push(extra);
        t.data
            .extend(std::iter::repeat_n(0.5, t.data.len() * (extra - 1)));
        assert!(
            Trainer::from_checkpoint(&gpu, &c).is_err(),
            "{name} with shape {:?} loaded",
            c.tensors[name].shape
        );
        let mut c = good.clone();
        c.tensors.remove(name);
        assert!(
            Trainer::from_checkpoint(&gpu, &c).is_err(),
            "loaded without {name}"
        );
    }
    assert!(tried > 20);
    // The device survived all of it.
    gpu.check().unwrap();
    assert!(Trainer::from_checkpoint(&gpu, &good).is_ok());
}
