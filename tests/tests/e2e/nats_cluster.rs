//! dtwin on a real three-node NATS cluster (deploy/nats/, MQTT + JetStream, streams
//! replicated on all three): a connection given every node moves to a live one when its node
//! is killed with SIGKILL and resubscribes, and a persistent session (the alerter's) last
//! connected to the killed node resumes on another with the QoS 1 messages published while
//! it was away.

use dtwin_bus::{BusConfig, Connection, LinkState, QoS, Subscription};
use dtwin_tests::nats::{nats_or_skip, NatsCluster};
use std::time::{Duration, Instant};

async fn next_payload(conn: &mut Connection, within: Duration) -> Option<String> {
    let m = tokio::time::timeout(within, conn.inbox.recv())
        .await
        .ok()??;
    Some(String::from_utf8_lossy(&m.payload).into_owned())
}

/// Watches `conn` from now on: resolves with how long it took until its link, after going
/// down, was subscribed again (on whichever node).
fn watch_failover(conn: &Connection) -> tokio::task::JoinHandle<Duration> {
    let mut state = conn.client.link_state();
    let t0 = Instant::now();
    tokio::spawn(async move {
        // A watch shows the latest state only: Down may already be Connected when looked at.
        let _ = state.wait_for(|s| *s != LinkState::Subscribed).await;
        let _ = state.wait_for(|s| *s == LinkState::Subscribed).await;
        t0.elapsed()
    })
}

async fn failover_time(watch: tokio::task::JoinHandle<Duration>, what: &str) -> Duration {
    let took = tokio::time::timeout(Duration::from_secs(45), watch)
        .await
        .unwrap_or_else(|_| panic!("{what}: not subscribed on a live node within 45 s"))
        .unwrap();
    eprintln!("{what}: subscribed on a live node {took:?} after the kill");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_fails_over_to_a_live_node_and_a_persistent_session_resumes_there() {
    if std::env::var_os("DTWIN_TEST_LOG").is_some() {
        dtwin::telemetry::init(dtwin::telemetry::LogFormat::Pretty);
    }
    let Some(mut cluster) = nats_or_skip(NatsCluster::start()) else {
        return;
    };
    // A plain subscriber and a persistent one (clean session off, manual acks: the alerter's
    // settings) on node 1, a publisher on node 2; each is given all three nodes.
    let subs = || vec![Subscription::new("t/#", QoS::AtLeastOnce)];
    let mut plain = dtwin_bus::connect(&BusConfig::new(cluster.brokers(0), "plain"), subs());
    let mut persistent_cfg = BusConfig::new(cluster.brokers(0), "persistent");
    persistent_cfg.clean_session = false;
    persistent_cfg.manual_acks = true;
    let mut persistent = dtwin_bus::connect(&persistent_cfg, subs());
    let publisher = dtwin_bus::connect(&BusConfig::new(cluster.brokers(1), "pub"), vec![]);
    for c in [&plain, &persistent, &publisher] {
        assert!(c.client.wait_ready(Duration::from_secs(20)).await);
    }
    let send = |text: &str| {
        let client = publisher.client.clone();
        let text = text.to_owned();
        async move {
            client
                .publish("t/x", QoS::AtLeastOnce, false, text)
                .await
                .unwrap();
        }
    };
    send("before").await;
    assert_eq!(
        next_payload(&mut plain, Duration::from_secs(10))
            .await
            .as_deref(),
        Some("before")
    );
    let m = tokio::time::timeout(Duration::from_secs(10), persistent.inbox.recv())
        .await
        .unwrap()
        .unwrap();
    persistent.client.ack(&m).await.unwrap();

    // The persistent client goes away without a word (its socket dropped, as in a crash); its
    // session stays. Five QoS 1 messages wait in the session's stream meanwhile: the plain
    // subscriber seeing all five says NATS has them.
    persistent.task.abort();
    drop(persistent);
    for k in 0..5 {
        send(&format!("away-{k}")).await;
    }
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let p = next_payload(&mut plain, Duration::from_secs(10)).await;
        seen.push(p.expect("the plain subscriber gets every message"));
    }

    // Node 1, where the session was last connected, dies. The plain subscriber moves on; the
    // persistent client comes back (same id, node 1 first in its list) and lands elsewhere.
    let plain_back = watch_failover(&plain);
    cluster.kill(0);
    failover_time(plain_back, "plain subscriber").await;
    let t0 = Instant::now();
    let mut persistent = dtwin_bus::connect(&persistent_cfg, subs());
    assert!(
        persistent.client.wait_ready(Duration::from_secs(45)).await,
        "the persistent client subscribed on a live node"
    );
    eprintln!(
        "persistent session: back on a live node {:?} after it reconnected",
        t0.elapsed()
    );

    // QoS 1 is at least once: what was delivered before may come again (its ack can die with
    // the node). Every delivery is acknowledged; the five missed ones must all come.
    let want: Vec<String> = (0..5).map(|k| format!("away-{k}")).collect();
    let mut got: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < want.len() {
        let Ok(Some(m)) = tokio::time::timeout_at(deadline, persistent.inbox.recv()).await else {
            break;
        };
        persistent.client.ack(&m).await.unwrap();
        let p = String::from_utf8_lossy(&m.payload).into_owned();
        if p.starts_with("away-") && !got.contains(&p) {
            got.push(p);
        }
    }
    assert_eq!(
        got, want,
        "the session resumed on another node with what it missed"
    );

    // The plain subscriber resubscribed: new messages reach it on its new node.
    send("after").await;
    let mut seen = Vec::new();
    while let Some(p) = next_payload(&mut plain, Duration::from_secs(10)).await {
        let done = p == "after";
        seen.push(p);
        if done {
            break;
        }
    }
    assert_eq!(seen.last().map(String::as_str), Some("after"), "{seen:?}");

    // The killed node comes back with its data and serves again.
    cluster.restart(0).expect("node 1 restarts");
    let back = dtwin_bus::connect(&BusConfig::new(cluster.url(0), "back"), subs());
    assert!(
        back.client.wait_ready(Duration::from_secs(30)).await,
        "node 1 serves again"
    );
}
