//! Classification metrics, threshold selection and stratified splits; regression metrics for
//! remaining useful life ([`rmse`], [`nasa_score`]).
//!
//! Conventions: a row is predicted positive when `p >= threshold`. Scores are ordered with
//! `f32::total_cmp`, so a NaN score ranks above every number. A ratio of the confusion matrix
//! whose denominator is zero (no positives, no alarms, no rows) is `NaN` rather than a panic or
//! a made-up value. The threshold-free areas ([`roc_auc`], [`pr_auc`]) are `None` when they are
//! undefined (no rows, or a class they need is absent), so a caller cannot mistake "undefined"
//! for a number.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Counts of a binary confusion matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Positives predicted positive.
    pub tp: usize,
    /// Negatives predicted positive (false alarms).
    pub fp: usize,
    /// Negatives predicted negative.
    pub tn: usize,
    /// Positives predicted negative (missed failures).
    pub fn_: usize,
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        f64::NAN
    } else {
        num as f64 / den as f64
    }
}

impl Confusion {
    /// Share of rows predicted correctly; NaN with no rows.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.fp + self.tn + self.fn_)
    }

    /// `tp / (tp + fp)`; NaN when nothing was predicted positive.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// `tp / (tp + fn)`; NaN when there are no positives.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// `2 tp / (2 tp + fp + fn)`: 0 when positives exist but none were found, NaN when there
    /// are neither positives nor alarms.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    /// Share of alarms that were false, `fp / (tp + fp)` (= 1 − precision); NaN with no alarms.
    pub fn false_alarm_share(&self) -> f64 {
        ratio(self.fp, self.tp + self.fp)
    }

    /// False positive rate `fp / (fp + tn)`; NaN when there are no negatives.
    pub fn false_positive_rate(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
}

/// Confusion matrix of scores `p` against labels `y` at `threshold` (`p >= threshold` alarms).
/// Extra entries of the longer slice are ignored.
pub fn confusion(y: &[bool], p: &[f32], threshold: f32) -> Confusion {
    let mut c = Confusion::default();
    for (&t, &s) in y.iter().zip(p) {
        match (t, s >= threshold) {
            (true, true) => c.tp += 1,
            (false, true) => c.fp += 1,
            (false, false) => c.tn += 1,
            (true, false) => c.fn_ += 1,
        }
    }
    c
}

/// Distinct score levels from high to low with cumulative `(score, tp, fp)` at each.
fn cumulative(y: &[bool], p: &[f32]) -> (Vec<(f32, usize, usize)>, usize, usize) {
    let mut order: Vec<usize> = (0..y.len().min(p.len())).collect();
    order.sort_unstable_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut levels: Vec<(f32, usize, usize)> = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    for &i in &order {
        if y[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        match levels.last_mut() {
            Some(last) if last.0.total_cmp(&p[i]).is_eq() => *last = (p[i], tp, fp),
            _ => levels.push((p[i], tp, fp)),
        }
    }
    (levels, tp, fp)
}

/// Area under the ROC curve from ranks (Mann–Whitney U), tied scores sharing the mean rank
/// (so all-equal scores give 0.5). `None` when either class is absent (no rows, all positive or
/// all negative): no pair of a positive and a negative to rank.
pub fn roc_auc(y: &[bool], p: &[f32]) -> Option<f64> {
    let (levels, n_pos, n_neg) = cumulative(y, p);
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    // Walking from high to low: each positive beats the negatives below it, ties count half.
    let (mut area, mut prev_tp, mut prev_fp) = (0.0f64, 0usize, 0usize);
    for &(_, tp, fp) in &levels {
        let (dp, dn) = ((tp - prev_tp) as f64, (fp - prev_fp) as f64);
        area += dn * (prev_tp as f64 + dp / 2.0);
        prev_tp = tp;
        prev_fp = fp;
    }
    Some(area / (n_pos as f64 * n_neg as f64))
}

/// Average precision, `Σ (R_k − R_{k−1}) P_k` over distinct thresholds (scikit-learn's
/// `average_precision_score`); tied scores form one threshold. `None` when there are no
/// positives (no rows or all negative: recall is undefined); with positives only it is 1.
pub fn pr_auc(y: &[bool], p: &[f32]) -> Option<f64> {
    let (levels, n_pos, _) = cumulative(y, p);
    if n_pos == 0 {
        return None;
    }
    let mut prev_recall = 0.0;
    let mut ap = 0.0;
    for &(_, tp, fp) in &levels {
        let recall = tp as f64 / n_pos as f64;
        ap += (recall - prev_recall) * tp as f64 / (tp + fp) as f64;
        prev_recall = recall;
    }
    Some(ap)
}

/// ROC points `(false positive rate, true positive rate)` from `(0, 0)` to `(1, 1)`, one per
/// distinct score. Empty when either class is absent.
pub fn roc_curve(y: &[bool], p: &[f32]) -> Vec<(f64, f64)> {
    let (levels, n_pos, n_neg) = cumulative(y, p);
    if n_pos == 0 || n_neg == 0 {
        return Vec::new();
    }
    std::iter::once((0.0, 0.0))
        .chain(
            levels
                .iter()
                .map(|&(_, tp, fp)| (fp as f64 / n_neg as f64, tp as f64 / n_pos as f64)),
        )
        .collect()
}

/// Precision–recall points `(recall, precision)` by increasing recall, starting at `(0, 1)`,
/// one per distinct score. Empty when there are no positives.
pub fn pr_curve(y: &[bool], p: &[f32]) -> Vec<(f64, f64)> {
    let (levels, n_pos, _) = cumulative(y, p);
    if n_pos == 0 {
        return Vec::new();
    }
    std::iter::once((0.0, 1.0))
        .chain(
            levels
                .iter()
                .map(|&(_, tp, fp)| (tp as f64 / n_pos as f64, tp as f64 / (tp + fp) as f64)),
        )
        .collect()
}

/// The highest threshold whose recall is at least `target`. NaN when there are no positives
/// or `target > 1`.
pub fn threshold_for_recall(y: &[bool], p: &[f32], target: f64) -> f32 {
    let (levels, n_pos, _) = cumulative(y, p);
    if n_pos == 0 {
        return f32::NAN;
    }
    levels
        .iter()
        .find(|&&(_, tp, _)| tp as f64 / n_pos as f64 >= target)
        .map_or(f32::NAN, |l| l.0)
}

/// The lowest threshold (most recall) whose precision is at least `target`. NaN when no
/// threshold reaches it or there are no positives.
pub fn threshold_for_precision(y: &[bool], p: &[f32], target: f64) -> f32 {
    let (levels, _, _) = cumulative(y, p);
    levels
        .iter()
        .rev()
        .find(|&&(_, tp, fp)| tp > 0 && tp as f64 / (tp + fp) as f64 >= target)
        .map_or(f32::NAN, |l| l.0)
}

/// The threshold maximizing F1 (the highest one among ties). NaN when there are no positives.
pub fn best_f1_threshold(y: &[bool], p: &[f32]) -> f32 {
    let (levels, n_pos, _) = cumulative(y, p);
    let mut best = (f64::NEG_INFINITY, f32::NAN);
    if n_pos == 0 {
        return f32::NAN;
    }
    for &(s, tp, fp) in &levels {
        let f1 = 2.0 * tp as f64 / (tp + fp + n_pos) as f64;
        if f1 > best.0 {
            best = (f1, s);
        }
    }
    best.1
}

/// Indices of each class, each shuffled with `seed`.
fn shuffled_classes(y: &[bool], seed: u64) -> [Vec<usize>; 2] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut classes = [Vec::new(), Vec::new()];
    for (i, &label) in y.iter().enumerate() {
        classes[usize::from(label)].push(i);
    }
    for c in &mut classes {
        c.shuffle(&mut rng);
    }
    classes
}

/// Split row indices into `(train, test)`, each class contributing `round(n_c × test_frac)`
/// rows to test (`test_frac` is clamped to `[0, 1]`). Both lists are sorted.
pub fn stratified_split(y: &[bool], test_frac: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let frac = if test_frac.is_nan() {
        0.0
    } else {
        test_frac.clamp(0.0, 1.0)
    };
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for class in shuffled_classes(y, seed) {
        let n_test = (class.len() as f64 * frac).round() as usize;
        test.extend_from_slice(&class[..n_test]);
        train.extend_from_slice(&class[n_test..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// `k` disjoint test folds (sorted index lists) covering every row, each class dealt round-robin
/// so folds differ in size by at most one per class. `k == 0` gives no folds.
pub fn stratified_kfold(y: &[bool], k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut folds = vec![Vec::new(); k];
    if k == 0 {
        return folds;
    }
    let mut next = 0;
    for class in shuffled_classes(y, seed) {
        for i in class {
            folds[next].push(i);
            next = (next + 1) % k;
        }
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    folds
}

/// Root mean squared error of predictions `pred` against `truth`, `sqrt(mean((p - t)²))`, in
/// `f64`. Extra entries of the longer slice are ignored; NaN with no pairs.
pub fn rmse(pred: &[f32], truth: &[f32]) -> f64 {
    let n = pred.len().min(truth.len());
    if n == 0 {
        return f64::NAN;
    }
    let sse: f64 = pred
        .iter()
        .zip(truth)
        .map(|(&p, &t)| (f64::from(p) - f64::from(t)).powi(2))
        .sum();
    (sse / n as f64).sqrt()
}

/// One engine's term of NASA's asymmetric score (Saxena et al. 2008, the PHM08 challenge), for
/// the error `d = predicted - true` remaining life: `exp(-d / 13) - 1` when the prediction is
/// early (`d < 0`), `exp(d / 10) - 1` when it is late (`d >= 0`), which costs more because a
/// late prediction means a failure in service.
pub fn nasa_term(d: f64) -> f64 {
    if d < 0.0 {
        (-d / 13.0).exp() - 1.0
    } else {
        (d / 10.0).exp() - 1.0
    }
}

/// NASA's asymmetric score: the sum of [`nasa_term`] over the pairs (lower is better, 0 is
/// perfect; not a mean, so it grows with the number of engines). Extra entries of the longer
/// slice are ignored; 0 with no pairs.
pub fn nasa_score(pred: &[f32], truth: &[f32]) -> f64 {
    pred.iter()
        .zip(truth)
        .map(|(&p, &t)| nasa_term(f64::from(p) - f64::from(t)))
        .sum()
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
