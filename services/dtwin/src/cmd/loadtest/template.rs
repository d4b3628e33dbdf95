//! Telemetry pre-encoded around its machine id, `ts` and `seq`, so that rendering a reading is
//! a few copies (the generator must not be what is measured), and the load test's machine ids
//! and telemetry topics.

use anyhow::Context;
use dtwin_schema::{MachineId, Telemetry, Topics};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Machine ids of the load test: `lt-000042`.
const ID_PREFIX: &str = "lt-";
/// Pre-encoded value sets a machine rotates through.
const TAILS: usize = 64;

const SENTINEL_ID: &str = "IDSENTINEL";
const SENTINEL_TS: &str = "2001-02-03T04:05:06Z";
const SENTINEL_SEQ: u64 = 987_654_321_987;

/// Telemetry pre-encoded around its id, `ts` and `seq`, with [`TAILS`] sets of values.
#[derive(Debug, Clone)]
pub struct Template {
    before_id: Vec<u8>,
    id_to_ts: Vec<u8>,
    ts_to_seq: Vec<u8>,
    tails: Vec<Vec<u8>>,
    /// The values of each tail, for Sparkplug readings.
    values: Vec<dtwin_twin_publisher::sparkplug::Values>,
}

/// An encoded reading cut at the sentinels: the three pieces before the id, between id and
/// `ts`, between `ts` and `seq`, and the tail after `seq`.
type Pieces = ([Vec<u8>; 3], Vec<u8>);

impl Template {
    /// Encodes the templates through [`Telemetry::encode`], so they follow the schema.
    pub fn new() -> anyhow::Result<Self> {
        let id = MachineId::parse(SENTINEL_ID)?;
        let ts = OffsetDateTime::parse(SENTINEL_TS, &Rfc3339)?;
        let mut head: Option<[Vec<u8>; 3]> = None;
        let mut tails = Vec::with_capacity(TAILS);
        let mut values = Vec::with_capacity(TAILS);
        for k in 0..TAILS {
            let set = value_set(&id, ts, k);
            values.push(dtwin_twin_publisher::sparkplug::values(&set));
            let json = String::from_utf8(set.encode())?;
            let (pieces, tail) = cut(&json)?;
            if let Some(h) = &head {
                anyhow::ensure!(*h == pieces, "telemetry fields moved between encodings");
            }
            head = Some(pieces);
            tails.push(tail);
        }
        let [before_id, id_to_ts, ts_to_seq] = head.context("no templates")?;
        Ok(Self {
            before_id,
            id_to_ts,
            ts_to_seq,
            tails,
            values,
        })
    }

    /// The values of value set `k % TAILS` (those [`Template::render`] writes), in the
    /// Sparkplug metrics' order.
    pub fn values(&self, k: usize) -> dtwin_twin_publisher::sparkplug::Values {
        self.values[k % self.values.len()]
    }

    /// The reading `seq` of machine `id` at `ts` (RFC 3339), using value set `k % TAILS`.
    pub fn render(&self, id: &str, ts: &str, seq: u64, k: usize) -> Vec<u8> {
        let tail = &self.tails[k % self.tails.len()];
        let mut out = Vec::with_capacity(
            self.before_id.len() + id.len() + self.id_to_ts.len() + ts.len() + 20 + tail.len() + 20,
        );
        out.extend_from_slice(&self.before_id);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&self.id_to_ts);
        out.extend_from_slice(ts.as_bytes());
        out.extend_from_slice(&self.ts_to_seq);
        out.extend_from_slice(seq.to_string().as_bytes());
        out.extend_from_slice(tail);
        out
    }
}

/// Value set `k` of [`TAILS`]: plausible AI4I-range readings on a cycle.
fn value_set(id: &MachineId, ts: OffsetDateTime, k: usize) -> Telemetry {
    let x = k as f64 / TAILS as f64 * std::f64::consts::TAU;
    let mut t = Telemetry::new(id.clone(), ts, SENTINEL_SEQ);
    t.ambient_temperature_c = Some(round2(25.0 + 2.0 * x.sin()));
    t.temperature_c = Some(round2(35.5 + 2.0 * x.sin() + 0.5 * (3.0 * x).cos()));
    t.spindle_rpm = Some(round2(1500.0 + 120.0 * (2.0 * x).sin()));
    t.torque_nm = Some(round2(40.0 - 8.0 * (2.0 * x).sin()));
    t.vibration_mm_s = Some(round2(2.2 + 0.4 * (5.0 * x).sin()));
    t.pressure_bar = Some(round2(6.0 + 0.3 * (7.0 * x).cos()));
    t.tool_wear_min = Some((k * 3) as f64);
    t
}

/// Cuts an encoded reading at the sentinel id, `ts` and `seq` (in that order).
fn cut(json: &str) -> anyhow::Result<Pieces> {
    let find = |needle: &str, from: usize| {
        json[from..]
            .find(needle)
            .map(|i| i + from)
            .with_context(|| format!("{needle} not in the encoded telemetry {json}"))
    };
    let i_id = find(SENTINEL_ID, 0)?;
    let i_ts = find(SENTINEL_TS, i_id)?;
    let seq = SENTINEL_SEQ.to_string();
    let i_seq = find(&seq, i_ts)?;
    let b = json.as_bytes();
    let pieces = [
        b[..i_id].to_vec(),
        b[i_id + SENTINEL_ID.len()..i_ts].to_vec(),
        b[i_ts + SENTINEL_TS.len()..i_seq].to_vec(),
    ];
    Ok((pieces, b[i_seq + seq.len()..].to_vec()))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The id of machine `m`: `lt-000042`.
pub(super) fn machine_id(m: usize) -> String {
    format!("{ID_PREFIX}{m:06}")
}

/// The machine index of a load-test id, also as a Sparkplug device
/// (`loadtest.c0.lt-000042`); `None` for any other id.
pub(super) fn machine_index(id: &str) -> Option<usize> {
    let device = id.rsplit('.').next()?;
    device.strip_prefix(ID_PREFIX)?.parse().ok()
}

/// A machine's telemetry topic as the text before and after its id, so each reading's topic
/// is one `format!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TelemetryTopic {
    head: String,
    tail: String,
}

impl TelemetryTopic {
    /// The telemetry topic of `topics`, cut at the machine id.
    pub(super) fn new(topics: &Topics) -> anyhow::Result<Self> {
        let sentinel = MachineId::parse(SENTINEL_ID)?;
        let topic = topics.telemetry(&sentinel);
        let (head, tail) = topic
            .split_once(SENTINEL_ID)
            .context("telemetry topic without the machine id")?;
        Ok(Self {
            head: head.to_owned(),
            tail: tail.to_owned(),
        })
    }

    /// The topic of machine `id`.
    pub(super) fn of(&self, id: &str) -> String {
        format!("{}{id}{}", self.head, self.tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_telemetry_decodes_with_the_id_ts_and_seq_given() {
        let t = Template::new().unwrap();
        let ts = "2026-11-22T10:00:00.123456789Z";
        for k in [0, 1, 63, 64, 1000] {
            let bytes = t.render("lt-000042", ts, 1234 + k as u64, k);
            let r = Telemetry::decode(&bytes).unwrap();
            assert_eq!(r.machine_id.as_str(), "lt-000042");
            assert_eq!(r.seq, 1234 + k as u64);
            assert_eq!(r.ts, OffsetDateTime::parse(ts, &Rfc3339).unwrap());
            assert!(r.temperature_c.is_some() && r.tool_wear_min.is_some());
        }
        // Value sets differ, so windows see movement.
        assert_ne!(t.render("a", ts, 1, 0), t.render("a", ts, 1, 1));
    }

    #[test]
    fn machine_ids_round_trip() {
        assert_eq!(machine_index(&machine_id(42)), Some(42));
        assert_eq!(machine_index(&machine_id(123_456)), Some(123_456));
        assert_eq!(machine_index("m-1"), None);
        assert_eq!(machine_index("loadtest.c1.lt-000042"), Some(42));
        assert_eq!(machine_index("loadtest.c1.m-1"), None);
    }

    #[test]
    fn cut_splits_at_the_sentinels_in_order() {
        let json =
            format!(r#"{{"id":"{SENTINEL_ID}","ts":"{SENTINEL_TS}","seq":{SENTINEL_SEQ},"x":1}}"#);
        let ([a, b, c], tail) = cut(&json).unwrap();
        assert_eq!(a, br#"{"id":""#);
        assert_eq!(b, br#"","ts":""#);
        assert_eq!(c, br#"","seq":"#);
        assert_eq!(tail, br#","x":1}"#);
        // Each sentinel is looked for after the previous one.
        let swapped = format!(r#"{{"ts":"{SENTINEL_TS}","id":"{SENTINEL_ID}","seq":1}}"#);
        let e = cut(&swapped).unwrap_err().to_string();
        assert!(e.contains(SENTINEL_TS), "{e}");
        assert!(cut("{}").is_err());
    }

    #[test]
    fn telemetry_topic_matches_the_schemas_topic() {
        for prefix in [dtwin_schema::DEFAULT_PREFIX, "dtwin-loadtest/raw", "a/b/"] {
            let topics = Topics::new(prefix);
            let t = TelemetryTopic::new(&topics).unwrap();
            let id = machine_id(7);
            assert_eq!(t.of(&id), topics.telemetry(&MachineId::parse(&id).unwrap()));
        }
    }
}
