//! A connection given several brokers skips the ones that do not answer: with the first URL
//! dead (nothing listens) it subscribes on the second, on a real embedded broker, and
//! messages flow. The cluster case (a node killed under a live connection) is tested against
//! a real three-node NATS cluster in tests/tests/e2e/nats_cluster.rs.

use dtwin_bus::{BrokerUrl, Brokers, BusConfig, QoS, Subscription};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_broker_is_skipped() {
    let port = dtwin_broker::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(addr)).unwrap();
    // Reserved and released: nothing listens there.
    let dead = dtwin_broker::free_port().unwrap();
    let brokers = Brokers::new(vec![
        BrokerUrl::new("127.0.0.1", dead),
        BrokerUrl::new("127.0.0.1", port),
    ])
    .unwrap();

    let t0 = Instant::now();
    let mut sub = dtwin_bus::connect(
        &BusConfig::new(brokers.clone(), "failover-sub"),
        vec![Subscription::new("failover/#", QoS::AtLeastOnce)],
    );
    assert!(
        sub.client.wait_ready(Duration::from_secs(5)).await,
        "subscribed on the second broker"
    );
    // One refused connect, then the next broker after the shortest backoff.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let publisher = dtwin_bus::connect(&BusConfig::new(brokers, "failover-pub"), vec![]);
    assert!(publisher.client.wait_ready(Duration::from_secs(5)).await);
    publisher
        .client
        .publish("failover/x", QoS::AtLeastOnce, false, b"hello".to_vec())
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.inbox.recv())
        .await
        .expect("the message arrives")
        .unwrap();
    assert_eq!(&m.payload[..], b"hello");
}
