//! `recur train` and `recur generate` end to end, at tiny sizes: a training run writes a
//! checkpoint, a plot and its summary; generation from the checkpoint is the same for the
//! same seed; resuming continues exactly where the run stopped; bad flags and paths end with
//! a one-line error and a non-zero exit.

mod common;

use common::cli::{errors, ok, recur, stdout};

use std::path::Path;
use std::process::Output;

use recur::train::Checkpoint;

/// A one-line error mentioning `needle`, a non-zero exit, no panic.
fn one_line_error(o: &Output, needle: &str) {
    assert!(!o.status.success(), "should have failed: {}", stdout(o));
    let e = errors(o);
    assert_eq!(e.len(), 1, "not one line: {e:?}");
    assert!(e[0].starts_with("error: "), "{e:?}");
    assert!(e[0].contains(needle), "{e:?} lacks {needle:?}");
}

/// A small text with a few repeated words: enough for 4 streams of 8-character windows.
fn write_text(dir: &Path) -> String {
    let text = "the cat sat on the mat. the dog sat on the log. ".repeat(12);
    let p = dir.join("text.txt");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const TINY: [&str; 8] = [
    "--hidden",
    "16",
    "--batch",
    "4",
    "--seq-len",
    "8",
    "--sample-len",
    "20",
];

fn train(data: &str, ckpt: &Path, steps: &str, extra: &[&str]) -> Output {
    let c = ckpt.display().to_string();
    let mut args = vec![
        "train",
        "--data",
        data,
        "--steps",
        steps,
        "--checkpoint",
        &c,
    ];
    args.extend(extra);
    recur(&args)
}

#[test]
fn train_then_generate_from_the_checkpoint() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_text(dir.path());
    let ckpt = dir.path().join("lm.safetensors");
    let svg = dir.path().join("loss.svg");
    let svg_s = svg.display().to_string();
    let mut extra = TINY.to_vec();
    extra.extend(["--plot", &svg_s, "--sample-every", "10"]);
    let o = train(&data, &ckpt, "20", &extra);
    ok(&o);
    let out = stdout(&o);
    for needle in [
        "--- sample at step 10 ---",
        "steps 20 (total 20)",
        "final loss",
        "unigram entropy",
        "checkpoint:",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    let c = Checkpoint::load(&ckpt).unwrap();
    assert_eq!(c.step().unwrap(), 20);
    assert_eq!(c.metadata["lm.vocab"], " .acdeghlmnost");
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
    // plotters writes the curve as a polyline with its points after the style attributes
    assert!(plot.contains("<polyline") && plot.contains(" points=\""));
    assert!(plot.contains("loss (nats)") && plot.contains("unigram entropy"));

    let c = ckpt.display().to_string();
    let gen = |seed: &str| {
        let o = recur(&[
            "generate",
            "--checkpoint",
            &c,
            "--prompt",
            "the ",
            "--length",
            "40",
            "--seed",
            seed,
        ]);
        ok(&o);
        stdout(&o)
    };
    let a = gen("7");
    assert!(a.starts_with("the "), "{a}");
    assert_eq!(a.trim_end_matches('\n').chars().count(), 44, "{a:?}");
    assert_eq!(a, gen("7"), "same seed, same text");
    // Unknown prompt characters: a clear error, not a panic.
    let o = recur(&["generate", "--checkpoint", &c, "--prompt", "the zebra"]);
    one_line_error(&o, "'z'");
}

/// The rows of a `--metrics` CSV after its header: (step, loss, grad_norm).
fn metrics_csv(path: &Path) -> Vec<(u64, f32, f32)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,loss,grad_norm"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "{l:?}");
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

/// 10 steps, then 10 more from the checkpoint, give exactly the parameters and optimizer
/// state of 20 steps in one run, and the same losses in their `--metrics` files.
#[test]
fn resume_continues_exactly() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_text(dir.path());
    let (full, half, resumed) = (
        dir.path().join("full.safetensors"),
        dir.path().join("half.safetensors"),
        dir.path().join("resumed.safetensors"),
    );
    let (full_csv, resumed_csv) = (dir.path().join("full.csv"), dir.path().join("resumed.csv"));
    let (fc, rc) = (
        full_csv.display().to_string(),
        resumed_csv.display().to_string(),
    );
    let mut extra = TINY.to_vec();
    extra.extend(["--sample-every", "0"]);
    let mut with_csv = extra.clone();
    with_csv.extend(["--metrics", &fc]);
    ok(&train(&data, &full, "20", &with_csv));
    ok(&train(&data, &half, "10", &extra));
    let h = half.display().to_string();
    ok(&train(
        &data,
        &resumed,
        "10",
        &[
            "--resume",
            &h,
            "--sample-every",
            "0",
            "--sample-len",
            "5",
            "--metrics",
            &rc,
        ],
    ));
    let (f, r) = (metrics_csv(&full_csv), metrics_csv(&resumed_csv));
    assert_eq!(
        f.iter().map(|m| m.0).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<u64>>()
    );
    assert!(f.iter().all(|m| m.1.is_finite() && m.2 > 0.0), "{f:?}");
    assert!(f[19].1 < f[0].1, "the loss did not fall: {f:?}");
    assert_eq!(
        r,
        f[10..],
        "the resumed run's metrics differ from the same steps in one run"
    );
    let (a, b) = (
        Checkpoint::load(&full).unwrap(),
        Checkpoint::load(&resumed).unwrap(),
    );
    assert_eq!(b.step().unwrap(), 20);
    assert_eq!(a.tensors, b.tensors);
    assert_eq!(a.metadata["lm.text"], b.metadata["lm.text"]);
}

#[test]
fn png_plot_is_a_png() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_text(dir.path());
    let png = dir.path().join("loss.png");
    let p = png.display().to_string();
    let mut extra = TINY.to_vec();
    extra.extend(["--plot", &p, "--sample-every", "0"]);
    ok(&train(
        &data,
        &dir.path().join("c.safetensors"),
        "12",
        &extra,
    ));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 1000);
}

#[test]
fn bad_flags_and_paths_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_text(dir.path());
    let ck = dir.path().join("c.safetensors");
    // Checked before any GPU work, so these hold with or without an adapter.
    one_line_error(
        &train(&data, &ck, "5", &["--plot", "loss.txt"]),
        ".svg or .png",
    );
    one_line_error(
        &train("/no/such/file.txt", &ck, "5", &[]),
        "/no/such/file.txt",
    );
    let bin = dir.path().join("bin.txt");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    one_line_error(
        &train(&bin.display().to_string(), &ck, "5", &[]),
        "not UTF-8",
    );
    one_line_error(
        &train(&data, &ck, "5", &["--resume", "/no/such/ckpt"]),
        "/no/such/ckpt",
    );
    one_line_error(
        &recur(&["generate", "--checkpoint", "/no/such/ckpt"]),
        "/no/such/ckpt",
    );
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    one_line_error(
        &recur(&["generate", "--checkpoint", &junk.display().to_string()]),
        "junk.safetensors",
    );
    // Clap's own errors start with one `error:` line too.
    let o = recur(&["train", "--cell", "transformer"]);
    assert!(!o.status.success());
    assert!(errors(&o)[0].starts_with("error: "), "{:?}", errors(&o));
    let o = recur(&["train", "--resume", "x", "--hidden", "8"]);
    assert!(!o.status.success());
    assert!(
        errors(&o)[0].contains("cannot be used with"),
        "{:?}",
        errors(&o)
    );
    if common::gpu().is_none() {
        return;
    }
    one_line_error(&train(&data, &ck, "0", &[]), "--steps must be positive");
    one_line_error(
        &train(&data, &ck, "5", &["--hidden", "0"]),
        "--hidden must be positive",
    );
    // A text too short for the windows asked for.
    one_line_error(
        &train(&data, &ck, "5", &["--batch", "400", "--seq-len", "64"]),
        "400 streams",
    );
    let o = recur(&[
        "generate",
        "--checkpoint",
        &ck.display().to_string(),
        "--temperature=-1",
    ]);
    one_line_error(&o, "temperature");
}
