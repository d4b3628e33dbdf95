//! The alerter end to end against the embedded broker: verdicts in, outbox file and alert
//! events out, bad input to the dead-letter topic, clean stop on cancel.

use dtwin_alerter::{AlerterConfig, AlerterService, AnomalyConfig};
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::{
    AlertCause, AlertEvent, AlertEventKind, AlertSnapshot, DeadLetter, Level, MachineId, ModelRef,
    Risk, RiskStatus, Topics, RISK_SCHEMA,
};
use std::collections::BTreeMap;
use std::time::Duration;
use time::macros::datetime;
use tokio_util::sync::CancellationToken;

fn verdict(secs: i64) -> Risk {
    Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: MachineId::parse("m-7").expect("valid id"),
        ts: datetime!(2026-11-22 10:00:00 UTC) + time::Duration::seconds(secs),
        source_ts: datetime!(2026-11-22 10:00:00 UTC),
        seq: 1,
        probability: 0.9,
        status: RiskStatus::AtRisk,
        level: Level::Critical,
        health_score: 10.0,
        actions: Vec::new(),
        factors: Vec::new(),
        model: ModelRef {
            id: "rf".to_owned(),
            version: "1".to_owned(),
        },
        cold: false,
        latest: BTreeMap::from([("rpm".to_owned(), 1500.0)]),
        profile: None,
        insights: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_become_an_outbox_mail_and_alert_events() {
    let port = dtwin_broker::free_port().expect("a free port");
    let addr = ([127, 0, 0, 1], port).into();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(addr)).expect("broker starts");
    let broker = BrokerUrl::new("127.0.0.1", port);
    let outbox = tempfile::tempdir().expect("temp dir");
    let topics = Topics::default();

    let mut probe = dtwin_bus::connect(
        &BusConfig::new(broker.clone(), "alerter-test-probe"),
        vec![
            Subscription::new("dtwin/v1/alerts/+", QoS::AtLeastOnce),
            Subscription::new(topics.deadletter("alerter"), QoS::AtLeastOnce),
        ],
    );
    assert!(probe.client.wait_ready(Duration::from_secs(5)).await);

    let mut config = AlerterConfig::new(broker);
    config.common.client_id = Some(format!("dtwin-alerter-test-{port}"));
    config.outbox_dir = outbox.path().to_path_buf();
    config.spool_dir = outbox.path().join(".spool");
    let shutdown = CancellationToken::new();
    let alerter = AlerterService::build(config).await.expect("alerter builds");
    let alerter = dtwin_runtime::start_ready(alerter, shutdown.clone(), Duration::from_secs(15))
        .await
        .expect("alerter subscribed");

    let id = MachineId::parse("m-7").expect("valid id");
    let risk_topic = topics.risk(&id);
    probe
        .client
        .publish(&risk_topic, QoS::AtLeastOnce, false, b"{oops".to_vec())
        .await
        .expect("publish");
    let m = tokio::time::timeout(Duration::from_secs(5), probe.inbox.recv())
        .await
        .expect("the dead letter arrives")
        .expect("inbox open");
    let dead: DeadLetter = dtwin_schema::from_json(&m.payload).expect("a dead letter");
    assert_eq!(dead.service, "alerter");

    for s in 0..2 {
        let payload = dtwin_schema::to_json(&verdict(s));
        probe
            .client
            .publish(&risk_topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
    }
    let mut events = Vec::new();
    while events.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(5), probe.inbox.recv())
            .await
            .expect("alert events arrive")
            .expect("inbox open");
        if m.topic == topics.alert(&id) {
            let e: AlertEvent = dtwin_schema::from_json(&m.payload).expect("an alert event");
            events.push(e);
        }
    }
    assert_eq!(events[0].event, AlertEventKind::Firing);
    assert_eq!(events[1].event, AlertEventKind::Sent);
    let path = events[1].detail.clone().expect("sent names the file");
    assert!(
        path.ends_with("m-7-20261122T100001000Z.firing.eml"),
        "{path}"
    );
    let mail = std::fs::read_to_string(&path).expect("the mail is in the outbox");
    assert!(mail.contains("Subject: [dtwin] AT RISK m-7: 90 % risk (CRITICAL)"));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), alerter)
        .await
        .expect("alerter stops")
        .expect("task joins")
        .expect("alerter ran cleanly");
    probe.close().await;
}

/// `m-8`'s verdict `secs` seconds after 10:00 with an anomaly score (anomalous from 0.6 up).
fn scored(secs: i64, status: RiskStatus, anomaly: f64) -> Risk {
    let mut r = verdict(secs);
    r.machine_id = MachineId::parse("m-8").expect("valid id");
    r.status = status;
    (r.probability, r.level) = match status {
        RiskStatus::AtRisk => (0.9, Level::Critical),
        RiskStatus::Healthy => (0.1, Level::Normal),
    };
    r.insights.anomaly = Some(anomaly);
    r.insights.anomalous = Some(anomaly >= 0.6);
    r.insights.quality_risk = Some(0.25);
    r.insights.quality_at_risk = Some(false);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_anomaly_alerts_and_a_confirmed_failure_supersedes_it() {
    let port = dtwin_broker::free_port().expect("a free port");
    let addr = ([127, 0, 0, 1], port).into();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(addr)).expect("broker starts");
    let broker = BrokerUrl::new("127.0.0.1", port);
    let outbox = tempfile::tempdir().expect("temp dir");
    let topics = Topics::default();
    let id = MachineId::parse("m-8").expect("valid id");

    let mut probe = dtwin_bus::connect(
        &BusConfig::new(broker.clone(), "alerter-anomaly-probe"),
        vec![
            Subscription::new(topics.alert(&id), QoS::AtLeastOnce),
            Subscription::new(topics.alert_state(&id), QoS::AtLeastOnce),
        ],
    );
    assert!(probe.client.wait_ready(Duration::from_secs(5)).await);
    let mut config = AlerterConfig::new(broker);
    config.common.client_id = Some(format!("dtwin-alerter-anomaly-{port}"));
    config.outbox_dir = outbox.path().to_path_buf();
    config.spool_dir = outbox.path().join(".spool");
    config.anomaly = AnomalyConfig {
        fire_after: 3,
        resolve_after: 2,
    };
    config.policy.group_wait = time::Duration::ZERO;
    let shutdown = CancellationToken::new();
    let alerter = AlerterService::build(config).await.expect("alerter builds");
    let alerter = dtwin_runtime::start_ready(alerter, shutdown.clone(), Duration::from_secs(15))
        .await
        .expect("alerter subscribed");

    // Three anomalous verdicts (healthy otherwise) fire the anomaly alert, then two AT_RISK
    // verdicts confirm the failure risk: the failure alert supersedes it.
    let verdicts = [
        scored(0, RiskStatus::Healthy, 0.85),
        scored(1, RiskStatus::Healthy, 0.85),
        scored(2, RiskStatus::Healthy, 0.85),
        scored(3, RiskStatus::AtRisk, 0.9),
        scored(4, RiskStatus::AtRisk, 0.9),
    ];
    for v in &verdicts {
        probe
            .client
            .publish(
                &topics.risk(&id),
                QoS::AtLeastOnce,
                false,
                dtwin_schema::to_json(v),
            )
            .await
            .expect("publish");
    }
    let anomaly_id = "m-8-anomaly-20261122T100002000Z";
    let failure_id = "m-8-20261122T100004000Z";
    let mut events: Vec<AlertEvent> = Vec::new();
    let mut state: Option<AlertSnapshot> = None;
    let done = |events: &[AlertEvent]| {
        let has = |id: &str, kind| events.iter().any(|e| e.alert_id == id && e.event == kind);
        has(anomaly_id, AlertEventKind::Sent)
            && has(anomaly_id, AlertEventKind::Resolved)
            && has(failure_id, AlertEventKind::Sent)
    };
    while !done(&events) {
        let m = tokio::time::timeout(Duration::from_secs(10), probe.inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("alert events arrive; so far {events:#?}"))
            .expect("inbox open");
        if m.topic == topics.alert_state(&id) {
            state = Some(dtwin_schema::from_json(&m.payload).expect("an alert state"));
        } else {
            events.push(dtwin_schema::from_json(&m.payload).expect("an alert event"));
        }
    }
    let of = |alert: &str| -> Vec<AlertEventKind> {
        events
            .iter()
            .filter(|e| e.alert_id == alert)
            .map(|e| e.event)
            .collect()
    };
    let anomaly = of(anomaly_id);
    assert_eq!(anomaly[0], AlertEventKind::Firing, "{anomaly:?}");
    assert_eq!(anomaly.len(), 3, "firing, sent, resolved: {anomaly:?}");
    assert_eq!(
        of(failure_id),
        [AlertEventKind::Firing, AlertEventKind::Sent]
    );
    // The anomaly alert resolves just before the failure alert fires, and says why.
    let resolved = events
        .iter()
        .position(|e| e.alert_id == anomaly_id && e.event == AlertEventKind::Resolved)
        .expect("resolved");
    assert_eq!(events[resolved + 1].alert_id, failure_id);
    assert_eq!(
        events[resolved].detail.as_deref(),
        Some("anomaly alert: score 0.90; superseded by the failure alert m-8-20261122T100004000Z")
    );
    // Every event names its alert's cause.
    for e in &events {
        let want = if e.alert_id == anomaly_id {
            AlertCause::Anomaly
        } else {
            AlertCause::Failure
        };
        assert_eq!(e.cause, Some(want), "{e:?}");
    }
    assert_eq!(
        state.and_then(|s| s.firing).map(|f| f.alert_id),
        Some(failure_id.to_owned()),
        "one alert per machine: the failure alert"
    );

    let sent = |alert: &str| {
        let e = events
            .iter()
            .find(|e| e.alert_id == alert && e.event == AlertEventKind::Sent)
            .expect("sent");
        std::fs::read_to_string(e.detail.as_deref().expect("the file")).expect("in the outbox")
    };
    let mail = sent(anomaly_id);
    assert!(
        mail.contains("Subject: [dtwin] ANOMALY m-8: anomaly 0.85 (WARNING)"),
        "{mail}"
    );
    assert!(mail.contains("Cause:    sustained anomaly"), "{mail}");
    let mail = sent(failure_id);
    assert!(mail.contains("Subject: [dtwin] AT RISK m-8: 90 % risk (CRITICAL)"));
    assert!(mail.contains(&format!("In-Reply-To: <{anomaly_id}.firing@dtwin>")));
    assert!(
        mail.contains("Replaces: anomaly alert m-8-anomaly-20261122T100002000Z"),
        "{mail}"
    );
    assert!(
        mail.contains("Quality:  25 % risk of a NOK part (ok)"),
        "{mail}"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), alerter)
        .await
        .expect("alerter stops")
        .expect("task joins")
        .expect("alerter ran cleanly");
    probe.close().await;
}
