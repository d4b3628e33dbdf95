//! `dtwin profile`: draft a machine profile from a plant's CSV export (`init`) and check one
//! (`check`). The drafting itself is pure (`dtwin_profile::draft`); this reads the file.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `dtwin profile` flags.
#[derive(Debug, Clone, Args)]
pub struct ProfileArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ProfileCommand,
}

/// `dtwin profile` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ProfileCommand {
    /// Draft a profile from a CSV export: numeric columns become sensors with the ranges seen,
    /// text columns with few values become attributes, the label column the failure labels.
    Init(InitArgs),
    /// Check a profile: says what is wrong with the file and line, or what it describes.
    Check {
        /// The profile (TOML).
        file: PathBuf,
    },
}

/// `dtwin profile init` flags.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// The export (CSV with a header row).
    pub data: PathBuf,
    /// The column naming the machine (left out of the sensors).
    #[arg(long)]
    pub id_column: String,
    /// The timestamp column (left out of the sensors).
    #[arg(long)]
    pub time_column: Option<String>,
    /// A column of failure labels (empty: no failure); its values become the profile's labels.
    #[arg(long)]
    pub label_column: Option<String>,
    /// The profile's id (default: the output file's name).
    #[arg(long)]
    pub id: Option<String>,
    /// Where to write the profile.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the output file if it exists (a hand-edited profile is not overwritten by
    /// default).
    #[arg(long)]
    pub force: bool,
}

/// Runs the subcommand; returns what it printed.
///
/// # Errors
/// An unreadable or malformed CSV, a column that is not in it, an existing output file
/// without `--force`, or (for `check`) a bad profile, as `file:line: reason`.
pub fn run(args: &ProfileArgs) -> anyhow::Result<String> {
    let out = match &args.command {
        ProfileCommand::Init(a) => init(a)?,
        ProfileCommand::Check { file } => check(file)?,
    };
    println!("{out}");
    Ok(out)
}

/// Headers (as feature names) that hold failure labels in common exports.
const LABEL_HEADERS: [&str; 9] = [
    "failure",
    "failures",
    "failure_type",
    "failure_mode",
    "machine_failure",
    "label",
    "fault",
    "target",
    "failed",
];

fn check(file: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read profile {}", file.display()))?;
    let p = dtwin_profile::Profile::parse(&text, &file.display().to_string())?;
    Ok(format!(
        "{}: profile {:?}: {} sensors ({}), {} derived, {} attributes, {} failure labels ({} counted)",
        file.display(),
        p.id,
        p.sensors.len(),
        p.sensors
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        p.derived.len(),
        p.attributes.len(),
        p.failures.labels.len(),
        p.failures.counted.len()
    ))
}

fn init(a: &InitArgs) -> anyhow::Result<String> {
    anyhow::ensure!(
        a.force || !a.out.exists(),
        "{} exists; pass --force to replace it",
        a.out.display()
    );
    let mut reader = csv::Reader::from_path(&a.data)
        .with_context(|| format!("cannot read {}", a.data.display()))?;
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("no header row in {}", a.data.display()))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_owned())
        .collect();
    for (flag, col) in [
        ("--id-column", Some(&a.id_column)),
        ("--time-column", a.time_column.as_ref()),
        ("--label-column", a.label_column.as_ref()),
    ] {
        if let Some(col) = col {
            anyhow::ensure!(
                headers.contains(col),
                "{flag} {col:?} is not a column of {} (columns: {})",
                a.data.display(),
                headers.join(", ")
            );
        }
    }
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); headers.len()];
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{} row {}", a.data.display(), i + 2))?;
        for (col, v) in cells.iter_mut().zip(record.iter()) {
            col.push(v.to_owned());
        }
    }
    let skip = [Some(&a.id_column), a.time_column.as_ref()];
    let columns: Vec<dtwin_profile::draft::Column<'_>> = headers
        .iter()
        .zip(&cells)
        .filter(|(h, _)| !skip.contains(&Some(*h)))
        .map(|(h, c)| dtwin_profile::draft::Column {
            header: h,
            cells: c.iter().map(String::as_str).collect(),
        })
        .collect();
    let id = match &a.id {
        Some(id) => id.clone(),
        None => dtwin_profile::draft::feature_name(
            &a.out
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "plant".to_owned()),
        ),
    };
    let interval = a.time_column.as_ref().and_then(|t| {
        let ti = headers.iter().position(|h| h == t)?;
        let ii = headers.iter().position(|h| *h == a.id_column)?;
        reading_interval(&cells[ii], &cells[ti])
    });
    // Without --label-column, a column named like failure labels is read as them: drafted as a
    // sensor or an attribute it would hand the model the answer as an input.
    let guessed = a.label_column.is_none().then(|| {
        headers
            .iter()
            .filter(|h| **h != a.id_column && Some(*h) != a.time_column.as_ref())
            .find(|h| LABEL_HEADERS.contains(&dtwin_profile::draft::feature_name(h).as_str()))
            .cloned()
    });
    let label_column = a.label_column.clone().or(guessed.clone().flatten());
    let (text, report) =
        dtwin_profile::draft::draft(&id, &columns, label_column.as_deref(), interval);
    // A draft that does not parse would be this command's bug, not the user's: say so.
    dtwin_profile::Profile::parse(&text, &a.out.display().to_string())
        .context("the drafted profile does not parse (a dtwin bug; please report it)")?;
    anyhow::ensure!(
        !report.sensors.is_empty(),
        "no numeric column besides the id and time columns in {}: nothing to use as a sensor",
        a.data.display()
    );
    std::fs::write(&a.out, &text).with_context(|| format!("cannot write {}", a.out.display()))?;
    let skipped: Vec<String> = report
        .skipped
        .iter()
        .map(|(c, why)| format!("{c} ({why})"))
        .collect();
    Ok(format!(
        "drafted profile {id:?} in {}: {} sensors ({}), {} attributes ({}), {} failure labels{}. \
         Edit units, labels and ranges, then run `dtwin profile check {}`.",
        a.out.display(),
        report.sensors.len(),
        report.sensors.join(", "),
        report.attributes.len(),
        report.attributes.join(", "),
        report.labels.len(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!("; left out: {}", skipped.join(", "))
        },
        a.out.display()
    ) + &guessed.flatten().map_or_else(String::new, |c| {
        format!(
            "\nColumn {c:?} looks like failure labels: drafted as the profile's [failures] labels, \
             not as an input (train with --label-column {c:?}; pass --label-column to choose another)."
        )
    }))
}

/// The median time between consecutive readings of a machine, when the time column holds
/// instants (None for cycle counts or unreadable times: the draft then has no time window).
fn reading_interval(ids: &[String], times: &[String]) -> Option<std::time::Duration> {
    use dtwin_pipeline::plant::{parse_time, TimeKind};
    let utc = jiff::tz::TimeZone::UTC;
    let mut by_machine: std::collections::HashMap<&str, Vec<f64>> = Default::default();
    for (id, t) in ids.iter().zip(times) {
        match parse_time(t, &utc)? {
            (t, TimeKind::Instant) => by_machine.entry(id.as_str()).or_default().push(t),
            _ => return None,
        }
    }
    let mut gaps: Vec<f64> = Vec::new();
    for ts in by_machine.values_mut() {
        ts.sort_by(f64::total_cmp);
        gaps.extend(ts.windows(2).map(|w| w[1] - w[0]).filter(|g| *g > 0.0));
    }
    if gaps.is_empty() {
        return None;
    }
    let mid = gaps.len() / 2;
    let median = *gaps.select_nth_unstable_by(mid, f64::total_cmp).1;
    Some(std::time::Duration::from_secs_f64(median))
}
