//! Telemetry v2 (`dtwin.telemetry.v2`): the payload a real gateway can send, and
//! [`Telemetry::decode_on`], the decoder that knows the topic's machine and the arrival time.
//!
//! ```json
//! {"schema":"dtwin.telemetry.v2","machine_id":"pump-07","ts":"2026-11-22T10:00:00Z","seq":12,
//!  "profile":"milling","values":{"temperature_c":36.5,"vibration_mm_s":2.1}}
//! ```
//!
//! Rules (v1 is unchanged and still accepted by the same entry point):
//! - `schema` is optional: a payload without it that has `values` is v2; with it, it must be
//!   `dtwin.telemetry.v1` or `dtwin.telemetry.v2` (`unknown_schema`).
//! - `machine_id` is optional (the topic names the machine); when present it must equal the
//!   topic's id (`topic_mismatch`).
//! - `ts` is optional: RFC 3339, or epoch milliseconds as a JSON number (2000-01-01 to
//!   2100-01-01, else `out_of_range`: a value in seconds is caught); absent, the arrival time.
//! - `seq` is optional; absent, the consumer orders by `ts` ([`Reading::has_seq`]).
//! - `profile` is optional (a string): absent, the machine's profile as the caller maps it
//!   ([`Telemetry::decode_for`]; `milling` for [`Telemetry::decode_on`]). Whether a named
//!   profile exists is the consumer's to say (the feature service: `unknown_profile`).
//! - `values` maps the profile's sensors to numbers (or null for "not measured"); the milling
//!   sensors are exactly v1's sensor fields ([`SENSOR_SPECS`]) with v1's range checks
//!   (`out_of_range`, `wrong_type`). A key that is not a sensor of the profile does not reject
//!   the reading: it is returned in [`Reading::ignored`] for the consumer to count (so are v1
//!   sensor fields sent at the top level of a v2 reading). The values of any other profile
//!   come out unchecked in [`Reading::values`]: this crate does not know that profile.
//! - `product_type`, `quality_ok`, `failure`, `failure_mode` stay top-level as in v1.
//! - In v2, `null` for `machine_id`, `ts`, `seq` or `profile` means absent; in v1 it is
//!   `wrong_type`, and a v1 payload gets exactly the reason [`Telemetry::decode`] gives it
//!   (ranges are checked before the topic, as the feature service always did).
//! - A batch (a non-empty JSON array) holds readings of the topic's machine; a reading of a
//!   batch of two or more needs `ts` or `seq` (`missing_field`): arrival time would give
//!   them all one timestamp.
//!
//! Every reading, v1 or v2, comes out as the same [`Telemetry`] (with `schema` set to v1's id:
//! it is v1's shape), so everything downstream is unchanged; a reading of another profile
//! carries its values beside it ([`Reading::values`]).

use crate::machine_id::MachineId;
use crate::telemetry::{FailureMode, ProductType};
use crate::telemetry::{
    RejectReason, Rejection, Telemetry, MAX_PAYLOAD_BYTES, SENSOR_SPECS, TELEMETRY_SCHEMA,
};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use time::OffsetDateTime;

/// Schema id of v2 telemetry.
pub const TELEMETRY_V2_SCHEMA: &str = "dtwin.telemetry.v2";

/// The built-in profile: v1's sensors, and a v2 reading's when neither the payload nor the
/// caller names another.
pub const DEFAULT_PROFILE: &str = "milling";

/// Earliest epoch-millisecond `ts` accepted (2000-01-01T00:00:00Z).
pub const MIN_TS_MS: i64 = 946_684_800_000;

/// End of the epoch-millisecond `ts` range (2100-01-01T00:00:00Z, excluded).
pub const MAX_TS_MS: i64 = 4_102_444_800_000;

/// One reading decoded by [`Telemetry::decode_on`]: the reading and what the payload left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The reading (`schema` is v1's id, `machine_id` the topic's).
    pub telemetry: Telemetry,
    /// The payload carried `seq`. When false, `telemetry.seq` is 0 and the consumer orders
    /// the machine's readings by `ts`.
    pub has_seq: bool,
    /// The payload carried `ts`. When false, `telemetry.ts` is the arrival time.
    pub has_ts: bool,
    /// Keys of `values` that are not sensors of the milling profile, and v1 sensor fields sent
    /// at the top level of a v2 reading: ignored, for the consumer to count and report. For a
    /// reading of another profile only the top-level fields (its `values` are in
    /// [`Reading::values`]: this crate cannot tell its sensors from unknown keys).
    pub ignored: Vec<String>,
    /// The profile the payload names. `None`: a v2 reading without `profile`, for the consumer
    /// to map from the machine id. `Some("milling")` for every v1 reading (v1 is the milling
    /// profile's payload) and a v2 reading naming it: borrowed, no allocation per reading.
    pub profile: Option<Cow<'static, str>>,
    /// A reading of a profile other than milling: the entries of `values`, unchecked (the
    /// consumer knows the profile's sensors, ranges and attributes); `telemetry` then holds no
    /// sensor value. Not in payload order: a key sent twice may appear twice, the later entry
    /// last. Empty for milling readings.
    pub values: Vec<(String, RawValue)>,
}

impl Reading {
    /// Whether the reading is of the milling profile as the payload says: v1, or v2 naming
    /// `milling`. `false` when it names another profile or none (the consumer decides).
    pub fn names_milling(&self) -> bool {
        self.profile.as_deref() == Some(DEFAULT_PROFILE)
    }
}

/// A timestamp on the wire: RFC 3339 or epoch milliseconds.
#[derive(Debug, Clone, Copy)]
enum WireTs {
    Rfc3339(OffsetDateTime),
    /// Epoch milliseconds, kept as nanoseconds (exact for integers).
    Millis {
        nanos: i128,
        shown: f64,
    },
}

impl WireTs {
    fn millis_int(ms: i128) -> Self {
        Self::Millis {
            nanos: ms.saturating_mul(1_000_000),
            shown: ms as f64,
        }
    }
}

impl<'de> Deserialize<'de> for WireTs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WireTs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or epoch milliseconds")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<WireTs, E> {
                OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map(WireTs::Rfc3339)
                    .map_err(|e| E::custom(format!("ts {s:?} is not RFC 3339: {e}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireTs, E> {
                Ok(WireTs::millis_int(i128::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireTs, E> {
                Ok(WireTs::millis_int(i128::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireTs, E> {
                Ok(WireTs::Millis {
                    nanos: (v * 1e6).round() as i128,
                    shown: v,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// One entry of `values` as received, for a profile this crate does not know (and, inside the
/// decoder, any JSON value): it never fails to deserialize, so a v1 payload with an odd
/// `values` field decodes exactly as before, and the consumer that knows the profile decides
/// what a string or a boolean means (an attribute's value, a wrong type, an ignored key).
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// A JSON number (integers converted to `f64`; `1e999` is infinite).
    Number(f64),
    /// `null`: not measured.
    Null,
    /// A string (an attribute's value, or a sensor sent with the wrong type).
    Text(String),
    /// Another type, named for the rejection (`"a boolean"`, `"an array"`, `"an object"`).
    Other(&'static str),
}

impl RawValue {
    /// The JSON type, as rejections name it (`"a string"`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Number(_) => "a number",
            Self::Null => "null",
            Self::Text(_) => "a string",
            Self::Other(k) => k,
        }
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawValue, E> {
                Ok(RawValue::Number(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawValue, E> {
                Ok(RawValue::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
                Ok(RawValue::Number(v))
            }
            fn visit_unit<E>(self) -> Result<RawValue, E> {
                Ok(RawValue::Null)
            }
            fn visit_none<E>(self) -> Result<RawValue, E> {
                Ok(RawValue::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawValue, E> {
                Ok(RawValue::Other("a boolean"))
            }
            fn visit_str<E>(self, s: &str) -> Result<RawValue, E> {
                Ok(RawValue::Text(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<RawValue, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawValue::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<RawValue, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawValue::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `values` field as received: never fails (see [`RawValue`]), judged by the v2 rules.
#[derive(Debug, Clone, Default)]
struct WireValues {
    /// Not an object: the type it was.
    not_object: Option<&'static str>,
    /// The sensors in [`SENSOR_SPECS`] order.
    sensors: [Option<f64>; 9],
    /// The first sensor with a wrong type: (name, type).
    wrong: Option<(String, &'static str)>,
    /// Every milling-named key whose value is not a number or null (for another profile's
    /// reading, where the name may mean something else).
    named_other: Vec<(String, RawValue)>,
    /// Keys that are not milling sensors, with their values (ignored for milling; the values
    /// of another profile's reading together with the milling-named ones).
    unknown: Vec<(String, RawValue)>,
}

impl<'de> Deserialize<'de> for WireValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireValues;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of sensor values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<WireValues, A::Error> {
                let mut out = WireValues::default();
                while let Some(key) = a.next_key::<std::borrow::Cow<'de, str>>()? {
                    let value: RawValue = a.next_value()?;
                    let Some(i) = SENSOR_SPECS.iter().position(|s| s.name == key) else {
                        out.unknown.push((key.into_owned(), value));
                        continue;
                    };
                    match value {
                        RawValue::Number(v) => out.sensors[i] = Some(v),
                        RawValue::Null => out.sensors[i] = None,
                        other => {
                            if out.wrong.is_none() {
                                out.wrong = Some((key.to_string(), other.kind()));
                            }
                            out.named_other.push((key.into_owned(), other));
                        }
                    }
                }
                Ok(out)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<WireValues, A::Error> {
                let kind = RawValue::deserialize(de::value::SeqAccessDeserializer::new(a))?;
                Ok(WireValues {
                    not_object: Some(other_kind(kind)),
                    ..WireValues::default()
                })
            }
            fn visit_u64<E>(self, _: u64) -> Result<WireValues, E> {
                Ok(not_object("a number"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<WireValues, E> {
                Ok(not_object("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<WireValues, E> {
                Ok(not_object("a number"))
            }
            fn visit_unit<E>(self) -> Result<WireValues, E> {
                Ok(WireValues::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<WireValues, E> {
                Ok(not_object("a boolean"))
            }
            fn visit_str<E>(self, _: &str) -> Result<WireValues, E> {
                Ok(not_object("a string"))
            }
        }
        d.deserialize_any(V)
    }
}

fn not_object(kind: &'static str) -> WireValues {
    WireValues {
        not_object: Some(kind),
        ..WireValues::default()
    }
}

fn other_kind(l: RawValue) -> &'static str {
    l.kind()
}

/// A field that may be absent, `null`, or a value: v1 rejects `null` where it needs a value
/// (`wrong_type`, as [`Telemetry::decode`] does), v2 reads it as absent.
#[derive(Debug, Clone, Default)]
enum Field<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Field<T> {
    /// v2: `null` is absent.
    fn v2(self) -> Option<T> {
        match self {
            Self::Value(v) => Some(v),
            Self::Absent | Self::Null => None,
        }
    }

    /// v1: absent is `missing_field`, `null` is `wrong_type`.
    fn v1(self, name: &str, expected: &str) -> Result<T, Rejection> {
        match self {
            Self::Value(v) => Ok(v),
            Self::Absent => Err(missing(name)),
            Self::Null => Err(Rejection::new(
                RejectReason::WrongType,
                format!("invalid type: null, expected {expected} for `{name}`"),
            )),
        }
    }
}

fn field<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Field<T>, D::Error> {
    Option::<T>::deserialize(d).map(|o| o.map_or(Field::Null, Field::Value))
}

/// Every field either version may carry, all optional; the version's rules decide.
#[derive(Deserialize)]
struct Wire {
    #[serde(default, deserialize_with = "field")]
    schema: Field<String>,
    #[serde(default, deserialize_with = "field")]
    machine_id: Field<MachineId>,
    #[serde(default, deserialize_with = "field")]
    ts: Field<WireTs>,
    #[serde(default, deserialize_with = "field")]
    seq: Field<u64>,
    profile: Option<Loose2>,
    values: Option<WireValues>,
    temperature_c: Option<f64>,
    vibration_mm_s: Option<f64>,
    pressure_bar: Option<f64>,
    spindle_rpm: Option<f64>,
    tool_wear_min: Option<f64>,
    torque_nm: Option<f64>,
    ambient_temperature_c: Option<f64>,
    power_w: Option<f64>,
    operating_hours: Option<f64>,
    product_type: Option<ProductType>,
    quality_ok: Option<bool>,
    failure: Option<bool>,
    failure_mode: Option<FailureMode>,
}

/// `profile` as received: a string, or the name of another type (never fails, see [`RawValue`]).
#[derive(Debug, Clone)]
enum Loose2 {
    Str(String),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Loose2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose2;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, s: &str) -> Result<Loose2, E> {
                Ok(Loose2::Str(s.to_owned()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Loose2, E> {
                Ok(Loose2::Other("a number"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Loose2, E> {
                Ok(Loose2::Other("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Loose2, E> {
                Ok(Loose2::Other("a number"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Loose2, E> {
                Ok(Loose2::Other("a boolean"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Loose2, A::Error> {
                let l = RawValue::deserialize(de::value::SeqAccessDeserializer::new(a))?;
                Ok(Loose2::Other(other_kind(l)))
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Loose2, A::Error> {
                let l = RawValue::deserialize(de::value::MapAccessDeserializer::new(a))?;
                Ok(Loose2::Other(other_kind(l)))
            }
        }
        d.deserialize_any(V)
    }
}

impl Wire {
    fn top_level_sensors(&self) -> [Option<f64>; 9] {
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

    /// Applies the rules of the payload's version.
    fn into_reading(
        self,
        topic: &MachineId,
        arrival: OffsetDateTime,
        machine_profile: &str,
    ) -> Result<Reading, Rejection> {
        let schema = match &self.schema {
            Field::Value(s) => Some(s.as_str()),
            Field::Absent => None,
            Field::Null => {
                return Err(Rejection::new(
                    RejectReason::WrongType,
                    "invalid type: null, expected a string for `schema`",
                ))
            }
        };
        let v2 = match schema {
            Some(TELEMETRY_SCHEMA) => false,
            Some(TELEMETRY_V2_SCHEMA) => true,
            Some(other) => {
                return Err(Rejection::new(
                    RejectReason::UnknownSchema,
                    format!(
                    "schema is {other:?}; expected {TELEMETRY_SCHEMA:?} or {TELEMETRY_V2_SCHEMA:?}"
                ),
                ))
            }
            None if self.values.is_some() => true,
            None => {
                self.v1_type_errors()?;
                return Err(missing("schema"));
            }
        };
        let reading = if v2 {
            self.v2(topic, arrival, machine_profile)?
        } else {
            self.v1()?
        };
        // Ranges before the topic check, in the order the feature service checked v1.
        reading.telemetry.validate()?;
        if reading.telemetry.machine_id != *topic {
            return Err(Rejection::new(
                RejectReason::TopicMismatch,
                format!(
                    "payload machine_id {} differs from topic machine id {topic}",
                    reading.telemetry.machine_id
                ),
            ));
        }
        Ok(reading)
    }

    /// v1: exactly [`Telemetry::decode`]'s rules (`values` and `profile` are unknown fields).
    /// v1's type errors, which [`Telemetry::decode`] reports before any missing field: a
    /// `null` required field, or `ts` as a number.
    fn v1_type_errors(&self) -> Result<(), Rejection> {
        let nulls = [
            ("machine_id", matches!(self.machine_id, Field::Null)),
            ("ts", matches!(self.ts, Field::Null)),
            ("seq", matches!(self.seq, Field::Null)),
        ];
        for (name, null) in nulls {
            if null {
                return Err(Rejection::new(
                    RejectReason::WrongType,
                    format!("invalid type: null for `{name}`"),
                ));
            }
        }
        if let Field::Value(WireTs::Millis { shown, .. }) = self.ts {
            return Err(Rejection::new(
                RejectReason::WrongType,
                format!("ts is the number {shown}; dtwin.telemetry.v1 takes an RFC 3339 string (v2 also takes epoch milliseconds)"),
            ));
        }
        Ok(())
    }

    fn v1(mut self) -> Result<Reading, Rejection> {
        self.v1_type_errors()?;
        let machine_id = std::mem::take(&mut self.machine_id).v1("machine_id", "a machine id")?;
        let ts = match std::mem::take(&mut self.ts).v1("ts", "an RFC 3339 timestamp")? {
            WireTs::Rfc3339(ts) => ts,
            WireTs::Millis { shown: ms, .. } => {
                return Err(Rejection::new(
                    RejectReason::WrongType,
                    format!("ts is the number {ms}; dtwin.telemetry.v1 takes an RFC 3339 string (v2 also takes epoch milliseconds)"),
                ))
            }
        };
        let seq = std::mem::take(&mut self.seq).v1("seq", "u64")?;
        let mut t = Telemetry::new(machine_id, ts, seq);
        set_sensors(&mut t, self.top_level_sensors());
        self.set_labels(&mut t);
        Ok(Reading {
            telemetry: t,
            has_seq: true,
            has_ts: true,
            ignored: Vec::new(),
            profile: Some(Cow::Borrowed(DEFAULT_PROFILE)),
            values: Vec::new(),
        })
    }

    fn v2(
        mut self,
        topic: &MachineId,
        arrival: OffsetDateTime,
        machine_profile: &str,
    ) -> Result<Reading, Rejection> {
        let profile = match self.profile.take() {
            None => None,
            Some(Loose2::Str(p)) if p == DEFAULT_PROFILE => Some(Cow::Borrowed(DEFAULT_PROFILE)),
            Some(Loose2::Str(p)) => Some(Cow::Owned(p)),
            Some(Loose2::Other(kind)) => {
                return Err(Rejection::new(
                    RejectReason::WrongType,
                    format!("profile is {kind}; expected a string"),
                ))
            }
        };
        // Without `profile`, the values are those of the machine's profile (the caller's).
        let other_profile = profile.as_deref().unwrap_or(machine_profile) != DEFAULT_PROFILE;
        let mut values = self.values.take().unwrap_or_default();
        if let Some(kind) = values.not_object {
            return Err(Rejection::new(
                RejectReason::WrongType,
                format!("values is {kind}; expected an object of sensor -> number"),
            ));
        }
        if other_profile {
            return self.v2_other(topic, arrival, profile, values);
        }
        if let Some((key, kind)) = &values.wrong {
            return Err(Rejection::new(
                RejectReason::WrongType,
                format!("values.{key} is {kind}; expected a number"),
            ));
        }
        let (mut t, has_seq, has_ts) = self.v2_header(topic, arrival)?;
        set_sensors(&mut t, values.sensors);
        let mut ignored: Vec<String> = std::mem::take(&mut values.unknown)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        self.top_level_ignored(&mut ignored);
        Ok(Reading {
            telemetry: t,
            has_seq,
            has_ts,
            ignored,
            profile,
            values: Vec::new(),
        })
    }

    /// A v2 reading of a profile this crate does not know: its `values` go out unchecked.
    fn v2_other(
        mut self,
        topic: &MachineId,
        arrival: OffsetDateTime,
        profile: Option<Cow<'static, str>>,
        values: WireValues,
    ) -> Result<Reading, Rejection> {
        let (t, has_seq, has_ts) = self.v2_header(topic, arrival)?;
        let mut raw = values.unknown;
        raw.extend(
            SENSOR_SPECS
                .iter()
                .zip(values.sensors)
                .filter_map(|(s, v)| Some((s.name.to_owned(), RawValue::Number(v?)))),
        );
        raw.extend(values.named_other);
        let mut ignored = Vec::new();
        self.top_level_ignored(&mut ignored);
        Ok(Reading {
            telemetry: t,
            has_seq,
            has_ts,
            ignored,
            profile,
            values: raw,
        })
    }

    /// The reading without its values: machine (default: the topic's), `ts` (default: the
    /// arrival time), `seq` and the labels; and whether `seq` and `ts` were sent.
    fn v2_header(
        &mut self,
        topic: &MachineId,
        arrival: OffsetDateTime,
    ) -> Result<(Telemetry, bool, bool), Rejection> {
        let (ts, has_ts) = match std::mem::take(&mut self.ts).v2() {
            Some(WireTs::Rfc3339(ts)) => (ts, true),
            Some(WireTs::Millis { nanos, shown }) => (from_millis(nanos, shown)?, true),
            None => (arrival, false),
        };
        let machine_id = std::mem::take(&mut self.machine_id)
            .v2()
            .unwrap_or_else(|| topic.clone());
        let seq = std::mem::take(&mut self.seq).v2();
        let mut t = Telemetry::new(machine_id, ts, seq.unwrap_or(0));
        self.set_labels(&mut t);
        Ok((t, seq.is_some(), has_ts))
    }

    /// v1 sensor fields sent at the top level of a v2 reading: ignored and reported.
    fn top_level_ignored(&self, ignored: &mut Vec<String>) {
        for (spec, v) in SENSOR_SPECS.iter().zip(self.top_level_sensors()) {
            if v.is_some() {
                ignored.push(spec.name.to_owned());
            }
        }
    }

    fn set_labels(&self, t: &mut Telemetry) {
        t.product_type = self.product_type;
        t.quality_ok = self.quality_ok;
        t.failure = self.failure;
        t.failure_mode = self.failure_mode;
    }
}

fn missing(field: &str) -> Rejection {
    Rejection::new(
        RejectReason::MissingField,
        format!("missing field `{field}`"),
    )
}

fn set_sensors(t: &mut Telemetry, s: [Option<f64>; 9]) {
    [
        t.temperature_c,
        t.vibration_mm_s,
        t.pressure_bar,
        t.spindle_rpm,
        t.tool_wear_min,
        t.torque_nm,
        t.ambient_temperature_c,
        t.power_w,
        t.operating_hours,
    ] = s;
}

/// Epoch milliseconds to a timestamp, within [`MIN_TS_MS`, `MAX_TS_MS`).
fn from_millis(nanos: i128, ms: f64) -> Result<OffsetDateTime, Rejection> {
    let range = i128::from(MIN_TS_MS) * 1_000_000..i128::from(MAX_TS_MS) * 1_000_000;
    if !range.contains(&nanos) {
        return Err(Rejection::new(
            RejectReason::OutOfRange,
            format!(
                "ts = {ms} epoch milliseconds is outside 2000-01-01..2100-01-01 (epoch seconds? ts takes milliseconds)"
            ),
        ));
    }
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map_err(|e| Rejection::new(RejectReason::OutOfRange, format!("ts = {ms} ms: {e}")))
}

fn oversize(payload: &[u8]) -> Option<Rejection> {
    (payload.len() > MAX_PAYLOAD_BYTES).then(|| {
        Rejection::new(
            RejectReason::Oversize,
            format!(
                "payload is {} bytes; at most {MAX_PAYLOAD_BYTES} are accepted",
                payload.len()
            ),
        )
    })
}

fn in_batch(i: usize, r: Rejection) -> Rejection {
    Rejection::new(r.reason, format!("reading {i}: {}", r.detail))
}

/// A v2 reading as a gateway writes it (borrowed from a [`Telemetry`]).
#[derive(serde::Serialize)]
struct WireOut<'a> {
    schema: &'static str,
    machine_id: &'a MachineId,
    #[serde(with = "time::serde::rfc3339")]
    ts: OffsetDateTime,
    seq: u64,
    profile: &'static str,
    values: std::collections::BTreeMap<&'static str, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_type: Option<ProductType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality_ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_mode: Option<FailureMode>,
}

impl Telemetry {
    /// Encodes the reading as a full `dtwin.telemetry.v2` message (every field, the
    /// `milling` profile, the sensors that have a value in `values`).
    pub fn encode_v2(&self) -> Vec<u8> {
        let values = SENSOR_SPECS
            .iter()
            .zip(self.sensors())
            .filter_map(|(s, v)| Some((s.name, v?)))
            .collect();
        let w = WireOut {
            schema: TELEMETRY_V2_SCHEMA,
            machine_id: &self.machine_id,
            ts: self.ts,
            seq: self.seq,
            profile: DEFAULT_PROFILE,
            values,
            product_type: self.product_type,
            quality_ok: self.quality_ok,
            failure: self.failure,
            failure_mode: self.failure_mode,
        };
        // Serializing plain structs with string keys cannot fail.
        serde_json::to_vec(&w).expect("telemetry serializes")
    }

    /// Decodes an untrusted payload received on the telemetry topic of machine `topic` at
    /// `arrival`: one reading (a JSON object) or a gateway batch (a non-empty JSON array), each
    /// reading v1 or v2 (see the [module](self) for the rules).
    ///
    /// A v2 reading without `profile` is a milling reading; see [`Telemetry::decode_for`] for
    /// machines of other profiles.
    ///
    /// # Errors
    /// The outer error rejects the whole payload: oversize, not JSON, an empty array, or (for a
    /// single object) anything the reading's rules reject. Each inner result accepts or rejects
    /// one reading of a batch, its detail starting with `reading {i}:`.
    pub fn decode_on(
        topic: &MachineId,
        arrival: OffsetDateTime,
        payload: &[u8],
    ) -> Result<Vec<Result<Reading, Rejection>>, Rejection> {
        Self::decode_for(topic, arrival, payload, DEFAULT_PROFILE)
    }

    /// [`Telemetry::decode_on`] for a machine whose profile (when a v2 reading names none) is
    /// `machine_profile`: the caller maps machine ids to profiles, this crate knows only
    /// milling's sensors. A reading of milling (v1, or v2 naming `milling`, or naming none
    /// when `machine_profile` is `milling`) is checked as [`Telemetry::decode_on`] checks it;
    /// a v2 reading of any other profile keeps its `values` unchecked in
    /// [`Reading::values`], for the caller to check against that profile. Whether a named
    /// profile exists is the caller's to say (`unknown_profile`).
    ///
    /// # Errors
    /// As [`Telemetry::decode_on`].
    pub fn decode_for(
        topic: &MachineId,
        arrival: OffsetDateTime,
        payload: &[u8],
        machine_profile: &str,
    ) -> Result<Vec<Result<Reading, Rejection>>, Rejection> {
        if let Some(r) = oversize(payload) {
            return Err(r);
        }
        let first = payload.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'[') {
            let wire: Wire = serde_json::from_slice(payload).map_err(Rejection::from_json)?;
            return wire
                .into_reading(topic, arrival, machine_profile)
                .map(|r| vec![Ok(r)]);
        }
        let items: Vec<serde_json::Value> =
            serde_json::from_slice(payload).map_err(Rejection::from_json)?;
        if items.is_empty() {
            return Err(Rejection::new(
                RejectReason::WrongType,
                "an empty array holds no reading",
            ));
        }
        let batch = items.len() > 1;
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let wire = Wire::deserialize(v).map_err(|e| in_batch(i, Rejection::from_json(e)))?;
                let r = wire
                    .into_reading(topic, arrival, machine_profile)
                    .map_err(|r| in_batch(i, r))?;
                if batch && !r.has_ts && !r.has_seq {
                    return Err(in_batch(
                        i,
                        Rejection::new(
                            RejectReason::MissingField,
                            "a reading of a batch needs `ts` or `seq` (the arrival time would give every reading one timestamp)",
                        ),
                    ));
                }
                Ok(r)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> MachineId {
        MachineId::parse(s).unwrap()
    }

    fn arrival() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap()
    }

    fn one(topic: &str, payload: &str) -> Result<Reading, Rejection> {
        let mut v = Telemetry::decode_on(&id(topic), arrival(), payload.as_bytes())?;
        assert_eq!(v.len(), 1);
        v.pop().unwrap()
    }

    fn reason(payload: &str) -> RejectReason {
        one("pump-07", payload).unwrap_err().reason
    }

    const FULL: &str = r#"{"schema":"dtwin.telemetry.v2","machine_id":"pump-07","ts":"2026-11-22T10:00:00Z","seq":12,"profile":"milling","values":{"temperature_c":36.5,"vibration_mm_s":2.1}}"#;

    #[test]
    fn a_full_v2_reading_maps_onto_the_v1_struct() {
        let r = one("pump-07", FULL).unwrap();
        let t = &r.telemetry;
        assert_eq!(t.schema, TELEMETRY_SCHEMA);
        assert_eq!(t.machine_id.as_str(), "pump-07");
        assert_eq!(t.seq, 12);
        assert_eq!((t.temperature_c, t.vibration_mm_s), (Some(36.5), Some(2.1)));
        assert_eq!(t.pressure_bar, None);
        assert!(r.has_seq && r.has_ts && r.ignored.is_empty());
        assert_eq!(Telemetry::decode(&t.encode()).unwrap(), *t);
        let again = Telemetry::decode_on(&id("pump-07"), arrival(), &t.encode_v2()).unwrap();
        assert_eq!(again[0].as_ref().unwrap().telemetry, *t);
    }

    #[test]
    fn the_minimal_reading_is_values_alone() {
        let r = one("pump-07", r#"{"values":{"temperature_c":36.5}}"#).unwrap();
        assert_eq!(r.telemetry.machine_id.as_str(), "pump-07", "from the topic");
        assert_eq!(r.telemetry.ts, arrival(), "arrival time");
        assert_eq!(r.telemetry.seq, 0);
        assert!(!r.has_seq && !r.has_ts);
        assert_eq!(r.telemetry.temperature_c, Some(36.5));
        // Each omission on its own.
        for (field, has_seq, has_ts) in [
            ("machine_id", true, true),
            ("ts", true, false),
            ("seq", false, true),
            ("schema", true, true),
            ("profile", true, true),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(FULL).unwrap();
            v.as_object_mut().unwrap().remove(field);
            let r =
                one("pump-07", &v.to_string()).unwrap_or_else(|e| panic!("without {field}: {e}"));
            assert_eq!((r.has_seq, r.has_ts), (has_seq, has_ts), "without {field}");
            assert_eq!(r.telemetry.vibration_mm_s, Some(2.1));
        }
    }

    #[test]
    fn ts_may_be_epoch_milliseconds() {
        let r = one("pump-07", r#"{"ts":1795000000123,"values":{}}"#).unwrap();
        assert_eq!(
            r.telemetry.ts,
            arrival() + time::Duration::milliseconds(123)
        );
        // Seconds instead of milliseconds, negative, far future: out of range.
        for bad in ["1795000000", "-1", "99999999999999"] {
            let p = format!(r#"{{"ts":{bad},"values":{{}}}}"#);
            assert_eq!(reason(&p), RejectReason::OutOfRange, "{bad}");
        }
        assert_eq!(
            reason(r#"{"ts":"yesterday","values":{}}"#),
            RejectReason::WrongType
        );
        assert_eq!(
            reason(r#"{"ts":true,"values":{}}"#),
            RejectReason::WrongType
        );
        // v1 keeps its rule: RFC 3339 only.
        let v1 =
            r#"{"schema":"dtwin.telemetry.v1","machine_id":"pump-07","ts":1795000000123,"seq":1}"#;
        assert_eq!(reason(v1), RejectReason::WrongType);
    }

    #[test]
    fn the_payload_machine_must_be_the_topic_machine() {
        let e = one("pump-08", FULL).unwrap_err();
        assert_eq!(e.reason, RejectReason::TopicMismatch);
        assert!(
            e.detail.contains("pump-07") && e.detail.contains("pump-08"),
            "{}",
            e.detail
        );
        assert_eq!(
            reason(&FULL.replace("\"pump-07\"", "\"a/b\"")),
            RejectReason::BadMachineId
        );
    }

    #[test]
    fn another_profile_passes_with_its_values_unchecked() {
        // Milling's range (-60..600) and type rules do not apply to another profile's values.
        let p = FULL
            .replace("milling", "turning")
            .replace("36.5", "-99")
            .replace(
                "2.1",
                r#""hot","model":"m3","volt":176.2,"rpm":null,"ok":true"#,
            );
        let r = one("pump-07", &p).unwrap();
        assert_eq!(r.profile.as_deref(), Some("turning"));
        assert!(!r.names_milling());
        assert_eq!(r.telemetry.sensors(), [None; 9], "no milling sensor is set");
        assert_eq!((r.telemetry.seq, r.has_seq, r.has_ts), (12, true, true));
        let mut v = r.values.clone();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            v,
            [
                ("model".to_owned(), RawValue::Text("m3".into())),
                ("ok".to_owned(), RawValue::Other("a boolean")),
                ("rpm".to_owned(), RawValue::Null),
                ("temperature_c".to_owned(), RawValue::Number(-99.0)),
                ("vibration_mm_s".to_owned(), RawValue::Text("hot".into())),
                ("volt".to_owned(), RawValue::Number(176.2)),
            ]
        );
        assert!(r.ignored.is_empty());
        // Without `profile`, the caller's profile for the machine decides; milling by default.
        let bare = r#"{"values":{"volt":176.2,"temperature_c":-99}}"#;
        assert_eq!(reason(bare), RejectReason::OutOfRange);
        let r = Telemetry::decode_for(&id("pump-07"), arrival(), bare.as_bytes(), "pump")
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
        assert_eq!(r.profile, None);
        assert_eq!(r.values.len(), 2);
        // A reading naming milling is milling whatever the caller's default.
        let r = Telemetry::decode_for(&id("pump-07"), arrival(), FULL.as_bytes(), "pump")
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
        assert!(r.names_milling() && r.values.is_empty());
        assert_eq!(r.telemetry.temperature_c, Some(36.5));
        // The envelope's rules still hold.
        let other = FULL.replace("milling", "turning");
        assert_eq!(
            one("pump-08", &other).unwrap_err().reason,
            RejectReason::TopicMismatch
        );
        assert_eq!(
            reason(&other.replace(r#""values":{"#, r#""values":7,"x":{"#)),
            RejectReason::WrongType
        );
    }

    #[test]
    fn v1_is_milling_and_a_bad_profile_or_schema_is_rejected() {
        let v1 = Telemetry::new(id("pump-07"), arrival(), 1).encode();
        let r = Telemetry::decode_for(&id("pump-07"), arrival(), &v1, "pump")
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
        assert!(r.names_milling(), "v1 is the milling payload");
        assert_eq!(
            reason(&FULL.replace("\"milling\"", "7")),
            RejectReason::WrongType
        );
        assert_eq!(
            reason(&FULL.replace("telemetry.v2", "telemetry.v3")),
            RejectReason::UnknownSchema
        );
        // Without schema and without values: not v2, and v1 needs schema.
        assert_eq!(
            reason(r#"{"temperature_c":36.5}"#),
            RejectReason::MissingField
        );
    }

    #[test]
    fn values_follow_v1_ranges_and_types_and_unknown_keys_are_reported() {
        assert_eq!(
            reason(&FULL.replace("36.5", "-99")),
            RejectReason::OutOfRange
        );
        assert_eq!(
            reason(&FULL.replace("36.5", "1e999")),
            RejectReason::OutOfRange
        );
        assert_eq!(reason(&FULL.replace("36.5", "NaN")), RejectReason::NotJson);
        let e = one("pump-07", &FULL.replace("36.5", "\"hot\"")).unwrap_err();
        assert_eq!(
            (e.reason, e.detail.as_str()),
            (
                RejectReason::WrongType,
                "values.temperature_c is a string; expected a number"
            )
        );
        assert_eq!(
            reason(&FULL.replace("36.5", "[1]")),
            RejectReason::WrongType
        );
        assert_eq!(reason(r#"{"values":[1,2]}"#), RejectReason::WrongType);
        assert_eq!(reason(r#"{"values":"x"}"#), RejectReason::WrongType);
        let r = one(
            "pump-07",
            r#"{"values":{"temperature_c":36.5,"humidity_pct":40,"temperature_c2":{"a":1},"vibration_mm_s":null},"pressure_bar":6,"product_type":"M","failure":false}"#,
        )
        .unwrap();
        assert_eq!(
            r.ignored,
            ["humidity_pct", "temperature_c2", "pressure_bar"]
        );
        let t = &r.telemetry;
        assert_eq!(
            (t.temperature_c, t.vibration_mm_s, t.pressure_bar),
            (Some(36.5), None, None)
        );
        assert_eq!(
            (t.product_type, t.failure),
            (Some(ProductType::M), Some(false))
        );
    }

    #[test]
    fn v1_decodes_as_before() {
        const V1: &str = r#"{"schema":"dtwin.telemetry.v1","machine_id":"pump-07","ts":"2026-11-22T10:00:00Z","seq":7,"temperature_c":36.5,"values":"ignored in v1","profile":3}"#;
        let r = one("pump-07", V1).unwrap();
        assert_eq!(r.telemetry, Telemetry::decode(V1.as_bytes()).unwrap());
        assert!(r.has_seq && r.has_ts && r.ignored.is_empty());
        for (from, to) in [
            ("\"seq\":7,", ""),
            ("\"ts\":\"2026-11-22T10:00:00Z\",", ""),
            ("\"machine_id\":\"pump-07\",", ""),
        ] {
            let p = V1.replace(from, to);
            assert_eq!(reason(&p), RejectReason::MissingField, "{p}");
            assert_eq!(
                Telemetry::decode(p.as_bytes()).unwrap_err().reason,
                RejectReason::MissingField
            );
        }
        assert_eq!(
            one("pump-08", V1).unwrap_err().reason,
            RejectReason::TopicMismatch
        );
    }

    #[test]
    fn batches_decode_each_reading_and_need_ts_or_seq() {
        let p = r#"[{"ts":1795000000000,"values":{"temperature_c":1}},{"seq":5,"values":{"temperature_c":2}},{"values":{"temperature_c":3}},{"values":{"temperature_c":-100},"seq":6}]"#;
        let got = Telemetry::decode_on(&id("gw"), arrival(), p.as_bytes()).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].as_ref().unwrap().telemetry.temperature_c, Some(1.0));
        assert_eq!(got[1].as_ref().unwrap().telemetry.seq, 5);
        let e = got[2].as_ref().unwrap_err();
        assert_eq!(e.reason, RejectReason::MissingField);
        assert!(e.detail.starts_with("reading 2:"), "{}", e.detail);
        assert_eq!(
            got[3].as_ref().unwrap_err().reason,
            RejectReason::OutOfRange
        );
        // One reading in an array needs neither.
        let single = Telemetry::decode_on(&id("gw"), arrival(), br#"[{"values":{}}]"#).unwrap();
        assert!(single[0].is_ok());
        let outer = |p: &[u8]| {
            Telemetry::decode_on(&id("gw"), arrival(), p)
                .unwrap_err()
                .reason
        };
        assert_eq!(outer(b"[]"), RejectReason::WrongType);
        assert_eq!(outer(b"[{"), RejectReason::NotJson);
        let big = format!("[{}]", vec![FULL; 400].join(","));
        assert_eq!(outer(big.as_bytes()), RejectReason::Oversize);
    }

    proptest! {
        #[test]
        fn decode_on_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Telemetry::decode_on(&id("m"), arrival(), &bytes);
        }

        /// Any subset of in-range sensors, with or without each optional field, decodes to
        /// the same values; out-of-range ones are rejected as v1 rejects them.
        #[test]
        fn values_round_trip_and_ranges_match_v1(
            picks in proptest::collection::vec((0usize..9, 0.0f64..1.0), 0..9),
            seq in proptest::option::of(any::<u64>()),
            ts_ms in proptest::option::of(MIN_TS_MS..MAX_TS_MS),
            schema in any::<bool>(),
            machine in any::<bool>(),
            outside in proptest::option::of((0usize..9, any::<bool>())),
        ) {
            let mut values = serde_json::Map::new();
            let mut want = [None; 9];
            for (i, u) in picks {
                let s = &SENSOR_SPECS[i];
                let v = s.min + u * (s.max - s.min);
                values.insert(s.name.into(), v.into());
                want[i] = Some(v);
            }
            if let Some((i, above)) = outside {
                let s = &SENSOR_SPECS[i];
                let v = if above { s.max * 1.5 + 1.0 } else { s.min - 1.0 };
                values.insert(s.name.into(), v.into());
            }
            let mut p = serde_json::json!({ "values": values });
            if let Some(seq) = seq { p["seq"] = seq.into(); }
            if let Some(ms) = ts_ms { p["ts"] = ms.into(); }
            if schema { p["schema"] = TELEMETRY_V2_SCHEMA.into(); }
            if machine { p["machine_id"] = "m".into(); }
            let got = Telemetry::decode_on(&id("m"), arrival(), p.to_string().as_bytes());
            if outside.is_some() {
                prop_assert_eq!(got.unwrap_err().reason, RejectReason::OutOfRange);
            } else {
                let r = got.unwrap().pop().unwrap().unwrap();
                prop_assert_eq!(r.telemetry.sensors(), want);
                prop_assert_eq!(r.has_seq, seq.is_some());
                prop_assert_eq!(r.telemetry.seq, seq.unwrap_or(0));
                prop_assert_eq!(r.has_ts, ts_ms.is_some());
                let ts = ts_ms.map_or(arrival(), |ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap());
                prop_assert_eq!(r.telemetry.ts, ts);
                prop_assert!(r.ignored.is_empty());
            }
        }

        /// Any v1 payload decodes through decode_on exactly as through decode.
        #[test]
        fn v1_through_decode_on_equals_decode(t in -60.0f64..600.0, seq in any::<u64>(), drop in 0usize..5, nulled in 0usize..5) {
            let mut v = serde_json::json!({"schema": TELEMETRY_SCHEMA, "machine_id": "m", "ts": "2026-11-22T10:00:00Z", "seq": seq, "temperature_c": t});
            let fields = ["schema", "machine_id", "ts", "seq", "none"];
            v.as_object_mut().unwrap().remove(fields[drop]);
            if nulled != drop && nulled < 4 {
                v[fields[nulled]] = serde_json::Value::Null;
            }

            let bytes = v.to_string().into_bytes();
            let old = Telemetry::decode(&bytes);
            let new = Telemetry::decode_on(&id("m"), arrival(), &bytes).map(|mut r| r.pop().unwrap().map(|r| r.telemetry));
            match (old, new) {
                (Ok(a), Ok(Ok(b))) => prop_assert_eq!(a, b),
                (Err(a), Err(b)) | (Err(a), Ok(Err(b))) => prop_assert_eq!(a.reason, b.reason),
                (a, b) => prop_assert!(false, "{:?} vs {:?}", a, b),
            }
        }
    }
}
