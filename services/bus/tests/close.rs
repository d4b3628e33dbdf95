//! A connection that publishes and closes at once loses nothing (on a real embedded broker).
//!
//! Regression: the poll task used to drop its socket 200 ms after the DISCONNECT with the
//! broker's last PUBACKs still unread; the kernel then sent a RST and the broker's kernel
//! discarded the publishes it had not read yet (whole connections' worth under load).

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
