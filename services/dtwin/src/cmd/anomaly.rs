//! `dtwin train --kind anomaly` (an Isolation Forest on healthy readings, no failure labels
//! needed) and `dtwin evaluate` of such a model; the pipeline side is
//! [`dtwin_pipeline::anomaly`].

use crate::cmd::common::{
    bar, plant_dataset, read_eval_data, read_plant_data, run_to_failure_events, PlantSource,
};
use crate::cmd::train::TrainArgs;
use anyhow::Context;
use dtwin_ml::IsolationParams;
use dtwin_pipeline::anomaly::{self, AnomalySpec, Healthy};
use dtwin_pipeline::dataset::{build, DEFAULT_HORIZON};
use dtwin_pipeline::plant::Horizon;
use dtwin_pipeline::{Dataset, EvalData, TwinDataSpec};
use std::path::Path;

/// A data set for an anomaly model, and each row's time since its machine's first reading
/// when the data is a plant's export (for `--healthy-first` in time units).
pub struct AnomalyData {
    /// The labelled rows (labels: a counted failure within the horizon, when there are
    /// failures).
    pub data: Dataset,
    /// Time since each row's machine's first reading (plant exports).
    pub since_start: Option<Vec<f64>>,
    /// What the time column holds (None: twin telemetry).
    pub time: Option<dtwin_pipeline::plant::TimeKind>,
}

/// Reads a plant's export for an anomaly model: failures from the label column, events or
/// `run_to_failure`; the horizon is `horizon`, else the model's, else (no failures) 30
/// readings.
///
/// # Errors
/// Unreadable files; failures without a horizon.
pub fn plant_data(
    path: &Path,
    source: &PlantSource,
    plant_args: &crate::cmd::common::PlantArgs,
    horizon: Option<Horizon>,
    run_to_failure: bool,
) -> anyhow::Result<AnomalyData> {
    let (plant, mut events) = read_plant_data(path, source, plant_args)?;
    if run_to_failure {
        events.extend(run_to_failure_events(&plant));
    }
    let has_failures = !events.is_empty()
        || plant
            .machines
            .iter()
            .any(|s| s.labels.iter().any(Option::is_some));
    let horizon = match horizon.or(source.model_horizon) {
        Some(h) => h,
        None if !has_failures => Horizon::Readings(DEFAULT_HORIZON),
        None => anyhow::bail!(
            "{} has failures: say how far ahead they count (the healthy readings are those with no failure within it), e.g. --horizon 30 (readings or cycles) or --horizon 24h",
            path.display()
        ),
    };
    let (data, _) = plant_dataset(path, &plant, &events, source, horizon);
    let since = anomaly::since_start(&plant, &data);
    Ok(AnomalyData {
        data,
        since_start: Some(since),
        time: Some(plant.time),
    })
}

/// `dtwin train --kind anomaly`.
///
/// # Errors
/// Flags of other kinds, unreadable or unsuitable data (AI4I's table, fewer than 3 machines,
/// no healthy reading), or an artifact that cannot be written.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rul_cap.is_none(), "--rul-cap belongs to --kind rul");
    anyhow::ensure!(
        args.target.target()?.is_none(),
        "the threshold targets (--target-recall, --target-precision, --target-event-recall) belong to classifiers; an anomaly model's threshold is set by --anomaly-rate (the share of held-out machines' healthy readings it flags)"
    );
    anyhow::ensure!(
        args.class_weight == "balanced",
        "--class-weight belongs to the classifiers"
    );
    args.quality.ensure_unused("--kind anomaly")?;
    let rate = args.anomaly_rate.unwrap_or(anomaly::DEFAULT_RATE);
    let defaults = IsolationParams::default();
    let params = IsolationParams {
        n_trees: args.trees.unwrap_or(defaults.n_trees),
        max_samples: args.max_samples.unwrap_or(defaults.max_samples),
        max_depth: args.max_depth,
        seed: args.seed,
    };
    let set = match &args.data {
        None => {
            anyhow::ensure!(
                !args.run_to_failure,
                "--run-to-failure reads a plant's export (DATA with --profile); the simulated fleet has its own failures"
            );
            let label = args.label.spec()?;
            let spec = TwinDataSpec {
                machines: args.machines,
                steps: args.steps,
                seed: args.data_seed,
                horizon: label.horizon,
                include_nok: label.include_nok,
                modes: label.modes,
                window: label.window.clone(),
                ..TwinDataSpec::default()
            };
            let machines = bar(args.machines, "simulate", args.json);
            let data = build(&spec, &|_| machines.inc(1));
            machines.finish();
            AnomalyData {
                data,
                since_start: None,
                time: None,
            }
        }
        Some(path) => match args.label.plant.source(None)? {
            Some(source) => plant_data(
                path,
                &source,
                &args.label.plant,
                args.label.horizon,
                args.run_to_failure,
            )?,
            None => {
                anyhow::ensure!(
                    !args.run_to_failure,
                    "--run-to-failure reads a plant's export: add --profile PROFILE.toml and --id-column"
                );
                match read_eval_data(path, args.label.spec()?)? {
                    EvalData::Twin(data) => AnomalyData {
                        data,
                        since_start: None,
                        time: None,
                    },
                    EvalData::Tabular(_) => anyhow::bail!(
                        "{} is AI4I's table of independent cycles: it has no machines and no history, so there is nothing to split by machine nor a first part of history to take as healthy. Train an anomaly model on twin telemetry (`dtwin generate`) or a plant's export (--profile)",
                        path.display()
                    ),
                }
            }
        },
    };
    let AnomalyData {
        data,
        since_start,
        time,
    } = set;
    let has_failures = data.failures.iter().any(|f| f.counted);
    let rule = match &args.healthy_first {
        Some(text) => anomaly::parse_first(text, time).map_err(anyhow::Error::msg)?,
        None if has_failures => Healthy::NoFailureAhead,
        None => Healthy::FirstShare(anomaly::DEFAULT_FIRST_SHARE),
    };
    let mask = anomaly::healthy_mask(&data, &rule, since_start.as_deref());
    let healthy_rows = mask.iter().filter(|&&h| h).count();
    let source = args.data.as_ref().map_or_else(
        || {
            format!(
                "twin: {} machines x {} steps, seed {}",
                args.machines, args.steps, args.data_seed
            )
        },
        |p| p.display().to_string(),
    );
    eprintln!(
        "{source}: {} machines, {} warm rows, {healthy_rows} healthy ({}){}",
        data.n_machines(),
        data.y.len(),
        rule.describe(&data),
        if has_failures {
            ""
        } else {
            "; no failures, so no held-out ROC-AUC or event view (give --label-column, --events or --run-to-failure to measure one)"
        }
    );
    let spec = AnomalySpec {
        model_id: if args.model_id == "dtwin-rf" {
            "dtwin-anomaly".to_owned()
        } else {
            args.model_id.clone()
        },
        version: args.model_version.clone(),
        source,
        rate,
        params: params.clone(),
    };
    let trees = bar(params.n_trees, "train", args.json);
    let (artifact, report) = anomaly::train(&data, &mask, &rule, &spec, &|| trees.inc(1))?;
    trees.finish();
    let bytes = artifact.to_json();
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "wrote {} ({} KiB, {} trees of {} readings, anomaly threshold {:.4})",
        args.out.display(),
        bytes.len() / 1024,
        params.n_trees,
        params.max_samples,
        report.threshold
    );
    println!(
        "healthy: {}; fitted on {} readings of {} machines; threshold flags {:.2} % of the {} validation machines' {} healthy readings (asked {:.2} %), {:.2} % of the {} held-out machines' {} (fit {:.3} s)",
        report.healthy,
        report.fit_rows,
        report.machines.train,
        report.validation_healthy_flagged * 100.0,
        report.machines.validation,
        report.validation_healthy_rows,
        rate * 100.0,
        report.test_healthy_flagged * 100.0,
        report.machines.test,
        report.test_healthy_rows,
        report.fit_seconds
    );
    if let Some(m) = &report.test {
        println!(
            "held-out against \"{}\": ROC-AUC {:.4} PR-AUC {:.4}; at the threshold precision {:.3} recall {:.3} ({} rows, {} positive)",
            report.label, m.roc_auc, m.pr_auc, m.precision, m.recall, m.rows, m.positives
        );
    }
    if let Some(e) = &report.events {
        println!(
            "events: {}/{} failures caught ({:.3}), median lead {:.0} readings, {} alerts of which {} false ({:.2} per machine-day); other modes caught {}/{}",
            e.caught,
            e.failures,
            e.event_recall,
            e.median_lead_readings,
            e.alerts,
            e.false_alarms,
            e.false_alarms_per_machine_day,
            e.other_caught,
            e.other_failures
        );
    }
    Ok(())
}

/// `dtwin evaluate` of an anomaly model: every reading of the held-out machines (or every
/// machine with --all-rows) against the data's label, with the event view when the data has
/// failures; or with --rul-truth each machine's last reading against "fails within
/// --fails-within". Writes the card into --out-dir.
///
/// # Errors
/// Flags of other kinds, unsuitable data, a truth file that does not fit, a file that cannot
/// be written.
pub fn evaluate(
    args: &crate::cmd::evaluate::EvaluateArgs,
    model: &dtwin_ml::ModelArtifact,
) -> anyhow::Result<anomaly::AnomalyReport> {
    args.quality.ensure_unused("an anomaly model")?;
    anyhow::ensure!(
        args.target.target()?.is_none(),
        "an anomaly model keeps the threshold it was trained with (set by --anomaly-rate); the threshold targets are for classifiers"
    );
    let file = args.data.display().to_string();
    let source = args.label.plant.source(Some(model))?;
    let report = if let Some(truth_path) = &args.rul_truth {
        let within = args.fails_within.unwrap_or(30.0);
        anyhow::ensure!(
            within.is_finite() && within >= 0.0,
            "--fails-within {within}: give a remaining life such as 30"
        );
        let Some(source) = source else {
            anyhow::bail!(
                "--rul-truth scores each machine's last reading of a plant's export: {} has no profile recipe, so give --profile PROFILE.toml and --id-column",
                args.model.display()
            );
        };
        let (data, _) = read_plant_data(&args.data, &source, &args.label.plant)?;
        let name = truth_path.display().to_string();
        let text =
            std::fs::read_to_string(truth_path).with_context(|| format!("cannot read {name}"))?;
        let truth = dtwin_pipeline::rul::parse_truth(&text, &name).map_err(anyhow::Error::msg)?;
        anomaly::evaluate_last(model, &data, &source.profile, &truth, within, &file)
    } else {
        anyhow::ensure!(
            args.fails_within.is_none(),
            "--fails-within goes with --rul-truth (each machine's last reading against its true remaining life)"
        );
        let data = match &source {
            Some(source) => {
                plant_data(
                    &args.data,
                    source,
                    &args.label.plant,
                    args.label.horizon,
                    args.run_to_failure,
                )?
                .data
            }
            None => {
                anyhow::ensure!(
                    !args.run_to_failure,
                    "--run-to-failure reads a plant's export: add --profile PROFILE.toml and --id-column"
                );
                let mut label = args.label.spec()?;
                if let dtwin_pipeline::train::Features::Windows(w) =
                    crate::cmd::predict::model_features(model, &args.label.window, &args.model)?
                {
                    label.window = w;
                }
                match read_eval_data(&args.data, label)? {
                    EvalData::Twin(d) => d,
                    EvalData::Tabular(_) => anyhow::bail!(
                        "{file} is AI4I's table: an anomaly model scores twin telemetry or a plant's export"
                    ),
                }
            }
        };
        let (rows, on) = if args.all_rows {
            ((0..data.y.len()).collect::<Vec<_>>(), "every reading")
        } else {
            (
                data.rows_where(|m| m % 5 == 0),
                "every reading of the held-out machines (index % 5 == 0; the model fitted on index % 5 >= 2 and set its threshold on == 1)",
            )
        };
        anomaly::evaluate_rows(model, &data, &rows, on, &file)
    }
    .with_context(|| format!("evaluating {} on {file}", args.model.display()))?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let charts = dtwin_pipeline::modelcard::anomaly_charts(&report);
    let links: Vec<(String, String)> = charts
        .iter()
        .map(|c| (c.title.clone(), c.file.clone()))
        .collect();
    let json = serde_json::to_string_pretty(&report)?;
    let mut files = vec![
        ("model_card.json".to_owned(), json.clone() + "\n"),
        (
            "model_card.html".to_owned(),
            dtwin_pipeline::modelcard::anomaly_html(&report, &links),
        ),
    ];
    files.extend(charts.into_iter().map(|c| (c.file, c.svg)));
    for (name, text) in &files {
        let path = args.out_dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        let m = &report.metrics;
        println!(
            "{} v{} (anomaly, threshold {:.4}) on {file} ({} machines): {}",
            report.model.model_id,
            report.model.version,
            report.model.threshold,
            report.machines,
            report.evaluated_on
        );
        println!(
            "  {} readings, {} positive ({}); flagged {:.2} %, of the negatives {:.2} %",
            report.rows,
            report.positives,
            report.label,
            report.flagged * 100.0,
            report.healthy_flagged * 100.0
        );
        println!(
            "  ROC-AUC {:.4}  PR-AUC {:.4}  at the threshold: precision {:.4} recall {:.4} (TN {} FP {} FN {} TP {})",
            m.roc_auc, m.pr_auc, m.precision, m.recall, m.tn, m.fp, m.fn_, m.tp
        );
        if let Some(e) = &report.events {
            println!(
                "  events: {}/{} failures caught (event recall {:.3}), median lead {:.0} readings, {} alerts of which {} false ({:.2} per machine-day)",
                e.caught,
                e.failures,
                e.event_recall,
                e.median_lead_readings,
                e.alerts,
                e.false_alarms,
                e.false_alarms_per_machine_day
            );
        }
    }
    eprintln!(
        "wrote {} into {}",
        files
            .iter()
            .map(|f| f.0.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        args.out_dir.display()
    );
    Ok(report)
}
