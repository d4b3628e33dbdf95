//! An MQTT 5 gateway on `dtwin up`'s embedded broker (issue 18, item 6): Debian's
//! `mosquitto_pub -V mqttv5` publishes a machine's telemetry, with MQTT 5 user properties and
//! a content type, on the same port as the services' MQTT 3.1.1 connections, and
//! `mosquitto_sub -V mqttv5` gets the machine's verdict from its risk topic. Before, the broker
//! dropped the v5 CONNECT ("The connection was lost").

use crate::common::wait_healthy;
use clap::Parser;
use dtwin::cli::{Cli, Command};
use dtwin_schema::{from_json, MachineId, Risk, Topics};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PUB: &str = "/usr/bin/mosquitto_pub";
const SUB: &str = "/usr/bin/mosquitto_sub";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt5_gateway_gets_its_verdict_from_up() {
    if !Path::new(PUB).exists() || !Path::new(SUB).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "mosquitto_pub/mosquitto_sub missing: tests/run.sh installs mosquitto-clients"
        );
        eprintln!("skipping: {PUB} or {SUB} is not installed (apt-get install mosquitto-clients)");
        return;
    }
    let port = dtwin_broker::free_port().unwrap();
    let metrics = dtwin_broker::free_port().unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let (port_flag, metrics_flag) = (port.to_string(), format!("127.0.0.1:{metrics}"));
    let argv = [
        "dtwin",
        "up",
        "--summary-every",
        "0",
        "--dashboard-listen",
        "127.0.0.1:0",
        "--metrics-listen",
        &metrics_flag,
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
    wait_healthy(metrics).await;
    assert!(!stack.is_finished(), "up stopped: {:?}", stack.await);

    let topics = Topics::default();
    let id = MachineId::parse("gw-v5-press-1").unwrap();
    // A v5 subscriber for the verdict: exits after the first one (or after 60 s).
    let sub = std::process::Command::new(SUB)
        .args(["-V", "mqttv5", "-h", "127.0.0.1", "-p", &port_flag])
        .args(["-i", "gw-v5-watch", "-q", "1", "-C", "1", "-W", "60"])
        .args(["-t", &topics.risk(&id)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let verdict = tokio::task::spawn_blocking(move || sub.wait_with_output());

    // The gateway: a reading every 200 ms until the verdict arrives (the subscriber may still
    // be subscribing when the first ones are scored).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seq = 0u64;
    while !verdict.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no verdict for {id} after {seq} readings"
        );
        seq += 1;
        let reading = format!(
            r#"{{"seq":{seq},"values":{{"temperature_c":36.0,"vibration_mm_s":2.0,"spindle_rpm":1500,"torque_nm":40.0,"tool_wear_min":10}}}}"#
        );
        let mut publish = std::process::Command::new(PUB);
        publish
            .args(["-V", "mqttv5", "-h", "127.0.0.1", "-p", &port_flag])
            .args(["-i", "gw-v5-press-1", "-q", "1"])
            .args(["-D", "publish", "user-property", "gateway", "edge-7"])
            .args(["-D", "publish", "content-type", "application/json"])
            .args(["-t", &topics.telemetry(&id), "-m", &reading]);
        let out = tokio::task::spawn_blocking(move || publish.output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            out.status.success(),
            "mosquitto_pub -V mqttv5 failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = verdict.await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "mosquitto_sub -V mqttv5 failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let risk: Risk = from_json(&out.stdout).unwrap();
    assert_eq!(risk.machine_id, id);
    assert!((0.0..=1.0).contains(&risk.probability), "{risk:?}");

    stop.cancel();
    stack.await.unwrap().unwrap();
}
