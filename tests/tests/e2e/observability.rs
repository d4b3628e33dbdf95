//! Observability end to end: the feature and inference services serve Prometheus `/metrics`
//! and `/healthz` over TCP. Real telemetry (good and bad) flows through both on the embedded
//! broker, then the test scrapes both endpoints and checks the counters moved by exactly what
//! went through; `/healthz` answers 503 while the broker link is down (no broker, or a
//! Mosquitto killed under the service); `dtwin up --metrics-listen` serves every service on
//! one port. The alerter and the twin publisher do the same: risk verdicts through the alerter
//! (one alert fired, mailed, resolved, mailed) and the twin's fleet and control commands are
//! counted exactly; an SMTP server that is down shows as `dtwin_alerter_smtp_up 0` with mails
//! retried and held in the spool while `/healthz` stays 200 (the broker link is what counts).

use clap::Parser;
use dtwin::cli::{Cli, Command};
use dtwin_bus::{BrokerUrl, QoS};
use dtwin_tests::harness::{self, Mosquitto, Recorder};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// `GET path` over a plain TCP socket: (status code, body).
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Polls `path` until it answers `status`; returns the body.
async fn wait_status(addr: SocketAddr, path: &str, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        match get(addr, path).await {
            Some((s, body)) if s == status => return body,
            other => last = other,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{addr}{path} never answered {status}; last: {last:?}");
}

/// The value of the sample `series` (name with labels, exactly as exported), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Sum of every sample of a metric family (any labels).
fn family_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn metrics_addr() -> SocketAddr {
    let port = dtwin_broker::free_port().expect("a free port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn telemetry(machine: &str, seq: u64) -> String {
    let ts = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    format!(
        r#"{{"schema":"dtwin.telemetry.v1","machine_id":"{machine}","ts":"{ts}","seq":{seq},
        "temperature_c":37.2,"ambient_temperature_c":26.9,"vibration_mm_s":2.4,"pressure_bar":6.1,
        "spindle_rpm":1510,"torque_nm":41.3,"tool_wear_min":{wear}}}"#,
        wear = 100 + seq
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_real_traffic() {
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let (feature_addr, inference_addr) = (metrics_addr(), metrics_addr());
    let mut f = dtwin_feature::FeatureConfig::new(broker.clone());
    f.common.metrics_listen = Some(feature_addr);
    f.telemetry_qos = QoS::AtLeastOnce;
    let mut i = dtwin_inference::InferenceConfig::new(broker.clone());
    i.common.metrics_listen = Some(inference_addr);
    let feature = tokio::spawn(dtwin_feature::run(f, stop.clone()));
    let inference = tokio::spawn(dtwin_inference::run(i, stop.clone()));
    // Healthy once each service's subscriptions are acknowledged.
    wait_status(feature_addr, "/healthz", 200).await;
    wait_status(inference_addr, "/healthz", 200).await;

    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let client = recorder.client();
    const GOOD: u64 = 25;
    for seq in 1..=GOOD {
        let topic = "dtwin/v1/machines/obs-1/telemetry";
        client
            .publish(topic, QoS::AtLeastOnce, false, telemetry("obs-1", seq))
            .await
            .unwrap();
        if seq == 5 {
            client
                .publish(topic, QoS::AtLeastOnce, false, "not json at all")
                .await
                .unwrap();
            let wrong = telemetry("obs-2", 1);
            client
                .publish(topic, QoS::AtLeastOnce, false, wrong)
                .await
                .unwrap();
        }
    }
    // A feature vector the inference service cannot read.
    client
        .publish(
            "dtwin/v1/machines/obs-1/features",
            QoS::AtLeastOnce,
            false,
            "{\"schema\":1}",
        )
        .await
        .unwrap();
    let last_risk = recorder
        .wait_for(WAIT, |m| {
            m.topic == "dtwin/v1/machines/obs-1/risk"
                && dtwin_schema::from_json::<dtwin_schema::Risk>(&m.payload)
                    .is_ok_and(|r| r.seq == GOOD)
        })
        .await;
    assert!(last_risk.is_some(), "every reading scored");
    recorder
        .wait_for(WAIT, |m| m.topic == "dtwin/v1/deadletter/inference")
        .await
        .expect("inference dead letter");
    // The counters are updated before the publish that the recorder saw returns; give the
    // services a moment anyway so the scrape is not racing the last increment.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (status, fm) = get(feature_addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    println!("--- feature /metrics ---\n{fm}");
    assert_eq!(
        sample(&fm, "dtwin_feature_messages_in_total"),
        Some(GOOD as f64 + 2.0)
    );
    assert_eq!(
        sample(&fm, "dtwin_feature_messages_out_total"),
        Some(GOOD as f64)
    );
    assert_eq!(
        sample(&fm, "dtwin_feature_rejected_total{reason=\"not_json\"}"),
        Some(1.0)
    );
    assert_eq!(family_sum(&fm, "dtwin_feature_rejected_total"), 2.0);
    assert_eq!(
        sample(&fm, "dtwin_feature_processing_seconds_count"),
        Some(GOOD as f64 + 2.0)
    );

    let (status, im) = get(inference_addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    println!("--- inference /metrics ---\n{im}");
    assert_eq!(
        sample(&im, "dtwin_inference_messages_in_total"),
        Some(GOOD as f64 + 1.0)
    );
    assert_eq!(
        sample(&im, "dtwin_inference_messages_out_total"),
        Some(GOOD as f64)
    );
    assert_eq!(
        family_sum(&im, "dtwin_inference_verdicts_total"),
        GOOD as f64
    );
    assert_eq!(
        sample(&im, "dtwin_inference_rejected_total{reason=\"wrong_type\"}"),
        Some(1.0)
    );
    assert!(sample(&im, "dtwin_inference_cold_verdicts_total").unwrap() >= 1.0);
    assert_eq!(
        sample(&im, "dtwin_inference_scoring_seconds_count"),
        Some(GOOD as f64 + 1.0)
    );
    // Every vector went through a micro-batch of one or more.
    assert_eq!(
        sample(&im, "dtwin_inference_batch_size_sum"),
        Some(GOOD as f64 + 1.0)
    );
    assert!(sample(&im, "dtwin_inference_batch_size_count").unwrap() >= 1.0);
    assert_eq!(
        sample(&im, "dtwin_inference_telemetry_age_seconds_count"),
        Some(GOOD as f64)
    );
    let model: serde_json::Value = serde_json::from_slice(dtwin_inference::SHIPPED_MODEL).unwrap();
    let info = format!(
        "dtwin_inference_model_info{{model_id={},version={},feature_set={}}}",
        model["model_id"], model["version"], model["feature_set_hash"]
    );
    assert_eq!(sample(&im, &info), Some(1.0), "{info}");
    assert!(sample(&im, "dtwin_inference_inbox_depth").is_some());
    // The first drift evaluation runs at start: too few vectors yet.
    assert_eq!(
        sample(&im, "dtwin_inference_drift_state{state=\"warming_up\"}"),
        Some(1.0)
    );

    stop.cancel();
    feature.await.unwrap().unwrap();
    inference.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_503_while_the_broker_is_unreachable() {
    // Nothing listens on this port: the link never comes up.
    let port = dtwin_broker::free_port().unwrap();
    let stop = CancellationToken::new();
    let addr = metrics_addr();
    let mut i = dtwin_inference::InferenceConfig::new(BrokerUrl::new("127.0.0.1", port));
    i.common.metrics_listen = Some(addr);
    let inference = tokio::spawn(dtwin_inference::run(i, stop.clone()));
    let body = wait_status(addr, "/healthz", 503).await;
    assert!(body.contains("broker link Down"), "{body}");
    // Metrics are still served while unhealthy.
    assert_eq!(get(addr, "/metrics").await.unwrap().0, 200);
    stop.cancel();
    inference.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_503_when_the_broker_dies() {
    let Some(mosquitto) = harness::mosquitto_or_skip(Mosquitto::start()) else {
        return;
    };
    let stop = CancellationToken::new();
    let (fa, ia) = (metrics_addr(), metrics_addr());
    let mut f = dtwin_feature::FeatureConfig::new(mosquitto.url());
    f.common.metrics_listen = Some(fa);
    let mut i = dtwin_inference::InferenceConfig::new(mosquitto.url());
    i.common.metrics_listen = Some(ia);
    let feature = tokio::spawn(dtwin_feature::run(f, stop.clone()));
    let inference = tokio::spawn(dtwin_inference::run(i, stop.clone()));
    wait_status(fa, "/healthz", 200).await;
    wait_status(ia, "/healthz", 200).await;
    drop(mosquitto);
    assert!(wait_status(fa, "/healthz", 503)
        .await
        .contains("broker link"));
    assert!(wait_status(ia, "/healthz", 503)
        .await
        .contains("broker link"));
    stop.cancel();
    feature.await.unwrap().unwrap();
    inference.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_every_service_on_one_port() {
    let port = dtwin_broker::free_port().unwrap();
    let addr = metrics_addr();
    let outbox = tempfile::tempdir().unwrap();
    let argv = [
        "dtwin",
        "up",
        "--port",
        &port.to_string(),
        "--machines",
        "2",
        "--rate",
        "10",
        "--summary-every",
        "0",
        "--dashboard-listen",
        "127.0.0.1:0",
        "--metrics-listen",
        &addr.to_string(),
        "--outbox",
        &outbox.path().display().to_string(),
    ];
    let Command::Up(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let stop = CancellationToken::new();
    let stack = tokio::spawn(dtwin::cmd::up::run_until(args, stop.clone()));
    wait_status(addr, "/healthz", 200).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let (_, text) = get(addr, "/metrics").await.unwrap();
        let scored = sample(&text, "dtwin_inference_messages_out_total").unwrap_or(0.0);
        if scored >= 10.0 || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(sample(&text, "dtwin_feature_messages_out_total").unwrap() >= 10.0);
    assert!(sample(&text, "dtwin_inference_messages_out_total").unwrap() >= 10.0);
    // The twin published what the feature service turned into vectors.
    assert!(sample(&text, "dtwin_twin_readings_published_total").unwrap() >= 10.0);
    assert_eq!(sample(&text, "dtwin_twin_machines"), Some(2.0));
    assert!(sample(&text, "dtwin_alerter_verdicts_in_total").is_some());
    assert!(sample(&text, "dtwin_alerter_smtp_up").is_some());
    assert_eq!(text.matches("# EOF").count(), 1);
    stop.cancel();
    stack.await.unwrap().unwrap();
}

/// A risk verdict for `machine` (`seq` orders them), at risk or healthy, encoded.
fn verdict(machine: &str, seq: u64, at_risk: bool) -> Vec<u8> {
    let p = if at_risk { 0.9 } else { 0.05 };
    dtwin_schema::to_json(&harness::verdict(machine, seq, p))
}

fn alerter_config(
    broker: &BrokerUrl,
    dir: &std::path::Path,
    addr: SocketAddr,
) -> dtwin_alerter::AlerterConfig {
    let mut a = dtwin_alerter::AlerterConfig::new(broker.clone());
    a.common.client_id = Some(format!("obs-alerter-{}", addr.port()));
    a.outbox_dir = dir.join("outbox");
    a.spool_dir = dir.join("spool");
    a.common.metrics_listen = Some(addr);
    a.policy.group_wait = time::Duration::ZERO;
    a.retry = dtwin_alerter::RetryPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    a
}

/// Polls `/metrics` until `series` reaches at least `min`; returns the text.
async fn wait_metric(addr: SocketAddr, series: &str, min: f64) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, text) = get(addr, "/metrics").await.expect("metrics answer");
        if sample(&text, series).is_some_and(|v| v >= min) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never reached {min}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerter_metrics_count_an_alert_from_firing_to_resolved() {
    let broker = harness::embedded_broker();
    let dir = tempfile::tempdir().unwrap();
    let addr = metrics_addr();
    let stop = CancellationToken::new();
    let alerter = tokio::spawn(dtwin_alerter::run(
        alerter_config(&broker, dir.path(), addr),
        stop.clone(),
    ));
    wait_status(addr, "/healthz", 200).await;
    let recorder = Recorder::start(&broker, "dtwin/v1/alerts/#").await;
    let client = recorder.client();
    let topic = "dtwin/v1/machines/obs-a/risk";
    let send = |payload: Vec<u8>| client.publish(topic, QoS::AtLeastOnce, false, payload);
    // Two at-risk verdicts of three fire (default 2/3); one unreadable verdict in between.
    send(verdict("obs-a", 1, true)).await.unwrap();
    send(b"not json".to_vec()).await.unwrap();
    send(verdict("obs-a", 2, true)).await.unwrap();
    let sent = |m: &dtwin_bus::Message| {
        dtwin_schema::from_json::<dtwin_schema::AlertEvent>(&m.payload)
            .is_ok_and(|e| e.event == dtwin_schema::AlertEventKind::Sent)
    };
    recorder.wait_for(WAIT, sent).await.expect("firing mailed");
    let text = wait_metric(addr, "dtwin_alerter_events_total{kind=\"sent\"}", 1.0).await;
    println!("--- alerter /metrics while firing ---\n{text}");
    assert_eq!(sample(&text, "dtwin_alerter_firing"), Some(1.0));
    assert_eq!(sample(&text, "dtwin_alerter_spool_pending"), Some(0.0));
    // Three healthy verdicts below the resolve threshold resolve it (default after 3).
    for seq in 3..=5 {
        send(verdict("obs-a", seq, false)).await.unwrap();
    }
    let text = wait_metric(addr, "dtwin_alerter_events_total{kind=\"sent\"}", 2.0).await;
    println!("--- alerter /metrics after resolving ---\n{text}");
    for (series, want) in [
        ("dtwin_alerter_verdicts_in_total", 6.0),
        ("dtwin_alerter_rejected_total{reason=\"not_json\"}", 1.0),
        ("dtwin_alerter_events_total{kind=\"firing\"}", 1.0),
        ("dtwin_alerter_events_total{kind=\"resolved\"}", 1.0),
        ("dtwin_alerter_events_total{kind=\"sent\"}", 2.0),
        ("dtwin_alerter_notifications_spooled_total", 2.0),
        ("dtwin_alerter_mails_sent_total", 2.0),
        ("dtwin_alerter_mails_failed_total", 0.0),
        ("dtwin_alerter_mails_retried_total", 0.0),
        ("dtwin_alerter_spool_pending", 0.0),
        ("dtwin_alerter_smtp_up", 1.0),
        ("dtwin_alerter_firing", 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series}");
    }
    assert_eq!(family_sum(&text, "dtwin_alerter_events_total"), 4.0);
    let emls = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .count();
    assert_eq!(emls, 2, "the counters match the outbox");
    stop.cancel();
    alerter.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_is_a_gauge_not_ill_health() {
    let broker = harness::embedded_broker();
    let dir = tempfile::tempdir().unwrap();
    let addr = metrics_addr();
    // Nothing listens here: every SMTP attempt is refused.
    let smtp_port = dtwin_broker::free_port().unwrap();
    let mut config = alerter_config(&broker, dir.path(), addr);
    config.smtp_url = Some(format!("smtp://127.0.0.1:{smtp_port}"));
    let stop = CancellationToken::new();
    let alerter = tokio::spawn(dtwin_alerter::run(config, stop.clone()));
    wait_status(addr, "/healthz", 200).await;
    let recorder = Recorder::start(&broker, "dtwin/v1/alerts/#").await;
    for seq in 1..=2 {
        recorder
            .client()
            .publish(
                "dtwin/v1/machines/obs-b/risk",
                QoS::AtLeastOnce,
                false,
                verdict("obs-b", seq, true),
            )
            .await
            .unwrap();
    }
    let text = wait_metric(addr, "dtwin_alerter_mails_retried_total", 2.0).await;
    println!("--- alerter /metrics with SMTP down ---\n{text}");
    assert_eq!(sample(&text, "dtwin_alerter_smtp_up"), Some(0.0));
    assert_eq!(
        sample(&text, "dtwin_alerter_notifications_spooled_total"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "dtwin_alerter_spool_pending"), Some(1.0));
    assert_eq!(sample(&text, "dtwin_alerter_mails_sent_total"), Some(0.0));
    assert!(sample(&text, "dtwin_alerter_events_total{kind=\"failed\"}").unwrap() >= 1.0);
    // The spool holds the mail: the alerter itself is healthy.
    let (status, body) = get(addr, "/healthz").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    stop.cancel();
    alerter.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_metrics_count_the_fleet_and_its_control_commands() {
    let broker = harness::embedded_broker();
    let addr = metrics_addr();
    let mut t = dtwin_twin_publisher::TwinConfig::new(broker.clone());
    t.common.client_id = Some(format!("obs-twin-{}", addr.port()));
    t.machines = 3;
    t.rate_hz = 20.0;
    t.common.metrics_listen = Some(addr);
    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let stop = CancellationToken::new();
    // Started through its readiness: a control command published before the twin
    // subscribed would be lost (no retained control), and that is not what this test checks.
    let twin = harness::start(
        dtwin_twin_publisher::TwinService::build(t).await.unwrap(),
        &stop,
    )
    .await;
    wait_status(addr, "/healthz", 200).await;
    let control = "dtwin/v1/control/twin";
    let client = recorder.client();
    let inject = r#"{"command":"inject","machine_id":"machine-002","fault":"bearing"}"#;
    let unknown = r#"{"command":"inject","machine_id":"machine-999","fault":"bearing"}"#;
    for payload in [inject, unknown, "not json"] {
        client
            .publish(control, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    let telemetry = |m: &dtwin_bus::Message| m.topic.ends_with("/telemetry");
    let deadline = tokio::time::Instant::now() + WAIT;
    while recorder.all().iter().filter(|m| telemetry(m)).count() < 30 {
        assert!(tokio::time::Instant::now() < deadline, "no telemetry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = |r: &Recorder| {
        r.all()
            .iter()
            .filter(|m| m.topic == "dtwin/v1/deadletter/twin")
            .count()
    };
    while dead(&recorder) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no dead letters");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = recorder.all().iter().filter(|m| telemetry(m)).count();
    // Counted right after each publish is queued: give the last increments a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = wait_metric(
        addr,
        "dtwin_twin_control_commands_total{result=\"applied\"}",
        1.0,
    )
    .await;
    println!("--- twin /metrics ---\n{text}");
    let published = sample(&text, "dtwin_twin_readings_published_total").unwrap();
    assert!(
        published >= received as f64,
        "{published} published, {received} received"
    );
    assert_eq!(sample(&text, "dtwin_twin_machines"), Some(3.0));
    assert_eq!(sample(&text, "dtwin_twin_publish_errors_total"), Some(0.0));
    assert_eq!(
        sample(
            &text,
            "dtwin_twin_control_commands_total{result=\"applied\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "dtwin_twin_control_commands_total{result=\"rejected\"}"
        ),
        Some(2.0)
    );
    assert_eq!(dead(&recorder), 2);
    stop.cancel();
    twin.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerter_and_twin_healthz_are_503_without_a_broker() {
    let port = dtwin_broker::free_port().unwrap();
    let nowhere = BrokerUrl::new("127.0.0.1", port);
    let dir = tempfile::tempdir().unwrap();
    let (aa, ta) = (metrics_addr(), metrics_addr());
    let stop = CancellationToken::new();
    let alerter = tokio::spawn(dtwin_alerter::run(
        alerter_config(&nowhere, dir.path(), aa),
        stop.clone(),
    ));
    let mut t = dtwin_twin_publisher::TwinConfig::new(nowhere);
    t.machines = 2;
    t.common.metrics_listen = Some(ta);
    let twin = tokio::spawn(dtwin_twin_publisher::run(t, stop.clone()));
    for addr in [aa, ta] {
        let body = wait_status(addr, "/healthz", 503).await;
        assert!(body.contains("broker link Down"), "{body}");
        assert_eq!(get(addr, "/metrics").await.unwrap().0, 200);
    }
    stop.cancel();
    alerter.await.unwrap().unwrap();
    // The twin queues its offline statuses for a broker that never came; it stops anyway.
    tokio::time::timeout(WAIT, twin)
        .await
        .expect("twin stops")
        .unwrap()
        .unwrap();
}
