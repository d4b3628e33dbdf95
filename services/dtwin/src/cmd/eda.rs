//! `dtwin eda DATA`: an exploratory report of a data file (twin telemetry CSV, AI4I's CSV, or a
//! plant's export through `--profile`):
//! report.html with its SVG charts beside it in --out-dir. The statistics and the page are
//! [`dtwin_pipeline::eda`] and [`dtwin_pipeline::edareport`].

use crate::cmd::common::{plant_horizon, read_data, read_plant_data, LabelArgs};
use anyhow::Context;
use clap::Args;
use dtwin_pipeline::eda::Frame;
use dtwin_pipeline::edareport;
use dtwin_pipeline::load::Loaded;
use std::path::PathBuf;

/// `dtwin eda` flags.
#[derive(Debug, Clone, Args)]
pub struct EdaArgs {
    /// The data: a telemetry CSV or AI4I's CSV (format told from the header), or a plant's
    /// export read through --profile.
    pub data: PathBuf,
    /// Folder for report.html and its SVG charts (created if missing).
    #[arg(long, default_value = "eda")]
    pub out_dir: PathBuf,
    /// The class of twin rows: the label a model would learn.
    #[command(flatten)]
    pub label: LabelArgs,
}

/// Runs `dtwin eda`; returns the path of the page.
///
/// # Errors
/// Bad flags or data, an empty file, or a file that cannot be written.
pub fn run(args: &EdaArgs) -> anyhow::Result<PathBuf> {
    let (frame, skipped) = if let Some(source) = args.label.plant.source(None)? {
        let horizon = plant_horizon(args.label.horizon, &source)?;
        let (data, events) = read_plant_data(&args.data, &source, &args.label.plant)?;
        (
            dtwin_pipeline::plant::frame(&data, &source.profile, &events, horizon),
            data.skipped.len(),
        )
    } else {
        let label = args.label.spec()?;
        match read_data(&args.data)? {
            Loaded::Telemetry(rows, skipped) => {
                (Frame::from_telemetry(&rows, &label), skipped.len())
            }
            Loaded::Ai4i(rows) => (Frame::from_ai4i(&rows), 0),
        }
    };
    anyhow::ensure!(frame.rows() > 0, "{} has no rows", args.data.display());
    let report = edareport::render(&frame, &args.data.display().to_string(), skipped);
    let dir = &args.out_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, svg) in &report.files {
        let path = dir.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    let page = dir.join("report.html");
    std::fs::write(&page, &report.html).with_context(|| format!("writing {}", page.display()))?;
    let (neg, pos) = frame.class_balance();
    println!(
        "{}: {} rows ({}), {} positive ({:.2} %: {}); wrote {} and {} charts",
        args.data.display(),
        frame.rows(),
        frame.kind,
        pos,
        pos as f64 / (neg + pos) as f64 * 100.0,
        frame.class_label,
        page.display(),
        report.files.len()
    );
    Ok(page)
}
