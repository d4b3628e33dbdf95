//! `dtwin evaluate MODEL DATA`: a model's card on a data file. Metrics at the model's threshold
//! and at one chosen for a target, the confusion matrix, cross-validation (folds of machines
//! split by time on twin data, stratified folds on AI4I), the event view on twin data, and the
//! charts; written into --out-dir as model_card.json, model_card.html and SVG files. The
//! splits are the pipeline's ([`dtwin_pipeline::evaluate`]): never random rows of twin data.

use crate::cmd::common::{
    bar, plant_horizon, read_eval_data, read_model, read_plant, read_plant_data, LabelArgs,
    TargetArgs,
};
use anyhow::Context;
use clap::Args;
use dtwin_ml::{ModelArtifact, ModelKind};
use dtwin_pipeline::evaluate::{EvalReport, Metrics};
use dtwin_pipeline::events::{AlertPolicy, EventReport};
use dtwin_pipeline::modelcard;
use dtwin_pipeline::rul;
use dtwin_pipeline::train::Features;
use dtwin_pipeline::{evaluate, EvalData, EvalOptions, ThresholdTarget};
use std::path::{Path, PathBuf};

/// `dtwin evaluate` flags.
#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// The model artifact.
    pub model: PathBuf,
    /// The data: a telemetry CSV or AI4I's CSV (format told from the header).
    pub data: PathBuf,
    /// Folder for model_card.json, model_card.html and the SVG charts (created if missing).
    #[arg(long, default_value = "evaluation")]
    pub out_dir: PathBuf,
    /// Cross-validation folds (0: none).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Evaluate on every row instead of the held-out part (for data the model never saw, e.g.
    /// a fresh `dtwin generate` fleet); cross-validation then runs on every row too.
    #[arg(long)]
    pub all_rows: bool,
    /// How twin data is labelled (as the model was trained).
    #[command(flatten)]
    pub label: LabelArgs,
    /// Threshold target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The true remaining life of each machine after its last reading in DATA, one number per
    /// line in the order the machines first appear (NASA's RUL_FD001.txt), or `machine,value`
    /// lines; each machine's last reading is scored (rul models; anomaly models against
    /// --fails-within).
    #[arg(long, value_name = "RUL.txt")]
    pub rul_truth: Option<PathBuf>,
    /// Each machine's last reading in DATA is a failure (rul models without --rul-truth: every
    /// warm reading is then scored against its own remaining life; anomaly models: the label
    /// the score is measured against).
    #[arg(long)]
    pub run_to_failure: bool,
    /// An anomaly model with --rul-truth: a machine whose true remaining life is at most this
    /// (in the time column's units, e.g. cycles) counts as failing (default 30); the ROC-AUC is
    /// of the last reading's score against it.
    #[arg(long, value_name = "LIFE")]
    pub fails_within: Option<f64>,
    /// A quality model on a plant's export: the NOK column (default: the model's).
    #[command(flatten)]
    pub quality: crate::cmd::common::QualityArgs,
    /// Print the report (the model card's JSON) instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs `dtwin evaluate`; returns the report (None for a rul model: see [`run_rul`]).
///
/// # Errors
/// Bad flags, model or data; a model trained on other features; too few machines for the
/// folds; a fold with one class; a file that cannot be written.
pub fn run(args: &EvaluateArgs) -> anyhow::Result<Option<EvalReport>> {
    anyhow::ensure!(args.folds != 1, "--folds must be 0 (none) or at least 2");
    let model = read_model(&args.model)?;
    match model.kind {
        ModelKind::Rul => return run_rul(args, &model).map(|_| None),
        ModelKind::Anomaly => return crate::cmd::anomaly::evaluate(args, &model).map(|_| None),
        ModelKind::Classifier | ModelKind::Quality => {}
    }
    anyhow::ensure!(
        args.rul_truth.is_none() && !args.run_to_failure && args.fails_within.is_none(),
        "{} is a {} classifier: --rul-truth and --run-to-failure score remaining-useful-life models (train one with `dtwin train DATA --profile P --kind rul`) and anomaly models",
        args.model.display(),
        if model.kind == ModelKind::Quality { "quality" } else { "failure" }
    );
    let data = if model.kind == ModelKind::Quality {
        anyhow::ensure!(
            args.target.target_event_recall.is_none(),
            "--target-event-recall counts failures caught; a quality model takes --target-recall or --target-precision"
        );
        let source = args.label.plant.source(Some(&model))?;
        let nok = crate::cmd::quality::nok_column(&args.quality, Some(&model))?;
        let mut label = args.label.spec()?;
        if source.is_none() {
            if let Features::Windows(window) =
                crate::cmd::predict::model_features(&model, &args.label.window, &args.model)?
            {
                label.window = window;
            }
        }
        EvalData::Twin(crate::cmd::quality::read(
            &args.data,
            &args.label,
            source.as_ref(),
            nok.as_ref(),
            label,
        )?)
    } else {
        args.quality.ensure_unused("a failure classifier")?;
        classifier_data(args, &model)?
    };
    let target = match (&data, args.target.target()?) {
        (_, Some(t)) => t,
        (EvalData::Twin(d), None) => dtwin_pipeline::train::default_target(d),
        (EvalData::Tabular(_), None) => ThresholdTarget::BestF1,
    };
    if let EvalData::Twin(d) = &data {
        if model.label != d.description {
            eprintln!(
                "warning: the model predicts \"{}\", the data is labelled \"{}\" (set --horizon, --label-modes, --include-nok as in training)",
                model.label, d.description
            );
        }
        let machines = d.n_machines();
        let outside = if args.all_rows {
            machines
        } else {
            machines - machines.div_ceil(5)
        };
        anyhow::ensure!(
            args.folds == 0 || outside >= args.folds,
            "{} has {machines} machines, {outside} of them for cross-validation; --folds {} needs at least {} (or use --all-rows, or fewer folds)",
            args.data.display(),
            args.folds,
            args.folds
        );
    }
    let opts = EvalOptions {
        target: Some(target),
        folds: args.folds,
        all_rows: args.all_rows,
        policy: AlertPolicy::default(),
    };
    let folds = bar(args.folds, "folds", args.json);
    let report = evaluate(
        &model,
        &data,
        &args.data.display().to_string(),
        &opts,
        &|| folds.inc(1),
    )
    .with_context(|| {
        format!(
            "evaluating {} on {}",
            args.model.display(),
            args.data.display()
        )
    })?;
    folds.finish_and_clear();
    let written = write_card(&report, &args.out_dir)?;
    if args.json {
        println!("{}", modelcard::to_json(&report));
    } else {
        print_summary(&report);
    }
    eprintln!(
        "wrote {} into {}",
        written.join(", "),
        args.out_dir.display()
    );
    Ok(Some(report))
}

/// DATA labelled for a failure classifier: a plant's export through the flags' profile and
/// columns, else the model's recipe; telemetry through the model's windows; AI4I's table.
fn classifier_data(args: &EvaluateArgs, model: &ModelArtifact) -> anyhow::Result<EvalData> {
    Ok(match args.label.plant.source(Some(model))? {
        Some(source) => {
            let horizon = plant_horizon(args.label.horizon, &source)?;
            EvalData::Twin(read_plant(&args.data, &source, &args.label.plant, horizon)?.0)
        }
        None => {
            let mut label = args.label.spec()?;
            // The windows come from the artifact's recipe (or its hash, or the flags for an
            // old one).
            if let Features::Windows(window) =
                crate::cmd::predict::model_features(model, &args.label.window, &args.model)?
            {
                label.window = window;
            }
            read_eval_data(&args.data, label)?
        }
    })
}

/// `dtwin evaluate` of a remaining-useful-life model: each machine's last reading against
/// --rul-truth, or with failures in DATA (--label-column, --events, --run-to-failure) every
/// warm reading against its own capped remaining life. Writes the card into --out-dir.
///
/// # Errors
/// Bad flags, data or truth file; data without failures and no --rul-truth; a file that
/// cannot be written.
pub fn run_rul(args: &EvaluateArgs, model: &ModelArtifact) -> anyhow::Result<rul::RulReport> {
    let (_, meta) = model.regressor()?;
    args.quality.ensure_unused("a rul model")?;
    anyhow::ensure!(
        args.fails_within.is_none(),
        "--fails-within scores an anomaly model's last readings; a rul model predicts the remaining life itself"
    );
    let Some(source) = args.label.plant.source(Some(model))? else {
        anyhow::bail!(
            "{} has no profile recipe: give --profile PROFILE.toml and --id-column",
            args.model.display()
        );
    };
    let file = args.data.display().to_string();
    let (data, events) = read_plant_data(&args.data, &source, &args.label.plant)?;
    let report = match &args.rul_truth {
        Some(truth_path) => {
            let name = truth_path.display().to_string();
            let text = std::fs::read_to_string(truth_path)
                .with_context(|| format!("cannot read {name}"))?;
            let truth = rul::parse_truth(&text, &name).map_err(anyhow::Error::msg)?;
            rul::evaluate_last(model, &data, &source.profile, &truth, &file)
        }
        None => {
            let set = rul::dataset(
                &data,
                &source.profile,
                &events,
                meta.cap,
                args.run_to_failure,
            );
            anyhow::ensure!(
                set.failures > 0,
                "{} is a remaining-useful-life model and {file} has no failure to measure it against: \
                 give --rul-truth RUL.txt (each machine's true remaining life after its last reading), \
                 or the failures (--label-column, --events, or --run-to-failure when each machine's last reading is its failure)",
                args.model.display()
            );
            rul::evaluate_rows(model, &set, &file)
        }
    }
    .with_context(|| format!("evaluating {} on {file}", args.model.display()))?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let chart = rul::chart(&report);
    let json = serde_json::to_string_pretty(&report)?;
    let files = [
        ("model_card.json".to_owned(), json.clone() + "\n"),
        (
            "model_card.html".to_owned(),
            rul::to_html(&report, &chart.file),
        ),
        (chart.file.clone(), chart.svg),
    ];
    for (name, text) in &files {
        let path = args.out_dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        let m = &report.metrics;
        println!(
            "{} v{} on {file} ({} machines): {}",
            report.model.model_id, report.model.version, report.machines, report.evaluated_on
        );
        println!(
            "  RMSE {:.2}  MAE {:.2}  mean error {:+.2}  NASA score {:.1}  ({} scored, {})",
            m.rmse, m.mae, m.mean_error, m.nasa_score, m.n, report.model.unit
        );
        let c = &report.metrics_capped_truth;
        println!(
            "  against the truth capped at {}: RMSE {:.2}  NASA score {:.1}",
            report.model.cap, c.rmse, c.nasa_score
        );
        if let Some(w) = report.within_interval {
            println!(
                "  truth inside the 5-95 % tree interval: {:.0} % of the machines",
                w * 100.0
            );
        }
        let mut worst: Vec<&rul::UnitError> = report.units.iter().collect();
        worst.sort_by(|a, b| b.error.abs().total_cmp(&a.error.abs()));
        for u in worst.iter().take(5) {
            println!(
                "  {}: predicted {:.1} [{:.1}, {:.1}], true {}, error {:+.1}",
                u.machine, u.predicted, u.lo, u.hi, u.truth, u.error
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

/// Writes the card's JSON, HTML and charts into `dir`; returns the file names.
fn write_card(report: &EvalReport, dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let charts = modelcard::charts(report);
    let links: Vec<(String, String)> = charts
        .iter()
        .map(|c| (c.title.clone(), c.file.clone()))
        .collect();
    let mut files = vec![
        (
            "model_card.json".to_owned(),
            modelcard::to_json(report) + "\n",
        ),
        (
            "model_card.html".to_owned(),
            modelcard::to_html(report, &links),
        ),
    ];
    files.extend(charts.into_iter().map(|c| (c.file, c.svg)));
    for (name, text) in &files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(files.into_iter().map(|f| f.0).collect())
}

fn print_metrics(m: &Metrics) {
    println!(
        "  accuracy {:.4}  precision {:.4}  recall {:.4}  F1 {:.4}  ROC-AUC {:.4}  PR-AUC {:.4}",
        m.accuracy, m.precision, m.recall, m.f1, m.roc_auc, m.pr_auc
    );
    println!("  confusion matrix   predicted no  predicted yes");
    println!("    actual no        {:>12}  {:>13}", m.tn, m.fp);
    println!("    actual yes       {:>12}  {:>13}", m.fn_, m.tp);
}

fn print_events(e: &EventReport) {
    println!(
        "  events: {}/{} failures caught (event recall {:.3}), median lead {:.0} readings ({:.0} min), {} alerts of which {} false (share {:.3}), {:.2} false alarms per machine-day; other modes caught {}/{}",
        e.caught,
        e.failures,
        e.event_recall,
        e.median_lead_readings,
        e.median_lead_minutes,
        e.alerts,
        e.false_alarms,
        e.false_alarm_share,
        e.false_alarms_per_machine_day,
        e.other_caught,
        e.other_failures
    );
}

fn print_summary(r: &EvalReport) {
    let d = &r.data;
    println!(
        "{} v{} on {} ({}{}): {} rows, {} positive; evaluated on {} rows ({})",
        r.model.model_id,
        r.model.version,
        d.source,
        d.kind,
        d.machines
            .map(|m| format!(", {m} machines"))
            .unwrap_or_default(),
        d.rows,
        d.positives,
        d.evaluated_rows,
        d.evaluated_on
    );
    println!("label: {}", d.label);
    println!(
        "at the model's threshold {:.3}:",
        r.at_model_threshold.threshold
    );
    print_metrics(&r.at_model_threshold);
    if let Some(e) = &r.events {
        print_events(e);
    }
    if let Some(cv) = &r.cross_validation {
        println!("cross-validation ({}):", cv.split);
        println!(
            "  ROC-AUC {:.4} ± {:.4}  PR-AUC {:.4} ± {:.4}  F1 {:.4} ± {:.4}  precision {:.4} ± {:.4}  recall {:.4} ± {:.4}",
            cv.roc_auc.mean,
            cv.roc_auc.sd,
            cv.pr_auc.mean,
            cv.pr_auc.sd,
            cv.f1.mean,
            cv.f1.sd,
            cv.precision.mean,
            cv.precision.sd,
            cv.recall.mean,
            cv.recall.sd
        );
        if let Some(er) = &cv.event_recall {
            println!("  event recall {:.4} ± {:.4}", er.mean, er.sd);
        }
    }
    if let Some(c) = &r.chosen {
        if c.metrics.threshold.is_nan() {
            println!("no threshold reaches {} on the {}", c.target, c.chosen_on);
        } else {
            println!(
                "threshold for {} (chosen on the {}): {:.3}",
                c.target, c.chosen_on, c.metrics.threshold
            );
            print_metrics(&c.metrics);
            if let Some(e) = &c.events {
                print_events(e);
            }
        }
    }
}
