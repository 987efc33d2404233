//! The figures of `recur gradients`, each as PNG and SVG: `grad_norms` (‖∂L/∂h_t‖ against t at
//! initialization and after training, log y), `grad_heatmap` (‖∂L/∂h_t‖ over t and training
//! step, one panel a configuration), `sigma_max` (σ_max(W_hh) over training) and `accuracy`
//! (held-out accuracy and training loss over training).

use std::path::{Path, PathBuf};

use plotters::prelude::SeriesLabelPosition;

use crate::figure::{self, Figure, Heatmap, LineChart, Panel, Series, PALETTE};
use crate::gradients::{Outcome, Setup};

/// Rows and columns of a heatmap panel at most (bins of steps and of t: small files).
const HEAT_ROWS: usize = 40;
const HEAT_COLS: usize = 26;
/// The heatmaps' log10 colour range is clamped to this.
const HEAT_LOG_MIN: f64 = -20.0;
const HEAT_LOG_MAX: f64 = 6.0;

fn series(o: &Outcome, i: usize, points: Vec<(f64, f64)>) -> Series {
    Series {
        label: o.name.clone(),
        points,
        color: PALETTE[i % PALETTE.len()],
        // the SGD runs without clipping dashed, beside their clipped twins
        dashed: o.name.starts_with("RNN σ") && !o.name.ends_with("clip"),
    }
}

fn flow_points(flow: &[f32]) -> Vec<(f64, f64)> {
    flow.iter()
        .enumerate()
        .map(|(t, v)| ((t + 1) as f64, f64::from(*v)))
        .collect()
}

fn grad_norms(setup: &Setup, outcomes: &[Outcome]) -> Figure {
    let chart = |title: &str, pick: &dyn Fn(&Outcome) -> Option<&[f32]>| LineChart {
        title: title.into(),
        x_label: "t (step of the sequence)".into(),
        y_label: "‖∂L/∂h_t‖".into(),
        log_y: true,
        series: outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| pick(o).map(|f| series(o, i, flow_points(f))))
            .collect(),
        legend: SeriesLabelPosition::LowerRight,
    };
    Figure {
        title: format!(
            "Gradient reaching h_t, loss at t = T = {} (delayed recall)",
            setup.lag + 1
        ),
        size: (1400, 560),
        cols: 2,
        panels: vec![
            Panel::Lines(chart("at initialization", &|o| Some(&o.init_flow))),
            Panel::Lines(chart(
                "after training (runs that diverged left out)",
                &|o| o.diverged_at.is_none().then_some(&o.final_flow[..]),
            )),
        ],
        heat_range: (0.0, 1.0),
    }
}

/// Bin edges splitting `0..n` into at most `max` bins.
fn bins(n: usize, max: usize) -> Vec<usize> {
    let k = n.clamp(1, max);
    (0..=k).map(|i| i * n / k).collect()
}

/// Geometric mean of the positive finite values (NaN when none).
fn geo_mean(v: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in v.filter(|x| x.is_finite() && *x > 0.0) {
        s += x.log10();
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        10f64.powf(s / n as f64)
    }
}

fn heatmap(setup: &Setup, outcomes: &[Outcome]) -> Figure {
    let seq = setup.lag + 1;
    let mut panels = Vec::new();
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for o in outcomes {
        let steps = o.flows.len().max(1);
        let rows = bins(steps, HEAT_ROWS);
        let cols = bins(seq, HEAT_COLS);
        let mut values = Vec::new();
        for r in rows.windows(2) {
            let mut row = Vec::new();
            for c in cols.windows(2) {
                let cells = o.flows[r[0]..r[1].min(o.flows.len())]
                    .iter()
                    .flat_map(|(_, f)| f[c[0]..c[1]].iter().map(|v| f64::from(*v)));
                let v = geo_mean(cells);
                if v.is_finite() {
                    lo = lo.min(v.log10());
                    hi = hi.max(v.log10());
                }
                row.push(v);
            }
            values.push(row);
        }
        panels.push(Panel::Heat(Heatmap {
            title: o.name.clone(),
            x_label: "t".into(),
            y_label: "training step".into(),
            x_edges: cols.iter().map(|&c| c as f64 + 1.0).collect(),
            y_edges: rows.iter().map(|&r| r as f64).collect(),
            values,
        }));
    }
    panels.push(Panel::ColorBar {
        label: "‖∂L/∂h_t‖".into(),
    });
    // Diverged runs reach 1e30 and more just before the end: colours saturate past the
    // clamp so that the range of the runs that trained stays readable.
    (lo, hi) = (lo.max(HEAT_LOG_MIN), hi.min(HEAT_LOG_MAX));
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    Figure {
        title: format!(
            "‖∂L/∂h_t‖ over t and training (log colour, clamped to 1e{HEAT_LOG_MIN}..1e{HEAT_LOG_MAX}; grey: not finite)"
        ),
        size: (1600, 720),
        cols: 5,
        panels,
        heat_range: (lo.floor(), hi.ceil().max(lo.floor() + 1.0)),
    }
}

fn over_training(outcomes: &[Outcome]) -> (Figure, Figure) {
    let sigma = Figure {
        title: "σ_max(W_hh) during training".into(),
        size: (1000, 560),
        cols: 1,
        panels: vec![Panel::Lines(LineChart {
            title: String::new(),
            x_label: "training step".into(),
            y_label: "σ_max(W_hh)".into(),
            log_y: true,
            series: outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| series(o, i, o.sigma.iter().map(|&(s, v)| (s as f64, v)).collect()))
                .collect(),
            legend: SeriesLabelPosition::UpperLeft,
        })],
        heat_range: (0.0, 1.0),
    };
    let acc = LineChart {
        title: "held-out accuracy (|prediction − v| < 0.1)".into(),
        x_label: "training step".into(),
        y_label: "accuracy".into(),
        log_y: false,
        series: outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                series(
                    o,
                    i,
                    o.accuracy.iter().map(|&(s, a)| (s as f64, a)).collect(),
                )
            })
            .collect(),
        legend: SeriesLabelPosition::UpperLeft,
    };
    let loss = LineChart {
        title: "training loss (MSE; a line ends where it stopped being finite)".into(),
        x_label: "training step".into(),
        y_label: "loss".into(),
        log_y: true,
        series: outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let pts = o
                    .losses
                    .iter()
                    .enumerate()
                    .map(|(s, l)| ((s + 1) as f64, f64::from(*l)))
                    .collect();
                series(o, i, pts)
            })
            .collect(),
        legend: SeriesLabelPosition::UpperRight,
    };
    let accuracy = Figure {
        title: "Learning the delayed recall".into(),
        size: (1400, 560),
        cols: 2,
        panels: vec![Panel::Lines(acc), Panel::Lines(loss)],
        heat_range: (0.0, 1.0),
    };
    (sigma, accuracy)
}

/// Draws every figure as PNG and SVG and writes them into `dir` together (all or none);
/// returns the file names.
pub fn write_all(dir: &Path, setup: &Setup, outcomes: &[Outcome]) -> anyhow::Result<Vec<String>> {
    let (sigma, accuracy) = over_training(outcomes);
    let figs = [
        ("grad_norms", grad_norms(setup, outcomes)),
        ("grad_heatmap", heatmap(setup, outcomes)),
        ("sigma_max", sigma),
        ("accuracy", accuracy),
    ];
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for (name, fig) in &figs {
        files.push((dir.join(format!("{name}.png")), figure::png(fig)?));
        files.push((dir.join(format!("{name}.svg")), figure::svg(fig)?));
    }
    let refs: Vec<(&Path, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_path(), b.as_slice()))
        .collect();
    recur::io::files::write_all_atomic(&refs)?;
    Ok(files.iter().map(|(p, _)| p.display().to_string()).collect())
}
