//! A stalled QoS 1 subscriber on the embedded broker: a raw rumqttc client stops polling for a
//! few seconds while a publisher sends QoS 1 messages at a steady rate. With a backlog sized
//! for the stall ([`dtwin_broker::BrokerConfig::with_backlog`]) it receives every message
//! afterwards; with a backlog shorter than the stall, rumqttd jumps its cursor past the oldest
//! segment and the messages in between are lost (the second test shows the first one is not
//! vacuous). `full_scale_old_vs_new` (ignored, ~20 s) is the fleet-sized case of docs/performance.md
//! "Stalls": 10,000 msg/s of 1 KiB, 5 s stall, old fixed bound vs the default. What is lost
//! is counted by [`dtwin_broker::skips`].

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Passes rumqttd's WARN events to [`dtwin_broker::skips::observe`], as `dtwin`'s subscriber
/// does; nothing else is recorded.
struct Skips;

impl tracing::Subscriber for Skips {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        dtwin_broker::skips::interesting(meta)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        dtwin_broker::skips::observe(event);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn count_skips() {
    // Once per test binary; the router runs on its own thread, so it must be global.
    let _ = tracing::subscriber::set_global_default(Skips);
}

const TOPIC: &str = "stall/features";
const PAYLOAD_BYTES: usize = 1024;

/// What the subscriber got.
#[derive(Debug)]
struct Outcome {
    published: u64,
    received: u64,
    /// Time from the end of the stall to the last message received.
    drain: Duration,
}

fn broker(config: impl FnOnce(SocketAddr) -> dtwin_broker::BrokerConfig) -> u16 {
    count_skips();
    let port = dtwin_broker::free_port().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    dtwin_broker::start(&config(addr)).unwrap();
    port
}

/// Publishes `rate` msg/s for `publish_for` at QoS 1 while the subscriber stops polling from
/// 0.5 s after the start for `stall`; returns what the subscriber received (distinct messages).
async fn stalled_subscriber(
    port: u16,
    rate: u64,
    publish_for: Duration,
    stall: Duration,
) -> Outcome {
    let mut sub_opts = MqttOptions::new(format!("stall-sub-{port}"), "127.0.0.1", port);
    // No pings while stalled: the broker must not drop the connection for keep-alive.
    sub_opts.set_keep_alive(Duration::from_secs(120));
    let (sub, mut sub_events) = AsyncClient::new(sub_opts, 16);
    sub.subscribe(TOPIC, QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = sub_events.poll().await.unwrap() {
            break;
        }
    }

    let mut pub_opts = MqttOptions::new(format!("stall-pub-{port}"), "127.0.0.1", port);
    pub_opts.set_keep_alive(Duration::from_secs(30));
    pub_opts.set_inflight(1000);
    let (publisher, mut pub_events) = AsyncClient::new(pub_opts, 4096);
    tokio::spawn(async move { while pub_events.poll().await.is_ok() {} });

    let start = Instant::now();
    let total = rate * publish_for.as_millis() as u64 / 1000;
    let publishing = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut seq = 0u64;
        while seq < total {
            tick.tick().await;
            // Catch up to the wall clock, so a slow tick does not lower the rate.
            let due = (rate * start.elapsed().as_millis() as u64 / 1000).min(total);
            while seq < due {
                let mut payload = vec![b'x'; PAYLOAD_BYTES];
                payload[..8].copy_from_slice(&seq.to_be_bytes());
                publisher
                    .publish(TOPIC, QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
                seq += 1;
            }
        }
        publisher
    });

    let mut seen = HashSet::new();
    let stall_at = start + Duration::from_millis(500);
    let mut stalled = false;
    let mut last = Instant::now();
    loop {
        if !stalled && Instant::now() >= stall_at {
            stalled = true;
            tokio::time::sleep(stall).await;
        }
        let wait = if stalled {
            Duration::from_secs(3)
        } else {
            stall_at.saturating_duration_since(Instant::now())
        };
        match tokio::time::timeout(wait, sub_events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let seq = u64::from_be_bytes(p.payload[..8].try_into().unwrap());
                seen.insert(seq);
                last = Instant::now();
                if seen.len() as u64 == total {
                    break;
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("subscriber connection failed: {e}"),
            // Nothing for 3 s after the stall (and after the publisher is done): drained.
            Err(_) if stalled && publishing.is_finished() => break,
            Err(_) => {}
        }
    }
    drop(publishing.await.unwrap());
    let stall_end = stall_at + stall;
    Outcome {
        published: total,
        received: seen.len() as u64,
        drain: last.saturating_duration_since(stall_end),
    }
}

/// Small segments so that a few MiB of backlog are many segments: 2,000 msg/s of 1 KiB, a 3 s
/// stall (~6 MiB behind).
const SEGMENT: usize = 256 * 1024;
const RATE: u64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_within_the_backlog_loses_nothing() {
    let port = broker(|addr| {
        let mut c = dtwin_broker::BrokerConfig::new(addr);
        c.segment_bytes = SEGMENT;
        c.with_backlog(6.0, RATE as f64, PAYLOAD_BYTES + TOPIC.len())
    });
    let out = stalled_subscriber(port, RATE, Duration::from_secs(4), Duration::from_secs(3)).await;
    eprintln!("sized backlog: {out:?}");
    assert_eq!(out.received, out.published, "{out:?}");
    assert!(
        out.drain < Duration::from_secs(5),
        "latency recovers: {out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_longer_than_the_backlog_loses_messages() {
    let port = broker(|addr| {
        let mut c = dtwin_broker::BrokerConfig::new(addr);
        c.segment_bytes = SEGMENT;
        c.with_backlog(1.0, RATE as f64, PAYLOAD_BYTES + TOPIC.len())
    });
    let out = stalled_subscriber(port, RATE, Duration::from_secs(4), Duration::from_secs(3)).await;
    eprintln!(
        "1 s backlog, 3 s stall: {out:?}, skipped {} in {} jumps",
        dtwin_broker::skips::skipped(),
        dtwin_broker::skips::jumps()
    );
    assert!(out.received < out.published, "{out:?}");
    // Counted: every message lost is one the broker skipped (the other tests lose none).
    assert_eq!(
        dtwin_broker::skips::skipped(),
        out.published - out.received,
        "{out:?}"
    );
}

/// The fleet-sized case: 10,000 msg/s of 1 KiB, 5 s stall, rumqttd's old fixed bound (4 MiB x
/// 4) against the default. `cargo test -p dtwin-broker --release --test stall -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "~25 s at 10,000 msg/s; run by hand for docs/performance.md"]
async fn full_scale_old_vs_new() {
    let old = broker(|addr| {
        let mut c = dtwin_broker::BrokerConfig::new(addr);
        c.segment_count = dtwin_broker::DEFAULT_SEGMENT_COUNT;
        c
    });
    let out_old =
        stalled_subscriber(old, 10_000, Duration::from_secs(7), Duration::from_secs(5)).await;
    eprintln!(
        "old 4 MiB x 4: {out_old:?}, skipped {}",
        dtwin_broker::skips::skipped()
    );
    let new = broker(dtwin_broker::BrokerConfig::new);
    let out_new =
        stalled_subscriber(new, 10_000, Duration::from_secs(7), Duration::from_secs(5)).await;
    eprintln!("default backlog: {out_new:?}");
    assert_eq!(out_new.received, out_new.published, "{out_new:?}");
}
