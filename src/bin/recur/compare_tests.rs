//! Unit tests of `compare.rs` (the join, ratios, the geometric mean, parsing).

use super::*;

fn line(engine: &str, cell: &str, hidden: usize, mode: &str, ms: f64) -> String {
    format!(
        r#"{{"engine": "{engine}", "device": "dev", "cell": "{cell}", "input": 64, "hidden": {hidden}, "layers": 1, "bidirectional": false, "seq": 32, "batch": 16, "mode": "{mode}", "ms": {ms}}}"#
    )
}

fn set(lines: &[String]) -> RowSet {
    RowSet::new(parse_lines(&lines.join("\n"), "test").unwrap())
}

fn err(text: &str) -> String {
    format!("{:#}", parse_lines(text, "peer.jsonl").unwrap_err())
}

fn side(name: &str) -> Side {
    Side {
        name: name.into(),
        about: String::new(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn parse_should_skip_non_json_lines_and_ignore_extra_fields() {
    let text = format!(
        "torch 2.5 on cpu\n\n{}\n  {}\nwarning: something\n",
        line("recur", "lstm", 128, "train", 4.0),
        r#"{"engine": "recur", "cell": "gru", "input": 8, "hidden": 16, "layers": 2, "bidirectional": true, "seq": 5, "batch": 3, "mode": "forward", "ms": 1.5, "gpu_ms": 1.2, "phases_ms": {"steps": 1.0}}"#
    );
    let rows = parse_lines(&text, "x").unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].key.label(), "lstm I=64 H=128 L=1 T=32 B=16 train");
    assert_eq!(rows[0].ms, 4.0);
    assert_eq!(rows[1].key.label(), "gru I=8 H=16 L=2 bi T=5 B=3 forward");
    assert_eq!(rows[1].device, None);
}

#[test]
fn parse_should_name_the_line_of_a_malformed_object() {
    let good = line("torch-cpu", "lstm", 128, "train", 4.0);
    // Cut short.
    let e = err(&format!("header\n{good}\n{{\"cell\": \"lstm\", "));
    assert!(e.contains("peer.jsonl line 3"), "{e}");
    // A missing field.
    let e = err(&format!("{good}\n{}", good.replace(r#", "ms": 4"#, "")));
    assert!(e.contains("peer.jsonl line 2") && e.contains("`ms`"), "{e}");
    // A field of the wrong type.
    let e = err(&good.replace(r#""hidden": 128"#, r#""hidden": "big""#));
    assert!(e.contains("peer.jsonl line 1"), "{e}");
    // A time that cannot be divided by.
    let e = err(&format!("\n{}", good.replace(r#""ms": 4"#, r#""ms": 0"#)));
    assert!(
        e.contains("peer.jsonl line 2") && e.contains("positive"),
        "{e}"
    );
    // Nothing to compare.
    let e = err("just a log\n");
    assert!(e.contains("peer.jsonl: no benchmark lines"), "{e}");
}

#[test]
fn read_should_name_a_missing_file() {
    let e = RowSet::read(Path::new("/nonexistent/peer.jsonl")).unwrap_err();
    assert!(
        format!("{e:#}").contains("/nonexistent/peer.jsonl"),
        "{e:#}"
    );
}

#[test]
fn lines_of_one_shape_should_give_the_median_of_their_times() {
    let s = set(&[
        line("recur", "lstm", 128, "train", 4.0),
        line("recur", "gru", 128, "train", 3.0),
        line("recur", "lstm", 128, "train", 9.0),
        line("recur", "lstm", 128, "train", 5.0),
        line("recur", "gru", 128, "train", 1.0),
    ]);
    assert_eq!(s.rows().len(), 2);
    assert_eq!(s.rows()[0].key.cell, "lstm");
    assert_eq!(s.rows()[0].ms, 5.0);
    assert_eq!(s.rows()[1].ms, 2.0);
}

#[test]
fn join_should_match_shapes_whatever_their_order() {
    let ours = set(&[
        line("recur", "lstm", 128, "forward", 2.0),
        line("recur", "lstm", 128, "train", 4.0),
    ]);
    let peer = set(&[
        line("torch-cpu", "lstm", 128, "train", 32.0),
        line("torch-cpu", "lstm", 128, "forward", 1.0),
    ]);
    let pairs = join(&ours, &peer);
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[0].key.mode, "forward");
    assert_eq!(pairs[0].ratio(), Some(0.5));
    assert_eq!(pairs[1].key.mode, "train");
    assert_eq!(pairs[1].ratio(), Some(8.0));
    // Same cell and mode but another hidden size is another shape.
    let other = set(&[line("torch-cpu", "lstm", 256, "train", 1.0)]);
    assert!(join(&ours, &other).iter().all(|p| p.ratio().is_none()));
}

#[test]
fn a_shape_on_one_side_should_show_as_missing_and_stay_out_of_the_mean() {
    let ours = set(&[
        line("recur", "lstm", 128, "train", 4.0),
        line("recur", "gru", 128, "train", 1.0),
    ]);
    let peer = set(&[
        line("torch-cpu", "lstm", 128, "train", 8.0),
        line("torch-cpu", "rnn", 128, "train", 9.0),
    ]);
    let pairs = join(&ours, &peer);
    assert_eq!(pairs.len(), 3);
    assert_eq!(
        (pairs[1].key.cell.as_str(), pairs[1].reference_ms),
        ("gru", None)
    );
    assert_eq!(
        (pairs[2].key.cell.as_str(), pairs[2].subject_ms),
        ("rnn", None)
    );
    let table = Table::new(
        side("recur"),
        side("torch-cpu"),
        pairs.iter().map(|p| &p.key),
    );
    let row = table.row(&pairs[1]);
    assert!(
        row.starts_with("gru I=64") && row.contains("missing"),
        "{row}"
    );
    assert!(table.row(&pairs[2]).contains("missing"));
    let summary = table.summary(&pairs).unwrap();
    assert!(summary.contains("over 1 shape: 2.00"), "{summary}");
    assert!(summary.contains("recur is 2.00× faster"), "{summary}");
    assert!(
        summary.contains("2 shapes measured by one side only"),
        "{summary}"
    );
    // No shape in common: no mean, and the caller says why.
    let none = join(&ours, &set(&[line("torch-cpu", "rnn", 128, "train", 9.0)]));
    assert_eq!(table.summary(&none), None);
    assert_eq!(table.render(&none), None);
}

#[test]
fn geometric_mean_should_match_known_values() {
    assert!(close(geometric_mean(&[2.0, 8.0]).unwrap(), 4.0));
    assert!(close(geometric_mean(&[1.0, 10.0, 100.0]).unwrap(), 10.0));
    assert!(close(geometric_mean(&[0.5, 2.0]).unwrap(), 1.0));
    assert!(close(geometric_mean(&[3.0]).unwrap(), 3.0));
    assert_eq!(geometric_mean(&[]), None);
    assert_eq!(geometric_mean(&[1.0, 0.0]), None);
    assert_eq!(geometric_mean(&[1.0, f64::NAN]), None);
}

#[test]
fn the_table_should_show_ratios_in_words() {
    let ours = set(&[
        line("recur", "lstm", 128, "forward", 225.5),
        line("recur", "lstm", 128, "train", 2.0),
    ]);
    let peer = set(&[
        line("torch-cpu", "lstm", 128, "forward", 2.02),
        line("torch-cpu", "lstm", 128, "train", 6.4),
    ]);
    let pairs = join(&ours, &peer);
    let table = Table::new(
        Side::of_file(Path::new("out/new.jsonl"), &ours),
        Side::of_file(Path::new("out/old.jsonl"), &peer),
        pairs.iter().map(|p| &p.key),
    );
    let text = table.render(&pairs).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "new: recur on dev, from out/new.jsonl");
    assert_eq!(lines[1], "old: torch-cpu on dev, from out/old.jsonl");
    assert!(
        lines[2].starts_with("ratio = old ms / new ms"),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains("new ms") && lines[3].contains("old ms"));
    assert!(lines[4].contains("225.500") && lines[4].contains("2.020"));
    assert!(lines[4].ends_with("0.00896  112× slower"), "{}", lines[4]);
    assert!(lines[5].ends_with("3.20  3.20× faster"), "{}", lines[5]);
    // sqrt(0.008958 * 3.2) = 0.1693
    assert!(
        lines[6].contains("over 2 shapes: 0.169 (new is 5.91× slower)"),
        "{}",
        lines[6]
    );
    assert_eq!(lines.len(), 7);
}

#[test]
fn sides_of_the_same_name_should_be_told_apart() {
    let table = Table::new(side("recur"), side("recur"), []);
    assert!(table.header().contains("recur (B) ms / recur (A) ms"));
}

#[test]
fn key_labels_should_match_the_suite_labels() {
    for name in ["cpu", "gpu"] {
        for s in crate::harness::suite(name).unwrap() {
            assert_eq!(Key::from(&s).label(), s.label());
        }
    }
}

#[test]
fn numbers_should_keep_three_significant_digits() {
    assert_eq!(sig3(112.4), "112");
    assert_eq!(sig3(3.2), "3.20");
    assert_eq!(sig3(0.008958), "0.00896");
    assert_eq!(sig3(24084.7), "24085");
    assert_eq!(verdict(1.0), "as fast");
    assert_eq!(verdict(0.5), "2.00× slower");
    assert_eq!(verdict(10.0), "10.0× faster");
}
