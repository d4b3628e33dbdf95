//! Remaining useful life (RUL) on a plant's export: the target, training the forest regressor,
//! and scoring against a truth file (issue 19 item 3).
//!
//! Features are the profile's window vectors, the ones the feature service computes live
//! ([`crate::plant::features`]), so a rul model sees what the stream would serve it. The target
//! of a warm reading is the time from it to its machine's next counted failure (a label-column
//! failure, an event, or with `run_to_failure` the machine's last reading), in the time
//! column's units (cycles for a plain number, seconds for instants, readings without a time
//! column), capped: early in a life the sensors do not tell how far away the failure is. A
//! reading with no failure ahead still has a known target when the data runs on for at least
//! the cap after it (the target is then the cap); otherwise it is left out.
//!
//! Pure: values in, values out; the CLI reads the files.

use crate::plant::{counts, Event, PlantData, TimeKind};
use crate::plots;
use dtwin_ml::artifact::{FeatureRecipe, RulMeta};
use dtwin_ml::metrics::{nasa_score, nasa_term, rmse};
use dtwin_ml::{
    ForestRegressor, MlError, ModelArtifact, RegressorParams, TrainingMeta, TrainingReference,
    DEFAULT_REFERENCE_BINS,
};
use dtwin_profile::Profile;
use dtwin_windows::{profile_feature_set, ProfileWindow};
use ndarray::Array2;
use serde::Serialize;
use std::collections::HashMap;

/// The default cap for a plain-number time column (cycles), as usual on C-MAPSS.
pub const DEFAULT_CAP_CYCLES: f64 = 125.0;

/// The unit a rul target is counted in, from what the time column holds.
pub fn unit_of(time: TimeKind) -> &'static str {
    match time {
        TimeKind::Instant => "seconds",
        TimeKind::Number => "cycles",
        TimeKind::Row => "readings",
    }
}

/// The cap of the target: a plain number (in the time column's units: cycles, readings), or a
/// duration (`30d`, `72h`) for times that are instants. None: [`DEFAULT_CAP_CYCLES`] for
/// numbers and rows; instants need a duration.
///
/// # Errors
/// A cap that is not positive, a duration for data counted in cycles or readings, a plain
/// number or no cap for instants.
pub fn cap_for(cap: Option<&str>, time: TimeKind) -> Result<f64, String> {
    let Some(text) = cap.map(str::trim) else {
        return match time {
            TimeKind::Instant => Err(
                "the time column holds instants: give the cap as a duration, e.g. --rul-cap 30d"
                    .to_owned(),
            ),
            _ => Ok(DEFAULT_CAP_CYCLES),
        };
    };
    if let Ok(v) = text.parse::<f64>() {
        return match time {
            _ if !(v.is_finite() && v > 0.0) => Err(format!("--rul-cap {text}: the cap must be positive")),
            TimeKind::Instant => Err(format!("--rul-cap {text}: the time column holds instants, so give a duration such as {text}h or {text}d")),
            _ => Ok(v),
        };
    }
    match (dtwin_profile::duration::parse(text), time) {
        (Some(d), TimeKind::Instant) if d.as_secs_f64() > 0.0 => Ok(d.as_secs_f64()),
        (Some(_), TimeKind::Instant) => Err(format!("--rul-cap {text}: the cap must be positive")),
        (Some(_), kind) => Err(format!("--rul-cap {text}: the data counts time in {} (a plain-number time column or row order), so give the cap as a number such as 125", unit_of(kind))),
        (None, _) => Err(format!("--rul-cap {text} is neither a number (125) nor a duration (30d, 72h)")),
    }
}

/// A labelled rul data set: warm readings with a known, capped target.
#[derive(Debug, Clone)]
pub struct RulData {
    /// Features, `rows × names.len()`.
    pub x: Array2<f32>,
    /// Targets (capped), in [`RulData::unit`].
    pub y: Vec<f32>,
    /// Each row's machine (index into `machine_ids`).
    pub machine: Vec<u32>,
    /// Feature names.
    pub names: Vec<String>,
    /// Their feature-set hash.
    pub feature_set: String,
    /// Machine ids, in order of first appearance.
    pub machine_ids: Vec<String>,
    /// The cap.
    pub cap: f64,
    /// The target's unit (see [`unit_of`]).
    pub unit: &'static str,
    /// Counted failures found (label column, events, run-to-failure ends).
    pub failures: usize,
}

/// The rul data set of `plant` through `profile` (see the module doc).
pub fn dataset(
    plant: &PlantData,
    profile: &Profile,
    events: &[Event],
    cap: f64,
    run_to_failure: bool,
) -> RulData {
    let (names, feature_set) = profile_feature_set(profile);
    let (k, a) = (profile.sensors.len(), profile.attributes.len());
    let mut by_machine: HashMap<&str, Vec<f64>> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| counts(profile, e.label.as_deref()))
    {
        by_machine.entry(e.machine.as_str()).or_default().push(e.t);
    }
    let (mut data, mut y, mut machine) = (Vec::new(), Vec::new(), Vec::new());
    let mut failures = 0;
    for (mi, s) in plant.machines.iter().enumerate() {
        let n = s.len();
        let Some(&last_t) = s.t.last() else { continue };
        let mut fails: Vec<f64> = s
            .labels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.as_deref().is_some_and(|l| counts(profile, Some(l))))
            .map(|(i, _)| s.t[i])
            .chain(by_machine.get(s.id.as_str()).into_iter().flatten().copied())
            .collect();
        if run_to_failure {
            fails.push(last_t);
        }
        fails.sort_by(f64::total_cmp);
        fails.dedup();
        failures += fails.len();
        let mut window = ProfileWindow::new(profile);
        let mut next = 0;
        for i in 0..n {
            let f = window.update(
                profile,
                s.t[i],
                &s.values[i * k..(i + 1) * k],
                &s.attrs[i * a..(i + 1) * a],
            );
            while next < fails.len() && fails[next] < s.t[i] {
                next += 1;
            }
            if f.cold {
                continue;
            }
            let target = match fails.get(next) {
                Some(&tf) => (tf - s.t[i]).min(cap),
                // No failure ahead: known only when the data runs on past the cap.
                None if last_t - s.t[i] >= cap => cap,
                None => continue,
            };
            data.extend(f.values.iter().map(|&v| v as f32));
            y.push(target as f32);
            machine.push(mi as u32);
        }
    }
    let width = names.len();
    // The vector length is rows × width by construction.
    let x = Array2::from_shape_vec((y.len(), width), data).expect("rows have the feature width");
    RulData {
        x,
        y,
        machine,
        names,
        feature_set,
        machine_ids: plant.machines.iter().map(|s| s.id.clone()).collect(),
        cap,
        unit: unit_of(plant.time),
        failures,
    }
}

impl RulData {
    fn select(&self, rows: &[usize]) -> (Array2<f32>, Vec<f32>) {
        let x = self.x.select(ndarray::Axis(0), rows);
        (x, rows.iter().map(|&i| self.y[i]).collect())
    }
}

/// Every machine's last reading through the profile's windows (cold or not: a short test
/// series still gets a prediction): `(machine index, time, features)`.
pub fn last_readings(plant: &PlantData, profile: &Profile) -> Vec<(usize, f64, Vec<f32>)> {
    let (k, a) = (profile.sensors.len(), profile.attributes.len());
    let mut out = Vec::with_capacity(plant.machines.len());
    for (mi, s) in plant.machines.iter().enumerate() {
        let mut window = ProfileWindow::new(profile);
        let mut last = None;
        for i in 0..s.len() {
            let f = window.update(
                profile,
                s.t[i],
                &s.values[i * k..(i + 1) * k],
                &s.attrs[i * a..(i + 1) * a],
            );
            last = Some((mi, s.t[i], f.values.iter().map(|&v| v as f32).collect()));
        }
        out.extend(last);
    }
    out
}

/// Error figures of predictions against truths.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RulMetrics {
    /// Pairs scored.
    pub n: usize,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Mean of predicted − true (positive: late, the costly side).
    pub mean_error: f64,
    /// NASA's asymmetric score, summed over the pairs (lower is better).
    pub nasa_score: f64,
}

impl RulMetrics {
    /// The figures of `pred` against `truth`.
    pub fn of(pred: &[f32], truth: &[f32]) -> Self {
        let n = pred.len().min(truth.len());
        let d: Vec<f64> = pred
            .iter()
            .zip(truth)
            .map(|(&p, &t)| f64::from(p) - f64::from(t))
            .collect();
        let mean = |f: &dyn Fn(f64) -> f64| {
            if n == 0 {
                f64::NAN
            } else {
                d.iter().map(|&e| f(e)).sum::<f64>() / n as f64
            }
        };
        Self {
            n,
            rmse: rmse(pred, truth),
            mae: mean(&f64::abs),
            mean_error: mean(&|e| e),
            nasa_score: nasa_score(pred, truth),
        }
    }
}

/// What [`train`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RulTrainReport {
    /// Always `rul`.
    pub kind: &'static str,
    /// Training rows (all machines; the shipped forest is fitted on them).
    pub rows: usize,
    /// Machines.
    pub machines: usize,
    /// Counted failures in the data.
    pub failures: usize,
    /// The cap and unit of the target.
    pub cap: f64,
    /// The unit.
    pub unit: &'static str,
    /// Machines held out for the figures below (every fifth in file order).
    pub held_out_machines: usize,
    /// Held-out rows.
    pub held_out_rows: usize,
    /// The figures of a forest fitted on the other machines, on every held-out row (capped
    /// targets).
    pub held_out: RulMetrics,
    /// Seconds to fit the shipped forest.
    pub fit_seconds: f64,
}

/// Why rul training failed.
#[derive(Debug, thiserror::Error)]
pub enum RulError {
    /// Too few machines to hold some out.
    #[error("{0} machines with labelled rows; the held-out figures need at least 2")]
    TooFewMachines(usize),
    /// The forest could not be fitted.
    #[error(transparent)]
    Fit(#[from] MlError),
}

/// What identifies the artifact [`train`] writes.
#[derive(Debug, Clone)]
pub struct RulSpec {
    /// Model id.
    pub model_id: String,
    /// Version.
    pub version: String,
    /// Data source (file).
    pub source: String,
    /// The recipe that rebuilds the features (the profile, the columns).
    pub recipe: FeatureRecipe,
    /// Forest parameters.
    pub params: RegressorParams,
}

/// Fits a forest on the machines but every fifth (file order) and reports its figures on
/// those, then fits the shipped forest on every machine; the artifact carries the held-out
/// figures as its metrics. `on_tree` is called per tree of both fits.
///
/// # Errors
/// [`RulError`] with fewer than 2 machines or when the forest cannot be fitted.
pub fn train(
    data: &RulData,
    spec: &RulSpec,
    on_tree: &(dyn Fn() + Sync),
) -> Result<(ModelArtifact, RulTrainReport), RulError> {
    let mut seen: Vec<u32> = data.machine.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() < 2 {
        return Err(RulError::TooFewMachines(seen.len()));
    }
    let held: Vec<u32> = seen.iter().copied().skip(4).step_by(5).collect();
    let held: Vec<u32> = if held.is_empty() {
        vec![seen[seen.len() - 1]]
    } else {
        held
    };
    let (test, fit): (Vec<usize>, Vec<usize>) =
        (0..data.y.len()).partition(|&i| held.contains(&data.machine[i]));
    let (xa, ya) = data.select(&fit);
    let (xb, yb) = data.select(&test);
    let f = ForestRegressor::fit(xa.view(), &ya, &spec.params, on_tree)?;
    let held_pred = f.predict(xb.view());
    let held_out = RulMetrics::of(&held_pred, &yb);
    let started = std::time::Instant::now();
    let forest = ForestRegressor::fit(data.x.view(), &data.y, &spec.params, on_tree)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let report = RulTrainReport {
        kind: "rul",
        rows: data.y.len(),
        machines: seen.len(),
        failures: data.failures,
        cap: data.cap,
        unit: data.unit,
        held_out_machines: held.len(),
        held_out_rows: test.len(),
        held_out,
        fit_seconds,
    };
    let meta = TrainingMeta {
        rows: data.y.len(),
        positives: 0,
        params: dtwin_ml::ForestParams::default(),
        source: spec.source.clone(),
        seconds: fit_seconds,
    };
    let rul = RulMeta {
        cap: data.cap,
        unit: data.unit.to_owned(),
        params: spec.params.clone(),
    };
    let label = format!(
        "remaining useful life: {} to the next failure, capped at {}",
        data.unit, data.cap
    );
    let artifact = ModelArtifact::new_rul(
        &spec.model_id,
        data.names.clone(),
        label,
        meta,
        rul,
        forest,
    )
    .with_version(&spec.version)
    .with_created_at(dtwin_schema::time_fmt::format(dtwin_schema::time_fmt::now()))
    .with_recipe(spec.recipe.clone())
    // Drift reference, as the classifier's: the training rows' features; in place of the
    // probability, the remaining life predicted for the held-out machines' rows.
    .with_reference(TrainingReference::build(
        &data.names,
        data.x.view(),
        &held_pred,
        DEFAULT_REFERENCE_BINS,
        "features: training machines; risk: predicted remaining life of the held-out machines",
    ))
    .with_metrics(
        serde_json::json!({ "held_out": report.held_out, "held_out_machines": held.len() }),
    );
    Ok((artifact, report))
}

/// The true remaining life of test machines, one line each: either a number per line in the
/// order the machines first appear in the data (NASA's `RUL_FD001.txt`), or `machine value`
/// (comma or whitespace between; a header line is skipped).
///
/// # Errors
/// A line that is neither, or a negative or non-finite value.
pub fn parse_truth(text: &str, file: &str) -> Result<Truth, String> {
    let (mut ordered, mut named) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        let value = |s: &str| -> Result<f64, String> {
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                _ => Err(format!(
                    "{file}:{}: {s:?} is not a remaining life (a number >= 0)",
                    i + 1
                )),
            }
        };
        match fields.as_slice() {
            [v] => ordered.push(value(v)?),
            [id, v] => match value(v) {
                Ok(v) => named.push((id.to_string(), v)),
                Err(_) if i == 0 && named.is_empty() => {} // a header
                Err(e) => return Err(e),
            },
            _ => {
                return Err(format!(
                    "{file}:{}: expected one number (NASA's RUL file) or `machine value`",
                    i + 1
                ))
            }
        }
    }
    match (ordered.is_empty(), named.is_empty()) {
        (false, true) => Ok(Truth::Ordered(ordered)),
        (true, false) => Ok(Truth::Named(named)),
        (true, true) => Err(format!("{file} holds no remaining life")),
        (false, false) => Err(format!(
            "{file} mixes lines with one number and lines with a machine and a number"
        )),
    }
}

/// A truth file's contents (see [`parse_truth`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    /// One value per machine, in the data's machine order.
    Ordered(Vec<f64>),
    /// Values by machine id.
    Named(Vec<(String, f64)>),
}

impl Truth {
    /// The truth of each machine of `plant`, in its order.
    ///
    /// # Errors
    /// An ordered file with another count of values, or a named file missing a machine.
    pub fn per_machine(&self, plant: &PlantData) -> Result<Vec<f64>, String> {
        let n = plant.machines.len();
        match self {
            Truth::Ordered(v) if v.len() == n => Ok(v.clone()),
            Truth::Ordered(v) => Err(format!(
                "the truth file has {} values but the data has {n} machines (one value per machine, in the order they first appear)",
                v.len()
            )),
            Truth::Named(pairs) => {
                let map: HashMap<&str, f64> =
                    pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                plant
                    .machines
                    .iter()
                    .map(|s| {
                        map.get(s.id.as_str()).copied().ok_or_else(|| {
                            format!("the truth file has no value for machine {}", s.id)
                        })
                    })
                    .collect()
            }
        }
    }
}

/// One machine's prediction at its last reading against the truth.
#[derive(Debug, Clone, Serialize)]
pub struct UnitError {
    /// The machine id.
    pub machine: String,
    /// Time of its last reading (as the file had it, a number: cycles or seconds).
    pub last_time: f64,
    /// Predicted remaining life.
    pub predicted: f32,
    /// The interval's low end (5 % of the trees).
    pub lo: f32,
    /// Its high end (95 % of the trees).
    pub hi: f32,
    /// The true remaining life.
    pub truth: f32,
    /// predicted − true (positive: late).
    pub error: f32,
}

/// One machine's errors over all its labelled readings.
#[derive(Debug, Clone, Serialize)]
pub struct MachineErrors {
    /// The machine id.
    pub machine: String,
    /// Its figures.
    pub metrics: RulMetrics,
}

/// A rul model's evaluation: its card.
#[derive(Debug, Clone, Serialize)]
pub struct RulReport {
    /// Always `rul`.
    pub kind: &'static str,
    /// When (RFC 3339).
    pub evaluated_at: String,
    /// The model.
    pub model: RulModelInfo,
    /// The data file.
    pub source: String,
    /// Machines in it.
    pub machines: usize,
    /// What was scored.
    pub evaluated_on: String,
    /// The figures against the truth as given.
    pub metrics: RulMetrics,
    /// The figures against the truth capped at the model's cap (as some papers score).
    pub metrics_capped_truth: RulMetrics,
    /// Share of truths inside the 5-95 % tree interval (last-reading scoring only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within_interval: Option<f64>,
    /// Per machine at its last reading (with a truth file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<UnitError>,
    /// Per machine over its labelled readings (without a truth file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_machine: Vec<MachineErrors>,
    /// `(true, predicted)` of up to 5,000 scored readings, for the chart.
    #[serde(skip)]
    pub pairs: Vec<(f32, f32)>,
}

/// The model a [`RulReport`] is of.
#[derive(Debug, Clone, Serialize)]
pub struct RulModelInfo {
    /// Id.
    pub model_id: String,
    /// Version.
    pub version: String,
    /// Created.
    pub created_at: String,
    /// What it predicts.
    pub label: String,
    /// Features.
    pub features: usize,
    /// Trees.
    pub trees: usize,
    /// The target's cap.
    pub cap: f64,
    /// The target's unit.
    pub unit: String,
    /// Training rows.
    pub training_rows: usize,
    /// The training data.
    pub training_source: String,
}

/// Why a rul evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum RulEvalError {
    /// Not a rul model.
    #[error(transparent)]
    Kind(#[from] dtwin_ml::ArtifactError),
    /// The model and the data have different features.
    #[error("the model's feature set {model} differs from the data's {data} (read the data through the profile the model was trained with)")]
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
    #[error("no labelled reading to score (no failure in the data, and no machine runs on for the cap after a reading)")]
    Empty,
}

fn model_info(model: &ModelArtifact) -> Result<RulModelInfo, RulEvalError> {
    let (r, meta) = model.regressor()?;
    Ok(RulModelInfo {
        model_id: model.model_id.clone(),
        version: model.version.clone(),
        created_at: model.created_at.clone(),
        label: model.label.clone(),
        features: model.feature_names.len(),
        trees: r.n_trees(),
        cap: meta.cap,
        unit: meta.unit.clone(),
        training_rows: model.training.rows,
        training_source: model.training.source.clone(),
    })
}

fn check_features(model: &ModelArtifact, profile: &Profile) -> Result<(), RulEvalError> {
    let (_, hash) = profile_feature_set(profile);
    if hash != model.feature_set_hash {
        return Err(RulEvalError::FeatureSet {
            model: model.feature_set_hash.clone(),
            data: hash,
        });
    }
    Ok(())
}

fn capped(truth: &[f32], cap: f64) -> Vec<f32> {
    truth.iter().map(|&t| t.min(cap as f32)).collect()
}

/// Scores each machine's last reading against `truth` (see the module doc).
///
/// # Errors
/// [`RulEvalError`]: a classifier, other features, or a truth that does not fit the machines.
pub fn evaluate_last(
    model: &ModelArtifact,
    plant: &PlantData,
    profile: &Profile,
    truth: &Truth,
    source: &str,
) -> Result<RulReport, RulEvalError> {
    let info = model_info(model)?;
    check_features(model, profile)?;
    let n = plant.machines.len();
    let truths = truth.per_machine(plant).map_err(RulEvalError::Truth)?;
    let mut units = Vec::with_capacity(n);
    for (mi, t, row) in last_readings(plant, profile) {
        let (predicted, lo, hi) = model.predict_rul_row(&row)?;
        let truth = truths[mi] as f32;
        units.push(UnitError {
            machine: plant.machines[mi].id.clone(),
            last_time: t,
            predicted,
            lo,
            hi,
            truth,
            error: predicted - truth,
        });
    }
    if units.is_empty() {
        return Err(RulEvalError::Empty);
    }
    let pred: Vec<f32> = units.iter().map(|u| u.predicted).collect();
    let truth: Vec<f32> = units.iter().map(|u| u.truth).collect();
    let inside = units
        .iter()
        .filter(|u| u.lo <= u.truth && u.truth <= u.hi)
        .count();
    Ok(RulReport {
        kind: "rul",
        evaluated_at: dtwin_schema::time_fmt::format(dtwin_schema::time_fmt::now()),
        source: source.to_owned(),
        machines: n,
        evaluated_on: "the last reading of each machine, against the truth file".to_owned(),
        metrics: RulMetrics::of(&pred, &truth),
        metrics_capped_truth: RulMetrics::of(&pred, &capped(&truth, info.cap)),
        within_interval: Some(inside as f64 / units.len() as f64),
        pairs: units.iter().map(|u| (u.truth, u.predicted)).collect(),
        model: info,
        units,
        per_machine: Vec::new(),
    })
}

/// Scores every labelled reading of data with failures (see [`dataset`]) against its capped
/// target.
///
/// # Errors
/// [`RulEvalError`]: a classifier, other features, or no labelled reading.
pub fn evaluate_rows(
    model: &ModelArtifact,
    data: &RulData,
    source: &str,
) -> Result<RulReport, RulEvalError> {
    let info = model_info(model)?;
    if data.feature_set != model.feature_set_hash {
        return Err(RulEvalError::FeatureSet {
            model: model.feature_set_hash.clone(),
            data: data.feature_set.clone(),
        });
    }
    if data.y.is_empty() {
        return Err(RulEvalError::Empty);
    }
    let (r, _) = model.regressor()?;
    let pred = r.predict(data.x.view());
    let mut per_machine = Vec::new();
    for (mi, id) in data.machine_ids.iter().enumerate() {
        let rows: Vec<usize> = (0..data.y.len())
            .filter(|&i| data.machine[i] as usize == mi)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let p: Vec<f32> = rows.iter().map(|&i| pred[i]).collect();
        let t: Vec<f32> = rows.iter().map(|&i| data.y[i]).collect();
        per_machine.push(MachineErrors {
            machine: id.clone(),
            metrics: RulMetrics::of(&p, &t),
        });
    }
    Ok(RulReport {
        kind: "rul",
        evaluated_at: dtwin_schema::time_fmt::format(dtwin_schema::time_fmt::now()),
        source: source.to_owned(),
        machines: data.machine_ids.len(),
        evaluated_on: format!(
            "every warm reading with a known remaining life (capped at {} {})",
            data.cap, data.unit
        ),
        metrics: RulMetrics::of(&pred, &data.y),
        metrics_capped_truth: RulMetrics::of(&pred, &capped(&data.y, info.cap)),
        within_interval: None,
        model: info,
        units: Vec::new(),
        per_machine,
        pairs: data
            .y
            .iter()
            .zip(&pred)
            .step_by(data.y.len().div_ceil(5000).max(1))
            .map(|(&t, &p)| (t, p))
            .collect(),
    })
}

/// The card's chart: with a truth file, predicted (with the tree interval) and true life of
/// every machine sorted by true life; otherwise predicted against true for the scored readings.
pub fn chart(r: &RulReport) -> crate::modelcard::Chart {
    let title = format!(
        "RUL (RMSE {:.2}, NASA score {:.0})",
        r.metrics.rmse, r.metrics.nasa_score
    );
    let (what, svg) = if r.units.is_empty() {
        (
            "Predicted against true remaining life of the scored readings",
            plots::rul_scatter(&title, &r.model.unit, &r.pairs),
        )
    } else {
        let mut points: Vec<(f64, f64, f64, f64)> = r
            .units
            .iter()
            .map(|u| {
                (
                    f64::from(u.truth),
                    f64::from(u.predicted),
                    f64::from(u.lo),
                    f64::from(u.hi),
                )
            })
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        (
            "Predicted (5-95 % tree interval) and true remaining life at each machine's last reading, sorted by true life",
            plots::rul_sorted(&title, &r.model.unit, &points),
        )
    };
    crate::modelcard::Chart {
        title: what.to_owned(),
        file: "rul_predicted_vs_true.svg".to_owned(),
        svg,
    }
}

/// The card as a self-contained HTML page; `chart` is the file name of [`chart`]'s SVG.
pub fn to_html(r: &RulReport, chart: &str) -> String {
    use crate::modelcard::esc;
    use std::fmt::Write;
    let mut h = String::new();
    let m = &r.model;
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Model card: {id}</title>\
         <style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head><body>\
         <h1>Model card: {id} v{v} (remaining useful life)</h1>\
         <p>{label}. Created {created}; {features} features, {trees} trees; trained on {rows} rows of {src}.</p>\
         <p>Evaluated {at} on {data} ({machines} machines): {on}.</p><table>\
         <tr><th></th><th>RMSE</th><th>MAE</th><th>mean error</th><th>NASA score</th><th>n</th></tr>",
        id = esc(&m.model_id),
        v = esc(&m.version),
        label = esc(&m.label),
        created = esc(&m.created_at),
        features = m.features,
        trees = m.trees,
        rows = m.training_rows,
        src = esc(&m.training_source),
        at = esc(&r.evaluated_at),
        data = esc(&r.source),
        machines = r.machines,
        on = esc(&r.evaluated_on),
    );
    for (name, x) in [
        ("truth as given", &r.metrics),
        ("truth capped", &r.metrics_capped_truth),
    ] {
        let _ = write!(
            h,
            "<tr><th>{name}</th><td>{:.2}</td><td>{:.2}</td><td>{:+.2}</td><td>{:.1}</td><td>{}</td></tr>",
            x.rmse, x.mae, x.mean_error, x.nasa_score, x.n
        );
    }
    h.push_str("</table>");
    if let Some(w) = r.within_interval {
        let _ = write!(
            h,
            "<p>The truth is inside the 5-95 % tree interval for {:.0} % of the machines (the spread of the trees, not a calibrated interval).</p>",
            w * 100.0
        );
    }
    let _ = write!(h, "<p><img src=\"{}\" alt=\"chart\"></p>", esc(chart));
    if !r.units.is_empty() {
        h.push_str("<h2>Per machine</h2><table><tr><th>machine</th><th>last time</th><th>predicted</th><th>5 %</th><th>95 %</th><th>true</th><th>error</th><th>NASA term</th></tr>");
        for u in &r.units {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{:+.1}</td><td>{:.2}</td></tr>",
                esc(&u.machine), u.last_time, u.predicted, u.lo, u.hi, u.truth, u.error, nasa_term(f64::from(u.error))
            );
        }
        h.push_str("</table>");
    }
    if !r.per_machine.is_empty() {
        h.push_str("<h2>Per machine</h2><table><tr><th>machine</th><th>rows</th><th>RMSE</th><th>mean error</th></tr>");
        for p in &r.per_machine {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:+.2}</td></tr>",
                esc(&p.machine),
                p.metrics.n,
                p.metrics.rmse,
                p.metrics.mean_error
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_time_column() {
        assert_eq!(cap_for(None, TimeKind::Number), Ok(125.0));
        assert_eq!(cap_for(Some("50"), TimeKind::Row), Ok(50.0));
        assert_eq!(cap_for(Some("2d"), TimeKind::Instant), Ok(172_800.0));
        assert!(cap_for(None, TimeKind::Instant)
            .unwrap_err()
            .contains("duration"));
        assert!(cap_for(Some("30"), TimeKind::Instant).is_err());
        assert!(cap_for(Some("2d"), TimeKind::Number).is_err());
        assert!(cap_for(Some("0"), TimeKind::Number).is_err());
    }

    #[test]
    fn truth_files_are_ordered_or_named() {
        assert_eq!(
            parse_truth("112 \n98\n\n69\n", "t").unwrap(),
            Truth::Ordered(vec![112.0, 98.0, 69.0])
        );
        assert_eq!(
            parse_truth("unit,rul\n1,112\n2,98\n", "t").unwrap(),
            Truth::Named(vec![("1".into(), 112.0), ("2".into(), 98.0)])
        );
        assert!(parse_truth("1\n2 3\n", "t").is_err());
        assert!(parse_truth("-4\n", "t").is_err());
        assert!(parse_truth("\n", "t").is_err());
    }

    #[test]
    fn metrics_match_the_definitions() {
        let m = RulMetrics::of(&[10.0, 20.0], &[13.0, 10.0]);
        assert_eq!(m.n, 2);
        assert!((m.rmse - ((9.0 + 100.0) / 2.0f64).sqrt()).abs() < 1e-9);
        assert!((m.mae - 6.5).abs() < 1e-9);
        assert!((m.mean_error - 3.5).abs() < 1e-9);
        let want = ((3.0f64 / 13.0).exp() - 1.0) + ((10.0f64 / 10.0).exp() - 1.0);
        assert!((m.nasa_score - want).abs() < 1e-9);
    }
}
