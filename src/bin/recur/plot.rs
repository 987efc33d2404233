//! `recur train --plot FILE`: the loss curve as SVG (written by hand) or PNG (drawn on an RGB
//! canvas, encoded by the `png` crate; no fonts, so the PNG has no labels).

use std::path::Path;

use anyhow::{bail, Context};

const W: usize = 800;
const H: usize = 480;
const MARGIN: f64 = 60.0;

/// Maps (step, loss) to canvas coordinates.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn new(points: &[(u64, f32)], entropy: f64) -> Frame {
        let x0 = points.first().map_or(0.0, |p| p.0 as f64);
        let x1 = points.last().map_or(1.0, |p| p.0 as f64).max(x0 + 1.0);
        let finite = points
            .iter()
            .map(|p| f64::from(p.1))
            .filter(|v| v.is_finite());
        let y1 = finite.clone().fold(entropy, f64::max) * 1.05;
        let y0 = finite.fold(entropy, f64::min).min(0.0);
        Frame {
            x0,
            x1,
            y0,
            y1: y1.max(y0 + 1e-6),
        }
    }

    fn px(&self, step: f64) -> f64 {
        MARGIN + (step - self.x0) / (self.x1 - self.x0) * (W as f64 - 2.0 * MARGIN)
    }

    fn py(&self, loss: f64) -> f64 {
        H as f64 - MARGIN - (loss - self.y0) / (self.y1 - self.y0) * (H as f64 - 2.0 * MARGIN)
    }
}

/// The curve of `points` (step, loss) with the unigram entropy as a reference line, as the
/// bytes of an SVG or PNG file by the extension of `path` (written by the caller, together
/// with the checkpoint).
pub fn render(path: &Path, points: &[(u64, f32)], entropy: f64) -> anyhow::Result<Vec<u8>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => Ok(svg(points, entropy).into_bytes()),
        Some("png") => png(points, entropy),
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

fn svg(points: &[(u64, f32)], entropy: f64) -> String {
    let f = Frame::new(points, entropy);
    let (w, h, m) = (W as f64, H as f64, MARGIN);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <path d=\"M{m} {m} V{} H{}\" fill=\"none\" stroke=\"#444\"/>\n",
        h - m,
        w - m
    );
    for i in 0..=4 {
        let v = f.y0 + (f.y1 - f.y0) * f64::from(i) / 4.0;
        let y = f.py(v);
        s += &format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.2}</text>\n",
            m - 6.0,
            y + 4.0
        );
        let st = f.x0 + (f.x1 - f.x0) * f64::from(i) / 4.0;
        s += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{st:.0}</text>\n",
            f.px(st),
            h - m + 18.0
        );
    }
    let ey = f.py(entropy);
    s += &format!(
        "<line x1=\"{m}\" y1=\"{ey:.1}\" x2=\"{}\" y2=\"{ey:.1}\" stroke=\"#c33\" \
         stroke-dasharray=\"6 4\"/>\n<text x=\"{}\" y=\"{:.1}\" fill=\"#c33\" \
         text-anchor=\"end\">unigram entropy {entropy:.3}</text>\n",
        w - m,
        w - m,
        ey - 6.0
    );
    let pts: Vec<String> = points
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|p| format!("{:.1},{:.1}", f.px(p.0 as f64), f.py(f64::from(p.1))))
        .collect();
    s += &format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"1.5\"/>\n",
        pts.join(" ")
    );
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n\
         <text x=\"{m}\" y=\"{}\" >loss (nats)</text>\n</svg>\n",
        w / 2.0,
        h - 16.0,
        m - 20.0
    );
    s
}

/// An RGB canvas with line drawing.
struct Canvas(Vec<u8>);

impl Canvas {
    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..W as i64).contains(&x) && (0..H as i64).contains(&y) {
            let i = (y as usize * W + x as usize) * 3;
            self.0[i..i + 3].copy_from_slice(&c);
        }
    }

    fn line(&mut self, a: (f64, f64), b: (f64, f64), c: [u8; 3], dash: bool) {
        let n = (b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil().max(1.0) as i64;
        for i in 0..=n {
            if dash && (i / 6) % 2 == 1 {
                continue;
            }
            let t = i as f64 / n as f64;
            let x = (a.0 + (b.0 - a.0) * t).round() as i64;
            let y = (a.1 + (b.1 - a.1) * t).round() as i64;
            self.set(x, y, c);
            self.set(x, y + 1, c);
        }
    }
}

fn png(points: &[(u64, f32)], entropy: f64) -> anyhow::Result<Vec<u8>> {
    let f = Frame::new(points, entropy);
    let mut c = Canvas(vec![255u8; W * H * 3]);
    let (w, h, m) = (W as f64, H as f64, MARGIN);
    let axis = [68, 68, 68];
    c.line((m, m), (m, h - m), axis, false);
    c.line((m, h - m), (w - m, h - m), axis, false);
    let ey = f.py(entropy);
    c.line((m, ey), (w - m, ey), [204, 51, 51], true);
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|p| (f.px(p.0 as f64), f.py(f64::from(p.1))))
        .collect();
    for p in pts.windows(2) {
        c.line(p[0], p[1], [31, 95, 191], false);
    }
    let mut out = Vec::new();
    {
        let mut enc = ::png::Encoder::new(&mut out, W as u32, H as u32);
        enc.set_color(::png::ColorType::Rgb);
        enc.set_depth(::png::BitDepth::Eight);
        let mut wr = enc.write_header().context("encoding the PNG")?;
        wr.write_image_data(&c.0).context("encoding the PNG")?;
    }
    Ok(out)
}
