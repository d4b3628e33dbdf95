//! The twin publisher on a real (embedded) broker: the published stream is byte-identical to
//! the pure rendering whatever the number of connections, machines announce themselves with
//! retained statuses, and the control topic injects faults live (bad commands become dead
//! letters).

use dtwin_bus::{BrokerUrl, BusConfig, Message, QoS, Subscription};
use dtwin_schema::{DeadLetter, MachineStatus, Presence, RejectReason, Telemetry};
use dtwin_twin_publisher::TwinConfig;
use dtwin_twin_sim::{stream, Clock};
use std::time::Duration;
use time::macros::datetime;
use tokio_util::sync::CancellationToken;

fn broker() -> BrokerUrl {
    let port = dtwin_broker::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(addr)).unwrap();
    BrokerUrl::new("127.0.0.1", port)
}

async fn subscribe(url: &BrokerUrl, id: &str, filter: &str) -> dtwin_bus::Connection {
    let mut cfg = BusConfig::new(url.clone(), id);
    cfg.inbox_capacity = 100_000;
    let conn = dtwin_bus::connect(&cfg, vec![Subscription::new(filter, QoS::AtLeastOnce)]);
    assert!(conn.client.wait_ready(Duration::from_secs(10)).await);
    conn
}

async fn collect_until(
    conn: &mut dtwin_bus::Connection,
    timeout: Duration,
    mut done: impl FnMut(&[Message]) -> bool,
) -> Vec<Message> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&got) {
        match tokio::time::timeout_at(deadline, conn.inbox.recv()).await {
            Ok(Some(m)) => got.push(m),
            _ => break,
        }
    }
    got
}

async fn afap_stream(url: &BrokerUrl, connections: usize) -> Vec<Vec<u8>> {
    const MACHINES: usize = 7;
    const STEPS: u64 = 25;
    let mut sub = subscribe(
        url,
        &format!("sub-{connections}"),
        "dtwin/v1/machines/+/telemetry",
    )
    .await;
    let mut cfg = TwinConfig::new(url.clone());
    cfg.common.client_id = Some(format!("twin-afap-{connections}"));
    cfg.machines = MACHINES;
    cfg.qos = QoS::AtLeastOnce;
    cfg.afap = true;
    cfg.steps = Some(STEPS);
    cfg.connections = connections;
    cfg.epoch = Some(datetime!(2026-11-22 10:00:00 UTC));
    let sim = cfg.sim();
    let clock = Clock {
        epoch: cfg.epoch.unwrap(),
        period: time::Duration::seconds_f64(1.0 / cfg.rate_hz),
    };
    dtwin_twin_publisher::run(cfg, CancellationToken::new())
        .await
        .expect("afap run ends after its steps");
    let got = collect_until(&mut sub, Duration::from_secs(20), |g| {
        g.len() >= MACHINES * STEPS as usize
    })
    .await;
    let mut keyed: Vec<(u64, String, Vec<u8>)> = got
        .iter()
        .map(|m| {
            let t = Telemetry::decode(&m.payload).unwrap();
            (t.seq, t.machine_id.to_string(), m.payload.to_vec())
        })
        .collect();
    keyed.sort();
    let published: Vec<Vec<u8>> = keyed.into_iter().map(|(_, _, p)| p).collect();
    let expected = stream::render_sharded(&sim, MACHINES, STEPS, clock, 1);
    assert_eq!(published.len(), expected.len(), "every reading arrived");
    assert!(
        published == expected,
        "{connections} connections: the published stream equals the pure rendering"
    );
    sub.close().await;
    published
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn afap_stream_is_byte_identical_for_any_number_of_connections() {
    let url = broker();
    let one = afap_stream(&url, 1).await;
    let three = afap_stream(&url, 3).await;
    assert!(one == three);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_are_retained_and_control_injects_faults() {
    let url = broker();
    let shutdown = CancellationToken::new();
    let mut cfg = TwinConfig::new(url.clone());
    cfg.machines = 4;
    cfg.rate_hz = 20.0;
    cfg.connections = 2;
    let twin = tokio::spawn(dtwin_twin_publisher::run(cfg, shutdown.clone()));

    // A late subscriber still learns every machine's presence and product type.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut status = subscribe(&url, "status-sub", "dtwin/v1/machines/+/status").await;
    let got = collect_until(&mut status, Duration::from_secs(10), |g| g.len() >= 4).await;
    assert_eq!(got.len(), 4);
    for m in &got {
        assert!(m.retain, "{} is retained", m.topic);
        let s: MachineStatus = dtwin_schema::from_json(&m.payload).unwrap();
        assert_eq!(s.state, Presence::Online);
        assert!(s.product_type.is_some());
    }

    // Live control: a dropout on machine-002's vibration sensor shows in its telemetry.
    let mut tele = subscribe(&url, "tele-sub", "dtwin/v1/machines/machine-002/telemetry").await;
    let mut dead = subscribe(&url, "dl-sub", "dtwin/v1/deadletter/twin").await;
    let before = collect_until(&mut tele, Duration::from_secs(10), |g| g.len() >= 5).await;
    assert_eq!(before.len(), 5);
    assert!(before.iter().all(|m| Telemetry::decode(&m.payload)
        .unwrap()
        .vibration_mm_s
        .is_some()));
    let control = dtwin_bus::connect(&BusConfig::new(url.clone(), "operator"), vec![]);
    assert!(control.client.wait_ready(Duration::from_secs(5)).await);
    for payload in [
        r#"{"command":"inject","machine_id":"machine-002","fault":"dropout:vibration"}"#,
        r#"{"command":"inject","machine_id":"machine-99","fault":"bearing"}"#,
        r#"{"command":"inject","machine_id":"machine-002","fault":"melt"}"#,
        "not json",
    ] {
        control
            .client
            .publish(
                "dtwin/v1/control/twin",
                QoS::AtLeastOnce,
                false,
                payload.as_bytes().to_vec(),
            )
            .await
            .unwrap();
    }
    let letters = collect_until(&mut dead, Duration::from_secs(10), |g| g.len() >= 3).await;
    let reasons: Vec<RejectReason> = letters
        .iter()
        .map(|m| {
            dtwin_schema::from_json::<DeadLetter>(&m.payload)
                .unwrap()
                .reason
        })
        .collect();
    assert_eq!(
        reasons,
        [
            RejectReason::BadMachineId,
            RejectReason::WrongType,
            RejectReason::NotJson
        ]
    );

    let after = collect_until(&mut tele, Duration::from_secs(10), |g| {
        g.iter().any(|m| {
            Telemetry::decode(&m.payload)
                .unwrap()
                .vibration_mm_s
                .is_none()
        })
    })
    .await;
    assert!(
        after.iter().any(|m| Telemetry::decode(&m.payload)
            .unwrap()
            .vibration_mm_s
            .is_none()),
        "the injected dropout reached machine-002's telemetry"
    );
    shutdown.cancel();
    twin.await.unwrap().unwrap();
    // A clean stop marks every machine offline (retained).
    let mut again = subscribe(&url, "status-sub-2", "dtwin/v1/machines/+/status").await;
    let got = collect_until(&mut again, Duration::from_secs(10), |g| g.len() >= 4).await;
    assert!(got
        .iter()
        .all(|m| dtwin_schema::from_json::<MachineStatus>(&m.payload)
            .unwrap()
            .state
            == Presence::Offline));
}
