//! The needle-in-a-haystack picture: depth (rows, 0 % at the top) × context length (columns),
//! each cell coloured red → yellow → green by its score, as gkamradt's original plots. SVG with
//! labels, and PNG (cells only) for places that show no SVG.

use std::fmt::Write as _;

/// gkamradt's colour map: #F0496E at 0, #EBB839 at 0.5, #0CD79F at 1.
pub fn colour(score: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 3] = [[240.0, 73.0, 110.0], [235.0, 184.0, 57.0], [12.0, 215.0, 159.0]];
    let s = if score.is_finite() { score.clamp(0.0, 1.0) } else { 0.0 };
    let (a, b, t) = if s < 0.5 { (STOPS[0], STOPS[1], s * 2.0) } else { (STOPS[1], STOPS[2], (s - 0.5) * 2.0) };
    [0, 1, 2].map(|i| (a[i] + (b[i] - a[i]) * t).round() as u8)
}

/// A grid: `scores[depth index][length index]`.
pub struct Grid<'a> {
    pub title: &'a str,
    pub lengths: &'a [usize],
    pub depths: &'a [u32],
    pub scores: Vec<Vec<f64>>,
}

/// Text for SVG or HTML: `&`, `<`, `>` and `"` escaped.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn svg(g: &Grid) -> String {
    let (cw, ch, left, top, bottom) = (64, 26, 84, 40, 56);
    let w = left + cw * g.lengths.len() + 20;
    let h = top + ch * g.depths.len() + bottom;
    let mut s = String::new();
    let _ = write!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#);
    let _ = write!(s, r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#, w / 2, escape(g.title));
    for (r, d) in g.depths.iter().enumerate() {
        let y = top + r * ch;
        let _ = write!(s, r#"<text x="{}" y="{}" text-anchor="end">{d}%</text>"#, left - 8, y + ch / 2 + 4);
        for (c, _) in g.lengths.iter().enumerate() {
            let v = g.scores[r][c];
            let [cr, cg, cb] = colour(v);
            let x = left + c * cw;
            let _ = write!(s, r##"<rect x="{x}" y="{y}" width="{cw}" height="{ch}" fill="#{cr:02x}{cg:02x}{cb:02x}" stroke="#ffffff"/>"##);
            let label = if v.is_finite() { format!("{:.0}", v * 100.0) } else { "–".into() };
            let _ = write!(s, r#"<text x="{}" y="{}" text-anchor="middle">{label}</text>"#, x + cw / 2, y + ch / 2 + 4);
        }
    }
    let base = top + ch * g.depths.len();
    for (c, l) in g.lengths.iter().enumerate() {
        let _ = write!(s, r#"<text x="{}" y="{}" text-anchor="middle">{l}</text>"#, left + c * cw + cw / 2, base + 16);
    }
    let _ = write!(s, r#"<text x="{}" y="{}" text-anchor="middle">context length (tokens)</text>"#, left + cw * g.lengths.len() / 2, base + 40);
    let _ = write!(s, r#"<text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">needle depth</text>"#, top + ch * g.depths.len() / 2, top + ch * g.depths.len() / 2);
    s.push_str("</svg>\n");
    s
}

/// PNG of the cells alone (`cell` × `cell / 2` pixels each, white 1-pixel grid lines).
pub fn png(g: &Grid, cell: u32) -> Result<Vec<u8>, String> {
    let (cw, ch) = (cell.max(2), (cell / 2).max(2));
    let w = cw * g.lengths.len() as u32;
    let h = ch * g.depths.len() as u32;
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let (r, c) = ((y / ch) as usize, (x / cw) as usize);
            let rgb = if x % cw == 0 || y % ch == 0 { [255, 255, 255] } else { colour(g.scores[r][c]) };
            px.extend_from_slice(&rgb);
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().map_err(|e| e.to_string())?;
    wr.write_image_data(&px).map_err(|e| e.to_string())?;
    wr.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_run_red_yellow_green_and_pictures_decode() {
        assert_eq!(colour(0.0), [240, 73, 110]);
        assert_eq!(colour(0.5), [235, 184, 57]);
        assert_eq!(colour(1.0), [12, 215, 159]);
        assert_eq!(colour(f64::NAN), colour(0.0));
        let g = Grid { title: "a<b", lengths: &[256, 512], depths: &[0, 50, 100], scores: vec![vec![1.0, 0.0], vec![0.5, 1.0], vec![1.0, 1.0]] };
        let s = svg(&g);
        assert!(s.contains("a&lt;b") && s.matches("<rect").count() == 6 && s.contains(">512<") && s.contains(">50%<"));
        let bytes = png(&g, 40).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (80, 60));
        // Cell (row 0, column 1) is score 0: red.
        let at = |x: usize, y: usize| &buf[(y * 80 + x) * 3..(y * 80 + x) * 3 + 3];
        assert_eq!(at(60, 10), &[240, 73, 110]);
        assert_eq!(at(10, 10), &[12, 215, 159]);
    }
}
