//! `dtwin loadtest` on a light load reports consistent figures (not fast ones: nothing here is
//! timed): verdicts never exceed readings sent, percentiles are ordered, a light load loses
//! nothing, and the JSON has the documented fields.

use clap::Parser;
use dtwin::cli::{Cli, Command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_load_is_reported_consistently() {
    let Command::Loadtest(args) = Cli::try_parse_from([
        "dtwin",
        "loadtest",
        "--machines",
        "50",
        "--rate",
        "2",
        "--duration",
        "3",
        "--warmup",
        "1",
        "--connections",
        "2",
        "--qos",
        "1",
        "--json",
    ])
    .unwrap()
    .command
    else {
        unreachable!()
    };
    let r = dtwin::cmd::loadtest::run(args).await.unwrap();
    println!("{}", r.table());
    // 50 machines x 2 Hz x 3 s = 300 readings in the window (give or take a tick at the edges).
    assert!(
        (250.0..=350.0).contains(&(r.offered_per_s * r.measured_s)),
        "{r:?}"
    );
    assert!(r.verdicts_per_s <= r.offered_per_s);
    let delivered = r.delivered_per_s.expect("feature vectors probed");
    assert!(delivered <= r.offered_per_s && r.verdicts_per_s <= delivered + 1e-9);
    assert_eq!(r.steps.len(), 1);
    assert!(r.ramp.is_none());
    assert_eq!(r.processes[0].name, "loadtest");
    assert!(r.worst_machines.is_empty());
    assert_eq!(r.lost, 0, "a light load loses nothing: {r:?}");
    assert_eq!(r.loss_pct, 0.0);
    let l = r.latency.expect("latencies measured");
    assert!(
        0.0 <= l.p50_ms && l.p50_ms <= l.p95_ms && l.p95_ms <= l.p99_ms && l.p99_ms <= l.max_ms
    );
    assert!(r.cpu_s > 0.0 && r.peak_rss_mib > 0.0);
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    for field in [
        "machines",
        "target",
        "delivered_per_s",
        "worst_machines",
        "cpu_by_thread",
        "processes",
        "steps",
        "ramp",
        "rate_hz",
        "connections",
        "qos",
        "broker",
        "measured_s",
        "offered_per_s",
        "verdicts_per_s",
        "latency",
        "lost",
        "loss_pct",
        "duplicates",
        "cpu_s",
        "peak_rss_mib",
    ] {
        assert!(json.get(field).is_some(), "JSON has {field}");
    }
    assert_eq!(json["broker"], "embedded");
    assert_eq!(json["target"], "in-process");
    for field in ["p50_ms", "p95_ms", "p99_ms", "max_ms"] {
        assert!(
            json["latency"][field].is_number(),
            "JSON latency has {field}"
        );
    }
    // The broker's threads and the services' tokio threads both used CPU in the window.
    let groups: Vec<&str> = r.cpu_by_thread.iter().map(|(g, _)| g.as_str()).collect();
    assert!(
        groups.contains(&"broker") && groups.contains(&"tokio"),
        "{groups:?}"
    );
}

/// `--protocol sparkplug`: the same light load as Sparkplug B edge nodes through the
/// in-process Sparkplug host: every reading of the window gets a verdict (loss 0, the feature
/// service numbering the readings), with latencies from the readings' Sparkplug timestamps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_sparkplug_load_is_answered_in_full() {
    let Command::Loadtest(args) = Cli::try_parse_from([
        "dtwin",
        "loadtest",
        "--protocol",
        "sparkplug",
        "--machines",
        "50",
        "--rate",
        "2",
        "--duration",
        "3",
        "--warmup",
        "1",
        "--connections",
        "2",
        "--qos",
        "1",
    ])
    .unwrap()
    .command
    else {
        unreachable!()
    };
    assert_eq!(args.protocol, dtwin::cli::Protocol::Sparkplug);
    let r = dtwin::cmd::loadtest::run(args).await.unwrap();
    println!("{}", r.table());
    assert!(
        (250.0..=350.0).contains(&(r.offered_per_s * r.measured_s)),
        "{r:?}"
    );
    assert_eq!(r.lost, 0, "a light load loses nothing: {r:?}");
    assert!(
        (r.verdicts_per_s - r.offered_per_s).abs() < 1e-9,
        "every reading answered: {r:?}"
    );
    assert_eq!(r.duplicates, 0);
    let l = r.latency.expect("latencies from the Sparkplug timestamps");
    assert!(
        0.0 <= l.p50_ms && l.p50_ms <= l.p99_ms && l.p99_ms < 5_000.0,
        "{l:?}"
    );
}
