//! End to end: the whole stack (`dtwin up`) on a real broker, one machine forced into a
//! bearing fault, bad telemetry thrown in; asserts the AT_RISK verdict, the alert e-mail in the
//! outbox, the dead letters, that the other machines' stream goes on, that every message on the
//! wire matches its JSON Schema, and that Ctrl-C (the shutdown token) stops everything in 2 s.
//!
//! Runs once on the embedded rumqttd (started by `up` itself on a free port) and once on
//! Mosquitto, the broker integrators most often bring.

use clap::Parser;
use dtwin::cli::{Cli, Command};
use dtwin_bus::{BrokerUrl, QoS};
use dtwin_schema::{from_json, DeadLetter, Features, RejectReason, Risk, RiskStatus};
use dtwin_tests::contract::Contract;
use dtwin_tests::harness::{self, Recorder};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const FAULTY: &str = "machine-002";
const WAIT: Duration = Duration::from_secs(90);

async fn run_pipeline(broker_flag: Vec<String>, broker: BrokerUrl, start_broker_first: bool) {
    let outbox = tempfile::tempdir().unwrap();
    let mut argv: Vec<String> = [
        "dtwin",
        "up",
        "--machines",
        "4",
        "--rate",
        "10",
        "--accel",
        "1200",
        "--summary-every",
        "0",
        "--dashboard-listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(broker_flag);
    argv.extend([
        "--scenario".into(),
        format!("{FAULTY}:bearing@0"),
        "--outbox".into(),
        outbox.path().display().to_string(),
    ]);
    let Command::Up(args) = Cli::try_parse_from(&argv)
        .expect("README flags parse")
        .command
    else {
        unreachable!()
    };

    let shutdown = CancellationToken::new();
    let mut recorder = None;
    if start_broker_first {
        recorder = Some(Recorder::start(&broker, "dtwin/v1/#").await);
    }
    let stack = tokio::spawn(dtwin::cmd::up::run_until(args, shutdown.clone()));
    let recorder = match recorder {
        Some(r) => r,
        None => {
            harness::wait_for_port(broker.port, Duration::from_secs(10)).unwrap();
            Recorder::start(&broker, "dtwin/v1/#").await
        }
    };

    // The stack is live once features flow for a healthy machine.
    let first = recorder
        .wait_for(WAIT, |m| {
            m.topic == "dtwin/v1/machines/machine-001/features"
        })
        .await
        .expect("features published");
    let first_seq = from_json::<Features>(&first.payload).unwrap().seq;

    // Bad input: it must be dead-lettered with a reason and stop nothing.
    let bad: [(&str, &[u8], RejectReason); 3] = [
        ("dtwin/v1/machines/machine-001/telemetry", b"this is not json", RejectReason::NotJson),
        (
            "dtwin/v1/machines/machine-001/telemetry",
            br#"{"schema":"dtwin.telemetry.v1","machine_id":"machine-001","ts":"2026-01-01T00:00:00Z","seq":1,"vibration_mm_s":"loud"}"#,
            RejectReason::WrongType,
        ),
        (
            "dtwin/v1/machines/bad!id/telemetry",
            br#"{"schema":"dtwin.telemetry.v1","machine_id":"bad!id","ts":"2026-01-01T00:00:00Z","seq":1}"#,
            RejectReason::BadMachineId,
        ),
    ];
    for (topic, payload, _) in &bad {
        recorder
            .client()
            .publish(*topic, QoS::AtLeastOnce, false, payload.to_vec())
            .await
            .unwrap();
    }
    for (_, _, reason) in &bad {
        let dl = recorder
            .wait_for(WAIT, |m| {
                m.topic == "dtwin/v1/deadletter/feature"
                    && from_json::<DeadLetter>(&m.payload).is_ok_and(|d| d.reason == *reason)
            })
            .await;
        assert!(dl.is_some(), "dead letter with reason {reason:?}");
    }
    let later = recorder
        .wait_for(WAIT, |m| {
            m.topic == "dtwin/v1/machines/machine-001/features"
                && from_json::<Features>(&m.payload).is_ok_and(|f| f.seq > first_seq + 20)
        })
        .await;
    assert!(
        later.is_some(),
        "the healthy machine's stream went on after bad input"
    );

    // The forced fault: an AT_RISK verdict naming the bearing, then an e-mail.
    let risk = recorder
        .wait_for(WAIT, |m| {
            m.topic == format!("dtwin/v1/machines/{FAULTY}/risk")
                && from_json::<Risk>(&m.payload)
                    .is_ok_and(|r| r.status == RiskStatus::AtRisk && !r.cold)
        })
        .await
        .expect("AT_RISK verdict for the faulty machine");
    let risk: Risk = from_json(&risk.payload).unwrap();
    assert!(risk.probability >= 0.0 && risk.probability <= 1.0);
    assert!(risk.health_score < 100.0);

    let (path, raw) = harness::wait_for_eml(outbox.path(), WAIT, |t| t.contains(FAULTY))
        .await
        .expect("an alert e-mail for the faulty machine in the outbox");
    let eml = harness::unquote_printable(&raw);
    assert!(eml.contains("multipart/alternative"), "{}", path.display());
    assert!(eml.contains("text/plain") && eml.contains("text/html"));
    assert!(eml.contains("AT RISK"));
    assert!(eml.contains("Subject:"));
    assert!(eml.contains("Message-ID:") || eml.contains("Message-Id:"));
    assert!(eml.contains("UTC"), "timestamp in UTC");
    assert!(
        eml.contains(&format!("Subject: [dtwin] AT RISK {FAULTY}")),
        "subject names status and machine"
    );
    assert!(
        eml.contains("<!DOCTYPE html>") && eml.contains("</html>"),
        "an HTML part"
    );

    // Every message seen on the wire matches its schema.
    let contract = Contract::load().unwrap();
    let seen = recorder.all();
    let mut checked = 0;
    for m in &seen {
        // Test input we published on purpose is not expected to be valid.
        if m.topic.ends_with("/telemetry")
            && m.payload.len() < 200
            && from_json::<dtwin_schema::Telemetry>(&m.payload).is_err()
        {
            continue;
        }
        if m.topic.contains("bad!id") {
            continue;
        }
        contract
            .check(&m.topic, &m.payload)
            .unwrap_or_else(|e| panic!("{}: {e}", m.topic));
        checked += 1;
    }
    assert!(checked > 100, "validated {checked} messages");
    println!("validated {checked} messages against proto-schemas/");

    // Ctrl-C: everything stops within 2 s.
    let started = std::time::Instant::now();
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(3), stack).await;
    let stopped = started.elapsed();
    result
        .expect("stack stops within 3 s")
        .expect("stack task")
        .expect("stack ran without error");
    println!("stack stopped {stopped:?} after the shutdown signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_on_embedded_broker() {
    let port = dtwin_broker::free_port().unwrap();
    run_pipeline(
        vec!["--port".into(), port.to_string()],
        BrokerUrl::new("127.0.0.1", port),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_on_mosquitto() {
    let Some(mosquitto) = harness::mosquitto_or_skip(harness::Mosquitto::start()) else {
        return;
    };
    let url = mosquitto.url();
    run_pipeline(vec!["--broker".into(), url.to_string()], url, true).await;
}
