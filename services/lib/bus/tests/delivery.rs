//! Nothing is lost at the edges of a connection's life, on a real embedded broker:
//!
//! - a connection that publishes and closes at once loses nothing. Regression: the poll task
//!   used to drop its socket 200 ms after the DISCONNECT with the broker's last PUBACKs still
//!   unread; the kernel then sent a RST and the broker's kernel discarded the publishes it had
//!   not read yet (whole connections' worth under load);
//! - a consumer that publishes for every message (as the feature and inference services do)
//!   does not deadlock when its queues fill (the load test at 2x capacity used to stop dead).

use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use std::time::Duration;

const ROUNDS: usize = 30;
const PER_ROUND: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_queued_before_close_all_reach_the_broker() {
    let port = dtwin_broker::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(addr)).unwrap();
    let url = BrokerUrl::new("127.0.0.1", port);

    let mut cfg = BusConfig::new(url.clone(), "close-sub");
    cfg.inbox_capacity = ROUNDS * PER_ROUND;
    let mut sub = dtwin_bus::connect(&cfg, vec![Subscription::new("close/#", QoS::AtLeastOnce)]);
    assert!(sub.client.wait_ready(Duration::from_secs(10)).await);

    for round in 0..ROUNDS {
        // Three publishers at once, each closing right after queueing its last publish.
        let publishers: Vec<_> = (0..3)
            .map(|p| {
                let url = url.clone();
                tokio::spawn(async move {
                    let conn = dtwin_bus::connect(
                        &BusConfig::new(url, format!("close-pub-{round}-{p}")),
                        vec![],
                    );
                    assert!(conn.client.wait_ready(Duration::from_secs(10)).await);
                    for i in 0..PER_ROUND / 3 {
                        conn.client
                            .publish(
                                format!("close/{round}/{p}"),
                                QoS::AtLeastOnce,
                                false,
                                i.to_string(),
                            )
                            .await
                            .unwrap();
                    }
                    conn.close_within(Duration::from_secs(30)).await;
                })
            })
            .collect();
        for p in publishers {
            p.await.unwrap();
        }
        let mut got = 0;
        while got < PER_ROUND {
            match tokio::time::timeout(Duration::from_secs(10), sub.inbox.recv()).await {
                Ok(Some(m)) => {
                    assert!(
                        m.topic.starts_with(&format!("close/{round}/")),
                        "{}",
                        m.topic
                    );
                    got += 1;
                }
                _ => break,
            }
        }
        assert_eq!(got, PER_ROUND, "round {round}: every publish arrived");
    }
    sub.close().await;
}

/// A consumer that publishes for every message it takes never deadlocks, however small its
/// queues: with one connection, the poll task waits for inbox room while the worker waits for
/// request-queue room that only the poll task frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_consumer_that_publishes_does_not_deadlock() {
    const IN: usize = 3_000;
    const FAN_OUT: usize = 4;
    let port = dtwin_broker::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(addr)).unwrap();
    let url = BrokerUrl::new("127.0.0.1", port);

    let mut counter_cfg = BusConfig::new(url.clone(), "deadlock-counter");
    counter_cfg.inbox_capacity = IN * FAN_OUT;
    let mut counter = dtwin_bus::connect(
        &counter_cfg,
        vec![Subscription::new("out/#", QoS::AtLeastOnce)],
    );
    assert!(counter.client.wait_ready(Duration::from_secs(10)).await);

    // Tiny queues make the single-connection deadlock certain within a few messages.
    let mut cfg = BusConfig::new(url.clone(), "deadlock-worker");
    cfg.inbox_capacity = 1;
    cfg.request_capacity = 1;
    let (mut conn, publisher) =
        dtwin_bus::connect_with_publisher(&cfg, vec![Subscription::new("in/#", QoS::AtLeastOnce)]);
    assert!(conn.client.wait_ready(Duration::from_secs(10)).await);
    assert!(publisher.client.wait_ready(Duration::from_secs(10)).await);
    let worker = tokio::spawn(async move {
        let mut taken = 0;
        while taken < IN {
            let Some(m) = conn.inbox.recv().await else {
                break;
            };
            for k in 0..FAN_OUT {
                publisher
                    .client
                    .publish(
                        format!("out/{k}"),
                        QoS::AtLeastOnce,
                        false,
                        m.payload.to_vec(),
                    )
                    .await
                    .unwrap();
            }
            taken += 1;
        }
        (conn, publisher, taken)
    });

    let flood = dtwin_bus::connect(&BusConfig::new(url, "deadlock-flood"), vec![]);
    assert!(flood.client.wait_ready(Duration::from_secs(10)).await);
    for i in 0..IN {
        flood
            .client
            .publish("in/x", QoS::AtLeastOnce, false, i.to_string())
            .await
            .unwrap();
    }
    flood.close_within(Duration::from_secs(30)).await;

    let (conn, publisher, taken) = tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .expect("the worker took every message (no deadlock)")
        .unwrap();
    assert_eq!(taken, IN);
    let mut got = 0;
    while got < IN * FAN_OUT {
        match tokio::time::timeout(Duration::from_secs(10), counter.inbox.recv()).await {
            Ok(Some(_)) => got += 1,
            _ => break,
        }
    }
    assert_eq!(
        got,
        IN * FAN_OUT,
        "every message the worker published arrived"
    );
    tokio::join!(conn.close(), publisher.close(), counter.close());
}
