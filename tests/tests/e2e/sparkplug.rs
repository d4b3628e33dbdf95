//! Sparkplug B end to end (issue 18, items 1 and 2): the Sparkplug host, a feature service
//! given a pump profile whose sensor keys are the device's metric names, and an inference
//! service with only the shipped milling model, on the embedded broker. An edge node
//! (`dtwin_sparkplug::EdgeNode`) publishes NBIRTH, a DBIRTH with aliases and DDATA by alias:
//! the device `plant1/line4/pump7` becomes machine `plant1.line4.pump7`, online, with pump
//! feature vectors and rules-only verdicts; the same values sent as v2 JSON for another
//! machine give feature vectors with identical values (one code path). A skipped `seq` gets a
//! `Node Control/Rebirth` NCMD (and the edge node's rebirth is taken), NDEATH takes the
//! machine offline, a payload that is not protobuf is dead-lettered. Every message on
//! `dtwin/v1/#` validates against the contract.

use dtwin_schema::{from_json, DeadLetter, Features, MachineStatus, Presence, RejectReason, Risk};
use dtwin_sparkplug::{
    by_alias, decode_payload, DataType, EdgeNode, EdgeNodeId, HostStateMessage, Metric, MetricValue,
};
use dtwin_tests::harness::{self, Recorder};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MACHINE: &str = "plant1.line4.pump7";
const JSON_MACHINE: &str = "json-pump7";

const PUMP: &str = r#"
id = "pump"
label = "Centrifugal pump"

[[sensor]]
name = "volt"
key = "Motor/Voltage"
unit = "V"
range = [100.0, 300.0]

[[sensor]]
name = "rotate"
key = "Motor/Speed"
unit = "rpm"
range = [0.0, 3000.0]

[[derived]]
name = "volt_per_krpm"
expr = "volt / rotate * 1000"

[windows]
short = 3
long = 6
"#;

/// Voltage and speed of the readings both machines send.
const VALUES: [(f64, i32); 4] = [(120.0, 1500), (121.5, 1490), (119.0, 1510), (120.5, 1500)];

fn features(recorder: &Recorder, machine: &str) -> Vec<Features> {
    let topic = format!("dtwin/v1/machines/{machine}/features");
    recorder
        .all()
        .iter()
        .filter(|m| m.topic == topic)
        .map(|m| from_json(&m.payload).unwrap())
        .collect()
}

fn dead_letters(recorder: &Recorder) -> Vec<DeadLetter> {
    recorder
        .all()
        .iter()
        .filter(|m| m.topic == "dtwin/v1/deadletter/sparkplug")
        .map(|m| from_json(&m.payload).unwrap())
        .collect()
}

async fn wait_features(recorder: &Recorder, machine: &str, n: usize) {
    let topic = format!("dtwin/v1/machines/{machine}/features");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while features(recorder, machine).len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} vectors on {topic}: {:?}",
            features(recorder, machine)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_status(recorder: &Recorder, state: Presence) -> MachineStatus {
    let topic = format!("dtwin/v1/machines/{MACHINE}/status");
    let m = recorder
        .wait_for(Duration::from_secs(10), |m| {
            m.topic == topic
                && from_json::<MachineStatus>(&m.payload).is_ok_and(|s| s.state == state)
        })
        .await
        .unwrap_or_else(|| panic!("{MACHINE} {state:?}"));
    from_json(&m.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparkplug_device_becomes_a_machine_on_the_json_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pump.toml");
    std::fs::write(&file, PUMP).unwrap();
    let profiles = dtwin_feature::load_profiles(&[&file]).unwrap();
    let (names, hash) = dtwin_windows::profile_feature_set(&profiles[0]);

    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let edge_side = Recorder::start(&broker, "spBv1.0/#").await;
    let mut feature = dtwin_feature::FeatureConfig::new(broker.clone());
    feature.profiles.extend(profiles.clone());
    let mut host = dtwin_sparkplug_host::SparkplugHostConfig::new(broker.clone());
    host.profiles = profiles;
    let [feature, inference] = harness::start_scoring(feature, &stop).await;
    let services = [
        feature,
        inference,
        harness::start(
            dtwin_sparkplug_host::SparkplugHostService::build(host)
                .await
                .unwrap(),
            &stop,
        )
        .await,
    ];

    // The host's Sparkplug 3.0 STATE birth, retained.
    let state = edge_side
        .wait_for(Duration::from_secs(10), |m| {
            m.topic == "spBv1.0/STATE/dtwin"
        })
        .await
        .expect("the host's STATE");
    assert!(HostStateMessage::decode(&state.payload).unwrap().online);

    // Births, then data by alias; the same values as v2 JSON for another machine.
    let t0 = harness::now_ms();
    let mut edge = EdgeNode::new(EdgeNodeId::new("plant1", "line4"), 0);
    let birth = [
        Metric::named("Motor/Voltage", Some(1), DataType::Double)
            .with_value(MetricValue::DoubleValue(120.0)),
        Metric::named("Motor/Speed", Some(2), DataType::Int32)
            .with_value(MetricValue::IntValue(1500)),
        Metric::named("Serial", Some(3), DataType::String)
            .with_value(MetricValue::StringValue("P-0007".into())),
    ];
    // A birth carries the metrics' current values: the first reading (VALUES[0], at t0).
    edge_side.send(edge.nbirth(&[], t0)).await;
    edge_side.send(edge.dbirth("pump7", &birth, t0)).await;
    for (i, (volt, rpm)) in VALUES.into_iter().enumerate() {
        let ts = t0 + 1000 * i as u64;
        if i > 0 {
            let data = [
                by_alias(1, MetricValue::DoubleValue(volt)),
                by_alias(2, MetricValue::IntValue(rpm as u32)),
            ];
            edge_side.send(edge.ddata("pump7", &data, ts)).await;
        }
        let json = format!(
            r#"{{"profile":"pump","ts":{ts},"values":{{"Motor/Voltage":{volt},"Motor/Speed":{rpm}}}}}"#
        );
        recorder
            .send((
                format!("dtwin/v1/machines/{JSON_MACHINE}/telemetry"),
                json.into_bytes(),
            ))
            .await;
    }

    let online = wait_status(&recorder, Presence::Online).await;
    assert_eq!(online.machine_id.as_str(), MACHINE);
    wait_features(&recorder, MACHINE, 4).await;
    wait_features(&recorder, JSON_MACHINE, 4).await;
    let fourth = recorder
        .wait_for(Duration::from_secs(20), |m| {
            m.topic == format!("dtwin/v1/machines/{MACHINE}/risk")
                && from_json::<Risk>(&m.payload).is_ok_and(|r| r.seq == 4)
        })
        .await
        .expect("a verdict for the fourth reading");
    let risk: Risk = from_json(&fourth.payload).unwrap();
    assert_eq!(risk.profile.as_deref(), Some("pump"));
    assert!(
        risk.actions.iter().any(|a| a.code == "NO_MODEL"),
        "rules only"
    );

    let sparkplug = features(&recorder, MACHINE);
    let json = features(&recorder, JSON_MACHINE);
    assert_eq!(sparkplug.len(), 4);
    let mut sorted = names.clone();
    sorted.sort();
    for (s, j) in sparkplug.iter().zip(&json) {
        assert_eq!(s.profile.as_deref(), Some("pump"));
        assert_eq!(s.feature_set, hash);
        assert_eq!(s.values.keys().cloned().collect::<Vec<_>>(), sorted);
        assert_eq!(
            (
                &s.values,
                &s.latest,
                s.seq,
                s.source_ts,
                s.window_len,
                s.cold
            ),
            (
                &j.values,
                &j.latest,
                j.seq,
                j.source_ts,
                j.window_len,
                j.cold
            ),
            "the Sparkplug vector equals the JSON one"
        );
    }
    assert_eq!(sparkplug[0].latest["volt"], 120.0);
    assert_eq!(sparkplug[3].latest["rotate"], 1500.0);
    let derived = sparkplug[0].values["volt_per_krpm"].unwrap();
    assert!((derived - 80.0).abs() < 1e-9, "{derived}");

    // A lost message: the host asks the node to rebirth.
    edge.skip(1);
    let gap = [by_alias(1, MetricValue::DoubleValue(122.0))];
    edge_side.send(edge.ddata("pump7", &gap, t0 + 5000)).await;
    let ncmd = edge_side
        .wait_for(Duration::from_secs(10), |m| {
            m.topic == "spBv1.0/plant1/NCMD/line4"
        })
        .await
        .expect("a rebirth request");
    let request = decode_payload(&ncmd.payload).unwrap();
    assert_eq!(
        request.metrics[0].name.as_deref(),
        Some("Node Control/Rebirth")
    );
    assert_eq!(
        request.metrics[0].value,
        Some(MetricValue::BooleanValue(true))
    );

    // The node honours it: births again, then data taken as before.
    edge_side.send(edge.nbirth(&[], t0 + 6000)).await;
    edge_side
        .send(edge.dbirth("pump7", &birth, t0 + 6000))
        .await;
    let data = [
        by_alias(1, MetricValue::DoubleValue(121.0)),
        by_alias(2, MetricValue::IntValue(1505)),
    ];
    edge_side.send(edge.ddata("pump7", &data, t0 + 7000)).await;
    // The DBIRTH's values (VALUES[0]) and the DDATA: two more vectors.
    wait_features(&recorder, MACHINE, 6).await;
    let after = features(&recorder, MACHINE);
    assert_eq!(after[4].latest["rotate"], 1500.0);
    assert_eq!(after[5].latest["rotate"], 1505.0);

    // The node dies: its device goes offline (retained).
    edge_side.send(edge.ndeath()).await;
    let offline = wait_status(&recorder, Presence::Offline).await;
    assert_eq!(offline.machine_id.as_str(), MACHINE);
    let late = Recorder::start(&broker, &format!("dtwin/v1/machines/{MACHINE}/status")).await;
    let retained = late
        .wait_for(Duration::from_secs(10), |m| m.retain)
        .await
        .expect("the retained status");
    let retained: MachineStatus = from_json(&retained.payload).unwrap();
    assert_eq!(retained.state, Presence::Offline);

    // Not protobuf: a dead letter, and nothing else breaks.
    edge_side
        .send((
            "spBv1.0/plant1/DDATA/line4/pump7".into(),
            b"{\"not\":\"protobuf\"}".to_vec(),
        ))
        .await;
    recorder
        .wait_for(Duration::from_secs(10), |m| {
            m.topic == "dtwin/v1/deadletter/sparkplug"
                && from_json::<DeadLetter>(&m.payload)
                    .is_ok_and(|d| d.detail.starts_with("not_protobuf"))
        })
        .await
        .expect("a not_protobuf dead letter");
    let dead = dead_letters(&recorder);
    let reasons: Vec<&str> = dead
        .iter()
        .map(|d| d.detail.split(':').next().unwrap())
        .collect();
    assert_eq!(reasons, ["seq_gap", "not_protobuf"], "{dead:?}");
    assert!(dead.iter().all(|d| d.reason == RejectReason::Sparkplug));
    assert_eq!(
        dead[1].machine_id.as_ref().map(|m| m.as_str()),
        Some(MACHINE)
    );

    recorder.assert_contract();
    stop.cancel();
    for s in services {
        s.await.unwrap().unwrap();
    }
}

/// `dtwin up --machines 0 --profile pump.toml`: the host runs inside the stack with the
/// feature service's profiles. The test plays a Sparkplug edge node that honours rebirth
/// requests (the host may still be subscribing when its first births go out) and gets risk
/// verdicts for its device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtwin_up_runs_the_sparkplug_host() {
    use clap::Parser;
    use dtwin::cli::{Cli, Command};

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pump.toml");
    std::fs::write(&file, PUMP).unwrap();
    let port = dtwin_broker::free_port().unwrap();
    let port_flag = port.to_string();
    let outbox = dir.path().join("outbox");
    let argv = [
        "dtwin",
        "up",
        "--summary-every",
        "0",
        "--dashboard-listen",
        "127.0.0.1:0",
        "--port",
        &port_flag,
        "--machines",
        "0",
        "--profile",
        file.to_str().unwrap(),
        "--sparkplug-host-id",
        "plant-host",
        "--outbox",
        outbox.to_str().unwrap(),
    ];
    let Command::Up(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let stop = CancellationToken::new();
    let stack = tokio::spawn(dtwin::cmd::up::run_until(args, stop.clone()));
    harness::wait_for_port(port, Duration::from_secs(20)).unwrap();
    let url = dtwin_bus::BrokerUrl::new("127.0.0.1", port);
    let recorder = Recorder::start(&url, "dtwin/v1/#").await;
    let edge_side = Recorder::start(&url, "spBv1.0/#").await;
    edge_side
        .wait_for(Duration::from_secs(20), |m| {
            m.topic == "spBv1.0/STATE/plant-host"
                && HostStateMessage::decode(&m.payload).is_ok_and(|s| s.online)
        })
        .await
        .expect("the host's STATE, online");

    let machine = "plant1.line9.pump1";
    let risk_topic = format!("dtwin/v1/machines/{machine}/risk");
    let mut edge = EdgeNode::new(EdgeNodeId::new("plant1", "line9"), 0);
    let birth = [
        Metric::named("Motor/Voltage", Some(1), DataType::Double)
            .with_value(MetricValue::DoubleValue(120.0)),
        Metric::named("Motor/Speed", Some(2), DataType::Int32)
            .with_value(MetricValue::IntValue(1500)),
    ];
    let t0 = harness::now_ms();
    let mut rebirths_seen = 0;
    let mut births = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for i in 0u64.. {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no verdict for {machine} after {i} messages"
        );
        let requests = edge_side
            .all()
            .iter()
            .filter(|m| m.topic == "spBv1.0/plant1/NCMD/line9")
            .count();
        if i == 0 || requests > rebirths_seen {
            rebirths_seen = requests;
            births += 1;
            edge_side.send(edge.nbirth(&[], t0 + i * 100)).await;
            edge_side
                .send(edge.dbirth("pump1", &birth, t0 + i * 100))
                .await;
        }
        let data = [by_alias(
            1,
            MetricValue::DoubleValue(120.0 + (i % 3) as f64),
        )];
        edge_side
            .send(edge.ddata("pump1", &data, t0 + i * 100 + 50))
            .await;
        if recorder
            .wait_for(Duration::from_millis(100), |m| m.topic == risk_topic)
            .await
            .is_some()
        {
            break;
        }
    }
    let risk: Risk = from_json(
        &recorder
            .wait_for(Duration::from_secs(1), |m| m.topic == risk_topic)
            .await
            .unwrap()
            .payload,
    )
    .unwrap();
    assert_eq!(risk.profile.as_deref(), Some("pump"), "births: {births}");
    assert!(!stack.is_finished(), "up stopped: {:?}", stack.await);
    stop.cancel();
    stack.await.unwrap().unwrap();
}
