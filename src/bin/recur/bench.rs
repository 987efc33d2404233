//! `recur bench`: prints what the harness (`harness/`) measures, alone or against a peer's or an earlier
//! build's lines (`--compare`, the table logic in `compare.rs`).

use std::path::{Path, PathBuf};

use crate::harness::{self as bench, host_loop, BenchShape, Mode};
use anyhow::bail;
use clap::Args;
use recur::Gpu;

use crate::compare::{self, Pair, Row, RowSet, Side, Table};

/// Arguments of `recur bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Which shapes of benches/suites.json: cpu (small, for software adapters) or gpu.
    #[arg(long, default_value = "cpu")]
    suite: String,
    /// One JSON object a line: engine, device, the shape's keys, ms and recur's extras (the
    /// lines `--compare` and benches/peers/torch_rnn.py read and write).
    #[arg(long)]
    json: bool,
    /// Timed repetitions per shape (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Also time each 1-layer LSTM shape as a per-step host loop of separate matmul and
    /// elementwise dispatches (how general tensor libraries run it).
    #[arg(long)]
    baseline: bool,
    /// LSTM training time against T, B and H instead of the suite.
    #[arg(long)]
    scaling: bool,
    /// The matmul kernel alone, in GFLOP/s, instead of the suite.
    #[arg(long)]
    matmul: bool,
    /// Latency of one streamed step (T=1, B=1) of an LSTM through `RnnStream`, at H=128 and
    /// H=512, instead of the suite.
    #[arg(long)]
    stream: bool,
    /// Inference reads the recurrent weights as f16 (`WeightStorage::F16`; training shapes
    /// stay f32), and each forward shape also prints the relative error of its output
    /// against f32 weights. With --stream: the streamed steps read them as f16.
    #[arg(long, conflicts_with_all = ["compare", "matmul", "scaling"])]
    f16_weights: bool,
    /// Only the suite's shapes whose label contains this text (e.g. "T=1000").
    #[arg(
        long,
        value_name = "TEXT",
        conflicts_with_all = ["compare", "stream", "matmul", "scaling"]
    )]
    only: Option<String>,
    /// Run the suite and print, per shape, recur's ms, the peer's ms from this file (JSON
    /// lines, e.g. from benches/peers/torch_rnn.py with the same --suite), the ratio and its
    /// geometric mean. With --against, compare this saved file against that one instead.
    #[arg(
        long,
        value_name = "PEER.jsonl",
        conflicts_with_all = ["json", "baseline", "scaling", "matmul", "stream"]
    )]
    compare: Option<PathBuf>,
    /// With --compare A.jsonl: print A against B (two saved `--json` outputs, e.g. two
    /// builds), running nothing; ratio = B ms / A ms.
    #[arg(long, value_name = "B.jsonl", requires = "compare")]
    against: Option<PathBuf>,
}

/// Runs `recur bench` with arguments `a`.
pub fn bench(a: &BenchArgs) -> anyhow::Result<()> {
    if a.reps == 0 {
        anyhow::bail!("--reps 0: at least one timed repetition is needed");
    }
    let reps = a.reps;
    if let Some(path) = &a.compare {
        // Read first: a bad file fails before minutes of timing.
        let first = RowSet::read(path)?;
        return match &a.against {
            Some(against) => compare_saved(path, &first, against),
            None => compare_live(&Gpu::new()?, &a.suite, reps, path, &first),
        };
    }
    let gpu = Gpu::new()?;
    let weights = if a.f16_weights {
        recur::WeightStorage::F16
    } else {
        recur::WeightStorage::F32
    };
    if a.stream {
        return stream(&gpu, reps, weights);
    }
    if a.matmul {
        return matmul(&gpu, reps);
    }
    if a.scaling {
        return scaling(&gpu, reps);
    }
    let mut shapes = bench::suite(&a.suite)?;
    if let Some(only) = &a.only {
        shapes.retain(|s| s.label().contains(only.as_str()));
        if shapes.is_empty() {
            anyhow::bail!("no shape of suite {} has \"{only}\" in its label", a.suite);
        }
    }
    if !a.json {
        println!(
            "recur bench --suite {} on {} ({:?}), median of {reps}; GPU times from timestamp queries{}",
            a.suite,
            gpu.info().name,
            gpu.info().backend,
            if gpu.has_timestamps() { "" } else { " (not available here)" }
        );
        println!(
            "{:<40} {:>9} {:>9} {:>9} {:>8} {:>10} {:>6} {:>6}{}",
            "shape",
            "wall ms",
            "host ms",
            "gpu ms",
            "GFLOP/s",
            "tokens/s",
            "submit",
            "disp",
            if a.baseline {
                "   host-loop ms  speedup"
            } else {
                ""
            }
        );
    }
    for s in &shapes {
        let t = bench::time_shape_with(&gpu, s, reps, weights)?;
        let f16_err = if a.f16_weights && s.mode == Mode::Forward {
            Some(bench::f16_weight_error(&gpu, s)?)
        } else {
            None
        };
        let base = if a.baseline && is_baseline_shape(s) {
            Some(host_loop::time_host_loop(&gpu, s, reps)?)
        } else {
            None
        };
        if a.json {
            let mut v = serde_json::json!({
                "engine": "recur",
                "device": gpu.info().name,
                "cell": s.cell,
                "input": s.input,
                "hidden": s.hidden,
                "layers": s.layers,
                "bidirectional": s.bidirectional,
                "seq": s.seq,
                "batch": s.batch,
                "mode": s.mode.name(),
                "ms": round4(t.wall_ms),
                "host_ms": round4(t.host_ms),
                "submissions": t.submissions,
                "dispatches": t.dispatches,
            });
            if let Some(g) = t.gpu_ms {
                v["gpu_ms"] = round4(g).into();
                v["phases_ms"] = t
                    .phases
                    .iter()
                    .map(|(p, ms)| ((*p).to_string(), serde_json::json!(round4(*ms))))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
            }
            if let Some(b) = base {
                v["host_loop_ms"] = round4(b).into();
            }
            if let Some(e) = f16_err {
                v["weights"] = "f16".into();
                v["f16_rel_err"] = e.into();
            }
            println!("{v}");
        } else {
            let ms = t.gpu_ms.unwrap_or(t.wall_ms);
            let gflops = s.flops()? / ms / 1e6;
            let tokens = (s.seq * s.batch) as f64 / (t.wall_ms / 1e3);
            print!(
                "{:<40} {:>9.3} {:>9.3} {:>9} {:>8.2} {:>10.0} {:>6} {:>6}",
                s.label(),
                t.wall_ms,
                t.host_ms,
                t.gpu_ms.map_or("-".into(), |g| format!("{g:.3}")),
                gflops,
                tokens,
                t.submissions,
                t.dispatches,
            );
            if let Some(b) = base {
                print!("   {:>12.3} {:>7.1}x", b, b / t.wall_ms);
            }
            if let Some(e) = f16_err {
                print!("   f16 weights, rel. err {e:.2e}");
            }
            println!();
            if !t.phases.is_empty() {
                let parts: Vec<String> = t
                    .phases
                    .iter()
                    .map(|(p, ms)| format!("{p} {ms:.3}"))
                    .collect();
                println!("{:<40} phases (gpu ms): {}", "", parts.join(", "));
            }
        }
    }
    Ok(())
}

/// `--compare A --against B`: the table of two saved outputs.
fn compare_saved(a_path: &Path, a: &RowSet, b_path: &Path) -> anyhow::Result<()> {
    let b = RowSet::read(b_path)?;
    let pairs = compare::join(a, &b);
    let table = Table::new(
        Side::of_file(a_path, a),
        Side::of_file(b_path, &b),
        pairs.iter().map(|p| &p.key),
    );
    match table.render(&pairs) {
        Some(text) => {
            println!("{text}");
            Ok(())
        }
        None => bail!(
            "no shape is in both {} and {}",
            a_path.display(),
            b_path.display()
        ),
    }
}

/// `--compare PEER`: runs `suite` and prints each shape against the peer as it is timed.
fn compare_live(
    gpu: &Gpu,
    suite: &str,
    reps: usize,
    peer_path: &Path,
    peer: &RowSet,
) -> anyhow::Result<()> {
    let shapes = bench::suite(suite)?;
    let keys: Vec<compare::Key> = shapes.iter().map(compare::Key::from).collect();
    if !keys.iter().any(|k| peer.get(k).is_some()) {
        bail!(
            "no shape of suite {suite} is in {} (run the peer and recur on the same --suite)",
            peer_path.display()
        );
    }
    let peer_name = peer
        .engine()
        .filter(|e| !e.is_empty())
        .unwrap_or("peer")
        .to_string();
    let table = Table::new(
        Side {
            name: "recur".into(),
            about: format!(
                "recur on {} ({:?}), suite {suite}, median of {reps}, this run",
                gpu.info().name,
                gpu.info().backend
            ),
        },
        Side {
            name: peer_name,
            about: format!("{}, from {}", peer.describe(), peer_path.display()),
        },
        keys.iter().chain(peer.rows().iter().map(|r| &r.key)),
    );
    println!("{}", table.header());
    let mut ours = Vec::new();
    for (s, key) in shapes.iter().zip(keys) {
        let t = bench::time_shape(gpu, s, reps)?;
        let row = Row {
            engine: Some("recur".into()),
            device: Some(gpu.info().name.clone()),
            key,
            ms: t.wall_ms,
        };
        println!("{}", table.row(&Pair::of(&row, peer)));
        ours.push(row);
    }
    let pairs = compare::join(&RowSet::new(ours), peer);
    for p in pairs.iter().filter(|p| p.subject_ms.is_none()) {
        println!("{}", table.row(p));
    }
    // At least one shape is on both sides (checked above), so there is a summary.
    if let Some(summary) = table.summary(&pairs) {
        println!("{summary}");
    }
    Ok(())
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn is_baseline_shape(s: &BenchShape) -> bool {
    s.cell == "lstm" && s.layers == 1 && !s.bidirectional
}

fn stream(gpu: &Gpu, reps: usize, weights: recur::WeightStorage) -> anyhow::Result<()> {
    let pushes = reps
        .checked_mul(20)
        .ok_or_else(|| anyhow::anyhow!("--reps {reps} is too large"))?;
    println!(
        "streamed LSTM steps (RnnStream::push, T=1, B=1) on {} ({:?}), {weights:?} weights, \
         median of {pushes} pushes",
        gpu.info().name,
        gpu.info().backend,
    );
    println!(
        "{:>6} {:>6} {:>16} {:>18}",
        "input", "hidden", "push+wait ms", "push+read ms"
    );
    for hidden in [128, 512] {
        let (wait, read) = bench::time_stream(gpu, hidden, hidden, pushes, weights)?;
        println!("{hidden:>6} {hidden:>6} {wait:>16.3} {read:>18.3}");
    }
    Ok(())
}

fn scaling(gpu: &Gpu, reps: usize) -> anyhow::Result<()> {
    println!(
        "LSTM training (forward + backward) on {} ({:?}), median of {reps}",
        gpu.info().name,
        gpu.info().backend
    );
    println!(
        "{:<44} {:>10} {:>10} {:>12} {:>6}",
        "shape", "wall ms", "gpu ms", "wall ms/step", "submit"
    );
    let base = BenchShape {
        cell: "lstm".into(),
        input: 64,
        hidden: 64,
        layers: 1,
        bidirectional: false,
        seq: 32,
        batch: 16,
        mode: Mode::Train,
    };
    let mut rows: Vec<(&str, BenchShape)> = Vec::new();
    for t in [8, 16, 32, 64, 128] {
        rows.push((
            "T",
            BenchShape {
                seq: t,
                ..base.clone()
            },
        ));
    }
    for b in [1, 4, 16, 64] {
        rows.push((
            "B",
            BenchShape {
                batch: b,
                ..base.clone()
            },
        ));
    }
    for h in [16, 32, 64, 128] {
        rows.push((
            "H",
            BenchShape {
                hidden: h,
                ..base.clone()
            },
        ));
    }
    let mut last = "";
    for (axis, s) in rows {
        if axis != last {
            println!("-- against {axis}");
            last = axis;
        }
        let t = bench::time_shape(gpu, &s, reps)?;
        println!(
            "{:<44} {:>10.3} {:>10} {:>12.4} {:>6}",
            s.label(),
            t.wall_ms,
            t.gpu_ms.map_or("-".into(), |g| format!("{g:.3}")),
            t.wall_ms / s.seq as f64,
            t.submissions
        );
    }
    Ok(())
}

fn matmul(gpu: &Gpu, reps: usize) -> anyhow::Result<()> {
    println!(
        "matmul C = op(A)·op(B) on {} ({:?}), median of {reps}",
        gpu.info().name,
        gpu.info().backend
    );
    println!(
        "{:>6} {:>6} {:>6} {:>6} {:>10} {:>9}",
        "form", "M", "N", "K", "ms", "GFLOP/s"
    );
    // A·Bᵀ is the input projection (X·W_ihᵀ), A·B the input gradient (dG·W_ih), Aᵀ·B the
    // weight gradients (dGᵀ·X).
    for (form, trans) in [
        ("A·Bᵀ", (false, true)),
        ("A·B", (false, false)),
        ("Aᵀ·B", (true, false)),
    ] {
        for shape in [
            (64, 64, 64),
            (256, 256, 256),
            (512, 512, 512),
            (1024, 1024, 1024),
            (2048, 1024, 256),
        ] {
            let (ms, gflops) = bench::time_matmul(gpu, shape, trans, reps)?;
            let (m, n, k) = shape;
            println!("{form:>6} {m:>6} {n:>6} {k:>6} {ms:>10.3} {gflops:>9.2}");
        }
    }
    Ok(())
}
