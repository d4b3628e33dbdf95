//! The EDA report: an HTML page (`report.html`) and the SVG charts it shows, as text, from a
//! [`Frame`]. Every string taken from the data (column names, machine ids, the source path) is
//! escaped; file names are made from column names reduced to `[a-z0-9_]`.

use crate::eda::{
    box_stats, by_class, class_histogram, correlation, failure_windows, summarize, Frame,
};
use crate::modelcard::esc;
use crate::plots;
use std::fmt::Write;

/// Bins of the class histograms.
pub const HISTOGRAM_BINS: usize = 30;
/// Machines shown leading into a failure.
pub const FAILURE_MACHINES: usize = 3;
/// Readings shown before the failure.
pub const READINGS_BEFORE: u32 = 120;
/// Readings shown after it.
pub const READINGS_AFTER: u32 = 10;

/// The page and its charts.
#[derive(Debug, Clone)]
pub struct EdaReport {
    /// `report.html`.
    pub html: String,
    /// `(file name, SVG)` of every chart the page shows.
    pub files: Vec<(String, String)>,
}

/// `name` reduced to lower-case letters, digits and single underscores.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "column".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        "–".to_owned()
    } else if x != 0.0 && (x.abs() >= 1e6 || x.abs() < 1e-3) {
        format!("{x:.3e}")
    } else {
        format!("{x:.3}")
    }
}

fn figure(h: &mut String, files: &mut Vec<(String, String)>, name: String, svg: String, alt: &str) {
    let _ = write!(
        h,
        "<figure><img src=\"{}\" alt=\"{}\"></figure>",
        esc(&name),
        esc(alt)
    );
    files.push((name, svg));
}

/// The report of `frame`, read from `source` (`skipped` rows could not be read).
pub fn render(frame: &Frame, source: &str, skipped: usize) -> EdaReport {
    let mut h = String::new();
    let mut files = Vec::new();
    let twin = frame.machines.is_some();
    let class_names = if twin {
        ["no failure ahead", "failure ahead"]
    } else {
        ["no failure", "failure"]
    };
    let (neg, pos) = frame.class_balance();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>EDA: {src}</title>\
         <style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}figure{{display:inline-block;margin:0.5em}}</style></head><body>\
         <h1>Exploratory data analysis</h1><table>\
         <tr><th>file</th><td>{src}</td></tr><tr><th>format</th><td>{kind}</td></tr>\
         <tr><th>rows</th><td>{rows}</td></tr><tr><th>rows skipped (unreadable)</th><td>{skipped}</td></tr>",
        src = esc(source),
        kind = esc(&frame.kind),
        rows = frame.rows(),
    );
    if let Some(m) = &frame.machines {
        let _ = write!(
            h,
            "<tr><th>machines</th><td>{}</td></tr><tr><th>failures</th><td>{}</td></tr>",
            m.ids.len(),
            m.failures.len()
        );
    }
    let _ = write!(
        h,
        "<tr><th>class</th><td>positive: {}</td></tr></table>",
        esc(&frame.class_label)
    );

    h.push_str(
        "<h2 id=\"summary\">Summary statistics</h2><table><tr><th>column</th><th>count</th>\
         <th>mean</th><th>std</th><th>min</th><th>25 %</th><th>50 %</th><th>75 %</th><th>max</th></tr>",
    );
    let summaries: Vec<_> = frame.columns.iter().map(|c| summarize(&c.values)).collect();
    for (c, s) in frame.columns.iter().zip(&summaries) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.name),
            s.count,
            num(s.mean),
            num(s.std),
            num(s.min),
            num(s.q1),
            num(s.median),
            num(s.q3),
            num(s.max)
        );
    }
    h.push_str("</table>");

    h.push_str(
        "<h2 id=\"missing\">Missing values</h2><table><tr><th>column</th><th>missing</th><th>share</th></tr>",
    );
    let rows = frame.rows().max(1) as f64;
    let missing = frame
        .columns
        .iter()
        .zip(&summaries)
        .map(|(c, s)| (c.name.as_str(), s.missing))
        .chain(frame.other_missing.iter().map(|(n, m)| (n.as_str(), *m)));
    for (name, m) in missing {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{m}</td><td>{:.2} %</td></tr>",
            esc(name),
            m as f64 / rows * 100.0
        );
    }
    h.push_str("</table>");

    let _ = write!(
        h,
        "<h2 id=\"class-balance\">Class balance</h2><p>Positive class: {}.</p><table>\
         <tr><th>class</th><th>rows</th><th>share</th></tr>\
         <tr><td>{}</td><td>{neg}</td><td>{:.2} %</td></tr><tr><td>{}</td><td>{pos}</td><td>{:.2} %</td></tr></table>",
        esc(&frame.class_label),
        class_names[0],
        neg as f64 / rows * 100.0,
        class_names[1],
        pos as f64 / rows * 100.0,
    );
    figure(
        &mut h,
        &mut files,
        "class_balance.svg".to_owned(),
        plots::bars(
            "Class balance",
            &[
                (class_names[0].to_owned(), neg),
                (class_names[1].to_owned(), pos),
            ],
        ),
        "class balance",
    );
    for (what, counts) in &frame.tallies {
        let _ = write!(h, "<h3>{}</h3><table>", esc(what));
        if counts.is_empty() {
            h.push_str("<tr><td>none</td></tr>");
        }
        for (value, n) in counts {
            let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", esc(value));
        }
        h.push_str("</table>");
    }

    h.push_str(
        "<h2 id=\"histograms\">Histograms by class</h2><p>Each class as the share of its own rows \
         per bin, so the rare class shows as clearly as the common one.</p>",
    );
    for (i, c) in frame.columns.iter().enumerate() {
        if let Some(hist) = class_histogram(&c.values, &frame.class, HISTOGRAM_BINS) {
            figure(
                &mut h,
                &mut files,
                format!("hist_{:02}_{}.svg", i + 1, slug(&c.name)),
                plots::class_histogram(&c.name, &hist, class_names),
                &c.name,
            );
        }
    }

    h.push_str(
        "<h2 id=\"boxplots\">Box plots by class</h2><p>Boxes from the first to the third quartile \
         with the median; whiskers at the furthest values within 1.5 interquartile ranges; values \
         beyond them are counted as outliers.</p>",
    );
    for (i, c) in frame.columns.iter().enumerate() {
        let (n, p) = by_class(&c.values, &frame.class);
        figure(
            &mut h,
            &mut files,
            format!("box_{:02}_{}.svg", i + 1, slug(&c.name)),
            plots::class_boxes(&c.name, [box_stats(&n), box_stats(&p)], class_names),
            &c.name,
        );
    }

    h.push_str(
        "<h2 id=\"correlation\">Correlation</h2><p>Pearson correlation over the rows where both \
         values are present.</p>",
    );
    let names: Vec<String> = frame.columns.iter().map(|c| c.name.clone()).collect();
    figure(
        &mut h,
        &mut files,
        "correlation.svg".to_owned(),
        plots::heatmap(
            "Correlation (Pearson)",
            &names,
            &correlation(&frame.columns),
        ),
        "correlation heatmap",
    );

    h.push_str("<h2 id=\"time-series\">Machines leading into a failure</h2>");
    match &frame.machines {
        None => h.push_str(
            "<p>Not available for this file: AI4I 2020 has no machine id, and each row is an \
             independent machining cycle, so there is no machine history to follow into a failure.</p>",
        ),
        Some(m) => {
            let windows = failure_windows(frame, FAILURE_MACHINES, READINGS_BEFORE, READINGS_AFTER);
            if windows.is_empty() {
                h.push_str("<p>No machine in this file fails.</p>");
            } else {
                let _ = write!(
                    h,
                    "<p>Up to {READINGS_BEFORE} readings before a failure and {READINGS_AFTER} after \
                     (x: readings relative to the failure, red line), one failure per machine, \
                     failures the class counts first.</p>"
                );
            }
            for w in &windows {
                let mode = w.failure.label();
                let title = format!(
                    "{}: {} failure at reading {}",
                    w.machine_id, mode, w.failure.step
                );
                let series: Vec<plots::Series> = frame
                    .columns
                    .iter()
                    .map(|c| {
                        let points = w
                            .rows
                            .iter()
                            .map(|&r| {
                                let rel = f64::from(m.step[r]) - f64::from(w.failure.step);
                                (rel, c.values[r])
                            })
                            .collect();
                        (c.name.clone(), points)
                    })
                    .collect();
                figure(
                    &mut h,
                    &mut files,
                    format!(
                        "failure_{}_{}.svg",
                        slug(&w.machine_id),
                        w.failure.step
                    ),
                    plots::panels(&title, &series, 0.0),
                    &title,
                );
            }
        }
    }
    h.push_str("</body></html>\n");
    EdaReport { html: h, files }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eda::Column;

    #[test]
    fn slugs_are_file_safe() {
        assert_eq!(slug("Air temperature [K]"), "air_temperature_k");
        assert_eq!(slug("../x"), "x");
        assert_eq!(slug("<>"), "column");
    }

    #[test]
    fn page_escapes_names_and_links_every_chart() {
        let frame = Frame {
            kind: "AI4I".into(),
            columns: vec![
                Column {
                    name: "<script>".into(),
                    values: vec![Some(1.0), Some(2.0), None, Some(4.0)],
                },
                Column {
                    name: "b & c".into(),
                    values: vec![Some(2.0), Some(1.0), Some(3.0), Some(5.0)],
                },
            ],
            other_missing: vec![],
            class: vec![false, true, false, true],
            class_label: "failure".into(),
            tallies: vec![("type".into(), vec![("L".into(), 4)])],
            machines: None,
        };
        let r = render(&frame, "data/<x>.csv", 2);
        assert!(!r.html.contains("<script>"));
        assert!(r.html.contains("&lt;script&gt;") && r.html.contains("b &amp; c"));
        assert!(r.html.contains("data/&lt;x&gt;.csv"));
        for id in [
            "summary",
            "missing",
            "class-balance",
            "histograms",
            "boxplots",
            "correlation",
            "time-series",
        ] {
            assert!(r.html.contains(&format!("id=\"{id}\"")), "{id}");
        }
        assert!(r.html.contains("no machine id"));
        for (name, svg) in &r.files {
            assert!(r.html.contains(&format!("src=\"{name}\"")), "{name}");
            assert!(svg.starts_with("<svg"), "{name}");
        }
        let names: Vec<&str> = r.files.iter().map(|f| f.0.as_str()).collect();
        assert!(names.contains(&"hist_01_script.svg") && names.contains(&"box_02_b_c.svg"));
        // One missing value of four in the first column.
        assert!(r.html.contains("<td>1</td><td>25.00 %</td>"));
    }
}
