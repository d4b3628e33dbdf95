//! `dtwin generate`: a labelled data set from the same physics as the live twin, either as the
//! project's telemetry CSV (N machines x D plant days) or in AI4I 2020's exact format.

use anyhow::Context;
use clap::{Args, ValueEnum};
use dtwin_twin_sim::{stream, Clock, SimConfig};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::BufWriter;
use std::path::PathBuf;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateFormat {
    /// The project's telemetry CSV (one row per reading; `dtwin replay` plays it back).
    Telemetry,
    /// AI4I 2020's header and columns (one row per machining cycle).
    Ai4i,
}

/// `dtwin generate` flags.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// Output file (CSV).
    #[arg(long)]
    pub out: PathBuf,
    /// Format.
    #[arg(long, value_enum, default_value = "telemetry")]
    pub format: GenerateFormat,
    /// Machines (telemetry format).
    #[arg(long, default_value_t = 20)]
    pub machines: usize,
    /// Plant days per machine (telemetry format).
    #[arg(long, default_value_t = 1.0)]
    pub days: f64,
    /// Plant seconds between readings (telemetry format).
    #[arg(long, default_value_t = 60.0)]
    pub interval: f64,
    /// Rows (AI4I format).
    #[arg(long, default_value_t = 10_000)]
    pub rows: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Writes the data set; returns the number of rows.
///
/// # Errors
/// Bad sizes or a write error.
pub fn run(args: &GenerateArgs, progress: bool) -> anyhow::Result<u64> {
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let out = BufWriter::new(file);
    let rows = match args.format {
        GenerateFormat::Ai4i => {
            anyhow::ensure!(args.rows > 0, "--rows must be at least 1");
            let rows = dtwin_twin_sim::ai4i_rows(args.rows, args.seed);
            dtwin_twin_sim::write_ai4i_csv(&rows, out)
                .with_context(|| format!("writing {}", args.out.display()))?;
            rows.len() as u64
        }
        GenerateFormat::Telemetry => {
            anyhow::ensure!(args.machines > 0, "--machines must be at least 1");
            anyhow::ensure!(
                args.interval > 0.0 && args.interval.is_finite(),
                "--interval must be positive"
            );
            anyhow::ensure!(
                args.days > 0.0 && args.days.is_finite(),
                "--days must be positive"
            );
            let steps = (args.days * 86_400.0 / args.interval).ceil() as u64;
            let cfg = SimConfig {
                seed: args.seed,
                plant_seconds_per_step: args.interval,
                ..SimConfig::default()
            };
            let clock = Clock {
                // A fixed start, so the same flags give the same file.
                epoch: time::macros::datetime!(2026-01-01 00:00:00 UTC),
                period: time::Duration::seconds_f64(args.interval),
            };
            let bar = if progress {
                let b = ProgressBar::new(steps);
                b.set_style(
                    ProgressStyle::with_template(
                        "{spinner} generating [{bar:40}] {pos}/{len} steps ({eta} left)",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                b
            } else {
                ProgressBar::hidden()
            };
            let rows = stream::write_telemetry_csv(&cfg, args.machines, steps, clock, out, |s| {
                if s % 64 == 0 {
                    bar.set_position(s);
                }
            })
            .with_context(|| format!("writing {}", args.out.display()))?;
            bar.finish_and_clear();
            rows
        }
    };
    eprintln!("wrote {rows} rows to {}", args.out.display());
    Ok(rows)
}
