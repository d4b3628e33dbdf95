//! The Sparkplug host on the embedded broker: its STATE is online (retained) while it runs
//! and offline after a clean stop; data before birth gets a rebirth request, bad input dead
//! letters, each counted in its metrics; settings it cannot run with are refused at build.

use dtwin_bus::{BrokerUrl, BusConfig, Message, QoS, Subscription};
use dtwin_schema::{from_json, DeadLetter, RejectReason};
use dtwin_sparkplug::{by_alias, EdgeNode, EdgeNodeId, HostStateMessage, MetricValue};
use dtwin_sparkplug_host::{SparkplugHostConfig, SparkplugHostError, SparkplugHostService};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn broker() -> BrokerUrl {
    let port = dtwin_broker::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(addr)).unwrap();
    BrokerUrl::new("127.0.0.1", port)
}

async fn subscribe(url: &BrokerUrl, id: &str, filters: &[&str]) -> dtwin_bus::Connection {
    let subs = filters
        .iter()
        .map(|f| Subscription::new(*f, QoS::AtLeastOnce))
        .collect();
    let conn = dtwin_bus::connect(&BusConfig::new(url.clone(), id), subs);
    assert!(conn.client.wait_ready(Duration::from_secs(10)).await);
    conn
}

/// A connection and what it received that no wait took yet.
struct Watch {
    conn: dtwin_bus::Connection,
    seen: Vec<Message>,
}

impl Watch {
    /// The first message `pred` accepts (received before or within 10 s), taken.
    async fn next(&mut self, pred: impl Fn(&Message) -> bool) -> Message {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.conn.inbox.recv()).await {
                Ok(Some(m)) if pred(&m) => return m,
                Ok(Some(m)) => self.seen.push(m),
                _ => panic!("no such message in time; seen {:?}", self.seen),
            }
        }
    }
}

fn state(m: &Message) -> HostStateMessage {
    HostStateMessage::decode(&m.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_announces_itself_requests_rebirths_and_dead_letters() {
    let url = broker();
    let mut config = SparkplugHostConfig::new(url.clone());
    config.host_id = "test-host".into();
    let service = SparkplugHostService::build(config).await.unwrap();
    let metrics = service.metrics().clone();
    let stop = CancellationToken::new();
    let task = dtwin_runtime::start_ready(service, stop.clone(), Duration::from_secs(15))
        .await
        .unwrap();

    let mut watch = Watch {
        conn: subscribe(
            &url,
            "watch",
            &["spBv1.0/#", "dtwin/v1/deadletter/sparkplug"],
        )
        .await,
        seen: Vec::new(),
    };
    let online = watch.next(|m| m.topic == "spBv1.0/STATE/test-host").await;
    assert!(state(&online).online);

    // Data from a node the host has never seen born: a rebirth request.
    let mut edge = EdgeNode::new(EdgeNodeId::new("g", "e"), 3);
    let (topic, payload) = edge.ddata("d", &[by_alias(1, MetricValue::DoubleValue(1.0))], 1);
    watch
        .conn
        .client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    let ncmd = watch.next(|m| m.topic == "spBv1.0/g/NCMD/e").await;
    let request = dtwin_sparkplug::decode_payload(&ncmd.payload).unwrap();
    assert_eq!(
        request.metrics[0].name.as_deref(),
        Some("Node Control/Rebirth")
    );
    let dl = watch
        .next(|m| m.topic == "dtwin/v1/deadletter/sparkplug")
        .await;
    let dl: DeadLetter = from_json(&dl.payload).unwrap();
    assert_eq!(dl.reason, RejectReason::Sparkplug);
    assert!(dl.detail.starts_with("no_birth: "), "{}", dl.detail);

    // A topic of the namespace that is not a Sparkplug topic.
    watch
        .conn
        .client
        .publish("spBv1.0/g/NOPE/e", QoS::AtLeastOnce, false, b"x".to_vec())
        .await
        .unwrap();
    let dl = watch
        .next(|m| m.topic == "dtwin/v1/deadletter/sparkplug")
        .await;
    let dl: DeadLetter = from_json(&dl.payload).unwrap();
    assert!(dl.detail.starts_with("bad_topic: "), "{}", dl.detail);

    assert_eq!(metrics.rebirths.get(), 1);
    assert_eq!(metrics.readings.get(), 0);
    for reason in ["no_birth", "bad_topic"] {
        let n = metrics
            .dead_letters
            .get_or_create(&dtwin_obs::label("reason", reason))
            .get();
        assert_eq!(n, 1, "{reason}");
    }

    // A clean stop: STATE offline, retained, with the birth's timestamp.
    stop.cancel();
    task.await.unwrap().unwrap();
    let mut late = Watch {
        conn: subscribe(&url, "late", &["spBv1.0/STATE/+"]).await,
        seen: Vec::new(),
    };
    let retained = late.next(|m| m.topic == "spBv1.0/STATE/test-host").await;
    assert!(retained.retain);
    let offline = state(&retained);
    assert!(!offline.online);
    assert_eq!(offline.timestamp, state(&online).timestamp);
}

#[tokio::test]
async fn a_bad_host_id_or_scale_out_is_refused_at_build() {
    let url = BrokerUrl::new("127.0.0.1", 1);
    for bad in ["", "a/b", "a+", "#", &"x".repeat(65)] {
        let mut c = SparkplugHostConfig::new(url.clone());
        c.host_id = bad.to_owned();
        let e = SparkplugHostService::build(c).await.err().unwrap();
        assert!(matches!(e, SparkplugHostError::BadHostId(_)), "{bad}: {e}");
    }
    let mut c = SparkplugHostConfig::new(url.clone());
    c.common.instance = Some("a".into());
    let e = SparkplugHostService::build(c).await.err().unwrap();
    assert!(matches!(e, SparkplugHostError::ScaledOut), "{e}");
}
