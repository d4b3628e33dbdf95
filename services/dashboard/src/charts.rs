//! Trend charts as SVG, drawn by plotters (its SVG backend only: no fonts or bitmaps from the
//! system). Text in the SVG is escaped by plotters; the series names here are fixed anyway.

use plotters::prelude::*;

/// A line chart of one series over time (x: seconds before the newest point).
pub fn trend(title: &str, unit: &str, points: &[(f64, f64)], colour: RGBColor) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 200)).into_drawing_area();
        let _ = root.fill(&WHITE);
        if points.is_empty() {
            let _ = root.draw(&Text::new(
                format!("{title}: no data yet"),
                (20, 90),
                ("sans-serif", 16),
            ));
        } else {
            let (x0, x1) = points
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
            let (y0, y1) = points
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
            let pad = ((y1 - y0) * 0.1).max(1e-3);
            let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
            if let Ok(mut chart) = ChartBuilder::on(&root)
                .caption(format!("{title} ({unit})"), ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(52)
                .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            {
                let _ = chart
                    .configure_mesh()
                    .x_desc("seconds (0 = latest)")
                    .x_labels(6)
                    .y_labels(5)
                    .draw();
                let _ = chart.draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ));
            }
        }
        let _ = root.present();
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_line_with_labels() {
        let pts: Vec<(f64, f64)> = (0..50)
            .map(|i| (f64::from(i) - 49.0, f64::from(i).sin()))
            .collect();
        let svg = trend("Vibration", "mm/s", &pts, BLUE);
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("Vibration (mm/s)"));
        assert!(svg.contains("<polyline"));
        let empty = trend("Risk", "p", &[], RED);
        assert!(empty.contains("no data yet") && !empty.contains("<polyline"));
    }
}
