//! What the ML subcommands (train, evaluate, eda, predict) share: progress bars, the label and
//! threshold-target flags, and reading a model artifact or a data file.

use anyhow::Context;
use clap::Args;
use dtwin_ml::ModelArtifact;
use dtwin_pipeline::dataset::{from_telemetry, LabelModes, LabelSpec, DEFAULT_HORIZON};
use dtwin_pipeline::load::{self, Loaded};
use dtwin_pipeline::tabular::from_ai4i;
use dtwin_pipeline::{EvalData, ThresholdTarget};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;

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

/// How twin telemetry is labelled (must match how the model was trained).
#[derive(Debug, Clone, Args)]
pub struct LabelArgs {
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
    /// The feature windows (as the feature service runs them).
    #[command(flatten)]
    pub window: crate::cli::WindowOpts,
}

impl LabelArgs {
    /// The label spec.
    ///
    /// # Errors
    /// A zero horizon or bad window flags.
    pub fn spec(&self) -> anyhow::Result<LabelSpec> {
        anyhow::ensure!(self.horizon >= 1, "--horizon must be at least 1");
        Ok(LabelSpec {
            horizon: self.horizon,
            include_nok: self.include_nok,
            modes: self.label_modes,
            window: self.window.config()?,
        })
    }
}

/// The threshold-target flags (at most one).
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Choose the threshold for this row recall (train: on validation data; evaluate: on the
    /// cross-validation's out-of-fold scores).
    #[arg(long, conflicts_with_all = ["target_precision", "target_event_recall"])]
    pub target_recall: Option<f64>,
    /// Choose the threshold for this precision (train: on validation data; evaluate: on the
    /// out-of-fold scores).
    #[arg(long, conflicts_with = "target_event_recall")]
    pub target_precision: Option<f64>,
    /// Choose the threshold for this event recall: share of failures preceded by an alert
    /// (twin data; default 0.95 there, best F1 on AI4I).
    #[arg(long)]
    pub target_event_recall: Option<f64>,
}

impl TargetArgs {
    /// The target, if one was given.
    ///
    /// # Errors
    /// A target outside [0, 1].
    pub fn target(&self) -> anyhow::Result<Option<ThresholdTarget>> {
        let (recall, precision, event_recall) = (
            self.target_recall,
            self.target_precision,
            self.target_event_recall,
        );
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
}

/// Reads and checks a model artifact.
///
/// # Errors
/// The file cannot be read or is not a valid artifact.
pub fn read_model(path: &Path) -> anyhow::Result<ModelArtifact> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ModelArtifact::from_json(&bytes)
        .with_context(|| format!("{} is not a valid model artifact", path.display()))
}

/// Reads a data file (telemetry CSV or AI4I's CSV, told from the header), reporting the first
/// skipped telemetry rows on stderr.
///
/// # Errors
/// The file cannot be read or is in neither format.
pub fn read_data(path: &Path) -> anyhow::Result<Loaded> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let loaded = load::parse(&text).with_context(|| format!("reading {}", path.display()))?;
    if let Loaded::Telemetry(_, skipped) = &loaded {
        for (line, why) in skipped.iter().take(5) {
            eprintln!("{}:{line}: skipped: {why}", path.display());
        }
        if skipped.len() > 5 {
            eprintln!("... {} bad rows skipped in all", skipped.len());
        }
    }
    Ok(loaded)
}

/// Reads a data file as a labelled data set: telemetry through the feature service's window
/// code, labelled by `label`; AI4I as its table.
///
/// # Errors
/// As [`read_data`].
pub fn read_eval_data(path: &Path, label: LabelSpec) -> anyhow::Result<EvalData> {
    Ok(match read_data(path)? {
        Loaded::Ai4i(rows) => EvalData::Tabular(from_ai4i(&rows)),
        Loaded::Telemetry(rows, _) => EvalData::Twin(from_telemetry(&rows, label)),
    })
}
