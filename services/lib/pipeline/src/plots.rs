//! Charts as SVG text, drawn by plotters with its SVG backend only (no fonts or bitmaps from
//! the system; plotters escapes the text it writes). Pure: numbers in, SVG out. The model card
//! uses the ROC, precision-recall, confusion-matrix and importance charts; the EDA report the
//! class histograms, box plots, bars, heatmap and time-series panels.

use crate::eda::{BoxStats, ClassHistogram};
use crate::modelcard::esc;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

const FONT: &str = "sans-serif";
/// The negative class (and the model's curves).
pub const NEG: RGBColor = RGBColor(31, 119, 180);
/// The positive class (and failures).
pub const POS: RGBColor = RGBColor(214, 39, 40);
const MARKS: [RGBColor; 3] = [POS, RGBColor(44, 160, 44), RGBColor(255, 127, 14)];

/// Draws into a fresh white SVG of `size`; a drawing error becomes an SVG that says so.
fn render(size: (u32, u32), draw: impl FnOnce(&Area<'_>) -> Drawn) -> String {
    let mut svg = String::new();
    let outcome = {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into))
            .map_err(|e| e.to_string())
    };
    match outcome {
        Ok(()) => svg,
        Err(why) => message_svg(size, &format!("plot failed: {why}")),
    }
}

/// An SVG that only says `text`.
pub fn message_svg((w, h): (u32, u32), text: &str) -> String {
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"10\" y=\"24\" font-family=\"sans-serif\" font-size=\"14\">{}</text></svg>\n",
        esc(text)
    )
}

fn fmt3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "n/a".to_owned()
    }
}

/// Named points drawn as dots with a legend entry each.
type Marks<'a> = &'a [(String, (f64, f64))];

fn curve(
    title: &str,
    (x_desc, y_desc): (&str, &str),
    points: &[(f64, f64)],
    reference: [(f64, f64); 2],
    marks: Marks<'_>,
    legend_at: SeriesLabelPosition,
) -> String {
    if points.is_empty() {
        return message_svg(
            (560, 480),
            &format!("{title}: no curve (the evaluated rows have one class only)"),
        );
    }
    render((560, 480), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()?;
        chart
            .draw_series(LineSeries::new(reference, BLACK.mix(0.35)))?
            .label("chance")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.35)));
        chart
            .draw_series(LineSeries::new(points.iter().copied(), NEG.stroke_width(2)))?
            .label("model")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], NEG.stroke_width(2)));
        for ((name, p), colour) in marks.iter().zip(MARKS.iter().cycle()) {
            if p.0.is_finite() && p.1.is_finite() {
                chart
                    .draw_series(std::iter::once(Circle::new(*p, 5, colour.filled())))?
                    .label(name.as_str())
                    .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
            }
        }
        chart
            .configure_series_labels()
            .position(legend_at)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 13))
            .draw()?;
        Ok(())
    })
}

/// The ROC curve (false positive rate, true positive rate) with operating points marked.
pub fn roc(points: &[(f64, f64)], auc: f64, marks: Marks<'_>) -> String {
    curve(
        &format!("ROC curve (AUC {})", fmt3(auc)),
        ("false positive rate", "true positive rate (recall)"),
        points,
        [(0.0, 0.0), (1.0, 1.0)],
        marks,
        SeriesLabelPosition::LowerRight,
    )
}

/// The precision-recall curve (recall, precision) with operating points marked; the chance
/// line is the positive rate.
pub fn precision_recall(
    points: &[(f64, f64)],
    average_precision: f64,
    positive_rate: f64,
    marks: Marks<'_>,
) -> String {
    let base = if positive_rate.is_finite() {
        positive_rate
    } else {
        0.0
    };
    curve(
        &format!(
            "Precision-recall curve (average precision {})",
            fmt3(average_precision)
        ),
        ("recall", "precision"),
        points,
        [(0.0, base), (1.0, base)],
        marks,
        SeriesLabelPosition::LowerLeft,
    )
}

/// Cells of a categorical axis: cell `i` spans `i - 0.5 .. i + 0.5`, so its centre is a
/// whole number, where plotters puts its ticks when asked for `n` labels.
fn cells(n: usize) -> std::ops::Range<f64> {
    -0.5..n as f64 - 0.5
}

/// The name of the cell whose centre is `v` (empty between cells).
fn cell_name(names: &[String], v: f64) -> String {
    let i = v.round();
    if i >= 0.0 && (v - i).abs() < 1e-6 {
        names.get(i as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

/// White to `to` by `share` in 0..=1.
fn shade(to: RGBColor, share: f64) -> RGBColor {
    let s = if share.is_finite() {
        share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mix = |c: u8| (255.0 - (255.0 - f64::from(c)) * s).round() as u8;
    RGBColor(mix(to.0), mix(to.1), mix(to.2))
}

/// Confusion matrices `[[tn, fp], [fn, tp]]` side by side, each cell shaded by its share of
/// the actual class.
pub fn confusion(panels: &[(String, [[usize; 2]; 2])]) -> String {
    let width = 380 * panels.len().max(1) as u32;
    render((width, 380), |root| {
        let areas = root.split_evenly((1, panels.len().max(1)));
        let predicted = vec!["predicted no".to_owned(), "predicted yes".to_owned()];
        // Bottom to top: "actual no" on the upper row, as confusion matrices are printed.
        let actual = vec!["actual yes".to_owned(), "actual no".to_owned()];
        for ((title, m), area) in panels.iter().zip(&areas) {
            let x_fmt = |v: &f64| cell_name(&predicted, *v);
            let y_fmt = |v: &f64| cell_name(&actual, *v);
            let mut chart = ChartBuilder::on(area)
                .caption(title.as_str(), (FONT, 15))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(80)
                .build_cartesian_2d(cells(2), cells(2))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(2)
                .y_labels(2)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt)
                .label_style((FONT, 13))
                .draw()?;
            for (a, row) in m.iter().enumerate() {
                let total: usize = row.iter().sum();
                for (p, &n) in row.iter().enumerate() {
                    let share = n as f64 / total.max(1) as f64;
                    let (x, y) = (p as f64, 1.0 - a as f64);
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                        shade(if a == p { NEG } else { POS }, share).filled(),
                    )))?;
                    let tag = ["TN", "FP", "FN", "TP"][a * 2 + p];
                    let style = TextStyle::from((FONT, 16).into_font())
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    chart.draw_series(std::iter::once(Text::new(
                        format!("{tag} {n}"),
                        (x, y + 0.08),
                        style.clone(),
                    )))?;
                    chart.draw_series(std::iter::once(Text::new(
                        format!("{:.1} % of actual", share * 100.0),
                        (x, y - 0.1),
                        TextStyle::from((FONT, 12).into_font())
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )))?;
                }
            }
        }
        Ok(())
    })
}

/// Horizontal bars of `(name, value)`, in the given order (at most `top`).
pub fn importance(title: &str, items: &[(String, f64)], top: usize) -> String {
    let items: Vec<&(String, f64)> = items.iter().filter(|i| i.1.is_finite()).take(top).collect();
    if items.is_empty() {
        return message_svg((640, 120), &format!("{title}: nothing to show"));
    }
    // Bottom to top, so the largest is on top.
    let names: Vec<String> = items.iter().rev().map(|i| i.0.clone()).collect();
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) as u32;
    let max = items.iter().map(|i| i.1).fold(0.0f64, f64::max).max(1e-9);
    let n = items.len();
    let height = 80 + 22 * n as u32;
    render((760, height), |root| {
        let y_fmt = |v: &f64| cell_name(&names, *v);
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(20 + 7 * longest.min(40))
            .build_cartesian_2d(0f64..max * 1.08, cells(n))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&y_fmt)
            .x_desc("mean decrease in impurity (share)")
            .label_style((FONT, 12))
            .draw()?;
        chart.draw_series(items.iter().rev().enumerate().map(|(i, (_, v))| {
            let y = i as f64;
            Rectangle::new([(0.0, y - 0.35), (*v, y + 0.35)], NEG.filled())
        }))?;
        Ok(())
    })
}

/// Two histograms over the same bins, each as the share of its class's rows, so a rare class
/// is as visible as a common one.
pub fn class_histogram(name: &str, h: &ClassHistogram, class_names: [&str; 2]) -> String {
    let bins = h.negative.len().max(1);
    let width = (h.hi - h.lo) / bins as f64;
    let shares = |counts: &[usize]| -> Vec<f64> {
        let total: usize = counts.iter().sum();
        counts
            .iter()
            .map(|&c| c as f64 / total.max(1) as f64)
            .collect()
    };
    let (neg, pos) = (shares(&h.negative), shares(&h.positive));
    let top = neg
        .iter()
        .chain(&pos)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let counts = [
        h.negative.iter().sum::<usize>(),
        h.positive.iter().sum::<usize>(),
    ];
    render((520, 320), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(name, (FONT, 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(50)
            // Headroom above the bars for the legend.
            .build_cartesian_2d(h.lo..h.hi, 0f64..top * 1.4)?;
        chart
            .configure_mesh()
            .y_desc("share of the class's rows")
            .x_labels(6)
            .y_labels(5)
            .label_style((FONT, 11))
            .draw()?;
        for ((shares, colour), (label, count)) in [(&neg, NEG), (&pos, POS)]
            .into_iter()
            .zip(class_names.into_iter().zip(counts))
        {
            chart
                .draw_series(
                    shares
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| **s > 0.0)
                        .map(|(i, s)| {
                            let x = h.lo + i as f64 * width;
                            Rectangle::new([(x, 0.0), (x + width, *s)], colour.mix(0.45).filled())
                        }),
                )?
                .label(format!("{label} ({count} values)"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.mix(0.45).filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 12))
            .draw()?;
        Ok(())
    })
}

/// Box plots of one column per class (Tukey whiskers; outliers counted, not drawn).
pub fn class_boxes(name: &str, boxes: [Option<BoxStats>; 2], class_names: [&str; 2]) -> String {
    let present: Vec<&BoxStats> = boxes.iter().flatten().collect();
    if present.is_empty() {
        return message_svg((420, 320), &format!("{name}: no values"));
    }
    let lo = present.iter().map(|b| b.low).fold(f64::INFINITY, f64::min);
    let hi = present
        .iter()
        .map(|b| b.high)
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let labels: Vec<String> = class_names
        .iter()
        .zip(&boxes)
        .map(|(c, b)| match b {
            Some(b) => format!("{c} (n {}, {} outliers)", b.n, b.outliers),
            None => format!("{c} (no values)"),
        })
        .collect();
    render((460, 320), |root| {
        let x_fmt = |v: &f64| cell_name(&labels, *v);
        let mut chart = ChartBuilder::on(root)
            .caption(name, (FONT, 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d(cells(2), (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(2)
            .x_label_formatter(&x_fmt)
            .y_labels(6)
            .label_style((FONT, 11))
            .draw()?;
        for (i, (b, colour)) in boxes.iter().zip([NEG, POS]).enumerate() {
            let Some(b) = b else { continue };
            let c = i as f64;
            let (l, r) = (c - 0.22, c + 0.22);
            chart.draw_series([
                Rectangle::new([(l, b.q1), (r, b.q3)], colour.mix(0.3).filled()),
                Rectangle::new([(l, b.q1), (r, b.q3)], colour.stroke_width(1)),
            ])?;
            chart.draw_series(
                [
                    vec![(l, b.median), (r, b.median)],
                    vec![(c, b.q3), (c, b.high)],
                    vec![(c, b.q1), (c, b.low)],
                    vec![(c - 0.1, b.high), (c + 0.1, b.high)],
                    vec![(c - 0.1, b.low), (c + 0.1, b.low)],
                ]
                .into_iter()
                .map(|p| PathElement::new(p, colour.stroke_width(2))),
            )?;
        }
        Ok(())
    })
}

/// Vertical bars of `(name, count)`.
pub fn bars(title: &str, items: &[(String, usize)]) -> String {
    let names: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
    let n = items.len().max(1);
    let top = items.iter().map(|i| i.1).max().unwrap_or(0).max(1) as f64;
    render((120 + 130 * n as u32, 300), |root| {
        let x_fmt = |v: &f64| cell_name(&names, *v);
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(cells(n), 0f64..top * 1.15)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&x_fmt)
            .y_desc("rows")
            .label_style((FONT, 11))
            .draw()?;
        for (i, (_, count)) in items.iter().enumerate() {
            let x = i as f64;
            let colour = [NEG, POS][i % 2];
            chart.draw_series([Rectangle::new(
                [(x - 0.3, 0.0), (x + 0.3, *count as f64)],
                colour.filled(),
            )])?;
            chart.draw_series([Text::new(
                count.to_string(),
                (x, *count as f64 + top * 0.03),
                TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom)),
            )])?;
        }
        Ok(())
    })
}

/// A correlation heatmap (blue -1 to red +1, grey where undefined) with the values written
/// in; the columns are numbered on the x axis and named on the y axis.
pub fn heatmap(title: &str, names: &[String], m: &[Vec<f64>]) -> String {
    let n = names.len();
    if n == 0 {
        return message_svg((400, 100), &format!("{title}: no columns"));
    }
    // Bottom to top, so the first column is on the top row.
    let y_names: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{s} ({})", i + 1))
        .rev()
        .collect();
    let x_names: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let longest = y_names.iter().map(|s| s.chars().count()).max().unwrap_or(0) as u32;
    let cell = 56;
    let label_w = 20 + 7 * longest.min(48);
    render(
        (label_w + cell * n as u32 + 40, cell * n as u32 + 90),
        |root| {
            let x_fmt = |v: &f64| cell_name(&x_names, *v);
            let y_fmt = |v: &f64| cell_name(&y_names, *v);
            let mut chart = ChartBuilder::on(root)
                .caption(title, (FONT, 16))
                .margin(10)
                .x_label_area_size(24)
                .y_label_area_size(label_w)
                .build_cartesian_2d(cells(n), cells(n))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(n)
                .y_labels(n)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt)
                .label_style((FONT, 12))
                .draw()?;
            for (i, row) in m.iter().enumerate().take(n) {
                for (j, &r) in row.iter().enumerate().take(n) {
                    let colour = if !r.is_finite() {
                        RGBColor(200, 200, 200)
                    } else if r >= 0.0 {
                        shade(POS, r)
                    } else {
                        shade(NEG, -r)
                    };
                    let (x, y) = (j as f64, (n - 1 - i) as f64);
                    chart.draw_series([Rectangle::new(
                        [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                        colour.filled(),
                    )])?;
                    chart.draw_series([Text::new(
                        if r.is_finite() {
                            format!("{r:.2}")
                        } else {
                            "n/a".to_owned()
                        },
                        (x, y),
                        TextStyle::from((FONT, 12).into_font())
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )])?;
                }
            }
            Ok(())
        },
    )
}

/// A named line of `(x, y)` points; a `None` y is a gap.
pub type Series = (String, Vec<(f64, Option<f64>)>);

/// One small line chart per `(name, points)`, in a grid, with a vertical line at `x = mark`
/// (e.g. the failure). A `None` y breaks the line.
pub fn panels(title: &str, series: &[Series], mark: f64) -> String {
    let cols = 3usize;
    let rows = series.len().div_ceil(cols).max(1);
    render((3 * 330, 40 + 200 * rows as u32), |root| {
        let root = root.titled(title, (FONT, 18))?;
        let areas = root.split_evenly((rows, cols));
        for ((name, points), area) in series.iter().zip(&areas) {
            let ys = || points.iter().filter_map(|p| p.1);
            let (Some(y0), Some(y1)) = (ys().min_by(f64::total_cmp), ys().max_by(f64::total_cmp))
            else {
                area.draw(&Text::new(
                    format!("{name}: no values"),
                    (20, 90),
                    (FONT, 13),
                ))?;
                continue;
            };
            let x0 = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
            let x1 = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
            let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
            let pad = ((y1 - y0) * 0.1).max(1e-3);
            let mut chart = ChartBuilder::on(area)
                .caption(name.as_str(), (FONT, 13))
                .margin(6)
                .x_label_area_size(22)
                .y_label_area_size(48)
                .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
            chart
                .configure_mesh()
                .x_labels(5)
                .y_labels(4)
                .label_style((FONT, 10))
                .draw()?;
            for run in points.split(|p| p.1.is_none()) {
                chart.draw_series(LineSeries::new(
                    run.iter().filter_map(|p| Some((p.0, p.1?))),
                    NEG.stroke_width(1),
                ))?;
            }
            if (x0..=x1).contains(&mark) {
                chart.draw_series([PathElement::new(
                    vec![(mark, y0 - pad), (mark, y1 + pad)],
                    POS.stroke_width(2),
                )])?;
            }
        }
        Ok(())
    })
}

/// Remaining useful life of machines sorted by true life: `(true, predicted, lo, hi)` each,
/// the true life in black, the prediction in blue with its interval as a bar.
pub fn rul_sorted(title: &str, unit: &str, points: &[(f64, f64, f64, f64)]) -> String {
    let points: Vec<_> = points
        .iter()
        .copied()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if points.is_empty() {
        return message_svg((760, 120), &format!("{title}: nothing to show"));
    }
    let top = points
        .iter()
        .map(|p| p.0.max(p.3).max(p.1))
        .fold(1.0f64, f64::max)
        * 1.05;
    let n = points.len();
    render((860, 480), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("machines, sorted by true remaining life")
            .y_desc(format!("remaining useful life ({unit})"))
            .label_style((FONT, 12))
            .draw()?;
        chart.draw_series(
            points
                .iter()
                .enumerate()
                .filter(|(_, p)| p.2.is_finite() && p.3.is_finite())
                .map(|(i, p)| {
                    PathElement::new(
                        vec![(i as f64, p.2), (i as f64, p.3)],
                        NEG.mix(0.35).stroke_width(2),
                    )
                }),
        )?;
        chart
            .draw_series(
                points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Circle::new((i as f64, p.1), 3, NEG.filled())),
            )?
            .label("predicted (5-95 % of the trees)")
            .legend(|(x, y)| Circle::new((x + 10, y), 3, NEG.filled()));
        chart
            .draw_series(LineSeries::new(
                points.iter().enumerate().map(|(i, p)| (i as f64, p.0)),
                BLACK.stroke_width(2),
            ))?
            .label("true")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 13))
            .draw()?;
        Ok(())
    })
}

/// Predicted against true remaining life, one dot per `(true, predicted)` pair, with the
/// diagonal of perfect predictions.
pub fn rul_scatter(title: &str, unit: &str, pairs: &[(f32, f32)]) -> String {
    let pairs: Vec<(f64, f64)> = pairs
        .iter()
        .map(|&(t, p)| (f64::from(t), f64::from(p)))
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if pairs.is_empty() {
        return message_svg((560, 120), &format!("{title}: nothing to show"));
    }
    let top = pairs.iter().map(|p| p.0.max(p.1)).fold(1.0f64, f64::max) * 1.05;
    render((600, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..top, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc(format!("true remaining life ({unit})"))
            .y_desc(format!("predicted ({unit})"))
            .label_style((FONT, 12))
            .draw()?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (top, top)], BLACK.mix(0.35)))?;
        chart.draw_series(
            pairs
                .iter()
                .map(|&p| Circle::new(p, 2, NEG.mix(0.4).filled())),
        )?;
        Ok(())
    })
}

/// Anomaly score against true remaining life, one dot per machine (red when the machine fails
/// within `within`), the model's threshold as a horizontal line and `within` as a vertical one.
pub fn score_vs_life(
    title: &str,
    unit: &str,
    points: &[(f64, f64, bool)],
    threshold: f64,
    within: f64,
) -> String {
    let points: Vec<_> = points
        .iter()
        .copied()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if points.is_empty() {
        return message_svg((560, 120), &format!("{title}: nothing to show"));
    }
    let right = points.iter().map(|p| p.0).fold(within, f64::max) * 1.05;
    let (lo, hi) = points
        .iter()
        .map(|p| p.1)
        .chain([threshold])
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let pad = ((hi - lo) * 0.08).max(0.01);
    render((640, 480), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..right, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc(format!("true remaining life ({unit})"))
            .y_desc("anomaly score")
            .label_style((FONT, 12))
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, threshold), (right, threshold)],
                BLACK.mix(0.6).stroke_width(1),
            ))?
            .label(format!("threshold {threshold:.3}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.6)));
        chart.draw_series(LineSeries::new(
            [(within, lo - pad), (within, hi + pad)],
            BLACK.mix(0.25),
        ))?;
        for (fails, colour, name) in [
            (false, NEG, format!("more than {within} {unit} left")),
            (true, POS, format!("fails within {within} {unit}")),
        ] {
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| p.2 == fails)
                        .map(|p| Circle::new((p.0, p.1), 3, colour.mix(0.7).filled())),
                )?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 3, colour.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 13))
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_svg(s: &str) -> bool {
        s.starts_with("<svg") && s.trim_end().ends_with("</svg>")
    }

    #[test]
    fn curves_draw_the_model_and_the_marks() {
        let pts = vec![(0.0, 0.0), (0.1, 0.8), (1.0, 1.0)];
        let svg = roc(&pts, 0.9, &[("model threshold 0.5".into(), (0.1, 0.8))]);
        assert!(is_svg(&svg));
        assert!(svg.contains("ROC curve (AUC 0.900)"));
        assert!(svg.contains("model threshold 0.5") && svg.contains("<circle"));
        let pr = precision_recall(&[(0.0, 1.0), (1.0, 0.2)], 0.6, 0.2, &[]);
        assert!(is_svg(&pr) && pr.contains("average precision 0.600"));
        let empty = roc(&[], f64::NAN, &[]);
        assert!(is_svg(&empty) && empty.contains("one class only"));
    }

    #[test]
    fn cells_and_bars_carry_their_numbers_and_escape_names() {
        let c = confusion(&[("at 0.5".into(), [[90, 3], [2, 5]])]);
        assert!(is_svg(&c));
        for s in [
            "TN 90",
            "FP 3",
            "FN 2",
            "TP 5",
            "predicted yes",
            "actual no",
        ] {
            assert!(c.contains(s), "{s}");
        }
        let imp = importance(
            "Feature importance",
            &[("a<b".into(), 0.7), ("c".into(), 0.3)],
            10,
        );
        assert!(is_svg(&imp) && imp.contains("a&lt;b") && !imp.contains("a<b"));
        let heat = heatmap(
            "r",
            &["x".into(), "y".into()],
            &[vec![1.0, -0.5], vec![-0.5, f64::NAN]],
        );
        assert!(is_svg(&heat) && heat.contains("-0.50") && heat.contains("n/a"));
        let b = bars("balance", &[("no".into(), 97), ("yes".into(), 3)]);
        assert!(is_svg(&b) && b.contains("balance"));
    }

    #[test]
    fn class_charts_and_panels_draw() {
        let h = ClassHistogram {
            lo: 0.0,
            hi: 4.0,
            negative: vec![3, 1],
            positive: vec![0, 2],
        };
        let svg = class_histogram("torque", &h, ["no", "failure"]);
        assert!(
            is_svg(&svg) && svg.contains("no (4 values)") && svg.contains("failure (2 values)")
        );
        let b = crate::eda::box_stats(&[1.0, 2.0, 3.0, 4.0, 100.0]);
        let svg = class_boxes("torque", [b, None], ["no", "failure"]);
        assert!(is_svg(&svg) && svg.contains("1 outliers") && svg.contains("failure (no values)"));
        let series = vec![
            (
                "t".to_owned(),
                vec![(-2.0, Some(1.0)), (-1.0, None), (0.0, Some(3.0))],
            ),
            ("v".to_owned(), vec![(-2.0, None)]),
        ];
        let svg = panels("machine m-1", &series, 0.0);
        assert!(is_svg(&svg) && svg.contains("v: no values") && svg.contains("machine m-1"));
        let svg = score_vs_life(
            "scores",
            "cycles",
            &[(10.0, 0.7, true), (100.0, 0.4, false)],
            0.6,
            30.0,
        );
        assert!(
            is_svg(&svg)
                && svg.contains("threshold 0.600")
                && svg.contains("fails within 30 cycles")
        );
        assert!(score_vs_life("none", "cycles", &[], 0.6, 30.0).contains("nothing to show"));
    }
}
