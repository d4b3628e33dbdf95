//! The model card: the evaluation report as JSON and as a self-contained HTML page (tables,
//! plus `<img>` links to plot files beside it when the caller wrote them), and those plots
//! ([`charts`]: ROC, precision-recall, confusion matrix, feature importance) as SVG text; an
//! anomaly model's card ([`anomaly_charts`], [`anomaly_html`]).

use crate::anomaly::AnomalyReport;
use crate::evaluate::{EvalReport, Metrics};
use crate::events::EventReport;
use crate::plots;
use std::fmt::Write;

/// Pretty JSON of the report (non-finite numbers become null).
pub fn to_json(report: &EvalReport) -> String {
    // Plain structs and numbers: serialization cannot fail.
    serde_json::to_string_pretty(report).expect("report serializes")
}

/// `s` escaped for HTML text and double-quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A chart of the model card.
#[derive(Debug, Clone)]
pub struct Chart {
    /// What it shows.
    pub title: String,
    /// File name to write it to, beside the HTML page.
    pub file: String,
    /// The SVG.
    pub svg: String,
}

/// Features shown in the importance chart.
pub const IMPORTANCE_TOP: usize = 20;

fn operating_points(r: &EvalReport) -> Vec<(String, &Metrics)> {
    let mut out = vec![(
        format!("model threshold {:.3}", r.at_model_threshold.threshold),
        &r.at_model_threshold,
    )];
    // A target no threshold reaches has no operating point.
    if let Some(c) = r
        .chosen
        .as_ref()
        .filter(|c| c.metrics.threshold.is_finite())
    {
        out.push((
            format!("{} ({:.3})", c.target, c.metrics.threshold),
            &c.metrics,
        ));
    }
    out
}

/// The card's charts: ROC and precision-recall curves with the operating points marked,
/// confusion matrices at the model's (and the chosen) threshold, feature importance.
pub fn charts(r: &EvalReport) -> Vec<Chart> {
    let points = operating_points(r);
    let roc_marks: Vec<(String, (f64, f64))> = points
        .iter()
        .map(|(name, m)| {
            let fpr = m.fp as f64 / (m.fp + m.tn).max(1) as f64;
            (name.clone(), (fpr, m.recall))
        })
        .collect();
    let pr_marks: Vec<(String, (f64, f64))> = points
        .iter()
        .map(|(name, m)| (name.clone(), (m.recall, m.precision)))
        .collect();
    let m = &r.at_model_threshold;
    let chart = |title: &str, file: &str, svg: String| Chart {
        title: title.to_owned(),
        file: file.to_owned(),
        svg,
    };
    vec![
        chart(
            "ROC curve",
            "roc.svg",
            plots::roc(&r.roc, m.roc_auc, &roc_marks),
        ),
        chart(
            "Precision-recall curve",
            "pr.svg",
            plots::precision_recall(
                &r.pr,
                m.pr_auc,
                m.positives as f64 / m.rows.max(1) as f64,
                &pr_marks,
            ),
        ),
        chart(
            "Confusion matrix",
            "confusion.svg",
            plots::confusion(
                &points
                    .iter()
                    .map(|(name, m)| (name.clone(), [[m.tn, m.fp], [m.fn_, m.tp]]))
                    .collect::<Vec<_>>(),
            ),
        ),
        chart(
            "Feature importance",
            "importance.svg",
            plots::importance(
                &format!("Feature importance (top {IMPORTANCE_TOP})"),
                &r.importance,
                IMPORTANCE_TOP,
            ),
        ),
    ]
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "–".to_owned()
    }
}

fn metrics_rows(h: &mut String, name: &str, m: &Metrics) {
    let _ = write!(
        h,
        "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {} / {} / {}</td></tr>",
        esc(name),
        num(m.threshold),
        num(m.accuracy),
        num(m.precision),
        num(m.recall),
        num(m.f1),
        num(m.false_alarm_share),
        num(m.roc_auc),
        num(m.pr_auc),
        m.tn,
        m.fp,
        m.fn_,
        m.tp
    );
}

pub(crate) fn events_table(h: &mut String, name: &str, e: &EventReport) {
    let _ = write!(
        h,
        "<h3>Event view: {}</h3><table><tr><th>failures caught</th><td>{} / {} ({})</td></tr>\
         <tr><th>median lead time</th><td>{} readings = {} min</td></tr>\
         <tr><th>alerts (false)</th><td>{} ({}), false-alarm share {}</td></tr>\
         <tr><th>false alarms per machine-day</th><td>{} over {} machine-days</td></tr>\
         <tr><th>other failure modes caught</th><td>{} / {}</td></tr><tr><th>per mode</th><td>",
        esc(name),
        e.caught,
        e.failures,
        num(e.event_recall),
        num(e.median_lead_readings),
        num(e.median_lead_minutes),
        e.alerts,
        e.false_alarms,
        num(e.false_alarm_share),
        num(e.false_alarms_per_machine_day),
        num(e.machine_days),
        e.other_caught,
        e.other_failures,
    );
    for (mode, c) in &e.per_mode {
        let _ = write!(h, "{}: {}/{} ", esc(mode), c.caught, c.failures);
    }
    h.push_str("</td></tr></table>");
}

/// The HTML page. `plots` are `(title, file name)` of images beside the page.
pub fn to_html(r: &EvalReport, plots: &[(String, String)]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Model card: {id} v{v}</title>\
         <style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}img{{max-width:48%;margin:1%}}</style></head><body>\
         <h1>Model card: {id} v{v}</h1><table>\
         <tr><th>kind</th><td>{mkind}</td></tr><tr><th>label</th><td>{label}</td></tr><tr><th>created</th><td>{created}</td></tr>\
         <tr><th>evaluated</th><td>{evaluated}</td></tr><tr><th>threshold</th><td>{thr}</td></tr>\
         <tr><th>features</th><td>{nf} (set {hash})</td></tr><tr><th>forest</th><td>{trees} trees, {nodes} nodes; {params}</td></tr>\
         <tr><th>floor rules</th><td>{floor}</td></tr><tr><th>trained on</th><td>{src} ({rows} rows)</td></tr>\
         <tr><th>evaluated on</th><td>{dsrc}: {kind}, {drows} rows ({dpos} positive); {evrows} rows of the {evon}</td></tr></table>",
        id = esc(&r.model.model_id),
        v = esc(&r.model.version),
        mkind = esc(&r.model.kind),
        label = esc(&r.model.label),
        created = esc(&r.model.created_at),
        evaluated = esc(&r.evaluated_at),
        thr = num(r.model.threshold),
        nf = r.model.features,
        hash = esc(&r.model.feature_set_hash),
        trees = r.model.trees,
        nodes = r.model.nodes,
        params = esc(&serde_json::to_string(&r.model.params).unwrap_or_default()),
        floor = esc(&r.model.floor_rules.join(", ")),
        src = esc(&r.model.training_source),
        rows = r.model.training_rows,
        dsrc = esc(&r.data.source),
        kind = esc(&r.data.kind),
        drows = r.data.rows,
        dpos = r.data.positives,
        evrows = r.data.evaluated_rows,
        evon = esc(&r.data.evaluated_on),
    );
    h.push_str("<h2>Metrics</h2><table><tr><th></th><th>threshold</th><th>accuracy</th><th>precision</th><th>recall</th><th>F1</th><th>false-alarm share</th><th>ROC-AUC</th><th>PR-AUC</th><th>TN / FP / FN / TP</th></tr>");
    metrics_rows(&mut h, "model threshold", &r.at_model_threshold);
    if let Some(c) = &r.chosen {
        metrics_rows(
            &mut h,
            &format!("{} (chosen on {})", c.target, c.chosen_on),
            &c.metrics,
        );
    }
    h.push_str("</table>");
    if let Some(e) = &r.events {
        events_table(&mut h, "model threshold", e);
    }
    if let Some(e) = r.chosen.as_ref().and_then(|c| c.events.as_ref()) {
        events_table(&mut h, "chosen threshold", e);
    }
    if let Some(cv) = &r.cross_validation {
        let _ = write!(
            h,
            "<h2>Cross-validation</h2><p>{}</p><table><tr><th>ROC-AUC</th><td>{} ± {}</td></tr>\
             <tr><th>PR-AUC</th><td>{} ± {}</td></tr><tr><th>F1</th><td>{} ± {}</td></tr>\
             <tr><th>precision</th><td>{} ± {}</td></tr><tr><th>recall</th><td>{} ± {}</td></tr>",
            esc(&cv.split),
            num(cv.roc_auc.mean),
            num(cv.roc_auc.sd),
            num(cv.pr_auc.mean),
            num(cv.pr_auc.sd),
            num(cv.f1.mean),
            num(cv.f1.sd),
            num(cv.precision.mean),
            num(cv.precision.sd),
            num(cv.recall.mean),
            num(cv.recall.sd),
        );
        if let (Some(er), Some(fa)) = (&cv.event_recall, &cv.event_false_alarm_share) {
            let _ = write!(
                h,
                "<tr><th>event recall</th><td>{} ± {}</td></tr><tr><th>event false-alarm share</th><td>{} ± {}</td></tr>",
                num(er.mean),
                num(er.sd),
                num(fa.mean),
                num(fa.sd)
            );
        }
        h.push_str("</table>");
    }
    if !plots.is_empty() {
        h.push_str("<h2>Plots</h2>");
        for (title, file) in plots {
            let _ = write!(h, "<img src=\"{}\" alt=\"{}\">", esc(file), esc(title));
        }
    }
    h.push_str("<h2>Feature importance</h2><table><tr><th>feature</th><th>importance</th></tr>");
    for (name, v) in &r.importance {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(name), num(*v));
    }
    h.push_str("</table></body></html>\n");
    h
}

/// An anomaly model's charts: ROC and precision-recall curves of the score against the
/// report's label with the threshold marked, the confusion matrix at the threshold, the
/// score histogram by class and, with a truth file, the score against the true remaining life.
pub fn anomaly_charts(r: &AnomalyReport) -> Vec<Chart> {
    let m = &r.metrics;
    let name = format!("model threshold {:.3}", m.threshold);
    let fpr = m.fp as f64 / (m.fp + m.tn).max(1) as f64;
    let chart = |title: &str, file: &str, svg: String| Chart {
        title: title.to_owned(),
        file: file.to_owned(),
        svg,
    };
    let values: Vec<Option<f64>> = r.scores.iter().map(|s| Some(f64::from(s.0))).collect();
    let class: Vec<bool> = r.scores.iter().map(|s| s.1).collect();
    let histogram = crate::eda::class_histogram(&values, &class, 40).map_or_else(
        || plots::message_svg((520, 120), "no scores"),
        |h| {
            plots::class_histogram(
                &format!("Anomaly scores (threshold {:.3})", m.threshold),
                &h,
                ["negative", "positive"],
            )
        },
    );
    let mut out = vec![
        chart(
            "ROC curve of the anomaly score",
            "roc.svg",
            plots::roc(&r.roc, m.roc_auc, &[(name.clone(), (fpr, m.recall))]),
        ),
        chart(
            "Precision-recall curve of the anomaly score",
            "pr.svg",
            plots::precision_recall(
                &r.pr,
                m.pr_auc,
                m.positives as f64 / m.rows.max(1) as f64,
                &[(name.clone(), (m.recall, m.precision))],
            ),
        ),
        chart(
            "Confusion matrix at the threshold",
            "confusion.svg",
            plots::confusion(&[(name, [[m.tn, m.fp], [m.fn_, m.tp]])]),
        ),
        chart(
            "Anomaly scores by class (negative: no failure ahead)",
            "scores.svg",
            histogram,
        ),
    ];
    if !r.units.is_empty() {
        let within = r.within.unwrap_or(f64::NAN);
        let points: Vec<(f64, f64, bool)> = r
            .units
            .iter()
            .map(|u| (u.truth, f64::from(u.score), u.fails_within))
            .collect();
        out.push(chart(
            "Anomaly score at each machine's last reading against its true remaining life",
            "score_vs_life.svg",
            plots::score_vs_life(
                &format!("Last readings (ROC-AUC {})", num(m.roc_auc)),
                r.unit.unwrap_or("cycles"),
                &points,
                m.threshold,
                within,
            ),
        ));
    }
    out
}

/// An anomaly model's card as HTML; `plots` are `(title, file name)` of images beside it.
pub fn anomaly_html(r: &AnomalyReport, plots: &[(String, String)]) -> String {
    let m = &r.model;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Model card: {id} v{v}</title>\
         <style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}img{{max-width:48%;margin:1%}}</style></head><body>\
         <h1>Model card: {id} v{v} (anomaly detector)</h1><table>\
         <tr><th>kind</th><td>anomaly</td></tr><tr><th>label</th><td>{label}</td></tr>\
         <tr><th>created</th><td>{created}</td></tr><tr><th>evaluated</th><td>{at}</td></tr>\
         <tr><th>threshold</th><td>{thr} (anomalous at or above; set to flag {rate} % of held-out machines' healthy readings)</td></tr>\
         <tr><th>healthy readings</th><td>{healthy}</td></tr>\
         <tr><th>Isolation Forest</th><td>{trees} trees of {psi} readings; {nf} features (set {hash})</td></tr>\
         <tr><th>trained on</th><td>{src} ({rows} healthy rows)</td></tr>\
         <tr><th>evaluated on</th><td>{dsrc} ({machines} machines): {on}; {n} readings, {pos} positive ({what})</td></tr></table>",
        id = esc(&m.model_id),
        v = esc(&m.version),
        label = esc(&m.label),
        created = esc(&m.created_at),
        at = esc(&r.evaluated_at),
        thr = num(m.threshold),
        rate = num(m.rate * 100.0),
        healthy = esc(&m.healthy),
        trees = m.trees,
        psi = m.subsample,
        nf = m.features,
        hash = esc(&m.feature_set_hash),
        src = esc(&m.training_source),
        rows = m.training_rows,
        dsrc = esc(&r.source),
        machines = r.machines,
        on = esc(&r.evaluated_on),
        n = r.rows,
        pos = r.positives,
        what = esc(&r.label),
    );
    let _ = write!(
        h,
        "<h2>Metrics</h2><table><tr><th>share flagged</th><td>{}</td></tr>\
         <tr><th>share of negatives flagged (false-alarm rate)</th><td>{}</td></tr></table>\
         <table><tr><th></th><th>threshold</th><th>accuracy</th><th>precision</th><th>recall</th><th>F1</th><th>false-alarm share</th><th>ROC-AUC</th><th>PR-AUC</th><th>TN / FP / FN / TP</th></tr>",
        num(r.flagged),
        num(r.healthy_flagged)
    );
    metrics_rows(&mut h, "model threshold", &r.metrics);
    h.push_str("</table>");
    if let Some(e) = &r.events {
        events_table(
            &mut h,
            "model threshold (an alert: 2 of 3 readings anomalous; quiet below the threshold)",
            e,
        );
    }
    if !plots.is_empty() {
        h.push_str("<h2>Plots</h2>");
        for (title, file) in plots {
            let _ = write!(h, "<img src=\"{}\" alt=\"{}\">", esc(file), esc(title));
        }
    }
    if !r.units.is_empty() {
        h.push_str("<h2>Per machine</h2><table><tr><th>machine</th><th>last time</th><th>score</th><th>anomalous</th><th>true remaining life</th><th>fails within the horizon</th></tr>");
        for u in &r.units {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&u.machine),
                u.last_time,
                u.score,
                if u.anomalous { "yes" } else { "no" },
                u.truth,
                if u.fails_within { "yes" } else { "no" }
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}
