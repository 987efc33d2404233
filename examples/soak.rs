//! Soak: trains the character model on recur's own sources for thousands of steps and
//! watches for leaks and numerical trouble. Every EVERY steps it prints the step, the loss,
//! the gradient norm, host memory (resident set, from /proc/self/statm) and device memory
//! (live buffers and their bytes, from wgpu's counters). It exits non-zero if a loss or a
//! gradient norm is not finite, or if host memory ever grows more than 10% or device memory
//! at all above what the first report showed (the last report, after the final flush, may
//! be lower: the buffers of steps in flight are gone by then).
//!
//!     cargo run --release --example soak -- [STEPS=3000] [EVERY=250]
//!
//! Expected: a flat device line (the same buffers and bytes every report), a host line that
//! settles after the first reports, and a falling loss. On lavapipe, 3000 steps of this
//! small model take a few minutes.

use std::process::ExitCode;

use recur::train::text::{CharModelShape, TextTrainer};
use recur::train::{Clip, OptimizerConfig, TrainConfig};
use recur::{CellKind, Gpu};

const CORPUS: &str = include_str!(concat!(env!("OUT_DIR"), "/corpus.txt"));

/// Resident set size in bytes (Linux); 0 elsewhere.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> recur::Result<bool> {
    let mut args = std::env::args().skip(1);
    let steps: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let every: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(250)
        .max(1);
    let gpu = Gpu::new()?;
    let shape = CharModelShape {
        cell: CellKind::Lstm,
        embed: 16,
        hidden: 32,
        layers: 1,
    };
    let cfg = TrainConfig {
        optimizer: OptimizerConfig::adamw().with_lr(3e-3),
        clip: Clip::Norm(1.0),
        log_every: every as usize,
        max_in_flight: 2,
    };
    let mut t = TextTrainer::new(&gpu, CORPUS, shape, cfg, 8, 16, 1)?;
    println!(
        "soak: {steps} steps on {} ({:?})",
        gpu.info().name,
        gpu.info().backend
    );
    println!(
        "{:>7} {:>8} {:>9} {:>12} {:>9} {:>12}",
        "step", "loss", "grad norm", "host RSS", "buffers", "device bytes"
    );
    let mut first: Option<(u64, (u64, u64))> = None;
    let mut peak = (0u64, (0u64, 0u64));
    let mut ok = true;
    let mut report = |m: &recur::train::StepMetrics, gpu: &Gpu| {
        let (rss, dev) = (rss_bytes(), gpu.memory());
        println!(
            "{:>7} {:>8.4} {:>9.4} {:>12} {:>9} {:>12}",
            m.step, m.loss, m.grad_norm, rss, dev.0, dev.1
        );
        if !m.loss.is_finite() || !m.grad_norm.is_finite() {
            println!("FAIL: non-finite loss or gradient norm at step {}", m.step);
            ok = false;
        }
        if first.is_none() {
            first = Some((rss, dev));
        }
        peak = (
            peak.0.max(rss),
            (peak.1 .0.max(dev.0), peak.1 .1.max(dev.1)),
        );
    };
    for step in 1..=steps {
        t.step(&gpu)?;
        for m in t.trainer.poll_metrics(&gpu)? {
            if m.step % every == 0 {
                report(&m, &gpu);
            }
        }
        if step == steps {
            for m in t.trainer.flush_metrics(&gpu)? {
                if m.step % every == 0 || m.step == steps {
                    report(&m, &gpu);
                }
            }
        }
    }
    if let Some((rss0, dev0)) = first {
        let (rss1, dev1) = peak;
        if dev1.0 > dev0.0 || dev1.1 > dev0.1 {
            println!("FAIL: device memory grew: {dev0:?} -> {dev1:?} (buffers, bytes)");
            ok = false;
        }
        if rss1 as f64 > rss0 as f64 * 1.10 {
            println!("FAIL: host memory grew more than 10%: {rss0} -> {rss1} bytes");
            ok = false;
        }
    }
    println!(
        "{}",
        if ok {
            "PASS: memory flat, every loss finite"
        } else {
            "FAILED"
        }
    );
    Ok(ok)
}
