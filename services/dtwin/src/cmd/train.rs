//! `dtwin train`: simulate a fleet, featurise it with the streaming feature code, train the
//! forest on some machines and report held-out metrics on others, write the artifact.

use anyhow::Context;
use clap::Args;
use dtwin_ml::ForestParams;
use dtwin_pipeline::{train_twin_model, TrainSpec, TwinDataSpec};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// `dtwin train` flags.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Where to write the model artifact (JSON).
    #[arg(long, default_value = "model.json")]
    pub out: PathBuf,
    /// Simulated machines.
    #[arg(long, default_value_t = 200)]
    pub machines: usize,
    /// Readings per machine.
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Simulation seed.
    #[arg(long, default_value_t = 7)]
    pub data_seed: u64,
    /// Label horizon: predict a failure within this many readings.
    #[arg(long, default_value_t = 10)]
    pub horizon: usize,
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
    /// Forest seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Model id written into the artifact.
    #[arg(long, default_value = "dtwin-rf")]
    pub model_id: String,
    /// Model version written into the artifact.
    #[arg(long, default_value = "1")]
    pub model_version: String,
    /// Count NOK parts as events in the label too (default: failures only).
    #[arg(long)]
    pub include_nok: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn bar(len: usize, what: &str, quiet: bool) -> ProgressBar {
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

/// Runs `dtwin train`.
///
/// # Errors
/// Training fails (one class only) or the artifact cannot be written.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let spec = TrainSpec {
        data: TwinDataSpec {
            machines: args.machines,
            steps: args.steps,
            seed: args.data_seed,
            horizon: args.horizon,
            include_nok: args.include_nok,
            ..TwinDataSpec::default()
        },
        params: ForestParams {
            n_trees: args.trees,
            max_depth: args.max_depth,
            min_samples_split: args.min_samples_split,
            min_samples_leaf: args.min_samples_leaf,
            seed: args.seed,
            ..ForestParams::default()
        },
        model_id: args.model_id.clone(),
        version: args.model_version.clone(),
    };
    let machines = bar(args.machines, "simulate", args.json);
    let trees = bar(args.trees, "train", args.json);
    let (artifact, report) = train_twin_model(&spec, &|_| machines.inc(1), &|| trees.inc(1))?;
    machines.finish();
    trees.finish();
    let bytes = artifact.to_json();
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "wrote {} ({} KiB, {} trees)",
            args.out.display(),
            bytes.len() / 1024,
            artifact.forest.n_trees()
        );
        println!(
            "held-out machines: {} rows, positive rate {:.1} %",
            report.test_rows,
            report.positive_rate * 100.0
        );
        println!(
            "threshold {:.3}: accuracy {:.3} precision {:.3} recall {:.3} F1 {:.3} ROC-AUC {:.3} PR-AUC {:.3} (fit {:.1} s)",
            report.threshold, report.accuracy, report.precision, report.recall, report.f1, report.roc_auc, report.pr_auc, report.fit_seconds
        );
    }
    Ok(())
}
