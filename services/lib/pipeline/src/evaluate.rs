//! Evaluation: metrics at a threshold, thresholds for a target, cross-validation, the
//! event-level view, and the report a model card is made of.
//!
//! Splits never go by row on twin data: a machine's rows are correlated and would leak.
//! - Held-out part: twin data keeps machines with index % 5 == 0 apart (the split `train`
//!   uses); AI4I keeps a stratified 20 % (seed 42) apart.
//! - Cross-validation runs on the rest: twin data in folds of machines, each fold's model
//!   trained on the other machines' *earlier* readings (before 60 % of the time) and tested on
//!   the fold's machines' *later* readings, so it is split by machine and by time; AI4I in
//!   stratified folds of rows.
//! - A threshold for a target (precision, recall or event recall) is chosen on the
//!   cross-validation's out-of-fold scores, never on the held-out rows it is reported on.
//! - Cross-validation needs one machine (twin data) or one row (AI4I) per fold at least;
//!   a fold left with nothing to test is a [`CvError`], never a silently empty fold.
//!
//! Undefined figures (a ratio over zero rows, ROC-AUC without both classes, PR-AUC without
//! positives) are `NaN` in [`Metrics`]: `null` in the JSON, "–" on the model card.

use crate::dataset::Dataset;
use crate::events::{event_report, AlertPolicy, EventReport, MachineScores};
use crate::tabular::Tabular;
use dtwin_ml::metrics::{self, Confusion};
use dtwin_ml::{FloorRule, Forest, ForestParams, MlError, ModelArtifact, TrainingMeta};
use ndarray::Array2;
use serde::Serialize;

/// Share of each twin machine's readings (from the start) a CV fold trains on.
pub const CV_TIME_CUT: f64 = 0.6;
/// Curve points kept in reports.
pub const CURVE_POINTS: usize = 200;

/// Data to evaluate on.
// One per command, moved around whole: boxing the data set would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum EvalData {
    /// Twin telemetry through the feature service's window code.
    Twin(Dataset),
    /// AI4I rows.
    Tabular(Tabular),
}

impl EvalData {
    /// Feature matrix.
    pub fn x(&self) -> &Array2<f32> {
        match self {
            Self::Twin(d) => &d.x,
            Self::Tabular(t) => &t.x,
        }
    }

    /// Labels.
    pub fn y(&self) -> &[bool] {
        match self {
            Self::Twin(d) => &d.y,
            Self::Tabular(t) => &t.y,
        }
    }

    /// Feature names.
    pub fn names(&self) -> &[String] {
        match self {
            Self::Twin(d) => &d.names,
            Self::Tabular(t) => &t.names,
        }
    }

    /// Feature-set hash.
    pub fn feature_set(&self) -> &str {
        match self {
            Self::Twin(d) => &d.feature_set,
            Self::Tabular(t) => &t.feature_set,
        }
    }

    /// `(rest, held_out)` row indices (see the module doc).
    pub fn holdout(&self) -> (Vec<usize>, Vec<usize>) {
        match self {
            Self::Twin(d) => (d.rows_where(|m| m % 5 != 0), d.rows_where(|m| m % 5 == 0)),
            Self::Tabular(t) => metrics::stratified_split(&t.y, 0.2, 42),
        }
    }

    /// Rows as a matrix and labels.
    pub fn select(&self, rows: &[usize]) -> (Array2<f32>, Vec<bool>) {
        let y = self.y();
        (
            self.x().select(ndarray::Axis(0), rows),
            rows.iter().map(|&i| y[i]).collect(),
        )
    }

    /// A one-line description of the held-out split.
    pub fn holdout_name(&self) -> &'static str {
        match self {
            Self::Twin(_) => "machines with index % 5 == 0",
            Self::Tabular(_) => "stratified 20 %, seed 42",
        }
    }
}

/// Row-level metrics at one threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Decision threshold (`p >= threshold` alarms).
    pub threshold: f64,
    /// Rows.
    pub rows: usize,
    /// Positive rows.
    pub positives: usize,
    /// Accuracy.
    pub accuracy: f64,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Share of positive predictions that are wrong, `fp / (tp + fp)`.
    pub false_alarm_share: f64,
    /// ROC-AUC (threshold-free); NaN (`null` in JSON) when the rows lack a class
    /// ([`metrics::roc_auc`] is `None`).
    pub roc_auc: f64,
    /// PR-AUC, average precision (threshold-free); NaN (`null` in JSON) when the rows hold no
    /// positive ([`metrics::pr_auc`] is `None`).
    pub pr_auc: f64,
    /// True negatives.
    pub tn: usize,
    /// False positives.
    pub fp: usize,
    /// False negatives.
    pub fn_: usize,
    /// True positives.
    pub tp: usize,
}

/// Metrics of scores `p` against `y` at `threshold`. Figures that are undefined on these rows
/// are NaN (see [`Metrics`]).
pub fn metrics_at(y: &[bool], p: &[f32], threshold: f32) -> Metrics {
    let c: Confusion = metrics::confusion(y, p, threshold);
    Metrics {
        threshold: f64::from(threshold),
        rows: y.len(),
        positives: y.iter().filter(|&&b| b).count(),
        accuracy: c.accuracy(),
        precision: c.precision(),
        recall: c.recall(),
        f1: c.f1(),
        false_alarm_share: c.false_alarm_share(),
        roc_auc: metrics::roc_auc(y, p).unwrap_or(f64::NAN),
        pr_auc: metrics::pr_auc(y, p).unwrap_or(f64::NAN),
        tn: c.tn,
        fp: c.fp,
        fn_: c.fn_,
        tp: c.tp,
    }
}

/// How to choose a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum ThresholdTarget {
    /// The highest threshold with row recall at least this.
    Recall(f64),
    /// The lowest threshold with precision at least this.
    Precision(f64),
    /// The highest threshold with event recall (twin data) at least this.
    EventRecall(f64),
    /// The threshold with the best F1.
    BestF1,
}

impl std::fmt::Display for ThresholdTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Recall(r) => write!(f, "recall >= {r}"),
            Self::Precision(p) => write!(f, "precision >= {p}"),
            Self::EventRecall(r) => write!(f, "event recall >= {r}"),
            Self::BestF1 => f.write_str("best F1"),
        }
    }
}

/// The data set, when it has the event view (twin or plant data labelled by failures; not
/// AI4I's table, not a NOK label).
fn with_events(data: &EvalData) -> Option<&Dataset> {
    match data {
        EvalData::Twin(d) if d.target == crate::dataset::Target::Failure => Some(d),
        _ => None,
    }
}

/// Builds the per-machine scores of `rows` of a twin data set.
pub fn machine_scores<'a>(d: &'a Dataset, rows: &[usize], p: &[f32]) -> Vec<MachineScores<'a>> {
    let mut by_machine: std::collections::BTreeMap<u32, Vec<(u32, f32)>> = Default::default();
    for (&i, &pi) in rows.iter().zip(p) {
        by_machine
            .entry(d.machine[i])
            .or_default()
            .push((d.step[i], pi));
    }
    by_machine
        .into_iter()
        .map(|(m, mut scores)| {
            scores.sort_by_key(|s| s.0);
            MachineScores {
                readings: d.readings[m as usize],
                scores,
                failures: d.failures.iter().filter(|f| f.machine == m).collect(),
            }
        })
        .collect()
}

/// The event view of `rows` of a twin data set scored `p`, at `threshold`.
pub fn events_at(
    d: &Dataset,
    rows: &[usize],
    p: &[f32],
    threshold: f32,
    policy: &AlertPolicy,
) -> EventReport {
    event_report(
        &machine_scores(d, rows, p),
        threshold,
        d.labels.horizon as u32,
        d.seconds_per_step,
        policy,
    )
}

/// The threshold meeting `target` on scores `p` of `rows` (NaN when none does). Event
/// targets need twin data; on a table they fall back to row recall.
pub fn choose_threshold(
    data: &EvalData,
    rows: &[usize],
    p: &[f32],
    target: ThresholdTarget,
    policy: &AlertPolicy,
) -> f32 {
    let y: Vec<bool> = rows.iter().map(|&i| data.y()[i]).collect();
    match (target, data) {
        (ThresholdTarget::Recall(r), _) => metrics::threshold_for_recall(&y, p, r),
        (ThresholdTarget::Precision(q), _) => metrics::threshold_for_precision(&y, p, q),
        (ThresholdTarget::BestF1, _) => metrics::best_f1_threshold(&y, p),
        (ThresholdTarget::EventRecall(r), EvalData::Tabular(_)) => {
            metrics::threshold_for_recall(&y, p, r)
        }
        (ThresholdTarget::EventRecall(r), EvalData::Twin(d)) => {
            // Event recall is not monotone in the threshold in every case (alert merging), so
            // scan a grid from high to low and keep the first that meets the target.
            let scores = machine_scores(d, rows, p);
            (1..100)
                .rev()
                .map(|t| t as f32 / 100.0)
                .find(|&t| {
                    let e = event_report(
                        &scores,
                        t,
                        d.labels.horizon as u32,
                        d.seconds_per_step,
                        policy,
                    );
                    e.event_recall >= r
                })
                .unwrap_or(f32::NAN)
        }
    }
}

/// One cross-validation fold.
#[derive(Debug, Clone, Serialize)]
pub struct Fold {
    /// Training rows.
    pub train_rows: usize,
    /// Metrics on the fold's test rows at the model's threshold.
    pub metrics: Metrics,
    /// The event view (twin data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventReport>,
}

/// Mean and sample standard deviation over the folds where the figure is defined.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MeanSd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub sd: f64,
}

/// Mean and sample standard deviation of the finite values (a fold whose figure is undefined,
/// NaN, is left out). Mean NaN with no finite value, standard deviation NaN with fewer than two.
fn mean_sd(v: impl Iterator<Item = f64>) -> MeanSd {
    let v: Vec<f64> = v.filter(|x| x.is_finite()).collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        f64::NAN
    };
    MeanSd { mean, sd }
}

/// Cross-validation results.
#[derive(Debug, Clone, Serialize)]
pub struct CrossValidation {
    /// How the folds were made.
    pub split: String,
    /// Per fold.
    pub folds: Vec<Fold>,
    /// ROC-AUC over folds.
    pub roc_auc: MeanSd,
    /// PR-AUC over folds.
    pub pr_auc: MeanSd,
    /// F1 over folds.
    pub f1: MeanSd,
    /// Recall over folds.
    pub recall: MeanSd,
    /// Precision over folds.
    pub precision: MeanSd,
    /// Event recall over folds (twin data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_recall: Option<MeanSd>,
    /// Event false-alarm share over folds (twin data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_false_alarm_share: Option<MeanSd>,
}

/// Out-of-fold scores: `(rows, scores)` for the rows that were tested.
pub type Oof = (Vec<usize>, Vec<f32>);

/// Why cross-validation could not run.
#[derive(Debug, thiserror::Error)]
pub enum CvError {
    /// Twin data: fewer machines than folds, so a fold would have no machine to test.
    #[error("{machines} machines for {folds} folds of machines: every fold needs one (use fewer folds or more machines)")]
    TooFewMachines {
        /// Machines among the rows.
        machines: usize,
        /// Folds asked for.
        folds: usize,
    },
    /// AI4I: fewer rows than folds, so a fold would have no row to test.
    #[error("{rows} rows for {folds} folds: every fold needs one (use fewer folds or more rows)")]
    TooFewRows {
        /// Rows given.
        rows: usize,
        /// Folds asked for.
        folds: usize,
    },
    /// Twin data: a fold's machines have no row from [`CV_TIME_CUT`] of their readings on,
    /// so there is nothing to test.
    #[error("fold {fold} of {folds} has no rows to test (its machines have no readings after the time cut)")]
    EmptyFold {
        /// The fold (0-based).
        fold: usize,
        /// Folds.
        folds: usize,
    },
    /// Training a fold's model failed (e.g. its training part has one class or no rows).
    #[error("fold {fold} of {folds}: {source}")]
    Fit {
        /// The fold (0-based).
        fold: usize,
        /// Folds.
        folds: usize,
        /// Why.
        source: MlError,
    },
}

/// `(train, test)` row indices of each fold (see the module doc and [`cross_validate`]).
pub(crate) type FoldRows = Vec<(Vec<usize>, Vec<usize>)>;

/// The `k` folds of `rows` (`k` at least 2). Twin data: machine `m` (the `j`-th smallest
/// machine index among the rows) is tested in fold `j % k`; a fold trains on the other machines'
/// rows before [`CV_TIME_CUT`] of their readings and tests its own machines' rows from there on.
/// AI4I: stratified folds of rows; a fold trains on all the rows it does not test.
///
/// # Errors
/// [`CvError::TooFewMachines`] / [`CvError::TooFewRows`] when a fold would be empty;
/// [`CvError::EmptyFold`] when a fold's machines have no rows after the time cut.
pub(crate) fn fold_rows(data: &EvalData, rows: &[usize], k: usize) -> Result<FoldRows, CvError> {
    let k = k.max(2);
    let folds: FoldRows = match data {
        EvalData::Twin(d) => {
            let mut machines: Vec<u32> = rows.iter().map(|&i| d.machine[i]).collect();
            machines.sort_unstable();
            machines.dedup();
            if machines.len() < k {
                return Err(CvError::TooFewMachines {
                    machines: machines.len(),
                    folds: k,
                });
            }
            (0..k)
                .map(|f| {
                    let in_fold = |m: u32| machines.binary_search(&m).is_ok_and(|pos| pos % k == f);
                    let cut = |m: u32| (f64::from(d.readings[m as usize]) * CV_TIME_CUT) as u32;
                    let train = rows
                        .iter()
                        .copied()
                        .filter(|&i| !in_fold(d.machine[i]) && d.step[i] < cut(d.machine[i]))
                        .collect();
                    let test = rows
                        .iter()
                        .copied()
                        .filter(|&i| in_fold(d.machine[i]) && d.step[i] >= cut(d.machine[i]))
                        .collect();
                    (train, test)
                })
                .collect()
        }
        EvalData::Tabular(t) => {
            if rows.len() < k {
                return Err(CvError::TooFewRows {
                    rows: rows.len(),
                    folds: k,
                });
            }
            let y: Vec<bool> = rows.iter().map(|&i| t.y[i]).collect();
            metrics::stratified_kfold(&y, k, 42)
                .into_iter()
                .map(|fold| {
                    let test: Vec<usize> = fold.iter().map(|&j| rows[j]).collect();
                    let train = (0..rows.len())
                        .filter(|j| fold.binary_search(j).is_err())
                        .map(|j| rows[j])
                        .collect();
                    (train, test)
                })
                .collect()
        }
    };
    if let Some(fold) = folds.iter().position(|(_, test)| test.is_empty()) {
        return Err(CvError::EmptyFold { fold, folds: k });
    }
    Ok(folds)
}

/// How cross-validation trains and scores.
#[derive(Debug, Clone)]
pub struct CvSpec<'a> {
    /// Folds (at least 2).
    pub k: usize,
    /// Forest parameters.
    pub params: &'a ForestParams,
    /// Floor rules applied to the forest's probability.
    pub floor_rules: &'a [FloorRule],
    /// Threshold the fold metrics are reported at.
    pub threshold: f32,
    /// Alert policy of the event view.
    pub policy: AlertPolicy,
}

/// `k`-fold cross-validation on `rows` (see the module doc): `k` below 2 counts as 2.
/// Returns the folds and the out-of-fold scores. `on_fold` is called after each fold.
///
/// # Errors
/// [`CvError`] when a fold would have nothing to test (fewer machines or rows than folds) or
/// its training part cannot be fitted (a single class, no rows).
pub fn cross_validate(
    data: &EvalData,
    rows: &[usize],
    spec: &CvSpec<'_>,
    on_fold: &dyn Fn(),
) -> Result<(CrossValidation, Oof), CvError> {
    let (params, threshold, policy) = (spec.params, spec.threshold, &spec.policy);
    let k = spec.k.max(2);
    let folds = fold_rows(data, rows, k)?;
    let mut out = Vec::new();
    let (mut oof_rows, mut oof_p) = (Vec::new(), Vec::new());
    for (fold, (train, test)) in folds.into_iter().enumerate() {
        let (xa, ya) = data.select(&train);
        let forest =
            Forest::fit(xa.view(), &ya, params, &|| {}).map_err(|source| CvError::Fit {
                fold,
                folds: k,
                source,
            })?;
        let meta = TrainingMeta {
            rows: ya.len(),
            positives: ya.iter().filter(|&&b| b).count(),
            params: params.clone(),
            source: "cross-validation fold".into(),
            seconds: 0.0,
        };
        let fold_model = ModelArtifact::new("cv", data.names().to_vec(), 0.5, "", meta, forest)
            .with_floor_rules(spec.floor_rules.to_vec());
        let (xb, yb) = data.select(&test);
        let p = fold_model.predict(xb.view());
        let events = with_events(data).map(|d| events_at(d, &test, &p, threshold, policy));
        out.push(Fold {
            train_rows: train.len(),
            metrics: metrics_at(&yb, &p, threshold),
            events,
        });
        oof_rows.extend_from_slice(&test);
        oof_p.extend_from_slice(&p);
        on_fold();
    }
    let split = match data {
        EvalData::Twin(_) => format!(
            "{k} folds of machines; each trained on the other machines' first {:.0} % of readings, tested on the fold's machines' later readings",
            CV_TIME_CUT * 100.0
        ),
        EvalData::Tabular(_) => format!("{k} stratified folds of rows, seed 42"),
    };
    let m = |f: fn(&Metrics) -> f64| mean_sd(out.iter().map(|x| f(&x.metrics)));
    let ev = |f: fn(&EventReport) -> f64| {
        with_events(data)
            .is_some()
            .then(|| mean_sd(out.iter().filter_map(|x| x.events.as_ref().map(f))))
    };
    let cv = CrossValidation {
        split,
        roc_auc: m(|x| x.roc_auc),
        pr_auc: m(|x| x.pr_auc),
        f1: m(|x| x.f1),
        recall: m(|x| x.recall),
        precision: m(|x| x.precision),
        event_recall: ev(|e| e.event_recall),
        event_false_alarm_share: ev(|e| e.false_alarm_share),
        folds: out,
    };
    Ok((cv, (oof_rows, oof_p)))
}

/// Evenly thinned curve (first and last point kept).
pub fn thin(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 2 {
        return points;
    }
    let step = (points.len() - 1) as f64 / (max - 1) as f64;
    (0..max)
        .map(|i| points[((i as f64 * step).round() as usize).min(points.len() - 1)])
        .collect()
}

/// What evaluate should do.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Threshold target; None: only the model's threshold.
    pub target: Option<ThresholdTarget>,
    /// Cross-validation folds (0: none).
    pub folds: usize,
    /// Evaluate on every row instead of the held-out part (for data the model never saw).
    pub all_rows: bool,
    /// Alert policy of the event view.
    pub policy: AlertPolicy,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            target: None,
            folds: 5,
            all_rows: false,
            policy: AlertPolicy::default(),
        }
    }
}

/// A threshold chosen for a target and what it gives.
#[derive(Debug, Clone, Serialize)]
pub struct Chosen {
    /// The target.
    pub target: String,
    /// Where it was chosen.
    pub chosen_on: String,
    /// Metrics on the evaluated rows at that threshold.
    pub metrics: Metrics,
    /// Event view at that threshold (twin data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventReport>,
}

/// The model as the report describes it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// What it predicts: `classifier` (failures) or `quality` (NOK parts).
    pub kind: String,
    /// Id.
    pub model_id: String,
    /// Version.
    pub version: String,
    /// Created.
    pub created_at: String,
    /// What a positive means.
    pub label: String,
    /// The model's threshold.
    pub threshold: f64,
    /// Feature-set hash.
    pub feature_set_hash: String,
    /// Features.
    pub features: usize,
    /// Trees.
    pub trees: usize,
    /// Nodes.
    pub nodes: usize,
    /// Floor rules.
    pub floor_rules: Vec<String>,
    /// Training parameters.
    pub params: ForestParams,
    /// Training data.
    pub training_source: String,
    /// Training rows.
    pub training_rows: usize,
}

/// The data as the report describes it.
#[derive(Debug, Clone, Serialize)]
pub struct DataInfo {
    /// File or description.
    pub source: String,
    /// "twin telemetry" or "AI4I".
    pub kind: String,
    /// Rows in the file that were featurised and labelled.
    pub rows: usize,
    /// Of which positive.
    pub positives: usize,
    /// Rows evaluated on.
    pub evaluated_rows: usize,
    /// Which rows were evaluated on.
    pub evaluated_on: String,
    /// Machines (twin data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machines: Option<usize>,
    /// Label.
    pub label: String,
}

/// The full evaluation, the content of a model card.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// When.
    pub evaluated_at: String,
    /// The model.
    pub model: ModelInfo,
    /// The data.
    pub data: DataInfo,
    /// At the model's own threshold.
    pub at_model_threshold: Metrics,
    /// Event view at the model's threshold (twin data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventReport>,
    /// At a threshold chosen for a target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<Chosen>,
    /// Cross-validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_validation: Option<CrossValidation>,
    /// Feature importance, largest first.
    pub importance: Vec<(String, f64)>,
    /// ROC curve (fpr, tpr), thinned.
    pub roc: Vec<(f64, f64)>,
    /// Precision-recall curve (recall, precision), thinned.
    pub pr: Vec<(f64, f64)>,
}

/// Why evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The model and the data have different features.
    #[error("the model's feature set {model} differs from the data's {data} (train the model on this kind of data)")]
    FeatureSet {
        /// The model's.
        model: String,
        /// The data's.
        data: String,
    },
    /// Nothing to evaluate.
    #[error("no rows to evaluate (too few readings per machine for the window and horizon?)")]
    Empty,
    /// Cross-validation could not run (too few machines or rows for the folds, or a fold's
    /// training part with one class).
    #[error("cross-validation: {0}")]
    CrossValidation(#[from] CvError),
    /// The model is not a failure classifier (a rul model: see [`crate::rul`]).
    #[error("{0}")]
    Kind(#[from] dtwin_ml::ArtifactError),
}

/// Evaluates `model` on `data` (see the module doc). `on_fold` reports CV progress.
///
/// # Errors
/// [`EvalError`] on mismatched features, no rows, or cross-validation that cannot run.
pub fn evaluate(
    model: &ModelArtifact,
    data: &EvalData,
    source: &str,
    opts: &EvalOptions,
    on_fold: &dyn Fn(),
) -> Result<EvalReport, EvalError> {
    let forest = model.classifier()?;
    if model.feature_set_hash != data.feature_set() {
        return Err(EvalError::FeatureSet {
            model: model.feature_set_hash.clone(),
            data: data.feature_set().to_owned(),
        });
    }
    let (rest, held) = data.holdout();
    let eval_rows: Vec<usize> = if opts.all_rows {
        (0..data.y().len()).collect()
    } else {
        held
    };
    if eval_rows.is_empty() {
        return Err(EvalError::Empty);
    }
    let (x, y) = data.select(&eval_rows);
    let p = model.predict(x.view());
    let thr = model.threshold as f32;
    let events = with_events(data).map(|d| events_at(d, &eval_rows, &p, thr, &opts.policy));
    let spec = CvSpec {
        k: opts.folds,
        params: &model.training.params,
        floor_rules: &model.floor_rules,
        threshold: thr,
        policy: opts.policy,
    };
    let cv_rows: Vec<usize> = if opts.all_rows {
        (0..data.y().len()).collect()
    } else {
        rest
    };
    let cv = if opts.folds >= 2 {
        Some(cross_validate(data, &cv_rows, &spec, on_fold)?)
    } else {
        None
    };
    let chosen = match (opts.target, &cv) {
        (Some(target), Some((_, (oof_rows, oof_p)))) => {
            let t = choose_threshold(data, oof_rows, oof_p, target, &opts.policy);
            Some(Chosen {
                target: target.to_string(),
                chosen_on: "out-of-fold scores of the cross-validation".into(),
                metrics: metrics_at(&y, &p, t),
                events: with_events(data).map(|d| events_at(d, &eval_rows, &p, t, &opts.policy)),
            })
        }
        _ => None,
    };
    let mut importance: Vec<(String, f64)> = model
        .feature_names
        .iter()
        .cloned()
        .zip(forest.feature_importance().into_iter().map(f64::from))
        .collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    let all_y = data.y();
    let (kind, machines, label) = match data {
        EvalData::Twin(d) => (
            match d.recipe.as_deref() {
                Some(dtwin_ml::artifact::FeatureRecipe::Profile { .. }) => "plant export",
                _ => "twin telemetry",
            },
            Some(d.n_machines()),
            d.description.clone(),
        ),
        EvalData::Tabular(_) => ("AI4I", None, "Machine failure (this cycle)".to_owned()),
    };
    Ok(EvalReport {
        evaluated_at: dtwin_schema::time_fmt::format(dtwin_schema::time_fmt::now()),
        model: ModelInfo {
            kind: model.kind.as_str().to_owned(),
            model_id: model.model_id.clone(),
            version: model.version.clone(),
            created_at: model.created_at.clone(),
            label: model.label.clone(),
            threshold: model.threshold,
            feature_set_hash: model.feature_set_hash.clone(),
            features: model.feature_names.len(),
            trees: forest.n_trees(),
            nodes: forest.n_nodes(),
            floor_rules: model
                .floor_rules
                .iter()
                .map(|r| format!("{} > {}", r.feature, r.above))
                .collect(),
            params: model.training.params.clone(),
            training_source: model.training.source.clone(),
            training_rows: model.training.rows,
        },
        data: DataInfo {
            source: source.to_owned(),
            kind: kind.to_owned(),
            rows: all_y.len(),
            positives: all_y.iter().filter(|&&b| b).count(),
            evaluated_rows: eval_rows.len(),
            evaluated_on: if opts.all_rows {
                "every row".to_owned()
            } else {
                format!("held-out part: {}", data.holdout_name())
            },
            machines,
            label,
        },
        at_model_threshold: metrics_at(&y, &p, thr),
        events,
        chosen,
        cross_validation: cv.map(|c| c.0),
        importance,
        roc: thin(metrics::roc_curve(&y, &p), CURVE_POINTS),
        pr: thin(metrics::pr_curve(&y, &p), CURVE_POINTS),
    })
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
