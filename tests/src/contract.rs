//! The message contract as the end-to-end tests see it: the JSON Schemas in `proto-schemas/`,
//! and a validator that maps a topic to its schema and checks a payload against it.
//!
//! ```no_run
//! let contract = dtwin_tests::contract::Contract::load().unwrap();
//! let topic = "dtwin/v1/machines/m-1/telemetry";
//! let payload = br#"{"schema":"dtwin.telemetry.v1","machine_id":"m-1","ts":"2026-11-22T10:00:00Z","seq":1}"#;
//! assert_eq!(contract.check(topic, payload), Ok("telemetry"));
//! ```
//!
//! Beyond the schemas, [`Contract::check`] also holds a message to what the topic says: the
//! machine (or client) id in the topic must equal the payload's `machine_id` (every reading's,
//! for a batch), a dead letter's or drift status's `service` must equal the topic's
//! `{service}` segment, and telemetry may not exceed
//! [`dtwin_schema::MAX_PAYLOAD_BYTES`].
//!
//! The telemetry topic carries two versions: a reading with `"schema":"dtwin.telemetry.v2"`,
//! or without `schema` but with `values`, is checked against `telemetry-v2.schema.json`
//! (its `machine_id` is optional, and checked against the topic when present); any other
//! against v1's `telemetry.schema.json`. A batch may mix them: each reading is checked
//! against its own version.

use anyhow::Context;
use dtwin_schema::{TopicKind, Topics, MAX_PAYLOAD_BYTES};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where the schemas live: `proto-schemas/` at the workspace root.
pub const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto-schemas");

/// The schema files, by short name (`{name}.schema.json`).
pub const SCHEMAS: [&str; 12] = [
    "telemetry",
    "telemetry-v2",
    "features",
    "risk",
    "alert",
    "alert-state",
    "deadletter",
    "status",
    "control",
    "drift",
    "silence",
    "alert-action",
];

/// The name [`Contract::check`] returns for `{prefix}/models/current`,
/// `{prefix}/models/{profile}` and `{prefix}/models/{profile}/{kind}`, which have no JSON
/// Schema of its own: the model artifact is checked only for being a JSON object with
/// `"schema": "dtwin.model.v1"` (the ml crate validates the rest when it loads it).
pub const MODEL: &str = "model";

/// The name of a machine profile published at run time (`{prefix}/profiles/{id}`): TOML text
/// that must parse as a profile whose id is the topic's.
pub const PROFILE: &str = "profile";

/// Schema id of the model artifact carried by `{prefix}/models/current`.
pub const MODEL_SCHEMA_ID: &str = "dtwin.model.v1";

/// How many validation errors one failure reports.
const MAX_ERRORS: usize = 8;

/// The MQTT filter matching every topic of the contract under the default prefix
/// (`dtwin/v1/#`).
pub fn prefix_filter() -> String {
    Topics::default().everything()
}

/// One loaded schema: its short name, the JSON document and its compiled validator.
struct Loaded {
    name: &'static str,
    document: Value,
    validator: jsonschema::Validator,
}

/// The compiled JSON Schemas of every message, and the topic -> schema mapping.
pub struct Contract {
    topics: Topics,
    schemas: Vec<Loaded>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("prefix", &self.topics.prefix())
            .field(
                "schemas",
                &self.schemas.iter().map(|s| s.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Contract {
    /// Loads and compiles every schema in `proto-schemas/`, for the default prefix.
    ///
    /// # Errors
    /// A schema file is missing, is not JSON, or is not a valid draft 2020-12 schema.
    pub fn load() -> anyhow::Result<Contract> {
        Self::load_from(Path::new(SCHEMA_DIR), Topics::default())
    }

    /// Loads the schemas from `dir`, mapping topics under `topics`' prefix.
    ///
    /// # Errors
    /// As [`Contract::load`].
    pub fn load_from(dir: &Path, topics: Topics) -> anyhow::Result<Contract> {
        let mut schemas = Vec::with_capacity(SCHEMAS.len());
        for name in SCHEMAS {
            let path = schema_path(dir, name);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let document: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                // Draft 2020-12 treats `format` as an annotation; the contract means it.
                .should_validate_formats(true)
                .should_ignore_unknown_formats(false)
                .build(&document)
                .map_err(|e| anyhow::anyhow!("{} is not a valid schema: {e}", path.display()))?;
            schemas.push(Loaded {
                name,
                document,
                validator,
            });
        }
        Ok(Contract { topics, schemas })
    }

    /// The topics this contract maps.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// The schema document called `name` (one of [`SCHEMAS`]).
    pub fn schema(&self, name: &str) -> Option<&Value> {
        self.find(name).map(|s| &s.document)
    }

    /// The `examples` of the schema called `name` (empty when it has none).
    pub fn examples(&self, name: &str) -> Vec<Value> {
        self.schema(name)
            .and_then(|d| d.get("examples"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn find(&self, name: &str) -> Option<&Loaded> {
        self.schemas.iter().find(|s| s.name == name)
    }

    /// Which schema a topic's payloads follow, and the id the topic names (machine id,
    /// client id or service), if any.
    ///
    /// # Errors
    /// The topic is not under the prefix, or under it but not one of the contract's topics.
    pub fn schema_for<'t>(
        &self,
        topic: &'t str,
    ) -> Result<(&'static str, Option<&'t str>), String> {
        let prefix = self.topics.prefix();
        let Some(rest) = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
            return Err(format!(
                "topic {topic:?} is not under the prefix {prefix:?}"
            ));
        };
        if let Some((kind, id)) = self.topics.parse(topic) {
            let name = match kind {
                TopicKind::Telemetry => "telemetry",
                TopicKind::Features => "features",
                TopicKind::Risk => "risk",
                TopicKind::Status => "status",
                TopicKind::Alert => "alert",
            };
            return Ok((name, Some(id)));
        }
        if let Some(service) = rest.strip_prefix("deadletter/") {
            if !service.is_empty() && !service.contains('/') {
                return Ok(("deadletter", Some(service)));
            }
        }
        if let Some(client) = rest
            .strip_prefix("publishers/")
            .and_then(|r| r.strip_suffix("/status"))
        {
            if !client.is_empty() && !client.contains('/') {
                return Ok(("status", Some(client)));
            }
        }
        if let Some(r) = rest.strip_prefix("instances/") {
            if let Some((service, name)) = r.split_once('/') {
                if !service.is_empty() && !name.is_empty() && !name.contains('/') {
                    return Ok(("status", Some(name)));
                }
            }
        }
        if let Some(id) = rest.strip_prefix("alert-state/") {
            if !id.is_empty() && !id.contains('/') {
                return Ok(("alert-state", Some(id)));
            }
        }
        if let Some(service) = rest.strip_prefix("drift/") {
            if !service.is_empty() && !service.contains('/') {
                return Ok(("drift", Some(service)));
            }
            // `drift/{service}/{profile}/{kind}`: a profile's quality, anomaly or rul model.
            if let [service, profile, kind] = service.split('/').collect::<Vec<_>>()[..] {
                if !service.is_empty()
                    && !profile.is_empty()
                    && ["quality", "anomaly", "rul"].contains(&kind)
                {
                    return Ok(("drift", Some(service)));
                }
            }
        }
        if let Some(id) = rest.strip_prefix("control/silences/") {
            if !id.is_empty() && !id.contains('/') {
                return Ok(("silence", Some(id)));
            }
        }
        if let Some(id) = rest.strip_prefix("control/alerts/") {
            if !id.is_empty() && !id.contains('/') {
                return Ok(("alert-action", Some(id)));
            }
        }
        if rest == "control/twin" {
            return Ok(("control", None));
        }
        if let Some(id) = rest.strip_prefix("profiles/") {
            if !id.is_empty() && !id.contains('/') {
                return Ok((PROFILE, Some(id)));
            }
        }
        // `models/current` (milling), `models/{profile}` and `models/{profile}/{kind}`: the
        // same artifact format.
        if let Some(segment) = rest.strip_prefix("models/") {
            if !segment.is_empty() && !segment.contains('/') {
                return Ok((MODEL, None));
            }
            if let Some((profile, kind)) = segment.split_once('/') {
                if !profile.is_empty() && ["quality", "anomaly", "rul"].contains(&kind) {
                    return Ok((MODEL, Some(kind)));
                }
            }
        }
        Err(format!("no schema for topic {topic:?}"))
    }

    /// Checks a payload received on `topic` against the topic's schema.
    ///
    /// Returns the schema's short name (one of [`SCHEMAS`], or [`MODEL`]; [`TELEMETRY_V2`] for
    /// a telemetry message with a v2 reading).
    ///
    /// # Errors
    /// Why the message breaks the contract: no schema for the topic, not JSON, the schema's
    /// validation errors (with their JSON pointers), or a topic/payload mismatch.
    pub fn check(&self, topic: &str, payload: &[u8]) -> Result<&'static str, String> {
        let (name, id) = self.schema_for(topic)?;
        if name == "telemetry" && payload.len() > MAX_PAYLOAD_BYTES {
            return Err(format!(
                "telemetry payload is {} bytes; at most {MAX_PAYLOAD_BYTES} are allowed",
                payload.len()
            ));
        }
        if name == "silence" && payload.is_empty() {
            // Removing a retained silence.
            return Ok(name);
        }
        if name == PROFILE {
            let text = std::str::from_utf8(payload)
                .map_err(|_| "profile: payload is not UTF-8 TOML text".to_owned())?;
            let p = dtwin_profile::Profile::parse(text, "profile")
                .map_err(|e| format!("profile: {e}"))?;
            return if Some(p.id.as_str()) == id {
                Ok(PROFILE)
            } else {
                Err(format!("profile: id {:?} is not the topic's {id:?}", p.id))
            };
        }
        let value: Value = serde_json::from_slice(payload)
            .map_err(|e| format!("{name}: payload is not JSON: {e}"))?;
        if name == MODEL {
            // On `models/{profile}/{kind}` the artifact is of that kind.
            if let Some(kind) = id {
                if value.get("kind").and_then(Value::as_str) != Some(kind) {
                    return Err(format!(
                        "model: kind {:?} is not the topic's {kind:?}",
                        value.get("kind")
                    ));
                }
            }
            return match value.get("schema") {
                Some(Value::String(s)) if s == MODEL_SCHEMA_ID => Ok(MODEL),
                _ if !value.is_object() => Err("model: payload is not a JSON object".into()),
                other => Err(format!(
                    "model: schema is {other:?}; expected {MODEL_SCHEMA_ID:?}"
                )),
            };
        }
        if name == "telemetry" && has_v2(&value) {
            return self.check_v2(&value, id);
        }
        self.validate(name, &value)?;
        match (name, &value) {
            ("deadletter", _) => expect_field(&value, "service", id, name)?,
            ("drift", _) => {
                expect_field(&value, "service", id, name)?;
                // A kind's drift status names the topic's profile and kind; the classifier's
                // names neither.
                let parts: Vec<&str> = topic
                    .strip_prefix(self.topics.prefix())
                    .unwrap_or(topic)
                    .trim_start_matches('/')
                    .split('/')
                    .collect();
                let (profile, kind) = match parts[..] {
                    [_, _, profile, kind] => (Some(profile), Some(kind)),
                    _ => (None, None),
                };
                for (field, want) in [("profile", profile), ("kind", kind)] {
                    let got = value.get(field).and_then(Value::as_str);
                    if got != want {
                        return Err(format!(
                            "drift: {field} {got:?} is not the topic's {want:?}"
                        ));
                    }
                }
            }
            ("silence", _) => expect_field(&value, "silence_id", id, name)?,
            // A gateway batch: every reading names the topic's machine.
            ("telemetry", Value::Array(items)) => {
                for item in items {
                    expect_field(item, "machine_id", id, name)?;
                }
            }
            _ => expect_field(&value, "machine_id", id, name)?,
        }
        Ok(name)
    }

    /// A telemetry message with at least one v2 reading: each reading against its version's
    /// schema, and its `machine_id`, when it has one, against the topic's id.
    fn check_v2(&self, value: &Value, id: Option<&str>) -> Result<&'static str, String> {
        let items = match value {
            Value::Array(items) if items.is_empty() => {
                return Err("telemetry: an empty batch holds no reading".into())
            }
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for (i, item) in items.into_iter().enumerate() {
            let name = if is_v2(item) {
                TELEMETRY_V2
            } else {
                "telemetry"
            };
            if !item.is_object() {
                return Err(format!("{name}: reading {i} is not an object"));
            }
            self.validate(name, item)
                .map_err(|e| format!("reading {i}: {e}"))?;
            if name == "telemetry" || item.get("machine_id").is_some() {
                expect_field(item, "machine_id", id, name)?;
            }
        }
        Ok(TELEMETRY_V2)
    }

    /// Validates a JSON value against the schema called `name`.
    ///
    /// # Errors
    /// An unknown schema name, or the validation errors, one per line as
    /// `{json pointer}: {error}`.
    pub fn validate(&self, name: &str, value: &Value) -> Result<(), String> {
        let schema = self
            .find(name)
            .ok_or_else(|| format!("no schema called {name:?}"))?;
        let errors: Vec<String> = schema
            .validator
            .iter_errors(value)
            .take(MAX_ERRORS)
            .map(|e| {
                let at = e.instance_path.to_string();
                format!("{}: {e}", if at.is_empty() { "/" } else { &at })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{name}: {}", errors.join("; ")))
        }
    }
}

/// The short name of the v2 telemetry schema, which [`Contract::check`] returns for a
/// telemetry message with at least one v2 reading.
pub const TELEMETRY_V2: &str = "telemetry-v2";

/// Whether a telemetry reading is v2: `"schema":"dtwin.telemetry.v2"`, or no `schema` and a
/// `values` field (the rule of `dtwin_schema::Telemetry::decode_on`).
pub fn is_v2(reading: &Value) -> bool {
    match reading.get("schema") {
        Some(s) => s == dtwin_schema::TELEMETRY_V2_SCHEMA,
        None => reading.get("values").is_some(),
    }
}

fn has_v2(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(is_v2),
        one => is_v2(one),
    }
}

/// `{dir}/{name}.schema.json`
pub fn schema_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.schema.json"))
}

/// The topic names `id`; the payload's `field` must say the same.
fn expect_field(value: &Value, field: &str, id: Option<&str>, name: &str) -> Result<(), String> {
    let Some(id) = id else { return Ok(()) };
    match value.get(field).and_then(Value::as_str) {
        Some(v) if v == id => Ok(()),
        other => Err(format!(
            "{name}: topic names {id:?} but the payload's {field} is {other:?}"
        )),
    }
}
