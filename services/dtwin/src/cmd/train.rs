//! `dtwin train [DATA] --out MODEL`: train the forest and write the artifact.
//!
//! Without DATA a fleet is simulated in memory; with DATA the file is read: a telemetry CSV
//! (as `dtwin generate` writes it) goes through the feature service's window code machine by
//! machine, AI4I's CSV is read as a table with the physical rules as features and floor rules.
//! Held-out metrics are printed (split by machine on twin data, stratified 80/20 on AI4I).

use anyhow::Context;
use clap::Args;
use dtwin_ml::{ClassWeight, ForestParams};
use dtwin_pipeline::dataset::{from_telemetry, LabelModes, LabelSpec, DEFAULT_HORIZON};
use dtwin_pipeline::load::{self, Loaded};
use dtwin_pipeline::tabular::from_ai4i;
use dtwin_pipeline::{
    train_on, train_tabular, train_twin_model, ThresholdTarget, TrainReport, TrainSpec,
    TwinDataSpec,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// `dtwin train` flags.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Training data: a telemetry CSV or AI4I's CSV (format told from the header). Without it,
    /// a fleet is simulated in memory (--machines, --steps, --data-seed).
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
    /// Label horizon: predict a failure within this many readings (twin data).
    #[arg(long, default_value_t = DEFAULT_HORIZON)]
    pub horizon: usize,
    /// Which failures the label counts (twin data): degradation (bearing, coolant, valve) or
    /// all.
    #[arg(long, default_value = "degradation")]
    pub label_modes: LabelModes,
    /// Count NOK parts as events in the label too (twin data; default: failures only).
    #[arg(long)]
    pub include_nok: bool,
    /// Trees in the forest.
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Maximum tree depth.
    #[arg(long, default_value_t = 10)]
    pub max_depth: usize,
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
    /// Choose the threshold for this row recall (on validation data).
    #[arg(long, conflicts_with_all = ["target_precision", "target_event_recall"])]
    pub target_recall: Option<f64>,
    /// Choose the threshold for this precision (on validation data).
    #[arg(long, conflicts_with = "target_event_recall")]
    pub target_precision: Option<f64>,
    /// Choose the threshold for this event recall: share of failures preceded by an alert
    /// (twin data; default 0.95 there, best F1 on AI4I).
    #[arg(long)]
    pub target_event_recall: Option<f64>,
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

/// A progress bar (hidden when `quiet`).
pub fn bar(len: usize, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style.progress_chars("=> "));
    pb.set_message(what.to_owned());
    pb
}

/// The threshold target from the flags.
pub fn target(
    recall: Option<f64>,
    precision: Option<f64>,
    event_recall: Option<f64>,
) -> anyhow::Result<Option<ThresholdTarget>> {
    for v in [recall, precision, event_recall].into_iter().flatten() {
        anyhow::ensure!(
            (0.0..=1.0).contains(&v),
            "a target must be in [0, 1], not {v}"
        );
    }
    Ok(recall
        .map(ThresholdTarget::Recall)
        .or(precision.map(ThresholdTarget::Precision))
        .or(event_recall.map(ThresholdTarget::EventRecall)))
}

/// Runs `dtwin train`.
///
/// # Errors
/// Bad flags or data, training fails (one class only), or the artifact cannot be written.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let spec = TrainSpec {
        data: TwinDataSpec {
            machines: args.machines,
            steps: args.steps,
            seed: args.data_seed,
            horizon: args.horizon,
            include_nok: args.include_nok,
            modes: args.label_modes,
            ..TwinDataSpec::default()
        },
        params: ForestParams {
            n_trees: args.trees,
            max_depth: args.max_depth,
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
        target: target(
            args.target_recall,
            args.target_precision,
            args.target_event_recall,
        )?,
        source: args.data.as_ref().map(|p| p.display().to_string()),
    };
    anyhow::ensure!(args.horizon >= 1, "--horizon must be at least 1");
    let trees = bar(args.trees, "train", args.json);
    let (artifact, report) = match &args.data {
        None => {
            let machines = bar(args.machines, "simulate", args.json);
            let out = train_twin_model(&spec, &|_| machines.inc(1), &|| trees.inc(1))?;
            machines.finish();
            out
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            match load::parse(&text).with_context(|| format!("reading {}", path.display()))? {
                Loaded::Ai4i(rows) => {
                    let table = from_ai4i(&rows);
                    train_tabular(&table, &spec, &|| trees.inc(1))?
                }
                Loaded::Telemetry(rows, skipped) => {
                    for (line, why) in skipped.iter().take(5) {
                        eprintln!("{}:{line}: skipped: {why}", path.display());
                    }
                    if skipped.len() > 5 {
                        eprintln!("... {} bad rows skipped in all", skipped.len());
                    }
                    let data = from_telemetry(
                        &rows,
                        LabelSpec {
                            horizon: args.horizon,
                            include_nok: args.include_nok,
                            modes: args.label_modes,
                            ..LabelSpec::default()
                        },
                    );
                    anyhow::ensure!(
                        data.n_machines() >= 3,
                        "{} has {} machines; the split by machine needs at least 3",
                        path.display(),
                        data.n_machines()
                    );
                    train_on(&data, &spec, &|| trees.inc(1))?
                }
            }
        }
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
            artifact.forest.n_trees(),
            artifact.label
        );
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &TrainReport) {
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
