//! `recur bench --compare`: joins benchmark lines from two sources on their shape and prints,
//! shape by shape, how many times faster or slower one side is, and the geometric mean.
//!
//! A benchmark line is one JSON object, the schema `recur bench --json` and
//! `benches/peers/torch_rnn.py` print: `engine`, `device`, the shape (`cell`, `input`,
//! `hidden`, `layers`, `bidirectional`, `seq`, `batch`, `mode`) and `ms`, the median wall time
//! of one call; other fields are ignored. Lines that do not start with `{` (logs) are skipped.
//!
//! The two sides are the *subject* (recur in this run, or the newer build) and the
//! *reference* (the peer, or the baseline). Per shape, ratio = reference ms / subject ms: above
//! 1 the subject is that many times faster. Everything here is pure except [`RowSet::read`];
//! running the suite is `bench.rs`'s job.

use std::collections::HashMap;
use std::path::Path;

use crate::harness::BenchShape;
use anyhow::{anyhow, Context, Result};
use serde::Deserialize;

/// The shape a line measures: the keys rows are joined on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
pub struct Key {
    /// `lstm`, `gru` or `rnn`.
    pub cell: String,
    /// Input features.
    pub input: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Two directions.
    pub bidirectional: bool,
    /// Sequence length T.
    pub seq: usize,
    /// Batch B.
    pub batch: usize,
    /// `forward` or `train`.
    pub mode: String,
}

impl Key {
    /// The label `recur bench` prints ([`BenchShape::label`]): `lstm I=64 H=128 L=1 T=32 B=16
    /// train`, with ` bi` after the layers for two directions.
    pub fn label(&self) -> String {
        format!(
            "{} I={} H={} L={}{} T={} B={} {}",
            self.cell,
            self.input,
            self.hidden,
            self.layers,
            if self.bidirectional { " bi" } else { "" },
            self.seq,
            self.batch,
            self.mode
        )
    }
}

impl From<&BenchShape> for Key {
    fn from(s: &BenchShape) -> Self {
        Key {
            cell: s.cell.clone(),
            input: s.input,
            hidden: s.hidden,
            layers: s.layers,
            bidirectional: s.bidirectional,
            seq: s.seq,
            batch: s.batch,
            mode: s.mode.name().to_string(),
        }
    }
}

/// One benchmark line; fields besides these (`gpu_ms`, `phases_ms`, ...) are ignored.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Row {
    /// Who measured it (`recur`, `torch-cpu`, `torch-cudnn`), when the line says.
    pub engine: Option<String>,
    /// On what (the adapter or the CUDA device name), when the line says.
    pub device: Option<String>,
    /// The shape.
    #[serde(flatten)]
    pub key: Key,
    /// Median wall time of one call, ms; finite and positive.
    pub ms: f64,
}

/// Parses benchmark lines. Every line that starts with `{` (after blanks) must be a benchmark
/// object; others are skipped. Errors name `source` and the 1-based line number.
pub fn parse_lines(text: &str, source: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.starts_with('{') {
            continue;
        }
        let n = i + 1;
        let row: Row = serde_json::from_str(line).map_err(|e| {
            // serde_json ends its message with "at line 1 column C" (of this one line).
            let msg = e.to_string();
            let msg = match msg.rsplit_once(" at line ") {
                Some((m, _)) if e.line() > 0 => m.to_string(),
                _ => msg,
            };
            anyhow!(
                "{source} line {n}, column {}: not a benchmark line: {msg}",
                e.column()
            )
        })?;
        if !(row.ms.is_finite() && row.ms > 0.0) {
            return Err(anyhow!(
                "{source} line {n}: ms must be a positive time in milliseconds, got {}",
                row.ms
            ));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(anyhow!(
            "{source}: no benchmark lines (one JSON object a line, as `recur bench --json` and \
             benches/peers/torch_rnn.py print)"
        ));
    }
    Ok(rows)
}

/// Rows by shape, in the order each shape first appears. Several lines of one shape (reruns
/// appended to a file, as `benches/vs-commit.sh` does when it alternates two builds) become
/// one row with the median of their times and the other fields of the last line.
#[derive(Clone, Debug, Default)]
pub struct RowSet {
    rows: Vec<Row>,
    index: HashMap<Key, usize>,
}

impl RowSet {
    /// The set of `rows`.
    pub fn new(rows: Vec<Row>) -> Self {
        let mut set = RowSet::default();
        let mut times: Vec<Vec<f64>> = Vec::new();
        for row in rows {
            match set.index.get(&row.key) {
                Some(&i) => {
                    times[i].push(row.ms);
                    set.rows[i] = row;
                }
                None => {
                    set.index.insert(row.key.clone(), set.rows.len());
                    times.push(vec![row.ms]);
                    set.rows.push(row);
                }
            }
        }
        for (row, mut t) in set.rows.iter_mut().zip(times) {
            t.sort_by(f64::total_cmp);
            let n = t.len();
            row.ms = if n % 2 == 1 {
                t[n / 2]
            } else {
                (t[n / 2 - 1] + t[n / 2]) / 2.0
            };
        }
        set
    }

    /// Reads and parses the benchmark lines of the file at `path`; errors name the path.
    pub fn read(path: &Path) -> Result<Self> {
        // Through the library's reader: no endless inputs (/dev/zero, a FIFO), no huge files.
        let bytes = recur::io::read_file_limited(path, 64 << 20)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let text = String::from_utf8(bytes)
            .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
        Ok(RowSet::new(parse_lines(
            &text,
            &path.display().to_string(),
        )?))
    }

    /// The row of shape `key`.
    pub fn get(&self, key: &Key) -> Option<&Row> {
        self.index.get(key).map(|&i| &self.rows[i])
    }

    /// The rows, one a shape.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The engine every line names, if they agree on one.
    pub fn engine(&self) -> Option<&str> {
        let first = self.rows.first()?.engine.as_deref()?;
        self.rows
            .iter()
            .all(|r| r.engine.as_deref() == Some(first))
            .then_some(first)
    }

    /// Who measured on what: the distinct `engine on device` of the lines, `; `-separated.
    pub fn describe(&self) -> String {
        let mut seen: Vec<String> = Vec::new();
        for r in &self.rows {
            let d = format!(
                "{} on {}",
                r.engine.as_deref().unwrap_or("?"),
                r.device.as_deref().unwrap_or("?")
            );
            if !seen.contains(&d) {
                seen.push(d);
            }
        }
        seen.join("; ")
    }
}

/// One shape of the table and its time on each side (`None`: that side lacks the shape).
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    /// The shape.
    pub key: Key,
    /// The subject's ms.
    pub subject_ms: Option<f64>,
    /// The reference's ms.
    pub reference_ms: Option<f64>,
}

impl Pair {
    /// The subject's `row` and the reference's time for the same shape, if it has one.
    pub fn of(row: &Row, reference: &RowSet) -> Self {
        Pair {
            key: row.key.clone(),
            subject_ms: Some(row.ms),
            reference_ms: reference.get(&row.key).map(|r| r.ms),
        }
    }

    /// reference ms / subject ms, when both sides have the shape: above 1 the subject is
    /// faster.
    pub fn ratio(&self) -> Option<f64> {
        Some(self.reference_ms? / self.subject_ms?)
    }
}

/// Joins on the shape: the subject's shapes in its order, then the reference's shapes the
/// subject lacks.
pub fn join(subject: &RowSet, reference: &RowSet) -> Vec<Pair> {
    let mut pairs: Vec<Pair> = subject
        .rows()
        .iter()
        .map(|r| Pair::of(r, reference))
        .collect();
    pairs.extend(
        reference
            .rows()
            .iter()
            .filter(|r| subject.get(&r.key).is_none())
            .map(|r| Pair {
                key: r.key.clone(),
                subject_ms: None,
                reference_ms: Some(r.ms),
            }),
    );
    pairs
}

/// exp(mean(ln x)); `None` for no values or any value that is not finite and positive.
pub fn geometric_mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
        return None;
    }
    Some((xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp())
}

/// `x` with three significant digits and no exponent: `112`, `3.20`, `0.00896`.
pub fn sig3(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let digits = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.digits$}")
}

/// A ratio (reference / subject) in words: `3.20× faster`, `112× slower`, `as fast`.
pub fn verdict(ratio: f64) -> String {
    if (ratio - 1.0).abs() < 0.005 {
        "as fast".to_string()
    } else if ratio > 1.0 {
        format!("{}× faster", sig3(ratio))
    } else {
        format!("{}× slower", sig3(1.0 / ratio))
    }
}

/// `1 shape`, `2 shapes`.
fn shapes(n: usize) -> String {
    format!("{n} shape{}", if n == 1 { "" } else { "s" })
}

/// One side of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Side {
    /// A short name for column heads and verdicts: `recur`, `torch-cpu`, a file's stem.
    pub name: String,
    /// Who measured on what, and from where.
    pub about: String,
}

impl Side {
    /// The side of a saved file: named by the file's stem, described by its lines.
    pub fn of_file(path: &Path, rows: &RowSet) -> Self {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "file".to_string());
        Side {
            name,
            about: format!("{}, from {}", rows.describe(), path.display()),
        }
    }
}

/// The table's layout: the two sides and the column widths.
pub struct Table {
    subject: Side,
    reference: Side,
    shape_width: usize,
    ms_width: usize,
}

impl Table {
    /// A table of `subject` against `reference` whose shape column fits `keys`; two sides of
    /// the same name become `NAME (A)` and `NAME (B)`.
    pub fn new<'a>(
        mut subject: Side,
        mut reference: Side,
        keys: impl IntoIterator<Item = &'a Key>,
    ) -> Self {
        if subject.name == reference.name {
            subject.name = format!("{} (A)", subject.name);
            reference.name = format!("{} (B)", reference.name);
        }
        let shape_width = keys
            .into_iter()
            .map(|k| k.label().chars().count())
            .fold(40, usize::max);
        let ms_width = [&subject.name, &reference.name]
            .iter()
            .map(|n| n.chars().count() + 3)
            .fold(10, usize::max);
        Table {
            subject,
            reference,
            shape_width,
            ms_width,
        }
    }

    /// What is compared, how to read the ratio, and the column heads.
    pub fn header(&self) -> String {
        let (s, r) = (&self.subject.name, &self.reference.name);
        let (s_ms, r_ms) = (format!("{s} ms"), format!("{r} ms"));
        format!(
            "{s}: {}\n{r}: {}\nratio = {r} ms / {s} ms (median wall time of one call): above 1, \
             {s} is faster\n{:<sw$} {:>mw$} {:>mw$} {:>9}  {s}",
            self.subject.about,
            self.reference.about,
            "shape",
            s_ms,
            r_ms,
            "ratio",
            sw = self.shape_width,
            mw = self.ms_width,
        )
    }

    /// One shape: both times, the ratio and the verdict, or `missing` for a side without it.
    pub fn row(&self, p: &Pair) -> String {
        let ms = |x: Option<f64>| x.map_or_else(|| "missing".to_string(), |v| format!("{v:.3}"));
        let (ratio, words) = p.ratio().map_or_else(
            || ("-".to_string(), String::new()),
            |q| (sig3(q), verdict(q)),
        );
        format!(
            "{:<sw$} {:>mw$} {:>mw$} {:>9}  {words}",
            p.key.label(),
            ms(p.subject_ms),
            ms(p.reference_ms),
            ratio,
            sw = self.shape_width,
            mw = self.ms_width,
        )
        .trim_end()
        .to_string()
    }

    /// The geometric mean of the ratios over the shapes both sides have, and how many shapes
    /// only one side has; `None` when no shape is on both sides.
    pub fn summary(&self, pairs: &[Pair]) -> Option<String> {
        let ratios: Vec<f64> = pairs.iter().filter_map(Pair::ratio).collect();
        let mean = geometric_mean(&ratios)?;
        let (s, r) = (&self.subject.name, &self.reference.name);
        let mut out = format!(
            "geometric mean of {r} ms / {s} ms over {}: {} ({s} is {})",
            shapes(ratios.len()),
            sig3(mean),
            verdict(mean)
        );
        let missing = pairs.len() - ratios.len();
        if missing > 0 {
            out.push_str(&format!(
                "\n{} measured by one side only (missing) not in the mean",
                shapes(missing)
            ));
        }
        Some(out)
    }

    /// The whole table of `pairs`: header, rows and summary; `None` when no shape is on both
    /// sides.
    pub fn render(&self, pairs: &[Pair]) -> Option<String> {
        let summary = self.summary(pairs)?;
        let mut out = self.header();
        for p in pairs {
            out.push('\n');
            out.push_str(&self.row(p));
        }
        out.push('\n');
        out.push_str(&summary);
        Some(out)
    }
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
