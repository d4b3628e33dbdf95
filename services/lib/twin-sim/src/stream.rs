//! The telemetry stream as data: deterministic rendering of a fleet's readings, and the
//! project's own telemetry CSV (what `dtwin generate` writes and `dtwin replay` plays back).
//!
//! A CSV row is a telemetry message flattened to columns ([`TELEMETRY_CSV_HEADER`]); reading
//! one back goes through [`Telemetry::decode`], the same validation live ingest uses, so a
//! recorded gateway stream is checked exactly as if it arrived over MQTT.

use crate::machine::{Fleet, SimConfig};
use dtwin_schema::{Rejection, Telemetry};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

/// Columns of the telemetry CSV, in order. Every optional field may be empty.
pub const TELEMETRY_CSV_HEADER: [&str; 16] = [
    "machine_id",
    "ts",
    "seq",
    "product_type",
    "temperature_c",
    "ambient_temperature_c",
    "vibration_mm_s",
    "pressure_bar",
    "spindle_rpm",
    "torque_nm",
    "power_w",
    "tool_wear_min",
    "operating_hours",
    "quality_ok",
    "failure",
    "failure_mode",
];

/// One telemetry message as CSV fields, in [`TELEMETRY_CSV_HEADER`] order.
pub fn to_csv_record(t: &Telemetry) -> Vec<String> {
    // Through serde, so names and enum spellings are the wire format's.
    let value = serde_json::to_value(t).expect("telemetry serializes");
    TELEMETRY_CSV_HEADER
        .iter()
        .map(|col| match value.get(*col) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        })
        .collect()
}

/// A CSV record (with its header) back into a telemetry message.
///
/// # Errors
/// The [`Rejection`] the live decoder gives: a missing field, a wrong type, an out-of-range
/// or non-finite value, a bad machine id.
pub fn from_csv_record(header: &[&str], record: &[&str]) -> Result<Telemetry, Rejection> {
    let mut obj = Map::new();
    obj.insert("schema".into(), Value::from(dtwin_schema::TELEMETRY_SCHEMA));
    for (col, raw) in header.iter().zip(record) {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let v = match *col {
            "machine_id" | "ts" | "product_type" | "failure_mode" | "schema" => Value::from(raw),
            "quality_ok" | "failure" => match raw {
                "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                other => Value::from(other),
            },
            "seq" => raw
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(raw)),
            _ => raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                // Not a number (or NaN/inf): pass the text on, the decoder names the field.
                .unwrap_or_else(|| Value::from(raw)),
        };
        obj.insert((*col).to_owned(), v);
    }
    let bytes = serde_json::to_vec(&Value::Object(obj)).expect("a JSON object serializes");
    Telemetry::decode(&bytes)
}

/// Where the timestamps of a rendered stream come from: reading `k` (1-based `seq`) of every
/// machine is stamped `epoch + (k - 1) * period`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// Time of the first reading.
    pub epoch: OffsetDateTime,
    /// Time between readings of one machine.
    pub period: Duration,
}

impl Clock {
    /// The timestamp of reading `seq` (1-based).
    pub fn at(&self, seq: u64) -> OffsetDateTime {
        self.epoch + self.period * (seq.saturating_sub(1) as f64)
    }
}

/// Steps machines `indices` of a fleet of `fleet_size` for `steps` readings each and returns
/// their telemetry in (step, machine index) order. Which machines one call renders has no
/// effect on any machine's readings (each has its own random stream), so splitting a fleet
/// over workers and merging gives the same bytes as one worker: [`render_sharded`].
pub fn render(
    cfg: &SimConfig,
    fleet_size: usize,
    indices: &[usize],
    steps: u64,
    clock: Clock,
) -> Vec<(u64, usize, Vec<u8>)> {
    let mut machines: Vec<_> = indices
        .iter()
        .map(|&i| (i, crate::Machine::new(i, fleet_size, cfg)))
        .collect();
    let mut out = Vec::with_capacity(machines.len() * steps as usize);
    for _ in 0..steps {
        for (i, m) in &mut machines {
            let r = m.step();
            let ts = clock.at(r.seq);
            out.push((r.seq, *i, r.to_telemetry(m.id(), ts).encode()));
        }
    }
    out
}

/// The whole fleet's stream rendered by `workers` shards (machine `i` goes to worker
/// `i % workers`), merged back into (step, machine) order.
pub fn render_sharded(
    cfg: &SimConfig,
    fleet_size: usize,
    steps: u64,
    clock: Clock,
    workers: usize,
) -> Vec<Vec<u8>> {
    let workers = workers.max(1);
    let mut all: Vec<(u64, usize, Vec<u8>)> = (0..workers)
        .flat_map(|w| {
            let mine: Vec<usize> = (0..fleet_size).filter(|i| i % workers == w).collect();
            render(cfg, fleet_size, &mine, steps, clock)
        })
        .collect();
    all.sort_by_key(|(seq, i, _)| (*seq, *i));
    all.into_iter().map(|(_, _, p)| p).collect()
}

/// A fleet stepped in order, one reading per machine per step, as telemetry CSV rows
/// (for `dtwin generate`); `on_step` is called after each step (progress bars).
///
/// # Errors
/// The writer's error.
pub fn write_telemetry_csv<W: std::io::Write>(
    cfg: &SimConfig,
    machines: usize,
    steps: u64,
    clock: Clock,
    out: W,
    mut on_step: impl FnMut(u64),
) -> std::io::Result<u64> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(TELEMETRY_CSV_HEADER)?;
    let mut fleet = Fleet::new(machines, cfg);
    let mut rows = 0;
    for step in 0..steps {
        for m in &mut fleet.machines {
            let r = m.step();
            let t = r.to_telemetry(m.id(), clock.at(r.seq));
            w.write_record(to_csv_record(&t))?;
            rows += 1;
        }
        on_step(step + 1);
    }
    w.flush()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_schema::RejectReason;
    use time::macros::datetime;

    fn clock() -> Clock {
        Clock {
            epoch: datetime!(2026-11-22 10:00:00 UTC),
            period: Duration::milliseconds(500),
        }
    }

    #[test]
    fn the_stream_is_byte_identical_for_any_number_of_workers() {
        let cfg = SimConfig::default();
        let one = render_sharded(&cfg, 13, 40, clock(), 1);
        assert_eq!(one.len(), 13 * 40);
        for workers in [2, 3, 4, 13, 20] {
            assert!(
                one == render_sharded(&cfg, 13, 40, clock(), workers),
                "{workers} workers changed the stream"
            );
        }
        // Same seed twice: same bytes; another seed: different readings.
        assert!(one == render_sharded(&cfg, 13, 40, clock(), 1));
        let other = SimConfig {
            seed: 43,
            ..cfg.clone()
        };
        assert!(one != render_sharded(&other, 13, 40, clock(), 1));
    }

    #[test]
    fn timestamps_follow_the_clock() {
        let c = clock();
        assert_eq!(c.at(1), c.epoch);
        assert_eq!(c.at(3), c.epoch + Duration::seconds(1));
    }

    #[test]
    fn csv_round_trips_through_the_live_decoder() {
        let mut buf = Vec::new();
        let rows =
            write_telemetry_csv(&SimConfig::default(), 3, 50, clock(), &mut buf, |_| {}).unwrap();
        assert_eq!(rows, 150);
        let mut r = csv::Reader::from_reader(buf.as_slice());
        let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        assert_eq!(header, TELEMETRY_CSV_HEADER);
        let expected: Vec<Vec<u8>> = render_sharded(&SimConfig::default(), 3, 50, clock(), 1);
        for (rec, want) in r.records().zip(&expected) {
            let rec = rec.unwrap();
            let fields: Vec<&str> = rec.iter().collect();
            let t = from_csv_record(&header, &fields).unwrap();
            assert_eq!(&t.encode(), want);
        }
    }

    #[test]
    fn bad_csv_rows_get_the_live_decoders_reasons() {
        let header = ["machine_id", "ts", "seq", "vibration_mm_s"];
        let ok = from_csv_record(&header, &["m-1", "2026-11-22T10:00:00Z", "1", "2.5"]).unwrap();
        assert_eq!(ok.vibration_mm_s, Some(2.5));
        let cases = [
            (
                ["m-1", "2026-11-22T10:00:00Z", "1", "loud"],
                RejectReason::WrongType,
            ),
            (
                ["m-1", "2026-11-22T10:00:00Z", "1", "NaN"],
                RejectReason::WrongType,
            ),
            (
                ["m/1", "2026-11-22T10:00:00Z", "1", "2"],
                RejectReason::BadMachineId,
            ),
            (
                ["m-1", "2026-11-22T10:00:00Z", "1", "1e9"],
                RejectReason::OutOfRange,
            ),
            (
                ["", "2026-11-22T10:00:00Z", "1", "2"],
                RejectReason::MissingField,
            ),
        ];
        for (row, reason) in cases {
            let e = from_csv_record(&header, &row).unwrap_err();
            assert_eq!(e.reason, reason, "{row:?}: {e:?}");
        }
    }
}
