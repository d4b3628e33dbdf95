//! What a verdict's other models say (quality risk, anomaly score, remaining useful life; see
//! `dtwin_schema::Insights`), formatted for people: badges for the fleet table, lines for the
//! machine page and the what-if result, and the key metrics of a deployed model for the model
//! page. Pure; every string is data the templates escape (or the browser sets as text).

use crate::profiles::number;
use dtwin_schema::{Insights, RulEstimate};
use serde::Serialize;

/// One figure of a verdict's other models.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Badge {
    /// `quality`, `anomaly` or `rul`: what it is about (also its CSS class).
    pub kind: &'static str,
    /// What to call it on a page: `Quality risk`, `Anomaly score`, `Remaining useful life`.
    pub label: &'static str,
    /// The short form for the fleet table: `quality 34 %`, `anomaly 0.81`,
    /// `life 42 cycles (5–95 %: 30–55)`.
    pub text: String,
    /// The long form for the machine page and the what-if result: `34 % (at risk)`,
    /// `0.81 (anomalous)`, `42 cycles (5–95 %: 30–55 cycles)`.
    pub long: String,
    /// `flagged` when its model flags the machine (quality at risk, anomalous), `ok` when it
    /// does not, empty when it says nothing either way (remaining life).
    pub tone: &'static str,
    /// What it means (a tooltip).
    pub title: &'static str,
}

/// `34 %`; `n/a` when not finite.
pub fn percent(p: f64) -> String {
    if p.is_finite() {
        format!("{:.0} %", (p.clamp(0.0, 1.0) * 100.0).round())
    } else {
        "n/a".to_owned()
    }
}

/// An anomaly score with two decimals; `n/a` when not finite.
pub fn score(x: f64) -> String {
    if x.is_finite() {
        format!("{:.2}", x.clamp(0.0, 1.0))
    } else {
        "n/a".to_owned()
    }
}

fn tone(flag: Option<bool>) -> &'static str {
    match flag {
        Some(true) => "flagged",
        Some(false) => "ok",
        None => "",
    }
}

fn flag_word(flag: Option<bool>, yes: &str, no: &str) -> String {
    match flag {
        Some(true) => format!(" ({yes})"),
        Some(false) => format!(" ({no})"),
        None => String::new(),
    }
}

/// The badges of a verdict's other models, in a fixed order (quality, anomaly, remaining
/// life); empty for a verdict without them.
pub fn badges(i: &Insights) -> Vec<Badge> {
    let mut out = Vec::new();
    if let Some(q) = i.quality_risk {
        out.push(Badge {
            kind: "quality",
            label: "Quality risk",
            text: format!("quality {}", percent(q)),
            long: format!(
                "{}{}",
                percent(q),
                flag_word(i.quality_at_risk, "at risk", "ok")
            ),
            tone: tone(i.quality_at_risk),
            title: "probability of a NOK part within the quality model's horizon",
        });
    }
    if let Some(a) = i.anomaly {
        out.push(Badge {
            kind: "anomaly",
            label: "Anomaly score",
            text: format!("anomaly {}", score(a)),
            long: format!(
                "{}{}",
                score(a),
                flag_word(i.anomalous, "anomalous", "ordinary")
            ),
            tone: tone(i.anomalous),
            title: "anomaly score: about 0.5 and below is ordinary, near 1 unlike the healthy training data",
        });
    }
    if let Some(r) = &i.rul {
        out.push(Badge {
            kind: "rul",
            label: "Remaining useful life",
            text: format!("life {}", rul_short(r)),
            long: rul_long(r),
            tone: "",
            title: "remaining useful life with the 5-95 % interval of the forest's trees",
        });
    }
    out
}

/// `42 cycles (5–95 %: 30–55 cycles)`; a life in seconds reads as minutes, hours or days.
pub fn rul_long(r: &RulEstimate) -> String {
    format!("{} (5–95 %: {})", amount(r.value, &r.unit), interval(r))
}

/// `42 cycles (5–95 %: 30–55)`.
fn rul_short(r: &RulEstimate) -> String {
    if r.unit == "seconds" {
        return rul_long(r);
    }
    format!(
        "{} (5–95 %: {}–{})",
        amount(r.value, &r.unit),
        whole(r.low),
        whole(r.high)
    )
}

fn interval(r: &RulEstimate) -> String {
    if r.unit == "seconds" {
        format!("{} – {}", duration(r.low), duration(r.high))
    } else {
        format!("{}–{} {}", whole(r.low), whole(r.high), r.unit)
    }
}

fn amount(x: f64, unit: &str) -> String {
    if unit == "seconds" {
        duration(x)
    } else {
        format!("{} {unit}", whole(x))
    }
}

fn whole(x: f64) -> String {
    if x.is_finite() {
        number(x.round())
    } else {
        "n/a".to_owned()
    }
}

/// Seconds as `45 s`, `12 min`, `2.5 h` or `3.2 days`.
fn duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "n/a".to_owned();
    }
    let s = secs.max(0.0);
    if s < 120.0 {
        format!("{} s", number(s.round()))
    } else if s < 7200.0 {
        format!("{} min", number((s / 60.0).round()))
    } else if s < 172_800.0 {
        format!("{} h", number((s / 360.0).round() / 10.0))
    } else {
        format!("{} days", number((s / 8640.0).round() / 10.0))
    }
}

/// Metric names shown on the model page when a model's metrics hold them, in this order:
/// classification (failure, quality, anomaly against labels), then regression (remaining
/// life), then an anomaly model's false-alarm rate on healthy data.
pub const KEY_METRICS: [&str; 11] = [
    "roc_auc",
    "pr_auc",
    "precision",
    "recall",
    "f1",
    "event_recall",
    "rmse",
    "mae",
    "nasa_score",
    "r2",
    "test_healthy_flagged",
];

/// The key metrics of a model's free-form `metrics` (any nesting): the first value found of
/// each name in [`KEY_METRICS`] (shallowest first), else up to six numbers of its first
/// level or of its `test` / `held_out` object. Old artifacts (a flat `test` object) and new
/// ones (per kind) both read.
pub fn key_metrics(metrics: &serde_json::Value) -> Vec<(String, String)> {
    let mut leaves = Vec::new();
    flatten(metrics, "", 0, &mut leaves);
    // Shallowest first, so `test.roc_auc` wins over `test.test.roc_auc`.
    leaves.sort_by_key(|(path, _)| path.matches('.').count());
    let mut out = Vec::new();
    for key in KEY_METRICS {
        let found = leaves
            .iter()
            .find(|(path, _)| path.rsplit('.').next() == Some(key));
        if let Some((_, v)) = found {
            out.push((key.to_owned(), format_metric(*v)));
        }
    }
    if out.is_empty() {
        out = leaves
            .iter()
            .filter(|(path, _)| {
                !path.contains('.')
                    || path
                        .split_once('.')
                        .is_some_and(|(h, t)| (h == "test" || h == "held_out") && !t.contains('.'))
            })
            .take(6)
            .map(|(path, v)| (path.clone(), format_metric(*v)))
            .collect();
    }
    out
}

fn flatten(v: &serde_json::Value, path: &str, depth: usize, out: &mut Vec<(String, f64)>) {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.push((path.to_owned(), x));
            }
        }
        serde_json::Value::Object(m) if depth < 4 => {
            for (k, v) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(v, &p, depth + 1, out);
            }
        }
        _ => {}
    }
}

fn format_metric(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rul(value: f64, low: f64, high: f64, unit: &str) -> RulEstimate {
        RulEstimate {
            value,
            low,
            high,
            unit: unit.to_owned(),
        }
    }

    #[test]
    fn badges_say_each_figure_in_a_fixed_order_and_none_without_insights() {
        assert!(badges(&Insights::default()).is_empty());
        let i = Insights {
            quality_risk: Some(0.342),
            quality_at_risk: Some(true),
            anomaly: Some(0.4),
            anomalous: Some(false),
            rul: Some(rul(42.4, 30.2, 55.6, "cycles")),
            ..Insights::default()
        };
        let b = badges(&i);
        let got: Vec<(&str, &str, &str, &str)> = b
            .iter()
            .map(|b| (b.kind, b.text.as_str(), b.long.as_str(), b.tone))
            .collect();
        assert_eq!(
            got,
            [
                ("quality", "quality 34 %", "34 % (at risk)", "flagged"),
                ("anomaly", "anomaly 0.40", "0.40 (ordinary)", "ok"),
                (
                    "rul",
                    "life 42 cycles (5–95 %: 30–56)",
                    "42 cycles (5–95 %: 30–56 cycles)",
                    ""
                ),
            ]
        );
        // Only what is there; a score without its flag has no tone.
        let b = badges(&Insights {
            anomaly: Some(0.9),
            ..Insights::default()
        });
        assert_eq!((b.len(), b[0].long.as_str(), b[0].tone), (1, "0.90", ""));
    }

    #[test]
    fn remaining_life_reads_in_its_unit() {
        assert_eq!(
            rul_long(&rul(9000.0, 45.0, 400_000.0, "seconds")),
            "2.5 h (5–95 %: 45 s – 4.6 days)"
        );
        assert_eq!(
            rul_long(&rul(900.0, 600.0, 1500.0, "readings")),
            "900 readings (5–95 %: 600–1500 readings)"
        );
        assert_eq!(
            rul_long(&rul(f64::NAN, 1.0, 2.0, "cycles")),
            "n/a cycles (5–95 %: 1–2 cycles)"
        );
    }

    #[test]
    fn key_metrics_are_found_at_any_depth_and_old_metrics_still_read() {
        // A classifier's (the shipped one's shape): test.{roc_auc, ...} and nested events.
        let m = json!({"test": {"roc_auc": 0.99587, "pr_auc": 0.867, "precision": 0.83,
            "recall": 0.78, "f1": 0.80, "events": {"event_recall": 0.955, "alerts": 53},
            "test": {"roc_auc": 0.5}}, "split": "by machine"});
        let k = key_metrics(&m);
        assert_eq!(
            k[0],
            ("roc_auc".to_owned(), "0.9959".to_owned()),
            "shallowest wins"
        );
        assert_eq!(
            k.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            [
                "roc_auc",
                "pr_auc",
                "precision",
                "recall",
                "f1",
                "event_recall"
            ]
        );
        // A rul model's: held_out.{rmse, ...}.
        let m = json!({"held_out": {"rmse": 13.07, "nasa_score": 237.0, "rows": 900}, "held_out_machines": 20});
        assert_eq!(
            key_metrics(&m),
            [
                ("rmse".to_owned(), "13.0700".to_owned()),
                ("nasa_score".to_owned(), "237".to_owned())
            ]
        );
        // Unknown names: the first numbers; nothing: nothing.
        let m = json!({"test": {"hits": 3, "share": 0.25}, "deep": {"x": {"y": 1}}});
        assert_eq!(
            key_metrics(&m),
            [
                ("test.hits".to_owned(), "3".to_owned()),
                ("test.share".to_owned(), "0.2500".to_owned())
            ]
        );
        assert!(key_metrics(&serde_json::Value::Null).is_empty());
    }
}
