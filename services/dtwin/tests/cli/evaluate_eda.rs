//! `dtwin evaluate` and `dtwin eda`, run as the built binary on a small fleet made by
//! `dtwin generate` and, when it is present, on the real AI4I 2020 CSV (`AI4I_CSV`, default
//! `../shared/datasets/ai4i2020.csv` beside the workspace; skipped with a message otherwise):
//! the files they write, the sections of the pages, and metrics that are in range and agree
//! with each other.

use crate::common::{ai4i_csv, run, s};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dtwin");
const SHIPPED_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../inference/models/default.json"
);
const MODEL_CARD_FILES: [&str; 6] = [
    "model_card.json",
    "model_card.html",
    "roc.svg",
    "pr.svg",
    "confusion.svg",
    "importance.svg",
];
const EDA_SECTIONS: [&str; 7] = [
    "id=\"summary\"",
    "id=\"missing\"",
    "id=\"class-balance\"",
    "id=\"histograms\"",
    "id=\"boxplots\"",
    "id=\"correlation\"",
    "id=\"time-series\"",
];

/// A fleet the shipped model never saw (it was trained on seed 7, in memory).
fn fleet(dir: &Path) -> PathBuf {
    let csv = dir.join("fleet.csv");
    run(&[
        "generate",
        "--machines",
        "12",
        "--days",
        "0.5",
        "--seed",
        "42",
        "--out",
        s(&csv),
    ]);
    csv
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

/// Metrics in [0, 1] that agree with their own confusion matrix. Precision is null (NaN) only
/// when nothing alarms.
fn check_metrics(m: &Value) {
    let (tn, fp, fn_, tp) = (u(m, "tn"), u(m, "fp"), u(m, "fn_"), u(m, "tp"));
    assert_eq!(
        tn + fp + fn_ + tp,
        u(m, "rows"),
        "confusion sums to the rows"
    );
    assert_eq!(fn_ + tp, u(m, "positives"));
    for key in ["accuracy", "recall", "f1", "roc_auc", "pr_auc"] {
        let v = f(m, key);
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let r = f(m, "recall");
    assert!((r - tp as f64 / (tp + fn_) as f64).abs() < 1e-9);
    let f1 = f(m, "f1");
    assert!((f1 - 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64).abs() < 1e-9);
    if tp + fp == 0 {
        assert!(m["precision"].is_null(), "no alarms, no precision: {m}");
    } else {
        let p = f(m, "precision");
        assert!((0.0..=1.0).contains(&p));
        assert!((p - tp as f64 / (tp + fp) as f64).abs() < 1e-9);
        if p + r > 0.0 {
            assert!((f1 - 2.0 * p * r / (p + r)).abs() < 1e-9, "F1 = 2PR/(P+R)");
        }
    }
    let rows = (tn + fp + fn_ + tp) as f64;
    assert!((f(m, "accuracy") - (tp + tn) as f64 / rows).abs() < 1e-9);
}

/// Runs `evaluate --json`, checks the written files and the report, returns the report.
fn evaluate(model: &str, data: &Path, out_dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "evaluate",
        model,
        s(data),
        "--out-dir",
        s(out_dir),
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    let report: Value = serde_json::from_slice(&out.stdout).expect("--json prints only JSON");
    for name in MODEL_CARD_FILES {
        let text =
            std::fs::read_to_string(out_dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.ends_with(".svg") {
            assert!(
                text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
                "{name}"
            );
            assert!(!text.contains("plot failed"), "{name}");
        }
    }
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("model_card.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk, report, "model_card.json is what --json printed");
    let html = std::fs::read_to_string(out_dir.join("model_card.html")).unwrap();
    for part in [
        "<h2>Metrics</h2>",
        "<h2>Cross-validation</h2>",
        "<h2>Feature importance</h2>",
    ] {
        assert!(html.contains(part), "{part}");
    }
    for svg in &MODEL_CARD_FILES[2..] {
        assert!(html.contains(&format!("src=\"{svg}\"")), "{svg} linked");
    }

    let m = &report["at_model_threshold"];
    check_metrics(m);
    assert_eq!(u(m, "rows"), u(&report["data"], "evaluated_rows"));
    let chosen = &report["chosen"];
    check_metrics(&chosen["metrics"]);
    let cv = &report["cross_validation"];
    for key in ["roc_auc", "pr_auc", "f1", "recall"] {
        let mean = f(&cv[key], "mean");
        assert!((0.0..=1.0).contains(&mean), "CV {key} mean {mean}");
        assert!(f(&cv[key], "sd") >= 0.0);
    }
    report
}

fn check_events(e: &Value) {
    let (failures, caught) = (u(e, "failures"), u(e, "caught"));
    assert!(failures > 0, "the fleet has failures to catch");
    assert!(caught <= failures);
    assert!((f(e, "event_recall") - caught as f64 / failures as f64).abs() < 1e-9);
    assert!(u(e, "false_alarms") <= u(e, "alerts"));
    assert!(f(e, "false_alarms_per_machine_day") >= 0.0);
}

fn check_eda(dir: &Path, rows: usize) -> String {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for section in EDA_SECTIONS {
        assert!(html.contains(section), "{section}");
    }
    assert!(html.contains(&format!("<th>rows</th><td>{rows}</td>")));
    let mut linked = 0;
    for part in html.split("<img src=\"").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        let svg = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
        assert!(!svg.contains("plot failed"), "{name}");
        linked += 1;
    }
    assert_eq!(
        linked,
        std::fs::read_dir(dir).unwrap().count() - 1,
        "every SVG beside the page is linked from it"
    );
    html
}

#[test]
fn shipped_model_evaluated_on_a_fresh_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let data = fleet(dir.path());
    let out_dir = dir.path().join("card");
    let report = evaluate(
        SHIPPED_MODEL,
        &data,
        &out_dir,
        &["--all-rows", "--folds", "3", "--target-recall", "0.8"],
    );
    let m = &report["at_model_threshold"];
    assert!(f(m, "roc_auc") > 0.9, "ROC-AUC {}", f(m, "roc_auc"));
    assert_eq!(report["data"]["machines"], 12);
    assert_eq!(report["data"]["evaluated_on"], "every row");
    assert_eq!(report["chosen"]["target"], "recall >= 0.8");
    assert!(f(&report["chosen"]["metrics"], "threshold") < 1.0);
    assert_eq!(
        report["cross_validation"]["folds"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(report["cross_validation"]["split"]
        .as_str()
        .unwrap()
        .contains("folds of machines"));
    check_events(&report["events"]);
    // Importance is a distribution over the model's 40 features.
    let imp = report["importance"].as_array().unwrap();
    assert_eq!(imp.len(), 40);
    let total: f64 = imp.iter().map(|p| p[1].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4, "importance sums to {total}");

    // The summary names every part the issue asks for.
    let text = run(&[
        "evaluate",
        SHIPPED_MODEL,
        s(&data),
        "--out-dir",
        s(&dir.path().join("text")),
        "--folds",
        "2",
    ]);
    let text = String::from_utf8(text.stdout).unwrap();
    for part in [
        "accuracy",
        "precision",
        "recall",
        "F1",
        "ROC-AUC",
        "PR-AUC",
        "actual no",
        "predicted yes",
        "cross-validation (2 folds of machines",
        "±",
        // Chosen, or said to be out of reach on folds this small.
        "event recall >= 0.95",
        "median lead",
        "false alarms per machine-day",
    ] {
        assert!(text.contains(part), "{part} missing from:\n{text}");
    }
}

#[test]
fn eda_on_a_fleet_follows_machines_into_failures() {
    let dir = tempfile::tempdir().unwrap();
    let data = fleet(dir.path());
    let out_dir = dir.path().join("eda");
    run(&["eda", s(&data), "--out-dir", s(&out_dir)]);
    // 12 machines x 720 readings.
    let html = check_eda(&out_dir, 8640);
    for column in ["temperature_c", "vibration_mm_s", "pressure_bar"] {
        assert!(html.contains(&format!("<td>{column}</td>")), "{column}");
    }
    assert!(html.contains("failure ahead"));
    let series = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("failure_")
        })
        .count();
    assert!(
        (1..=3).contains(&series),
        "{series} machines into a failure"
    );
}

#[test]
fn ai4i_evaluate_and_eda() {
    let Some(csv) = ai4i_csv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("eda");
    run(&["eda", s(&csv), "--out-dir", s(&out_dir)]);
    let html = check_eda(&out_dir, 10_000);
    assert!(
        html.contains("no machine id"),
        "the time-series section says why it is empty"
    );
    assert!(
        html.contains("<td>failure</td><td>339</td>"),
        "339 failures in AI4I 2020"
    );
    assert!(html.contains("<td>Tool wear [min]</td>"));

    let model = dir.path().join("ai4i.json");
    run(&["train", s(&csv), "--out", s(&model), "--json"]);
    let report = evaluate(s(&model), &csv, &dir.path().join("card"), &["--folds", "3"]);
    assert_eq!(report["data"]["kind"], "AI4I");
    assert_eq!(
        u(&report["at_model_threshold"], "rows"),
        2000,
        "the held-out 20 %"
    );
    assert!(
        report.get("events").is_none(),
        "no event view without machines"
    );
    assert!(f(&report["at_model_threshold"], "roc_auc") > 0.95);
    assert!(report["cross_validation"]["split"]
        .as_str()
        .unwrap()
        .contains("stratified"));

    // A twin model cannot be evaluated on AI4I's features.
    let out = Command::new(BIN)
        .args([
            "evaluate",
            SHIPPED_MODEL,
            s(&csv),
            "--out-dir",
            s(&dir.path().join("x")),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("feature set"));
}
