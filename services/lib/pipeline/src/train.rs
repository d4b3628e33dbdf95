//! Training. Twin data: split by machine (never by row: one machine's rows are correlated and
//! would leak), fit on the training machines, choose the threshold on validation machines,
//! report metrics on held-out test machines. AI4I: stratified 80/20 split (seed 42), threshold
//! from out-of-fold scores of the training part, metrics on the 20 %, 5-fold CV beside them.

use crate::dataset::{build, Dataset, TwinDataSpec};
use crate::evaluate::{
    choose_threshold, cross_validate, events_at, metrics_at, CrossValidation, CvError, CvSpec,
    EvalData, Metrics, ThresholdTarget,
};
use crate::events::{AlertPolicy, EventReport};
use crate::tabular::{ai4i_feature_set, ai4i_floor_rules, Tabular};
use dtwin_ml::artifact::FeatureRecipe;
use dtwin_ml::{
    FloorRule, Forest, ForestParams, MlError, ModelArtifact, TrainingMeta, TrainingReference,
    DEFAULT_REFERENCE_BINS,
};
use dtwin_windows::WindowConfig;
use serde_json::json;
use std::time::Instant;

/// Default event-recall target the twin threshold is chosen for (on validation machines).
pub const DEFAULT_EVENT_RECALL_TARGET: f64 = 0.95;

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainSpec {
    /// The data to simulate (when training on the twin in memory).
    pub data: TwinDataSpec,
    /// Forest hyper-parameters.
    pub params: ForestParams,
    /// Model id written into the artifact.
    pub model_id: String,
    /// Version written into the artifact.
    pub version: String,
    /// How to choose the threshold (None: event recall >= 0.95 on twin data, best F1 on AI4I).
    pub target: Option<ThresholdTarget>,
    /// Where the data came from, for the artifact (None: the simulation spec).
    pub source: Option<String>,
}

/// Held-out metrics of a trained model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainReport {
    /// Training rows.
    pub train_rows: usize,
    /// Held-out test rows.
    pub test_rows: usize,
    /// Share of positive rows overall.
    pub positive_rate: f64,
    /// Decision threshold and how it was chosen.
    pub threshold: f64,
    /// The target the threshold was chosen for.
    pub threshold_target: String,
    /// Test accuracy.
    pub accuracy: f64,
    /// Test precision.
    pub precision: f64,
    /// Test recall.
    pub recall: f64,
    /// Test F1.
    pub f1: f64,
    /// Test ROC-AUC.
    pub roc_auc: f64,
    /// Test PR-AUC.
    pub pr_auc: f64,
    /// Seconds spent fitting.
    pub fit_seconds: f64,
    /// All test metrics, with the confusion matrix.
    pub test: Metrics,
    /// Event view on the test machines (twin data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventReport>,
    /// Cross-validation on the training part (AI4I).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_validation: Option<CrossValidation>,
}

/// Why training on AI4I failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Fitting the final forest failed (no rows, one class, bad parameters).
    #[error(transparent)]
    Fit(#[from] MlError),
    /// The cross-validation the threshold is chosen on could not run.
    #[error("cross-validation: {0}")]
    CrossValidation(#[from] CvError),
}

/// The threshold target when none is given: event recall >= 0.95 on the twin's telemetry
/// (many alerts per failure, a false alarm is cheap next to a missed bearing), best F1 on a
/// plant's export. A plant's failures are few and each is preceded by a clear run of positive
/// rows, so the event-recall target is met at the top of the grid (0.99 on C-MAPSS's
/// validation engines), a threshold that misses engines scored 0.98 eight cycles before
/// failure; best F1 weighs both kinds of error on the validation machines' rows.
pub fn default_target(data: &Dataset) -> ThresholdTarget {
    // NOK parts are single readings with no event view: best F1 on the rows.
    if data.target == crate::dataset::Target::Nok {
        return ThresholdTarget::BestF1;
    }
    match data.recipe.as_deref() {
        Some(FeatureRecipe::Profile { .. }) => ThresholdTarget::BestF1,
        _ => ThresholdTarget::EventRecall(DEFAULT_EVENT_RECALL_TARGET),
    }
}

/// Machines with index % 5 == 0 are the test set, == 1 the validation set.
fn role(machine: u32) -> u32 {
    machine % 5
}

/// Row indices of the twin split by machine ([`role`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TwinSplit {
    /// Rows of machines with index % 5 >= 2: the forest is fitted on them.
    pub(crate) train: Vec<usize>,
    /// Rows of machines with index % 5 == 1: the threshold is chosen on them.
    pub(crate) validation: Vec<usize>,
    /// Rows of machines with index % 5 == 0: the reported metrics.
    pub(crate) test: Vec<usize>,
}

/// The split by machine `train_on` uses.
pub(crate) fn twin_split(data: &Dataset) -> TwinSplit {
    TwinSplit {
        train: data.rows_where(|m| role(m) >= 2),
        validation: data.rows_where(|m| role(m) == 1),
        test: data.rows_where(|m| role(m) == 0),
    }
}

/// Simulates, trains and evaluates. `on_machine` and `on_tree` report progress.
///
/// # Errors
/// [`MlError`] when the data has a single class or is empty.
pub fn train_twin_model(
    spec: &TrainSpec,
    on_machine: &dyn Fn(usize),
    on_tree: &(dyn Fn() + Sync),
) -> Result<(ModelArtifact, TrainReport), MlError> {
    let data = build(&spec.data, on_machine);
    train_on(&data, spec, on_tree)
}

fn report(
    train_rows: usize,
    positive_rate: f64,
    target: ThresholdTarget,
    test: Metrics,
    fit_seconds: f64,
) -> TrainReport {
    TrainReport {
        train_rows,
        test_rows: test.rows,
        positive_rate,
        threshold: test.threshold,
        threshold_target: target.to_string(),
        accuracy: test.accuracy,
        precision: test.precision,
        recall: test.recall,
        f1: test.f1,
        roc_auc: test.roc_auc,
        pr_auc: test.pr_auc,
        fit_seconds,
        test,
        events: None,
        cross_validation: None,
    }
}

/// Trains and evaluates on an already built twin data set.
///
/// # Errors
/// [`MlError`] when the data has a single class or is empty.
pub fn train_on(
    data: &Dataset,
    spec: &TrainSpec,
    on_tree: &(dyn Fn() + Sync),
) -> Result<(ModelArtifact, TrainReport), MlError> {
    let policy = AlertPolicy::default();
    let target = spec.target.unwrap_or_else(|| default_target(data));
    let split = twin_split(data);
    let (x, y) = data.select(&split.train);
    // A plant's model is fitted again on training and validation machines once the threshold
    // is chosen (see below): the first fit's progress is then not reported.
    let refit = matches!(data.recipe.as_deref(), Some(FeatureRecipe::Profile { .. }));
    let started = Instant::now();
    let forest = Forest::fit(
        x.view(),
        &y,
        &spec.params,
        if refit { &|| {} } else { on_tree },
    )?;
    let mut fit_seconds = started.elapsed().as_secs_f64();

    let wrapped = EvalData::Twin(data.clone());
    let val_rows = split.validation;
    let (xv, _) = data.select(&val_rows);
    let pv = forest.predict_proba(xv.view());
    let mut threshold = choose_threshold(&wrapped, &val_rows, &pv, target, &policy);
    if threshold.is_nan() {
        // The target is out of reach on the validation machines: fall back to best F1.
        threshold = choose_threshold(&wrapped, &val_rows, &pv, ThresholdTarget::BestF1, &policy);
    }
    // A plant has few machines and every one counts: once the threshold is chosen on the
    // validation machines, the shipped forest learns from them too (the test machines stay
    // held out). C-MAPSS: scikit-learn's forest ranks the test engines 0.983 from 60 engines,
    // 0.986 from 100.
    let (forest, y) = if refit {
        let mut rows = split.train.clone();
        rows.extend_from_slice(&val_rows);
        rows.sort_unstable();
        let (xa, ya) = data.select(&rows);
        let started = Instant::now();
        let f = Forest::fit(xa.view(), &ya, &spec.params, on_tree)?;
        fit_seconds += started.elapsed().as_secs_f64();
        (f, ya)
    } else {
        (forest, y)
    };
    let test_rows = split.test;
    let (xt, yt) = data.select(&test_rows);
    let pt = forest.predict_proba(xt.view());
    let mut rep = report(
        y.len(),
        data.positive_rate(),
        target,
        metrics_at(&yt, &pt, threshold),
        fit_seconds,
    );
    rep.events = (data.target == crate::dataset::Target::Failure)
        .then(|| events_at(data, &test_rows, &pt, threshold, &policy));
    let source = spec.source.clone().unwrap_or_else(|| {
        format!(
            "twin: {} machines x {} steps, seed {}, {} plant s/step",
            spec.data.machines, spec.data.steps, spec.data.seed, spec.data.plant_seconds_per_step
        )
    });
    let meta = TrainingMeta {
        rows: y.len(),
        positives: y.iter().filter(|&&b| b).count(),
        params: spec.params.clone(),
        source,
        seconds: fit_seconds,
    };
    let metrics = json!({
        "test": rep,
        "split": if refit {
            "by machine: index % 5 == 0 test, == 1 validation (threshold, then refitted with the rest), rest train"
        } else {
            "by machine: index % 5 == 0 test, == 1 validation (threshold), rest train"
        },
        "alert_policy": policy,
    });
    // Drift reference: the training rows' features; the probability on the validation machines,
    // which the forest did not see (its in-sample scores are more extreme than live ones).
    let reference = TrainingReference::build(
        &data.names,
        x.view(),
        &pv,
        DEFAULT_REFERENCE_BINS,
        "features: training machines; risk: validation machines",
    );
    let artifact = finish(
        spec,
        data.names.clone(),
        threshold,
        data.description.clone(),
        meta,
        forest,
    )
    .with_metrics(metrics)
    .with_reference(reference);
    let artifact = match recipe_of(data) {
        Some(recipe) => artifact.with_recipe(recipe),
        None => artifact,
    };
    Ok((artifact, rep))
}

/// The recipe that rebuilds `data`'s features: the data set's own (a plant's profile), else
/// the windows' when they made these features (hand-made data sets have others: None).
pub(crate) fn recipe_of(data: &Dataset) -> Option<FeatureRecipe> {
    if let Some(recipe) = &data.recipe {
        Some(recipe.as_ref().clone())
    } else if dtwin_windows::feature_set(&data.labels.window).1 == data.feature_set {
        Some(window_recipe(&data.labels.window))
    } else {
        None
    }
}

fn finish(
    spec: &TrainSpec,
    names: Vec<String>,
    threshold: f32,
    label: String,
    meta: TrainingMeta,
    forest: Forest,
) -> ModelArtifact {
    let created = dtwin_schema::time_fmt::format(dtwin_schema::time_fmt::now());
    ModelArtifact::new(
        &spec.model_id,
        names,
        f64::from(threshold),
        label,
        meta,
        forest,
    )
    .with_version(&spec.version)
    .with_created_at(created)
}

/// Trains on AI4I rows: forest on the 80 % with the physical rules as features and as floor
/// rules, threshold from 5-fold out-of-fold scores of the 80 %, metrics on the 20 %.
///
/// # Errors
/// [`TrainError`] when the data has a single class or is empty, or has fewer rows than the
/// 5 folds of the cross-validation.
pub fn train_tabular(
    table: &Tabular,
    spec: &TrainSpec,
    on_tree: &(dyn Fn() + Sync),
) -> Result<(ModelArtifact, TrainReport), TrainError> {
    let policy = AlertPolicy::default();
    let target = spec.target.unwrap_or(ThresholdTarget::BestF1);
    let floor: Vec<FloorRule> = ai4i_floor_rules();
    let data = EvalData::Tabular(table.clone());
    let (train_rows, test_rows) = data.holdout();
    let cv_spec = CvSpec {
        k: 5,
        params: &spec.params,
        floor_rules: &floor,
        threshold: 0.5,
        policy,
    };
    let (_, (oof_rows, oof_p)) = cross_validate(&data, &train_rows, &cv_spec, &|| {})?;
    let mut threshold = choose_threshold(&data, &oof_rows, &oof_p, target, &policy);
    if threshold.is_nan() {
        threshold = 0.5;
    }
    // CV figures at the chosen threshold.
    let (cv, _) = cross_validate(
        &data,
        &train_rows,
        &CvSpec {
            threshold,
            ..cv_spec
        },
        &|| {},
    )?;
    let (x, y) = data.select(&train_rows);
    let started = Instant::now();
    let forest = Forest::fit(x.view(), &y, &spec.params, on_tree)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let meta = TrainingMeta {
        rows: y.len(),
        positives: y.iter().filter(|&&b| b).count(),
        params: spec.params.clone(),
        source: spec.source.clone().unwrap_or_else(|| "AI4I".into()),
        seconds: fit_seconds,
    };
    let artifact = finish(
        spec,
        table.names.clone(),
        threshold,
        "Machine failure (AI4I, this cycle)".into(),
        meta,
        forest,
    )
    .with_floor_rules(floor)
    .with_recipe(FeatureRecipe::Ai4iTabular);
    let (xt, yt) = data.select(&test_rows);
    let pt = artifact.predict(xt.view());
    let positive_rate = table.y.iter().filter(|&&b| b).count() as f64 / table.y.len().max(1) as f64;
    let mut rep = report(
        y.len(),
        positive_rate,
        target,
        metrics_at(&yt, &pt, threshold),
        fit_seconds,
    );
    rep.cross_validation = Some(cv);
    let metrics = json!({
        "test": rep,
        "split": "stratified 80/20, seed 42; threshold from 5-fold out-of-fold scores of the 80 %",
        "combination": "probability = 1 where an AI4I physical rule fires (floor rules), else the forest's",
    });
    Ok((artifact.with_metrics(metrics), rep))
}

/// The recipe of features made by the rolling windows `window`.
pub fn window_recipe(window: &WindowConfig) -> FeatureRecipe {
    FeatureRecipe::Windows {
        // A plain struct of numbers, a list and a unit enum: serializing cannot fail.
        window: serde_json::to_value(window).expect("WindowConfig serializes to JSON"),
    }
}

/// How to rebuild a model's features from raw data.
#[derive(Debug, Clone)]
pub enum Features {
    /// Telemetry through these rolling windows.
    Windows(WindowConfig),
    /// AI4I rows as a table ([`crate::tabular`]), with the artifact's floor rules.
    Ai4iTabular,
    /// A plant's export through a profile ([`crate::plant`]).
    Profile {
        /// The profile as trained on.
        profile: Box<dtwin_profile::Profile>,
        /// Its TOML text.
        text: String,
        /// The export's columns.
        columns: crate::plant::Columns,
    },
}

impl PartialEq for Features {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Windows(a), Self::Windows(b)) => a == b,
            (Self::Ai4iTabular, Self::Ai4iTabular) => true,
            // A profile is what its text says.
            (
                Self::Profile { text, columns, .. },
                Self::Profile {
                    text: t,
                    columns: c,
                    ..
                },
            ) => text == t && columns == c,
            _ => false,
        }
    }
}

/// Where [`features_of`] found a model's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeaturesFrom {
    /// The artifact's recipe.
    Recipe,
    /// No recipe; the feature-set hash is AI4I's.
    Ai4iHash,
    /// No recipe; the hash is the default windows'.
    DefaultWindows,
    /// No recipe; the hash is that of the windows the caller was given (its flags).
    Given,
}

/// Why a model's features cannot be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The recipe's window configuration does not parse.
    #[error("the artifact's feature recipe has a bad window configuration: {0}")]
    Window(serde_json::Error),
    /// The recipe's profile does not parse.
    #[error("the artifact's machine profile: {0}")]
    Profile(#[from] dtwin_profile::ProfileError),
    /// The recipe does not give the artifact's feature names.
    #[error(
        "the artifact's feature recipe gives feature set {recipe}, but the model uses {model}"
    )]
    Mismatch {
        /// Hash the recipe gives.
        recipe: String,
        /// Hash the artifact stores.
        model: String,
    },
    /// No recipe, and the hash is none of the known ones.
    #[error("the model uses feature set {model} and its artifact has no feature recipe (written before recipes existed); it is not AI4I's nor the default windows', and the window flags give {given}: set --feature-set, --short-window, --long-window and --time-windows-s as in training")]
    Unknown {
        /// Hash the artifact stores.
        model: String,
        /// Hash of the windows given.
        given: String,
    },
}

/// The features `model` was trained on: its recipe when it has one (checked against its
/// feature-set hash); otherwise inferred from the hash: AI4I's table, the default windows, or
/// `given` (the caller's window flags) when their hash matches.
///
/// # Errors
/// [`RecipeError`] when the recipe is broken or does not fit, or nothing matches the hash.
pub fn features_of(
    model: &ModelArtifact,
    given: &WindowConfig,
) -> Result<(Features, FeaturesFrom), RecipeError> {
    let hash = &model.feature_set_hash;
    if let Some(recipe) = &model.recipe {
        let (features, recipe_hash) = match recipe {
            FeatureRecipe::Ai4iTabular => (Features::Ai4iTabular, ai4i_feature_set().1),
            FeatureRecipe::Profile {
                profile, columns, ..
            } => {
                let p = dtwin_profile::Profile::parse(profile, "the model's profile")?;
                let c: crate::plant::Columns =
                    serde_json::from_value(columns.clone()).map_err(RecipeError::Window)?;
                let h = dtwin_windows::profile_feature_set(&p).1;
                (
                    Features::Profile {
                        profile: Box::new(p),
                        text: profile.clone(),
                        columns: c,
                    },
                    h,
                )
            }
            FeatureRecipe::Windows { window } => {
                let w: WindowConfig =
                    serde_json::from_value(window.clone()).map_err(RecipeError::Window)?;
                let h = dtwin_windows::feature_set(&w).1;
                (Features::Windows(w), h)
            }
        };
        if &recipe_hash != hash {
            return Err(RecipeError::Mismatch {
                recipe: recipe_hash,
                model: hash.clone(),
            });
        }
        return Ok((features, FeaturesFrom::Recipe));
    }
    if *hash == ai4i_feature_set().1 {
        return Ok((Features::Ai4iTabular, FeaturesFrom::Ai4iHash));
    }
    let default = WindowConfig::default();
    if *hash == dtwin_windows::feature_set(&default).1 {
        return Ok((Features::Windows(default), FeaturesFrom::DefaultWindows));
    }
    let given_hash = dtwin_windows::feature_set(given).1;
    if *hash == given_hash {
        return Ok((Features::Windows(given.clone()), FeaturesFrom::Given));
    }
    Err(RecipeError::Unknown {
        model: hash.clone(),
        given: given_hash,
    })
}

#[cfg(test)]
#[path = "train_tests.rs"]
mod tests;
