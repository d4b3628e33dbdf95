//! `dtwin up --machines 0`: the stack without the twin, for real gateways. The test plays the
//! gateway: it publishes one machine's telemetry itself and gets that machine's risk verdicts,
//! and no simulated machine's telemetry ever appears.

use clap::Parser;
use dtwin::cli::{Cli, Command};
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::{from_json, to_json, MachineId, Risk, Telemetry, TopicKind, Topics};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_no_machines_scores_a_gateways_telemetry() {
    let port = dtwin_broker::free_port().unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let port_flag = port.to_string();
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
        "--outbox",
        outbox.path().to_str().unwrap(),
    ];
    let Command::Up(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let stop = CancellationToken::new();
    let stack = tokio::spawn(dtwin::cmd::up::run_until(args, stop.clone()));

    let url = BrokerUrl::new("127.0.0.1", port);
    let topics = Topics::default();
    // The watcher connects once the embedded broker listens.
    let mut watch = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let conn = dtwin_bus::connect(
                &BusConfig::new(url.clone(), "gateway-watch"),
                vec![
                    Subscription::new(topics.all(TopicKind::Risk), QoS::AtLeastOnce),
                    Subscription::new(topics.all(TopicKind::Telemetry), QoS::AtLeastOnce),
                ],
            );
            if conn.client.wait_ready(Duration::from_secs(2)).await {
                break conn;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the embedded broker never accepted a connection"
            );
        }
    };
    assert!(!stack.is_finished(), "up stopped: {:?}", stack.await);

    // The gateway: one machine, a reading every 200 ms, until a verdict arrives
    // (the services may still be subscribing when the first readings go out).
    let gateway = dtwin_bus::connect(&BusConfig::new(url.clone(), "gateway-1"), vec![]);
    assert!(gateway.client.wait_ready(Duration::from_secs(10)).await);
    let id = MachineId::parse("gw-press-1").unwrap();
    let mut seq = 0u64;
    let mut telemetry_seen = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let verdict: Risk = 'found: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no risk verdict for {id} after {seq} readings"
        );
        seq += 1;
        let mut t = Telemetry::new(id.clone(), dtwin_schema::time_fmt::now(), seq);
        t.temperature_c = Some(36.0);
        t.ambient_temperature_c = Some(25.0);
        t.vibration_mm_s = Some(2.0);
        t.spindle_rpm = Some(1500.0);
        t.torque_nm = Some(40.0);
        t.power_w = Some(6300.0);
        t.tool_wear_min = Some(10.0);
        gateway
            .client
            .publish(topics.telemetry(&id), QoS::AtLeastOnce, false, to_json(&t))
            .await
            .unwrap();
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Ok(Some(m)) = tokio::time::timeout_at(until, watch.inbox.recv()).await {
            if m.topic.ends_with("/telemetry") {
                let t: Telemetry = from_json(&m.payload).unwrap();
                assert_eq!(t.machine_id, id, "telemetry of a simulated machine: {t:?}");
                telemetry_seen += 1;
            } else {
                let r: Risk = from_json(&m.payload).unwrap();
                assert_eq!(r.machine_id, id, "a verdict for another machine: {r:?}");
                break 'found r;
            }
        }
    };
    assert!((0.0..=1.0).contains(&verdict.probability), "{verdict:?}");
    assert!(telemetry_seen > 0, "the watcher saw the gateway's readings");

    // A while longer: still only the gateway's machine.
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(m)) = tokio::time::timeout_at(until, watch.inbox.recv()).await {
        if m.topic.ends_with("/telemetry") {
            let t: Telemetry = from_json(&m.payload).unwrap();
            assert_eq!(t.machine_id, id, "telemetry of a simulated machine: {t:?}");
        }
    }
    stop.cancel();
    stack.await.unwrap().unwrap();
}
