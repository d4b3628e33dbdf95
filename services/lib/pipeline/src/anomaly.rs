//! Anomaly detection without failure labels (issue 19 item 1): an Isolation Forest
//! ([`dtwin_ml::IsolationForest`]) fitted on the readings taken as healthy, on the classifier's
//! own feature vectors (the twin's windows or a plant's profile), and its evaluation.
//!
//! - **Healthy readings** ([`Healthy`]): when the data has failures, the readings with no
//!   counted failure within the horizon (the classifier's negatives); otherwise, or when asked,
//!   each machine's first part of history (`--healthy-first`: readings, time-column units such
//!   as cycles, a duration, or a share).
//! - **Split by machine**, as the classifier's ([`crate::train`]): machines with index % 5 >= 2
//!   train the forest on their healthy readings, == 1 set the threshold, == 0 are held out for
//!   the figures. The threshold is the score that flags a share `rate` of the *validation*
//!   machines' healthy readings: set on the training rows themselves, a 1 % rate flagged
//!   anywhere from 6 % to 92 % of the readings near a failure across seeds on C-MAPSS (the
//!   cut sits where the training scores are densest, and those are in-sample).
//! - A reading is **anomalous** when its score is at or above the artifact's threshold (the
//!   smallest `f32` above the cut [`dtwin_ml::threshold_for_rate`] gives, which flags scores
//!   strictly above it).
//! - **Alerts** from anomaly scores follow the alerter's confirmation (2 of 3 readings) but a
//!   reading is quiet as soon as it is below the threshold ([`anomaly_policy`]): the
//!   classifier's hysteresis at probability 0.3 means nothing on this scale (healthy readings
//!   score about 0.4-0.5).
//!
//! Pure: values in, values out; the CLI reads the files.

use crate::dataset::Dataset;
use crate::evaluate::{events_at, metrics_at, thin, Metrics, CURVE_POINTS};
use crate::events::{AlertPolicy, EventReport};
use crate::plant::{PlantData, TimeKind};
use crate::train::{recipe_of, twin_split};
use dtwin_ml::artifact::AnomalyMeta;
use dtwin_ml::metrics;
use dtwin_ml::{
    threshold_for_rate, ForestParams, IsolationForest, IsolationParams, MlError, ModelArtifact,
    TrainingMeta, TrainingReference, DEFAULT_REFERENCE_BINS,
};
use serde::Serialize;
use serde_json::json;
use std::time::Instant;

/// The default false-alarm rate: the share of held-out healthy readings the threshold flags.
pub const DEFAULT_RATE: f64 = 0.01;

/// The share of each machine's history taken as healthy when the data has no failures and no
/// `--healthy-first` is given.
pub const DEFAULT_FIRST_SHARE: f64 = 0.25;

/// Which readings count as healthy.
#[derive(Debug, Clone, PartialEq)]
pub enum Healthy {
    /// Readings with no counted failure within the horizon (labelled negative).
    NoFailureAhead,
    /// Each machine's first `n` readings (0-based steps `< n`; cold ones are never rows).
    FirstReadings(usize),
    /// Each machine's readings less than `span` after its first one: time-column units for a
    /// plain-number time (cycles), seconds for instants and for twin telemetry (steps times
    /// the reading interval). `text` says it for people ("50 cycles", "2d").
    FirstTime {
        /// The span.
        span: f64,
        /// As given, with its unit.
        text: String,
    },
    /// The first share of each machine's readings (0..1).
    FirstShare(f64),
}

impl Healthy {
    /// For the artifact and the reports.
    pub fn describe(&self, data: &Dataset) -> String {
        match self {
            Self::NoFailureAhead => format!("readings with no {}", data.description),
            Self::FirstReadings(n) => format!("each machine's first {n} readings"),
            Self::FirstTime { text, .. } => format!("each machine's first {text}"),
            Self::FirstShare(s) => {
                format!("each machine's first {:.0} % of readings", s * 100.0)
            }
        }
    }
}

/// Parses `--healthy-first`: a number (readings on twin telemetry and exports without a time
/// column; time-column units such as cycles for a plain-number time column), a duration
/// (`2d`, `12h`: exports with instants, and twin telemetry through its reading interval) or
/// a share (`25%`). `time` is the export's time column, None for twin telemetry.
///
/// # Errors
/// Text that is none of these, a share outside (0, 100] %, a number for instants or a
/// duration for cycles or row order.
pub fn parse_first(text: &str, time: Option<TimeKind>) -> Result<Healthy, String> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        return match p.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v <= 100.0 => Ok(Healthy::FirstShare(v / 100.0)),
            _ => Err(format!(
                "--healthy-first {t}: a share must be above 0 % and at most 100 %"
            )),
        };
    }
    if let Ok(v) = t.parse::<f64>() {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("--healthy-first {t}: must be positive"));
        }
        return match time {
            Some(TimeKind::Instant) => Err(format!(
                "--healthy-first {t}: the time column holds instants, so give a duration such as {t}h or {t}d (or a share such as 25%)"
            )),
            Some(TimeKind::Number) => Ok(Healthy::FirstTime {
                span: v,
                text: format!("{t} cycles (time-column units)"),
            }),
            None | Some(TimeKind::Row) => {
                if v.fract() != 0.0 {
                    return Err(format!(
                        "--healthy-first {t}: a number of readings is a whole number"
                    ));
                }
                Ok(Healthy::FirstReadings(v as usize))
            }
        };
    }
    match (dtwin_profile::duration::parse(t), time) {
        (Some(d), None | Some(TimeKind::Instant)) if d.as_secs_f64() > 0.0 => {
            Ok(Healthy::FirstTime {
                span: d.as_secs_f64(),
                text: t.to_owned(),
            })
        }
        (Some(_), Some(TimeKind::Number | TimeKind::Row)) => Err(format!(
            "--healthy-first {t}: the data counts time in cycles or row order, so give a number such as 50 (or a share such as 25%)"
        )),
        _ => Err(format!(
            "--healthy-first {t} is neither a number (50), a duration (2d, 12h) nor a share (25%)"
        )),
    }
}

/// Each row's time since its machine's first reading, from a plant's export the data set was
/// made of (rows are `(machine, step)` of `plant`).
pub fn since_start(plant: &PlantData, data: &Dataset) -> Vec<f64> {
    data.machine
        .iter()
        .zip(&data.step)
        .map(|(&m, &s)| {
            let series = &plant.machines[m as usize];
            series.t[s as usize] - series.t[0]
        })
        .collect()
}

/// Which rows of `data` are healthy under `rule`. `since_start` (see [`since_start`]) is
/// needed by [`Healthy::FirstTime`] on a plant's export; without it the steps times the data's
/// reading interval are used (twin telemetry).
pub fn healthy_mask(data: &Dataset, rule: &Healthy, since_start: Option<&[f64]>) -> Vec<bool> {
    let n = data.y.len();
    match rule {
        Healthy::NoFailureAhead => data.y.iter().map(|&y| !y).collect(),
        Healthy::FirstReadings(k) => data.step.iter().map(|&s| (s as usize) < *k).collect(),
        Healthy::FirstTime { span, .. } => (0..n)
            .map(|i| {
                let t = since_start
                    .map_or_else(|| f64::from(data.step[i]) * data.seconds_per_step, |s| s[i]);
                t < *span
            })
            .collect(),
        Healthy::FirstShare(share) => (0..n)
            .map(|i| {
                let total = f64::from(data.readings[data.machine[i] as usize]);
                f64::from(data.step[i]) < share * total
            })
            .collect(),
    }
}

/// Alerts from anomaly scores: the alerter's confirmation, quiet below the threshold (see the
/// module doc).
pub fn anomaly_policy() -> AlertPolicy {
    AlertPolicy {
        // Capped at the threshold by the event view.
        resolve_below: 1.0,
        ..AlertPolicy::default()
    }
}

/// The artifact threshold from a rate's cut: the smallest score strictly above `cut`.
fn above(cut: f32) -> f32 {
    if cut >= 1.0 {
        1.0
    } else if cut <= 0.0 {
        f32::from_bits(1)
    } else {
        // Positive and finite: the next representable f32.
        f32::from_bits(cut.to_bits() + 1)
    }
}

fn flagged_share(scores: &[f32], threshold: f32) -> f64 {
    if scores.is_empty() {
        return f64::NAN;
    }
    scores.iter().filter(|&&s| s >= threshold).count() as f64 / scores.len() as f64
}

/// What identifies the artifact [`train`] writes.
#[derive(Debug, Clone)]
pub struct AnomalySpec {
    /// Model id.
    pub model_id: String,
    /// Version.
    pub version: String,
    /// Where the data came from.
    pub source: String,
    /// The false-alarm rate the threshold is set for on the validation machines' healthy
    /// readings.
    pub rate: f64,
    /// Isolation Forest parameters.
    pub params: IsolationParams,
}

/// Machines in each part of the split.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SplitMachines {
    /// Fit the forest (index % 5 >= 2).
    pub train: usize,
    /// Set the threshold (== 1).
    pub validation: usize,
    /// Held out for the figures (== 0).
    pub test: usize,
}

/// What [`train`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyTrainReport {
    /// Always `anomaly`.
    pub kind: &'static str,
    /// Which readings were taken as healthy.
    pub healthy: String,
    /// What the held-out figures are measured against (the data's label).
    pub label: String,
    /// The false-alarm rate asked for.
    pub rate: f64,
    /// The artifact's threshold (anomalous at or above).
    pub threshold: f64,
    /// Machines per part.
    pub machines: SplitMachines,
    /// Healthy readings of the training machines (the forest's rows).
    pub fit_rows: usize,
    /// Healthy readings of the validation machines (the threshold's rows).
    pub validation_healthy_rows: usize,
    /// Share of them flagged at the threshold (the rate, up to ties).
    pub validation_healthy_flagged: f64,
    /// Readings of the held-out machines.
    pub test_rows: usize,
    /// Healthy readings among them.
    pub test_healthy_rows: usize,
    /// Share of those flagged: the false-alarm rate on machines neither fit nor threshold saw.
    pub test_healthy_flagged: f64,
    /// Row figures on the held-out machines against the label (ROC-AUC and PR-AUC of the score,
    /// the confusion at the threshold), when they have both classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Metrics>,
    /// The event view on the held-out machines at the threshold, when the data has failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventReport>,
    /// Seconds to fit the forest.
    pub fit_seconds: f64,
}

/// Why anomaly training failed.
#[derive(Debug, thiserror::Error)]
pub enum AnomalyError {
    /// Too few machines to split.
    #[error("{0} machines: an anomaly model needs at least 3 (split by machine: one part fits the forest, one sets the threshold, one is held out for the figures); give the data of more machines")]
    TooFewMachines(usize),
    /// A part of the split has no healthy reading.
    #[error("no healthy reading ({rule}) on the {part} machines ({which}): {what}")]
    NoHealthy {
        /// The healthy rule.
        rule: String,
        /// training or validation.
        part: &'static str,
        /// Which machines those are.
        which: &'static str,
        /// What to do.
        what: String,
    },
    /// A rate outside [0, 1).
    #[error("--anomaly-rate {0}: the share of healthy readings to flag must be at least 0 and below 1 (e.g. 0.01)")]
    Rate(f64),
    /// The forest could not be fitted.
    #[error(transparent)]
    Fit(#[from] MlError),
}

/// Fits the Isolation Forest on the healthy readings (`healthy[i]` for row `i`) of the training
/// machines, sets the threshold on the validation machines' healthy readings and reports on
/// the held-out machines (see the module doc). `on_tree` is called per tree.
///
/// # Errors
/// [`AnomalyError`]: fewer than 3 machines, a part without healthy readings, a bad rate or
/// parameters.
pub fn train(
    data: &Dataset,
    healthy: &[bool],
    rule: &Healthy,
    spec: &AnomalySpec,
    on_tree: &(dyn Fn() + Sync),
) -> Result<(ModelArtifact, AnomalyTrainReport), AnomalyError> {
    if !(0.0..1.0).contains(&spec.rate) {
        return Err(AnomalyError::Rate(spec.rate));
    }
    let n_machines = data.n_machines();
    if n_machines < 3 {
        return Err(AnomalyError::TooFewMachines(n_machines));
    }
    let rule_text = rule.describe(data);
    let what = |part: &str| {
        match rule {
        Healthy::NoFailureAhead => format!(
            "every {part} reading is followed by a failure within the horizon; shorten --horizon, or take each machine's first part of history with --healthy-first N"
        ),
        _ => "their first part of history is shorter than the feature windows need (cold readings are never used): raise --healthy-first".to_owned(),
    }
    };
    let split = twin_split(data);
    let fit: Vec<usize> = split
        .train
        .iter()
        .copied()
        .filter(|&i| healthy[i])
        .collect();
    if fit.len() < 2 {
        return Err(AnomalyError::NoHealthy {
            rule: rule_text,
            part: "training",
            which: "index % 5 >= 2",
            what: what("training"),
        });
    }
    let val_healthy: Vec<usize> = split
        .validation
        .iter()
        .copied()
        .filter(|&i| healthy[i])
        .collect();
    if val_healthy.is_empty() {
        return Err(AnomalyError::NoHealthy {
            rule: rule_text,
            part: "validation",
            which: "index % 5 == 1",
            what: what("validation"),
        });
    }
    let (xf, _) = data.select(&fit);
    let started = Instant::now();
    let forest = IsolationForest::fit(xf.view(), &spec.params, on_tree)?;
    let fit_seconds = started.elapsed().as_secs_f64();

    let (xv, _) = data.select(&split.validation);
    let sv = forest.score(xv.view());
    let sv_healthy: Vec<f32> = split
        .validation
        .iter()
        .zip(&sv)
        .filter(|(&i, _)| healthy[i])
        .map(|(_, &s)| s)
        .collect();
    let threshold = above(threshold_for_rate(&sv_healthy, spec.rate)?);

    let test_rows = split.test;
    let (xt, yt) = data.select(&test_rows);
    let st = forest.score(xt.view());
    let st_healthy: Vec<f32> = test_rows
        .iter()
        .zip(&st)
        .filter(|(&i, _)| healthy[i])
        .map(|(_, &s)| s)
        .collect();
    let has_failures = data.failures.iter().any(|f| f.counted);
    let test =
        (yt.iter().any(|&y| y) && yt.iter().any(|&y| !y)).then(|| metrics_at(&yt, &st, threshold));
    let events = (has_failures && !test_rows.is_empty())
        .then(|| events_at(data, &test_rows, &st, threshold, &anomaly_policy()));
    let count = |rows: &[usize]| {
        let mut m: Vec<u32> = rows.iter().map(|&i| data.machine[i]).collect();
        m.sort_unstable();
        m.dedup();
        m.len()
    };
    let report = AnomalyTrainReport {
        kind: "anomaly",
        healthy: rule_text.clone(),
        label: data.description.clone(),
        rate: spec.rate,
        threshold: f64::from(threshold),
        machines: SplitMachines {
            train: count(&split.train),
            validation: count(&split.validation),
            test: count(&test_rows),
        },
        fit_rows: fit.len(),
        validation_healthy_rows: sv_healthy.len(),
        validation_healthy_flagged: flagged_share(&sv_healthy, threshold),
        test_rows: test_rows.len(),
        test_healthy_rows: st_healthy.len(),
        test_healthy_flagged: flagged_share(&st_healthy, threshold),
        test,
        events,
        fit_seconds,
    };
    let meta = TrainingMeta {
        rows: fit.len(),
        positives: 0,
        params: ForestParams::default(),
        source: spec.source.clone(),
        seconds: fit_seconds,
    };
    let anomaly = AnomalyMeta {
        healthy: rule_text.clone(),
        rate: spec.rate,
        params: spec.params.clone(),
    };
    let label = format!(
        "anomalous reading: Isolation Forest score at or above the threshold (trained on {rule_text}; the threshold flags {:.1} % of held-out machines' healthy readings)",
        spec.rate * 100.0
    );
    // Drift reference: every reading of the training machines (the fleet as it runs, not only
    // its healthy part); in place of the probability, the validation machines' scores.
    let (xa, _) = data.select(&split.train);
    let reference = TrainingReference::build(
        &data.names,
        xa.view(),
        &sv,
        DEFAULT_REFERENCE_BINS,
        "features: training machines (every reading); risk: anomaly score of the validation machines' readings",
    );
    let artifact = ModelArtifact::new_anomaly(
        &spec.model_id,
        data.names.clone(),
        f64::from(threshold),
        label,
        meta,
        anomaly,
        forest,
    )
    .with_version(&spec.version)
    .with_created_at(dtwin_schema::time_fmt::format(dtwin_schema::time_fmt::now()))
    .with_reference(reference)
    .with_metrics(json!({
        "test": report,
        "split": "by machine: index % 5 == 0 test, == 1 validation (threshold), rest train (healthy readings fit the forest)",
        "alert_policy": anomaly_policy(),
    }));
    let artifact = match recipe_of(data) {
        Some(r) => artifact.with_recipe(r),
        None => artifact,
    };
    Ok((artifact, report))
}

/// The model an [`AnomalyReport`] is of.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyModelInfo {
    /// Id.
    pub model_id: String,
    /// Version.
    pub version: String,
    /// Created.
    pub created_at: String,
    /// What anomalous means.
    pub label: String,
    /// Anomalous at or above this score.
    pub threshold: f64,
    /// Which readings it was trained on as healthy.
    pub healthy: String,
    /// The false-alarm rate its threshold was set for.
    pub rate: f64,
    /// Trees.
    pub trees: usize,
    /// Readings per tree (ψ).
    pub subsample: usize,
    /// Features.
    pub features: usize,
    /// Their hash.
    pub feature_set_hash: String,
    /// Training rows (healthy readings of the training machines).
    pub training_rows: usize,
    /// The training data.
    pub training_source: String,
}

/// One machine's last reading, scored, against its true remaining life.
#[derive(Debug, Clone, Serialize)]
pub struct UnitScore {
    /// The machine id.
    pub machine: String,
    /// Time of its last reading (as the file had it, a number: cycles or seconds).
    pub last_time: f64,
    /// The anomaly score.
    pub score: f32,
    /// At or above the model's threshold.
    pub anomalous: bool,
    /// The true remaining life.
    pub truth: f64,
    /// Whether it fails within the horizon asked (`truth <= within`).
    pub fails_within: bool,
}

/// An anomaly model's evaluation: its card.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyReport {
    /// Always `anomaly`.
    pub kind: &'static str,
    /// When (RFC 3339).
    pub evaluated_at: String,
    /// The model.
    pub model: AnomalyModelInfo,
    /// The data file.
    pub source: String,
    /// Machines in it.
    pub machines: usize,
    /// What was scored.
    pub evaluated_on: String,
    /// What a positive is in the figures below.
    pub label: String,
    /// Readings scored.
    pub rows: usize,
    /// Positive among them.
    pub positives: usize,
    /// Share of the scored readings at or above the threshold.
    pub flagged: f64,
    /// Share of the negative (healthy by the label) readings flagged: the false-alarm rate
    /// (NaN without negatives).
    pub healthy_flagged: f64,
    /// The score against the label: ROC-AUC, PR-AUC (NaN without both classes) and the
    /// confusion at the model's threshold.
    pub metrics: Metrics,
    /// The event view at the threshold (data with failures, every reading scored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventReport>,
    /// Per machine at its last reading (with a truth file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<UnitScore>,
    /// With a truth file: the remaining life at or below which a machine counts as failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within: Option<f64>,
    /// Its unit (the time column's: cycles, seconds, readings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// ROC curve (fpr, tpr), thinned.
    pub roc: Vec<(f64, f64)>,
    /// Precision-recall curve (recall, precision), thinned.
    pub pr: Vec<(f64, f64)>,
    /// The scores and labels, for the histogram.
    #[serde(skip)]
    pub scores: Vec<(f32, bool)>,
}

/// Why an anomaly evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum AnomalyEvalError {
    /// Not an anomaly model.
    #[error(transparent)]
    Kind(#[from] dtwin_ml::ArtifactError),
    /// The model and the data have different features.
    #[error("the model's feature set {model} differs from the data's {data} (read the data as the model was trained: its windows or its profile)")]
    FeatureSet {
        /// The model's.
        model: String,
        /// The data's.
        data: String,
    },
    /// The truth does not fit the data.
    #[error("{0}")]
    Truth(String),
    /// Nothing to score.
    #[error("no reading to score (too few readings per machine for the windows?)")]
    Empty,
}

fn model_info(model: &ModelArtifact) -> Result<AnomalyModelInfo, AnomalyEvalError> {
    let (forest, meta) = model.isolation()?;
    Ok(AnomalyModelInfo {
        model_id: model.model_id.clone(),
        version: model.version.clone(),
        created_at: model.created_at.clone(),
        label: model.label.clone(),
        threshold: model.threshold,
        healthy: meta.healthy.clone(),
        rate: meta.rate,
        trees: forest.n_trees(),
        subsample: forest.subsample(),
        features: model.feature_names.len(),
        feature_set_hash: model.feature_set_hash.clone(),
        training_rows: model.training.rows,
        training_source: model.training.source.clone(),
    })
}

/// The report's figures of `scores` against `y` at the model's threshold.
#[allow(clippy::too_many_arguments)]
fn report(
    info: AnomalyModelInfo,
    source: &str,
    machines: usize,
    evaluated_on: String,
    label: String,
    scores: &[f32],
    y: &[bool],
    events: Option<EventReport>,
    units: Vec<UnitScore>,
) -> AnomalyReport {
    let thr = info.threshold as f32;
    let negatives: Vec<f32> = scores
        .iter()
        .zip(y)
        .filter(|(_, &y)| !y)
        .map(|(&s, _)| s)
        .collect();
    AnomalyReport {
        kind: "anomaly",
        evaluated_at: dtwin_schema::time_fmt::format(dtwin_schema::time_fmt::now()),
        source: source.to_owned(),
        machines,
        evaluated_on,
        label,
        rows: y.len(),
        positives: y.iter().filter(|&&b| b).count(),
        flagged: flagged_share(scores, thr),
        healthy_flagged: flagged_share(&negatives, thr),
        metrics: metrics_at(y, scores, thr),
        events,
        units,
        within: None,
        unit: None,
        roc: thin(metrics::roc_curve(y, scores), CURVE_POINTS),
        pr: thin(metrics::pr_curve(y, scores), CURVE_POINTS),
        scores: scores.iter().copied().zip(y.iter().copied()).collect(),
        model: info,
    }
}

/// Scores `rows` of `data` (features as the model was trained on: its windows or profile)
/// against the data's label (a counted failure within the horizon); with failures, the event
/// view at the threshold ([`anomaly_policy`]). `evaluated_on` says which rows these are.
///
/// # Errors
/// [`AnomalyEvalError`]: not an anomaly model, other features, no rows.
pub fn evaluate_rows(
    model: &ModelArtifact,
    data: &Dataset,
    rows: &[usize],
    evaluated_on: &str,
    source: &str,
) -> Result<AnomalyReport, AnomalyEvalError> {
    let info = model_info(model)?;
    if data.feature_set != model.feature_set_hash {
        return Err(AnomalyEvalError::FeatureSet {
            model: model.feature_set_hash.clone(),
            data: data.feature_set.clone(),
        });
    }
    if rows.is_empty() {
        return Err(AnomalyEvalError::Empty);
    }
    let (forest, _) = model.isolation()?;
    let (x, y) = data.select(rows);
    let scores = forest.score(x.view());
    let has_failures = data.failures.iter().any(|f| f.counted);
    let events = has_failures.then(|| {
        events_at(
            data,
            rows,
            &scores,
            model.threshold as f32,
            &anomaly_policy(),
        )
    });
    let label = if has_failures {
        data.description.clone()
    } else {
        format!(
            "{} (the data has no failure: only the share flagged means something)",
            data.description
        )
    };
    Ok(report(
        info,
        source,
        data.n_machines(),
        evaluated_on.to_owned(),
        label,
        &scores,
        &y,
        events,
        Vec::new(),
    ))
}

/// Scores each machine's last reading of a plant's export (cold or not) and measures the
/// score against "fails within `within`" (true remaining life from `truth` <= `within`, in
/// the time column's units), as C-MAPSS's test engines are scored.
///
/// # Errors
/// [`AnomalyEvalError`]: not an anomaly model, other features, a truth that does not fit.
pub fn evaluate_last(
    model: &ModelArtifact,
    plant: &PlantData,
    profile: &dtwin_profile::Profile,
    truth: &crate::rul::Truth,
    within: f64,
    source: &str,
) -> Result<AnomalyReport, AnomalyEvalError> {
    let info = model_info(model)?;
    let (_, hash) = dtwin_windows::profile_feature_set(profile);
    if hash != model.feature_set_hash {
        return Err(AnomalyEvalError::FeatureSet {
            model: model.feature_set_hash.clone(),
            data: hash,
        });
    }
    let truths = truth.per_machine(plant).map_err(AnomalyEvalError::Truth)?;
    let thr = model.threshold as f32;
    let mut units = Vec::with_capacity(truths.len());
    for (mi, t, row) in crate::rul::last_readings(plant, profile) {
        let score = model.anomaly_score_row(&row)?;
        units.push(UnitScore {
            machine: plant.machines[mi].id.clone(),
            last_time: t,
            score,
            anomalous: score >= thr,
            truth: truths[mi],
            fails_within: truths[mi] <= within,
        });
    }
    if units.is_empty() {
        return Err(AnomalyEvalError::Empty);
    }
    let scores: Vec<f32> = units.iter().map(|u| u.score).collect();
    let y: Vec<bool> = units.iter().map(|u| u.fails_within).collect();
    let unit = crate::rul::unit_of(plant.time);
    let mut r = report(
        info,
        source,
        plant.machines.len(),
        "the last reading of each machine, against the truth file".to_owned(),
        format!("fails within {within} {unit} (true remaining life <= {within})"),
        &scores,
        &y,
        None,
        units,
    );
    r.within = Some(within);
    r.unit = Some(unit);
    Ok(r)
}

#[cfg(test)]
#[path = "anomaly_tests.rs"]
mod tests;
