use super::*;
use dtwin_schema::{from_json, Reading as V2Reading, Telemetry};
use dtwin_sparkplug::{
    by_alias, DeadLetterReason, EdgeNode, EdgeNodeId, HostConfig, HostState, Metric, MetricValue,
    RebirthReason,
};

const NOW: u64 = 1_700_000_000_000;

const PUMP: &str = r#"
id = "pump"
label = "Pump"

[[sensor]]
name = "volt"
unit = "V"
range = [0.0, 400.0]

[[sensor]]
name = "rotate"
key = "rpm"
unit = "rpm"
range = [0.0, 5000.0]
"#;

const PUMP3: &str = r#"
id = "pump3"
label = "Pump with a pressure sensor"

[[sensor]]
name = "volt"
unit = "V"
range = [0.0, 400.0]

[[sensor]]
name = "rotate"
key = "rpm"
unit = "rpm"
range = [0.0, 5000.0]

[[sensor]]
name = "pressure"
unit = "bar"
range = [0.0, 50.0]
"#;

fn profile(text: &str) -> Profile {
    Profile::parse(text, "test.toml").unwrap()
}

fn translator() -> Translator {
    Translator::new("dtwin/v1", vec![profile(PUMP)])
}

fn id(s: &str) -> MachineId {
    MachineId::parse(s).unwrap()
}

const SRC: Source<'static> = Source {
    topic: "spBv1.0/plant/DDATA/edge/dev",
    payload: b"\x01\x02",
};

fn birth(t: &mut Translator, machine: &str, names: &[(&str, DataType)]) -> Vec<Out> {
    t.apply(
        Action::Birth {
            machine: id(machine),
            metrics: names.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect(),
        },
        SRC,
        NOW,
    )
}

fn reading(machine: &str, ts: u64, values: &[(&str, f64)], historical: bool) -> Action {
    Action::Reading {
        machine: id(machine),
        ts,
        seq: 1,
        values: values.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect(),
        historical,
    }
}

fn json(out: &Out) -> serde_json::Value {
    serde_json::from_slice(&out.payload).unwrap()
}

#[test]
fn a_birth_gets_the_profile_whose_sensor_keys_it_has() {
    let mut t = translator();
    let out = birth(
        &mut t,
        "plant.edge.p1",
        &[
            ("volt", DataType::Double),
            ("rpm", DataType::Int32),
            ("label", DataType::String),
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(t.profile_of(&id("plant.edge.p1")), Some("pump"));
    assert_eq!(t.profile_ids(), ["pump", "milling"]);
}

#[test]
fn the_profile_with_most_sensors_wins_and_milling_counts() {
    let mut t = Translator::new("dtwin/v1", vec![profile(PUMP), profile(PUMP3)]);
    birth(
        &mut t,
        "a",
        &[
            ("volt", DataType::Float),
            ("rpm", DataType::UInt16),
            ("pressure", DataType::Double),
        ],
    );
    assert_eq!(t.profile_of(&id("a")), Some("pump3"));
    let milling: Vec<(String, DataType)> = Profile::milling()
        .sensors
        .iter()
        .map(|s| (s.key.clone(), DataType::Double))
        .collect();
    let names: Vec<(&str, DataType)> = milling.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    birth(&mut t, "m", &names);
    assert_eq!(t.profile_of(&id("m")), Some("milling"));
}

#[test]
fn without_drafting_a_birth_no_profile_fits_is_an_unknown_profile_dead_letter_naming_its_metrics() {
    let mut t = translator().drafting(false);
    // `rpm` is a string here: not numeric, so the pump does not fit.
    let out = birth(
        &mut t,
        "plant.edge.x",
        &[("volt", DataType::Double), ("rpm", DataType::String)],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, "dtwin/v1/deadletter/sparkplug");
    assert_eq!(out[0].kind, OutKind::DeadLetter("unknown_profile"));
    let dl: DeadLetter = from_json(&out[0].payload).unwrap();
    assert_eq!(dl.reason, RejectReason::UnknownProfile);
    assert_eq!(dl.service, "sparkplug");
    assert_eq!(dl.machine_id, Some(id("plant.edge.x")));
    assert_eq!(dl.topic, SRC.topic);
    assert!(dl.detail.contains("[volt]"), "{}", dl.detail);
    assert!(dl.detail.contains("--profile"), "{}", dl.detail);
    assert!(dl.detail.contains("pump (lacks rpm)"), "{}", dl.detail);
    assert_eq!(t.profile_of(&id("plant.edge.x")), None);

    // Its readings are dead letters too.
    let out = t.apply(
        reading("plant.edge.x", NOW, &[("volt", 1.0)], false),
        SRC,
        NOW,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, OutKind::DeadLetter("unknown_profile"));
    assert!(json(&out[0])["detail"]
        .as_str()
        .unwrap()
        .contains("has no profile"));
}

#[test]
fn a_birth_no_profile_fits_drafts_one_that_later_devices_with_those_metrics_share() {
    let mut t = translator();
    let out = birth(
        &mut t,
        "plant.edge.press",
        &[
            ("Hydraulic/Pressure [bar]", DataType::Float),
            ("Cycle count", DataType::UInt64),
            ("Operator", DataType::String),
        ],
    );
    assert_eq!(out.len(), 1, "{out:?}");
    let o = &out[0];
    assert_eq!(o.topic, "dtwin/v1/profiles/spb_plant.edge.press");
    assert_eq!(
        (o.retain, o.qos, o.kind),
        (true, QoS::AtLeastOnce, OutKind::Profile)
    );
    let text = std::str::from_utf8(&o.payload).unwrap();
    let drafted = Profile::parse(text, "published").unwrap();
    assert_eq!(drafted.id, "spb_plant.edge.press");
    let keys: Vec<&str> = drafted.sensors.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["Hydraulic/Pressure [bar]", "Cycle count"]);
    assert!(text.contains("spBv1.0/plant/DDATA/edge/dev"), "{text}");
    assert_eq!(
        t.profile_of(&id("plant.edge.press")),
        Some("spb_plant.edge.press")
    );
    assert!(t.drafted("spb_plant.edge.press").is_some());
    assert!(t.drafted("pump").is_none());

    // Its readings take the JSON path under the drafted profile.
    let out = t.apply(
        reading(
            "plant.edge.press",
            NOW,
            &[("Hydraulic/Pressure [bar]", 151.5), ("Cycle count", 7.0)],
            false,
        ),
        SRC,
        NOW,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, OutKind::Telemetry);
    let v = json(&out[0]);
    assert_eq!(v["profile"], "spb_plant.edge.press");
    assert_eq!(v["values"]["Hydraulic/Pressure [bar]"], 151.5);

    // A second press with the same metrics fits the drafted profile: nothing new is drafted.
    let out = birth(
        &mut t,
        "plant.edge.press2",
        &[
            ("Hydraulic/Pressure [bar]", DataType::Double),
            ("Cycle count", DataType::Int64),
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(
        t.profile_of(&id("plant.edge.press2")),
        Some("spb_plant.edge.press")
    );
    // The same device born again (a rebirth) keeps it, and a pump still gets the pump.
    assert!(birth(
        &mut t,
        "plant.edge.press",
        &[
            ("Cycle count", DataType::Int64),
            ("Hydraulic/Pressure [bar]", DataType::Float)
        ]
    )
    .is_empty());
    assert_eq!(
        t.profile_of(&id("plant.edge.press")),
        Some("spb_plant.edge.press")
    );
    birth(
        &mut t,
        "p",
        &[("volt", DataType::Double), ("rpm", DataType::Int32)],
    );
    assert_eq!(t.profile_of(&id("p")), Some("pump"));
    assert_eq!(t.profile_ids(), ["pump", "milling", "spb_plant.edge.press"]);
}

#[test]
fn a_birth_without_a_numeric_metric_drafts_nothing() {
    let mut t = translator();
    let out = birth(&mut t, "plant.edge.hmi", &[("Operator", DataType::String)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, OutKind::DeadLetter("unknown_profile"));
    assert_eq!(t.profile_ids(), ["pump", "milling"]);
}

#[test]
fn a_reading_becomes_v2_telemetry_the_feature_service_decodes() {
    let mut t = translator();
    birth(
        &mut t,
        "plant.edge.p1",
        &[
            ("volt", DataType::Double),
            ("rpm", DataType::Int32),
            ("extra", DataType::Double),
        ],
    );
    let out = t.apply(
        reading(
            "plant.edge.p1",
            NOW + 5,
            &[("volt", 230.5), ("rpm", 1500.0), ("extra", 9.0)],
            false,
        ),
        SRC,
        NOW + 10,
    );
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(o.topic, "dtwin/v1/machines/plant.edge.p1/telemetry");
    assert_eq!(
        (o.retain, o.qos, o.kind),
        (false, QoS::AtLeastOnce, OutKind::Telemetry)
    );
    assert_eq!(
        json(o),
        serde_json::json!({
            "schema": "dtwin.telemetry.v2",
            "machine_id": "plant.edge.p1",
            "ts": NOW + 5,
            "profile": "pump",
            "values": {"volt": 230.5, "rpm": 1500.0},
        })
    );
    // The decoder the feature service runs takes it: ts as given, no seq.
    let arrival = at(NOW + 10);
    let decoded: Vec<V2Reading> =
        Telemetry::decode_for(&id("plant.edge.p1"), arrival, &o.payload, "milling")
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert_eq!(decoded.len(), 1);
    assert!(!decoded[0].has_seq && decoded[0].has_ts);
    assert_eq!(decoded[0].telemetry.ts, at(NOW + 5));
    assert_eq!(decoded[0].profile.as_deref(), Some("pump"));
}

#[test]
fn a_live_reading_keeps_the_last_value_of_metrics_it_does_not_repeat() {
    let mut t = translator();
    birth(
        &mut t,
        "p",
        &[("volt", DataType::Double), ("rpm", DataType::Int32)],
    );
    t.apply(
        reading("p", NOW, &[("volt", 230.0), ("rpm", 1500.0)], false),
        SRC,
        NOW,
    );
    let out = t.apply(reading("p", NOW + 1, &[("rpm", 1490.0)], false), SRC, NOW);
    assert_eq!(
        json(&out[0])["values"],
        serde_json::json!({"volt": 230.0, "rpm": 1490.0})
    );
    // Historical data carries only its own values and does not change the current state.
    let out = t.apply(reading("p", NOW - 100, &[("volt", 100.0)], true), SRC, NOW);
    assert_eq!(json(&out[0])["values"], serde_json::json!({"volt": 100.0}));
    assert_eq!(json(&out[0])["ts"], NOW - 100);
    assert_eq!(json(&out[0])["historical"], true);
    let out = t.apply(reading("p", NOW + 2, &[("rpm", 1480.0)], false), SRC, NOW);
    assert_eq!(
        json(&out[0])["values"],
        serde_json::json!({"volt": 230.0, "rpm": 1480.0})
    );
    assert_eq!(json(&out[0]).get("historical"), None);
    // Only metrics that are no sensor: nothing to send.
    birth(
        &mut t,
        "q",
        &[
            ("volt", DataType::Double),
            ("rpm", DataType::Int32),
            ("x", DataType::Double),
        ],
    );
    assert!(t
        .apply(reading("q", NOW, &[("x", 1.0)], false), SRC, NOW)
        .is_empty());
}

#[test]
fn statuses_are_retained_machine_statuses() {
    let mut t = translator();
    for (action, state) in [
        (Action::Online { machine: id("p") }, Presence::Online),
        (Action::Offline { machine: id("p") }, Presence::Offline),
    ] {
        let out = t.apply(action, SRC, NOW);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, "dtwin/v1/machines/p/status");
        assert_eq!((out[0].retain, out[0].kind), (true, OutKind::Status));
        let s: MachineStatus = from_json(&out[0].payload).unwrap();
        assert_eq!((s.machine_id, s.state), (id("p"), state));
        assert_eq!(s.ts, at(NOW));
    }
}

#[test]
fn a_rebirth_is_an_ncmd_to_the_node() {
    let mut t = translator();
    let out = t.apply(
        Action::Rebirth {
            node: EdgeNodeId::new("plant", "edge"),
            reason: RebirthReason::NoBirth,
        },
        SRC,
        NOW,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, "spBv1.0/plant/NCMD/edge");
    assert_eq!(
        (out[0].retain, out[0].qos, out[0].kind),
        (false, QoS::AtLeastOnce, OutKind::Rebirth)
    );
    assert_eq!(out[0].payload, rebirth_request(NOW));
    let p = dtwin_sparkplug::decode_payload(&out[0].payload).unwrap();
    assert_eq!(p.metrics[0].name.as_deref(), Some("Node Control/Rebirth"));
}

#[test]
fn a_host_dead_letter_carries_its_reason_first_in_the_detail() {
    let mut t = translator();
    let out = t.apply(
        Action::DeadLetter {
            reason: DeadLetterReason::NotProtobuf,
            detail: "spBv1.0/plant/DDATA/edge/dev: not a payload".into(),
        },
        SRC,
        NOW,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, "dtwin/v1/deadletter/sparkplug");
    assert_eq!(out[0].kind, OutKind::DeadLetter("not_protobuf"));
    let dl: DeadLetter = from_json(&out[0].payload).unwrap();
    assert_eq!(dl.reason, RejectReason::Sparkplug);
    assert!(dl.detail.starts_with("not_protobuf: "), "{}", dl.detail);
    assert_eq!(dl.machine_id, Some(id("plant.edge.dev")));
    assert_eq!(dl.payload_bytes, 2);
    assert_eq!(dl.ts, at(NOW));
    // A topic that is no Sparkplug edge topic names no machine.
    let out = t.apply(
        Action::DeadLetter {
            reason: DeadLetterReason::BadTopic,
            detail: "x".into(),
        },
        Source {
            topic: "spBv1.0/x",
            payload: b"",
        },
        NOW,
    );
    let dl: DeadLetter = from_json(&out[0].payload).unwrap();
    assert_eq!(dl.machine_id, None);
}

/// The host state machine and the translator together, as the service runs them.
#[test]
fn an_edge_nodes_session_becomes_statuses_readings_and_a_rebirth_request() {
    let mut host = HostState::new(HostConfig::default());
    let mut t = translator();
    let mut edge = EdgeNode::new(EdgeNodeId::new("plant", "line"), 0);
    let mut run = |(topic, payload): (String, Vec<u8>)| -> Vec<Out> {
        host.handle(&topic, &payload, NOW)
            .into_iter()
            .flat_map(|a| {
                t.apply(
                    a,
                    Source {
                        topic: &topic,
                        payload: &payload,
                    },
                    NOW,
                )
            })
            .collect()
    };
    assert!(run(edge.nbirth(&[], NOW)).is_empty());
    let metrics = [
        Metric::named("volt", Some(1), DataType::Double),
        Metric::named("rpm", Some(2), DataType::Int32),
    ];
    let out = run(edge.dbirth("p1", &metrics, NOW));
    let kinds: Vec<OutKind> = out.iter().map(|o| o.kind).collect();
    assert_eq!(kinds, [OutKind::Status]);
    let out = run(edge.ddata(
        "p1",
        &[
            by_alias(1, MetricValue::DoubleValue(231.0)),
            by_alias(2, MetricValue::IntValue(1500)),
        ],
        NOW + 1,
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, "dtwin/v1/machines/plant.line.p1/telemetry");
    assert_eq!(
        json(&out[0])["values"],
        serde_json::json!({"volt": 231.0, "rpm": 1500.0})
    );
    edge.skip(1);
    let out = run(edge.ddata("p1", &[by_alias(1, MetricValue::DoubleValue(1.0))], NOW + 2));
    let kinds: Vec<OutKind> = out.iter().map(|o| o.kind).collect();
    assert!(kinds.contains(&OutKind::Rebirth), "{kinds:?}");
    assert!(kinds.contains(&OutKind::DeadLetter("seq_gap")), "{kinds:?}");
    let out = run(edge.ndeath());
    let offline: Vec<MachineStatus> = out
        .iter()
        .filter(|o| o.kind == OutKind::Status)
        .map(|o| from_json(&o.payload).unwrap())
        .collect();
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0].state, Presence::Offline);
    let out = run((
        "spBv1.0/plant/DDATA/line/p1".into(),
        b"{not protobuf".to_vec(),
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, OutKind::DeadLetter("not_protobuf"));
}
