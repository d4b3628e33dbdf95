//! Training on twin data: split by machine (never by row: one machine's rows are correlated
//! and would leak), fit on the training machines, choose the threshold on validation
//! machines, report metrics on held-out test machines, and build the artifact.

use crate::dataset::{build, Dataset, TwinDataSpec};
use dtwin_ml::metrics::{best_f1_threshold, confusion, pr_auc, roc_auc};
use dtwin_ml::{Forest, ForestParams, MlError, ModelArtifact, TrainingMeta};
use serde_json::json;
use std::time::Instant;

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainSpec {
    /// The data to simulate.
    pub data: TwinDataSpec,
    /// Forest hyper-parameters.
    pub params: ForestParams,
    /// Model id written into the artifact.
    pub model_id: String,
    /// Version written into the artifact.
    pub version: String,
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
    /// Decision threshold chosen on the validation machines.
    pub threshold: f64,
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
}

/// Machines with index % 5 == 0 are the test set, == 1 the validation set.
fn role(machine: u32) -> u32 {
    machine % 5
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

/// Trains and evaluates on an already built data set.
///
/// # Errors
/// [`MlError`] when the data has a single class or is empty.
pub fn train_on(
    data: &Dataset,
    spec: &TrainSpec,
    on_tree: &(dyn Fn() + Sync),
) -> Result<(ModelArtifact, TrainReport), MlError> {
    let train_rows = data.rows_where(|m| role(m) >= 2);
    let (x, y) = data.select(&train_rows);
    let started = Instant::now();
    let forest = Forest::fit(x.view(), &y, &spec.params, on_tree)?;
    let fit_seconds = started.elapsed().as_secs_f64();

    let (xv, yv) = data.select(&data.rows_where(|m| role(m) == 1));
    let threshold = best_f1_threshold(&yv, &forest.predict_proba(xv.view()));
    let (xt, yt) = data.select(&data.rows_where(|m| role(m) == 0));
    let pt = forest.predict_proba(xt.view());
    let c = confusion(&yt, &pt, threshold);
    let report = TrainReport {
        train_rows: y.len(),
        test_rows: yt.len(),
        positive_rate: data.positive_rate(),
        threshold: f64::from(threshold),
        accuracy: c.accuracy(),
        precision: c.precision(),
        recall: c.recall(),
        f1: c.f1(),
        roc_auc: roc_auc(&yt, &pt),
        pr_auc: pr_auc(&yt, &pt),
        fit_seconds,
    };
    let meta = TrainingMeta {
        rows: y.len(),
        positives: y.iter().filter(|&&b| b).count(),
        params: spec.params.clone(),
        source: format!(
            "twin: {} machines x {} steps, seed {}, {} plant s/step",
            spec.data.machines, spec.data.steps, spec.data.seed, spec.data.plant_seconds_per_step
        ),
        seconds: fit_seconds,
    };
    let label = format!(
        "{} within the next {} readings",
        if spec.data.include_nok {
            "failure or NOK part"
        } else {
            "failure"
        },
        spec.data.horizon
    );
    let created = dtwin_schema::time_fmt::format(dtwin_schema::time_fmt::now());
    let artifact = ModelArtifact::new(&spec.model_id, data.names.clone(), f64::from(threshold), label, meta, forest)
        .with_version(&spec.version)
        .with_created_at(created)
        .with_metrics(json!({ "test": report, "split": "by machine: index % 5 == 0 test, == 1 validation (threshold), rest train" }));
    Ok((artifact, report))
}
