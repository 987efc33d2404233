//! `recur train --plot FILE`: the loss curve with the corpus's unigram entropy as a reference
//! line, as SVG or PNG (both drawn by plotters through [`crate::figure`], with labelled axes
//! and a legend).

use std::path::Path;

use anyhow::bail;
use plotters::prelude::SeriesLabelPosition;

use crate::figure::{self, Figure, LineChart, Panel, Series, PALETTE};

/// The curve of `points` (step, loss) with the unigram entropy as a reference line, as the
/// bytes of an SVG or PNG file by the extension of `path` (written by the caller, together
/// with the checkpoint).
pub fn render(path: &Path, points: &[(u64, f32)], entropy: f64) -> anyhow::Result<Vec<u8>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => figure::svg(&loss_figure(points, entropy)),
        Some("png") => figure::png(&loss_figure(points, entropy)),
        _ => bail!(
            "--plot {}: the file name must end in .svg or .png",
            path.display()
        ),
    }
}

/// The `--plot` file name is checked before training, so a typo does not cost a run.
pub fn check_name(path: &Path) -> anyhow::Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("svg") || e.eq_ignore_ascii_case("png") => Ok(()),
        _ => bail!(
            "--plot {}: the file name must end in .svg or .png",
            path.display()
        ),
    }
}

/// The loss curve and the entropy line, one panel.
fn loss_figure(points: &[(u64, f32)], entropy: f64) -> Figure {
    let loss: Vec<(f64, f64)> = points
        .iter()
        .map(|&(s, l)| (s as f64, f64::from(l)))
        .collect();
    let (x0, x1) = (
        loss.first().map_or(0.0, |p| p.0),
        loss.last().map_or(1.0, |p| p.0),
    );
    Figure {
        title: "Training loss".into(),
        size: (800, 480),
        cols: 1,
        panels: vec![Panel::Lines(LineChart {
            title: String::new(),
            x_label: "step".into(),
            y_label: "loss (nats)".into(),
            log_y: false,
            series: vec![
                Series {
                    label: "training loss".into(),
                    points: loss,
                    color: PALETTE[0],
                    dashed: false,
                },
                Series {
                    label: format!("unigram entropy {entropy:.3}"),
                    points: vec![(x0, entropy), (x1.max(x0 + 1.0), entropy)],
                    color: PALETTE[3],
                    dashed: true,
                },
            ],
            legend: SeriesLabelPosition::UpperRight,
        })],
        heat_range: (0.0, 1.0),
    }
}
