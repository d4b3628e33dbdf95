//! Metrics, thresholds, cross-validation folds and the event view on hand-made data.

use super::*;
use crate::dataset::{Failure, LabelModes};
use crate::test_support::{machines, table, twin, unit, MachineSpec};
use dtwin_schema::FailureMode;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn policy() -> AlertPolicy {
    AlertPolicy::default()
}

fn params() -> ForestParams {
    ForestParams {
        n_trees: 5,
        max_features: dtwin_ml::MaxFeatures::All,
        ..ForestParams::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Row metrics

/// Positives 0.9, 0.6, 0.2; negatives 0.7, 0.4, 0.1, 0.3.
const Y: [bool; 7] = [true, true, true, false, false, false, false];
const P: [f32; 7] = [0.9, 0.6, 0.2, 0.7, 0.4, 0.1, 0.3];

#[test]
fn metrics_at_counts_a_hand_made_confusion_matrix() {
    let m = metrics_at(&Y, &P, 0.5);
    // Alarms (p >= 0.5): 0.9 and 0.6 (positives), 0.7 (negative).
    assert_eq!((m.tp, m.fp, m.tn, m.fn_), (2, 1, 3, 1));
    assert_eq!((m.rows, m.positives, m.threshold), (7, 3, 0.5));
    assert!(close(m.accuracy, 5.0 / 7.0));
    assert!(close(m.precision, 2.0 / 3.0));
    assert!(close(m.recall, 2.0 / 3.0));
    assert!(close(m.f1, 2.0 / 3.0));
    assert!(close(m.false_alarm_share, 1.0 / 3.0));
    // Pairs won: 0.9 beats 4 negatives, 0.6 beats 3, 0.2 beats 1: 8 of 12.
    assert!(close(m.roc_auc, 8.0 / 12.0));
    // AP: recall steps of 1/3 at precision 1 (0.9), 2/3 (0.6) and 1/2 (0.2).
    assert!(close(m.pr_auc, (1.0 + 2.0 / 3.0 + 0.5) / 3.0));
    // A threshold equal to a score alarms on it.
    assert_eq!(metrics_at(&Y, &P, 0.6).tp, 2);
    assert_eq!(metrics_at(&Y, &P, 0.61).tp, 1);
}

#[test]
fn no_predicted_positives_give_undefined_precision_and_zero_recall() {
    let m = metrics_at(&Y, &P, 0.95);
    assert_eq!((m.tp, m.fp, m.tn, m.fn_), (0, 0, 4, 3));
    assert!(m.precision.is_nan(), "precision of no alarms is undefined");
    assert!(m.false_alarm_share.is_nan());
    assert_eq!(m.recall, 0.0);
    assert_eq!(m.f1, 0.0);
    assert!(close(m.accuracy, 4.0 / 7.0));
    // Threshold-free figures do not depend on the threshold.
    assert_eq!(m.roc_auc, metrics_at(&Y, &P, 0.5).roc_auc);
    // Undefined is null in the JSON, not a made-up number.
    let json = serde_json::to_value(&m).unwrap();
    assert!(json["precision"].is_null());
    assert_eq!(json["recall"], 0.0);
}

#[test]
fn one_class_or_no_rows_leave_the_areas_undefined_without_panicking() {
    // All negative: no positive to rank, no recall.
    let neg = metrics_at(&[false; 4], &[0.1, 0.9, 0.5, 0.5], 0.5);
    assert!(neg.roc_auc.is_nan() && neg.pr_auc.is_nan());
    assert!(neg.recall.is_nan() && neg.f1 == 0.0);
    assert_eq!((neg.fp, neg.tn), (3, 1));
    // All positive: ROC-AUC undefined (no negative), average precision 1.
    let pos = metrics_at(&[true; 3], &[0.1, 0.9, 0.5], 0.5);
    assert!(pos.roc_auc.is_nan());
    assert!(close(pos.pr_auc, 1.0));
    assert!(close(pos.recall, 2.0 / 3.0));
    // No rows.
    let empty = metrics_at(&[], &[], 0.5);
    assert_eq!(
        (empty.rows, empty.positives, empty.tp + empty.fp),
        (0, 0, 0)
    );
    assert!(empty.roc_auc.is_nan() && empty.pr_auc.is_nan() && empty.accuracy.is_nan());
    for m in [&neg, &empty] {
        let json = serde_json::to_value(m).unwrap();
        assert!(json["roc_auc"].is_null() && json["pr_auc"].is_null());
    }
    assert!(serde_json::to_value(&pos).unwrap()["roc_auc"].is_null());
    // Curves of one class are empty, and thinning them keeps them empty.
    assert!(thin(metrics::roc_curve(&[false; 4], &[0.1; 4]), CURVE_POINTS).is_empty());
}

#[test]
fn ties_perfect_and_inverted_rankings() {
    let y = [false, true, false, true, true];
    assert!(close(metrics_at(&y, &[0.4; 5], 0.5).roc_auc, 0.5));
    assert!(close(
        metrics_at(&y, &[0.1, 0.8, 0.2, 0.7, 0.9], 0.5).roc_auc,
        1.0
    ));
    assert!(close(
        metrics_at(&y, &[0.1, 0.8, 0.2, 0.7, 0.9], 0.5).pr_auc,
        1.0
    ));
    assert!(close(
        metrics_at(&y, &[0.9, 0.2, 0.8, 0.1, 0.0], 0.5).roc_auc,
        0.0
    ));
    // One positive tied with the top negative: that pair counts half.
    // Pairs: 0.8+ vs (0.8−: ½, 0.1−: 1), 0.3+ vs (0.8−: 0, 0.1−: 1), 0.9+ vs both: 2 → 4.5/6.
    let p = [0.8, 0.8, 0.1, 0.3, 0.9];
    assert!(close(metrics_at(&y, &p, 0.5).roc_auc, 4.5 / 6.0));
}

#[test]
fn mean_sd_leaves_out_undefined_folds() {
    let m = mean_sd([0.5, f64::NAN, 0.7].into_iter());
    assert!(close(m.mean, 0.6));
    assert!(close(m.sd, 0.02f64.sqrt()));
    let one = mean_sd([0.8, f64::NAN].into_iter());
    assert!(close(one.mean, 0.8) && one.sd.is_nan());
    let none = mean_sd([f64::NAN, f64::INFINITY].into_iter());
    assert!(none.mean.is_nan() && none.sd.is_nan());
}

#[test]
fn thin_keeps_both_ends_and_the_count() {
    let points: Vec<(f64, f64)> = (0..=10).map(|i| (f64::from(i), 0.0)).collect();
    let t = thin(points.clone(), 3);
    assert_eq!(t, vec![(0.0, 0.0), (5.0, 0.0), (10.0, 0.0)]);
    assert_eq!(thin(points.clone(), 20), points);
}

// ---------------------------------------------------------------------------------------------
// Thresholds for a target

/// Rows in the order scored and their labels: by score 0.9+ 0.8− 0.7+ 0.6− 0.3− 0.2+.
/// Per level (recall, precision): (1/3, 1), (1/3, ½), (2/3, 2/3), (2/3, ½), (2/3, 0.4), (1, ½).
fn scored_table() -> (EvalData, Vec<usize>, Vec<f32>) {
    // Data rows 4, 1, 0, 5, 2, 3 are scored 0.9 .. 0.2, so their labels are T F T F F T.
    let data = EvalData::Tabular(table(vec![true, false, false, true, true, false]));
    (
        data,
        vec![4, 1, 0, 5, 2, 3],
        vec![0.9, 0.8, 0.7, 0.6, 0.3, 0.2],
    )
}

#[test]
fn thresholds_for_recall_and_precision_by_hand() {
    let (data, rows, p) = scored_table();
    let pick = |t| choose_threshold(&data, &rows, &p, t, &policy());
    // The highest threshold reaching the recall.
    assert_eq!(pick(ThresholdTarget::Recall(0.3)), 0.9);
    assert_eq!(pick(ThresholdTarget::Recall(0.5)), 0.7);
    assert_eq!(pick(ThresholdTarget::Recall(2.0 / 3.0)), 0.7);
    assert_eq!(pick(ThresholdTarget::Recall(1.0)), 0.2);
    assert!(pick(ThresholdTarget::Recall(1.01)).is_nan(), "out of reach");
    // The lowest threshold keeping the precision.
    assert_eq!(pick(ThresholdTarget::Precision(1.0)), 0.9);
    assert_eq!(pick(ThresholdTarget::Precision(0.6)), 0.7);
    assert_eq!(pick(ThresholdTarget::Precision(0.5)), 0.2);
    // F1 per level: ½, 0.4, 2/3, 4/7, ½, 2/3: the higher of the tied best.
    assert_eq!(pick(ThresholdTarget::BestF1), 0.7);
    // Event recall has no events on a table: row recall stands in.
    assert_eq!(pick(ThresholdTarget::EventRecall(0.5)), 0.7);
    // What the chosen thresholds give, on the same rows.
    let y: Vec<bool> = rows.iter().map(|&i| data.y()[i]).collect();
    assert!(close(metrics_at(&y, &p, 0.7).recall, 2.0 / 3.0));
    assert!(metrics_at(&y, &p, 0.8).recall < 0.5, "0.7 is the highest");
    assert!(close(metrics_at(&y, &p, 0.7).precision, 2.0 / 3.0));
    assert!(metrics_at(&y, &p, 0.6).precision < 0.6, "0.7 is the lowest");
    // No positive among the rows: no threshold meets any target.
    let rows_neg = [1, 2, 5];
    for t in [ThresholdTarget::Recall(0.5), ThresholdTarget::BestF1] {
        assert!(choose_threshold(&data, &rows_neg, &[0.9, 0.5, 0.1], t, &policy()).is_nan());
    }
}

/// Machine 0 fails at step 50 and scores 0.625 on steps 40..50; machine 1 never fails and
/// scores 0.1 except 0.45 on steps 20..26. 100 readings each, rows at steps 0..90.
fn two_machines() -> Dataset {
    let mut d = twin(&["p"], &machines(2, 100, 0..90), |m, s| {
        let p = match (m, s) {
            (0, 40..50) => 0.625,
            (1, 20..26) => 0.45,
            _ => 0.1,
        };
        (vec![p], m == 0 && (40..50).contains(&s))
    });
    d.failures = vec![Failure::twin(
        0,
        50,
        Some(FailureMode::Bearing),
        LabelModes::Degradation,
    )];
    d
}

fn scores_of(d: &Dataset, rows: &[usize]) -> Vec<f32> {
    rows.iter().map(|&i| d.x[[i, 0]]).collect()
}

#[test]
fn event_recall_threshold_is_the_highest_grid_point_that_catches_the_failure() {
    let d = two_machines();
    let rows: Vec<usize> = (0..d.y.len()).collect();
    let p = scores_of(&d, &rows);
    let data = EvalData::Twin(d);
    let t = choose_threshold(
        &data,
        &rows,
        &p,
        ThresholdTarget::EventRecall(1.0),
        &policy(),
    );
    assert_eq!(
        t, 0.62,
        "0.63 misses the 0.625 alarms, 0.62 catches the failure"
    );
    // Scores that never alarm before the failure: no threshold reaches it.
    let flat = vec![0.0; rows.len()];
    let none = choose_threshold(
        &data,
        &rows,
        &flat,
        ThresholdTarget::EventRecall(1.0),
        &policy(),
    );
    assert!(none.is_nan());
}

// ---------------------------------------------------------------------------------------------
// The event view

#[test]
fn events_at_counts_caught_failures_lead_time_and_false_alarms_per_machine_day() {
    let d = two_machines();
    // Rows given in reverse order: the event view sorts each machine's readings by step.
    let rows: Vec<usize> = (0..d.y.len()).rev().collect();
    let p = scores_of(&d, &rows);
    let e = events_at(&d, &rows, &p, 0.4, &policy());
    // Machine 0: alarms 40..50, confirmed at 41 (2 of the last 3), failure at 50: caught,
    // lead 9 readings = 9 minutes at 60 s. Machine 1: alarms 20..26, confirmed at 21, closed
    // after 3 quiet readings, nothing within 10 readings: one false alarm.
    assert_eq!((e.failures, e.caught, e.event_recall), (1, 1, 1.0));
    assert_eq!((e.alerts, e.false_alarms, e.pending_alerts), (2, 1, 0));
    assert_eq!(e.false_alarm_share, 0.5);
    assert_eq!(e.median_lead_readings, 9.0);
    assert_eq!(e.median_lead_minutes, 9.0);
    // 2 machines × 100 readings × 60 s = 1/7.2 of a day: 7.2 false alarms per machine-day.
    assert!(close(e.machine_days, 200.0 * 60.0 / 86_400.0));
    assert!(close(e.false_alarms_per_machine_day, 7.2));
    assert_eq!(e.per_mode["bearing"].caught, 1);

    // Above machine 1's spike only the failure's alert remains.
    let e = events_at(&d, &rows, &p, 0.5, &policy());
    assert_eq!((e.caught, e.alerts, e.false_alarms), (1, 1, 0));
    assert_eq!(e.false_alarms_per_machine_day, 0.0);
    // Above every score: nothing alarms, the failure is missed, no lead time.
    let e = events_at(&d, &rows, &p, 0.9, &policy());
    assert_eq!((e.failures, e.caught, e.alerts), (1, 0, 0));
    assert_eq!(e.event_recall, 0.0);
    assert!(e.false_alarm_share.is_nan() && e.median_lead_readings.is_nan());
    // Only machine 1's rows: its failure-free readings, one false alarm, no failure to recall.
    let rows1: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|&i| d.machine[i] == 1)
        .collect();
    let e = events_at(&d, &rows1, &scores_of(&d, &rows1), 0.4, &policy());
    assert_eq!((e.failures, e.false_alarms), (0, 1));
    assert!(e.event_recall.is_nan());
    assert!(close(e.false_alarms_per_machine_day, 14.4));
}

// ---------------------------------------------------------------------------------------------
// Cross-validation

fn spec(k: usize, p: &ForestParams) -> CvSpec<'_> {
    CvSpec {
        k,
        params: p,
        floor_rules: &[],
        threshold: 0.5,
        policy: policy(),
    }
}

/// `n` machines of 100 readings, rows at steps 0..90, label = the one feature above 0.7.
fn signal_fleet(n: usize) -> Dataset {
    twin(&["signal"], &machines(n, 100, 0..90), |m, s| {
        let v = unit(m, s);
        (vec![v], v > 0.7)
    })
}

#[test]
fn more_folds_than_machines_is_an_error_not_an_empty_fold() {
    let data = EvalData::Twin(signal_fleet(3));
    let rows: Vec<usize> = (0..data.y().len()).collect();
    let p = params();
    let err = cross_validate(&data, &rows, &spec(5, &p), &|| {}).unwrap_err();
    assert!(matches!(
        err,
        CvError::TooFewMachines {
            machines: 3,
            folds: 5
        }
    ));
    assert!(err
        .to_string()
        .starts_with("3 machines for 5 folds of machines"));
    // Exactly as many folds as machines is fine.
    assert_eq!(fold_rows(&data, &rows, 3).unwrap().len(), 3);
    // No rows at all: no machine.
    assert!(matches!(
        fold_rows(&data, &[], 2),
        Err(CvError::TooFewMachines { machines: 0, .. })
    ));
}

#[test]
fn more_folds_than_rows_is_an_error_on_a_table() {
    let data = EvalData::Tabular(table(vec![true, false, true]));
    let p = params();
    let err = cross_validate(&data, &[0, 1, 2], &spec(5, &p), &|| {}).unwrap_err();
    assert!(matches!(err, CvError::TooFewRows { rows: 3, folds: 5 }));
    assert_eq!(
        err.to_string(),
        "3 rows for 5 folds: every fold needs one (use fewer folds or more rows)"
    );
    assert_eq!(fold_rows(&data, &[0, 1, 2], 3).unwrap().len(), 3);
}

#[test]
fn a_fold_whose_machines_have_no_late_rows_is_an_error() {
    // Machine 1's rows stop at step 50, before the cut at 60 of its 100 readings.
    let specs = [
        MachineSpec {
            readings: 100,
            rows: 0..90,
        },
        MachineSpec {
            readings: 100,
            rows: 0..50,
        },
    ];
    let data = EvalData::Twin(twin(&["v"], &specs, |_, s| (vec![s as f32], s % 2 == 0)));
    let rows: Vec<usize> = (0..data.y().len()).collect();
    let err = fold_rows(&data, &rows, 2).unwrap_err();
    assert!(matches!(err, CvError::EmptyFold { fold: 1, folds: 2 }));
    assert!(err.to_string().contains("fold 1 of 2 has no rows to test"));
}

#[test]
fn a_fold_that_cannot_be_fitted_is_named() {
    // Every label false: fold 0's training part has one class.
    let data = EvalData::Twin(twin(&["v"], &machines(2, 100, 0..90), |_, s| {
        (vec![s as f32], false)
    }));
    let rows: Vec<usize> = (0..data.y().len()).collect();
    let p = params();
    let err = cross_validate(&data, &rows, &spec(2, &p), &|| {}).unwrap_err();
    assert!(matches!(
        err,
        CvError::Fit {
            fold: 0,
            folds: 2,
            source: MlError::SingleClass { label: false, .. }
        }
    ));
    assert!(err
        .to_string()
        .starts_with("fold 0 of 2: all 60 labels are false"));
    // evaluate reports it as a cross-validation failure.
    let e = EvalError::from(err);
    assert!(e.to_string().starts_with("cross-validation: fold 0 of 2: "));
}

#[test]
fn folds_below_two_count_as_two() {
    let data = EvalData::Twin(signal_fleet(4));
    let rows: Vec<usize> = (0..data.y().len()).collect();
    assert_eq!(
        fold_rows(&data, &rows, 0).unwrap(),
        fold_rows(&data, &rows, 2).unwrap()
    );
    assert_eq!(fold_rows(&data, &rows, 1).unwrap().len(), 2);
}

#[test]
fn cross_validate_tests_every_late_row_once_and_reports_each_fold() {
    let data = EvalData::Twin(signal_fleet(4));
    let rows: Vec<usize> = (0..data.y().len()).collect();
    let p = params();
    let calls = std::cell::Cell::new(0);
    let (cv, (oof_rows, oof_p)) =
        cross_validate(&data, &rows, &spec(2, &p), &|| calls.set(calls.get() + 1)).unwrap();
    assert_eq!(calls.get(), 2);
    assert_eq!(cv.folds.len(), 2);
    // Each machine's rows from step 60 on are tested exactly once.
    let EvalData::Twin(d) = &data else {
        unreachable!()
    };
    let mut tested = oof_rows.clone();
    tested.sort_unstable();
    let late: Vec<usize> = rows.iter().copied().filter(|&i| d.step[i] >= 60).collect();
    assert_eq!(tested, late);
    assert_eq!(oof_p.len(), oof_rows.len());
    // Trained on the other 2 machines' 60 early rows; 2 × 30 late rows tested.
    for f in &cv.folds {
        assert_eq!(f.train_rows, 2 * 60);
        assert_eq!(f.metrics.rows, 2 * 30);
        assert!(f.events.is_some());
        assert!(f.metrics.roc_auc > 0.95, "{}", f.metrics.roc_auc);
    }
    assert!(cv.roc_auc.mean > 0.95);
    assert!(cv.event_recall.is_some());
    assert!(cv.split.starts_with("2 folds of machines"), "{}", cv.split);
}

#[test]
fn stratified_folds_keep_each_class_where_possible() {
    // 7 positives, 30 negatives, 5 folds: every fold tests and trains on both classes.
    let y: Vec<bool> = (0..37).map(|i| i % 5 == 0 && i < 35).collect();
    assert_eq!(y.iter().filter(|&&b| b).count(), 7);
    let data = EvalData::Tabular(table(y.clone()));
    let rows: Vec<usize> = (0..y.len()).collect();
    let folds = fold_rows(&data, &rows, 5).unwrap();
    for (train, test) in &folds {
        let pos = test.iter().filter(|&&i| y[i]).count();
        assert!((1..=2).contains(&pos), "{pos} positives in a fold");
        assert!(test.iter().any(|&i| !y[i]));
        assert!(train.iter().any(|&i| y[i]) && train.iter().any(|&i| !y[i]));
    }
    // 3 positives for 5 folds: not every fold can have one; none gets two.
    let y3: Vec<bool> = (0..20).map(|i| i < 3).collect();
    let data = EvalData::Tabular(table(y3.clone()));
    let folds = fold_rows(&data, &(0..20).collect::<Vec<_>>(), 5).unwrap();
    let per_fold: Vec<usize> = folds
        .iter()
        .map(|(_, test)| test.iter().filter(|&&i| y3[i]).count())
        .collect();
    assert_eq!(per_fold.iter().sum::<usize>(), 3);
    assert!(per_fold.iter().all(|&n| n <= 1), "{per_fold:?}");
}

// ---------------------------------------------------------------------------------------------
// Splits never leak a machine (property tests)

/// A random fleet: per machine its readings (12..80) and the first labelled step (0..4); the
/// last `horizon` (0..3) readings are unlabelled, as in the data set builder. Every machine has
/// rows on both sides of the time cut.
fn fleet_strategy() -> impl Strategy<Value = Dataset> {
    (
        prop::collection::vec((12u32..80, 0u32..4), 1..14),
        0u32..3,
        any::<u32>(),
    )
        .prop_map(|(specs, horizon, seed)| {
            let specs: Vec<MachineSpec> = specs
                .into_iter()
                .map(|(readings, first)| MachineSpec {
                    readings,
                    rows: first..readings - horizon,
                })
                .collect();
            twin(&["v"], &specs, |m, s| (vec![0.0], unit(m ^ seed, s) > 0.5))
        })
}

fn machines_of(d: &Dataset, rows: &[usize]) -> BTreeSet<u32> {
    rows.iter().map(|&i| d.machine[i]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn holdout_never_shares_a_machine(d in fleet_strategy()) {
        let all = machines_of(&d, &(0..d.y.len()).collect::<Vec<_>>());
        let data = EvalData::Twin(d);
        let EvalData::Twin(d) = &data else { unreachable!() };
        let (rest, held) = data.holdout();
        let (a, b) = (machines_of(d, &rest), machines_of(d, &held));
        prop_assert!(a.is_disjoint(&b));
        prop_assert_eq!(a.union(&b).copied().collect::<BTreeSet<_>>(), all);
        prop_assert!(b.iter().all(|m| m % 5 == 0));
        prop_assert_eq!(rest.len() + held.len(), d.y.len());
    }

    #[test]
    fn twin_folds_split_by_machine_and_by_time(d in fleet_strategy(), k in 2usize..6, held in any::<bool>()) {
        let data = EvalData::Twin(d);
        let EvalData::Twin(d) = &data else { unreachable!() };
        // CV runs on every row, or on what the held-out part leaves (as evaluate does).
        let rows = if held { data.holdout().0 } else { (0..d.y.len()).collect() };
        let all = machines_of(d, &rows);
        let folds = match fold_rows(&data, &rows, k) {
            Ok(f) => f,
            Err(e) => {
                prop_assert!(all.len() < k, "unexpected {e}");
                prop_assert!(
                    matches!(e, CvError::TooFewMachines { machines, folds } if machines == all.len() && folds == k),
                    "unexpected {}", e
                );
                return Ok(());
            }
        };
        prop_assert_eq!(folds.len(), k);
        let cut = |i: usize| (f64::from(d.readings[d.machine[i] as usize]) * CV_TIME_CUT) as u32;
        let mut tested_machines = BTreeSet::new();
        let (mut last_train, mut first_test) = (vec![None; d.readings.len()], vec![None; d.readings.len()]);
        for (train, test) in &folds {
            let (a, b) = (machines_of(d, train), machines_of(d, test));
            prop_assert!(!test.is_empty());
            prop_assert!(a.is_disjoint(&b), "a machine in both train and test");
            prop_assert_eq!(a.union(&b).copied().collect::<BTreeSet<_>>(), all.clone());
            prop_assert!(b.is_disjoint(&tested_machines), "a machine tested twice");
            tested_machines.extend(b);
            prop_assert!(train.iter().chain(test).all(|i| rows.contains(i)));
            for &i in train {
                prop_assert!(d.step[i] < cut(i));
                let m = d.machine[i] as usize;
                last_train[m] = last_train[m].max(Some(d.step[i]));
            }
            for &i in test {
                prop_assert!(d.step[i] >= cut(i));
                let m = d.machine[i] as usize;
                first_test[m] = Some(first_test[m].map_or(d.step[i], |s: u32| s.min(d.step[i])));
            }
        }
        prop_assert_eq!(tested_machines, all);
        // Per machine, every reading any fold trains on comes before every one tested.
        for (train, test) in last_train.iter().zip(&first_test) {
            if let (Some(t), Some(s)) = (train, test) {
                prop_assert!(t < s);
            }
        }
        // Every row from the cut on is tested exactly once.
        let mut tested: Vec<usize> = folds.iter().flat_map(|f| f.1.iter().copied()).collect();
        tested.sort_unstable();
        let mut late: Vec<usize> = rows.iter().copied().filter(|&i| d.step[i] >= cut(i)).collect();
        late.sort_unstable();
        prop_assert_eq!(tested, late);
    }

    #[test]
    fn table_folds_partition_the_rows(y in prop::collection::vec(any::<bool>(), 0..60), k in 2usize..7) {
        let data = EvalData::Tabular(table(y.clone()));
        let rows: Vec<usize> = (0..y.len()).collect();
        let folds = match fold_rows(&data, &rows, k) {
            Ok(f) => f,
            Err(e) => {
                prop_assert!(y.len() < k);
                prop_assert!(matches!(e, CvError::TooFewRows { .. }), "unexpected {}", e);
                return Ok(());
            }
        };
        let mut tested: Vec<usize> = Vec::new();
        let positives = y.iter().filter(|&&b| b).count();
        for (train, test) in &folds {
            prop_assert!(!test.is_empty());
            prop_assert_eq!(train.len() + test.len(), y.len());
            prop_assert!(train.iter().all(|i| !test.contains(i)));
            // Stratified: each class as evenly dealt as it can be.
            let pos = test.iter().filter(|&&i| y[i]).count();
            prop_assert!(pos >= positives / k && pos <= positives.div_ceil(k));
            tested.extend(test);
        }
        tested.sort_unstable();
        prop_assert_eq!(tested, rows);
    }
}
