//! `dtwin predict MODEL DATA --out FILE`: batch scoring of a CSV (the project's telemetry CSV or
//! AI4I's format). The features are rebuilt as the model was trained on them, from the
//! artifact's feature recipe (`dtwin_pipeline::train::features_of`): on twin telemetry each
//! machine's rows go through the feature service's window code in file order, exactly as if
//! they arrived live; on AI4I each row is one cycle through the tabular features, with the
//! artifact's floor rules. The model scores every row; the output has the probability and the
//! label at the model's threshold, so anyone can check the metrics with their own tools. An
//! anomaly model's rows carry its anomaly score (column `anomaly_score`) instead.

use crate::cmd::common::{read_data, read_model, PlantArgs, PlantSource};
use crate::cmd::replay::{load_csv, ReplayFormat};
use anyhow::Context;
use clap::Args;
use dtwin_ml::ModelArtifact;
use dtwin_pipeline::load::Loaded;
use dtwin_pipeline::tabular::ai4i_features;
use dtwin_pipeline::train::{features_of, Features, FeaturesFrom};
use dtwin_windows::{feature_set, row_from_message, MachineWindow, WindowConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
    /// The feature windows the model was trained on: only needed for an artifact without a
    /// feature recipe (written before recipes existed) trained on other than the default
    /// windows; an artifact's recipe takes precedence.
    #[command(flatten)]
    pub window: crate::cli::WindowOpts,
    /// A plant's export: the profile and columns (default: the model's, when it was trained
    /// on one).
    #[command(flatten)]
    pub plant: PlantArgs,
}

/// The features a model needs, from its recipe or inferred (see
/// [`dtwin_pipeline::train::features_of`]); a note on stderr when the window flags are set but
/// not used.
///
/// # Errors
/// Bad window flags, a broken recipe, or a model whose features cannot be told.
pub fn model_features(
    model: &ModelArtifact,
    window: &crate::cli::WindowOpts,
    path: &Path,
) -> anyhow::Result<Features> {
    let given = window.config()?;
    let (features, from) =
        features_of(model, &given).with_context(|| format!("scoring with {}", path.display()))?;
    if from == FeaturesFrom::Recipe {
        if let Features::Windows(w) = &features {
            if feature_set(w).1 != feature_set(&given).1 && given != WindowConfig::default() {
                eprintln!(
                    "note: {} carries its feature windows (short {}, long {}, {:?} set); the window flags are not used",
                    path.display(),
                    w.short,
                    w.long,
                    w.feature_set
                );
            }
        }
    }
    Ok(features)
}

/// Scores the file; returns the number of rows written.
///
/// # Errors
/// A bad model or data file, a model whose features cannot be rebuilt (see
/// [`model_features`]), data of the wrong kind for the model, or a write error.
pub fn run(args: &PredictArgs) -> anyhow::Result<usize> {
    let model = read_model(&args.model)?;
    if model.kind != dtwin_ml::ModelKind::Anomaly {
        model.classifier().with_context(|| {
            format!(
                "dtwin predict scores classifiers and anomaly models; score {} with `dtwin evaluate {} DATA --rul-truth RUL.txt`",
                args.model.display(),
                args.model.display()
            )
        })?;
    }
    if let Some(source) = args.plant.source(Some(&model))? {
        return score_plant(args, &model, &source);
    }
    let features = model_features(&model, &args.window, &args.model)?;
    let mut out = csv::Writer::from_path(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    out.write_record(header(&model))?;
    let (rows, skipped) = match &features {
        Features::Windows(window) => score_windows(args, &model, window, &mut out)?,
        Features::Ai4iTabular => (score_ai4i(args, &model, &mut out)?, 0),
        Features::Profile { .. } => unreachable!("a profile recipe is scored by score_plant"),
    };
    out.flush()?;
    eprintln!(
        "scored {rows} rows ({skipped} bad rows skipped) with {} v{} at threshold {:.3} into {}",
        model.model_id,
        model.version,
        model.threshold,
        args.out.display()
    );
    Ok(rows)
}

/// A plant's export through the profile: each machine's readings in time order through the
/// profile's windows, as the feature service would see them live; rows written in file order
/// (`seq`: the reading's index within its machine, `failure`: the label column's label).
///
/// # Errors
/// An unreadable or bad export, a profile whose features are not the model's, or a write
/// error.
fn score_plant(
    args: &PredictArgs,
    model: &ModelArtifact,
    source: &PlantSource,
) -> anyhow::Result<usize> {
    let (names, hash) = dtwin_windows::profile_feature_set(&source.profile);
    anyhow::ensure!(
        hash == model.feature_set_hash,
        "{} was trained on other features than profile {:?} gives (feature set {} vs {hash}): \
         pass the profile it was trained with, or none to use the model's own",
        args.model.display(),
        source.profile.id,
        model.feature_set_hash
    );
    let file = args.data.display().to_string();
    let text =
        std::fs::read_to_string(&args.data).with_context(|| format!("cannot read {file}"))?;
    let data = dtwin_pipeline::plant::read(&text, &file, &source.profile, &source.columns)?;
    for (line, why) in data.skipped.iter().take(5) {
        eprintln!("{file}:{line}: skipped: {why}");
    }
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let order: Vec<usize> = model
        .feature_names
        .iter()
        .map(|n| index[n.as_str()])
        .collect();
    let mut rows: Vec<(usize, [String; 7])> = Vec::with_capacity(data.rows());
    for (m, i, values, cold) in dtwin_pipeline::plant::features(&data, &source.profile) {
        let s = &data.machines[m];
        let row: Vec<f32> = order.iter().map(|&j| values[j] as f32).collect();
        let p = score(model, &row);
        rows.push((
            s.lines[i],
            [
                s.id.clone(),
                i.to_string(),
                dtwin_pipeline::plant::format_time(s.t[i], data.time),
                p.to_string(),
                u8::from(model.is_alarm(p)).to_string(),
                u8::from(cold).to_string(),
                s.labels[i].clone().unwrap_or_default(),
            ],
        ));
    }
    rows.sort_by_key(|r| r.0);
    let mut out = csv::Writer::from_path(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    out.write_record(header(model))?;
    for (_, r) in &rows {
        out.write_record(r)?;
    }
    out.flush()?;
    eprintln!(
        "scored {} rows of {} machines ({} bad rows skipped) with {} v{} (profile {}) at threshold {:.3} into {}",
        rows.len(),
        data.machines.len(),
        data.skipped.len(),
        model.model_id,
        model.version,
        source.profile.id,
        model.threshold,
        args.out.display()
    );
    Ok(rows.len())
}

/// The output's columns: the score is `probability` for a classifier, `anomaly_score` for an
/// anomaly model (its `label` is then 1 when the score is at or above the threshold).
fn header(model: &ModelArtifact) -> [&'static str; 7] {
    let score = if model.kind == dtwin_ml::ModelKind::Anomaly {
        "anomaly_score"
    } else {
        "probability"
    };
    ["machine_id", "seq", "ts", score, "label", "cold", "failure"]
}

/// A row's score: the classifier's probability (floor rules included) or the anomaly score.
fn score(model: &ModelArtifact, row: &[f32]) -> f32 {
    match model.isolation() {
        Ok((forest, _)) => forest.score_row(row),
        Err(_) => model.predict_row(row),
    }
}

/// One output row. The probability is written as the shortest text that reads back as the
/// same `f32`, so the output holds exactly what the model computed.
fn write_row(
    out: &mut csv::Writer<std::fs::File>,
    t: &dtwin_schema::Telemetry,
    p: f32,
    model: &ModelArtifact,
    cold: bool,
) -> anyhow::Result<()> {
    out.write_record([
        t.machine_id.to_string(),
        t.seq.to_string(),
        dtwin_schema::time_fmt::format(t.ts),
        p.to_string(),
        u8::from(model.is_alarm(p)).to_string(),
        u8::from(cold).to_string(),
        t.failure
            .map(|f| u8::from(f).to_string())
            .unwrap_or_default(),
    ])?;
    Ok(())
}

/// Telemetry (or AI4I rows read as one machine's telemetry) through the rolling windows;
/// returns the rows scored and the bad rows skipped.
fn score_windows(
    args: &PredictArgs,
    model: &ModelArtifact,
    window: &WindowConfig,
    out: &mut csv::Writer<std::fs::File>,
) -> anyhow::Result<(usize, u64)> {
    let (names, hash) = feature_set(window);
    let (rows, skipped) = load_csv(&args.data, args.format, &args.machine)?;
    let mut windows: HashMap<String, MachineWindow> = HashMap::new();
    let now = dtwin_schema::time_fmt::now();
    for t in &rows {
        let w = windows
            .entry(t.machine_id.to_string())
            .or_insert_with(|| MachineWindow::new(window));
        let fv = w.update(t);
        let msg = fv.to_message(&names, &hash, t, now);
        let row = row_from_message(&msg, &model.feature_names);
        write_row(out, t, score(model, &row), model, msg.cold)?;
    }
    Ok((rows.len(), skipped))
}

/// AI4I rows through the tabular features, the floor rules applied as `dtwin evaluate` does.
/// The output's seq is the row's UDI.
fn score_ai4i(
    args: &PredictArgs,
    model: &ModelArtifact,
    out: &mut csv::Writer<std::fs::File>,
) -> anyhow::Result<usize> {
    anyhow::ensure!(
        args.format != ReplayFormat::Telemetry,
        "{} is trained on AI4I's tabular features; --format telemetry does not fit it",
        args.model.display()
    );
    let Loaded::Ai4i(ai4i) = read_data(&args.data)? else {
        anyhow::bail!(
            "{} is trained on AI4I's tabular features, so DATA must be AI4I's CSV; {} is a telemetry CSV",
            args.model.display(),
            args.data.display()
        );
    };
    // The same rows as telemetry, for the machine id, seq (the UDI) and ts columns.
    let (telemetry, _) = load_csv(&args.data, ReplayFormat::Ai4i, &args.machine)?;
    anyhow::ensure!(
        telemetry.len() == ai4i.len(),
        "{}: read {} AI4I rows but {} readings",
        args.data.display(),
        ai4i.len(),
        telemetry.len()
    );
    for (r, t) in ai4i.iter().zip(&telemetry) {
        let p = model.predict_row(&ai4i_features(r));
        write_row(out, t, p, model, false)?;
    }
    Ok(ai4i.len())
}
