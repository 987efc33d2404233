//! `recur gradients --quick`: trains every configuration at tiny sizes, writes the figures
//! (PNG and SVG) and prints the table.

mod common;

use common::cli::{ok, recur, stdout};
use common::gpu;

#[test]
fn gradients_quick_writes_the_figures_and_prints_the_table() {
    let Some(_gpu) = gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("figs");
    let out = recur(&["gradients", "--quick", "--out", out_dir.to_str().unwrap()]);
    ok(&out);
    for name in ["grad_norms", "grad_heatmap", "sigma_max", "accuracy"] {
        let png = std::fs::read(out_dir.join(format!("{name}.png"))).unwrap();
        assert!(png.len() > 1000, "{name}.png: {} bytes", png.len());
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png is not a PNG");
        let svg = std::fs::read_to_string(out_dir.join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}.svg is not an SVG"
        );
        // axes with labels and a legend (or the heatmaps' colour bar)
        assert!(svg.contains("<text"), "{name}.svg has no text");
    }
    let norms = std::fs::read_to_string(out_dir.join("grad_norms.svg")).unwrap();
    assert!(norms.contains("‖∂L/∂h_t‖") && norms.contains("LSTM") && norms.contains("GRU"));
    let text = stdout(&out);
    assert!(text.contains("ratio at init"), "{text}");
    for name in [
        "RNN (tanh)",
        "LSTM",
        "GRU",
        "RNN σ=0.5 ",
        "RNN σ=0.5 clip",
        "RNN σ=1 ",
        "RNN σ=1 clip",
        "RNN σ=2 ",
        "RNN σ=2 clip",
    ] {
        let row = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no table row {name:?} in\n{text}"));
        // ratio, accuracy and the finiteness column are printed
        assert!(
            row.contains('%') && (row.contains("yes") || row.contains("no (step")),
            "{row}"
        );
    }
}

#[test]
fn gradients_refuses_an_unknown_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = recur(&[
        "gradients",
        "--quick",
        "--out",
        dir.path().to_str().unwrap(),
        "--only",
        "no such cell",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--only"));
}
