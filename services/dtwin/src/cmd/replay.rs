//! `dtwin replay`: plays a CSV back as live telemetry, so a recorded gateway stream (the
//! project's telemetry CSV, as `dtwin generate` writes it) or AI4I 2020 goes through the stack
//! as if machines were sending it. Every row is checked by the live telemetry decoder; a bad
//! row is reported with its line number and skipped, the rest go on.

use anyhow::Context;
use clap::{Args, ValueEnum};
use dtwin_bus::{Brokers, BusConfig};
use dtwin_schema::{MachineId, Telemetry, Topics};
use dtwin_twin_sim::stream;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplayFormat {
    /// Decide from the header.
    Auto,
    /// The project's telemetry CSV.
    Telemetry,
    /// AI4I 2020 (one machine; each cycle one reading).
    Ai4i,
}

/// `dtwin replay` flags.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The CSV file.
    pub file: PathBuf,
    /// Broker URL (a cluster's nodes: comma-separated).
    #[arg(long, env = "DTWIN_BROKER", default_value = "mqtt://127.0.0.1:1883")]
    pub broker: Brokers,
    /// Topic prefix.
    #[arg(long, env = "DTWIN_PREFIX", default_value = dtwin_schema::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: ReplayFormat,
    /// Rows per second (0: as fast as the connection takes them).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Keep the file's timestamps instead of stamping each reading with the time it is sent.
    /// A plant's export (--profile) always keeps its own (its time windows, `24h`, run on
    /// message time); one with plain-number times (cycles) is stamped when sent.
    #[arg(long)]
    pub keep_ts: bool,
    /// Machine id for AI4I rows (AI4I has no machine column).
    #[arg(long, default_value = "ai4i-machine")]
    pub machine: String,
    /// QoS of the publishes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
    /// A plant's export: with --profile, every row is published as v2 telemetry of that
    /// profile (`values` keyed as the profile's sensor keys), machines interleaved in file
    /// order, `seq` the reading's index within its machine.
    #[command(flatten)]
    pub plant: crate::cmd::common::PlantArgs,
}

/// One v2 reading of a plant's export, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantReading {
    /// Its machine.
    pub machine: MachineId,
    /// The reading's time, when the export has instants.
    pub ts: Option<time::OffsetDateTime>,
    /// The JSON payload without `ts` (added when sent).
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// A plant's export as v2 readings in file order (pure but for reading the file).
///
/// # Errors
/// An unreadable or bad export, or a machine id that cannot name a topic.
pub fn plant_readings(
    file: &std::path::Path,
    source: &crate::cmd::common::PlantSource,
) -> anyhow::Result<(Vec<PlantReading>, u64)> {
    use dtwin_pipeline::plant::{self, TimeKind};
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {name}"))?;
    let data = plant::read(&text, &name, &source.profile, &source.columns)?;
    for (line, why) in data.skipped.iter().take(5) {
        warn!(line, why, "skipping a bad row");
    }
    let p = &source.profile;
    let mut rows: Vec<(usize, PlantReading)> = Vec::with_capacity(data.rows());
    for s in &data.machines {
        let machine = MachineId::parse(&s.id)
            .map_err(|e| anyhow::anyhow!("{name}: machine id {:?}: {e}", s.id))?;
        for i in 0..s.len() {
            let mut values = serde_json::Map::new();
            for (k, sensor) in p.sensors.iter().enumerate() {
                let v = s.values[i * p.sensors.len() + k];
                if let Some(n) = serde_json::Number::from_f64(v) {
                    values.insert(sensor.key.clone(), n.into());
                }
            }
            let mut payload = serde_json::Map::new();
            payload.insert("schema".into(), dtwin_schema::TELEMETRY_V2_SCHEMA.into());
            payload.insert("machine_id".into(), s.id.clone().into());
            payload.insert("seq".into(), (i as u64 + 1).into());
            payload.insert("profile".into(), p.id.clone().into());
            payload.insert("values".into(), values.into());
            // The label itself has no v2 field yet (failure_mode is the twin's closed set).
            if s.labels[i].is_some() {
                payload.insert("failure".into(), true.into());
            }
            let ts = (data.time == TimeKind::Instant)
                .then(|| {
                    time::OffsetDateTime::from_unix_timestamp_nanos((s.t[i] * 1e9) as i128).ok()
                })
                .flatten();
            rows.push((
                s.lines[i],
                PlantReading {
                    machine: machine.clone(),
                    ts,
                    payload,
                },
            ));
        }
    }
    rows.sort_by_key(|r| r.0);
    Ok((
        rows.into_iter().map(|r| r.1).collect(),
        data.skipped.len() as u64,
    ))
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Rows published.
    pub published: u64,
    /// Rows skipped as invalid.
    pub skipped: u64,
}

/// AI4I row as telemetry (temperatures from kelvin to Celsius).
fn ai4i_to_telemetry(
    row: &dtwin_twin_sim::Ai4iRow,
    machine: &MachineId,
    ts: time::OffsetDateTime,
) -> Telemetry {
    let mut t = Telemetry::new(machine.clone(), ts, u64::from(row.udi));
    t.temperature_c = Some(row.process_k - 273.15);
    t.ambient_temperature_c = Some(row.air_k - 273.15);
    t.spindle_rpm = Some(row.rpm);
    t.torque_nm = Some(row.torque_nm);
    t.tool_wear_min = Some(row.tool_wear_min);
    t.power_w = Some(row.torque_nm * row.rpm * std::f64::consts::TAU / 60.0);
    t.product_type = Some(row.product_type);
    t.failure = Some(row.failure);
    t
}

/// Reads `args.file` into telemetry messages, line numbers of bad rows reported.
fn load(args: &ReplayArgs) -> anyhow::Result<(Vec<Telemetry>, u64)> {
    load_csv(&args.file, args.format, &args.machine)
}

/// Reads a telemetry or AI4I CSV into telemetry messages (in file order) and the number of
/// bad rows skipped (each logged with its line number).
///
/// # Errors
/// An unreadable file, an unknown format, or (AI4I) a malformed file.
pub fn load_csv(
    file: &std::path::Path,
    format: ReplayFormat,
    machine: &str,
) -> anyhow::Result<(Vec<Telemetry>, u64)> {
    struct A<'a> {
        file: &'a std::path::Path,
        format: ReplayFormat,
        machine: &'a str,
    }
    let args = A {
        file,
        format,
        machine,
    };
    let text = std::fs::read_to_string(args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let first = body.lines().next().unwrap_or_default().trim_end();
    let format = match args.format {
        ReplayFormat::Auto if first == dtwin_twin_sim::AI4I_HEADER => ReplayFormat::Ai4i,
        ReplayFormat::Auto if first.split(',').any(|c| c == "machine_id") => {
            ReplayFormat::Telemetry
        }
        ReplayFormat::Auto => anyhow::bail!(
            "{}: cannot tell the format from the header {first:?}; use --format",
            args.file.display()
        ),
        f => f,
    };
    let now = dtwin_schema::time_fmt::now();
    match format {
        ReplayFormat::Ai4i => {
            let machine = MachineId::parse(args.machine)
                .map_err(|e| anyhow::anyhow!("--machine {:?}: {e}", args.machine))?;
            let rows = dtwin_twin_sim::read_ai4i_csv(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
            Ok((
                rows.iter()
                    .map(|r| ai4i_to_telemetry(r, &machine, now))
                    .collect(),
                0,
            ))
        }
        _ => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(body.as_bytes());
            let header: Vec<String> = reader
                .headers()
                .context("reading the CSV header")?
                .iter()
                .map(str::to_owned)
                .collect();
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            let mut out = Vec::new();
            let mut skipped = 0;
            for (i, rec) in reader.records().enumerate() {
                let line = i + 2;
                let parsed = rec.map_err(|e| e.to_string()).and_then(|r| {
                    let fields: Vec<&str> = r.iter().collect();
                    stream::from_csv_record(&header, &fields)
                        .map_err(|e| format!("{}: {}", e.reason.as_str(), e.detail))
                });
                match parsed {
                    Ok(t) => out.push(t),
                    Err(why) => {
                        warn!(line, why, "skipping a bad row");
                        skipped += 1;
                    }
                }
            }
            Ok((out, skipped))
        }
    }
}

/// Publishes the file; returns what was published and skipped.
///
/// # Errors
/// An unreadable file, an unknown format, or a closed connection.
pub async fn run(args: ReplayArgs, shutdown: CancellationToken) -> anyhow::Result<ReplaySummary> {
    anyhow::ensure!(
        args.rate >= 0.0 && args.rate.is_finite(),
        "--rate must be 0 or a positive number"
    );
    let plant = match args.plant.source(None)? {
        Some(source) => Some(plant_readings(&args.file, &source)?),
        None => None,
    };
    let (rows, skipped) = match &plant {
        Some((_, skipped)) => (Vec::new(), *skipped),
        None => load(&args)?,
    };
    let topics = Topics::new(&args.prefix);
    let qos = dtwin_bus::qos_from_u8(args.qos).map_err(anyhow::Error::msg)?;
    let conn = dtwin_bus::connect(&BusConfig::new(args.broker.clone(), "dtwin-replay"), vec![]);
    anyhow::ensure!(
        conn.client.wait_ready(Duration::from_secs(10)).await,
        "cannot connect to {}",
        args.broker
    );
    let total = plant.as_ref().map_or(rows.len(), |p| p.0.len());
    info!(rows = total, skipped, file = %args.file.display(), "replaying");
    let mut tick = (args.rate > 0.0).then(|| {
        let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        i
    });
    let mut published = 0;
    for r in plant.map(|p| p.0).unwrap_or_default() {
        if let Some(tick) = tick.as_mut() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
        } else if shutdown.is_cancelled() {
            break;
        }
        // A plant's readings keep the export's time: the profile's time windows run on it.
        let ts = r.ts.unwrap_or_else(dtwin_schema::time_fmt::now);
        let mut payload = r.payload;
        payload.insert("ts".into(), dtwin_schema::time_fmt::format(ts).into());
        let bytes = serde_json::to_vec(&payload)?;
        conn.client
            .publish(topics.telemetry(&r.machine), qos, false, bytes)
            .await?;
        published += 1;
    }
    for mut t in rows {
        if let Some(tick) = tick.as_mut() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
        } else if shutdown.is_cancelled() {
            break;
        }
        if !args.keep_ts {
            t.ts = dtwin_schema::time_fmt::now();
        }
        conn.client
            .publish(topics.telemetry(&t.machine_id), qos, false, t.encode())
            .await?;
        published += 1;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.close()).await;
    eprintln!("replayed {published} rows ({skipped} bad rows skipped)");
    Ok(ReplaySummary { published, skipped })
}
