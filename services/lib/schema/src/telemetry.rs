//! Telemetry: one machine's sensor reading, and the decoder that turns untrusted bytes into
//! one or rejects them with a machine-readable [`RejectReason`].
//!
//! A gateway may send any subset of the sensors (missing ones are `None`); unknown fields are
//! ignored; wrong types, non-finite or out-of-range values and oversize payloads are rejected.

use crate::machine_id::MachineId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Schema id of telemetry messages.
pub const TELEMETRY_SCHEMA: &str = "dtwin.telemetry.v1";

/// Largest telemetry payload accepted, in bytes. A reading is ~400 bytes; 64 KiB leaves room
/// for verbose gateways while keeping one message from tying up a worker.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// AI4I product quality variant: low, medium or high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProductType {
    /// Low quality variant (60 % of AI4I's products).
    L,
    /// Medium quality variant (30 %).
    M,
    /// High quality variant (10 %).
    H,
}

impl ProductType {
    /// The one-letter code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L => "L",
            Self::M => "M",
            Self::H => "H",
        }
    }
}

/// Why a machine failed: AI4I's five modes plus the twin's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureMode {
    /// Tool wear failure: the tool wore out (AI4I TWF).
    Twf,
    /// Heat dissipation failure (AI4I HDF).
    Hdf,
    /// Power failure: power out of its band (AI4I PWF).
    Pwf,
    /// Overstrain failure: wear x torque too high (AI4I OSF).
    Osf,
    /// Random failure (AI4I RNF).
    Rnf,
    /// Bearing failure after degradation (vibration).
    Bearing,
    /// Coolant failure (overheating).
    Coolant,
    /// Valve failure (pressure out of band).
    Valve,
}

impl FailureMode {
    /// Every mode, in declaration order.
    pub const ALL: [FailureMode; 8] = [
        Self::Twf,
        Self::Hdf,
        Self::Pwf,
        Self::Osf,
        Self::Rnf,
        Self::Bearing,
        Self::Coolant,
        Self::Valve,
    ];

    /// The wire name, e.g. `TWF`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twf => "TWF",
            Self::Hdf => "HDF",
            Self::Pwf => "PWF",
            Self::Osf => "OSF",
            Self::Rnf => "RNF",
            Self::Bearing => "BEARING",
            Self::Coolant => "COOLANT",
            Self::Valve => "VALVE",
        }
    }
}

/// One sensor reading of one machine (`dtwin.telemetry.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Always [`TELEMETRY_SCHEMA`].
    pub schema: String,
    /// The machine that produced the reading.
    pub machine_id: MachineId,
    /// When the reading was taken (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// Per-machine sequence number, +1 per reading, so consumers see gaps and duplicates.
    pub seq: u64,
    /// Process temperature in degrees Celsius.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
    /// Vibration velocity RMS in mm/s (ISO 10816).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vibration_mm_s: Option<f64>,
    /// Hydraulic/coolant pressure in bar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_bar: Option<f64>,
    /// Spindle speed in revolutions per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spindle_rpm: Option<f64>,
    /// Minutes of use of the current tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_wear_min: Option<f64>,
    /// Spindle torque in N·m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torque_nm: Option<f64>,
    /// Ambient (air) temperature in degrees Celsius.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambient_temperature_c: Option<f64>,
    /// Mechanical power in watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// Machine operating hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_hours: Option<f64>,
    /// Product variant being made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<ProductType>,
    /// Whether the part produced passed quality inspection (ground truth, optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_ok: Option<bool>,
    /// Whether the machine failed on this cycle (ground truth, optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<bool>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<FailureMode>,
}

/// A sensor field with its plausible range; values outside are rejected as `out_of_range`.
pub struct SensorSpec {
    /// JSON field name.
    pub name: &'static str,
    /// Smallest plausible value.
    pub min: f64,
    /// Largest plausible value.
    pub max: f64,
}

/// Plausible ranges: wide enough for any real machine, narrow enough to catch unit mistakes
/// (kelvin sent as Celsius) and garbage.
pub const SENSOR_SPECS: [SensorSpec; 9] = [
    SensorSpec {
        name: "temperature_c",
        min: -60.0,
        max: 600.0,
    },
    SensorSpec {
        name: "vibration_mm_s",
        min: 0.0,
        max: 200.0,
    },
    SensorSpec {
        name: "pressure_bar",
        min: 0.0,
        max: 1000.0,
    },
    SensorSpec {
        name: "spindle_rpm",
        min: 0.0,
        max: 100_000.0,
    },
    SensorSpec {
        name: "tool_wear_min",
        min: 0.0,
        max: 100_000.0,
    },
    SensorSpec {
        name: "torque_nm",
        min: 0.0,
        max: 100_000.0,
    },
    SensorSpec {
        name: "ambient_temperature_c",
        min: -60.0,
        max: 150.0,
    },
    SensorSpec {
        name: "power_w",
        min: 0.0,
        max: 10_000_000.0,
    },
    SensorSpec {
        name: "operating_hours",
        min: 0.0,
        max: 10_000_000.0,
    },
];

impl Telemetry {
    /// A reading with every optional field empty.
    pub fn new(machine_id: MachineId, ts: OffsetDateTime, seq: u64) -> Self {
        Self {
            schema: TELEMETRY_SCHEMA.to_owned(),
            machine_id,
            ts,
            seq,
            temperature_c: None,
            vibration_mm_s: None,
            pressure_bar: None,
            spindle_rpm: None,
            tool_wear_min: None,
            torque_nm: None,
            ambient_temperature_c: None,
            power_w: None,
            operating_hours: None,
            product_type: None,
            quality_ok: None,
            failure: None,
            failure_mode: None,
        }
    }

    /// The sensor values in [`SENSOR_SPECS`] order.
    pub fn sensors(&self) -> [Option<f64>; 9] {
        [
            self.temperature_c,
            self.vibration_mm_s,
            self.pressure_bar,
            self.spindle_rpm,
            self.tool_wear_min,
            self.torque_nm,
            self.ambient_temperature_c,
            self.power_w,
            self.operating_hours,
        ]
    }

    /// Decodes and validates an untrusted payload.
    ///
    /// # Errors
    /// A [`Rejection`] saying what is wrong: oversize, not JSON, a missing or mistyped field,
    /// a bad machine id, an unknown schema, or a non-finite or out-of-range value.
    pub fn decode(payload: &[u8]) -> Result<Self, Rejection> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(Rejection::new(
                RejectReason::Oversize,
                format!(
                    "payload is {} bytes; at most {MAX_PAYLOAD_BYTES} are accepted",
                    payload.len()
                ),
            ));
        }
        let t: Telemetry = serde_json::from_slice(payload).map_err(Rejection::from_json)?;
        t.validate()?;
        Ok(t)
    }

    /// Decodes an untrusted payload holding one reading (a JSON object) or a gateway's batch of
    /// one machine's readings (a non-empty JSON array of such objects, e.g. its backlog after an
    /// outage), in payload order.
    ///
    /// # Errors
    /// The outer error rejects the whole payload: oversize, not JSON, an empty array, or (for
    /// a single object) anything [`Telemetry::decode`] rejects. Each inner result accepts or
    /// rejects one reading of a batch, its detail starting with `reading {i}:`.
    pub fn decode_many(payload: &[u8]) -> Result<Vec<Result<Self, Rejection>>, Rejection> {
        let first = payload.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'[') {
            return Self::decode(payload).map(|t| vec![Ok(t)]);
        }
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(Rejection::new(
                RejectReason::Oversize,
                format!(
                    "payload is {} bytes; at most {MAX_PAYLOAD_BYTES} are accepted",
                    payload.len()
                ),
            ));
        }
        let items: Vec<serde_json::Value> =
            serde_json::from_slice(payload).map_err(Rejection::from_json)?;
        if items.is_empty() {
            return Err(Rejection::new(
                RejectReason::WrongType,
                "an empty array holds no reading",
            ));
        }
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let t: Telemetry = serde_json::from_value(v).map_err(|e| {
                    let r = Rejection::from_json(e);
                    Rejection::new(r.reason, format!("reading {i}: {}", r.detail))
                })?;
                t.validate()
                    .map_err(|r| Rejection::new(r.reason, format!("reading {i}: {}", r.detail)))?;
                Ok(t)
            })
            .collect())
    }

    /// Checks the schema id and every sensor's range.
    ///
    /// # Errors
    /// [`RejectReason::UnknownSchema`], [`RejectReason::NonFinite`] or
    /// [`RejectReason::OutOfRange`].
    pub fn validate(&self) -> Result<(), Rejection> {
        if self.schema != TELEMETRY_SCHEMA {
            return Err(Rejection::new(
                RejectReason::UnknownSchema,
                format!("schema is {:?}; expected {TELEMETRY_SCHEMA:?}", self.schema),
            ));
        }
        for (spec, value) in SENSOR_SPECS.iter().zip(self.sensors()) {
            let Some(v) = value else { continue };
            if !v.is_finite() {
                return Err(Rejection::new(
                    RejectReason::NonFinite,
                    format!("{} is {v}", spec.name),
                ));
            }
            if v < spec.min || v > spec.max {
                return Err(Rejection::new(
                    RejectReason::OutOfRange,
                    format!(
                        "{} = {v} is outside [{}, {}]",
                        spec.name, spec.min, spec.max
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Encodes the reading as JSON.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain structs with string keys cannot fail.
        serde_json::to_vec(self).expect("telemetry serializes")
    }
}

/// Machine-readable reason for rejecting an input (the `reason` of a dead letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Larger than [`MAX_PAYLOAD_BYTES`].
    Oversize,
    /// Not valid JSON (or not UTF-8, or a number JSON cannot hold).
    NotJson,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// `machine_id` does not match `[A-Za-z0-9_.-]{1,64}`.
    BadMachineId,
    /// The `schema` field names a message this service does not take.
    UnknownSchema,
    /// A number is NaN or infinite.
    NonFinite,
    /// A number is outside its plausible range.
    OutOfRange,
    /// The machine id in the topic differs from the one in the payload.
    TopicMismatch,
    /// A reading arrived too late to be placed in order.
    TooLate,
    /// A feature vector was computed with another feature set than the model's.
    FeatureSetMismatch,
    /// A model artifact is invalid or does not fit the feature set.
    BadModel,
    /// A v2 reading names a machine profile this service does not know.
    UnknownProfile,
    /// A Sparkplug B message (or part of one) the Sparkplug host could not use; the
    /// host's own reason (`not_protobuf`, `seq_gap`, `unknown_alias`, ...) starts the detail.
    Sparkplug,
    /// An alert action names an alert that is not the machine's open alert (unknown, resolved,
    /// cleared or superseded; the detail says which).
    UnknownAlert,
    /// An acknowledgement of an alert someone else (or the same person, earlier) already
    /// acknowledged.
    AlreadyAcknowledged,
}

impl RejectReason {
    /// The wire name, e.g. `not_json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oversize => "oversize",
            Self::NotJson => "not_json",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::BadMachineId => "bad_machine_id",
            Self::UnknownSchema => "unknown_schema",
            Self::NonFinite => "non_finite",
            Self::OutOfRange => "out_of_range",
            Self::TopicMismatch => "topic_mismatch",
            Self::TooLate => "too_late",
            Self::FeatureSetMismatch => "feature_set_mismatch",
            Self::BadModel => "bad_model",
            Self::UnknownProfile => "unknown_profile",
            Self::Sparkplug => "sparkplug",
            Self::UnknownAlert => "unknown_alert",
            Self::AlreadyAcknowledged => "already_acknowledged",
        }
    }
}

/// A rejected input: the reason code and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct Rejection {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// What exactly was wrong.
    pub detail: String,
}

impl Rejection {
    /// A rejection with the given reason and detail.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    /// Classifies a serde_json error into a reason: any message type decodes this way.
    pub fn from_json(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let msg = e.to_string();
        let reason = match e.classify() {
            _ if msg.contains("number out of range") => RejectReason::OutOfRange,
            Category::Io | Category::Syntax | Category::Eof => RejectReason::NotJson,
            Category::Data if msg.starts_with("missing field") => RejectReason::MissingField,
            Category::Data if msg.starts_with("machine id") => RejectReason::BadMachineId,
            Category::Data => RejectReason::WrongType,
        };
        Self::new(reason, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason(payload: &str) -> RejectReason {
        Telemetry::decode(payload.as_bytes()).unwrap_err().reason
    }

    const GOOD: &str = r#"{"schema":"dtwin.telemetry.v1","machine_id":"m-1","ts":"2026-11-22T10:00:00Z","seq":7,"temperature_c":36.5,"vibration_mm_s":2.1,"extra":"ignored"}"#;

    #[test]
    fn decodes_a_partial_reading_and_ignores_unknown_fields() {
        let t = Telemetry::decode(GOOD.as_bytes()).unwrap();
        assert_eq!(t.machine_id.as_str(), "m-1");
        assert_eq!(t.seq, 7);
        assert_eq!(t.temperature_c, Some(36.5));
        assert_eq!(t.pressure_bar, None);
        let again = Telemetry::decode(&t.encode()).unwrap();
        assert_eq!(again, t);
    }

    #[test]
    fn rejects_with_precise_reasons() {
        assert_eq!(reason("not json"), RejectReason::NotJson);
        assert_eq!(
            reason(r#"{"schema":"dtwin.telemetry.v1""#),
            RejectReason::NotJson
        );
        assert_eq!(
            reason(r#"{"schema":"dtwin.telemetry.v1","ts":"2026-11-22T10:00:00Z","seq":1}"#),
            RejectReason::MissingField
        );
        assert_eq!(
            reason(&GOOD.replace("\"m-1\"", "\"m/1\"")),
            RejectReason::BadMachineId
        );
        assert_eq!(
            reason(&GOOD.replace("\"m-1\"", "\"\"")),
            RejectReason::BadMachineId
        );
        assert_eq!(
            reason(&GOOD.replace("36.5", "\"hot\"")),
            RejectReason::WrongType
        );
        assert_eq!(
            reason(&GOOD.replace("36.5", "1e999")),
            RejectReason::OutOfRange
        );
        assert_eq!(reason(&GOOD.replace("36.5", "NaN")), RejectReason::NotJson);
        assert_eq!(reason(&GOOD.replace("2.1", "-3")), RejectReason::OutOfRange);
        assert_eq!(
            reason(&GOOD.replace("dtwin.telemetry.v1", "other.v9")),
            RejectReason::UnknownSchema
        );
        assert_eq!(
            reason(&GOOD.replace("\"seq\":7", "\"seq\":-1")),
            RejectReason::WrongType
        );
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_PAYLOAD_BYTES));
        assert_eq!(reason(&big), RejectReason::Oversize);
    }

    #[test]
    fn batches_decode_in_order_and_reject_readings_one_by_one() {
        let two = GOOD.replace("\"seq\":7", "\"seq\":8");
        let batch = format!("[{GOOD}, {two}]");
        let got = Telemetry::decode_many(batch.as_bytes()).unwrap();
        let seqs: Vec<u64> = got.iter().map(|r| r.as_ref().unwrap().seq).collect();
        assert_eq!(seqs, [7, 8]);
        let single = Telemetry::decode_many(GOOD.as_bytes()).unwrap();
        assert_eq!(single.len(), 1);
        let mixed = format!("[{GOOD}, {}, 3]", GOOD.replace("36.5", "-99"));
        let got = Telemetry::decode_many(mixed.as_bytes()).unwrap();
        assert!(got[0].is_ok());
        let e = got[1].as_ref().unwrap_err();
        assert_eq!(e.reason, RejectReason::OutOfRange);
        assert!(e.detail.starts_with("reading 1:"), "{}", e.detail);
        assert_eq!(got[2].as_ref().unwrap_err().reason, RejectReason::WrongType);
        let outer = |p: &str| Telemetry::decode_many(p.as_bytes()).unwrap_err().reason;
        assert_eq!(outer("[]"), RejectReason::WrongType);
        assert_eq!(outer(" [1, "), RejectReason::NotJson);
        assert_eq!(outer("{"), RejectReason::NotJson);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(outer(&deep), RejectReason::NotJson);
        let big = format!("[{}]", vec![GOOD; 1000].join(","));
        assert_eq!(outer(&big), RejectReason::Oversize);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Telemetry::decode(&bytes);
        }

        #[test]
        fn in_range_values_round_trip(t in -50.0f64..500.0, v in 0.0f64..100.0, seq in any::<u64>()) {
            let mut r = Telemetry::new(MachineId::parse("m").unwrap(), crate::time_fmt::now(), seq);
            r.temperature_c = Some(t);
            r.vibration_mm_s = Some(v);
            let back = Telemetry::decode(&r.encode()).unwrap();
            prop_assert_eq!(back.temperature_c, Some(t));
            prop_assert_eq!(back.seq, seq);
        }
    }
}
