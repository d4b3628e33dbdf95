//! The alerter end to end against the embedded broker: verdicts in, outbox file and alert
//! events out, bad input to the dead-letter topic, clean stop on cancel.

use dtwin_alerter::{AlerterConfig, AlerterService};
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::{
    AlertEvent, AlertEventKind, DeadLetter, Level, MachineId, ModelRef, Risk, RiskStatus, Topics,
    RISK_SCHEMA,
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
