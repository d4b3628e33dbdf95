//! Metrics against small hand-computed cases.

use super::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// A defined area close to `b`.
fn area_close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| close(a, b))
}

#[test]
fn confusion_counts_and_ratios() {
    let y = [true, true, false, false, true];
    let p = [0.9, 0.4, 0.6, 0.1, 0.5];
    let c = confusion(&y, &p, 0.5);
    assert_eq!(
        c,
        Confusion {
            tp: 2,
            fp: 1,
            tn: 1,
            fn_: 1
        }
    );
    assert!(close(c.accuracy(), 0.6));
    assert!(close(c.precision(), 2.0 / 3.0));
    assert!(close(c.recall(), 2.0 / 3.0));
    assert!(close(c.f1(), 2.0 / 3.0));
    assert!(close(c.false_alarm_share(), 1.0 / 3.0));
    assert!(close(c.false_positive_rate(), 0.5));
}

#[test]
fn confusion_edge_cases_are_nan_not_panics() {
    let empty = confusion(&[], &[], 0.5);
    assert!(empty.accuracy().is_nan() && empty.f1().is_nan());
    // Positives exist, none flagged: precision undefined, recall and F1 zero.
    let c = confusion(&[true, false], &[0.1, 0.2], 0.5);
    assert!(c.precision().is_nan() && c.false_alarm_share().is_nan());
    assert_eq!(c.recall(), 0.0);
    assert_eq!(c.f1(), 0.0);
    // No positives at all.
    let c = confusion(&[false, false], &[0.9, 0.1], 0.5);
    assert!(c.recall().is_nan());
    assert_eq!(c.f1(), 0.0);
}

#[test]
fn roc_auc_perfect_inverted_and_ties() {
    let y = [false, false, true, true];
    assert!(area_close(roc_auc(&y, &[0.1, 0.2, 0.8, 0.9]), 1.0));
    assert!(area_close(roc_auc(&y, &[0.9, 0.8, 0.2, 0.1]), 0.0));
    assert!(area_close(roc_auc(&y, &[0.5; 4]), 0.5));
    // Pairs (pos, neg): 0.8 beats 0.1 and ties 0.8 → 1.5; 0.3 beats 0.1, loses to 0.8 → 1.
    assert!(area_close(roc_auc(&y, &[0.1, 0.8, 0.8, 0.3]), 2.5 / 4.0));
}

#[test]
fn roc_auc_matches_pair_counting() {
    let y = [true, false, true, false, false, true, false, true];
    let p = [0.3, 0.3, 0.7, 0.1, 0.7, 0.9, 0.2, 0.3];
    let mut wins = 0.0;
    let mut pairs = 0.0;
    for i in 0..y.len() {
        for j in 0..y.len() {
            if y[i] && !y[j] {
                pairs += 1.0;
                wins += if p[i] > p[j] {
                    1.0
                } else if p[i] == p[j] {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    assert!(area_close(roc_auc(&y, &p), wins / pairs));
}

#[test]
fn single_class_gives_undefined_areas_and_empty_curves() {
    let y = [false, false];
    let p = [0.2, 0.7];
    assert_eq!(roc_auc(&y, &p), None);
    assert_eq!(pr_auc(&y, &p), None);
    assert!(roc_curve(&y, &p).is_empty());
    assert!(pr_curve(&y, &p).is_empty());
    assert!(best_f1_threshold(&y, &p).is_nan());
    assert!(threshold_for_recall(&y, &p, 0.5).is_nan());
    assert!(threshold_for_precision(&y, &p, 0.5).is_nan());
    assert_eq!(roc_auc(&[true], &[0.3]), None);
    assert_eq!(roc_auc(&[], &[]), None);
}

#[test]
fn all_positive_rows_rank_nothing_but_have_full_precision() {
    let y = [true, true, true];
    let p = [0.9, 0.1, 0.5];
    // No negative to rank a positive against.
    assert_eq!(roc_auc(&y, &p), None);
    assert!(roc_curve(&y, &p).is_empty());
    // Every alarm is right, so precision is 1 at every recall.
    assert!(area_close(pr_auc(&y, &p), 1.0));
    assert_eq!(pr_curve(&y, &p).last(), Some(&(1.0, 1.0)));
    // Empty input: nothing is defined, nothing panics.
    assert_eq!(pr_auc(&[], &[]), None);
    assert!(roc_curve(&[], &[]).is_empty() && pr_curve(&[], &[]).is_empty());
    assert!(best_f1_threshold(&[], &[]).is_nan());
}

#[test]
fn tied_scores_are_one_threshold_for_both_areas() {
    // All equal: one level with every row; ROC is the diagonal, AP the positive share.
    let y = [true, false, false, true, false];
    assert!(area_close(roc_auc(&y, &[0.3; 5]), 0.5));
    assert!(area_close(pr_auc(&y, &[0.3; 5]), 0.4));
    assert_eq!(roc_curve(&y, &[0.3; 5]), vec![(0.0, 0.0), (1.0, 1.0)]);
    // A positive tied with a negative at the top, then a positive alone, then a negative:
    // level 0.8 → R 0.5, P 0.5; level 0.6 → R 1, P 2/3.
    let y = [true, false, true, false];
    let p = [0.8, 0.8, 0.6, 0.1];
    assert!(area_close(pr_auc(&y, &p), 0.5 * 0.5 + 0.5 * 2.0 / 3.0));
    // Pairs: (0.8+, 0.8−) ½, (0.8+, 0.1−) 1, (0.6+, 0.8−) 0, (0.6+, 0.1−) 1 → 2.5 / 4.
    assert!(area_close(roc_auc(&y, &p), 2.5 / 4.0));
}

#[test]
fn perfect_and_inverted_rankings_bound_average_precision() {
    let y = [false, true, false, true];
    assert!(area_close(pr_auc(&y, &[0.1, 0.9, 0.2, 0.8]), 1.0));
    // Inverted: the positives come last; levels 0.2 (R 0.5, P 1/3) and 0.1 (R 1, P 1/2).
    assert!(area_close(
        pr_auc(&y, &[0.9, 0.2, 0.8, 0.1]),
        0.5 / 3.0 + 0.5 * 0.5
    ));
    assert!(area_close(roc_auc(&y, &[0.9, 0.2, 0.8, 0.1]), 0.0));
}

#[test]
fn average_precision_by_hand() {
    // Sorted: 0.9 (pos) P=1 R=.5; 0.8 (neg); 0.7 (pos) P=2/3 R=1.
    let y = [true, false, true, false];
    let p = [0.9, 0.8, 0.7, 0.1];
    assert!(area_close(pr_auc(&y, &p), 0.5 * 1.0 + 0.5 * 2.0 / 3.0));
    assert!(area_close(pr_auc(&[true, false], &[0.9, 0.1]), 1.0));
}

#[test]
fn curves_have_expected_ends() {
    let y = [true, false, true, false];
    let p = [0.9, 0.8, 0.7, 0.1];
    let roc = roc_curve(&y, &p);
    assert_eq!(roc.first(), Some(&(0.0, 0.0)));
    assert_eq!(roc.last(), Some(&(1.0, 1.0)));
    assert_eq!(roc.len(), 5);
    let pr = pr_curve(&y, &p);
    assert_eq!(pr[0], (0.0, 1.0));
    assert_eq!(pr[1], (0.5, 1.0));
    assert_eq!(pr.last(), Some(&(1.0, 0.5)));
}

#[test]
fn thresholds_by_hand() {
    let y = [true, false, true, false, true];
    let p = [0.9, 0.8, 0.7, 0.2, 0.1];
    assert_eq!(threshold_for_recall(&y, &p, 0.3), 0.9);
    assert_eq!(threshold_for_recall(&y, &p, 0.6), 0.7);
    assert_eq!(threshold_for_recall(&y, &p, 1.0), 0.1);
    assert_eq!(threshold_for_precision(&y, &p, 1.0), 0.9);
    assert_eq!(threshold_for_precision(&y, &p, 0.6), 0.1); // 3/5 at the lowest score
    assert!(threshold_for_precision(&[false, true], &[0.9, 0.1], 1.0).is_nan());
    // F1 per level: 0.9→0.5, 0.8→0.4, 0.7→0.667, 0.2→0.571, 0.1→0.75.
    assert_eq!(best_f1_threshold(&y, &p), 0.1);
    assert_eq!(
        best_f1_threshold(&[true, true, false], &[0.9, 0.8, 0.1]),
        0.8
    );
}

#[test]
fn stratified_split_keeps_class_shares() {
    let y: Vec<bool> = (0..1000).map(|i| i % 10 == 0).collect();
    let (train, test) = stratified_split(&y, 0.2, 42);
    assert_eq!(test.len(), 200);
    assert_eq!(train.len(), 800);
    assert_eq!(test.iter().filter(|&&i| y[i]).count(), 20);
    let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert_eq!(stratified_split(&y, 0.2, 42), (train, test));
    assert_ne!(
        stratified_split(&y, 0.2, 7).1,
        stratified_split(&y, 0.2, 42).1
    );
}

#[test]
fn stratified_kfold_partitions_rows() {
    let y: Vec<bool> = (0..103).map(|i| i % 7 == 0).collect();
    let folds = stratified_kfold(&y, 5, 1);
    assert_eq!(folds.len(), 5);
    let mut all: Vec<usize> = folds.concat();
    all.sort_unstable();
    assert_eq!(all, (0..103).collect::<Vec<_>>());
    for f in &folds {
        let pos = f.iter().filter(|&&i| y[i]).count();
        assert!((2..=4).contains(&pos), "{pos}");
        assert!((20..=21).contains(&f.len()));
    }
    assert!(stratified_kfold(&y, 0, 1).is_empty());
}

#[test]
fn rmse_against_hand_computed_values() {
    // Errors 3, -4, 0: squares 9 + 16 + 0 = 25, mean 25/3.
    assert!(close(
        rmse(&[13.0, 6.0, 7.0], &[10.0, 10.0, 7.0]),
        (25.0f64 / 3.0).sqrt()
    ));
    assert!(close(rmse(&[5.0, 5.0], &[5.0, 5.0]), 0.0));
    // Errors 1 and -1 (the extra prediction is ignored): RMSE 1.
    assert!(close(rmse(&[1.0, 1.0, 99.0], &[0.0, 2.0]), 1.0));
    assert!(rmse(&[], &[]).is_nan());
}

#[test]
fn nasa_score_against_hand_computed_values() {
    // Late by 10: e^1 - 1; early by 13: e^1 - 1; exact: 0.
    let e1 = std::f64::consts::E - 1.0;
    assert!(close(nasa_term(10.0), e1));
    assert!(close(nasa_term(-13.0), e1));
    assert_eq!(nasa_term(0.0), 0.0);
    assert!(close(
        nasa_score(&[110.0, 87.0, 50.0], &[100.0, 100.0, 50.0]),
        2.0 * e1
    ));
    // Late costs more than early by the same amount: d = +20 vs -20.
    assert!(close(nasa_term(20.0), 6.38905609893065)); // e^2 - 1
    assert!(close(nasa_term(-20.0), 3.657419495658906)); // e^(20/13) - 1
    assert!(nasa_term(20.0) > nasa_term(-20.0));
    // d = -26 and +5: (e^2 - 1) + (e^0.5 - 1).
    assert!(close(
        nasa_score(&[4.0, 35.0], &[30.0, 30.0]),
        6.38905609893065 + 0.6487212707001282
    ));
    assert_eq!(nasa_score(&[], &[]), 0.0);
}
