//! Figures for the command line (`recur gradients`, `recur train --plot`): line charts (linear
//! or log y, solid or dashed series, a legend) and heatmaps with a colour bar, drawn by
//! plotters once for SVG and once for PNG. PNG text comes from the font in `assets/fonts`
//! (DejaVu Sans, built into the binary), so no system font library is needed.

use std::sync::Once;

use anyhow::{anyhow, Context};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Ten distinct series colours (matplotlib's tab10).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One curve of a [`LineChart`].
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend entry (no entry when empty).
    pub label: String,
    /// (x, y); points that a log axis cannot show (≤ 0, not finite) are skipped.
    pub points: Vec<(f64, f64)>,
    /// Its colour.
    pub color: RGBColor,
    /// Dashed instead of solid.
    pub dashed: bool,
}

/// A line chart with labelled axes and a legend.
#[derive(Clone, Debug)]
pub struct LineChart {
    /// Caption above the chart.
    pub title: String,
    /// x axis label.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The curves.
    pub series: Vec<Series>,
    /// Where the legend goes.
    pub legend: SeriesLabelPosition,
}

/// A heatmap: `values[row][col]`, rows up the y axis, columns along x, coloured by
/// `log10(value)` between the figure's `lo` and `hi` (non-finite and ≤ 0 cells grey).
#[derive(Clone, Debug)]
pub struct Heatmap {
    /// Caption above the panel.
    pub title: String,
    /// x axis label (columns).
    pub x_label: String,
    /// y axis label (rows).
    pub y_label: String,
    /// x value at the left edge of each column and the right edge of the last (len cols + 1).
    pub x_edges: Vec<f64>,
    /// y value at the bottom edge of each row and the top of the last (len rows + 1).
    pub y_edges: Vec<f64>,
    /// The cells.
    pub values: Vec<Vec<f64>>,
}

/// One panel of a [`Figure`].
#[derive(Clone, Debug)]
pub enum Panel {
    /// A line chart.
    Lines(LineChart),
    /// A heatmap coloured on the figure's log10 range.
    Heat(Heatmap),
    /// The colour bar of the heatmaps: `log10` from `lo` to `hi`.
    ColorBar {
        /// The bar's label.
        label: String,
    },
}

/// Panels on a grid, with a title.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Title over all panels.
    pub title: String,
    /// Pixels (SVG user units).
    pub size: (u32, u32),
    /// Panels a row.
    pub cols: usize,
    /// The panels, row by row.
    pub panels: Vec<Panel>,
    /// log10 range of the heatmaps' colours.
    pub heat_range: (f64, f64),
}

const FONT: &str = "sans-serif";
static FONT_ONCE: Once = Once::new();

/// Registers the built-in font (once per process): PNG text is drawn with it, and both
/// backends measure text with it.
fn register_font() {
    FONT_ONCE.call_once(|| {
        // The bytes are a valid TrueType font, checked by the figure tests.
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../../../assets/fonts/DejaVuSans.ttf"),
        );
    });
}

/// Viridis-like colour of `v` in 0..=1 (five stops, linear between them).
pub fn colormap(v: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ];
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = v * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let lerp = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// A tick label: whole numbers without decimals.
fn number(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_lines<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, c: &LineChart) -> DrawResult<DB> {
    let shown = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!c.log_y || p.1 > 0.0);
    let pts: Vec<(f64, f64)> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied().filter(shown))
        .collect();
    let (mut x0, mut x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if pts.is_empty() {
        (x0, x1, y0, y1) = (0.0, 1.0, if c.log_y { 0.1 } else { 0.0 }, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if c.log_y {
        y0 /= 2.0;
        y1 *= 2.0;
    } else {
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        y0 -= pad;
        y1 += pad;
    }
    let mut b = ChartBuilder::on(area);
    b.caption(&c.title, (FONT, 17))
        .margin(8)
        .x_label_area_size(38)
        .y_label_area_size(64);
    let x_fmt = number;
    let log_fmt = |v: &f64| format!("{v:.0e}");
    macro_rules! body {
        ($chart:ident, $y_fmt:expr) => {{
            $chart
                .configure_mesh()
                .x_label_formatter(&x_fmt)
                .y_label_formatter($y_fmt)
                .x_desc(c.x_label.as_str())
                .y_desc(c.y_label.as_str())
                .label_style((FONT, 12))
                .axis_desc_style((FONT, 14))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()?;
            for s in &c.series {
                let p: Vec<(f64, f64)> = s.points.iter().copied().filter(shown).collect();
                let style = s.color.stroke_width(2);
                let drawn = if s.dashed {
                    $chart.draw_series(DashedLineSeries::new(p, 8, 5, style))?
                } else {
                    $chart.draw_series(LineSeries::new(p, style))?
                };
                if !s.label.is_empty() {
                    let (color, dashed) = (s.color, s.dashed);
                    drawn.label(s.label.as_str()).legend(move |(x, y)| {
                        let end = if dashed { x + 8 } else { x + 20 };
                        PathElement::new(vec![(x, y), (end, y)], color.stroke_width(2))
                    });
                }
            }
            if c.series.iter().any(|s| !s.label.is_empty()) {
                $chart
                    .configure_series_labels()
                    .position(c.legend.clone())
                    .label_font((FONT, 12))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(160, 160, 160))
                    .draw()?;
            }
        }};
    }
    if c.log_y {
        let mut chart = b.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?;
        body!(chart, &log_fmt);
    } else {
        let lin_fmt = |v: &f64| format!("{v:.2}");
        let mut chart = b.build_cartesian_2d(x0..x1, y0..y1)?;
        body!(chart, &lin_fmt);
    }
    Ok(())
}

fn draw_heat<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    h: &Heatmap,
    (lo, hi): (f64, f64),
) -> DrawResult<DB> {
    let (x0, x1) = (h.x_edges[0], *h.x_edges.last().unwrap_or(&1.0));
    let (y0, y1) = (h.y_edges[0], *h.y_edges.last().unwrap_or(&1.0));
    let mut chart = ChartBuilder::on(area)
        .caption(&h.title, (FONT, 15))
        .margin(6)
        .x_label_area_size(34)
        .y_label_area_size(52)
        .build_cartesian_2d(x0..x1.max(x0 + 1e-9), y0..y1.max(y0 + 1e-9))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_label_formatter(&number)
        .y_label_formatter(&number)
        .x_desc(h.x_label.as_str())
        .y_desc(h.y_label.as_str())
        .label_style((FONT, 11))
        .axis_desc_style((FONT, 12))
        .draw()?;
    let span = (hi - lo).max(1e-12);
    let cells = h
        .values
        .iter()
        .enumerate()
        .flat_map(|(r, row)| row.iter().enumerate().map(move |(c, &v)| (r, c, v)));
    chart.draw_series(cells.map(|(r, c, v)| {
        let color = if v.is_finite() && v > 0.0 {
            colormap((v.log10() - lo) / span)
        } else {
            RGBColor(200, 200, 200)
        };
        Rectangle::new(
            [
                (h.x_edges[c], h.y_edges[r]),
                (h.x_edges[c + 1], h.y_edges[r + 1]),
            ],
            color.filled(),
        )
    }))?;
    Ok(())
}

fn draw_colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    label: &str,
    (lo, hi): (f64, f64),
) -> DrawResult<DB> {
    let hi = hi.max(lo + 1e-9);
    let (w, _) = area.dim_in_pixel();
    let mut chart = ChartBuilder::on(area)
        .caption(label, (FONT, 14))
        .margin_top(6)
        .margin_bottom(40)
        .margin_left(10)
        .margin_right((w as i32 / 2).max(10))
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..1.0, lo..hi)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc("log10")
        .label_style((FONT, 11))
        .axis_desc_style((FONT, 12))
        .draw()?;
    let n = 64;
    chart.draw_series((0..n).map(|i| {
        let a = lo + (hi - lo) * i as f64 / n as f64;
        let b = lo + (hi - lo) * (i + 1) as f64 / n as f64;
        Rectangle::new(
            [(0.0, a), (1.0, b)],
            colormap((i as f64 + 0.5) / n as f64).filled(),
        )
    }))?;
    Ok(())
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, f: &Figure) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let body = root.titled(&f.title, (FONT, 20))?;
    let cols = f.cols.max(1);
    let rows = f.panels.len().div_ceil(cols).max(1);
    let areas = body.split_evenly((rows, cols));
    for (panel, area) in f.panels.iter().zip(areas.iter()) {
        match panel {
            Panel::Lines(c) => draw_lines(area, c)?,
            Panel::Heat(h) => draw_heat(area, h, f.heat_range)?,
            Panel::ColorBar { label } => draw_colorbar(area, label, f.heat_range)?,
        }
    }
    root.present()?;
    Ok(())
}

/// The figure as an SVG document.
pub fn svg(f: &Figure) -> anyhow::Result<Vec<u8>> {
    // plotters measures text with the font for SVG too (layout, legend boxes)
    register_font();
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, f.size).into_drawing_area();
        draw(root, f).map_err(|e| anyhow!("drawing the SVG: {e}"))?;
    }
    Ok(s.into_bytes())
}

/// The figure as a PNG file (RGB, 8 bits).
pub fn png(f: &Figure) -> anyhow::Result<Vec<u8>> {
    register_font();
    let (w, h) = f.size;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, f.size).into_drawing_area();
        draw(root, f).map_err(|e| anyhow!("drawing the PNG: {e}"))?;
    }
    let mut out = Vec::new();
    {
        let mut enc = ::png::Encoder::new(&mut out, w, h);
        enc.set_color(::png::ColorType::Rgb);
        enc.set_depth(::png::BitDepth::Eight);
        let mut wr = enc.write_header().context("encoding the PNG")?;
        wr.write_image_data(&buf).context("encoding the PNG")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> Figure {
        Figure {
            title: "t".into(),
            size: (320, 200),
            cols: 1,
            panels: vec![Panel::Lines(LineChart {
                title: "c".into(),
                x_label: "x".into(),
                y_label: "y".into(),
                log_y: true,
                series: vec![Series {
                    label: "s".into(),
                    points: vec![(0.0, 1.0), (1.0, 1e-3), (2.0, f64::NAN), (3.0, 0.0)],
                    color: PALETTE[0],
                    dashed: true,
                }],
                legend: SeriesLabelPosition::UpperRight,
            })],
            heat_range: (0.0, 1.0),
        }
    }

    #[test]
    fn the_font_parses_and_text_reaches_the_png() {
        assert!(plotters::style::register_font(
            "recur-test",
            FontStyle::Normal,
            include_bytes!("../../../assets/fonts/DejaVuSans.ttf"),
        )
        .is_ok());
        // With labels the PNG differs from the same figure without any text.
        let with = png(&chart()).unwrap();
        let mut bare = chart();
        bare.title.clear();
        if let Panel::Lines(c) = &mut bare.panels[0] {
            c.title.clear();
            c.x_label.clear();
            c.y_label.clear();
        }
        assert_ne!(with, png(&bare).unwrap());
        assert_eq!(&with[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn svg_has_the_labels() {
        let s = String::from_utf8(svg(&chart()).unwrap()).unwrap();
        // plotters writes each text on its own line: "<text ...>\nx\n</text>"
        assert!(s.starts_with("<svg") && s.contains("\nx\n</text>") && s.contains("\ns\n</text>"));
    }

    #[test]
    fn colormap_ends() {
        assert_eq!(colormap(0.0), RGBColor(68, 1, 84));
        assert_eq!(colormap(1.0), RGBColor(253, 231, 37));
        assert_eq!(colormap(f64::NAN), colormap(0.0));
    }
}
