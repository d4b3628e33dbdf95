//! What the ML subcommands (train, evaluate, eda, predict) share: progress bars, the label and
//! threshold-target flags, and reading a model artifact or a data file.

use anyhow::Context;
use clap::Args;
use dtwin_ml::ModelArtifact;
use dtwin_pipeline::dataset::{from_telemetry, LabelModes, LabelSpec, DEFAULT_HORIZON};
use dtwin_pipeline::load::{self, Loaded};
use dtwin_pipeline::plant::{self, Columns, Horizon, LabelReport};
use dtwin_pipeline::tabular::from_ai4i;
use dtwin_pipeline::train::Features;
use dtwin_pipeline::{Dataset, EvalData, ThresholdTarget};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::path::PathBuf;

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

/// How data is labelled (must match how the model was trained).
#[derive(Debug, Clone, Args)]
pub struct LabelArgs {
    /// Label horizon: predict a failure within this many readings (`30`, the default on twin
    /// data) or this much time (`24h`, `90m`, `7d`; a plant's data with --profile).
    #[arg(long)]
    pub horizon: Option<Horizon>,
    /// A plant's own data, read through a machine profile.
    #[command(flatten)]
    pub plant: PlantArgs,
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
        let horizon = match self.horizon {
            None => DEFAULT_HORIZON,
            Some(Horizon::Readings(h)) => h,
            // A plant's data set takes its own horizon (see `read_plant`).
            Some(Horizon::Time(_)) if self.plant.profile.is_some() => DEFAULT_HORIZON,
            Some(h @ Horizon::Time(_)) => anyhow::bail!(
                "--horizon {h}: twin telemetry counts its horizon in readings (--horizon 30); \
                 a duration needs a plant's data read through --profile"
            ),
        };
        Ok(LabelSpec {
            horizon,
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

/// Reads DATA as a labelled data set: a plant's export when --profile (or `model`'s recipe)
/// says so, else as [`read_eval_data`] with the label flags.
///
/// # Errors
/// As [`read_plant`] and [`read_eval_data`].
pub fn read_labelled(
    path: &Path,
    args: &LabelArgs,
    model: Option<&ModelArtifact>,
) -> anyhow::Result<EvalData> {
    if let Some(source) = args.plant.source(model)? {
        let horizon = plant_horizon(args.horizon, &source)?;
        let (data, _) = read_plant(path, &source, &args.plant, horizon)?;
        return Ok(EvalData::Twin(data));
    }
    read_eval_data(path, args.spec()?)
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

/// A plant's own data: a CSV export with a machine-id column, a time column and the
/// profile's sensor columns; failures from a label column or an events log.
#[derive(Debug, Clone, Default, Args)]
pub struct PlantArgs {
    /// Machine profile (TOML, see `dtwin profile init`) to read DATA through. A model trained
    /// with one carries it: evaluate and predict need the flag only to override it.
    #[arg(long, value_name = "PROFILE.toml")]
    pub profile: Option<PathBuf>,
    /// DATA's machine-id column (with --profile).
    #[arg(long, value_name = "COLUMN")]
    pub id_column: Option<String>,
    /// DATA's time column: RFC 3339, `YYYY-MM-DD HH:MM:SS` (see --time-zone) or a plain
    /// number such as a cycle count. Without it, rows are in time order.
    #[arg(long, value_name = "COLUMN")]
    pub time_column: Option<String>,
    /// Time zone of times written without an offset (IANA name; default UTC).
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// A column of DATA holding failure labels (empty, 0, false: no failure).
    #[arg(long, value_name = "COLUMN")]
    pub label_column: Option<String>,
    /// A failure log (CSV): machine and time in columns named as DATA's, plus a label column.
    #[arg(long, value_name = "EVENTS.csv")]
    pub events: Option<PathBuf>,
    /// The events file's label column.
    #[arg(long, value_name = "COLUMN")]
    pub event_label_column: Option<String>,
}

/// Which column of a plant's export says a part is NOK: the quality model's label
/// (`--kind quality`). Twin telemetry always has `quality_ok` (NOK: false).
#[derive(Debug, Clone, Default, Args)]
pub struct QualityArgs {
    /// --kind quality on a plant's export: the column of DATA that says whether each reading's
    /// part was good (twin telemetry: its `quality_ok`, always). A quality model carries it, so
    /// evaluate needs it only to override.
    #[arg(long, value_name = "COLUMN")]
    pub quality_column: Option<String>,
    /// --kind quality: the values of --quality-column that mean a NOK part, comma-separated
    /// (compared trimmed and case-insensitively, e.g. `NOK` or `false,0`); any other value is
    /// a good part, an empty cell unknown (good).
    #[arg(long, value_name = "VALUES", value_delimiter = ',')]
    pub nok_values: Vec<String>,
}

impl QualityArgs {
    /// Refuses the quality flags for another kind.
    ///
    /// # Errors
    /// Either flag is set.
    pub fn ensure_unused(&self, kind: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.quality_column.is_none() && self.nok_values.is_empty(),
            "--quality-column and --nok-values belong to --kind quality, not {kind}"
        );
        Ok(())
    }
}

/// Where a plant data set's profile and columns come from: the flags, else the model's recipe.
#[derive(Debug, Clone)]
pub struct PlantSource {
    /// The profile.
    pub profile: dtwin_profile::Profile,
    /// Its TOML text.
    pub text: String,
    /// The export's columns.
    pub columns: Columns,
    /// The model's horizon, when the source is a model.
    pub model_horizon: Option<Horizon>,
}

impl PlantArgs {
    /// The plant source, when DATA is a plant's export: `--profile`, or a model whose recipe
    /// is a profile. None: the twin's or AI4I's formats.
    ///
    /// # Errors
    /// An unreadable or bad profile, or a profile without --id-column.
    pub fn source(&self, model: Option<&ModelArtifact>) -> anyhow::Result<Option<PlantSource>> {
        let from_model = match model.and_then(|m| m.recipe.as_ref()) {
            Some(dtwin_ml::artifact::FeatureRecipe::Profile { horizon, .. }) => {
                let Features::Profile {
                    profile,
                    text,
                    columns,
                } = dtwin_pipeline::train::features_of(
                    model.expect("a recipe has a model"),
                    &dtwin_windows::WindowConfig::default(),
                )?
                .0
                else {
                    unreachable!("a profile recipe gives profile features")
                };
                Some(PlantSource {
                    profile: *profile,
                    text,
                    columns,
                    model_horizon: horizon.parse().ok(),
                })
            }
            _ => None,
        };
        let mut source = match (&self.profile, from_model) {
            (None, None) => {
                for (flag, set) in [
                    ("--id-column", self.id_column.is_some()),
                    ("--time-column", self.time_column.is_some()),
                    ("--events", self.events.is_some()),
                    ("--label-column", self.label_column.is_some()),
                ] {
                    anyhow::ensure!(
                        !set,
                        "{flag} reads a plant's export through a machine profile: add --profile PROFILE.toml (draft one with `dtwin profile init DATA.csv --id-column ... --out PROFILE.toml`)"
                    );
                }
                return Ok(None);
            }
            (None, Some(s)) => s,
            (Some(path), from_model) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read profile {}", path.display()))?;
                let profile = dtwin_profile::Profile::parse(&text, &path.display().to_string())?;
                let id = self
                    .id_column
                    .clone()
                    .or_else(|| from_model.as_ref().map(|s| s.columns.id.clone()));
                let Some(id) = id else {
                    anyhow::bail!(
                        "--profile needs --id-column: the column of DATA that names the machine"
                    );
                };
                PlantSource {
                    profile,
                    text,
                    columns: Columns {
                        id,
                        time: from_model.as_ref().and_then(|s| s.columns.time.clone()),
                        label: None,
                        time_zone: from_model
                            .as_ref()
                            .and_then(|s| s.columns.time_zone.clone()),
                    },
                    model_horizon: from_model.and_then(|s| s.model_horizon),
                }
            }
        };
        if let Some(id) = &self.id_column {
            source.columns.id.clone_from(id);
        }
        if self.time_column.is_some() {
            source.columns.time.clone_from(&self.time_column);
        }
        if self.time_zone.is_some() {
            source.columns.time_zone.clone_from(&self.time_zone);
        }
        if self.label_column.is_some() {
            source.columns.label.clone_from(&self.label_column);
        }
        Ok(Some(source))
    }
}

/// Reads a plant's export and its events log through `source`; the first rows left out go
/// to stderr.
///
/// # Errors
/// Unreadable files, a bad export or log, or an events log without its label column.
pub fn read_plant_data(
    path: &Path,
    source: &PlantSource,
    args: &PlantArgs,
) -> anyhow::Result<(plant::PlantData, Vec<plant::Event>)> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {file}"))?;
    let data = plant::read(&text, &file, &source.profile, &source.columns)?;
    report_skipped(&file, &data.skipped);
    let events = match &args.events {
        None => Vec::new(),
        Some(events) => {
            let Some(label) = &args.event_label_column else {
                anyhow::bail!(
                    "--events needs --event-label-column: the column of {} that holds the failure label",
                    events.display()
                );
            };
            let name = events.display().to_string();
            let text =
                std::fs::read_to_string(events).with_context(|| format!("cannot read {name}"))?;
            plant::read_events(&text, &name, &source.columns, label, data.time)?
        }
    };
    Ok((data, events))
}

/// Reads `path` through `source` and labels it with `horizon` (see [`read_plant_data`]).
///
/// # Errors
/// As [`read_plant_data`].
pub fn read_plant(
    path: &Path,
    source: &PlantSource,
    args: &PlantArgs,
    horizon: Horizon,
) -> anyhow::Result<(Dataset, LabelReport)> {
    let (data, events) = read_plant_data(path, source, args)?;
    Ok(plant_dataset(path, &data, &events, source, horizon))
}

/// Each machine's last reading as a failure (run-to-failure data such as C-MAPSS's training
/// engines).
pub fn run_to_failure_events(data: &plant::PlantData) -> Vec<plant::Event> {
    data.machines
        .iter()
        .filter_map(|s| {
            s.t.last().map(|&t| plant::Event {
                machine: s.id.clone(),
                t,
                label: None,
            })
        })
        .collect()
}

/// Labels an export read by [`read_plant_data`] with `horizon`, sets the recipe and says on
/// stderr what it found.
pub fn plant_dataset(
    path: &Path,
    data: &plant::PlantData,
    events: &[plant::Event],
    source: &PlantSource,
    horizon: Horizon,
) -> (Dataset, LabelReport) {
    let file = path.display().to_string();
    let (mut dataset, report) = plant::dataset(data, &source.profile, events, horizon);
    dataset.recipe = Some(Box::new(plant::recipe(
        &source.text,
        &source.columns,
        horizon,
    )));
    eprintln!(
        "{file}: {} machines, {} readings ({} left out); failures by label: {}{}; {} labelled rows, {} positive",
        data.machines.len(),
        data.rows(),
        data.skipped.len(),
        if report.failures.is_empty() {
            "none".to_owned()
        } else {
            report
                .failures
                .iter()
                .map(|(l, n)| format!("{l} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        if report.events_of_unknown_machines > 0 {
            format!(
                " ({} events of machines not in the data ignored)",
                report.events_of_unknown_machines
            )
        } else {
            String::new()
        },
        report.rows,
        report.positives
    );
    if !data.unused_columns.is_empty() {
        eprintln!(
            "note: columns not in profile {}: {} (add them as sensors to use them)",
            source.profile.id,
            data.unused_columns.join(", ")
        );
    }
    (dataset, report)
}

fn report_skipped(file: &str, skipped: &[(usize, String)]) {
    for (line, why) in skipped.iter().take(5) {
        eprintln!("{file}:{line}: skipped: {why}");
    }
    if skipped.len() > 5 {
        eprintln!("... {} bad rows skipped in all", skipped.len());
    }
}

/// The horizon of a plant data set: the flag, else the model's.
///
/// # Errors
/// Neither is set.
pub fn plant_horizon(flag: Option<Horizon>, source: &PlantSource) -> anyhow::Result<Horizon> {
    flag.or(source.model_horizon).ok_or_else(|| {
        anyhow::anyhow!(
            "say how far ahead to predict: --horizon 24h (time) or --horizon 30 (readings)"
        )
    })
}
