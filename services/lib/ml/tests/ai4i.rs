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
    "/../../../../shared/datasets/ai4i2020.csv"
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
/// The 9 features, the labels, and AI4I's three physical rules (HDF and PWF as 0/1, OSF as
/// strain over the type's limit) per row.
fn load(text: &str) -> (Array2<f32>, Vec<bool>, Array2<f32>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut values = Vec::new();
    let mut rules = Vec::new();
    let mut y = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let c: Vec<&str> = line.split(',').collect();
        let num = |i: usize| -> f64 { c[i].trim().parse().expect("numeric AI4I column") }; // fixed, known file
        let kind = match c[2] {
            "L" => 0.0,
            "M" => 1.0,
            "H" => 2.0,
            other => panic!("unknown product type {other}"),
        };
        let (air, process, rpm, torque, wear) = (num(3), num(4), num(5), num(6), num(7));
        // Derived values in f64 as `dtwin train` computes them: the physical rules compare them
        // with thresholds that many rows sit exactly on (a 8.6 K difference), and f32
        // arithmetic moves such rows across (it cost 5 of the 68 test failures: F1 0.876, not 0.921).
        let (diff, power, strain) = (
            process - air,
            torque * rpm * std::f64::consts::TAU / 60.0,
            wear * torque,
        );
        let limit = [11_000.0, 12_000.0, 13_000.0][kind as usize];
        rules.extend_from_slice(&[
            f32::from(diff < 8.6 && rpm < 1380.0),
            f32::from(!(3500.0..=9000.0).contains(&power)),
            (strain / limit) as f32,
        ]);
        values.extend_from_slice(&[
            kind,
            air as f32,
            process as f32,
            rpm as f32,
            torque as f32,
            wear as f32,
            diff as f32,
            power as f32,
            strain as f32,
        ]);
        y.push(c[8].trim() == "1");
    }
    let x = Array2::from_shape_vec((y.len(), FEATURES.len()), values).expect("rows × features"); // 9 values pushed per row
    let rules = Array2::from_shape_vec((y.len(), 3), rules).expect("3 rule values per row");
    (x, y, rules)
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
    let (x, y, _) = load(&text);
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
    let auc = metrics::roc_auc(&yte, &p).expect("the test rows hold both classes");
    let ap = metrics::pr_auc(&yte, &p).expect("the test rows hold both classes");
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
    let tree_auc = metrics::roc_auc(&yte, &tree_pred).expect("the test rows hold both classes");
    report(
        "linfa-trees DecisionTree",
        0.5,
        &tree_c,
        tree_auc,
        metrics::pr_auc(&yte, &tree_pred).expect("the test rows hold both classes"),
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

/// AI4I's physical rules (the data set's own failure definitions for HDF, PWF and OSF), as
/// features: heat-dissipation flag, power-band flag, strain over the type's overstrain limit.
fn with_rule_features(x: &Array2<f32>, rules: &Array2<f32>) -> Array2<f32> {
    ndarray::concatenate(ndarray::Axis(1), &[x.view(), rules.view()]).expect("same rows")
}

/// The expert rules fire: the machine fails by AI4I's own definitions of HDF, PWF or OSF.
fn rules_fire(row: ndarray::ArrayView1<f32>, base: usize) -> bool {
    row[base] > 0.5 || row[base + 1] > 0.5 || row[base + 2] > 1.0
}

/// Forest probability, raised to 1 where a physical rule fires.
fn combined(forest: &Forest, x: &Array2<f32>, base: usize) -> Vec<f32> {
    forest
        .predict_proba(x.view())
        .into_iter()
        .zip(x.outer_iter())
        .map(|(p, row)| if rules_fire(row, base) { 1.0 } else { p })
        .collect()
}

fn subset(x: &Array2<f32>, y: &[bool], idx: &[usize]) -> (Array2<f32>, Vec<bool>) {
    (
        x.select(ndarray::Axis(0), idx),
        idx.iter().map(|&i| y[i]).collect(),
    )
}

/// Issue 4's bar on AI4I (stratified 80/20, seed 42, no failure-mode columns): ROC-AUC >= 0.983
/// and F1 >= 0.90, both met. The threshold is chosen without looking at the test rows (best F1
/// on the training rows' out-of-fold predictions); at it, the positives are the rows where a
/// physical rule fires or every tree agrees. What is missed is tool-wear failure (a random point
/// between 200 and 240 min, where most tools are replaced before failing) and random failures.
/// The assertions pin what is reached, so a regression fails.
#[test]
fn forest_plus_physical_rules_meets_the_ai4i_bar() {
    let path = std::env::var("AI4I_CSV").unwrap_or_else(|_| DEFAULT_CSV.to_string());
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipping: AI4I CSV not found at {path}");
        return;
    };
    let (x0, y, rules) = load(&text);
    let base = x0.ncols();
    let x = with_rule_features(&x0, &rules);
    let params = ForestParams::default();
    let (train, test) = metrics::stratified_split(&y, 0.2, 42);
    let (xtr, ytr) = subset(&x, &y, &train);
    let (xte, yte) = subset(&x, &y, &test);

    // Threshold from out-of-fold predictions on the training rows only.
    let mut oof = vec![0.0f32; ytr.len()];
    for fold in metrics::stratified_kfold(&ytr, 5, 42) {
        let rest: Vec<usize> = (0..ytr.len())
            .filter(|i| fold.binary_search(i).is_err())
            .collect();
        let (xa, ya) = subset(&xtr, &ytr, &rest);
        let f = Forest::fit(xa.view(), &ya, &params, &|| {}).unwrap();
        let (xb, _) = subset(&xtr, &ytr, &fold);
        for (i, p) in fold.iter().zip(combined(&f, &xb, base)) {
            oof[*i] = p;
        }
    }
    let threshold = metrics::best_f1_threshold(&ytr, &oof);

    let forest = Forest::fit(xtr.view(), &ytr, &params, &|| {}).unwrap();
    let p = combined(&forest, &xte, base);
    let c = metrics::confusion(&yte, &p, threshold);
    let auc = metrics::roc_auc(&yte, &p).expect("the test rows hold both classes");
    let ap = metrics::pr_auc(&yte, &p).expect("the test rows hold both classes");
    report("forest + rules, 80/20 test", threshold, &c, auc, ap);
    let rules_only: Vec<f32> = xte
        .outer_iter()
        .map(|row| if rules_fire(row, base) { 1.0 } else { 0.0 })
        .collect();
    let rc = metrics::confusion(&yte, &rules_only, 0.5);
    report("physical rules alone", 0.5, &rc, f64::NAN, f64::NAN);
    let rf_only = forest.predict_proba(xte.view());
    report(
        "forest alone (rule features)",
        0.5,
        &metrics::confusion(&yte, &rf_only, 0.5),
        metrics::roc_auc(&yte, &rf_only).expect("the test rows hold both classes"),
        metrics::pr_auc(&yte, &rf_only).expect("the test rows hold both classes"),
    );

    // 5-fold CV over all rows, same recipe (threshold from each training part's own OOF would
    // cost 25 fits; the 80/20 threshold is reused).
    let (mut f1s, mut aucs) = (Vec::new(), Vec::new());
    for fold in metrics::stratified_kfold(&y, 5, 7) {
        let rest: Vec<usize> = (0..y.len())
            .filter(|i| fold.binary_search(i).is_err())
            .collect();
        let (xa, ya) = subset(&x, &y, &rest);
        let (xb, yb) = subset(&x, &y, &fold);
        let f = Forest::fit(xa.view(), &ya, &params, &|| {}).unwrap();
        let pb = combined(&f, &xb, base);
        f1s.push(metrics::confusion(&yb, &pb, threshold).f1());
        aucs.push(metrics::roc_auc(&yb, &pb).expect("a stratified fold holds both classes"));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let sd = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    println!(
        "5-fold CV: F1 {:.3} ± {:.3}, ROC-AUC {:.4} ± {:.4}",
        mean(&f1s),
        sd(&f1s),
        mean(&aucs),
        sd(&aucs)
    );
    assert!(auc >= 0.983, "ROC-AUC {auc:.4} below the bar 0.983");
    assert!(c.f1() >= 0.90, "F1 {:.3} below the bar 0.90", c.f1());
    assert!(c.precision() >= 0.95, "precision {:.3}", c.precision());
    assert!(mean(&f1s) >= 0.89, "CV F1 {:.3}", mean(&f1s));
}
