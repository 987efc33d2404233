//! An attention matrix as an SVG heatmap (for `translate_attention`).

/// `weights` as an SVG heatmap: a row per output token (`rows` labels), a column per source
/// word (`columns` labels), white for 0 to blue for 1.
pub fn svg(columns: &[String], rows: &[String], weights: &[Vec<f32>]) -> String {
    const CELL: usize = 22;
    let (left, top) = (60, 130);
    let (w, h) = (
        left + CELL * columns.len() + 10,
        top + CELL * rows.len() + 10,
    );
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{w}\" height=\"{h}\" \
         fill=\"white\"/>\n"
    );
    for (j, word) in columns.iter().enumerate() {
        let x = left + CELL * j + CELL / 2 + 4;
        svg += &format!(
            "<text transform=\"translate({x},{}) rotate(-60)\">{word}</text>\n",
            top - 4
        );
    }
    for (i, row) in weights.iter().enumerate() {
        let y = top + CELL * i;
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            left - 4,
            y + CELL / 2 + 4,
            rows[i].replace('<', "&lt;").replace('>', "&gt;")
        );
        for (j, &a) in row.iter().enumerate() {
            let shade = (255.0 * (1.0 - a.clamp(0.0, 1.0))) as u8;
            svg += &format!(
                "<rect x=\"{}\" y=\"{y}\" width=\"{CELL}\" height=\"{CELL}\" \
                 fill=\"rgb({shade},{shade},255)\" stroke=\"#ddd\"/>\n",
                left + CELL * j
            );
        }
    }
    svg + "</svg>\n"
}
