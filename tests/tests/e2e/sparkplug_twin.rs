//! `dtwin twin --protocol sparkplug` end to end (issue 18 item 4): the twin publishes its
//! fleet as Sparkplug B edge nodes (one per connection, a device per machine) on the embedded
//! broker; the Sparkplug host, the feature service and the inference service turn them into
//! milling verdicts for machines `dtwin.twin-{k}.machine-00{i}`. The births name the milling
//! metrics with aliases, data goes by alias, a `Node Control/Rebirth` NCMD gets the births
//! again (with the last values) and data goes on; a clean stop publishes the NDEATH, and the
//! host takes the machines offline. Every message on `dtwin/v1/#` validates against the
//! contract. A link lost under the twin (a proxy drops its sockets) gets the old connection's
//! NDEATH from the broker and a new connection with the next `bdSeq`.

use clap::Parser;
use dtwin::cli::{Cli, Command};
use dtwin_bus::QoS;
use dtwin_schema::{from_json, Features, MachineStatus, Presence, Risk};
use dtwin_sparkplug::{decode_payload, rebirth_request, MetricValue, Payload};
use dtwin_tests::harness::{self, Recorder};
use dtwin_twin_publisher::sparkplug::METRICS;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Machine `i` of the three runs on connection `i % 2`.
const MACHINES: [&str; 3] = [
    "dtwin.twin-0.machine-001",
    "dtwin.twin-1.machine-002",
    "dtwin.twin-0.machine-003",
];

fn payloads(recorder: &Recorder, topic: &str) -> Vec<Payload> {
    recorder
        .all()
        .iter()
        .filter(|m| m.topic == topic)
        .map(|m| decode_payload(&m.payload).unwrap())
        .collect()
}

async fn wait_risk(recorder: &Recorder, machine: &str, after_ms: u64) -> Risk {
    let topic = format!("dtwin/v1/machines/{machine}/risk");
    let m = recorder
        .wait_for(Duration::from_secs(30), |m| {
            m.topic == topic
                && from_json::<Risk>(&m.payload).is_ok_and(|r| {
                    (r.source_ts.unix_timestamp_nanos() / 1_000_000) as u64 > after_ms
                })
        })
        .await
        .unwrap_or_else(|| panic!("a verdict for {machine} on a reading after {after_ms}"));
    from_json(&m.payload).unwrap()
}

async fn wait_status(recorder: &Recorder, machine: &str, state: Presence) {
    let topic = format!("dtwin/v1/machines/{machine}/status");
    recorder
        .wait_for(Duration::from_secs(20), |m| {
            m.topic == topic
                && from_json::<MachineStatus>(&m.payload).is_ok_and(|s| s.state == state)
        })
        .await
        .unwrap_or_else(|| panic!("{machine} {state:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_twin_over_sparkplug_gets_milling_verdicts_and_honours_rebirth() {
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let edge_side = Recorder::start(&broker, "spBv1.0/#").await;
    let host = dtwin_sparkplug_host::SparkplugHostConfig::new(broker.clone());
    let feature = dtwin_feature::FeatureConfig::new(broker.clone());
    let [feature, inference] = harness::start_scoring(feature, &stop).await;
    let host = harness::start(
        dtwin_sparkplug_host::SparkplugHostService::build(host)
            .await
            .unwrap(),
        &stop,
    )
    .await;

    let url = broker.to_string();
    let argv = [
        "dtwin",
        "twin",
        "--broker",
        &url,
        "--protocol",
        "sparkplug",
        "--machines",
        "3",
        "--connections",
        "2",
        "--rate",
        "10",
        "--accel",
        "60",
    ];
    let Command::Twin(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let config = args.config().unwrap();
    assert_eq!(config.protocol, dtwin_twin_publisher::Protocol::Sparkplug);
    let stop_twin = CancellationToken::new();
    let twin = harness::start(
        dtwin_twin_publisher::TwinService::build(config)
            .await
            .unwrap(),
        &stop_twin,
    )
    .await;

    // Verdicts for every machine, under the milling profile the births' metric names pick.
    let t0 = harness::now_ms();
    for machine in MACHINES {
        wait_status(&recorder, machine, Presence::Online).await;
        let risk = wait_risk(&recorder, machine, 0).await;
        assert_eq!(risk.machine_id.as_str(), machine);
        assert!((0.0..=1.0).contains(&risk.probability), "{risk:?}");
    }
    let vectors: Vec<Features> = recorder
        .all()
        .iter()
        .filter(|m| m.topic == format!("dtwin/v1/machines/{}/features", MACHINES[0]))
        .map(|m| from_json(&m.payload).unwrap())
        .collect();
    assert!(!vectors.is_empty());
    assert!(
        vectors
            .iter()
            .all(|f| f.latest.contains_key("tool_wear_min") && f.latest.contains_key("torque_nm")),
        "milling sensors: {:?}",
        vectors[0].latest
    );

    // Births: an NBIRTH per node with bdSeq 0, DBIRTHs naming the milling metrics with
    // aliases 1..=7; data by alias only.
    for node in ["twin-0", "twin-1"] {
        let nbirth = &payloads(&edge_side, &format!("spBv1.0/dtwin/NBIRTH/{node}"))[0];
        assert_eq!(nbirth.seq, Some(0));
        assert_eq!(nbirth.metrics[0].name.as_deref(), Some("bdSeq"));
        assert_eq!(nbirth.metrics[0].value, Some(MetricValue::LongValue(0)));
    }
    let dbirth = &payloads(&edge_side, "spBv1.0/dtwin/DBIRTH/twin-1/machine-002")[0];
    let named: Vec<(Option<&str>, Option<u64>)> = dbirth
        .metrics
        .iter()
        .map(|m| (m.name.as_deref(), m.alias))
        .collect();
    let want: Vec<(Option<&str>, Option<u64>)> = METRICS
        .iter()
        .enumerate()
        .map(|(i, n)| (Some(*n), Some(i as u64 + 1)))
        .collect();
    assert_eq!(named, want);
    let data = payloads(&edge_side, "spBv1.0/dtwin/DDATA/twin-1/machine-002");
    assert!(!data.is_empty(), "the verdicts came from DDATA");
    assert!(data
        .iter()
        .flat_map(|p| &p.metrics)
        .all(|m| m.name.is_none() && m.alias.is_some_and(|a| (1..=7).contains(&a))));
    // One node's messages carry consecutive seqs (mod 256).
    let seqs: Vec<u64> = edge_side
        .all()
        .iter()
        .filter(|m| m.topic.starts_with("spBv1.0/dtwin/D") && m.topic.contains("/twin-1/"))
        .map(|m| decode_payload(&m.payload).unwrap().seq.unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == (w[0] + 1) % 256),
        "{seqs:?}"
    );

    // A rebirth request to twin-1: its births again, the DBIRTH with the last values, and
    // verdicts on later readings.
    let asked = harness::now_ms();
    edge_side
        .client()
        .publish(
            "spBv1.0/dtwin/NCMD/twin-1",
            QoS::AtLeastOnce,
            false,
            rebirth_request(asked),
        )
        .await
        .unwrap();
    let stamped_after = |topic: &'static str| {
        move |m: &dtwin_bus::Message| {
            m.topic == topic && decode_payload(&m.payload).is_ok_and(|p| p.timestamp >= Some(asked))
        }
    };
    let nbirth = edge_side
        .wait_for(
            Duration::from_secs(10),
            stamped_after("spBv1.0/dtwin/NBIRTH/twin-1"),
        )
        .await
        .expect("twin-1 births again");
    let nbirth = decode_payload(&nbirth.payload).unwrap();
    assert_eq!(nbirth.seq, Some(0));
    assert_eq!(
        nbirth.metrics[0].value,
        Some(MetricValue::LongValue(0)),
        "the same connection keeps its bdSeq"
    );
    assert_eq!(
        payloads(&edge_side, "spBv1.0/dtwin/NBIRTH/twin-0").len(),
        1,
        "only the node asked births again"
    );
    let again = edge_side
        .wait_for(
            Duration::from_secs(10),
            stamped_after("spBv1.0/dtwin/DBIRTH/twin-1/machine-002"),
        )
        .await
        .expect("machine-002 births again");
    let again = decode_payload(&again.payload).unwrap();
    assert!(
        again.metrics.iter().filter(|m| m.value.is_some()).count() >= 6,
        "the rebirth carries the last values: {again:?}"
    );
    assert!(asked >= t0);
    let risk = wait_risk(&recorder, MACHINES[1], asked).await;
    assert_eq!(risk.machine_id.as_str(), MACHINES[1]);
    assert!(
        recorder
            .all()
            .iter()
            .all(|m| m.topic != "dtwin/v1/deadletter/sparkplug"),
        "no Sparkplug dead letters"
    );

    // A clean stop: the NDEATHs, and the host takes the machines offline.
    stop_twin.cancel();
    twin.await.unwrap().unwrap();
    for node in ["twin-0", "twin-1"] {
        let topic = format!("spBv1.0/dtwin/NDEATH/{node}");
        let death = edge_side
            .wait_for(Duration::from_secs(10), |m| m.topic == topic)
            .await
            .unwrap_or_else(|| panic!("{topic}"));
        let death = decode_payload(&death.payload).unwrap();
        assert_eq!(death.metrics[0].value, Some(MetricValue::LongValue(0)));
    }
    for machine in MACHINES {
        wait_status(&recorder, machine, Presence::Offline).await;
    }

    recorder.assert_contract();
    stop.cancel();
    for s in [feature, inference, host] {
        s.await.unwrap().unwrap();
    }
}

/// A TCP proxy to the broker at `broker_port` that drops every open connection (without an
/// MQTT DISCONNECT, as a lost link does) each time `cut` changes. Returns its port.
async fn cutting_proxy(broker_port: u16, cut: tokio::sync::watch::Receiver<u64>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut cut = cut.clone();
            cut.borrow_and_update();
            tokio::spawn(async move {
                let Ok(mut outbound) =
                    tokio::net::TcpStream::connect(("127.0.0.1", broker_port)).await
                else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut.changed() => {}
                }
            });
        }
    });
    port
}

/// A lost link: the broker publishes the old connection's NDEATH (its will, bdSeq 0), and
/// the twin's edge node comes back on a new connection with bdSeq 1 and births again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_link_gets_the_will_and_a_new_connection_the_next_bd_seq() {
    let broker = harness::embedded_broker();
    let edge_side = Recorder::start(&broker, "spBv1.0/#").await;
    let (cut, cuts) = tokio::sync::watch::channel(0u64);
    let proxy = cutting_proxy(broker.port, cuts).await;
    let mut config =
        dtwin_twin_publisher::TwinConfig::new(dtwin_bus::BrokerUrl::new("127.0.0.1", proxy));
    config.machines = 2;
    config.rate_hz = 10.0;
    config.protocol = dtwin_twin_publisher::Protocol::Sparkplug;
    let stop = CancellationToken::new();
    let twin = harness::start(
        dtwin_twin_publisher::TwinService::build(config)
            .await
            .unwrap(),
        &stop,
    )
    .await;
    let bd_seq_of = |m: &dtwin_bus::Message| match decode_payload(&m.payload) {
        Ok(p) => p.metrics.first().and_then(|x| x.value.clone()),
        Err(_) => None,
    };
    let first = edge_side
        .wait_for(Duration::from_secs(10), |m| {
            m.topic == "spBv1.0/dtwin/DDATA/twin-0/machine-002"
        })
        .await
        .expect("data on the first connection");
    assert!(first.payload.len() > 10);
    let birth = edge_side
        .wait_for(Duration::from_secs(1), |m| {
            m.topic == "spBv1.0/dtwin/NBIRTH/twin-0"
        })
        .await
        .unwrap();
    assert_eq!(bd_seq_of(&birth), Some(MetricValue::LongValue(0)));

    cut.send_replace(1);
    let will = edge_side
        .wait_for(Duration::from_secs(20), |m| {
            m.topic == "spBv1.0/dtwin/NDEATH/twin-0"
        })
        .await
        .expect("the broker publishes the lost connection's NDEATH");
    assert_eq!(bd_seq_of(&will), Some(MetricValue::LongValue(0)));
    assert!(!will.retain, "an NDEATH is not retained");
    let reborn = edge_side
        .wait_for(Duration::from_secs(20), |m| {
            m.topic == "spBv1.0/dtwin/NBIRTH/twin-0"
                && bd_seq_of(m) == Some(MetricValue::LongValue(1))
        })
        .await
        .expect("a birth with the next bdSeq");
    assert_eq!(decode_payload(&reborn.payload).unwrap().seq, Some(0));
    let births_before = edge_side
        .all()
        .iter()
        .filter(|m| m.topic == "spBv1.0/dtwin/DBIRTH/twin-0/machine-002")
        .count();
    assert!(births_before >= 2, "machine-002 born on both connections");

    stop.cancel();
    twin.await.unwrap().unwrap();
}
