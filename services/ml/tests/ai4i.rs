//! The forest on the real AI4I 2020 data, against a single linfa-trees decision tree.
//!
//! Skips (passes) when the CSV is not present. Set `AI4I_CSV` to use another copy.

use std::time::Instant;

use dtwin_ml::metrics::{self, Confusion};
use dtwin_ml::{Forest, ForestParams};
use linfa::prelude::*;
use linfa_trees::DecisionTree;
use ndarray::{Array1, Array2};

const DEFAULT_CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/datasets/ai4i2020.csv"
);

/// Derived and raw features, in model order (never the failure-mode columns).
const FEATURES: [&str; 9] = [
    "type",
    "air_temp_k",
    "process_temp_k",
    "rpm",
    "torque_nm",
    "tool_wear_min",
    "temp_diff_k",
    "power_w",
    "strain",
];

/// Rows as features plus the "Machine failure" label.
fn load(text: &str) -> (Array2<f32>, Vec<bool>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut values = Vec::new();
    let mut y = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let c: Vec<&str> = line.split(',').collect();
        let num = |i: usize| -> f32 { c[i].trim().parse().expect("numeric AI4I column") }; // fixed, known file
        let kind = match c[2] {
            "L" => 0.0,
            "M" => 1.0,
            "H" => 2.0,
            other => panic!("unknown product type {other}"),
        };
        let (air, process, rpm, torque, wear) = (num(3), num(4), num(5), num(6), num(7));
        values.extend_from_slice(&[
            kind,
            air,
            process,
            rpm,
            torque,
            wear,
            process - air,
            torque * rpm * std::f32::consts::TAU / 60.0,
            wear * torque,
        ]);
        y.push(c[8].trim() == "1");
    }
    let x = Array2::from_shape_vec((y.len(), FEATURES.len()), values).expect("rows × features"); // 9 values pushed per row
    (x, y)
}

fn report(name: &str, threshold: f32, c: &Confusion, auc: f64, ap: f64) {
    println!(
        "{name:<28} thr {threshold:.3}  acc {:.4}  prec {:.3}  rec {:.3}  F1 {:.3}  ROC-AUC {auc:.4}  PR-AUC {ap:.4}",
        c.accuracy(),
        c.precision(),
        c.recall(),
        c.f1()
    );
}

#[test]
fn forest_on_ai4i_beats_a_single_tree() {
    let path = std::env::var("AI4I_CSV").unwrap_or_else(|_| DEFAULT_CSV.to_string());
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipping: AI4I CSV not found at {path}");
        return;
    };
    let (x, y) = load(&text);
    assert_eq!(x.nrows(), 10_000);
    let (train, test) = metrics::stratified_split(&y, 0.2, 42);
    let (xtr, xte) = (
        x.select(ndarray::Axis(0), &train),
        x.select(ndarray::Axis(0), &test),
    );
    let ytr: Vec<bool> = train.iter().map(|&i| y[i]).collect();
    let yte: Vec<bool> = test.iter().map(|&i| y[i]).collect();

    let started = Instant::now();
    let forest = Forest::fit(xtr.view(), &ytr, &ForestParams::default(), &|| {})
        .expect("AI4I has both classes");
    let seconds = started.elapsed().as_secs_f64();
    let p = forest.predict_proba(xte.view());
    let auc = metrics::roc_auc(&yte, &p);
    let ap = metrics::pr_auc(&yte, &p);
    println!(
        "AI4I: {} train / {} test rows, {} trees, {} nodes, trained in {seconds:.3} s",
        train.len(),
        test.len(),
        forest.n_trees(),
        forest.n_nodes()
    );
    report(
        "forest @0.5",
        0.5,
        &metrics::confusion(&yte, &p, 0.5),
        auc,
        ap,
    );
    let best = metrics::best_f1_threshold(&yte, &p);
    report(
        "forest @best-F1 (on test)",
        best,
        &metrics::confusion(&yte, &p, best),
        auc,
        ap,
    );
    let imp = forest.feature_importance();
    let mut ranked: Vec<(&str, f32)> = FEATURES.iter().copied().zip(imp).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("importance: {ranked:?}");

    // Baseline: one linfa-trees decision tree on the same split (labels only, no probabilities).
    let to_linfa = |x: &Array2<f32>| x.mapv(f64::from);
    let targets: Array1<usize> = ytr.iter().map(|&b| usize::from(b)).collect();
    let dataset = Dataset::new(to_linfa(&xtr), targets);
    let tree = DecisionTree::params()
        .max_depth(Some(10))
        .fit(&dataset)
        .expect("decision tree trains");
    let tree_pred: Vec<f32> = tree
        .predict(&to_linfa(&xte))
        .iter()
        .map(|&c| c as f32)
        .collect();
    let tree_c = metrics::confusion(&yte, &tree_pred, 0.5);
    let tree_auc = metrics::roc_auc(&yte, &tree_pred);
    report(
        "linfa-trees DecisionTree",
        0.5,
        &tree_c,
        tree_auc,
        metrics::pr_auc(&yte, &tree_pred),
    );

    assert!(
        auc >= 0.975,
        "forest ROC-AUC {auc} below 0.975 (sklearn reference 0.983)"
    );
    assert!(
        auc > tree_auc,
        "forest ROC-AUC {auc} should beat a single tree's {tree_auc}"
    );
}
