//! Real messages built with the Rust types, serialized the way the services serialize them,
//! must validate against the JSON Schemas in proto-schemas/ on the topic they travel on; and
//! the messages the contract forbids must fail. This keeps the serde types and the schemas from
//! drifting apart in either direction.

use dtwin_schema::telemetry::SENSOR_SPECS;
use dtwin_schema::{
    feature_set_hash, to_json, Action, AlertAction, AlertActionKind, AlertCause, AlertEvent,
    AlertEventKind, DeadLetter, DriftScore, DriftState, DriftStatus, Factor, FailureMode, Features,
    Insights, Level, MachineId, MachineStatus, ModelRef, Presence, ProductType, RejectReason, Risk,
    RiskStatus, RulEstimate, Telemetry, Topics, ALERT_ACTION_SCHEMA, ALERT_SCHEMA, DRIFT_SCHEMA,
    FEATURES_SCHEMA, RISK_SCHEMA, STATUS_SCHEMA,
};
use dtwin_tests::contract::{Contract, MODEL, SCHEMAS, TELEMETRY_V2};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use time::macros::datetime;
use time::OffsetDateTime;

const TS: OffsetDateTime = datetime!(2026-11-22 10:00:00.123456789 UTC);
const SOURCE_TS: OffsetDateTime = datetime!(2026-11-22 10:00:00.1 UTC);

fn contract() -> Contract {
    Contract::load().expect("proto-schemas load and compile")
}

fn id(s: &str) -> MachineId {
    MachineId::parse(s).unwrap()
}

fn topics() -> Topics {
    Topics::default()
}

fn full_telemetry() -> Telemetry {
    Telemetry {
        temperature_c: Some(36.8),
        vibration_mm_s: Some(2.4),
        pressure_bar: Some(6.1),
        spindle_rpm: Some(1503.0),
        tool_wear_min: Some(108.0),
        torque_nm: Some(40.2),
        ambient_temperature_c: Some(25.1),
        power_w: Some(6327.4),
        operating_hours: Some(1234.5),
        product_type: Some(ProductType::M),
        quality_ok: Some(false),
        failure: Some(true),
        failure_mode: Some(FailureMode::Bearing),
        ..Telemetry::new(id("machine-001"), TS, 4711)
    }
}

fn features() -> Features {
    let names = [
        "temperature_c_mean",
        "vibration_mm_s_rms",
        "pressure_bar_slope",
    ];
    Features {
        schema: FEATURES_SCHEMA.to_owned(),
        machine_id: id("machine-001"),
        ts: TS,
        source_ts: SOURCE_TS,
        seq: 4711,
        feature_set: feature_set_hash(&names),
        window_len: 60,
        cold: false,
        values: BTreeMap::from([
            (names[0].to_owned(), Some(36.7)),
            (names[1].to_owned(), Some(2.38)),
            (names[2].to_owned(), None),
        ]),
        latest: BTreeMap::from([
            ("temperature_c".to_owned(), 36.8),
            ("vibration_mm_s".to_owned(), 2.4),
        ]),
        product_type: Some(ProductType::H),
        gap: 2,
        profile: Some("pump".into()),
    }
}

fn actions() -> Vec<Action> {
    vec![
        Action {
            code: "HIGH_VIBRATION".into(),
            text: "Inspect the spindle bearings.".into(),
            severity: Level::Critical,
        },
        Action {
            code: "TOOL_WEAR".into(),
            text: "Plan a tool change.".into(),
            severity: Level::Warning,
        },
    ]
}

fn risk() -> Risk {
    Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: id("machine-002"),
        ts: TS,
        source_ts: SOURCE_TS,
        seq: 99,
        probability: 0.82,
        status: RiskStatus::AtRisk,
        level: Level::Critical,
        health_score: 18.0,
        actions: actions(),
        factors: vec![
            Factor {
                feature: "vibration_mm_s_rms".into(),
                value: Some(8.4),
                contribution: 0.41,
            },
            Factor {
                feature: "pressure_bar_slope".into(),
                value: None,
                contribution: -0.02,
            },
        ],
        model: ModelRef {
            id: "rf-twin".into(),
            version: "2026-11-20.1".into(),
        },
        cold: false,
        latest: BTreeMap::from([("vibration_mm_s".to_owned(), 8.7)]),
        profile: Some("pump".into()),
        insights: Insights {
            quality_risk: Some(0.31),
            quality_at_risk: Some(false),
            anomaly: Some(0.71),
            anomalous: Some(true),
            rul: Some(RulEstimate {
                value: 42.5,
                low: 20.0,
                high: 61.0,
                unit: "cycles".into(),
            }),
            models: BTreeMap::from([
                (
                    "anomaly".to_owned(),
                    ModelRef {
                        id: "pump-iforest".into(),
                        version: "1".into(),
                    },
                ),
                (
                    "quality".to_owned(),
                    ModelRef {
                        id: "pump-quality".into(),
                        version: "3".into(),
                    },
                ),
            ]),
        },
    }
}

fn alert(event: AlertEventKind, detail: Option<&str>) -> AlertEvent {
    AlertEvent {
        schema: ALERT_SCHEMA.to_owned(),
        machine_id: id("machine-002"),
        ts: TS,
        alert_id: "machine-002-20261122T100000Z".into(),
        event,
        level: Level::Warning,
        probability: 0.61,
        actions: actions(),
        detail: detail.map(str::to_owned),
        // Events with a detail are the newer ones in these samples, which name their cause.
        cause: detail.map(|_| AlertCause::Failure),
        by: None,
        comment: None,
        channel: None,
    }
}

fn status(machine: &str, state: Presence, product_type: Option<ProductType>) -> MachineStatus {
    MachineStatus {
        schema: STATUS_SCHEMA.to_owned(),
        machine_id: id(machine),
        ts: TS,
        state,
        product_type,
    }
}

/// Every reject reason; the match fails to compile when a variant is added.
fn all_reasons() -> Vec<RejectReason> {
    use RejectReason::*;
    let all = vec![
        Oversize,
        NotJson,
        MissingField,
        WrongType,
        BadMachineId,
        UnknownSchema,
        NonFinite,
        OutOfRange,
        TopicMismatch,
        TooLate,
        FeatureSetMismatch,
        BadModel,
        UnknownProfile,
        Sparkplug,
        UnknownAlert,
        AlreadyAcknowledged,
    ];
    for r in &all {
        match r {
            Oversize | NotJson | MissingField | WrongType | BadMachineId | UnknownSchema
            | NonFinite | OutOfRange | TopicMismatch | TooLate | FeatureSetMismatch | BadModel
            | UnknownProfile | Sparkplug | UnknownAlert | AlreadyAcknowledged => {}
        }
    }
    all
}

fn assert_valid(c: &Contract, topic: &str, payload: &[u8], expect: &str) {
    match c.check(topic, payload) {
        Ok(name) => assert_eq!(name, expect, "{topic}"),
        Err(why) => panic!(
            "{topic}: {why}\npayload: {}",
            String::from_utf8_lossy(payload)
        ),
    }
}

fn assert_invalid(c: &Contract, topic: &str, payload: &[u8]) -> String {
    match c.check(topic, payload) {
        Ok(name) => panic!(
            "{topic}: expected a contract violation but {name} accepted {}",
            String::from_utf8_lossy(payload)
        ),
        Err(why) => why,
    }
}

fn to_value<T: serde::Serialize>(msg: &T) -> Value {
    serde_json::from_slice(&to_json(msg)).unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn required(c: &Contract, name: &str) -> BTreeSet<String> {
    c.schema(name).unwrap()["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn properties(c: &Contract, name: &str) -> BTreeSet<String> {
    keys(&c.schema(name).unwrap()["properties"])
}

fn enum_values(schema: &Value) -> BTreeSet<String> {
    schema["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------- valid messages

#[test]
fn telemetry_with_every_field_validates() {
    let c = contract();
    let t = full_telemetry();
    let topic = topics().telemetry(&t.machine_id);
    assert_valid(&c, &topic, &t.encode(), "telemetry");
    assert_valid(&c, &topic, &to_json(&t), "telemetry");
    // Every property of the schema is a field of the type, and vice versa.
    assert_eq!(keys(&to_value(&t)), properties(&c, "telemetry"));
}

#[test]
fn telemetry_with_only_required_fields_validates() {
    let c = contract();
    let t = Telemetry::new(id("m.1_A-z"), TS, 0);
    assert_valid(
        &c,
        &topics().telemetry(&t.machine_id),
        &t.encode(),
        "telemetry",
    );
    assert_eq!(keys(&to_value(&t)), required(&c, "telemetry"));
}

#[test]
fn gateway_telemetry_with_nulls_and_unknown_fields_validates_and_decodes() {
    let c = contract();
    let payload = br#"{"schema":"dtwin.telemetry.v1","machine_id":"gw-7","ts":"2026-11-22T11:00:00+01:00","seq":3,"temperature_c":null,"vibration_mm_s":2.0,"product_type":null,"firmware":"1.2.3"}"#;
    assert_valid(&c, "dtwin/v1/machines/gw-7/telemetry", payload, "telemetry");
    let t = Telemetry::decode(payload).expect("the services accept it too");
    assert_eq!(t.temperature_c, None);
    assert_eq!(t.vibration_mm_s, Some(2.0));
}

#[test]
fn telemetry_ranges_match_sensor_specs() {
    let c = contract();
    let props = &c.schema("telemetry").unwrap()["properties"];
    for spec in &SENSOR_SPECS {
        let p = &props[spec.name];
        assert_eq!(p["minimum"].as_f64(), Some(spec.min), "{}", spec.name);
        assert_eq!(p["maximum"].as_f64(), Some(spec.max), "{}", spec.name);
        // The bounds are inclusive on both sides, as in Telemetry::validate.
        for v in [spec.min, spec.max] {
            let mut t = json!({"schema":"dtwin.telemetry.v1","machine_id":"m","ts":"2026-11-22T10:00:00Z","seq":1});
            t[spec.name] = json!(v);
            assert!(c.validate("telemetry", &t).is_ok(), "{} = {v}", spec.name);
            assert!(Telemetry::decode(t.to_string().as_bytes()).is_ok());
        }
        for v in [spec.min - 1.0, spec.max + 1.0] {
            let mut t = json!({"schema":"dtwin.telemetry.v1","machine_id":"m","ts":"2026-11-22T10:00:00Z","seq":1});
            t[spec.name] = json!(v);
            assert!(c.validate("telemetry", &t).is_err(), "{} = {v}", spec.name);
            assert_eq!(
                Telemetry::decode(t.to_string().as_bytes())
                    .unwrap_err()
                    .reason,
                RejectReason::OutOfRange
            );
        }
    }
}

#[test]
fn telemetry_v2_built_in_rust_validates_and_decodes_back() {
    let c = contract();
    let t = full_telemetry();
    let topic = topics().telemetry(&t.machine_id);
    let v2 = t.encode_v2();
    assert_valid(&c, &topic, &v2, TELEMETRY_V2);
    let back = Telemetry::decode_on(&t.machine_id, SOURCE_TS, &v2).unwrap();
    assert_eq!(back[0].as_ref().unwrap().telemetry, t);
    // Every sensor of the milling profile is a property of `values`, and nothing else is.
    let value = to_value(&serde_json::from_slice::<Value>(&v2).unwrap());
    assert_eq!(
        keys(&value["values"]),
        keys(&c.schema(TELEMETRY_V2).unwrap()["$defs"]["milling_values"]["properties"])
    );
    // The top-level fields of a full v2 reading are the schema's non-sensor properties, but
    // `historical`, which only the Sparkplug host writes (a store-and-forward reading) and
    // nothing reads.
    let top: BTreeSet<String> = c.schema(TELEMETRY_V2).unwrap()["properties"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| *v != &Value::Bool(false) && *k != "historical")
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(keys(&value), top);
    // The minimal reading, and each omission of a full one.
    let minimal = json!({"values": {"temperature_c": 36.5}});
    assert_valid(&c, &topic, minimal.to_string().as_bytes(), TELEMETRY_V2);
    for field in ["schema", "machine_id", "ts", "seq", "profile"] {
        let mut v = value.clone();
        v.as_object_mut().unwrap().remove(field);
        assert_valid(&c, &topic, v.to_string().as_bytes(), TELEMETRY_V2);
        let r = Telemetry::decode_on(&t.machine_id, SOURCE_TS, v.to_string().as_bytes()).unwrap();
        assert!(r[0].is_ok(), "without {field}");
    }
    // Epoch milliseconds, an unknown key in values, a v1 + v2 batch.
    let mut ms = value.clone();
    ms["ts"] = json!(1_795_000_000_123_u64);
    ms["values"]["humidity_pct"] = json!(41);
    assert_valid(&c, &topic, ms.to_string().as_bytes(), TELEMETRY_V2);
    let r = Telemetry::decode_on(&t.machine_id, SOURCE_TS, ms.to_string().as_bytes()).unwrap();
    assert_eq!(r[0].as_ref().unwrap().ignored, ["humidity_pct"]);
    let batch = json!([to_value(&t), value, minimal]);
    assert_valid(&c, &topic, batch.to_string().as_bytes(), TELEMETRY_V2);
    let r = Telemetry::decode_on(&t.machine_id, SOURCE_TS, batch.to_string().as_bytes()).unwrap();
    assert!(r[..2].iter().all(Result::is_ok));
    assert_eq!(
        r[2].as_ref().unwrap_err().reason,
        RejectReason::MissingField,
        "a batch reading needs ts or seq (the schema cannot say so)"
    );
}

#[test]
fn telemetry_v2_of_another_profile_validates_and_keeps_its_values() {
    let c = contract();
    let topic = "dtwin/v1/machines/pump-07/telemetry";
    // Milling's ranges do not bind another profile's values (temperature_c = 900 is a pump's
    // business); the feature service checks them against the pump profile.
    let pump = json!({"profile": "pump", "ts": 1_795_000_000_123_u64,
        "values": {"volt": 176.2, "temperature_c": 900, "model": "m3", "vibration": null}});
    assert_valid(&c, topic, pump.to_string().as_bytes(), TELEMETRY_V2);
    let r = Telemetry::decode_on(&id("pump-07"), SOURCE_TS, pump.to_string().as_bytes())
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
    assert_eq!(r.profile.as_deref(), Some("pump"));
    assert_eq!(r.values.len(), 4);
    // Without profile (milling unless the service maps the machine), milling's ranges bind.
    let mut bare = pump.clone();
    bare.as_object_mut().unwrap().remove("profile");
    assert_invalid(&c, topic, bare.to_string().as_bytes());
    let mut milling = bare.clone();
    milling["profile"] = json!("milling");
    assert_invalid(&c, topic, milling.to_string().as_bytes());
}

#[test]
fn telemetry_v2_violations_fail_as_the_decoder_rejects_them() {
    let c = contract();
    let topic = "dtwin/v1/machines/pump-07/telemetry";
    let machine = id("pump-07");
    let base = json!({"schema": "dtwin.telemetry.v2", "values": {"temperature_c": 36.5}});
    let cases: [(&str, Value, RejectReason); 8] = [
        ("profile", json!(7), RejectReason::WrongType),
        ("machine_id", json!("pump-08"), RejectReason::TopicMismatch),
        ("ts", json!(1_795_000_000), RejectReason::OutOfRange),
        ("ts", json!("yesterday"), RejectReason::WrongType),
        ("seq", json!(-1), RejectReason::WrongType),
        (
            "values",
            json!({"temperature_c": 999}),
            RejectReason::OutOfRange,
        ),
        (
            "values",
            json!({"temperature_c": "hot"}),
            RejectReason::WrongType,
        ),
        ("values", json!([36.5]), RejectReason::WrongType),
    ];
    for (field, v, reason) in cases {
        let mut bad = base.clone();
        bad[field] = v.clone();
        let bytes = bad.to_string().into_bytes();
        assert_invalid(&c, topic, &bytes);
        let got = Telemetry::decode_on(&machine, SOURCE_TS, &bytes)
            .and_then(|mut r| r.pop().unwrap())
            .unwrap_err();
        assert_eq!(got.reason, reason, "{field} = {v}");
    }
}

#[test]
fn telemetry_v2_ranges_match_sensor_specs() {
    let c = contract();
    let props = &c.schema(TELEMETRY_V2).unwrap()["$defs"]["milling_values"]["properties"];
    let machine = id("m");
    for spec in &SENSOR_SPECS {
        let p = &props[spec.name];
        assert_eq!(p["minimum"].as_f64(), Some(spec.min), "{}", spec.name);
        assert_eq!(p["maximum"].as_f64(), Some(spec.max), "{}", spec.name);
        for (v, ok) in [
            (spec.min, true),
            (spec.max, true),
            (spec.min - 1.0, false),
            (spec.max + 1.0, false),
        ] {
            let t = json!({"values": {spec.name: v}});
            assert_eq!(
                c.validate(TELEMETRY_V2, &t).is_ok(),
                ok,
                "{} = {v}",
                spec.name
            );
            let r = Telemetry::decode_on(&machine, SOURCE_TS, t.to_string().as_bytes());
            assert_eq!(r.is_ok(), ok, "{} = {v}", spec.name);
        }
    }
}

#[test]
fn telemetry_enums_match_the_rust_enums() {
    let c = contract();
    let props = &c.schema("telemetry").unwrap()["properties"];
    let modes: BTreeSet<String> = FailureMode::ALL
        .iter()
        .map(|m| m.as_str().to_owned())
        .collect();
    assert_eq!(enum_values(&props["failure_mode"]), modes);
    for m in FailureMode::ALL {
        assert_eq!(to_value(&m), json!(m.as_str()));
    }
    let products: BTreeSet<String> = [ProductType::L, ProductType::M, ProductType::H]
        .iter()
        .map(|p| to_value(p).as_str().unwrap().to_owned())
        .collect();
    assert_eq!(enum_values(&props["product_type"]), products);
}

#[test]
fn features_validate() {
    let c = contract();
    let f = features();
    let topic = topics().features(&f.machine_id);
    assert_valid(&c, &topic, &to_json(&f), "features");
    assert_eq!(keys(&to_value(&f)), properties(&c, "features"));
    let cold = Features {
        cold: true,
        window_len: 1,
        product_type: None,
        gap: 0,
        values: BTreeMap::new(),
        latest: BTreeMap::new(),
        profile: None,
        ..features()
    };
    assert_valid(&c, &topic, &to_json(&cold), "features");
    assert_eq!(keys(&to_value(&cold)), required(&c, "features"));
}

#[test]
fn risk_with_actions_and_factors_validates() {
    let c = contract();
    let r = risk();
    let topic = topics().risk(&r.machine_id);
    assert_valid(&c, &topic, &to_json(&r), "risk");
    assert_eq!(keys(&to_value(&r)), properties(&c, "risk"));
    let milling = Risk {
        profile: None,
        insights: Insights::default(),
        ..risk()
    };
    assert_valid(&c, &topic, &to_json(&milling), "risk");
    assert_eq!(
        keys(&to_value(&milling)),
        required(&c, "risk"),
        "every field but profile and the other kinds' fields is required; a milling verdict with no other model leaves them out"
    );
    for (field, value) in [
        ("profile", json!("a/b")),
        ("quality_risk", json!(1.5)),
        ("anomaly", json!(-0.1)),
        (
            "rul",
            json!({"value": 3.0, "low": 1.0, "high": 5.0, "unit": "furlongs"}),
        ),
        ("rul", json!({"value": 3.0, "low": 1.0})),
        ("models", json!({"failure": {"id": "x", "version": "1"}})),
    ] {
        let mut bad = to_value(&r);
        bad[field] = value;
        assert_invalid(&c, &topic, bad.to_string().as_bytes());
    }
    let healthy = Risk {
        probability: 0.0,
        status: RiskStatus::Healthy,
        level: Level::Normal,
        health_score: 100.0,
        actions: vec![],
        factors: vec![],
        cold: true,
        ..risk()
    };
    assert_valid(&c, &topic, &to_json(&healthy), "risk");
    let edge = Risk {
        probability: 1.0,
        health_score: 0.0,
        ..risk()
    };
    assert_valid(&c, &topic, &to_json(&edge), "risk");
}

#[test]
fn every_alert_event_kind_validates() {
    let c = contract();
    let kinds = [
        AlertEventKind::Firing,
        AlertEventKind::Updated,
        AlertEventKind::Resolved,
        AlertEventKind::Sent,
        AlertEventKind::Failed,
        AlertEventKind::Silenced,
        AlertEventKind::Acknowledged,
        AlertEventKind::Cleared,
    ];
    for k in kinds {
        // Every variant is listed (a new one fails to compile here until it is).
        match k {
            AlertEventKind::Firing
            | AlertEventKind::Updated
            | AlertEventKind::Resolved
            | AlertEventKind::Sent
            | AlertEventKind::Failed
            | AlertEventKind::Silenced
            | AlertEventKind::Acknowledged
            | AlertEventKind::Cleared => assert_eq!(to_value(&k), json!(k.as_str())),
        }
    }
    let wire: BTreeSet<String> = kinds
        .iter()
        .map(|k| to_value(k).as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        enum_values(&c.schema("alert").unwrap()["properties"]["event"]),
        wire
    );
    for kind in kinds {
        for detail in [None, Some("outbox/machine-002.eml")] {
            let a = alert(kind, detail);
            assert_valid(&c, &topics().alert(&a.machine_id), &to_json(&a), "alert");
        }
    }
    assert_eq!(
        keys(&to_value(&alert(AlertEventKind::Firing, None))),
        required(&c, "alert")
    );
    // An acknowledgement's delivery to a webhook channel: every field there is.
    let full = AlertEvent {
        by: Some("ops".into()),
        comment: Some("on it".into()),
        channel: Some("slack-line-a".into()),
        ..alert(AlertEventKind::Sent, Some("x"))
    };
    assert_valid(
        &c,
        &topics().alert(&full.machine_id),
        &to_json(&full),
        "alert",
    );
    assert_eq!(keys(&to_value(&full)), properties(&c, "alert"));
    for (field, value) in [
        ("by", json!("")),
        ("channel", json!("a/b")),
        ("comment", json!("x".repeat(1001))),
    ] {
        let mut bad = to_value(&full);
        bad[field] = value;
        assert_invalid(
            &c,
            &topics().alert(&full.machine_id),
            bad.to_string().as_bytes(),
        );
    }
}

fn alert_action(action: AlertActionKind, comment: &str) -> AlertAction {
    AlertAction {
        schema: ALERT_ACTION_SCHEMA.into(),
        machine_id: id("machine-002"),
        alert_id: "machine-002-20261122T100000000Z".into(),
        action,
        by: "ops".into(),
        comment: comment.into(),
        ts: TS,
    }
}

#[test]
fn alert_actions_validate_on_their_topic() {
    let c = contract();
    let topic = topics().alert_control(&id("machine-002"));
    assert_eq!(topic, "dtwin/v1/control/alerts/machine-002");
    for action in [AlertActionKind::Acknowledge, AlertActionKind::Clear] {
        assert_eq!(to_value(&action), json!(action.as_str()));
        for comment in ["", "bearing ordered"] {
            let a = alert_action(action, comment);
            assert_valid(&c, &topic, &to_json(&a), "alert-action");
            let back: AlertAction = dtwin_schema::from_json(&to_json(&a)).unwrap();
            assert_eq!(back, a);
        }
    }
    assert_eq!(
        enum_values(&c.schema("alert-action").unwrap()["properties"]["action"]),
        BTreeSet::from(["acknowledge".to_owned(), "clear".to_owned()])
    );
    let bare = to_value(&alert_action(AlertActionKind::Clear, ""));
    assert_eq!(keys(&bare), required(&c, "alert-action"));
    let full = to_value(&alert_action(AlertActionKind::Acknowledge, "x"));
    assert_eq!(keys(&full), properties(&c, "alert-action"));
    // Another machine's topic, an unknown action, no one, a long comment, an extra field.
    let why = assert_invalid(
        &c,
        &topics().alert_control(&id("machine-003")),
        &to_json(&alert_action(AlertActionKind::Clear, "")),
    );
    assert!(why.contains("machine-003"), "{why}");
    for (field, value) in [
        ("action", json!("snooze")),
        ("by", json!("")),
        ("comment", json!("x".repeat(1001))),
        ("alert_id", json!("")),
        ("schema", json!("dtwin.alert-action.v2")),
        ("extra", json!(1)),
    ] {
        let mut bad = full.clone();
        bad[field] = value;
        assert_invalid(&c, &topic, bad.to_string().as_bytes());
    }
    let mut no_ts = full.clone();
    no_ts.as_object_mut().unwrap().remove("ts");
    assert_invalid(&c, &topic, no_ts.to_string().as_bytes());
}

#[test]
fn alert_states_validate_firing_and_resolved() {
    let c = contract();
    let firing = |level| dtwin_schema::Firing {
        alert_id: "machine-002-20261122T100000000Z".into(),
        since: datetime!(2026-11-22 10:00:00 UTC),
        level,
        last_notified: datetime!(2026-11-22 10:30:00.5 UTC),
        repeats: 2,
        healthy_run: 1,
        acknowledged: None,
    };
    let state = |f| dtwin_schema::AlertSnapshot {
        schema: dtwin_schema::ALERT_STATE_SCHEMA.into(),
        machine_id: id("machine-002"),
        ts: datetime!(2026-11-22 10:31:00 UTC),
        firing: f,
    };
    let topic = topics().alert_state(&id("machine-002"));
    for s in [
        state(Some(firing(Level::Warning))),
        state(Some(firing(Level::Critical))),
        state(None),
    ] {
        assert_valid(&c, &topic, &to_json(&s), "alert-state");
    }
    let full = to_value(&state(Some(firing(Level::Critical))));
    assert_eq!(keys(&full), required(&c, "alert-state"));
    assert_eq!(keys(&full), properties(&c, "alert-state"));
    // Acknowledged (with and without a comment); states from before acknowledgements (no
    // `acknowledged`) still decode.
    for comment in ["", "bearing ordered"] {
        let acked = dtwin_schema::Firing {
            acknowledged: Some(dtwin_schema::Acknowledgement {
                by: "ops".into(),
                at: datetime!(2026-11-22 10:31:00 UTC),
                comment: comment.into(),
            }),
            ..firing(Level::Critical)
        };
        let s = state(Some(acked.clone()));
        assert_valid(&c, &topic, &to_json(&s), "alert-state");
        let back: dtwin_schema::AlertSnapshot = dtwin_schema::from_json(&to_json(&s)).unwrap();
        assert_eq!(back.firing, Some(acked));
    }
    let firing_keys = keys(&full["firing"]);
    let schema_keys =
        keys(&c.schema("alert-state").unwrap()["properties"]["firing"]["oneOf"][1]["properties"]);
    assert_eq!(
        schema_keys.difference(&firing_keys).collect::<Vec<_>>(),
        ["acknowledged"],
        "every firing field but acknowledged is always written"
    );
    let mut bad_ack = full.clone();
    bad_ack["firing"]["acknowledged"] = json!({"at": "2026-11-22T10:31:00Z"});
    assert_invalid(&c, &topic, bad_ack.to_string().as_bytes());
    // A NORMAL alert, an unknown field, another machine's topic: refused.
    assert_invalid(&c, &topic, &to_json(&state(Some(firing(Level::Normal)))));
    let mut extra = full.clone();
    extra["firing"]["note"] = "x".into();
    assert_invalid(&c, &topic, extra.to_string().as_bytes());
    let other = topics().alert_state(&id("machine-003"));
    assert_invalid(&c, &other, &to_json(&state(None)));
}

#[test]
fn dead_letters_for_every_reason_validate() {
    let c = contract();
    let reasons = all_reasons();
    let wire: BTreeSet<String> = reasons.iter().map(|r| r.as_str().to_owned()).collect();
    assert_eq!(
        enum_values(&c.schema("deadletter").unwrap()["properties"]["reason"]),
        wire
    );
    let big = "x".repeat(10_000);
    let payloads: [&[u8]; 4] = [
        b"this is not json",
        b"",
        &[0xff, 0xfe, 0x00],
        big.as_bytes(),
    ];
    for service in ["feature", "inference", "alerter"] {
        for reason in &reasons {
            for payload in payloads {
                let topic = topics().deadletter(service);
                let mut dl = DeadLetter::new(
                    service,
                    "dtwin/v1/machines/machine-001/telemetry",
                    payload,
                    *reason,
                    format!("{} happened", reason.as_str()),
                );
                assert_eq!(to_value(&reason), json!(reason.as_str()));
                assert_valid(&c, &topic, &to_json(&dl), "deadletter");
                assert_eq!(keys(&to_value(&dl)), required(&c, "deadletter"));
                dl.machine_id = Some(id("machine-001"));
                assert_valid(&c, &topic, &to_json(&dl), "deadletter");
                assert_eq!(keys(&to_value(&dl)), properties(&c, "deadletter"));
            }
        }
    }
}

#[test]
fn machine_and_publisher_status_validate() {
    let c = contract();
    for state in [Presence::Online, Presence::Offline] {
        for product in [None, Some(ProductType::L), Some(ProductType::H)] {
            let s = status("machine-001", state, product);
            assert_valid(&c, &topics().status(&s.machine_id), &to_json(&s), "status");
        }
        let publisher = status("dtwin-twin", state, None);
        assert_valid(
            &c,
            &topics().publisher_status("dtwin-twin"),
            &to_json(&publisher),
            "status",
        );
        assert_eq!(keys(&to_value(&publisher)), required(&c, "status"));
    }
    let full = status("machine-001", Presence::Online, Some(ProductType::M));
    assert_eq!(keys(&to_value(&full)), properties(&c, "status"));
}

#[test]
fn model_topic_takes_a_model_artifact_object() {
    let c = contract();
    let topic = topics().model_current();
    let artifact = br#"{"schema":"dtwin.model.v1","id":"rf","version":"1","trees":[]}"#;
    assert_eq!(c.check(&topic, artifact), Ok(MODEL));
    assert_invalid(&c, &topic, br#"{"schema":"dtwin.model.v0"}"#);
    assert_invalid(&c, &topic, br#"["dtwin.model.v1"]"#);
    assert_invalid(&c, &topic, b"not json");
    // On `models/{profile}/{kind}` the artifact is of the topic's kind.
    let rul_topic = topics().model_kind("pump", "rul");
    let rul = br#"{"schema":"dtwin.model.v1","kind":"rul"}"#;
    assert_eq!(c.check(&rul_topic, rul), Ok(MODEL));
    let why = assert_invalid(&c, &topics().model_kind("pump", "anomaly"), rul);
    assert!(why.contains("is not the topic's"), "{why}");
    assert_invalid(&c, &rul_topic, artifact);
}

#[test]
fn schema_examples_validate_and_decode_with_the_rust_types() {
    let c = contract();
    for name in SCHEMAS {
        let examples = c.examples(name);
        assert!(!examples.is_empty(), "{name} has examples");
        for ex in examples {
            c.validate(name, &ex)
                .unwrap_or_else(|e| panic!("{name} example {ex}: {e}"));
            let bytes = ex.to_string().into_bytes();
            let decoded = match name {
                "telemetry" => Telemetry::decode_many(&bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|readings| {
                        readings
                            .into_iter()
                            .try_for_each(|r| r.map(|_| ()).map_err(|e| e.to_string()))
                    }),
                "telemetry-v2" => {
                    let first = if ex.is_array() { &ex[0] } else { &ex };
                    let machine = id(first["machine_id"].as_str().unwrap_or("machine-001"));
                    Telemetry::decode_on(&machine, TS, &bytes)
                        .map_err(|e| e.to_string())
                        .and_then(|readings| {
                            readings
                                .into_iter()
                                .try_for_each(|r| r.map(|_| ()).map_err(|e| e.to_string()))
                        })
                }
                "features" => decode::<Features>(&bytes),
                "risk" => decode::<Risk>(&bytes),
                "alert" => decode::<AlertEvent>(&bytes),
                "alert-state" => decode::<dtwin_schema::AlertSnapshot>(&bytes),
                "deadletter" => decode::<DeadLetter>(&bytes).and_then(|_| {
                    let dl: DeadLetter = serde_json::from_slice(&bytes).unwrap();
                    (dl.payload.len() == dl.payload_bytes)
                        .then_some(())
                        .ok_or_else(|| {
                            format!("payload_bytes {} vs {}", dl.payload_bytes, dl.payload.len())
                        })
                }),
                "status" => decode::<MachineStatus>(&bytes),
                "drift" => decode::<DriftStatus>(&bytes),
                "silence" => decode::<dtwin_schema::Silence>(&bytes),
                "alert-action" => decode::<AlertAction>(&bytes),
                "control" => dtwin_twin_publisher::control::decode(&bytes)
                    .map(|_| ())
                    .map_err(|e| e.detail),
                other => panic!("unexpected schema {other}"),
            };
            decoded.unwrap_or_else(|e| panic!("{name} example {ex}: {e}"));
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(), String> {
    dtwin_schema::from_json::<T>(bytes)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn asyncapi_documents_every_topic_and_schema() {
    let dir = std::path::Path::new(dtwin_tests::contract::SCHEMA_DIR);
    let doc = std::fs::read_to_string(dir.join("asyncapi.yaml")).unwrap();
    assert!(doc.contains("asyncapi: 3.0.0"));
    for address in [
        "{prefix}/machines/{machine_id}/telemetry",
        "{prefix}/machines/{machine_id}/features",
        "{prefix}/machines/{machine_id}/risk",
        "{prefix}/machines/{machine_id}/status",
        "{prefix}/alerts/{machine_id}",
        "{prefix}/alert-state/{machine_id}",
        "{prefix}/deadletter/{service}",
        "{prefix}/models/current",
        "{prefix}/models/{profile}",
        "{prefix}/profiles/{profile}",
        "{prefix}/publishers/{client_id}/status",
        "{prefix}/drift/{service}",
        "{prefix}/control/silences/{silenceId}",
        "{prefix}/control/alerts/{machine_id}",
        "spBv1.0/{group_id}/{message_type}/{edge_node_id}",
        "spBv1.0/{group_id}/{message_type}/{edge_node_id}/{device_id}",
        "spBv1.0/{group_id}/NCMD/{edge_node_id}",
        "spBv1.0/STATE/{host_id}",
    ] {
        assert!(doc.contains(&format!("address: '{address}'")), "{address}");
    }
    for name in SCHEMAS {
        assert!(
            doc.contains(&format!("$ref: './{name}.schema.json'")),
            "asyncapi references {name}.schema.json"
        );
    }
    assert!(doc.contains("dtwin/v1"), "documents the default prefix");
}

#[test]
fn gateway_batches_validate_and_decode_in_order() {
    let c = contract();
    let topic = "dtwin/v1/machines/machine-001/telemetry";
    let mut second = full_telemetry();
    second.seq += 1;
    let batch = serde_json::to_vec(&[full_telemetry(), second]).unwrap();
    assert_valid(&c, topic, &batch, "telemetry");
    let decoded = Telemetry::decode_many(&batch).unwrap();
    let seqs: Vec<u64> = decoded.iter().map(|r| r.as_ref().unwrap().seq).collect();
    assert_eq!(seqs, [4711, 4712]);
    // Empty, nested, mixed machines, or an item that is no reading: all refused.
    assert_invalid(&c, topic, b"[]");
    let nested = format!("[{}]", String::from_utf8(batch.clone()).unwrap());
    assert_invalid(&c, topic, nested.as_bytes());
    let mut other = full_telemetry();
    other.machine_id = id("machine-002");
    let mixed = serde_json::to_vec(&[full_telemetry(), other]).unwrap();
    assert!(assert_invalid(&c, topic, &mixed).contains("machine-002"));
    assert_invalid(&c, topic, br#"[{"schema":"dtwin.telemetry.v1"}]"#);
    assert!(Telemetry::decode_many(b"[]").is_err());
}

fn drift_status(state: DriftState) -> DriftStatus {
    let score = |feature: &str, ks: f64, drift: bool| DriftScore {
        feature: feature.into(),
        ks,
        js: ks / 2.0,
        missing: 0.0,
        drift,
    };
    DriftStatus {
        schema: DRIFT_SCHEMA.to_owned(),
        service: "inference".into(),
        ts: TS,
        model: ModelRef {
            id: "rf-twin".into(),
            version: "1".into(),
        },
        state,
        window: 500,
        ks_threshold: 0.2,
        js_threshold: 0.1,
        drifted: vec!["vibration_mm_s".into()],
        risk: Some(score("risk", 0.05, false)),
        features: vec![
            score("vibration_mm_s", 0.7, true),
            score("temperature_c", 0.01, false),
        ],
        profile: None,
        kind: None,
    }
}

#[test]
fn drift_status_validates_on_its_topic() {
    let c = contract();
    let topic = topics().drift("inference");
    for state in [
        DriftState::Ok,
        DriftState::Drift,
        DriftState::WarmingUp,
        DriftState::NoReference,
    ] {
        let d = drift_status(state);
        assert_valid(&c, &topic, &to_json(&d), "drift");
        let mut classifier_fields = properties(&c, "drift");
        classifier_fields.retain(|k| k != "profile" && k != "kind");
        assert_eq!(keys(&to_value(&d)), classifier_fields);
    }
    let kind_topic = topics().drift_kind("inference", "pump", "anomaly");
    let of_kind = DriftStatus {
        profile: Some("pump".into()),
        kind: Some("anomaly".into()),
        ..drift_status(DriftState::Ok)
    };
    assert_valid(&c, &kind_topic, &to_json(&of_kind), "drift");
    assert_eq!(keys(&to_value(&of_kind)), properties(&c, "drift"));
    // The status names its topic's profile and kind, and the classifier's names neither.
    let other = topics().drift_kind("inference", "press", "anomaly");
    assert!(assert_invalid(&c, &other, &to_json(&of_kind)).contains("profile"));
    let classifier = to_json(&drift_status(DriftState::Ok));
    assert!(assert_invalid(&c, &kind_topic, &classifier).contains("profile"));
    assert!(assert_invalid(&c, &topic, &to_json(&of_kind)).contains("profile"));
    let bare = DriftStatus {
        risk: None,
        ..drift_status(DriftState::NoReference)
    };
    assert_eq!(keys(&to_value(&bare)), required(&c, "drift"));
    let mut bad = to_value(&drift_status(DriftState::Drift));
    bad["features"][0]["ks"] = json!(1.5);
    assert_invalid(&c, &topic, bad.to_string().as_bytes());
    // The topic names the service.
    assert_invalid(
        &c,
        "dtwin/v1/drift/feature",
        &to_json(&drift_status(DriftState::Ok)),
    );
}

// ---------------------------------------------------------------- must fail

#[test]
fn telemetry_with_a_slash_in_machine_id_fails() {
    let c = contract();
    let mut t = to_value(&Telemetry::new(id("a"), TS, 1));
    t["machine_id"] = json!("a/b");
    let why = assert_invalid(
        &c,
        "dtwin/v1/machines/a/telemetry",
        t.to_string().as_bytes(),
    );
    assert!(why.contains("/machine_id"), "{why}");
    assert!(Telemetry::decode(t.to_string().as_bytes()).is_err());
    // Nor empty, nor a wildcard, nor too long.
    for bad in ["", "+", "#", &"x".repeat(65)] {
        t["machine_id"] = json!(bad);
        assert!(c.validate("telemetry", &t).is_err(), "{bad:?}");
    }
}

#[test]
fn risk_with_probability_above_one_fails() {
    let c = contract();
    let mut r = to_value(&risk());
    r["probability"] = json!(1.5);
    let why = assert_invalid(
        &c,
        "dtwin/v1/machines/machine-002/risk",
        r.to_string().as_bytes(),
    );
    assert!(why.contains("/probability"), "{why}");
    r["probability"] = json!(-0.1);
    assert!(c.validate("risk", &r).is_err());
    let mut r = to_value(&risk());
    r["health_score"] = json!(100.5);
    assert!(c.validate("risk", &r).is_err());
}

#[test]
fn risk_with_an_unknown_field_fails() {
    let c = contract();
    let mut r = to_value(&risk());
    r["confidence"] = json!(0.9);
    let why = assert_invalid(
        &c,
        "dtwin/v1/machines/machine-002/risk",
        r.to_string().as_bytes(),
    );
    assert!(why.contains("confidence"), "{why}");
    // Nested objects are closed too.
    let mut r = to_value(&risk());
    r["actions"][0]["priority"] = json!(1);
    assert!(c.validate("risk", &r).is_err());
    let mut r = to_value(&risk());
    r["model"]["trained_at"] = json!("yesterday");
    assert!(c.validate("risk", &r).is_err());
}

#[test]
fn features_missing_feature_set_fails() {
    let c = contract();
    let mut f = to_value(&features());
    f.as_object_mut().unwrap().remove("feature_set");
    let why = assert_invalid(
        &c,
        "dtwin/v1/machines/machine-001/features",
        f.to_string().as_bytes(),
    );
    assert!(why.contains("feature_set"), "{why}");
}

#[test]
fn status_with_an_unknown_state_fails() {
    let c = contract();
    let mut s = to_value(&status("machine-001", Presence::Online, None));
    s["state"] = json!("sleeping");
    assert_invalid(
        &c,
        "dtwin/v1/machines/machine-001/status",
        s.to_string().as_bytes(),
    );
    // Publisher status uses the same schema.
    let mut s = to_value(&status("dtwin-twin", Presence::Offline, None));
    s["state"] = json!("sleeping");
    assert_invalid(
        &c,
        "dtwin/v1/publishers/dtwin-twin/status",
        s.to_string().as_bytes(),
    );
}

#[test]
fn other_contract_violations_fail() {
    let c = contract();
    let t = to_value(&full_telemetry());
    let topic = "dtwin/v1/machines/machine-001/telemetry";

    let mut bad = t.clone();
    bad["ts"] = json!("yesterday");
    assert!(assert_invalid(&c, topic, bad.to_string().as_bytes()).contains("/ts"));

    let mut bad = t.clone();
    bad["schema"] = json!("dtwin.telemetry.v3");
    assert_invalid(&c, topic, bad.to_string().as_bytes());

    // v1's sensor fields at the top level of a v2 reading (they belong in `values`).
    let mut bad = t.clone();
    bad["schema"] = json!("dtwin.telemetry.v2");
    assert!(assert_invalid(&c, topic, bad.to_string().as_bytes()).contains("temperature_c"));

    let mut bad = t.clone();
    bad["failure_mode"] = json!("bearing");
    assert_invalid(&c, topic, bad.to_string().as_bytes());

    let mut bad = t.clone();
    bad["vibration_mm_s"] = json!("loud");
    assert_invalid(&c, topic, bad.to_string().as_bytes());

    let mut bad = t.clone();
    bad["seq"] = json!(-1);
    assert_invalid(&c, topic, bad.to_string().as_bytes());

    // The topic names another machine than the payload.
    let why = assert_invalid(&c, "dtwin/v1/machines/machine-009/telemetry", &to_json(&t));
    assert!(why.contains("machine-009"), "{why}");
    let dl = DeadLetter::new("feature", topic, b"x", RejectReason::NotJson, "x".into());
    assert_invalid(&c, "dtwin/v1/deadletter/inference", &to_json(&dl));

    // Oversize telemetry.
    let mut big = t.clone();
    big["padding"] = json!("x".repeat(70_000));
    assert!(assert_invalid(&c, topic, big.to_string().as_bytes()).contains("bytes"));

    // Published messages do not carry null for an absent optional field.
    let mut s = to_value(&status("machine-001", Presence::Online, None));
    s["product_type"] = Value::Null;
    assert_invalid(
        &c,
        "dtwin/v1/machines/machine-001/status",
        s.to_string().as_bytes(),
    );

    // Not JSON.
    assert!(assert_invalid(&c, topic, b"this is not json").contains("not JSON"));
}

#[test]
fn unknown_topics_have_no_schema() {
    let c = contract();
    let payload = to_json(&status("machine-001", Presence::Online, None));
    for topic in [
        "dtwin/v1/machines/machine-001/unknown",
        "dtwin/v1/machines/machine-001",
        "dtwin/v1/alerts/a/b",
        "dtwin/v1/deadletter/",
        "dtwin/v1/deadletter/a/b",
        "dtwin/v1/publishers/x/y/status",
        // `models/{profile}` is any profile's model, `models/{profile}/{kind}` one of the three
        // kinds; anything else is nothing.
        "dtwin/v1/models/pump/previous",
        "dtwin/v1/models/pump/rul/1",
        "dtwin/v1/drift/inference/pump/previous",
        "dtwin/v1/models/",
        "dtwin/v1/control",
        "dtwin/v1/control/alerts/",
        "dtwin/v1/control/alerts/a/b",
    ] {
        let why = assert_invalid(&c, topic, &payload);
        assert!(why.contains("no schema for topic"), "{topic}: {why}");
    }
    let why = assert_invalid(&c, "other/v1/machines/machine-001/status", &payload);
    assert!(why.contains("not under the prefix"), "{why}");
    assert_eq!(dtwin_tests::contract::prefix_filter(), "dtwin/v1/#");
}

#[test]
fn twin_control_commands_match_the_decoder() {
    let c = contract();
    let topic = "dtwin/v1/control/twin";
    for ok in [
        r#"{"command":"inject","machine_id":"machine-003","fault":"bearing"}"#,
        r#"{"schema":"dtwin.control.twin.v1","command":"inject","machine_id":"m-1","fault":"stuck:tool-wear"}"#,
    ] {
        assert_eq!(c.check(topic, ok.as_bytes()), Ok("control"));
        assert!(
            dtwin_twin_publisher::control::decode(ok.as_bytes()).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        r#"{"command":"explode","machine_id":"m-1","fault":"bearing"}"#,
        r#"{"command":"inject","machine_id":"m/1","fault":"bearing"}"#,
        r#"{"command":"inject","machine_id":"m-1","fault":"melt"}"#,
        r#"{"command":"inject","machine_id":"m-1"}"#,
        r#"{"command":"inject","machine_id":"m-1","fault":"bearing","extra":1}"#,
    ] {
        assert!(
            c.check(topic, bad.as_bytes()).is_err(),
            "schema accepts {bad}"
        );
        assert!(
            dtwin_twin_publisher::control::decode(bad.as_bytes()).is_err(),
            "decoder accepts {bad}"
        );
    }
}

#[test]
fn a_profile_published_at_run_time_is_toml_naming_its_topic() {
    let c = contract();
    let text = dtwin_profile::draft::draft_from_names(
        "spb_plant1.line4.press2",
        "a test",
        &["Hydraulic/Pressure [bar]", "Cycle count"],
    );
    let topic = "dtwin/v1/profiles/spb_plant1.line4.press2";
    assert_valid(&c, topic, text.as_bytes(), "profile");
    assert!(assert_invalid(&c, "dtwin/v1/profiles/other", text.as_bytes()).contains("topic's"));
    assert!(assert_invalid(&c, topic, b"{\"id\": 1}").starts_with("profile:"));
    assert!(assert_invalid(&c, topic, b"\xff").contains("UTF-8"));
}
