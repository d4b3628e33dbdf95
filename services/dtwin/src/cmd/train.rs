//! `dtwin train [DATA] --out MODEL`: train the forest and write the artifact.
//!
//! Without DATA a fleet is simulated in memory; with DATA the file is read: a telemetry CSV
//! (as `dtwin generate` writes it) goes through the feature service's window code machine by
//! machine, AI4I's CSV is read as a table with the physical rules as features and floor rules.
//! Held-out metrics are printed (split by machine on twin data, stratified 80/20 on AI4I).

use crate::cmd::common::{bar, read_labelled, LabelArgs, TargetArgs};
use anyhow::Context;
use clap::Args;
use dtwin_ml::{ClassWeight, ForestParams};
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
        target: args.target.target()?,
        source: args.data.as_ref().map(|p| p.display().to_string()),
    };
    let trees = bar(args.trees, "train", args.json);
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
