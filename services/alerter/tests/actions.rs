//! People acting on alerts, end to end against the embedded broker: an acknowledgement over
//! `{prefix}/control/alerts/{machine}` stops the repeats, is kept in the retained alert state
//! and across a restart of the alerter (its spool), a second one is dead-lettered, and
//! clearing by hand ends the alert with its own event and e-mail.

use dtwin_alerter::{AlerterConfig, AlerterService};
use dtwin_bus::{BrokerUrl, BusConfig, Connection, QoS, Subscription};
use dtwin_schema::{
    AlertAction, AlertActionKind, AlertEvent, AlertEventKind, AlertSnapshot, DeadLetter, Level,
    MachineId, ModelRef, RejectReason, Risk, RiskStatus, Topics, ALERT_ACTION_SCHEMA, RISK_SCHEMA,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use time::macros::datetime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const T0: time::OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

fn machine() -> MachineId {
    MachineId::parse("m-9").expect("valid id")
}

fn verdict(secs: i64) -> Risk {
    Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: machine(),
        ts: T0 + time::Duration::seconds(secs),
        source_ts: T0,
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

fn action(alert_id: &str, kind: AlertActionKind, by: &str, secs: i64) -> AlertAction {
    AlertAction {
        schema: ALERT_ACTION_SCHEMA.to_owned(),
        machine_id: machine(),
        alert_id: alert_id.to_owned(),
        action: kind,
        by: by.to_owned(),
        comment: format!("{by}: bearing ordered"),
        ts: T0 + time::Duration::seconds(secs),
    }
}

type Alerter = (
    CancellationToken,
    JoinHandle<Result<(), dtwin_alerter::AlerterError>>,
);

async fn start(broker: &BrokerUrl, dir: &Path, port: u16) -> Alerter {
    let mut config = AlerterConfig::new(broker.clone());
    config.common.client_id = Some(format!("dtwin-alerter-actions-{port}"));
    config.outbox_dir = dir.to_path_buf();
    config.spool_dir = dir.join(".spool");
    config.policy.group_wait = time::Duration::ZERO;
    // Repeats every minute of verdict time, so an unacknowledged alert would repeat below.
    config.lifecycle.repeat_interval = time::Duration::minutes(1);
    let shutdown = CancellationToken::new();
    let alerter = AlerterService::build(config).await.expect("alerter builds");
    let task = dtwin_runtime::start_ready(alerter, shutdown.clone(), Duration::from_secs(15))
        .await
        .expect("alerter subscribed");
    (shutdown, task)
}

async fn stop((shutdown, task): Alerter) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("alerter stops")
        .expect("task joins")
        .expect("alerter ran cleanly");
}

/// What the probe saw, in order.
#[derive(Debug)]
enum Seen {
    Event(AlertEvent),
    State(AlertSnapshot),
    Dead(DeadLetter),
}

async fn publish(probe: &Connection, topic: String, payload: Vec<u8>) {
    probe
        .client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .expect("publish");
}

/// Receives until `done` holds for what was seen, failing after 10 s of silence.
async fn until(probe: &mut Connection, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    let topics = Topics::default();
    let mut seen = Vec::new();
    while !done(&seen) {
        let m = tokio::time::timeout(Duration::from_secs(10), probe.inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("more arrives; so far {seen:#?}"))
            .expect("inbox open");
        seen.push(if m.topic == topics.alert_state(&machine()) {
            Seen::State(dtwin_schema::from_json(&m.payload).expect("an alert state"))
        } else if m.topic == topics.deadletter("alerter") {
            Seen::Dead(dtwin_schema::from_json(&m.payload).expect("a dead letter"))
        } else {
            Seen::Event(dtwin_schema::from_json(&m.payload).expect("an alert event"))
        });
    }
    seen
}

fn events(seen: &[Seen]) -> Vec<&AlertEvent> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn has(seen: &[Seen], kind: AlertEventKind) -> bool {
    events(seen).iter().any(|e| e.event == kind)
}

fn dead(seen: &[Seen]) -> Option<&DeadLetter> {
    seen.iter().find_map(|s| match s {
        Seen::Dead(d) => Some(d),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_alert_stops_repeating_survives_a_restart_and_is_cleared_by_hand() {
    let port = dtwin_broker::free_port().expect("a free port");
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(
        ([127, 0, 0, 1], port).into(),
    ))
    .expect("broker starts");
    let broker = BrokerUrl::new("127.0.0.1", port);
    let dir = tempfile::tempdir().expect("temp dir");
    let topics = Topics::default();
    let m = machine();
    let mut probe = dtwin_bus::connect(
        &BusConfig::new(broker.clone(), "alerter-actions-probe"),
        vec![
            Subscription::new(topics.alert(&m), QoS::AtLeastOnce),
            Subscription::new(topics.alert_state(&m), QoS::AtLeastOnce),
            Subscription::new(topics.deadletter("alerter"), QoS::AtLeastOnce),
        ],
    );
    assert!(probe.client.wait_ready(Duration::from_secs(5)).await);
    let alerter = start(&broker, dir.path(), port).await;

    // Two AT_RISK verdicts fire the alert.
    for s in 0..2 {
        publish(&probe, topics.risk(&m), dtwin_schema::to_json(&verdict(s))).await;
    }
    let seen = until(&mut probe, |s| has(s, AlertEventKind::Sent)).await;
    let alert_id = events(&seen)[0].alert_id.clone();
    assert_eq!(alert_id, "m-9-20261122T100001000Z");

    // Acknowledged: an event with who and why, its mail, the retained state says so.
    let ack = action(&alert_id, AlertActionKind::Acknowledge, "ops", 30);
    publish(
        &probe,
        topics.alert_control(&m),
        dtwin_schema::to_json(&ack),
    )
    .await;
    let seen = until(&mut probe, |s| {
        has(s, AlertEventKind::Acknowledged)
            && events(s).iter().any(|e| e.event == AlertEventKind::Sent)
            && s.iter().any(|x| matches!(x, Seen::State(_)))
    })
    .await;
    let acked = events(&seen)
        .into_iter()
        .find(|e| e.event == AlertEventKind::Acknowledged)
        .expect("acknowledged");
    assert_eq!(acked.by.as_deref(), Some("ops"));
    assert_eq!(acked.comment.as_deref(), Some("ops: bearing ordered"));
    assert_eq!(acked.ts, T0 + time::Duration::seconds(30));
    let sent = events(&seen)
        .into_iter()
        .find(|e| e.event == AlertEventKind::Sent)
        .expect("sent");
    let file = sent.detail.clone().expect("the file");
    assert!(
        file.ends_with("m-9-20261122T100001000Z.acknowledged.eml"),
        "{file}"
    );
    let mail = std::fs::read_to_string(&file).expect("in the outbox");
    assert!(
        mail.contains(
            "Subject: [dtwin] ACKNOWLEDGED m-9: 90 % risk (CRITICAL, acknowledged by ops)"
        ),
        "{mail}"
    );
    let state = seen
        .iter()
        .find_map(|s| match s {
            Seen::State(st) => Some(st),
            _ => None,
        })
        .expect("a state");
    let by = state.firing.as_ref().and_then(|f| f.acknowledged.as_ref());
    assert_eq!(by.map(|a| a.by.as_str()), Some("ops"));

    // Verdicts for ten minutes of verdict time: no repeat. A bad action is the barrier: its
    // dead letter comes after anything those verdicts caused.
    for s in (60..=600).step_by(60) {
        publish(&probe, topics.risk(&m), dtwin_schema::to_json(&verdict(s))).await;
    }
    publish(&probe, topics.alert_control(&m), b"{not an action".to_vec()).await;
    let seen = until(&mut probe, |s| dead(s).is_some()).await;
    assert_eq!(dead(&seen).map(|d| d.reason), Some(RejectReason::NotJson));
    assert!(
        events(&seen).is_empty(),
        "no repeat after the acknowledgement: {seen:#?}"
    );

    // Restarted (same spool): still acknowledged.
    stop(alerter).await;
    let alerter = start(&broker, dir.path(), port).await;
    for s in (660..=1200).step_by(60) {
        publish(&probe, topics.risk(&m), dtwin_schema::to_json(&verdict(s))).await;
    }
    let again = action(&alert_id, AlertActionKind::Acknowledge, "anna", 1300);
    publish(
        &probe,
        topics.alert_control(&m),
        dtwin_schema::to_json(&again),
    )
    .await;
    let seen = until(&mut probe, |s| dead(s).is_some()).await;
    let d = dead(&seen).expect("dead letter");
    assert_eq!(d.reason, RejectReason::AlreadyAcknowledged);
    assert_eq!(
        d.detail,
        format!("alert {alert_id} was already acknowledged by ops at 2026-11-22T10:00:30Z")
    );
    assert!(
        events(&seen).is_empty(),
        "no repeat after the restart: {seen:#?}"
    );

    // Cleared by hand: its own event and mail; the state has no open alert.
    let clear = action(&alert_id, AlertActionKind::Clear, "anna", 1400);
    publish(
        &probe,
        topics.alert_control(&m),
        dtwin_schema::to_json(&clear),
    )
    .await;
    let seen = until(&mut probe, |s| {
        has(s, AlertEventKind::Sent) && s.iter().any(|x| matches!(x, Seen::State(_)))
    })
    .await;
    let kinds: Vec<AlertEventKind> = events(&seen).iter().map(|e| e.event).collect();
    assert_eq!(kinds, [AlertEventKind::Cleared, AlertEventKind::Sent]);
    assert_eq!(events(&seen)[0].by.as_deref(), Some("anna"));
    let file = events(&seen)[1].detail.clone().expect("the file");
    assert!(file.ends_with(".cleared.eml"), "{file}");
    let state = seen.iter().find_map(|s| match s {
        Seen::State(st) => Some(st),
        _ => None,
    });
    assert_eq!(state.map(|s| s.firing.is_none()), Some(true));
    // Acting on it now: refused, saying why.
    let late = action(&alert_id, AlertActionKind::Acknowledge, "ops", 1500);
    publish(
        &probe,
        topics.alert_control(&m),
        dtwin_schema::to_json(&late),
    )
    .await;
    let seen = until(&mut probe, |s| dead(s).is_some()).await;
    let d = dead(&seen).expect("dead letter");
    assert_eq!(d.reason, RejectReason::UnknownAlert);
    assert!(d.detail.contains("was cleared by anna"), "{}", d.detail);

    stop(alerter).await;
    probe.close().await;
}
