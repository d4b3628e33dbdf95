//! `dtwin train [DATA] --out MODEL`: train the forest and write the artifact.
//!
//! Without DATA a fleet is simulated in memory; with DATA the file is read: a telemetry CSV
//! (as `dtwin generate` writes it) goes through the feature service's window code machine by
//! machine, AI4I's CSV is read as a table with the physical rules as features and floor rules.
//! Held-out metrics are printed (split by machine on twin data, stratified 80/20 on AI4I).

use crate::cmd::common::{bar, read_labelled, read_plant_data, LabelArgs, TargetArgs};
use anyhow::Context;
use clap::Args;
use dtwin_ml::{ClassWeight, ForestParams, RegressorParams};
use dtwin_pipeline::plant::{self, Horizon};
use dtwin_pipeline::rul;
use dtwin_pipeline::{
    train_on, train_tabular, train_twin_model, EvalData, TrainReport, TrainSpec, TwinDataSpec,
};
use std::path::PathBuf;

/// `dtwin train` flags.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Training data: a telemetry CSV or AI4I's CSV (format told from the header), or a
    /// plant's export read through --profile. Without it, a fleet is simulated in memory
    /// (--machines, --steps, --data-seed).
    pub data: Option<PathBuf>,
    /// Where to write the model artifact (JSON).
    #[arg(long, default_value = "model.json")]
    pub out: PathBuf,
    /// Simulated machines (without DATA).
    #[arg(long, default_value_t = 200)]
    pub machines: usize,
    /// Readings per simulated machine (without DATA).
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Simulation seed (without DATA).
    #[arg(long, default_value_t = 7)]
    pub data_seed: u64,
    /// How twin data is labelled.
    #[command(flatten)]
    pub label: LabelArgs,
    /// What the model predicts: `classifier` (a failure within --horizon), `quality` (a NOK
    /// part within --horizon, failures not counted; see --quality-column), `anomaly` (an
    /// Isolation Forest on healthy readings: unusual feature vectors, no failure labels
    /// needed; see --healthy-first, --anomaly-rate) or `rul` (remaining useful life: the time
    /// to the next failure, capped at --rul-cap; a plant's data read through --profile).
    #[arg(long, default_value = "classifier", value_parser = ["classifier", "quality", "anomaly", "rul"])]
    pub kind: String,
    /// The rul target's cap: a number in the time column's units (cycles; readings without a
    /// time column; default 125), or a duration (`30d`) when the times are instants.
    #[arg(long, value_name = "CAP")]
    pub rul_cap: Option<String>,
    /// Each machine's last reading is a failure (run-to-failure data such as C-MAPSS's
    /// training engines), besides the failures of --label-column or --events (--kind rul and
    /// anomaly, a plant's export).
    #[arg(long)]
    pub run_to_failure: bool,
    /// --kind anomaly: the false-alarm rate the threshold is set for, as the share of the
    /// validation machines' healthy readings it flags (default 0.01).
    #[arg(long, value_name = "RATE")]
    pub anomaly_rate: Option<f64>,
    /// --kind anomaly: take each machine's first part of history as healthy: a number of
    /// readings (time-column units such as cycles for a plain-number time column: 50), a
    /// duration (2d; instants and twin telemetry) or a share (25%). Default: the readings with
    /// no failure within --horizon when the data has failures, else each machine's first 25 %.
    #[arg(long, value_name = "N")]
    pub healthy_first: Option<String>,
    /// --kind anomaly: readings each tree is grown on (ψ; default 256).
    #[arg(long)]
    pub max_samples: Option<usize>,
    /// --kind quality: the NOK column of a plant's export.
    #[command(flatten)]
    pub quality: crate::cmd::common::QualityArgs,
    /// Trees in the forest (default 100; 200 for --kind rul).
    #[arg(long)]
    pub trees: Option<usize>,
    /// Maximum tree depth (default 10; 20 for --kind rul; for --kind anomaly the height limit,
    /// default ceil(log2 ψ)).
    #[arg(long)]
    pub max_depth: Option<usize>,
    /// Minimum samples to split a node.
    #[arg(long, default_value_t = 10)]
    pub min_samples_split: usize,
    /// Minimum samples in a leaf.
    #[arg(long, default_value_t = 5)]
    pub min_samples_leaf: usize,
    /// Weigh both classes equally (balanced) or every row the same (none).
    #[arg(long, default_value = "balanced", value_parser = ["balanced", "none"])]
    pub class_weight: String,
    /// Forest seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Threshold target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Model id written into the artifact.
    #[arg(long, default_value = "dtwin-rf")]
    pub model_id: String,
    /// Model version written into the artifact.
    #[arg(long, default_value = "1")]
    pub model_version: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `dtwin train`.
///
/// # Errors
/// Bad flags or data, training fails (one class only), or the artifact cannot be written.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    match args.kind.as_str() {
        "rul" => return run_rul(&args),
        "anomaly" => return crate::cmd::anomaly::train(&args),
        "quality" => return crate::cmd::quality::train(&args),
        _ => {}
    }
    anyhow::ensure!(
        args.rul_cap.is_none() && !args.run_to_failure,
        "--rul-cap and --run-to-failure belong to --kind rul (and --run-to-failure to --kind anomaly)"
    );
    anyhow::ensure!(
        args.anomaly_rate.is_none() && args.healthy_first.is_none() && args.max_samples.is_none(),
        "--anomaly-rate, --healthy-first and --max-samples belong to --kind anomaly"
    );
    args.quality.ensure_unused("--kind classifier")?;
    let n_trees = args.trees.unwrap_or(100);
    let label = args.label.spec()?;
    let spec = TrainSpec {
        data: TwinDataSpec {
            machines: args.machines,
            steps: args.steps,
            seed: args.data_seed,
            horizon: label.horizon,
            include_nok: label.include_nok,
            modes: label.modes,
            window: label.window.clone(),
            ..TwinDataSpec::default()
        },
        params: ForestParams {
            n_trees,
            max_depth: args.max_depth.unwrap_or(10),
            min_samples_split: args.min_samples_split,
            min_samples_leaf: args.min_samples_leaf,
            class_weight: if args.class_weight == "none" {
                ClassWeight::None
            } else {
                ClassWeight::Balanced
            },
            seed: args.seed,
            ..ForestParams::default()
        },
        model_id: args.model_id.clone(),
        version: args.model_version.clone(),
        target: args.target.target()?,
        source: args.data.as_ref().map(|p| p.display().to_string()),
    };
    let trees = bar(n_trees, "train", args.json);
    let (artifact, report) = match &args.data {
        None => {
            let machines = bar(args.machines, "simulate", args.json);
            let out = train_twin_model(&spec, &|_| machines.inc(1), &|| trees.inc(1))?;
            machines.finish();
            out
        }
        Some(path) => match read_labelled(path, &args.label, None)? {
            EvalData::Tabular(table) => train_tabular(&table, &spec, &|| trees.inc(1))?,
            EvalData::Twin(data) => {
                anyhow::ensure!(
                    data.y.iter().any(|&y| y),
                    "no reading is followed by a counted failure within the horizon in {}: \
                     give the failures (--label-column, or --events with --event-label-column), \
                     check the profile's [failures] counted labels, or widen --horizon",
                    path.display()
                );
                anyhow::ensure!(
                    data.n_machines() >= 3,
                    "{} has {} machines; the split by machine needs at least 3",
                    path.display(),
                    data.n_machines()
                );
                train_on(&data, &spec, &|| trees.inc(1))?
            }
        },
    };
    trees.finish();
    let bytes = artifact.to_json();
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "wrote {} ({} KiB, {} trees, label: {})",
            args.out.display(),
            bytes.len() / 1024,
            artifact.classifier().map_or(0, |f| f.n_trees()),
            artifact.label
        );
        print_report(&report);
    }
    Ok(())
}

/// `dtwin train DATA --profile P --kind rul`: the forest regressor on the time to each
/// machine's next failure (see [`dtwin_pipeline::rul`]).
fn run_rul(args: &TrainArgs) -> anyhow::Result<()> {
    let Some(path) = &args.data else {
        anyhow::bail!(
            "--kind rul trains on a plant's export: give DATA and --profile PROFILE.toml"
        );
    };
    let Some(source) = args.label.plant.source(None)? else {
        anyhow::bail!(
            "--kind rul reads DATA through a machine profile: add --profile PROFILE.toml and --id-column (twin telemetry and AI4I have no remaining-life target yet)"
        );
    };
    anyhow::ensure!(
        args.label.horizon.is_none() && args.target.target()?.is_none(),
        "--horizon and the threshold targets belong to --kind classifier; a rul model's look-ahead is --rul-cap"
    );
    anyhow::ensure!(
        args.class_weight == "balanced",
        "--class-weight belongs to --kind classifier"
    );
    anyhow::ensure!(
        args.anomaly_rate.is_none() && args.healthy_first.is_none() && args.max_samples.is_none(),
        "--anomaly-rate, --healthy-first and --max-samples belong to --kind anomaly"
    );
    args.quality.ensure_unused("--kind rul")?;
    let file = path.display().to_string();
    let (data, events) = read_plant_data(path, &source, &args.label.plant)?;
    let cap = rul::cap_for(args.rul_cap.as_deref(), data.time).map_err(anyhow::Error::msg)?;
    let set = rul::dataset(&data, &source.profile, &events, cap, args.run_to_failure);
    eprintln!(
        "{file}: {} machines, {} readings ({} left out); {} failures; {} rows with a known remaining life (capped at {cap} {})",
        data.machines.len(),
        data.rows(),
        data.skipped.len(),
        set.failures,
        set.y.len(),
        set.unit
    );
    anyhow::ensure!(
        set.failures > 0,
        "no failure in {file}: give the failures (--label-column, or --events with --event-label-column), or --run-to-failure when each machine's last reading is its failure"
    );
    anyhow::ensure!(
        !set.y.is_empty(),
        "no reading of {file} has a known remaining life (too few readings per machine for the profile's windows?)"
    );
    let defaults = RegressorParams::default();
    let params = RegressorParams {
        n_trees: args.trees.unwrap_or(defaults.n_trees),
        max_depth: args.max_depth.unwrap_or(defaults.max_depth),
        min_samples_split: args.min_samples_split,
        min_samples_leaf: args.min_samples_leaf,
        seed: args.seed,
        ..defaults
    };
    let spec = rul::RulSpec {
        model_id: if args.model_id == "dtwin-rf" {
            "dtwin-rul".to_owned()
        } else {
            args.model_id.clone()
        },
        version: args.model_version.clone(),
        source: file.clone(),
        // The recipe's horizon is the cap: how far ahead the model looks.
        recipe: plant::recipe(
            &source.text,
            &source.columns,
            if data.time == plant::TimeKind::Instant {
                Horizon::Time(cap)
            } else {
                Horizon::Readings(cap.round().max(1.0) as usize)
            },
        ),
        params: params.clone(),
    };
    let trees = bar(2 * params.n_trees, "train", args.json);
    let (artifact, report) = rul::train(&set, &spec, &|| trees.inc(1))?;
    trees.finish();
    let bytes = artifact.to_json();
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let h = &report.held_out;
        println!(
            "wrote {} ({} KiB, {} trees, label: {})",
            args.out.display(),
            bytes.len() / 1024,
            params.n_trees,
            artifact.label
        );
        println!(
            "held-out: {} machines, {} rows: RMSE {:.2} MAE {:.2} mean error {:+.2} {} (fit {:.2} s on all {} rows)",
            report.held_out_machines, report.held_out_rows, h.rmse, h.mae, h.mean_error, report.unit, report.fit_seconds, report.rows
        );
    }
    Ok(())
}

pub(crate) fn print_report(r: &TrainReport) {
    println!(
        "held-out: {} rows, positive rate {:.1} %",
        r.test_rows,
        r.positive_rate * 100.0
    );
    println!(
        "threshold {:.3} ({}): accuracy {:.3} precision {:.3} recall {:.3} F1 {:.3} ROC-AUC {:.3} PR-AUC {:.3} (fit {:.2} s)",
        r.threshold, r.threshold_target, r.accuracy, r.precision, r.recall, r.f1, r.roc_auc, r.pr_auc, r.fit_seconds
    );
    if let Some(e) = &r.events {
        println!(
            "events: {}/{} failures caught ({:.3}), median lead {:.0} min, {} alerts of which {} false (share {:.3}, {:.2} per machine-day); other modes caught {}/{}",
            e.caught, e.failures, e.event_recall, e.median_lead_minutes, e.alerts, e.false_alarms,
            e.false_alarm_share, e.false_alarms_per_machine_day, e.other_caught, e.other_failures
        );
    }
    if let Some(cv) = &r.cross_validation {
        println!(
            "{}: F1 {:.3} ± {:.3}, ROC-AUC {:.4} ± {:.4}, PR-AUC {:.3} ± {:.3}",
            cv.split,
            cv.f1.mean,
            cv.f1.sd,
            cv.roc_auc.mean,
            cv.roc_auc.sd,
            cv.pr_auc.mean,
            cv.pr_auc.sd
        );
    }
}
