//! A deployed model's card for the model page, from the artifact alone: what it was trained
//! on and when, its held-out metrics as tables (at the model's threshold, the event view,
//! cross-validation, every other figure), and the charts `dtwin evaluate` draws, made by the
//! same code ([`dtwin_pipeline::plots`]): ROC and precision-recall curves when the metrics
//! carry their points, the confusion matrix when they carry its counts, and the importance of
//! the model's features. Pure: an artifact in, a view out; every string is escaped by the
//! template (the SVGs are plotters' own, text escaped).

use crate::insights::key_metrics;
use dtwin_ml::{ModelArtifact, ModelKind};
use dtwin_pipeline::plots;
use serde_json::Value;

/// Features shown in the importance chart (as on `dtwin evaluate`'s card).
pub const IMPORTANCE_TOP: usize = dtwin_pipeline::modelcard::IMPORTANCE_TOP;

/// One chart of a card.
#[derive(Debug, Clone)]
pub struct Chart {
    /// What it shows (`roc`, `pr`, `confusion`, `importance`): its CSS class and test hook.
    pub kind: &'static str,
    /// The SVG text.
    pub svg: String,
}

/// The event view: alerts and failures instead of rows (see `dtwin_pipeline::events`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventView {
    /// `(what, value)` rows: failures caught, lead time, false alarms per machine-day, ...
    pub rows: Vec<(String, String)>,
    /// `(failure mode, caught, failures)`.
    pub per_mode: Vec<(String, u64, u64)>,
}

/// A group of figures of the metrics (`test`, `cross-validation`, ...), each a readable row.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureGroup {
    /// The group's name.
    pub name: String,
    /// `(figure, value)`.
    pub rows: Vec<(String, String)>,
}

/// One model's card.
#[derive(Debug, Clone)]
pub struct ModelCard {
    /// The machine profile it serves.
    pub profile: String,
    /// `classifier`, `quality`, `anomaly` or `rul`.
    pub kind: &'static str,
    /// The kind for people.
    pub kind_text: String,
    /// Where it is deployed.
    pub topic: String,
    /// Model id and version.
    pub id: String,
    /// Version.
    pub version: String,
    /// HTML id of its section (`model-{profile}-{kind}`).
    pub anchor: String,
    /// What it predicts, when and on what it was trained: `(what, value)` rows.
    pub overview: Vec<(String, String)>,
    /// The key metrics (as in the models table).
    pub key_metrics: Vec<(String, String)>,
    /// Row metrics at the model's threshold, when the metrics carry them.
    pub at_threshold: Vec<(String, String)>,
    /// The event view, when the metrics carry it.
    pub events: Option<EventView>,
    /// Cross-validation `(figure, mean ± sd)`, when the metrics carry it.
    pub cross_validation: Vec<(String, String)>,
    /// The charts.
    pub charts: Vec<Chart>,
    /// Every other figure, grouped.
    pub figures: Vec<FigureGroup>,
}

/// `failure classifier`, `quality`, `anomaly`, `rul (cycles)`.
pub fn kind_text(m: &ModelArtifact) -> String {
    match (m.kind, m.rul.as_ref()) {
        (ModelKind::Classifier, _) => "failure classifier".to_owned(),
        (ModelKind::Rul, Some(r)) => format!("rul ({})", r.unit),
        _ => m.kind.as_str().to_owned(),
    }
}

/// A figure for people: whole numbers without decimals, others with 4, `n/a` for null.
pub fn figure(v: &Value) -> String {
    match v {
        Value::Null => "n/a".to_owned(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), number),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.iter().all(Value::is_number) && a.len() <= 8 => {
            a.iter().map(figure).collect::<Vec<_>>().join(", ")
        }
        Value::Array(a) => format!("{} values", a.len()),
        Value::Object(o) => match (o.get("mean"), o.get("sd")) {
            (Some(m), Some(sd)) => format!("{} ± {}", figure(m), figure(sd)),
            _ => o
                .iter()
                .map(|(k, v)| format!("{k} {}", figure(v)))
                .collect::<Vec<_>>()
                .join(", "),
        },
    }
}

fn number(x: f64) -> String {
    if !x.is_finite() {
        "n/a".to_owned()
    } else if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

/// `false_alarms_per_machine_day` -> `false alarms per machine day`.
fn words(key: &str) -> String {
    match key {
        "fn_" => "false negatives (FN)".to_owned(),
        "fp" => "false positives (FP)".to_owned(),
        "tn" => "true negatives (TN)".to_owned(),
        "tp" => "true positives (TP)".to_owned(),
        "roc_auc" => "ROC-AUC".to_owned(),
        "pr_auc" => "PR-AUC".to_owned(),
        "f1" => "F1".to_owned(),
        "r2" => "R²".to_owned(),
        "rmse" => "RMSE".to_owned(),
        "mae" => "MAE".to_owned(),
        "nasa_score" => "NASA score".to_owned(),
        k => k.replace('_', " "),
    }
}

/// The shallowest object (breadth first, at most 4 levels down) for which `pick` holds, with
/// its path.
fn find<'a>(
    v: &'a Value,
    pick: &dyn Fn(&serde_json::Map<String, Value>) -> bool,
) -> Option<(String, &'a serde_json::Map<String, Value>)> {
    let mut level: Vec<(String, &Value)> = vec![(String::new(), v)];
    for _ in 0..5 {
        let mut next = Vec::new();
        for (path, v) in level {
            if let Value::Object(o) = v {
                if pick(o) {
                    return Some((path, o));
                }
                for (k, c) in o {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    next.push((p, c));
                }
            }
        }
        level = next;
    }
    None
}

fn f(o: &serde_json::Map<String, Value>, k: &str) -> Option<f64> {
    o.get(k).and_then(Value::as_f64)
}

fn u(o: &serde_json::Map<String, Value>, k: &str) -> Option<u64> {
    o.get(k).and_then(Value::as_u64)
}

/// Points of a curve (`[[x, y], ...]`) named `name` anywhere in the metrics.
fn curve(metrics: &Value, name: &str) -> Option<Vec<(f64, f64)>> {
    let (_, o) = find(metrics, &|o| o.get(name).is_some_and(Value::is_array))?;
    let pts: Vec<(f64, f64)> = o[name]
        .as_array()?
        .iter()
        .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
        .collect();
    (!pts.is_empty()).then_some(pts)
}

/// The confusion counts at the model's threshold: the shallowest object with `tn`, `fp`,
/// `fn_` and `tp` (the pipeline's `Metrics`).
fn confusion(metrics: &Value) -> Option<(String, &serde_json::Map<String, Value>)> {
    find(metrics, &|o| {
        ["tn", "fp", "fn_", "tp"]
            .iter()
            .all(|k| o.get(*k).is_some_and(Value::is_u64))
    })
}

fn event_view(metrics: &Value) -> Option<(String, EventView)> {
    let (path, e) = find(metrics, &|o| {
        o.contains_key("caught") && o.contains_key("failures") && o.contains_key("event_recall")
    })?;
    let mut rows = Vec::new();
    if let (Some(c), Some(n)) = (u(e, "caught"), u(e, "failures")) {
        let recall =
            f(e, "event_recall").map_or_else(String::new, |r| format!(" ({:.0} %)", r * 100.0));
        rows.push(("failures caught".to_owned(), format!("{c} of {n}{recall}")));
    }
    if let Some(m) = f(e, "median_lead_minutes") {
        let readings = f(e, "median_lead_readings")
            .map_or_else(String::new, |r| format!(" ({} readings)", number(r)));
        rows.push((
            "median lead time".to_owned(),
            format!("{} min{readings}", number(m)),
        ));
    }
    if let Some(a) = u(e, "alerts") {
        let false_alarms = u(e, "false_alarms").unwrap_or(0);
        let share = f(e, "false_alarm_share")
            .map_or_else(String::new, |s| format!(" ({:.0} % false)", s * 100.0));
        rows.push((
            "alerts".to_owned(),
            format!("{a}, of which {false_alarms} false alarms{share}"),
        ));
    }
    if let Some(x) = f(e, "false_alarms_per_machine_day") {
        let days = f(e, "machine_days")
            .map_or_else(String::new, |d| format!(" over {:.1} machine-days", d));
        rows.push((
            "false alarms per machine-day".to_owned(),
            format!("{}{days}", number(x)),
        ));
    }
    if let (Some(c), Some(n)) = (u(e, "other_caught"), u(e, "other_failures")) {
        rows.push((
            "other failure modes caught".to_owned(),
            format!("{c} of {n} (not counted by the label)"),
        ));
    }
    if let Some(p) = u(e, "pending_alerts").filter(|p| *p > 0) {
        rows.push(("alerts not judged yet".to_owned(), p.to_string()));
    }
    let per_mode = e
        .get("per_mode")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(mode, c)| {
                    let c = c.as_object()?;
                    Some((mode.clone(), u(c, "caught")?, u(c, "failures")?))
                })
                .collect()
        })
        .unwrap_or_default();
    Some((path, EventView { rows, per_mode }))
}

/// Every scalar figure of the metrics not shown elsewhere, grouped by top-level key (a
/// top-level scalar goes to `model`); `skip` are paths already shown.
fn figures(metrics: &Value, skip: &[String]) -> Vec<FigureGroup> {
    let mut groups: Vec<FigureGroup> = Vec::new();
    let mut push = |group: &str, name: String, value: String| match groups
        .iter_mut()
        .find(|g| g.name == group)
    {
        Some(g) => g.rows.push((name, value)),
        None => groups.push(FigureGroup {
            name: group.to_owned(),
            rows: vec![(name, value)],
        }),
    };
    fn walk(
        v: &Value,
        path: &str,
        depth: usize,
        skip: &[String],
        out: &mut dyn FnMut(&str, String, String),
    ) {
        if skip.iter().any(|s| s == path) {
            return;
        }
        match v {
            Value::Object(o) if !(o.contains_key("mean") && o.contains_key("sd")) && depth < 5 => {
                for (k, c) in o {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(c, &p, depth + 1, skip, out);
                }
            }
            Value::Array(a) if a.iter().any(|x| x.is_array() || x.is_object()) => {}
            _ => {
                let (group, rest) = path.split_once('.').unwrap_or(("model", path));
                let group = words(group);
                let name = rest.split('.').map(words).collect::<Vec<_>>().join(" · ");
                out(&group, name, figure(v));
            }
        }
    }
    walk(metrics, "", 0, skip, &mut push);
    groups
}

/// The card of `m`, deployed for `profile` on `topic`.
pub fn card(profile: &str, topic: &str, m: &ModelArtifact) -> ModelCard {
    let metrics = &m.metrics;
    let mut overview = vec![("predicts".to_owned(), m.label.clone())];
    overview.push((
        "created".to_owned(),
        if m.created_at.is_empty() {
            "unknown".to_owned()
        } else {
            m.created_at.clone()
        },
    ));
    let t = &m.training;
    if !t.source.is_empty() {
        overview.push(("trained on".to_owned(), t.source.clone()));
    }
    if t.rows > 0 {
        let pos = if m.kind == ModelKind::Rul {
            String::new()
        } else {
            format!(" ({} positive)", t.positives)
        };
        overview.push(("training rows".to_owned(), format!("{}{pos}", t.rows)));
    }
    if let Some(split) = metrics.get("split").and_then(Value::as_str) {
        overview.push(("split".to_owned(), split.to_owned()));
    }
    if m.kind != ModelKind::Rul {
        overview.push((
            "decision threshold".to_owned(),
            format!("{:.3}", m.threshold),
        ));
    }
    overview.push((
        "features".to_owned(),
        format!(
            "{} (feature set {})",
            m.feature_names.len(),
            m.feature_set_hash
        ),
    ));
    let forest = m
        .forest
        .as_ref()
        .map(|f| f.n_trees())
        .or_else(|| m.regressor.as_ref().map(|r| r.n_trees()));
    if let Some(trees) = forest {
        overview.push(("forest".to_owned(), format!("{trees} trees")));
    }
    if t.seconds > 0.0 {
        overview.push(("fit time".to_owned(), format!("{:.1} s", t.seconds)));
    }
    if let Some(p) = metrics.get("alert_policy").and_then(Value::as_object) {
        if let (Some(k), Some(n)) = (u(p, "confirm_k"), u(p, "confirm_n")) {
            overview.push((
                "alerts counted as".to_owned(),
                format!(
                    "{k} alarming readings of {n}; resolved after {} quiet readings",
                    u(p, "resolve_after").unwrap_or(0)
                ),
            ));
        }
    }

    let mut shown: Vec<String> = vec!["split".into(), "alert_policy".into()];
    let mut charts = Vec::new();
    let mut at_threshold = Vec::new();
    let confusion_at = confusion(metrics);
    let roc = curve(metrics, "roc");
    let pr = curve(metrics, "pr");
    if let Some((path, c)) = &confusion_at {
        for k in [
            "threshold",
            "rows",
            "positives",
            "accuracy",
            "precision",
            "recall",
            "f1",
            "false_alarm_share",
            "roc_auc",
            "pr_auc",
            "tn",
            "fp",
            "fn_",
            "tp",
        ] {
            if let Some(v) = c.get(k) {
                at_threshold.push((words(k), figure(v)));
            }
        }
        // A report that repeats the confusion object's figures one level up (the training
        // report's accuracy, recall, ...) shows them once.
        let parent = path.rsplit_once('.').map_or("", |(p, _)| p);
        let up = if parent.is_empty() {
            metrics.as_object()
        } else {
            pointer(metrics, parent)
        };
        if let Some(up) = up {
            for (k, v) in c.iter() {
                if up.get(k) == Some(v) {
                    shown.push(join(parent, k));
                }
            }
        }
        shown.push(path.clone());
    }
    let (tn, fp, fn_, tp) = confusion_at.as_ref().map_or((0, 0, 0, 0), |(_, c)| {
        (
            u(c, "tn").unwrap_or(0) as usize,
            u(c, "fp").unwrap_or(0) as usize,
            u(c, "fn_").unwrap_or(0) as usize,
            u(c, "tp").unwrap_or(0) as usize,
        )
    });
    let threshold_name = format!("model threshold {:.3}", m.threshold);
    let counts = confusion_at.is_some();
    if let Some(points) = roc {
        let auc = confusion_at
            .as_ref()
            .and_then(|(_, c)| f(c, "roc_auc"))
            .or_else(|| find_number(metrics, "roc_auc"))
            .unwrap_or(f64::NAN);
        let marks: Vec<(String, (f64, f64))> = if counts {
            vec![(
                threshold_name.clone(),
                (
                    fp as f64 / (fp + tn).max(1) as f64,
                    tp as f64 / (tp + fn_).max(1) as f64,
                ),
            )]
        } else {
            Vec::new()
        };
        charts.push(Chart {
            kind: "roc",
            svg: plots::roc(&points, auc, &marks),
        });
    }
    if let Some(points) = pr {
        let ap = confusion_at
            .as_ref()
            .and_then(|(_, c)| f(c, "pr_auc"))
            .or_else(|| find_number(metrics, "pr_auc"))
            .unwrap_or(f64::NAN);
        let rate = confusion_at.as_ref().map_or(f64::NAN, |(_, c)| {
            u(c, "positives").unwrap_or(0) as f64 / u(c, "rows").unwrap_or(0).max(1) as f64
        });
        let marks: Vec<(String, (f64, f64))> = if counts {
            vec![(
                threshold_name.clone(),
                (
                    tp as f64 / (tp + fn_).max(1) as f64,
                    tp as f64 / (tp + fp).max(1) as f64,
                ),
            )]
        } else {
            Vec::new()
        };
        charts.push(Chart {
            kind: "pr",
            svg: plots::precision_recall(&points, ap, rate, &marks),
        });
    }
    for name in ["roc", "pr"] {
        if let Some((path, _)) = find(metrics, &|o| o.get(name).is_some_and(Value::is_array)) {
            shown.push(join(&path, name));
        }
    }
    if counts {
        charts.push(Chart {
            kind: "confusion",
            svg: plots::confusion(&[(threshold_name, [[tn, fp], [fn_, tp]])]),
        });
    }
    let importance: Option<Vec<f32>> = m
        .forest
        .as_ref()
        .map(|f| f.feature_importance())
        .or_else(|| m.regressor.as_ref().map(|r| r.feature_importance()));
    if let Some(imp) = importance.filter(|i| i.len() == m.feature_names.len()) {
        let mut items: Vec<(String, f64)> = m
            .feature_names
            .iter()
            .cloned()
            .zip(imp.into_iter().map(f64::from))
            .collect();
        items.sort_by(|a, b| b.1.total_cmp(&a.1));
        charts.push(Chart {
            kind: "importance",
            svg: plots::importance(
                &format!("Feature importance (top {IMPORTANCE_TOP})"),
                &items,
                IMPORTANCE_TOP,
            ),
        });
    }
    let events = event_view(metrics).map(|(path, e)| {
        shown.push(path);
        e
    });
    let cross_validation = find(metrics, &|o| {
        o.get("split").is_some_and(Value::is_string)
            && o.get("roc_auc").is_some_and(|r| r.get("mean").is_some())
    })
    .map(|(path, cv)| {
        shown.push(path);
        let mut rows = Vec::new();
        if let Some(s) = cv.get("split").and_then(Value::as_str) {
            rows.push(("folds".to_owned(), s.to_owned()));
        }
        for (k, v) in cv {
            if v.get("mean").is_some() {
                rows.push((words(k), figure(v)));
            }
        }
        rows
    })
    .unwrap_or_default();
    ModelCard {
        anchor: format!("model-{profile}-{}", m.kind.as_str()),
        profile: profile.to_owned(),
        kind: m.kind.as_str(),
        kind_text: kind_text(m),
        topic: topic.to_owned(),
        id: m.model_id.clone(),
        version: m.version.clone(),
        overview,
        key_metrics: key_metrics(metrics),
        at_threshold,
        events,
        cross_validation,
        charts,
        figures: figures(metrics, &shown),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The object at a dotted path.
fn pointer<'a>(v: &'a Value, path: &str) -> Option<&'a serde_json::Map<String, Value>> {
    path.split('.').try_fold(v, |v, k| v.get(k))?.as_object()
}

fn find_number(metrics: &Value, name: &str) -> Option<f64> {
    find(metrics, &|o| o.get(name).is_some_and(Value::is_number)).and_then(|(_, o)| f(o, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shipped() -> ModelArtifact {
        ModelArtifact::from_json(dtwin_inference::SHIPPED_MODEL).unwrap()
    }

    #[test]
    fn the_shipped_classifier_has_tables_confusion_importance_and_the_event_view() {
        let c = card("milling", "models/current", &shipped());
        assert_eq!(
            (c.kind, c.kind_text.as_str()),
            ("classifier", "failure classifier")
        );
        assert_eq!(c.anchor, "model-milling-classifier");
        let kv = |rows: &[(String, String)], k: &str| {
            rows.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {k} in {rows:?}"))
        };
        assert!(kv(&c.overview, "trained on").starts_with("twin: 200 machines"));
        assert_eq!(kv(&c.overview, "created"), "2026-11-23T03:43:20.8596706Z");
        assert_eq!(kv(&c.at_threshold, "true positives (TP)"), "1032");
        assert_eq!(kv(&c.at_threshold, "ROC-AUC"), "0.9959");
        let e = c.events.as_ref().expect("event view");
        assert_eq!(kv(&e.rows, "failures caught"), "43 of 45 (96 %)");
        assert_eq!(kv(&e.rows, "median lead time"), "26 min (26 readings)");
        assert!(kv(&e.rows, "false alarms per machine-day").starts_with("0.0960 over 41.7"));
        assert!(e.per_mode.contains(&("bearing".to_owned(), 18, 18)));
        let kinds: Vec<&str> = c.charts.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["roc", "pr", "confusion", "importance"]);
        // The curves of its held-out machines, with the model's operating point marked.
        assert!(c.charts[0].svg.contains("ROC curve (AUC 0.996)"));
        assert!(c.charts[0].svg.contains("model threshold 0.760"));
        assert!(c.charts[1].svg.contains("average precision 0.867"));
        let imp = &c
            .charts
            .iter()
            .find(|c| c.kind == "importance")
            .unwrap()
            .svg;
        assert!(
            imp.contains("pressure_bar_std_10"),
            "the most important feature is named"
        );
        // Nothing shown twice: the event view and the confusion are not among the figures.
        let all: Vec<&str> = c
            .figures
            .iter()
            .flat_map(|g| g.rows.iter().map(|r| r.0.as_str()))
            .collect();
        assert!(!all.iter().any(|r| r.contains("caught")), "{all:?}");
        assert!(all.contains(&"threshold target"), "{all:?}");
        assert!(!all.iter().any(|r| r.contains('{')), "no JSON: {all:?}");
    }

    #[test]
    fn curves_are_drawn_when_the_metrics_carry_their_points() {
        let mut m = shipped();
        m.metrics = json!({"test": {"roc": [[0.0, 0.0], [0.1, 0.8], [1.0, 1.0]],
            "pr": [[0.0, 1.0], [0.8, 0.7], [1.0, 0.02]],
            "metrics": {"threshold": 0.5, "rows": 100, "positives": 10, "roc_auc": 0.93,
                "pr_auc": 0.71, "tn": 85, "fp": 5, "fn_": 2, "tp": 8},
            "cross": {"split": "5 folds", "roc_auc": {"mean": 0.9, "sd": 0.01}}}});
        let c = card("pump", "models/pump/anomaly", &m);
        let kinds: Vec<&str> = c.charts.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["roc", "pr", "confusion", "importance"]);
        assert!(
            c.charts[0].svg.contains("AUC 0.930"),
            "{}",
            &c.charts[0].svg[..400]
        );
        assert!(c.charts[1].svg.contains("average precision 0.710"));
        assert_eq!(
            c.cross_validation[0],
            ("folds".to_owned(), "5 folds".to_owned())
        );
        assert_eq!(
            c.cross_validation[1],
            ("ROC-AUC".to_owned(), "0.9000 ± 0.0100".to_owned())
        );
        assert!(c.figures.is_empty(), "everything shown: {:?}", c.figures);
        assert!(c.events.is_none());
    }

    #[test]
    fn figures_read_as_rows_not_json() {
        let m = json!({"held_out": {"rmse": 13.07, "rows": 900, "per_unit": [[1, 2]]},
            "held_out_machines": 20, "note": "x", "cv": {"f1": {"mean": 0.5, "sd": 0.1}}});
        let g = figures(&m, &[]);
        let flat: Vec<(String, String, String)> = g
            .iter()
            .flat_map(|g| {
                g.rows
                    .iter()
                    .map(move |(k, v)| (g.name.clone(), k.clone(), v.clone()))
            })
            .collect();
        assert_eq!(
            flat,
            [
                ("cv".into(), "F1".into(), "0.5000 ± 0.1000".into()),
                ("held out".into(), "RMSE".into(), "13.0700".into()),
                ("held out".into(), "rows".into(), "900".into()),
                ("model".into(), "held out machines".into(), "20".into()),
                ("model".into(), "note".into(), "x".into()),
            ]
        );
    }
}
