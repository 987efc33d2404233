//! `recur train` and `recur generate` under hostile input (issue 10): nothing lost, nothing
//! silent. A diverging run stops with an error and never replaces a good checkpoint; bad
//! paths fail before any work; Ctrl-C and `--save-every` save; temporary files of a killed
//! write are cleaned up; endless inputs, oversized files and counters at their limit are
//! refused; messages are one clear line; the same run writes the same bytes.

mod common;

use common::cli::{errors, ok, recur, stdout};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use recur::io::HostTensor;
use recur::train::Checkpoint;

/// A one-line error mentioning every needle, a non-zero exit, no panic; returns the line.
fn one_line_error(o: &Output, needles: &[&str]) -> String {
    assert!(!o.status.success(), "should have failed: {}", stdout(o));
    let e = errors(o);
    assert_eq!(e.len(), 1, "not one line: {e:?}");
    assert!(e[0].starts_with("error: "), "{e:?}");
    for n in needles {
        assert!(e[0].contains(n), "{e:?} lacks {n:?}");
    }
    e[0].clone()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A small text with a few repeated words: enough for 4 streams of 8-character windows.
fn write_text(dir: &Path) -> PathBuf {
    let p = dir.join("text.txt");
    std::fs::write(
        &p,
        "the cat sat on the mat. the dog sat on the log. ".repeat(12),
    )
    .unwrap();
    p
}

const TINY: [&str; 10] = [
    "--hidden",
    "16",
    "--batch",
    "4",
    "--seq-len",
    "8",
    "--sample-len",
    "20",
    "--sample-every",
    "0",
];

/// `recur train` at tiny sizes on `data` (the built-in corpus when `None`).
fn train(data: Option<&Path>, ckpt: &Path, steps: &str, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["train".into(), "--steps".into(), steps.into()];
    args.extend(["--checkpoint".into(), s(ckpt)]);
    if let Some(d) = data {
        args.extend(["--data".into(), s(d)]);
    }
    // Sizes come from the checkpoint on --resume; a flag in `extra` overrides TINY's.
    for pair in TINY.chunks(2) {
        let sizes = ["--hidden", "--batch", "--seq-len"].contains(&pair[0]);
        if !(extra.contains(&pair[0]) || sizes && extra.contains(&"--resume")) {
            args.extend(pair.iter().map(|a| a.to_string()));
        }
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    recur(&args)
}

/// The files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Case 1: `--lr 1e30` diverges. The run stops with an error naming the step, exits
/// non-zero, writes no checkpoint, and `--resume X --checkpoint X` leaves X as it was.
#[test]
fn divergence_stops_the_run_and_keeps_the_last_good_checkpoint() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.safetensors");
    // Fewer steps than the metric interval: the last check is the one at the end.
    let o = train(None, &fresh, "5", &["--lr", "1e30"]);
    one_line_error(
        &o,
        &[
            "diverged at step",
            "lower --lr",
            "no checkpoint was written",
        ],
    );
    assert!(!fresh.exists());
    assert!(!stdout(&o).contains("checkpoint:"), "{}", stdout(&o));

    let good = dir.path().join("good.safetensors");
    ok(&train(None, &good, "4", &[]));
    let before = std::fs::read(&good).unwrap();
    let g = s(&good);
    let o = train(None, &good, "30", &["--resume", &g, "--lr", "1e30"]);
    one_line_error(&o, &["diverged", "was not written"]);
    assert_eq!(
        std::fs::read(&good).unwrap(),
        before,
        "the good model was replaced"
    );
    assert_eq!(listing(dir.path()), ["good.safetensors"]);
    // With --save-every 1, the last save before the divergence is what stays (here step 5:
    // its loss was finite, the step after it is not).
    let o = train(
        None,
        &good,
        "30",
        &["--resume", &g, "--lr", "1e30", "--save-every", "1"],
    );
    let line = one_line_error(&o, &["diverged at step", "the last good checkpoint"]);
    let kept = Checkpoint::load(&good).expect("the last save is intact");
    let step = kept.step().unwrap();
    assert!(line.contains(&format!("keeps step {step}")), "{line}");
    assert!(step > 4, "no save happened before the divergence: {line}");
    kept.check_finite().unwrap();
    assert_eq!(listing(dir.path()), ["good.safetensors"]);
}

/// A checkpoint like `good` with a NaN in `model.head.bias` and a correct checksum (what an
/// older recur wrote after diverging).
fn poisoned(good: &Path, out: &Path) {
    let mut c = Checkpoint::load(good).unwrap();
    let t = c.tensors.get_mut("model.head.bias").unwrap();
    t.data[3] = f32::NAN;
    c.metadata.remove("checksum");
    let mut meta = c.metadata.clone();
    meta.insert("checksum".into(), c.checksum());
    let tensors: Vec<(String, HostTensor)> = c.tensors.into_iter().collect();
    recur::io::save(out, &tensors, &meta).unwrap();
}

/// Case 1 (load side) and the rule for weights: a checkpoint holding a NaN is refused by
/// `generate` and by `--resume`, naming the tensor.
#[test]
fn a_non_finite_checkpoint_is_refused_on_load() {
    let dir = tempfile::tempdir().unwrap();
    if common::gpu().is_none() {
        return;
    }
    let data = write_text(dir.path());
    let good = dir.path().join("good.safetensors");
    ok(&train(Some(&data), &good, "3", &[]));
    let bad = dir.path().join("bad.safetensors");
    poisoned(&good, &bad);
    let b = s(&bad);
    one_line_error(
        &recur(&["generate", "--checkpoint", &b, "--length", "5"]),
        &["model.head.bias", "NaN", "bad.safetensors"],
    );
    let out = dir.path().join("out.safetensors");
    one_line_error(
        &train(Some(&data), &out, "2", &["--resume", &b]),
        &["model.head.bias", "NaN"],
    );
    assert!(!out.exists());
}

/// Cases 2 and 4: a checkpoint or plot path that cannot be written, or that is an input of
/// the run, fails at once (before the adapter is opened, so this holds without a GPU).
#[test]
fn bad_output_paths_fail_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_text(dir.path());
    let text_before = std::fs::read(&data).unwrap();
    let d = dir.path();
    let cases: [(PathBuf, &[&str]); 3] = [
        (
            d.join("no/such/dir/c.safetensors"),
            &["--checkpoint", "does not exist"],
        ),
        (d.to_path_buf(), &["--checkpoint", "is a folder"]),
        (data.clone(), &["--checkpoint", "--data", "destroy"]),
    ];
    for (ckpt, needles) in cases {
        let start = Instant::now();
        let o = train(Some(&data), &ckpt, "500", &[]);
        one_line_error(&o, needles);
        assert!(stdout(&o).is_empty(), "work started: {}", stdout(&o));
        assert!(start.elapsed() < Duration::from_secs(20));
    }
    // The plot cannot be the checkpoint, nor the training text.
    let ck = d.join("c.svg");
    let p = s(&ck);
    one_line_error(
        &train(Some(&data), &ck, "5", &["--plot", &p]),
        &["--plot", "--checkpoint"],
    );
    let svg_data = d.join("text.svg");
    std::fs::copy(&data, &svg_data).unwrap();
    one_line_error(
        &train(
            Some(&svg_data),
            &d.join("c.safetensors"),
            "5",
            &["--plot", &s(&svg_data)],
        ),
        &["--plot", "--data"],
    );
    // A hard link to the text is the text.
    let link = d.join("link.safetensors");
    std::fs::hard_link(&data, &link).unwrap();
    one_line_error(&train(Some(&data), &link, "5", &[]), &["--data"]);
    assert_eq!(std::fs::read(&data).unwrap(), text_before);
    let mut left = listing(d);
    left.retain(|n| n.starts_with('.'));
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// Case 2: an oversized `--sample-len` with `--sample-every 0` fails before training.
#[test]
fn an_oversized_sample_fails_before_training() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_text(dir.path());
    let ck = dir.path().join("c.safetensors");
    let o = train(Some(&data), &ck, "50000", &["--sample-len", "100000000000"]);
    one_line_error(&o, &["--sample-len", "limit"]);
    assert!(!stdout(&o).contains("training"), "{}", stdout(&o));
    assert!(!ck.exists());
    ok(&train(Some(&data), &ck, "2", &[]));
    one_line_error(
        &recur(&[
            "generate",
            "--checkpoint",
            &s(&ck),
            "--length",
            "100000000000",
        ]),
        &["--length", "limit"],
    );
}

/// Case 2: `--save-every N` writes the checkpoint along the way; the run's end writes it too.
#[test]
fn save_every_writes_periodic_checkpoints() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_text(dir.path());
    let ck = dir.path().join("c.safetensors");
    let o = train(Some(&data), &ck, "12", &["--save-every", "5"]);
    ok(&o);
    let out = stdout(&o);
    for step in ["5", "10"] {
        let line = format!("checkpoint at step {step}: {}", s(&ck));
        assert!(out.contains(&line), "{line:?} missing from:\n{out}");
    }
    assert!(!out.contains("checkpoint at step 12"), "{out}");
    assert_eq!(Checkpoint::load(&ck).unwrap().step().unwrap(), 12);
    // Resuming in place (--resume X --checkpoint X) continues X.
    ok(&train(Some(&data), &ck, "3", &["--resume", &s(&ck)]));
    assert_eq!(Checkpoint::load(&ck).unwrap().step().unwrap(), 15);
    // The save at step 5 holds what a 5-step run ends with.
    let five = dir.path().join("five.safetensors");
    let o = train(Some(&data), &five, "7", &["--save-every", "5"]);
    ok(&o);
    let again = dir.path().join("again.safetensors");
    ok(&train(Some(&data), &again, "7", &[]));
    assert_eq!(
        std::fs::read(&five).unwrap(),
        std::fs::read(&again).unwrap()
    );
    assert_eq!(
        listing(dir.path()),
        [
            "again.safetensors",
            "c.safetensors",
            "five.safetensors",
            "text.txt"
        ]
    );
}

/// Spawns `recur train` and waits until it prints its first line (the Ctrl-C handler is in
/// place from then on).
#[cfg(unix)]
fn spawn_training(args: &[String]) -> std::process::Child {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("training"), "{first}");
    // Keep draining stdout so that the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

#[cfg(unix)]
fn signal(child: &std::process::Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Case 2: Ctrl-C saves a clean checkpoint after the step in progress and exits 130.
#[cfg(unix)]
#[test]
fn ctrl_c_saves_the_checkpoint_and_exits_130() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_text(dir.path());
    let ck = dir.path().join("c.safetensors");
    let mut args: Vec<String> = ["train", "--steps", "1000000", "--data", &s(&data)]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.extend(["--checkpoint".into(), s(&ck)]);
    args.extend(TINY.iter().map(|a| a.to_string()));
    let child = spawn_training(&args);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{:?}", errors(&o));
    let e = errors(&o);
    assert!(
        e.iter()
            .any(|l| l.starts_with("interrupted: stopped by Ctrl-C after step")),
        "{e:?}"
    );
    let step = Checkpoint::load(&ck).unwrap().step().unwrap();
    assert!(step > 0 && step < 1_000_000, "step {step}");
}

/// Case 5: kills during writes leave the last complete checkpoint readable, and the next
/// write removes the temporary files the killed writers left.
#[cfg(unix)]
#[test]
fn temp_files_of_killed_writes_are_cleaned_by_the_next_write() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_text(dir.path());
    let ck = dir.path().join("c.safetensors");
    // What a write killed before its rename leaves: a full-size temporary file of a process
    // that is gone (pid 0 is never a user process).
    let stale = dir.path().join(".c.safetensors.0.17.tmp");
    std::fs::write(&stale, vec![0u8; 1 << 20]).unwrap();
    let mut args: Vec<String> = ["train", "--steps", "1000000", "--save-every", "1"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.extend(["--data".into(), s(&data), "--checkpoint".into(), s(&ck)]);
    args.extend(TINY.iter().map(|a| a.to_string()));
    for delay_ms in [300, 700, 1100] {
        let mut child = spawn_training(&args);
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(&child, "-KILL");
        child.wait().unwrap();
        if ck.exists() {
            Checkpoint::load(&ck).expect("a kill corrupted the checkpoint");
        }
    }
    ok(&train(Some(&data), &ck, "2", &[]));
    assert_eq!(listing(dir.path()), ["c.safetensors", "text.txt"]);
    assert!(!stale.exists());
}

/// Case 7: inputs with no end and oversized files are refused with a message; a step count
/// at u64::MAX is refused rather than wrapped, and still generates.
#[test]
fn endless_inputs_huge_files_and_full_counters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("c.safetensors");
    if Path::new("/dev/zero").exists() {
        one_line_error(
            &train(Some(Path::new("/dev/zero")), &ck, "5", &[]),
            &["/dev/zero", "not a regular file"],
        );
        one_line_error(
            &recur(&["generate", "--checkpoint", "/dev/zero"]),
            &["/dev/zero", "not a regular file"],
        );
        let y = s(&dir.path().join("y.npy"));
        let o = recur(&[
            "run",
            "--model",
            "/dev/zero",
            "--input",
            "/dev/zero",
            "--output",
            &y,
        ]);
        one_line_error(&o, &["/dev/zero", "not a regular file"]);
    }
    #[cfg(unix)]
    {
        let fifo = dir.path().join("fifo");
        if Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success())
        {
            one_line_error(
                &train(Some(&fifo), &ck, "5", &[]),
                &["fifo", "not a regular file"],
            );
        }
    }
    // A sparse file over the 256 MiB limit of --data: refused before reading.
    let big = dir.path().join("big.txt");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    one_line_error(
        &train(Some(&big), &ck, "5", &[]),
        &["big.txt", "over the limit"],
    );
    std::fs::remove_file(&big).unwrap();
    if common::gpu().is_none() {
        return;
    }
    let data = write_text(dir.path());
    ok(&train(Some(&data), &ck, "2", &[]));
    let mut c = Checkpoint::load(&ck).unwrap();
    c.metadata.insert("step".into(), u64::MAX.to_string());
    let full = dir.path().join("full.safetensors");
    c.save(&full).unwrap();
    let f = s(&full);
    let out = dir.path().join("out.safetensors");
    one_line_error(
        &train(Some(&data), &out, "1", &["--resume", &f]),
        &["overflow"],
    );
    assert!(!out.exists());
    ok(&recur(&["generate", "--checkpoint", &f, "--length", "5"]));
}

/// Case 8: messages say what is wrong once, with the real path.
#[test]
fn messages_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    // The OS error once, not twice.
    let o = recur(&["generate", "--checkpoint", "/no/such/ckpt"]);
    let line = one_line_error(&o, &["/no/such/ckpt"]);
    let os = std::io::Error::from_raw_os_error(2).to_string();
    assert_eq!(line.matches(&os).count(), 1, "{line}");
    // Negative numbers need no `=`: the value reaches recur's own check.
    one_line_error(
        &recur(&["generate", "--checkpoint", "x", "--temperature", "-1"]),
        &["--temperature must be"],
    );
    one_line_error(&recur(&["train", "--lr", "-1"]), &["--lr must be"]);
    one_line_error(&recur(&["train", "--clip", "-2"]), &["--clip must be"]);
    // --clip's help no longer promises what --resume forbids.
    let help = stdout(&recur(&["train", "--help"]));
    assert!(help.contains("Not with --resume"), "{help}");
    if common::gpu().is_none() {
        return;
    }
    let data = write_text(dir.path());
    let ck = dir.path().join("c.safetensors");
    ok(&train(Some(&data), &ck, "2", &[]));
    let c = s(&ck);
    // --resume without --data: the built-in corpus is named, not a bare character.
    let o = train(
        None,
        &dir.path().join("o.safetensors"),
        "1",
        &["--resume", &c],
    );
    one_line_error(&o, &["without --data", "built-in", "give --data"]);
    // A checkpoint whose vocabulary does not fit its model: the path, and no `Some(..)`.
    let mut bad = Checkpoint::load(&ck).unwrap();
    bad.metadata.insert("lm.vocab".into(), "abc".into());
    let badp = dir.path().join("vocab.safetensors");
    bad.save(&badp).unwrap();
    let line = one_line_error(
        &recur(&["generate", "--checkpoint", &s(&badp)]),
        &["vocab.safetensors", "14 token ids", "3 characters"],
    );
    assert!(
        !line.contains("Some(") && !line.contains("<checkpoint>"),
        "{line}"
    );
}

/// Case 9: the same run writes the same bytes (checkpoint and plot).
#[test]
fn the_same_run_writes_the_same_bytes() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_text(dir.path());
    let run = |name: &str| {
        let ck = dir.path().join(format!("{name}.safetensors"));
        let svg = dir.path().join(format!("{name}.svg"));
        ok(&train(Some(&data), &ck, "12", &["--plot", &s(&svg)]));
        (std::fs::read(ck).unwrap(), std::fs::read(svg).unwrap())
    };
    let a = run("a");
    for name in ["b", "c", "d"] {
        assert!(run(name) == a, "run {name} wrote other bytes");
    }
}
