//! One test per rule of `HostState::handle`, driven through the public API with messages
//! built by `EdgeNode`.

use dtwin_sparkplug::{
    by_alias, encode_payload, rebirth_request, Action, DataType, DeadLetterReason, EdgeNode,
    EdgeNodeId, HostConfig, HostState, Metric, MetricValue, Payload, RebirthReason,
};

const T0: u64 = 1_700_000_000_000;

fn node() -> EdgeNodeId {
    EdgeNodeId::new("plant1", "line4")
}

fn press_birth() -> Vec<Metric> {
    vec![
        Metric::named("Device Control/Rebirth", Some(0), DataType::Boolean)
            .with_value(MetricValue::BooleanValue(false)),
        Metric::named("temperature", Some(1), DataType::Double)
            .with_value(MetricValue::DoubleValue(20.5)),
        Metric::named("running", Some(2), DataType::Boolean)
            .with_value(MetricValue::BooleanValue(true)),
        Metric::named("offset", Some(3), DataType::Int8).with_value(MetricValue::IntValue(5)),
        Metric::named("label", Some(4), DataType::String)
            .with_value(MetricValue::StringValue("A".into())),
    ]
}

fn node_birth() -> Vec<Metric> {
    vec![
        Metric::named("Node Control/Rebirth", Some(100), DataType::Boolean)
            .with_value(MetricValue::BooleanValue(false)),
    ]
}

/// A host with one born node (no data metrics) and its device `press` born.
fn born() -> (HostState, EdgeNode) {
    let mut host = HostState::new(HostConfig::default());
    let mut edge = EdgeNode::new(node(), 0);
    let (t, p) = edge.nbirth(&node_birth(), T0);
    assert_eq!(host.handle(&t, &p, T0), vec![]);
    let (t, p) = edge.dbirth("press", &press_birth(), T0);
    host.handle(&t, &p, T0);
    (host, edge)
}

fn machine(device: &str) -> dtwin_schema::MachineId {
    node().machine_id(Some(device))
}

/// A reading as (machine, ts, seq, values, historical).
type Seen = (String, u64, u8, Vec<(String, f64)>, bool);

fn readings(actions: &[Action]) -> Vec<Seen> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Reading {
                machine,
                ts,
                seq,
                values,
                historical,
            } => Some((machine.to_string(), *ts, *seq, values.clone(), *historical)),
            _ => None,
        })
        .collect()
}

fn dead(actions: &[Action]) -> Vec<DeadLetterReason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::DeadLetter { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn rebirths(actions: &[Action]) -> Vec<RebirthReason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Rebirth { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn vals(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect()
}

#[test]
fn dbirth_announces_the_machine_and_its_values() {
    let mut host = HostState::new(HostConfig::default());
    let mut edge = EdgeNode::new(node(), 0);
    let (t, p) = edge.nbirth(&node_birth(), T0);
    assert_eq!(
        host.handle(&t, &p, T0),
        vec![],
        "a node without data metrics is no machine"
    );
    let (t, p) = edge.dbirth("press", &press_birth(), T0 + 1);
    let actions = host.handle(&t, &p, T0 + 2);
    let m = machine("press");
    assert_eq!(m.as_str(), "plant1.line4.press");
    assert_eq!(
        actions,
        vec![
            Action::Birth {
                machine: m.clone(),
                metrics: vec![
                    ("temperature".into(), DataType::Double),
                    ("running".into(), DataType::Boolean),
                    ("offset".into(), DataType::Int8),
                    ("label".into(), DataType::String),
                ],
            },
            Action::Online { machine: m.clone() },
            Action::Reading {
                machine: m,
                ts: T0 + 1,
                seq: 1,
                values: vals(&[("temperature", 20.5), ("running", 1.0), ("offset", 5.0)]),
                historical: false,
            },
        ]
    );
}

#[test]
fn data_by_alias_is_resolved_through_the_birth() {
    let (mut host, mut edge) = born();
    let (t, p) = edge.ddata(
        "press",
        &[
            by_alias(1, MetricValue::DoubleValue(21.25)),
            by_alias(2, MetricValue::BooleanValue(false)),
            // Int8 -3: sign-extended (Tahu Java) and 2^8 + v (other clients) agree.
            by_alias(3, MetricValue::IntValue(u32::MAX - 2)),
            by_alias(4, MetricValue::StringValue("B".into())),
        ],
        T0 + 10,
    );
    let actions = host.handle(&t, &p, T0 + 20);
    assert_eq!(
        readings(&actions),
        vec![(
            "plant1.line4.press".into(),
            T0 + 10,
            2,
            vals(&[("temperature", 21.25), ("running", 0.0), ("offset", -3.0)]),
            false
        )]
    );
    let (t, p) = edge.ddata("press", &[by_alias(3, MetricValue::IntValue(253))], T0 + 11);
    assert_eq!(
        readings(&host.handle(&t, &p, T0))[0].3,
        vals(&[("offset", -3.0)])
    );
    // By name works too.
    let m = Metric::named("temperature", None, DataType::Double)
        .with_value(MetricValue::DoubleValue(1.0));
    let (t, p) = edge.ddata("press", &[m], T0 + 12);
    assert_eq!(
        readings(&host.handle(&t, &p, T0))[0].3,
        vals(&[("temperature", 1.0)])
    );
}

#[test]
fn node_metrics_make_the_node_a_machine() {
    let mut host = HostState::new(HostConfig::default());
    let mut edge = EdgeNode::new(node(), 3);
    let birth = [Metric::named("cpu", Some(7), DataType::Float)];
    let (t, p) = edge.nbirth(&birth, T0);
    let actions = host.handle(&t, &p, T0);
    let m = node().machine_id(None);
    assert_eq!(
        actions,
        vec![
            Action::Birth {
                machine: m.clone(),
                metrics: vec![("cpu".into(), DataType::Float)]
            },
            Action::Online { machine: m.clone() },
        ]
    );
    let (t, p) = edge.ndata(&[by_alias(7, MetricValue::FloatValue(0.5))], T0 + 5);
    assert_eq!(
        readings(&host.handle(&t, &p, T0)),
        vec![(
            "plant1.line4".into(),
            T0 + 5,
            1,
            vals(&[("cpu", 0.5)]),
            false
        )]
    );
    let (t, p) = edge.ndeath();
    assert_eq!(
        host.handle(&t, &p, T0),
        vec![Action::Offline { machine: m }]
    );
}

#[test]
fn seq_wraps_after_255() {
    let (mut host, mut edge) = born();
    for i in 0..600u64 {
        let (t, p) = edge.ddata(
            "press",
            &[by_alias(1, MetricValue::DoubleValue(1.0))],
            T0 + i,
        );
        let actions = host.handle(&t, &p, T0 + i);
        assert_eq!(readings(&actions).len(), 1, "message {i}: {actions:?}");
    }
}

#[test]
fn a_seq_gap_drops_until_rebirth_and_asks_once() {
    let (mut host, mut edge) = born();
    edge.skip(3);
    let (t, p) = edge.ddata("press", &[by_alias(1, MetricValue::DoubleValue(1.0))], T0);
    let actions = host.handle(&t, &p, T0);
    assert_eq!(dead(&actions), vec![DeadLetterReason::SeqGap]);
    assert_eq!(
        rebirths(&actions),
        vec![RebirthReason::SeqGap {
            expected: 2,
            got: 5
        }]
    );
    assert!(readings(&actions).is_empty());
    assert!(host.is_awaiting_rebirth(&node()));

    // In sequence again, but still dropped until the NBIRTH; asked again only after the
    // interval.
    let (t, p) = edge.ddata("press", &[by_alias(1, MetricValue::DoubleValue(1.0))], T0);
    let actions = host.handle(&t, &p, T0 + 1_000);
    assert_eq!(dead(&actions), vec![DeadLetterReason::AwaitingRebirth]);
    assert!(rebirths(&actions).is_empty());
    let (t, p) = edge.ddata("press", &[by_alias(1, MetricValue::DoubleValue(1.0))], T0);
    let actions = host.handle(&t, &p, T0 + 5_000);
    assert_eq!(rebirths(&actions), vec![RebirthReason::StillWaiting]);

    // The rebirth: the device is born again without going offline in between.
    let (t, p) = edge.nbirth(&node_birth(), T0 + 6_000);
    assert_eq!(host.handle(&t, &p, T0 + 6_000), vec![]);
    assert!(!host.is_awaiting_rebirth(&node()));
    let (t, p) = edge.dbirth("press", &press_birth(), T0 + 6_001);
    let actions = host.handle(&t, &p, T0 + 6_001);
    assert!(matches!(actions[0], Action::Birth { .. }));
    assert!(!actions.iter().any(|a| matches!(a, Action::Online { .. })));
    let (t, p) = edge.ddata(
        "press",
        &[by_alias(1, MetricValue::DoubleValue(2.0))],
        T0 + 6_002,
    );
    assert_eq!(readings(&host.handle(&t, &p, T0 + 6_002)).len(), 1);
}

#[test]
fn an_unknown_alias_asks_for_a_rebirth() {
    let (mut host, mut edge) = born();
    let (t, p) = edge.ddata(
        "press",
        &[
            by_alias(1, MetricValue::DoubleValue(1.0)),
            by_alias(99, MetricValue::DoubleValue(1.0)),
        ],
        T0,
    );
    let actions = host.handle(&t, &p, T0);
    assert_eq!(dead(&actions), vec![DeadLetterReason::UnknownAlias]);
    assert_eq!(rebirths(&actions), vec![RebirthReason::UnknownAlias(99)]);
    assert!(readings(&actions).is_empty());
    assert!(host.is_awaiting_rebirth(&node()));
}

#[test]
fn data_before_birth_asks_for_a_rebirth_at_a_limited_rate() {
    let mut host = HostState::new(HostConfig::default());
    let mut edge = EdgeNode::new(node(), 0);
    edge.skip(10);
    let mut asked = 0;
    for i in 0..100u64 {
        let (t, p) = edge.ddata("press", &[by_alias(1, MetricValue::DoubleValue(1.0))], T0);
        let actions = host.handle(&t, &p, T0 + i * 100);
        assert_eq!(dead(&actions), vec![DeadLetterReason::NoBirth]);
        assert!(readings(&actions).is_empty());
        asked += rebirths(&actions).len();
    }
    // 10 s of messages, one request per 5 s.
    assert_eq!(asked, 2);

    // A device that sends DDATA without its DBIRTH, on a born node.
    let (mut host, mut edge) = born();
    let (t, p) = edge.ddata("drill", &[by_alias(1, MetricValue::DoubleValue(1.0))], T0);
    let actions = host.handle(&t, &p, T0);
    assert_eq!(dead(&actions), vec![DeadLetterReason::NoBirth]);
    assert_eq!(rebirths(&actions), vec![RebirthReason::NoBirth]);
}

#[test]
fn ndeath_matched_by_bd_seq_takes_the_machines_offline() {
    let (mut host, mut edge) = born();
    let (t, p) = edge.dbirth("drill", &press_birth(), T0);
    host.handle(&t, &p, T0);
    let (t, p) = edge.ndeath();
    assert_eq!(
        host.handle(&t, &p, T0),
        vec![
            Action::Offline {
                machine: machine("drill")
            },
            Action::Offline {
                machine: machine("press")
            },
        ]
    );
    assert!(!host.is_node_born(&node()));
    let (t, p) = edge.ddata("press", &[by_alias(1, MetricValue::DoubleValue(1.0))], T0);
    let actions = host.handle(&t, &p, T0);
    assert!(readings(&actions).is_empty());
    assert_eq!(dead(&actions), vec![DeadLetterReason::NoBirth]);
}

#[test]
fn a_stale_ndeath_is_ignored_and_reported() {
    let (mut host, old) = born();
    // The node reconnects (bdSeq 1) before its old will arrives.
    let mut edge = EdgeNode::new(node(), 1);
    let (t, p) = edge.nbirth(&node_birth(), T0 + 100);
    assert_eq!(host.handle(&t, &p, T0 + 100), vec![]);
    let (t, p) = edge.dbirth("press", &press_birth(), T0 + 101);
    host.handle(&t, &p, T0 + 101);
    let (t, p) = old.ndeath();
    let actions = host.handle(&t, &p, T0 + 200);
    assert_eq!(dead(&actions), vec![DeadLetterReason::StaleDeath]);
    assert_eq!(actions.len(), 1);
    assert!(host.is_node_born(&node()));
    let (t, p) = edge.ddata("press", &[by_alias(1, MetricValue::DoubleValue(1.0))], T0);
    assert_eq!(readings(&host.handle(&t, &p, T0)).len(), 1);

    // An NDEATH for a node never seen, and one without bdSeq.
    let mut host = HostState::new(HostConfig::default());
    let (t, p) = old.ndeath();
    assert_eq!(
        dead(&host.handle(&t, &p, T0)),
        vec![DeadLetterReason::StaleDeath]
    );
    let p = encode_payload(&Payload::default());
    assert_eq!(
        dead(&host.handle(&t, &p, T0)),
        vec![DeadLetterReason::BadDeath]
    );
}

#[test]
fn a_replayed_nbirth_is_refused_but_a_restart_with_the_same_bd_seq_is_not() {
    let mut host = HostState::new(HostConfig::default());
    let mut edge = EdgeNode::new(node(), 7);
    let (bt, bp) = edge.nbirth(&node_birth(), T0);
    host.handle(&bt, &bp, T0);
    let (t, p) = edge.ndeath();
    host.handle(&t, &p, T0 + 10);
    // The old NBIRTH again.
    let actions = host.handle(&bt, &bp, T0 + 20);
    assert_eq!(dead(&actions), vec![DeadLetterReason::ReplayedBdSeq]);
    assert!(!host.is_node_born(&node()));
    // A node that does not persist bdSeq restarts with the same one, later.
    let mut edge = EdgeNode::new(node(), 7);
    let (t, p) = edge.nbirth(&node_birth(), T0 + 30);
    assert_eq!(host.handle(&t, &p, T0 + 30), vec![]);
    assert!(host.is_node_born(&node()));
    // The old NBIRTH while the new session lives: older than its birth.
    let actions = host.handle(&bt, &bp, T0 + 40);
    assert_eq!(dead(&actions), vec![DeadLetterReason::ReplayedBdSeq]);
    let (t, p) = edge.ndata(&[], T0 + 50);
    assert!(
        dead(&host.handle(&t, &p, T0 + 50)).is_empty(),
        "session untouched"
    );

    // A copy of the current birth (an MQTT redelivery, say) does not reset seq; a rebirth
    // (same bdSeq, newer timestamp) does.
    let (ct, cp) = edge.nbirth(&node_birth(), T0 + 60);
    assert!(dead(&host.handle(&ct, &cp, T0 + 60)).is_empty());
    let (t, p) = edge.ndata(&[], T0 + 61);
    host.handle(&t, &p, T0 + 61);
    assert_eq!(
        dead(&host.handle(&ct, &cp, T0 + 62)),
        vec![DeadLetterReason::ReplayedBdSeq]
    );
    let (t, p) = edge.ndata(&[], T0 + 63);
    assert!(
        dead(&host.handle(&t, &p, T0 + 63)).is_empty(),
        "seq 2 still expected"
    );
}

#[test]
fn bad_bytes_and_topics_are_dead_letters_commands_and_state_are_ignored() {
    let mut host = HostState::new(HostConfig::default());
    let actions = host.handle("spBv1.0/g/NDATA/e", b"\xff\xff\xff\xff", T0);
    assert_eq!(dead(&actions), vec![DeadLetterReason::NotProtobuf]);
    let actions = host.handle("spBv1.0/g/NBORN/e", b"", T0);
    assert_eq!(dead(&actions), vec![DeadLetterReason::BadTopic]);
    assert_eq!(
        host.handle("spBv1.0/g/NCMD/e", &rebirth_request(T0), T0),
        vec![]
    );
    assert_eq!(host.handle("spBv1.0/g/DCMD/e/d", b"\xff", T0), vec![]);
    assert_eq!(
        host.handle(
            "spBv1.0/STATE/other",
            br#"{"online":true,"timestamp":1}"#,
            T0
        ),
        vec![]
    );
    assert_eq!(host.node_count(), 0);
}

#[test]
fn a_message_without_seq_is_a_dead_letter() {
    let (mut host, _) = born();
    let p = encode_payload(&Payload {
        metrics: vec![by_alias(1, MetricValue::DoubleValue(1.0))],
        ..Payload::default()
    });
    let actions = host.handle("spBv1.0/plant1/DDATA/line4/press", &p, T0);
    assert_eq!(dead(&actions), vec![DeadLetterReason::BadSeq]);
    let p = encode_payload(&Payload {
        seq: Some(256),
        ..Payload::default()
    });
    let actions = host.handle("spBv1.0/plant1/DDATA/line4/press", &p, T0);
    assert_eq!(dead(&actions), vec![DeadLetterReason::BadSeq]);
}

#[test]
fn wrong_datatypes_and_unknown_names_are_dead_letters_the_rest_counts() {
    let (mut host, mut edge) = born();
    let (t, p) = edge.ddata(
        "press",
        &[
            by_alias(1, MetricValue::IntValue(3)), // Double in the birth
            Metric {
                datatype: Some(DataType::Float.as_u32()),
                ..by_alias(1, MetricValue::DoubleValue(3.0))
            },
            Metric::named("pressure", None, DataType::Double)
                .with_value(MetricValue::DoubleValue(1.0)),
            by_alias(2, MetricValue::BooleanValue(true)),
            by_alias(1, MetricValue::DoubleValue(f64::NAN)),
            Metric::default(),
        ],
        T0,
    );
    let actions = host.handle(&t, &p, T0);
    assert_eq!(
        dead(&actions),
        vec![
            DeadLetterReason::WrongDatatype,
            DeadLetterReason::WrongDatatype,
            DeadLetterReason::NotInBirth,
            DeadLetterReason::NotFinite,
            DeadLetterReason::NotInBirth,
        ]
    );
    assert_eq!(readings(&actions)[0].3, vals(&[("running", 1.0)]));
    assert!(rebirths(&actions).is_empty());
}

#[test]
fn null_and_valueless_metrics_are_skipped() {
    let (mut host, mut edge) = born();
    let (t, p) = edge.ddata(
        "press",
        &[
            Metric {
                is_null: Some(true),
                ..by_alias(1, MetricValue::DoubleValue(0.0))
            },
            Metric {
                alias: Some(2),
                ..Metric::default()
            },
        ],
        T0,
    );
    assert_eq!(host.handle(&t, &p, T0), vec![]);
}

#[test]
fn historical_metrics_come_first_in_timestamp_order_and_flagged() {
    let (mut host, mut edge) = born();
    let hist = |ts: u64, v: f64| Metric {
        timestamp: Some(ts),
        is_historical: Some(true),
        ..by_alias(1, MetricValue::DoubleValue(v))
    };
    let (t, p) = edge.ddata(
        "press",
        &[
            by_alias(1, MetricValue::DoubleValue(9.0)),
            hist(T0 - 2_000, 2.0),
            hist(T0 - 3_000, 1.0),
            by_alias(2, MetricValue::BooleanValue(true)),
        ],
        T0,
    );
    let r = readings(&host.handle(&t, &p, T0 + 5));
    let m = "plant1.line4.press".to_owned();
    assert_eq!(
        r,
        vec![
            (
                m.clone(),
                T0 - 3_000,
                2,
                vals(&[("temperature", 1.0)]),
                true
            ),
            (
                m.clone(),
                T0 - 2_000,
                2,
                vals(&[("temperature", 2.0)]),
                true
            ),
            (
                m,
                T0,
                2,
                vals(&[("temperature", 9.0), ("running", 1.0)]),
                false
            ),
        ]
    );
}

#[test]
fn a_birth_with_too_many_metrics_is_refused_and_not_asked_again() {
    let mut host = HostState::new(HostConfig::default());
    let mut edge = EdgeNode::new(node(), 0);
    let many: Vec<Metric> = (0..10_000)
        .map(|i| Metric::named(&format!("m{i}"), Some(i), DataType::Double))
        .collect();
    // 10,000 plus bdSeq.
    let (t, p) = edge.nbirth(&many, T0);
    let actions = host.handle(&t, &p, T0);
    assert_eq!(dead(&actions), vec![DeadLetterReason::TooManyMetrics]);
    assert!(!host.is_node_born(&node()));
    let (t, p) = edge.ndata(&[by_alias(1, MetricValue::DoubleValue(1.0))], T0);
    let actions = host.handle(&t, &p, T0 + 60_000);
    assert_eq!(dead(&actions), vec![DeadLetterReason::NoBirth]);
    assert!(
        rebirths(&actions).is_empty(),
        "the same birth would come back"
    );

    // A DBIRTH that is too large: the device is not born, the node is fine.
    let (mut host, mut edge) = born();
    let (t, p) = edge.dbirth("big", &many, T0);
    assert!(
        dead(&host.handle(&t, &p, T0)).is_empty(),
        "10,000 is within the bound"
    );
    assert!(host.birth(&node(), Some("big")).is_some());
    let many: Vec<Metric> = (0..10_001)
        .map(|i| Metric::named(&format!("m{i}"), Some(i), DataType::Double))
        .collect();
    let (t, p) = edge.dbirth("bigger", &many, T0);
    assert_eq!(
        dead(&host.handle(&t, &p, T0)),
        vec![DeadLetterReason::TooManyMetrics]
    );
    assert!(host.birth(&node(), Some("bigger")).is_none());
    assert!(host.birth(&node(), Some("press")).is_some());
}

#[test]
fn malformed_births_are_refused() {
    let cases: Vec<(&str, Vec<Metric>)> = vec![
        (
            "duplicate alias",
            vec![
                Metric::named("a", Some(1), DataType::Double),
                Metric::named("b", Some(1), DataType::Double),
            ],
        ),
        (
            "duplicate name",
            vec![
                Metric::named("a", Some(1), DataType::Double),
                Metric::named("a", Some(2), DataType::Double),
            ],
        ),
        ("no name", vec![by_alias(1, MetricValue::DoubleValue(1.0))]),
        (
            "no datatype",
            vec![Metric {
                datatype: None,
                ..Metric::named("a", Some(1), DataType::Double)
            }],
        ),
    ];
    for (what, metrics) in cases {
        let (mut host, mut edge) = born();
        let (t, p) = edge.dbirth("press", &metrics, T0);
        let actions = host.handle(&t, &p, T0);
        assert_eq!(dead(&actions), vec![DeadLetterReason::BadBirth], "{what}");
        assert!(
            actions.contains(&Action::Offline {
                machine: machine("press")
            }),
            "{what}: the old birth no longer holds"
        );
    }
    // An NBIRTH without bdSeq.
    let mut host = HostState::new(HostConfig::default());
    let p = encode_payload(&Payload {
        seq: Some(0),
        timestamp: Some(T0),
        ..Payload::default()
    });
    let actions = host.handle("spBv1.0/g/NBIRTH/e", &p, T0);
    assert_eq!(dead(&actions), vec![DeadLetterReason::BadBirth]);
}

#[test]
fn ddeath_takes_one_device_offline() {
    let (mut host, mut edge) = born();
    let (t, p) = edge.ddeath("press", T0);
    assert_eq!(
        host.handle(&t, &p, T0),
        vec![Action::Offline {
            machine: machine("press")
        }]
    );
    let (t, p) = edge.ddeath("press", T0);
    assert_eq!(
        dead(&host.handle(&t, &p, T0)),
        vec![DeadLetterReason::StaleDeath]
    );
    let (t, p) = edge.ddata("press", &[by_alias(1, MetricValue::DoubleValue(1.0))], T0);
    assert_eq!(
        dead(&host.handle(&t, &p, T0)),
        vec![DeadLetterReason::NoBirth]
    );
}

#[test]
fn node_and_device_counts_are_bounded() {
    let config = HostConfig {
        max_nodes: 2,
        max_devices_per_node: 1,
        ..HostConfig::default()
    };
    let mut host = HostState::new(config);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let mut edge = EdgeNode::new(EdgeNodeId::new("g", name), 0);
        let (t, p) = edge.nbirth(&[], T0);
        let actions = host.handle(&t, &p, T0);
        if i < 2 {
            assert!(actions.is_empty());
        } else {
            assert_eq!(dead(&actions), vec![DeadLetterReason::TooManyNodes]);
        }
    }
    assert_eq!(host.node_count(), 2);
    let mut edge = EdgeNode::new(EdgeNodeId::new("g", "a"), 1);
    let (t, p) = edge.nbirth(&[], T0 + 1);
    host.handle(&t, &p, T0 + 1);
    let (t, p) = edge.dbirth("d1", &press_birth(), T0);
    assert!(dead(&host.handle(&t, &p, T0)).is_empty());
    let (t, p) = edge.dbirth("d2", &press_birth(), T0);
    assert_eq!(
        dead(&host.handle(&t, &p, T0)),
        vec![DeadLetterReason::TooManyNodes]
    );
}

#[test]
fn timestamps_fall_back_to_the_payload_then_the_clock() {
    let (mut host, edge) = born();
    let t = "spBv1.0/plant1/DDATA/line4/press";
    let p = encode_payload(&Payload {
        seq: Some(u64::from(edge.seq())),
        metrics: vec![by_alias(1, MetricValue::DoubleValue(1.0))],
        ..Payload::default()
    });
    assert_eq!(readings(&host.handle(t, &p, T0 + 42))[0].1, T0 + 42);
}

#[test]
fn after_a_rebirth_devices_that_do_not_come_back_go_offline_at_the_first_data() {
    let (mut host, mut edge) = born();
    let (t, p) = edge.dbirth("drill", &press_birth(), T0);
    host.handle(&t, &p, T0);
    let (t, p) = edge.nbirth(&node_birth(), T0 + 10);
    assert_eq!(host.handle(&t, &p, T0 + 10), vec![]);
    let (t, p) = edge.dbirth("press", &press_birth(), T0 + 11);
    let actions = host.handle(&t, &p, T0 + 11);
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::Online { .. } | Action::Offline { .. })));
    // The DBIRTHs are over: drill did not send one.
    let (t, p) = edge.ddata(
        "press",
        &[by_alias(1, MetricValue::DoubleValue(1.0))],
        T0 + 12,
    );
    let actions = host.handle(&t, &p, T0 + 12);
    assert_eq!(
        actions[0],
        Action::Offline {
            machine: machine("drill")
        }
    );
    assert_eq!(readings(&actions).len(), 1);
    // Drill comes back later: online again.
    let (t, p) = edge.dbirth("drill", &press_birth(), T0 + 13);
    assert!(host.handle(&t, &p, T0 + 13).contains(&Action::Online {
        machine: machine("drill")
    }));
    // A refused NBIRTH takes every device offline.
    let p = encode_payload(&Payload {
        seq: Some(0),
        timestamp: Some(T0 + 14),
        ..Payload::default()
    });
    let actions = host.handle("spBv1.0/plant1/NBIRTH/line4", &p, T0 + 14);
    assert_eq!(dead(&actions), vec![DeadLetterReason::BadBirth]);
    assert_eq!(
        actions[1..],
        [
            Action::Offline {
                machine: machine("drill")
            },
            Action::Offline {
                machine: machine("press")
            },
        ]
    );
}

#[test]
fn integers_as_tahu_java_and_python_write_them() {
    let mut host = HostState::new(HostConfig::default());
    let mut edge = EdgeNode::new(node(), 0);
    let (t, p) = edge.nbirth(&node_birth(), T0);
    host.handle(&t, &p, T0);
    let types = [
        ("i8", DataType::Int8),
        ("i16", DataType::Int16),
        ("i32", DataType::Int32),
        ("i64", DataType::Int64),
        ("u8", DataType::UInt8),
        ("u16", DataType::UInt16),
        ("u32", DataType::UInt32),
        ("u64", DataType::UInt64),
    ];
    let birth: Vec<Metric> = types
        .iter()
        .enumerate()
        .map(|(i, (n, t))| Metric::named(n, Some(i as u64), *t))
        .collect();
    let (t, p) = edge.dbirth("ints", &birth, T0);
    host.handle(&t, &p, T0);
    let send = |host: &mut HostState, edge: &mut EdgeNode, values: [MetricValue; 8]| {
        let metrics: Vec<Metric> = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| by_alias(i as u64, v))
            .collect();
        let (t, p) = edge.ddata("ints", &metrics, T0);
        let actions = host.handle(&t, &p, T0);
        assert_eq!(dead(&actions), vec![]);
        readings(&actions)[0]
            .3
            .iter()
            .map(|(_, v)| *v)
            .collect::<Vec<f64>>()
    };
    use MetricValue::{IntValue, LongValue};
    let expected = vec![-1.0, -2.0, -3.0, -4.0, 200.0, 60_000.0, 4e9, 1e19];
    // Tahu Java: signed narrow ints sign-extended in int_value, UInt32 in long_value.
    let java = [
        IntValue(-1i32 as u32),
        IntValue(-2i32 as u32),
        IntValue(-3i32 as u32),
        LongValue(-4i64 as u64),
        IntValue(200),
        IntValue(60_000),
        LongValue(4_000_000_000),
        LongValue(10_000_000_000_000_000_000),
    ];
    assert_eq!(send(&mut host, &mut edge, java), expected);
    // Tahu Python: negatives + 2^n, UInt32 in int_value.
    let python = [
        IntValue(255),
        IntValue(65_534),
        IntValue(u32::MAX - 2),
        LongValue(u64::MAX - 3),
        IntValue(200),
        IntValue(60_000),
        IntValue(4_000_000_000),
        LongValue(10_000_000_000_000_000_000),
    ];
    assert_eq!(send(&mut host, &mut edge, python), expected);

    // Out of range for the declared type: wrong datatype, the rest still counts.
    let metrics = [
        by_alias(0, IntValue(300)),
        by_alias(4, IntValue(256)),
        by_alias(6, LongValue(1 << 32)),
        by_alias(2, IntValue(7)),
    ];
    let (t, p) = edge.ddata("ints", &metrics, T0);
    let actions = host.handle(&t, &p, T0);
    assert_eq!(dead(&actions), vec![DeadLetterReason::WrongDatatype; 3]);
    assert_eq!(readings(&actions)[0].3, vals(&[("i32", 7.0)]));
}
