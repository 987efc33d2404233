//! The Burn peer of recur's benchmark suites (`benches/suites.json`): the same shapes run
//! through Burn's own `nn::Lstm` / `nn::Gru` on its wgpu backend (on the same adapter as
//! recur: lavapipe on a machine without a GPU), printing the JSON lines `recur bench --compare`
//! reads, as `benches/peers/torch_rnn.py` does for PyTorch:
//!
//!     cargo run --release --manifest-path benches/peers/burn_rnn/Cargo.toml -- \
//!         --suite cpu [--reps 5] [--only TEXT] > burn.jsonl
//!     recur bench --suite cpu --compare burn.jsonl
//!
//! ms is the median wall time of one call after two warm-up calls, synchronised with the
//! device: forward, or forward and backward of sum(y*dy) with every weight gradient (an
//! autodiff device). Burn's layers are one layer and one direction each: a stack is a chain
//! of them (the cpu suite has no bidirectional shape). Input layout [B, T, I] (Burn's
//! default); the suites' time-major layout only changes where the transpose happens. A separate
//! crate, outside recur's build: it pulls Burn and CubeCL.

use std::time::Instant;

use burn::nn::{Gru, GruConfig, Lstm, LstmConfig};
use burn::tensor::{Device, Distribution, Tensor};

const SUITES: &str = include_str!("../../../suites.json");

enum Layer {
    Lstm(Box<Lstm>),
    Gru(Box<Gru>),
}

impl Layer {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Layer::Lstm(l) => l.forward(x, None).0,
            Layer::Gru(g) => g.forward(x, None),
        }
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let suite = arg(&args, "--suite").unwrap_or_else(|| "cpu".into());
    let reps: usize = arg(&args, "--reps").map_or(5, |r| r.parse().expect("--reps N"));
    let only = arg(&args, "--only");
    let suites: serde_json::Value = serde_json::from_str(SUITES).expect("suites.json");
    let shapes = suites[&suite]
        .as_array()
        .unwrap_or_else(|| panic!("no suite {suite:?}"))
        .clone();
    let base = Device::wgpu(Default::default());
    let name = "wgpu (burn 0.22.1)";
    eprintln!("burn 0.22.1 on wgpu, suite {suite}, median of {reps}");
    for s in shapes {
        let get = |k: &str| s[k].as_u64().expect("a size") as usize;
        let (cell, mode) = (s["cell"].as_str().unwrap(), s["mode"].as_str().unwrap());
        let (input, hidden, layers) = (get("input"), get("hidden"), get("layers"));
        let (seq, batch) = (get("seq"), get("batch"));
        let label = format!("{cell} I={input} H={hidden} L={layers} T={seq} B={batch} {mode}");
        if only.as_deref().is_some_and(|o| !label.contains(o)) {
            continue;
        }
        let train = mode == "train";
        let device = if train {
            base.clone().autodiff()
        } else {
            base.clone()
        };
        let stack: Vec<Layer> = (0..layers)
            .map(|l| {
                let i = if l == 0 { input } else { hidden };
                match cell {
                    "lstm" => Layer::Lstm(Box::new(LstmConfig::new(i, hidden, true).init(&device))),
                    "gru" => Layer::Gru(Box::new(GruConfig::new(i, hidden, true).init(&device))),
                    other => panic!("cell {other} has no Burn layer here"),
                }
            })
            .collect();
        let x = Tensor::<3>::random([batch, seq, input], Distribution::Normal(0.0, 1.0), &device);
        let dy = Tensor::<3>::random(
            [batch, seq, hidden],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let mut times = Vec::new();
        for rep in 0..reps + 2 {
            let start = Instant::now();
            let mut y = x.clone();
            for layer in &stack {
                y = layer.forward(y);
            }
            if train {
                let _grads = (y * dy.clone()).sum().backward();
            } else {
                let _ = y;
            }
            device.sync().expect("sync");
            if rep >= 2 {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        let ms = times[times.len() / 2];
        eprintln!("{label}: {ms:.3} ms");
        println!(
            "{}",
            serde_json::json!({
                "engine": "burn", "device": name, "cell": cell, "input": input,
                "hidden": hidden, "layers": layers, "bidirectional": false, "seq": seq,
                "batch": batch, "mode": mode, "ms": (ms * 1e4).round() / 1e4,
            })
        );
    }
}
