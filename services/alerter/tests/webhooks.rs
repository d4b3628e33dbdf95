//! Webhook channels end to end: the alerter on the embedded broker, a local HTTP receiver
//! (axum) started by the test that is down, answers 5xx, hangs past the timeout, refuses for
//! good, then recovers. Every notification arrives, none twice without the duplicate mark,
//! retries show as `failed ... will retry` events, and the URL's secrets never appear in the
//! log output or the events.

use axum::http::{HeaderMap, StatusCode, Uri};
use dtwin_alerter::{AlerterConfig, AlerterService, RetryPolicy};
use dtwin_bus::{BrokerUrl, BusConfig, Connection, QoS, Subscription};
use dtwin_schema::{
    AlertAction, AlertActionKind, AlertEvent, AlertEventKind, Level, MachineId, ModelRef, Risk,
    RiskStatus, Topics, ALERT_ACTION_SCHEMA, RISK_SCHEMA,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::macros::datetime;
use tokio_util::sync::CancellationToken;

const T0: time::OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);
const SECRET: &str = "SECRET";

/// What the receiver does with the next request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Behaviour {
    Ok,
    Status(u16),
    /// Read the request, then answer only after the alerter gave up on it.
    Hang,
}

/// One request the receiver read.
#[derive(Debug, Clone)]
struct Seen {
    delivery: String,
    duplicate: bool,
    answered: Behaviour,
    uri: String,
    body: serde_json::Value,
}

#[derive(Clone, Default)]
struct Receiver {
    plan: Arc<Mutex<VecDeque<Behaviour>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn hook(
    axum::extract::State(r): axum::extract::State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let next = r.plan.lock().unwrap().pop_front().unwrap_or(Behaviour::Ok);
    let header = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    r.seen.lock().unwrap().push(Seen {
        delivery: header("x-dtwin-delivery-id"),
        duplicate: header("x-dtwin-possible-duplicate") == "yes",
        answered: next,
        uri: uri.to_string(),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    match next {
        Behaviour::Ok => StatusCode::OK,
        Behaviour::Status(code) => StatusCode::from_u16(code).unwrap(),
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            StatusCode::OK
        }
    }
}

async fn serve(port: u16, r: Receiver) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(hook))
        .with_state(r);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("binds the reserved port");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serves");
    })
}

/// Log output, captured for the whole test binary.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    })
    .clone()
}

fn verdict(machine: &str, secs: i64) -> Risk {
    Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: MachineId::parse(machine).expect("valid id"),
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
        latest: BTreeMap::new(),
        profile: None,
        insights: Default::default(),
    }
}

async fn publish(probe: &Connection, topic: String, payload: Vec<u8>) {
    probe
        .client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .expect("publish");
}

/// Receives alert events until `done`, failing after 20 s of silence.
async fn events_until(
    probe: &mut Connection,
    events: &mut Vec<AlertEvent>,
    done: impl Fn(&[AlertEvent]) -> bool,
) {
    while !done(events) {
        let m = tokio::time::timeout(Duration::from_secs(20), probe.inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("more events arrive; so far {events:#?}"))
            .expect("inbox open");
        events.push(dtwin_schema::from_json(&m.payload).expect("an alert event"));
    }
}

fn count(events: &[AlertEvent], kind: AlertEventKind, channel: Option<&str>) -> usize {
    events
        .iter()
        .filter(|e| e.event == kind && e.channel.as_deref() == channel)
        .count()
}

async fn alerter(
    broker: &BrokerUrl,
    dir: &std::path::Path,
    id: &str,
    webhook: String,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), dtwin_alerter::AlerterError>>,
) {
    let mut config = AlerterConfig::new(broker.clone());
    config.common.client_id = Some(id.to_owned());
    config.outbox_dir = dir.to_path_buf();
    config.spool_dir = dir.join(".spool");
    config.policy.group_wait = time::Duration::ZERO;
    config.webhook_url = Some(webhook);
    config.webhook_timeout = Duration::from_millis(400);
    config.retry = RetryPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
    };
    let shutdown = CancellationToken::new();
    let service = AlerterService::build(config).await.expect("alerter builds");
    let task = dtwin_runtime::start_ready(service, shutdown.clone(), Duration::from_secs(15))
        .await
        .expect("alerter subscribed");
    (shutdown, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_notification_reaches_a_flaky_receiver_once_unmarked_and_no_secret_is_logged() {
    let logs = capture_logs();
    let port = dtwin_broker::free_port().expect("a free port");
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(
        ([127, 0, 0, 1], port).into(),
    ))
    .expect("broker starts");
    let broker = BrokerUrl::new("127.0.0.1", port);
    let dir = tempfile::tempdir().expect("temp dir");
    let topics = Topics::default();
    let hook_port = dtwin_broker::free_port().expect("a free port");
    let url =
        format!("http://ops:{SECRET}PW@127.0.0.1:{hook_port}/hooks/{SECRET}PATH?token={SECRET}Q");
    let mut probe = dtwin_bus::connect(
        &BusConfig::new(broker.clone(), "webhook-probe"),
        vec![Subscription::new(
            topics.all(dtwin_schema::TopicKind::Alert),
            QoS::AtLeastOnce,
        )],
    );
    assert!(probe.client.wait_ready(Duration::from_secs(5)).await);
    let (shutdown, task) = alerter(
        &broker,
        dir.path(),
        &format!("dtwin-alerter-hooks-{port}"),
        url,
    )
    .await;

    // The receiver is down: five machines fire meanwhile.
    let machines: Vec<String> = (0..5).map(|i| format!("m-{i}")).collect();
    for m in &machines {
        for s in 0..2 {
            let id = MachineId::parse(m).unwrap();
            publish(
                &probe,
                topics.risk(&id),
                dtwin_schema::to_json(&verdict(m, s)),
            )
            .await;
        }
    }
    let mut events = Vec::new();
    events_until(&mut probe, &mut events, |e| {
        count(e, AlertEventKind::Failed, Some("webhook")) >= 3
            && count(e, AlertEventKind::Sent, None) == 5
    })
    .await;
    // Up, but it answers 503 twice, then hangs past the timeout twice, then works.
    let receiver = Receiver::default();
    receiver.plan.lock().unwrap().extend([
        Behaviour::Status(503),
        Behaviour::Status(500),
        Behaviour::Hang,
        Behaviour::Hang,
    ]);
    let server = serve(hook_port, receiver.clone()).await;
    events_until(&mut probe, &mut events, |e| {
        count(e, AlertEventKind::Sent, Some("webhook")) == 5
    })
    .await;
    // Acknowledged (nothing for Alertmanager) and cleared (resolved there).
    let fired: BTreeMap<String, String> = events
        .iter()
        .filter(|e| e.event == AlertEventKind::Firing)
        .map(|e| (e.machine_id.to_string(), e.alert_id.clone()))
        .collect();
    let firing_id = |m: &str| fired[m].clone();
    for (m, kind) in [
        ("m-0", AlertActionKind::Acknowledge),
        ("m-1", AlertActionKind::Clear),
    ] {
        let a = AlertAction {
            schema: ALERT_ACTION_SCHEMA.to_owned(),
            machine_id: MachineId::parse(m).unwrap(),
            alert_id: firing_id(m),
            action: kind,
            by: "ops".into(),
            comment: String::new(),
            ts: T0 + time::Duration::seconds(60),
        };
        publish(
            &probe,
            topics.alert_control(&a.machine_id),
            dtwin_schema::to_json(&a),
        )
        .await;
    }
    events_until(&mut probe, &mut events, |e| {
        count(e, AlertEventKind::Sent, Some("webhook")) == 6
            && count(e, AlertEventKind::Sent, None) == 7
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Every notification arrived; none twice without the mark.
    let seen = receiver.seen();
    let ok: BTreeSet<String> = seen
        .iter()
        .filter(|s| s.answered == Behaviour::Ok)
        .map(|s| s.delivery.clone())
        .collect();
    let mut want: BTreeSet<String> = machines
        .iter()
        .map(|m| format!("{}.firing", firing_id(m)))
        .collect();
    want.insert(format!("{}.cleared", firing_id("m-1")));
    assert_eq!(ok, want, "{seen:#?}");
    for id in &want {
        // What the receiver kept (took, or read before hanging: the alerter cannot know)
        // without the mark: at most once. A 5xx is a refusal, not an arrival.
        let unmarked = seen
            .iter()
            .filter(|s| &s.delivery == id && !s.duplicate)
            .filter(|s| matches!(s.answered, Behaviour::Ok | Behaviour::Hang))
            .count();
        assert!(
            unmarked <= 1,
            "{id} arrived {unmarked} times unmarked: {seen:#?}"
        );
    }
    let hung: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.answered == Behaviour::Hang)
        .collect();
    assert_eq!(hung.len(), 2);
    // The retry after a timeout is marked: the receiver may have it already.
    let retried = seen
        .iter()
        .filter(|s| s.delivery == hung[0].delivery && s.answered == Behaviour::Ok);
    assert!(retried.clone().all(|s| s.duplicate), "{seen:#?}");
    // The format: Alertmanager's version 4; the cleared alert resolved.
    let cleared = seen
        .iter()
        .find(|s| s.delivery.ends_with(".cleared") && s.answered == Behaviour::Ok)
        .expect("the clearing");
    assert_eq!(cleared.body["version"], "4");
    assert_eq!(cleared.body["status"], "resolved");
    assert_eq!(cleared.body["alerts"][0]["labels"]["machine_id"], "m-1");
    assert_eq!(
        cleared.body["alerts"][0]["annotations"]["cleared_by"],
        "ops"
    );
    assert!(
        cleared.uri.contains("/hooks/SECRETPATH?token=SECRETQ"),
        "the URL as given: {}",
        cleared.uri
    );
    // Retries: each failure was an event that says so.
    let retries = count(&events, AlertEventKind::Failed, Some("webhook"));
    assert!(
        retries >= 3 + 4,
        "{retries} retries: refused while down, 503, 500, two timeouts"
    );
    assert!(events
        .iter()
        .filter(|e| e.event == AlertEventKind::Failed)
        .all(|e| e
            .detail
            .as_deref()
            .is_some_and(|d| d.ends_with("will retry"))));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("alerter stops")
        .expect("joins")
        .expect("ran cleanly");
    server.abort();
    probe.close().await;

    // Secrets: not in the log output (at trace level, every crate), not in any event.
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(
        text.contains("webhook (alertmanager, http://127.0.0.1"),
        "the channel is logged"
    );
    assert!(
        !text.contains(SECRET),
        "a secret in the logs:\n{}",
        text.lines()
            .filter(|l| l.contains(SECRET))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for e in &events {
        let json = String::from_utf8(dtwin_schema::to_json(e)).unwrap();
        assert!(!json.contains(SECRET), "{json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_a_permanent_failure_and_the_next_notification_still_goes() {
    let port = dtwin_broker::free_port().expect("a free port");
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(
        ([127, 0, 0, 1], port).into(),
    ))
    .expect("broker starts");
    let broker = BrokerUrl::new("127.0.0.1", port);
    let dir = tempfile::tempdir().expect("temp dir");
    let topics = Topics::default();
    let hook_port = dtwin_broker::free_port().expect("a free port");
    let receiver = Receiver::default();
    receiver
        .plan
        .lock()
        .unwrap()
        .push_back(Behaviour::Status(404));
    let server = serve(hook_port, receiver.clone()).await;
    let mut probe = dtwin_bus::connect(
        &BusConfig::new(broker.clone(), "webhook-4xx-probe"),
        vec![Subscription::new(
            topics.all(dtwin_schema::TopicKind::Alert),
            QoS::AtLeastOnce,
        )],
    );
    assert!(probe.client.wait_ready(Duration::from_secs(5)).await);
    let (shutdown, task) = alerter(
        &broker,
        dir.path(),
        &format!("dtwin-alerter-4xx-{port}"),
        format!("http://127.0.0.1:{hook_port}/hook"),
    )
    .await;
    for m in ["a-1", "a-2"] {
        for s in 0..2 {
            let id = MachineId::parse(m).unwrap();
            publish(
                &probe,
                topics.risk(&id),
                dtwin_schema::to_json(&verdict(m, s)),
            )
            .await;
        }
        // One after the other, so the first one meets the 404.
        let mut events = Vec::new();
        events_until(&mut probe, &mut events, |e| {
            e.iter()
                .any(|e| e.channel.is_some() && e.machine_id.as_str() == m)
        })
        .await;
        let e = events.iter().find(|e| e.channel.is_some()).unwrap();
        if m == "a-1" {
            assert_eq!(e.event, AlertEventKind::Failed);
            let d = e.detail.as_deref().unwrap_or_default();
            assert!(
                d.starts_with("refused, not retried: webhook (alertmanager, http://127.0.0.1:"),
                "{d}"
            );
            assert!(d.contains("HTTP 404"), "{d}");
        } else {
            assert_eq!(e.event, AlertEventKind::Sent, "{events:#?}");
        }
    }
    assert_eq!(receiver.seen().len(), 2, "the refused one is not retried");
    let failed = dir.path().join(".spool/channels/webhook/failed");
    assert_eq!(std::fs::read_dir(failed).unwrap().count(), 1);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("alerter stops")
        .expect("joins")
        .expect("ran cleanly");
    server.abort();
    probe.close().await;
}
