//! `dtwin predict MODEL DATA --out FILE`: batch scoring of a CSV (the project's telemetry CSV or
//! AI4I's format). Each machine's rows go through the feature service's window code in file
//! order, exactly as if they arrived live, and the model scores every row; the output has the
//! probability and the label at the model's threshold, so anyone can check the metrics with
//! their own tools.

use crate::cmd::common::read_model;
use crate::cmd::replay::{load_csv, ReplayFormat};
use anyhow::Context;
use clap::Args;
use dtwin_windows::{feature_set, row_from_message, MachineWindow};
use std::collections::HashMap;
use std::path::PathBuf;

/// `dtwin predict` flags.
#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// The model artifact.
    pub model: PathBuf,
    /// The data (CSV).
    pub data: PathBuf,
    /// Where to write the scored rows (CSV).
    #[arg(long)]
    pub out: PathBuf,
    /// Input format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: ReplayFormat,
    /// Machine id for AI4I rows.
    #[arg(long, default_value = "ai4i-machine")]
    pub machine: String,
    /// The feature windows the model was trained on.
    #[command(flatten)]
    pub window: crate::cli::WindowOpts,
}

/// Scores the file; returns the number of rows written.
///
/// # Errors
/// A bad model or data file, a model trained on another feature set, or a write error.
pub fn run(args: &PredictArgs) -> anyhow::Result<usize> {
    let model = read_model(&args.model)?;
    let window = args.window.config()?;
    let (names, hash) = feature_set(&window);
    anyhow::ensure!(
        model.feature_set_hash == hash,
        "the model uses feature set {}, these windows give {hash} (set --feature-set and the window flags as in training)",
        model.feature_set_hash
    );
    let (rows, skipped) = load_csv(&args.data, args.format, &args.machine)?;
    let mut windows: HashMap<String, MachineWindow> = HashMap::new();
    let mut out = csv::Writer::from_path(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    out.write_record([
        "machine_id",
        "seq",
        "ts",
        "probability",
        "label",
        "cold",
        "failure",
    ])?;
    let now = dtwin_schema::time_fmt::now();
    for t in &rows {
        let w = windows
            .entry(t.machine_id.to_string())
            .or_insert_with(|| MachineWindow::new(&window));
        let fv = w.update(t);
        let msg = fv.to_message(&names, &hash, t, now);
        let row = row_from_message(&msg, &model.feature_names);
        let p = f64::from(model.predict_row(&row));
        out.write_record([
            t.machine_id.to_string(),
            t.seq.to_string(),
            dtwin_schema::time_fmt::format(t.ts),
            format!("{p:.6}"),
            u8::from(p >= model.threshold).to_string(),
            u8::from(msg.cold).to_string(),
            t.failure
                .map(|f| u8::from(f).to_string())
                .unwrap_or_default(),
        ])?;
    }
    out.flush()?;
    eprintln!(
        "scored {} rows ({skipped} bad rows skipped) with {} v{} at threshold {:.3} into {}",
        rows.len(),
        model.model_id,
        model.version,
        model.threshold,
        args.out.display()
    );
    Ok(rows.len())
}
