//! `dtwin predict` takes the features from the model artifact's recipe: an AI4I model scores
//! AI4I's CSV (the probabilities `dtwin evaluate` computes on the same rows), and a twin model
//! trained on other windows scores telemetry without the window flags. Run as the built binary;
//! the AI4I part needs the real CSV (`AI4I_CSV`, default `../shared/datasets/ai4i2020.csv`
//! beside the workspace) and is skipped with a message otherwise.

use crate::common::{ai4i_csv, run, s};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_dtwin");

fn dtwin(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the dtwin binary runs")
}

/// One scored row of `dtwin predict`'s output.
#[derive(Debug, PartialEq)]
struct Scored {
    machine_id: String,
    seq: u64,
    probability: f32,
    label: bool,
    cold: bool,
    failure: Option<bool>,
}

fn read_scored(path: &Path) -> Vec<Scored> {
    let mut r = csv::Reader::from_path(path).unwrap();
    assert_eq!(
        r.headers().unwrap(),
        vec![
            "machine_id",
            "seq",
            "ts",
            "probability",
            "label",
            "cold",
            "failure"
        ]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            Scored {
                machine_id: rec[0].to_owned(),
                seq: rec[1].parse().unwrap(),
                probability: rec[3].parse().unwrap(),
                label: &rec[4] == "1",
                cold: &rec[5] == "1",
                failure: (!rec[6].is_empty()).then(|| &rec[6] == "1"),
            }
        })
        .collect()
}

fn predict(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> Vec<Scored> {
    let mut args = vec!["predict", s(model), s(data), "--out", s(out)];
    args.extend_from_slice(extra);
    run(&args);
    read_scored(out)
}

fn evaluate_json(model: &Path, data: &Path, out_dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "evaluate",
        s(model),
        s(data),
        "--out-dir",
        s(out_dir),
        "--folds",
        "0",
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_slice(&run(&args).stdout).expect("evaluate --json prints JSON")
}

/// The confusion matrix and the areas of `rows` at `threshold` equal `m` (evaluate's metrics).
fn agrees_with(m: &Value, rows: &[&Scored], threshold: f64) {
    let y: Vec<bool> = rows.iter().map(|r| r.failure.unwrap()).collect();
    let p: Vec<f32> = rows.iter().map(|r| r.probability).collect();
    let count = |actual: bool, alarm: bool| {
        rows.iter()
            .filter(|r| r.failure == Some(actual) && r.label == alarm)
            .count() as u64
    };
    assert_eq!(m["rows"].as_u64().unwrap(), rows.len() as u64);
    assert_eq!(m["tn"].as_u64().unwrap(), count(false, false), "{m}");
    assert_eq!(m["fp"].as_u64().unwrap(), count(false, true), "{m}");
    assert_eq!(m["fn_"].as_u64().unwrap(), count(true, false), "{m}");
    assert_eq!(m["tp"].as_u64().unwrap(), count(true, true), "{m}");
    assert!(rows
        .iter()
        .all(|r| r.label == (f64::from(r.probability) >= threshold)));
    let roc = dtwin_ml::metrics::roc_auc(&y, &p).unwrap();
    let pr = dtwin_ml::metrics::pr_auc(&y, &p).unwrap();
    assert!(
        (roc - m["roc_auc"].as_f64().unwrap()).abs() < 1e-9,
        "{roc} {m}"
    );
    assert!(
        (pr - m["pr_auc"].as_f64().unwrap()).abs() < 1e-9,
        "{pr} {m}"
    );
}

#[test]
fn an_ai4i_model_scores_ai4i_rows_as_evaluate_does() {
    let Some(csv) = ai4i_csv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ai4i.json");
    run(&[
        "train",
        s(&csv),
        "--out",
        s(&model),
        "--trees",
        "8",
        "--json",
    ]);
    let artifact: Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(
        artifact["recipe"],
        serde_json::json!({"kind": "ai4i_tabular"})
    );
    let threshold = artifact["threshold"].as_f64().unwrap();

    let scored = predict(&model, &csv, &dir.path().join("scored.csv"), &[]);
    assert_eq!(scored.len(), 10_000);
    assert!(scored
        .iter()
        .all(|r| r.machine_id == "ai4i-machine" && !r.cold));
    assert_eq!(
        scored.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=10_000).collect::<Vec<_>>(),
        "seq is AI4I's UDI"
    );
    // The floor rules apply: AI4I's rule-caused failures all score 1.
    assert!(scored.iter().any(|r| r.probability == 1.0));

    // Every row: evaluate's metrics on all rows are those of predict's probabilities.
    let all = evaluate_json(&model, &csv, &dir.path().join("all"), &["--all-rows"]);
    let rows: Vec<&Scored> = scored.iter().collect();
    agrees_with(&all["at_model_threshold"], &rows, threshold);
    // The held-out 20 % (stratified, seed 42) the model never saw: the same.
    let held_out = evaluate_json(&model, &csv, &dir.path().join("held"), &[]);
    let y: Vec<bool> = scored.iter().map(|r| r.failure.unwrap()).collect();
    let (_, test) = dtwin_ml::metrics::stratified_split(&y, 0.2, 42);
    let rows: Vec<&Scored> = test.iter().map(|&i| &scored[i]).collect();
    agrees_with(&held_out["at_model_threshold"], &rows, threshold);

    // The same artifact without its recipe (as written before recipes) is told by its hash.
    let mut old = artifact.clone();
    old.as_object_mut().unwrap().remove("recipe");
    let old_model = dir.path().join("old.json");
    std::fs::write(&old_model, serde_json::to_vec(&old).unwrap()).unwrap();
    let again = predict(&old_model, &csv, &dir.path().join("old.csv"), &[]);
    assert_eq!(again, scored);

    // A telemetry CSV does not fit an AI4I model.
    let fleet = dir.path().join("fleet.csv");
    run(&[
        "generate",
        "--machines",
        "2",
        "--days",
        "0.02",
        "--out",
        s(&fleet),
    ]);
    let out = dtwin(&[
        "predict",
        s(&model),
        s(&fleet),
        "--out",
        s(&dir.path().join("x.csv")),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATA must be AI4I's CSV"), "{err}");
}

#[test]
fn a_twin_model_on_other_windows_needs_no_window_flags() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.csv");
    run(&[
        "generate",
        "--machines",
        "5",
        "--days",
        "0.3",
        "--seed",
        "11",
        "--out",
        s(&fleet),
    ]);
    let windows = ["--short-window", "5", "--long-window", "20"];
    let model = dir.path().join("twin.json");
    let mut train = vec![
        "train",
        s(&fleet),
        "--out",
        s(&model),
        "--trees",
        "5",
        "--label-modes",
        "all",
        "--json",
    ];
    train.extend_from_slice(&windows);
    run(&train);
    let artifact: Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(artifact["recipe"]["kind"], "windows");
    assert_eq!(artifact["recipe"]["window"]["short"], 5);
    assert_eq!(artifact["recipe"]["window"]["long"], 20);

    let bare = predict(&model, &fleet, &dir.path().join("bare.csv"), &[]);
    let flagged = predict(&model, &fleet, &dir.path().join("flagged.csv"), &windows);
    assert!(!bare.is_empty());
    assert_eq!(bare, flagged, "the recipe gives what the flags give");
    assert!(bare.iter().any(|r| r.cold) && bare.iter().any(|r| !r.cold));
    let machines: std::collections::BTreeSet<&str> =
        bare.iter().map(|r| r.machine_id.as_str()).collect();
    assert_eq!(machines.len(), 5);

    // evaluate takes the windows from the recipe too: no flags, no feature-set error.
    let card = evaluate_json(
        &model,
        &fleet,
        &dir.path().join("card"),
        &["--all-rows", "--label-modes", "all"],
    );
    assert!(card["at_model_threshold"]["rows"].as_u64().unwrap() > 0);

    // An artifact without its recipe (as written before recipes): the flags still work, and
    // without them the error names the flags to give.
    let mut old = artifact.clone();
    old.as_object_mut().unwrap().remove("recipe");
    let old_model = dir.path().join("old.json");
    std::fs::write(&old_model, serde_json::to_vec(&old).unwrap()).unwrap();
    let old_flagged = predict(&old_model, &fleet, &dir.path().join("old.csv"), &windows);
    assert_eq!(old_flagged, bare);
    let out = dtwin(&[
        "predict",
        s(&old_model),
        s(&fleet),
        "--out",
        s(&dir.path().join("x.csv")),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--short-window") && err.contains("--long-window"),
        "{err}"
    );
}
