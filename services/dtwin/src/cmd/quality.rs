//! `dtwin train --kind quality`: a second classifier, on the failure classifier's features,
//! predicting a NOK part within the horizon (failures are not counted): twin telemetry's
//! `quality_ok`, or a plant's export with `--quality-column C --nok-values V,...`. The split,
//! the forest and the held-out figures are the failure classifier's; the threshold is the
//! best F1 on the validation machines unless a row target is given (NOK parts are single
//! readings: there is no event view). The artifact is kind `quality`.

use crate::cmd::common::{bar, read_data, LabelArgs, PlantSource, QualityArgs};
use crate::cmd::train::TrainArgs;
use anyhow::Context;
use dtwin_ml::{ClassWeight, ForestParams, ModelArtifact};
use dtwin_pipeline::dataset::{build_quality, quality_from_telemetry, LabelSpec};
use dtwin_pipeline::load::Loaded;
use dtwin_pipeline::plant;
use dtwin_pipeline::quality::{self, NokColumn};
use dtwin_pipeline::{train_on, Dataset, TrainSpec, TwinDataSpec};
use std::path::Path;

/// The NOK column: the flags, else the model's recipe.
///
/// # Errors
/// Values without a column, or a column without values.
pub fn nok_column(
    args: &QualityArgs,
    model: Option<&ModelArtifact>,
) -> anyhow::Result<Option<NokColumn>> {
    let from_model = model.and_then(|m| quality::nok_column_of(m.recipe.as_ref()));
    match (&args.quality_column, from_model) {
        (Some(column), from_model) => {
            let nok = if args.nok_values.is_empty() {
                from_model
                    .filter(|m| &m.column == column)
                    .map(|m| m.nok)
                    .unwrap_or_default()
            } else {
                args.nok_values.clone()
            };
            Ok(Some(NokColumn {
                column: column.clone(),
                nok,
            }))
        }
        (None, Some(mut m)) => {
            if !args.nok_values.is_empty() {
                m.nok.clone_from(&args.nok_values);
            }
            Ok(Some(m))
        }
        (None, None) => {
            anyhow::ensure!(
                args.nok_values.is_empty(),
                "--nok-values needs --quality-column: the column whose values they are"
            );
            Ok(None)
        }
    }
}

/// The quality data set of DATA: twin telemetry labelled by `quality_ok`, or a plant's export
/// (`source`) labelled by the NOK column within the horizon (the flag, else `model_horizon`).
///
/// # Errors
/// AI4I's table, a plant's export without a NOK column or horizon, failure flags, unreadable
/// files.
pub fn read(
    path: &Path,
    label: &LabelArgs,
    source: Option<&PlantSource>,
    nok: Option<&NokColumn>,
    twin_label: LabelSpec,
) -> anyhow::Result<Dataset> {
    anyhow::ensure!(
        !label.include_nok,
        "--include-nok folds NOK parts into the failure label; a quality model's label is the NOK part itself"
    );
    let Some(source) = source else {
        anyhow::ensure!(
            nok.is_none(),
            "--quality-column reads a plant's export through a machine profile: add --profile PROFILE.toml and --id-column (twin telemetry has quality_ok)"
        );
        return match read_data(path)? {
            Loaded::Telemetry(rows, _) => Ok(quality_from_telemetry(&rows, twin_label)),
            Loaded::Ai4i(_) => anyhow::bail!(
                "{} is AI4I's table: it records no part quality (no NOK column) and no machines to split by; train a quality model on twin telemetry (`dtwin generate`, its quality_ok column) or a plant's export with --quality-column",
                path.display()
            ),
        };
    };
    let Some(nok) = nok else {
        anyhow::bail!(
            "a quality model on a plant's export needs the column that records each part's result: --quality-column COLUMN --nok-values NOK (the value(s) that mean a NOK part)"
        );
    };
    quality::check(nok, &source.profile)?;
    anyhow::ensure!(
        label.plant.events.is_none() && source.columns.label.is_none(),
        "--events and --label-column give failures, which a quality model does not count; its label is --quality-column"
    );
    let horizon = label.horizon.or(source.model_horizon).ok_or_else(|| {
        anyhow::anyhow!(
            "say how far ahead a NOK part counts: --horizon 30 (readings) or --horizon 8h (time)"
        )
    })?;
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {file}"))?;
    let data = plant::read(&text, &file, &source.profile, &source.columns)?;
    let flags = quality::nok_flags(&text, &file, &data, &source.profile, nok)?;
    let (mut dataset, report) = plant::nok_dataset(&data, &source.profile, &flags, horizon);
    dataset.recipe = Some(Box::new(quality::recipe(
        &source.text,
        &source.columns,
        horizon,
        nok,
    )));
    let parts = flags.iter().flatten().filter(|&&f| f).count();
    eprintln!(
        "{file}: {} machines, {} readings ({} left out); {parts} NOK parts ({}); {} labelled rows, {} positive",
        data.machines.len(),
        data.rows(),
        data.skipped.len(),
        nok.describe(),
        report.rows,
        report.positives
    );
    Ok(dataset)
}

/// `dtwin train --kind quality`.
///
/// # Errors
/// Flags of other kinds, unsuitable data (AI4I, fewer than 3 machines, no NOK part), or an
/// artifact that cannot be written.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rul_cap.is_none() && !args.run_to_failure,
        "--rul-cap and --run-to-failure belong to --kind rul (and anomaly): a quality model counts NOK parts, not failures"
    );
    anyhow::ensure!(
        args.anomaly_rate.is_none() && args.healthy_first.is_none() && args.max_samples.is_none(),
        "--anomaly-rate, --healthy-first and --max-samples belong to --kind anomaly"
    );
    anyhow::ensure!(
        args.target.target_event_recall.is_none(),
        "--target-event-recall counts failures caught; a quality model's threshold takes --target-recall or --target-precision (default: best F1)"
    );
    let label = args.label.spec()?;
    let n_trees = args.trees.unwrap_or(100);
    let spec = TrainSpec {
        data: TwinDataSpec {
            machines: args.machines,
            steps: args.steps,
            seed: args.data_seed,
            horizon: label.horizon,
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
        model_id: if args.model_id == "dtwin-rf" {
            "dtwin-quality".to_owned()
        } else {
            args.model_id.clone()
        },
        version: args.model_version.clone(),
        target: args.target.target()?,
        source: args.data.as_ref().map(|p| p.display().to_string()),
    };
    let nok = nok_column(&args.quality, None)?;
    let data = match &args.data {
        None => {
            anyhow::ensure!(
                nok.is_none(),
                "--quality-column reads a plant's export (DATA with --profile); the simulated fleet has quality_ok"
            );
            let machines = bar(args.machines, "simulate", args.json);
            let d = build_quality(&spec.data, &|_| machines.inc(1));
            machines.finish();
            d
        }
        Some(path) => {
            let source = args.label.plant.source(None)?;
            let d = read(path, &args.label, source.as_ref(), nok.as_ref(), label)?;
            anyhow::ensure!(
                d.y.iter().any(|&y| y),
                "no reading of {} is followed by a NOK part within the horizon: check --quality-column and --nok-values, or widen --horizon",
                path.display()
            );
            anyhow::ensure!(
                d.n_machines() >= 3,
                "{} has {} machines; the split by machine needs at least 3",
                path.display(),
                d.n_machines()
            );
            d
        }
    };
    let trees = bar(n_trees, "train", args.json);
    let (artifact, report) = train_on(&data, &spec, &|| trees.inc(1))?;
    trees.finish();
    let artifact = artifact.into_quality();
    let bytes = artifact.to_json();
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "wrote {} ({} KiB, {} trees, kind quality, label: {})",
            args.out.display(),
            bytes.len() / 1024,
            n_trees,
            artifact.label
        );
        crate::cmd::train::print_report(&report);
    }
    Ok(())
}
