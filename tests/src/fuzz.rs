//! A seeded generator of hostile telemetry (random bytes, truncated JSON, huge numbers, deep
//! nesting, long strings, unicode and wildcard characters in ids, oversize payloads, wrong
//! types, bad batches, duplicates) interleaved with valid readings of a set of well-behaved
//! machines, each case labelled with what the feature service must make of it. About a third
//! of the valid readings are sent as `dtwin.telemetry.v2` (values map, `schema`, `machine_id`
//! sometimes left out, `ts` sometimes in epoch milliseconds, an unknown key now and then; `seq`
//! always, so the order checks stay exact), and `v2_bad` makes v2 readings the service must
//! reject (unknown profile, another machine than the topic's, a string value, `ts` in seconds,
//! `values` not an object).
//!
//! The same generator feeds the pure `Processor` (100,000+ cases) and a running feature
//! service on a broker (`tests/tests/fuzz_ingest.rs`).

use dtwin_schema::{Topics, MAX_PAYLOAD_BYTES};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// What the feature service must publish for a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// Feature vectors (valid readings).
    pub features: usize,
    /// Dead letters (rejected payloads or readings).
    pub dead: usize,
    /// Readings dropped as duplicates (no output).
    pub duplicates: usize,
}

impl Expect {
    const fn bad() -> Self {
        Self {
            features: 0,
            dead: 1,
            duplicates: 0,
        }
    }
    const fn good(n: usize) -> Self {
        Self {
            features: n,
            dead: 0,
            duplicates: 0,
        }
    }
}

/// One generated message.
#[derive(Debug, Clone)]
pub struct Case {
    /// Which generator made it (for the counts).
    pub kind: &'static str,
    /// Topic it is published on.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// What must come out.
    pub expect: Expect,
}

/// Every kind of case the generator makes, weighted by `WEIGHTS`.
pub const KINDS: &[&str] = &[
    "valid",
    "valid_batch",
    "random_bytes",
    "truncated_json",
    "huge_number",
    "deep_nesting",
    "long_string",
    "bad_payload_id",
    "bad_topic_id",
    "wrong_topic",
    "oversize",
    "wrong_type",
    "not_an_object",
    "unknown_schema",
    "non_finite",
    "invalid_utf8",
    "empty_batch",
    "batch_with_a_bad_reading",
    "batch_for_another_machine",
    "duplicate",
    "v2_bad",
];

/// Relative frequency of each of [`KINDS`]: a third valid readings; the large payloads
/// (deep nesting, long strings, oversize) rarer, so 100,000 cases stay quick.
const WEIGHTS: [u32; 21] = [
    30, 4, 4, 4, 4, 2, 2, 4, 4, 3, 1, 4, 4, 3, 3, 3, 3, 4, 3, 3, 4,
];

/// Generates cases; machines `fuzz-000` .. send valid readings in `seq` order.
pub struct Generator {
    rng: ChaCha8Rng,
    topics: Topics,
    /// Next `seq` of each well-behaved machine.
    next_seq: Vec<u64>,
    /// No topics an MQTT client cannot publish to (wildcards, non-telemetry topics).
    mqtt_safe: bool,
}

/// Characters that must never make a machine id: wildcards, separators, unicode, controls.
const HOSTILE: &[&str] = &[
    "+", "#", "/", "机器", "é", "🚀", " ", "\u{0}", "\u{202e}", "%2F", "*", "$SYS", "\n", "\"",
    "\\",
];

impl Generator {
    /// A generator with `machines` well-behaved machines. With `mqtt_safe`, every topic is one
    /// an MQTT client can publish to (valid UTF-8, no wildcards, under the prefix).
    pub fn new(seed: u64, machines: usize, mqtt_safe: bool) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            topics: Topics::default(),
            next_seq: vec![1; machines.max(1)],
            mqtt_safe,
        }
    }

    /// The well-behaved machines' ids.
    pub fn machine_ids(&self) -> Vec<String> {
        (0..self.next_seq.len()).map(machine).collect()
    }

    fn telemetry_topic(&self, id: &str) -> String {
        format!("{}/machines/{id}/telemetry", self.topics.prefix())
    }

    /// A valid reading of machine `m` with `seq` as JSON.
    fn reading(&mut self, id: &str, seq: u64) -> Value {
        // One second per reading, so a resent reading is never mistaken for a publisher
        // restart (a newer timestamp on an old seq).
        let ts = (time::macros::datetime!(2026-11-22 10:00 UTC)
            + time::Duration::seconds(i64::try_from(seq).unwrap_or(i64::MAX)))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
        let r = &mut self.rng;
        let mut v = json!({
            "schema": "dtwin.telemetry.v1",
            "machine_id": id,
            "ts": ts,
            "seq": seq,
            "temperature_c": r.random_range(30.0..45.0),
            "vibration_mm_s": r.random_range(0.5..6.0),
            "pressure_bar": r.random_range(4.0..8.0),
            "spindle_rpm": r.random_range(1200.0..2800.0),
            "tool_wear_min": r.random_range(0.0..240.0),
        });
        // Gateways send subsets and extras: drop a sensor, add an unknown field now and then.
        if r.random_bool(0.2) {
            if let Some(o) = v.as_object_mut() {
                o.remove("pressure_bar");
            }
        }
        if r.random_bool(0.1) {
            v["firmware"] = json!("v1.2.3");
        }
        v
    }

    /// A valid reading of a random well-behaved machine, consuming its next `seq`.
    fn valid(&mut self) -> (usize, Value) {
        let m = self.rng.random_range(0..self.next_seq.len());
        let seq = self.next_seq[m];
        self.next_seq[m] += 1;
        (m, self.accepted(&machine(m), seq))
    }

    /// A valid reading, as v1 or (a third of the time) as v2.
    fn accepted(&mut self, id: &str, seq: u64) -> Value {
        let v = self.reading(id, seq);
        if self.rng.random_bool(0.33) {
            self.as_v2(v)
        } else {
            v
        }
    }

    /// A v1 reading rewritten as the same reading in v2: the sensors in `values`, and what
    /// v2 makes optional left out at random (never `seq`).
    fn as_v2(&mut self, v: Value) -> Value {
        let Value::Object(mut o) = v else { return v };
        let mut values = serde_json::Map::new();
        for spec in &dtwin_schema::telemetry::SENSOR_SPECS {
            if let Some(x) = o.remove(spec.name) {
                values.insert(spec.name.to_owned(), x);
            }
        }
        let r = &mut self.rng;
        if r.random_bool(0.1) {
            values.insert("humidity_pct".into(), json!(41));
        }
        o.insert("values".into(), Value::Object(values));
        o.insert("schema".into(), json!(dtwin_schema::TELEMETRY_V2_SCHEMA));
        if r.random_bool(0.5) {
            o.remove("schema");
        }
        if r.random_bool(0.5) {
            o.remove("machine_id");
        }
        if r.random_bool(0.3) {
            o.insert("profile".into(), json!("milling"));
        }
        if r.random_bool(0.5) {
            let ms = o
                .get("ts")
                .and_then(Value::as_str)
                .and_then(|ts| {
                    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map(|ts| ts.unix_timestamp_nanos() / 1_000_000);
            if let Some(ms) = ms.and_then(|ms| i64::try_from(ms).ok()) {
                o.insert("ts".into(), json!(ms));
            }
        }
        Value::Object(o)
    }

    /// A reading that is valid JSON of the right shape for machine `m` but not accepted; the
    /// machine's `seq` is untouched.
    fn good_shape(&mut self, m: usize) -> Value {
        let seq = self.next_seq[m];
        self.reading(&machine(m), seq)
    }

    fn hostile_id(&mut self) -> String {
        let r = &mut self.rng;
        match r.random_range(0..4) {
            0 => String::new(),
            1 => "m".repeat(r.random_range(65..300)),
            _ => {
                let bad = HOSTILE[r.random_range(0..HOSTILE.len())];
                format!("m{bad}{}", r.random_range(0..100))
            }
        }
    }

    /// The next case.
    pub fn case(&mut self) -> Case {
        let total: u32 = WEIGHTS.iter().sum();
        let mut roll = self.rng.random_range(0..total);
        let mut kind = 0;
        while roll >= WEIGHTS[kind] {
            roll -= WEIGHTS[kind];
            kind += 1;
        }
        let m = self.rng.random_range(0..self.next_seq.len());
        let topic = self.telemetry_topic(&machine(m));
        let name = match KINDS[kind] {
            // An MQTT client cannot publish outside the telemetry topics the service takes.
            "wrong_topic" if self.mqtt_safe => "oversize",
            other => other,
        };
        let (topic, payload, expect) = match name {
            "valid" => {
                let (m, v) = self.valid();
                (
                    self.telemetry_topic(&machine(m)),
                    bytes(&v),
                    Expect::good(1),
                )
            }
            "valid_batch" => {
                let n = self.rng.random_range(1..6);
                let readings: Vec<Value> = (0..n)
                    .map(|_| {
                        let seq = self.next_seq[m];
                        self.next_seq[m] += 1;
                        self.accepted(&machine(m), seq)
                    })
                    .collect();
                (topic, bytes(&Value::Array(readings)), Expect::good(n))
            }
            "random_bytes" => {
                let n = self.rng.random_range(0..300);
                let b: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                (topic, b, Expect::bad())
            }
            "truncated_json" => {
                let full = bytes(&self.good_shape(m));
                let cut = self.rng.random_range(0..full.len());
                (topic, full[..cut].to_vec(), Expect::bad())
            }
            "huge_number" => {
                let field = [
                    "temperature_c",
                    "vibration_mm_s",
                    "spindle_rpm",
                    "power_w",
                    "operating_hours",
                    "seq",
                ][self.rng.random_range(0..6)];
                // Each is out of range (or of type) for every one of these fields.
                let number = [
                    "1e400",
                    "-1e400",
                    "1e300",
                    "-1e300",
                    "123456789012345678901234567890",
                    "99999999999999999999",
                    "1e100",
                    "-1e100",
                ][self.rng.random_range(0..8)];
                let text = String::from_utf8(bytes(&self.good_shape(m))).unwrap_or_default();
                let text = splice_field(&text, field, number);
                (topic, text.into_bytes(), Expect::bad())
            }
            "deep_nesting" => {
                let depth = self.rng.random_range(129..5_000);
                let text = match self.rng.random_range(0..3) {
                    0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
                    1 => format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
                    _ => {
                        // A known field nested deep.
                        let good =
                            String::from_utf8(bytes(&self.good_shape(m))).unwrap_or_default();
                        let nested = format!("{}7{}", "[".repeat(depth), "]".repeat(depth));
                        splice_field(&good, "seq", &nested)
                    }
                };
                (topic, text.into_bytes(), Expect::bad())
            }
            "long_string" => {
                let field = ["schema", "machine_id", "ts", "product_type", "failure_mode"]
                    [self.rng.random_range(0..5)];
                let n = self.rng.random_range(1_000..10_000);
                let s: String = (0..n).map(|i| ['x', 'é', '机', '+', '#'][i % 5]).collect();
                let mut v = self.good_shape(m);
                v[field] = json!(s);
                (topic, bytes(&v), Expect::bad())
            }
            "bad_payload_id" => {
                let mut v = self.good_shape(m);
                v["machine_id"] = json!(self.hostile_id());
                (topic, bytes(&v), Expect::bad())
            }
            "bad_topic_id" => {
                let mut id = self.hostile_id();
                if self.mqtt_safe {
                    id.retain(|c| !matches!(c, '+' | '#' | '/' | '\0'));
                }
                if dtwin_schema::MachineId::parse(&id).is_ok() {
                    id.push('é');
                }
                let mut v = self.good_shape(m);
                v["machine_id"] = json!(id);
                (self.telemetry_topic(&id), bytes(&v), Expect::bad())
            }
            "wrong_topic" => {
                let t = [
                    format!("{}/machines/{}/features", self.topics.prefix(), machine(m)),
                    "elsewhere/machines/m/telemetry".to_owned(),
                    format!("{}/machines/{}", self.topics.prefix(), machine(m)),
                    String::new(),
                ][self.rng.random_range(0..4)]
                .clone();
                (t, bytes(&self.good_shape(m)), Expect::bad())
            }
            "oversize" => {
                let pad = MAX_PAYLOAD_BYTES + self.rng.random_range(1..4_096);
                let mut v = self.good_shape(m);
                v["padding"] = json!("p".repeat(pad));
                let v = if self.rng.random_bool(0.3) {
                    Value::Array(vec![v])
                } else {
                    v
                };
                (topic, bytes(&v), Expect::bad())
            }
            "wrong_type" => {
                let (field, value) = [
                    ("seq", json!("7")),
                    ("seq", json!(null)),
                    ("seq", json!(1.5)),
                    ("temperature_c", json!("hot")),
                    ("temperature_c", json!([36.0])),
                    ("ts", json!(12345)),
                    ("ts", json!("yesterday")),
                    ("machine_id", json!(42)),
                    ("quality_ok", json!("yes")),
                    ("product_type", json!("Z")),
                    ("failure_mode", json!("GREMLINS")),
                ][self.rng.random_range(0..11)]
                .clone();
                let mut v = self.good_shape(m);
                v[field] = value;
                (topic, bytes(&v), Expect::bad())
            }
            "not_an_object" => {
                let p = [
                    "123",
                    "\"text\"",
                    "true",
                    "null",
                    "{}",
                    "  ",
                    "[1,2]",
                    "{\"seq\":1}",
                ][self.rng.random_range(0..8)];
                // "[1,2]" is a batch whose two readings are each rejected.
                let expect = if p == "[1,2]" {
                    Expect {
                        dead: 2,
                        ..Expect::bad()
                    }
                } else {
                    Expect::bad()
                };
                (topic, p.as_bytes().to_vec(), expect)
            }
            "unknown_schema" => {
                let mut v = self.good_shape(m);
                v["schema"] =
                    json!(["dtwin.telemetry.v9", "", "dtwin.risk.v1"][self.rng.random_range(0..3)]);
                (topic, bytes(&v), Expect::bad())
            }
            "non_finite" => {
                let token =
                    ["NaN", "Infinity", "-Infinity", "nan", "inf"][self.rng.random_range(0..5)];
                let text = String::from_utf8(bytes(&self.good_shape(m))).unwrap_or_default();
                (
                    topic,
                    splice_field(&text, "temperature_c", token).into_bytes(),
                    Expect::bad(),
                )
            }
            "invalid_utf8" => {
                let mut b = bytes(&self.good_shape(m));
                // Inside the machine id string: "fuzz-0\xff.."
                if let Some(i) = find(&b, b"fuzz-") {
                    b[i + 1] = 0xff;
                }
                (topic, b, Expect::bad())
            }
            "empty_batch" => (topic, b"[ ]".to_vec(), Expect::bad()),
            "batch_with_a_bad_reading" => {
                let n = self.rng.random_range(1..4);
                let mut readings: Vec<Value> = (0..n)
                    .map(|_| {
                        let seq = self.next_seq[m];
                        self.next_seq[m] += 1;
                        self.reading(&machine(m), seq)
                    })
                    .collect();
                let mut bad = self.good_shape(m);
                bad["vibration_mm_s"] = json!(-3.0);
                let at = self.rng.random_range(0..=n);
                readings.insert(at, bad);
                (
                    topic,
                    bytes(&Value::Array(readings)),
                    Expect {
                        features: n,
                        dead: 1,
                        duplicates: 0,
                    },
                )
            }
            "batch_for_another_machine" => {
                let other = (m + 1) % self.next_seq.len();
                let v = if other == m {
                    let mut v = self.good_shape(m);
                    v["machine_id"] = json!("someone-else");
                    v
                } else {
                    self.good_shape(other)
                };
                (topic, bytes(&Value::Array(vec![v])), Expect::bad())
            }
            "duplicate" => {
                if self.next_seq[m] == 1 {
                    // Nothing sent yet for this machine: a valid first reading instead.
                    let v = self.reading(&machine(m), 1);
                    self.next_seq[m] = 2;
                    return Case {
                        kind: "valid",
                        topic,
                        payload: bytes(&v),
                        expect: Expect::good(1),
                    };
                }
                let last = self.next_seq[m] - 1;
                let v = self.accepted(&machine(m), last);
                (
                    topic,
                    bytes(&v),
                    Expect {
                        features: 0,
                        dead: 0,
                        duplicates: 1,
                    },
                )
            }
            "v2_bad" => {
                let shape = self.good_shape(m);
                let mut v = self.as_v2(shape);
                let (field, value) = [
                    ("profile", json!("turning")),
                    ("machine_id", json!("someone-else")),
                    ("ts", json!(1_795_000_000)),
                    ("values", json!({"temperature_c": "hot"})),
                    ("values", json!([36.5])),
                    ("values", json!({"vibration_mm_s": -3.0})),
                ][self.rng.random_range(0..6)]
                .clone();
                v[field] = value;
                (topic, bytes(&v), Expect::bad())
            }
            other => unreachable!("kind {other} has no generator"),
        };
        Case {
            kind: name,
            topic,
            payload,
            expect,
        }
    }
}

/// Endless: `Generator::new(..).take(n)`.
impl Iterator for Generator {
    type Item = Case;
    fn next(&mut self) -> Option<Case> {
        Some(self.case())
    }
}

fn machine(i: usize) -> String {
    format!("fuzz-{i:03}")
}

fn bytes(v: &Value) -> Vec<u8> {
    // A serde_json::Value always serializes.
    serde_json::to_vec(v).unwrap_or_default()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `text` (a JSON object) with `"field":<raw>` in place of the field's value, or added at the
/// front when absent.
fn splice_field(text: &str, field: &str, raw: &str) -> String {
    let key = format!("\"{field}\":");
    match text.find(&key) {
        Some(start) => {
            let from = start + key.len();
            let rest = &text[from..];
            // Values spliced over are numbers or strings without commas or braces.
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            format!("{}{raw}{}", &text[..from], &rest[end..])
        }
        None => format!("{{{key}{raw},{}", &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_generated() {
        let mut g = Generator::new(1, 5, false);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5_000 {
            seen.insert(g.case().kind);
        }
        for k in KINDS {
            assert!(seen.contains(k), "{k} never generated");
        }
    }

    #[test]
    fn splicing_replaces_or_adds_a_field() {
        assert_eq!(
            splice_field(r#"{"a":1,"b":2}"#, "a", "x"),
            r#"{"a":x,"b":2}"#
        );
        assert_eq!(
            splice_field(r#"{"a":1,"b":2}"#, "b", "x"),
            r#"{"a":1,"b":x}"#
        );
        assert_eq!(splice_field(r#"{"a":1}"#, "c", "x"), r#"{"c":x,"a":1}"#);
    }
}
