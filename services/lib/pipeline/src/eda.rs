//! Exploratory data analysis of a data file: its statistics, as pure functions of the values.
//!
//! A [`Frame`] holds a file's numeric columns (missing values kept as `None`), the class of
//! every row and, for twin telemetry, each row's machine and step. On twin telemetry the class
//! is the label a model learns ([`LabelSpec`]: a counted failure within the next `horizon`
//! readings), so the plots show what tells apart the rows a model has to flag; on AI4I it is
//! the file's "Machine failure" column.
//!
//! Conventions: quartiles interpolate linearly between order statistics (NumPy's default,
//! Hyndman and Fan's type 7); the standard deviation is the sample one (n − 1); a statistic of
//! a column without values is NaN; non-finite values count as missing.

use crate::dataset::{Failure, LabelModes, LabelSpec};
use dtwin_schema::{FailureMode, Telemetry};
use dtwin_twin_sim::Ai4iRow;
use std::collections::{BTreeMap, HashMap};

/// One numeric column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Its name in the file.
    pub name: String,
    /// One value per row (`None`: missing).
    pub values: Vec<Option<f64>>,
}

/// Each row's machine and step (twin telemetry only: AI4I has no machine id).
#[derive(Debug, Clone, PartialEq)]
pub struct Machines {
    /// Machine ids by index, in order of first appearance.
    pub ids: Vec<String>,
    /// Each row's machine index.
    pub machine: Vec<u32>,
    /// Each row's step within its machine (0-based, file order).
    pub step: Vec<u32>,
    /// Every failure, in file order.
    pub failures: Vec<Failure>,
    /// Which failures the class counts.
    pub modes: LabelModes,
}

/// A data file as columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// "twin telemetry" or "AI4I".
    pub kind: String,
    /// The numeric (sensor) columns.
    pub columns: Vec<Column>,
    /// Missing values of the other (non-numeric) columns.
    pub other_missing: Vec<(String, usize)>,
    /// Each row's class.
    pub class: Vec<bool>,
    /// What the positive class means.
    pub class_label: String,
    /// Counts of categorical columns: `(what, [(value, rows)])`.
    pub tallies: Vec<(String, Vec<(String, usize)>)>,
    /// Machines and steps (twin telemetry).
    pub machines: Option<Machines>,
}

type Field = fn(&Telemetry) -> Option<f64>;
type Flag = fn(&Ai4iRow) -> bool;

/// The telemetry CSV's numeric columns.
const TELEMETRY_COLUMNS: [(&str, Field); 9] = [
    ("temperature_c", |t| t.temperature_c),
    ("ambient_temperature_c", |t| t.ambient_temperature_c),
    ("vibration_mm_s", |t| t.vibration_mm_s),
    ("pressure_bar", |t| t.pressure_bar),
    ("spindle_rpm", |t| t.spindle_rpm),
    ("torque_nm", |t| t.torque_nm),
    ("power_w", |t| t.power_w),
    ("tool_wear_min", |t| t.tool_wear_min),
    ("operating_hours", |t| t.operating_hours),
];

/// AI4I's numeric columns, as its header names them.
pub const AI4I_COLUMNS: [&str; 5] = [
    "Air temperature [K]",
    "Process temperature [K]",
    "Rotational speed [rpm]",
    "Torque [Nm]",
    "Tool wear [min]",
];

fn tally<'a>(values: impl Iterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    counts.into_iter().map(|(k, n)| (k.to_owned(), n)).collect()
}

impl Frame {
    /// Telemetry rows in file order, labelled by `spec` (its window is not used).
    pub fn from_telemetry(rows: &[Telemetry], spec: &LabelSpec) -> Frame {
        let mut index: HashMap<&str, u32> = HashMap::new();
        let mut ids = Vec::new();
        let mut per_machine: Vec<Vec<bool>> = Vec::new();
        let (mut machine, mut step, mut failures) = (Vec::new(), Vec::new(), Vec::new());
        for t in rows {
            let m = *index.entry(t.machine_id.as_str()).or_insert_with(|| {
                ids.push(t.machine_id.to_string());
                per_machine.push(Vec::new());
                (ids.len() - 1) as u32
            });
            let events = &mut per_machine[m as usize];
            let s = events.len() as u32;
            let failed = t.failure == Some(true);
            if failed {
                failures.push(Failure::twin(m, s, t.failure_mode, spec.modes));
            }
            events.push(
                (failed && spec.modes.counts(t.failure_mode))
                    || (spec.include_nok && t.quality_ok == Some(false)),
            );
            machine.push(m);
            step.push(s);
        }
        let ahead: Vec<Vec<bool>> = per_machine
            .iter()
            .map(|e| label_ahead(e, spec.horizon))
            .collect();
        let class = machine
            .iter()
            .zip(&step)
            .map(|(&m, &s)| ahead[m as usize][s as usize])
            .collect();
        let columns = TELEMETRY_COLUMNS
            .iter()
            .map(|(name, get)| Column {
                name: (*name).to_owned(),
                values: rows.iter().map(get).collect(),
            })
            .collect();
        let missing = |f: fn(&Telemetry) -> bool| rows.iter().filter(|t| f(t)).count();
        let failure_modes = tally(
            rows.iter()
                .filter(|t| t.failure == Some(true))
                .map(|t| t.failure_mode.map_or("unknown", FailureMode::as_str)),
        );
        Frame {
            kind: "twin telemetry".to_owned(),
            columns,
            other_missing: vec![
                (
                    "product_type".to_owned(),
                    missing(|t| t.product_type.is_none()),
                ),
                ("quality_ok".to_owned(), missing(|t| t.quality_ok.is_none())),
                ("failure".to_owned(), missing(|t| t.failure.is_none())),
            ],
            class,
            class_label: spec.describe(),
            tallies: vec![
                (
                    "product type".to_owned(),
                    tally(
                        rows.iter()
                            .map(|t| t.product_type.map_or("missing", |p| p.as_str())),
                    ),
                ),
                (
                    "part quality".to_owned(),
                    tally(rows.iter().map(|t| match t.quality_ok {
                        Some(true) => "OK",
                        Some(false) => "NOK",
                        None => "missing",
                    })),
                ),
                ("failures by mode".to_owned(), failure_modes),
            ],
            machines: Some(Machines {
                ids,
                machine,
                step,
                failures,
                modes: spec.modes,
            }),
        }
    }

    /// AI4I rows: each an independent machining cycle, classed by "Machine failure".
    pub fn from_ai4i(rows: &[Ai4iRow]) -> Frame {
        let getters: [fn(&Ai4iRow) -> f64; 5] = [
            |r| r.air_k,
            |r| r.process_k,
            |r| r.rpm,
            |r| r.torque_nm,
            |r| r.tool_wear_min,
        ];
        let columns = AI4I_COLUMNS
            .iter()
            .zip(getters)
            .map(|(name, get)| Column {
                name: (*name).to_owned(),
                values: rows.iter().map(|r| Some(get(r))).collect(),
            })
            .collect();
        let modes: [(&str, Flag); 5] = [
            ("TWF", |r| r.twf),
            ("HDF", |r| r.hdf),
            ("PWF", |r| r.pwf),
            ("OSF", |r| r.osf),
            ("RNF", |r| r.rnf),
        ];
        Frame {
            kind: "AI4I".to_owned(),
            columns,
            // The AI4I reader refuses a row with an empty field, so these are complete.
            other_missing: vec![("Type".to_owned(), 0), ("Machine failure".to_owned(), 0)],
            class: rows.iter().map(|r| r.failure).collect(),
            class_label: "Machine failure (this cycle)".to_owned(),
            tallies: vec![
                (
                    "product type".to_owned(),
                    tally(rows.iter().map(|r| r.product_type.as_str())),
                ),
                (
                    "failure modes (a row may have several)".to_owned(),
                    modes
                        .iter()
                        .map(|(name, f)| ((*name).to_owned(), rows.iter().filter(|r| f(r)).count()))
                        .collect(),
                ),
            ],
            machines: None,
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.class.len()
    }

    /// `(negative, positive)` rows.
    pub fn class_balance(&self) -> (usize, usize) {
        let pos = self.class.iter().filter(|&&c| c).count();
        (self.class.len() - pos, pos)
    }
}

/// `out[t]`: an event happens at one of the steps `t+1 ..= t+horizon` (those that exist).
pub fn label_ahead(events: &[bool], horizon: usize) -> Vec<bool> {
    let mut out = vec![false; events.len()];
    let mut next: Option<usize> = None;
    for t in (0..events.len()).rev() {
        out[t] = next.is_some_and(|n| n - t <= horizon);
        if events[t] {
            next = Some(t);
        }
    }
    out
}

/// Statistics of one column.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Values present.
    pub count: usize,
    /// Values missing.
    pub missing: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
    /// Smallest.
    pub min: f64,
    /// First quartile.
    pub q1: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q3: f64,
    /// Largest.
    pub max: f64,
}

fn present(values: &[Option<f64>]) -> Vec<f64> {
    values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect()
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The `q` quantile of sorted values, interpolating linearly (NaN when empty).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Count, missing, mean, standard deviation, min, quartiles and max of a column.
pub fn summarize(values: &[Option<f64>]) -> Summary {
    let v = sorted(present(values));
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let std = if n > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        f64::NAN
    };
    Summary {
        count: n,
        missing: values.len() - n,
        mean,
        std,
        min: v.first().copied().unwrap_or(f64::NAN),
        q1: quantile(&v, 0.25),
        median: quantile(&v, 0.5),
        q3: quantile(&v, 0.75),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

/// A box plot's numbers (Tukey: whiskers at the most extreme values within 1.5 IQR).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxStats {
    /// Values.
    pub n: usize,
    /// First quartile.
    pub q1: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q3: f64,
    /// Lower whisker.
    pub low: f64,
    /// Upper whisker.
    pub high: f64,
    /// Values beyond the whiskers.
    pub outliers: usize,
}

/// Box-plot numbers of the finite values (None when there are none).
pub fn box_stats(values: &[f64]) -> Option<BoxStats> {
    let v = sorted(values.iter().copied().filter(|x| x.is_finite()).collect());
    if v.is_empty() {
        return None;
    }
    let (q1, median, q3) = (quantile(&v, 0.25), quantile(&v, 0.5), quantile(&v, 0.75));
    let iqr = q3 - q1;
    let (lo_fence, hi_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let inside: Vec<f64> = v
        .iter()
        .copied()
        .filter(|&x| (lo_fence..=hi_fence).contains(&x))
        .collect();
    Some(BoxStats {
        n: v.len(),
        q1,
        median,
        q3,
        // The quartiles lie within the fences, so `inside` is never empty.
        low: inside.first().copied().unwrap_or(q1),
        high: inside.last().copied().unwrap_or(q3),
        outliers: v.len() - inside.len(),
    })
}

/// Counts of `values` in `bins` equal bins over `lo..=hi` (the last bin includes `hi`; values
/// outside are not counted).
pub fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<usize> {
    let mut out = vec![0; bins];
    let width = (hi - lo) / bins as f64;
    if bins == 0 || width.is_nan() || width <= 0.0 {
        return out;
    }
    for &v in values {
        if (lo..=hi).contains(&v) {
            out[(((v - lo) / width) as usize).min(bins - 1)] += 1;
        }
    }
    out
}

/// A column's histogram per class, over shared bins.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassHistogram {
    /// Left edge of the first bin.
    pub lo: f64,
    /// Right edge of the last bin.
    pub hi: f64,
    /// Counts of the negative class.
    pub negative: Vec<usize>,
    /// Counts of the positive class.
    pub positive: Vec<usize>,
}

/// The present values of a column, split by class: `(negative, positive)`.
pub fn by_class(values: &[Option<f64>], class: &[bool]) -> (Vec<f64>, Vec<f64>) {
    let (mut neg, mut pos) = (Vec::new(), Vec::new());
    for (v, &c) in values.iter().zip(class) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            if c {
                pos.push(v);
            } else {
                neg.push(v);
            }
        }
    }
    (neg, pos)
}

/// The histogram of a column per class (None without values). A constant column gets one bin
/// around its value.
pub fn class_histogram(
    values: &[Option<f64>],
    class: &[bool],
    bins: usize,
) -> Option<ClassHistogram> {
    let (neg, pos) = by_class(values, class);
    let all = || neg.iter().chain(&pos).copied();
    let lo = all().min_by(f64::total_cmp)?;
    let hi = all().max_by(f64::total_cmp)?;
    let (lo, hi, bins) = if hi > lo {
        (lo, hi, bins.max(1))
    } else {
        (lo - 0.5, hi + 0.5, 1)
    };
    Some(ClassHistogram {
        lo,
        hi,
        negative: histogram(&neg, lo, hi, bins),
        positive: histogram(&pos, lo, hi, bins),
    })
}

/// Pearson correlation over the rows where both values are present (NaN with fewer than two
/// such rows or a constant column).
pub fn pearson(a: &[Option<f64>], b: &[Option<f64>]) -> f64 {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if pairs.len() < 2 {
        return f64::NAN;
    }
    let n = pairs.len() as f64;
    let mx = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// The correlation matrix of the columns.
pub fn correlation(columns: &[Column]) -> Vec<Vec<f64>> {
    let k = columns.len();
    let mut m = vec![vec![f64::NAN; k]; k];
    for i in 0..k {
        for j in i..k {
            let r = pearson(&columns[i].values, &columns[j].values);
            m[i][j] = r;
            m[j][i] = r;
        }
    }
    m
}

/// A machine's readings around one of its failures.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureWindow {
    /// The machine's id.
    pub machine_id: String,
    /// The failure.
    pub failure: Failure,
    /// The frame's rows of that machine from `before` readings before the failure to `after`
    /// after it, by step.
    pub rows: Vec<usize>,
}

/// Up to `max` machines' readings leading into a failure, one failure per machine: failures
/// the class counts first, then those with `before` readings of history, then by machine and
/// step. Empty without machine ids (AI4I).
pub fn failure_windows(frame: &Frame, max: usize, before: u32, after: u32) -> Vec<FailureWindow> {
    let Some(m) = &frame.machines else {
        return Vec::new();
    };
    let mut candidates: Vec<&Failure> = m.failures.iter().collect();
    candidates.sort_by_key(|f| (!f.counted, f.step < before, f.machine, f.step));
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for f in candidates {
        if out.len() == max {
            break;
        }
        if seen.contains(&f.machine) {
            continue;
        }
        seen.push(f.machine);
        let (from, to) = (f.step.saturating_sub(before), f.step.saturating_add(after));
        let mut rows: Vec<usize> = (0..frame.rows())
            .filter(|&i| m.machine[i] == f.machine && (from..=to).contains(&m.step[i]))
            .collect();
        rows.sort_by_key(|&i| m.step[i]);
        out.push(FailureWindow {
            machine_id: m.ids[f.machine as usize].clone(),
            failure: f.clone(),
            rows,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_schema::{MachineId, ProductType};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn summary_matches_hand_computed_values() {
        let s = summarize(&[Some(4.0), None, Some(1.0), Some(3.0), Some(2.0)]);
        assert_eq!((s.count, s.missing), (4, 1));
        assert!(close(s.mean, 2.5));
        // Squares of deviations: 2.25 + 0.25 + 0.25 + 2.25 = 5, over n - 1 = 3.
        assert!(close(s.std, (5.0f64 / 3.0).sqrt()));
        assert_eq!((s.min, s.max), (1.0, 4.0));
        // Type 7: h = 3q, so q1 = 1 + 0.75, median = 2.5, q3 = 3.25.
        assert!(close(s.q1, 1.75) && close(s.median, 2.5) && close(s.q3, 3.25));
        let one = summarize(&[Some(7.0), Some(f64::NAN)]);
        assert_eq!((one.count, one.missing), (1, 1), "NaN counts as missing");
        assert!(one.std.is_nan() && one.q1 == 7.0 && one.q3 == 7.0);
        let none = summarize(&[None, None]);
        assert_eq!((none.count, none.missing), (0, 2));
        assert!(none.mean.is_nan() && none.min.is_nan() && none.median.is_nan());
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [10.0, 20.0, 30.0, 40.0, 50.0];
        assert_eq!(quantile(&v, 0.0), 10.0);
        assert_eq!(quantile(&v, 0.5), 30.0);
        assert_eq!(quantile(&v, 1.0), 50.0);
        assert!(close(quantile(&v, 0.1), 14.0)); // h = 0.4
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn box_whiskers_stop_at_the_fences() {
        let b = box_stats(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        // q1 2, q3 4, IQR 2: fences -1 and 7, so 100 is an outlier and the whisker stops at 4.
        assert_eq!((b.q1, b.median, b.q3), (2.0, 3.0, 4.0));
        assert_eq!((b.low, b.high, b.outliers, b.n), (1.0, 4.0, 1, 5));
        assert!(box_stats(&[f64::NAN]).is_none());
    }

    #[test]
    fn histogram_bins_are_half_open_but_the_last() {
        assert_eq!(
            histogram(&[0.0, 1.0, 2.0, 3.0, 4.0], 0.0, 4.0, 2),
            vec![2, 3]
        );
        assert_eq!(histogram(&[-1.0, 5.0], 0.0, 4.0, 4), vec![0; 4]);
        assert_eq!(histogram(&[1.0], 1.0, 1.0, 3), vec![0; 3]);
        let h = class_histogram(
            &[Some(0.0), Some(4.0), None, Some(2.0)],
            &[false, true, true, false],
            2,
        )
        .unwrap();
        assert_eq!((h.lo, h.hi), (0.0, 4.0));
        assert_eq!((h.negative, h.positive), (vec![1, 1], vec![0, 1]));
        let constant = class_histogram(&[Some(3.0), Some(3.0)], &[false, true], 10).unwrap();
        assert_eq!((constant.lo, constant.hi), (2.5, 3.5));
        assert_eq!((constant.negative, constant.positive), (vec![1], vec![1]));
        assert!(class_histogram(&[None], &[true], 5).is_none());
    }

    #[test]
    fn pearson_matches_hand_computed_values() {
        let x = |v: &[f64]| v.iter().map(|&a| Some(a)).collect::<Vec<_>>();
        assert!(close(
            pearson(&x(&[1.0, 2.0, 3.0]), &x(&[2.0, 4.0, 6.0])),
            1.0
        ));
        assert!(close(
            pearson(&x(&[1.0, 2.0, 3.0]), &x(&[3.0, 2.0, 1.0])),
            -1.0
        ));
        // Deviations (-1.5, -0.5, 0.5, 1.5) and (-1.5, 0.5, -0.5, 1.5): 4 / sqrt(5 * 5).
        let mut a = x(&[1.0, 2.0, 3.0, 4.0]);
        let mut b = x(&[1.0, 3.0, 2.0, 4.0]);
        assert!(close(pearson(&a, &b), 0.8));
        a.push(Some(100.0));
        b.push(None);
        assert!(close(pearson(&a, &b), 0.8), "incomplete pairs are left out");
        assert!(pearson(&x(&[1.0, 1.0]), &x(&[1.0, 2.0])).is_nan());
        let m = correlation(&[
            Column {
                name: "a".into(),
                values: a,
            },
            Column {
                name: "b".into(),
                values: b,
            },
        ]);
        assert!(close(m[0][0], 1.0) && close(m[0][1], 0.8) && close(m[1][0], 0.8));
    }

    #[test]
    fn labels_look_ahead_within_the_horizon() {
        let e = [false, false, true, false, false, false, true];
        assert_eq!(
            label_ahead(&e, 2),
            vec![true, true, false, false, true, true, false]
        );
        assert_eq!(label_ahead(&e, 0), vec![false; 7]);
        assert!(label_ahead(&[], 3).is_empty());
    }

    fn reading(id: &str, seq: u64, failure: Option<FailureMode>) -> Telemetry {
        let mut t = Telemetry::new(
            MachineId::parse(id).unwrap(),
            time::OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(seq as i64),
            seq,
        );
        t.temperature_c = (seq != 1).then_some(seq as f64);
        t.product_type = Some(ProductType::M);
        t.failure = Some(failure.is_some());
        t.failure_mode = failure;
        t
    }

    #[test]
    fn telemetry_frame_groups_machines_and_labels_ahead() {
        // Two machines interleaved as `dtwin generate` writes them; m-b fails at its step 2
        // (bearing: counted) and m-a at its step 3 (HDF: not counted by default).
        let rows = vec![
            reading("m-a", 0, None),
            reading("m-b", 0, None),
            reading("m-a", 1, None),
            reading("m-b", 1, None),
            reading("m-a", 2, None),
            reading("m-b", 2, Some(FailureMode::Bearing)),
            reading("m-a", 3, Some(FailureMode::Hdf)),
        ];
        let spec = LabelSpec {
            horizon: 1,
            ..LabelSpec::default()
        };
        let f = Frame::from_telemetry(&rows, &spec);
        let m = f.machines.as_ref().unwrap();
        assert_eq!(m.ids, vec!["m-a", "m-b"]);
        assert_eq!(m.machine, vec![0, 1, 0, 1, 0, 1, 0]);
        assert_eq!(m.step, vec![0, 0, 1, 1, 2, 2, 3]);
        assert_eq!(m.failures.len(), 2);
        assert_eq!(
            f.class,
            vec![false, false, false, true, false, false, false]
        );
        assert_eq!(f.class_balance(), (6, 1));
        assert_eq!(f.columns.len(), 9);
        assert_eq!(f.columns[0].values[2], None, "seq 1 has no temperature");
        assert_eq!(summarize(&f.columns[0].values).missing, 2);
        assert_eq!(summarize(&f.columns[2].values).count, 0, "no vibration");
        let modes = &f.tallies[2].1;
        assert_eq!(
            modes,
            &vec![("BEARING".to_owned(), 1), ("HDF".to_owned(), 1)]
        );
        // Every mode counted: m-a's HDF makes its step 2 positive too.
        let all = Frame::from_telemetry(
            &rows,
            &LabelSpec {
                modes: LabelModes::All,
                ..spec.clone()
            },
        );
        assert_eq!(all.class_balance(), (5, 2));
        // The counted failure comes first, then m-a's.
        let w = failure_windows(&f, 5, 1, 0);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].machine_id, "m-b");
        assert_eq!(w[0].rows, vec![3, 5]);
        assert_eq!(w[1].machine_id, "m-a");
        assert_eq!(w[1].rows, vec![4, 6]);
        assert_eq!(failure_windows(&f, 1, 1, 0).len(), 1);
    }

    #[test]
    fn ai4i_frame_has_no_machines() {
        let text = format!(
            "{}\n1,M1,M,298.1,308.6,1551,42.8,0,0,0,0,0,0,0\n2,L2,L,298.2,308.7,1408,46.3,3,1,0,1,0,0,0\n",
            dtwin_twin_sim::AI4I_HEADER
        );
        let rows = dtwin_twin_sim::read_ai4i_csv(&text).unwrap();
        let f = Frame::from_ai4i(&rows);
        assert_eq!(f.class, vec![false, true]);
        assert_eq!(f.columns[2].values, vec![Some(1551.0), Some(1408.0)]);
        assert!(f.machines.is_none());
        assert!(failure_windows(&f, 3, 10, 0).is_empty());
        assert_eq!(f.tallies[1].1[1], ("HDF".to_owned(), 1));
    }
}
