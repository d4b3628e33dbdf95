//! `dtwin up` builds each service's config through the same flag groups as the service's own
//! subcommand, so a service flag given to `up` reaches the service.

use clap::Parser;
use dtwin::cli::{Cli, Command};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const FEATURE_FLAGS: [&str; 10] = [
    "--workers",
    "3",
    "--reorder-tolerance",
    "9",
    "--reorder-hold-ms",
    "250",
    "--idle-evict-s",
    "30",
    "--max-lag-s",
    "2.5",
];

fn up_args(extra: &[&str]) -> dtwin::cli::UpArgs {
    let mut argv = vec![
        "dtwin",
        "up",
        "--summary-every",
        "0",
        "--dashboard-listen",
        "127.0.0.1:0",
    ];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("flags parse").command {
        Command::Up(a) => a,
        other => panic!("parsed {other:?}"),
    }
}

#[test]
fn feature_flags_given_to_up_build_the_same_config_as_dtwin_feature() {
    let stack = dtwin::cmd::up::Stack::from_args(&up_args(&FEATURE_FLAGS)).unwrap();
    let f = &stack.feature;
    assert_eq!(f.workers, 3);
    assert_eq!((f.order.tolerance, f.order.max_hold_ms), (9, 250));
    assert_eq!(f.idle_evict, Duration::from_secs(30));
    assert_eq!(f.max_lag, Some(Duration::from_secs_f64(2.5)));

    let mut argv = vec!["dtwin", "feature"];
    argv.extend_from_slice(&FEATURE_FLAGS);
    let Command::Feature(alone) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let alone = alone.config().unwrap();
    assert_eq!(
        (alone.workers, alone.order, alone.idle_evict, alone.max_lag),
        (f.workers, f.order, f.idle_evict, f.max_lag),
        "dtwin up and dtwin feature read the flags the same way"
    );
    // One window configuration and telemetry QoS for the whole stack.
    assert_eq!(
        format!("{:?}", f.window),
        format!("{:?}", stack.inference.window)
    );
    assert_eq!(f.telemetry_qos, stack.twin.qos);
}

/// A profile given to `up` reaches the feature service, the alerter and the dashboard, and the
/// map the feature service; `dtwin alerter` and `dtwin dashboard` take the same flag.
#[test]
fn profiles_given_to_up_reach_every_service_that_shows_or_reads_readings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pump.toml");
    std::fs::write(
        &file,
        "id = \"pump\"\nlabel = \"Pump\"\n[[sensor]]\nname = \"volt\"\nunit = \"V\"\nrange = [0.0, 400.0]\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let stack = dtwin::cmd::up::Stack::from_args(&up_args(&[
        "--profile",
        path,
        "--profile-map",
        "pump-*=pump",
    ]))
    .unwrap();
    let ids = |p: &[dtwin_profile::Profile]| p.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&stack.feature.profiles), ["pump"]);
    assert_eq!(
        stack.feature.profile_map,
        [("pump-*".to_owned(), "pump".to_owned())]
    );
    assert_eq!(ids(&stack.alerter.profiles), ["pump"]);
    assert_eq!(ids(&stack.dashboard.profiles), ["pump"]);
    for service in ["alerter", "dashboard"] {
        let argv = ["dtwin", service, "--profile", path];
        let parsed = Cli::try_parse_from(argv).unwrap().command;
        let got = match parsed {
            Command::Alerter(a) => ids(&a.config().unwrap().profiles),
            Command::Dashboard(a) => ids(&a.config().unwrap().profiles),
            other => panic!("parsed {other:?}"),
        };
        assert_eq!(got, ["pump"], "dtwin {service} --profile");
    }
}

#[test]
fn up_refuses_a_nonsense_feature_flag_as_dtwin_feature_does() {
    let err = dtwin::cmd::up::Stack::from_args(&up_args(&["--max-lag-s=-1"])).unwrap_err();
    assert!(err.to_string().contains("--max-lag-s"), "{err}");
}

/// The running feature service under `up` has the workers `--workers` asked for: its
/// per-worker gauges on the shared metrics endpoint name workers 0, 1 and 2, and no 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_set_through_up_reach_the_running_feature_service() {
    let port = dtwin_broker::free_port().unwrap().to_string();
    let metrics_port = dtwin_broker::free_port().unwrap();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let outbox = tempfile::tempdir().unwrap();
    let mut flags = vec![
        "--port",
        &port,
        "--metrics-listen",
        &metrics,
        "--machines",
        "2",
        "--outbox",
        outbox.path().to_str().unwrap(),
    ];
    flags.extend_from_slice(&FEATURE_FLAGS);
    let stop = CancellationToken::new();
    let stack = tokio::spawn(dtwin::cmd::up::run_until(up_args(&flags), stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        let text = tokio::task::spawn_blocking({
            let metrics = metrics.clone();
            move || scrape(&metrics)
        })
        .await
        .unwrap();
        if text
            .as_deref()
            .is_some_and(|t| t.contains("dtwin_feature_queue_depth"))
        {
            break text.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no feature metrics on {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for w in 0..3 {
        assert!(
            body.contains(&format!("dtwin_feature_queue_depth{{worker=\"{w}\"}}")),
            "worker {w} missing:\n{body}"
        );
    }
    assert!(
        !body.contains("dtwin_feature_queue_depth{worker=\"3\"}"),
        "a fourth worker:\n{body}"
    );
    stop.cancel();
    stack.await.unwrap().unwrap();
}

/// GET /metrics over plain HTTP/1.0; `None` while nothing listens.
fn scrape(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn broker_clusters_are_given_as_a_comma_list_or_a_repeated_flag() {
    let nodes = "mqtt://127.0.0.1:1891,mqtt://127.0.0.1:1892,mqtt://127.0.0.1:1893";
    let listed = dtwin::cmd::up::Stack::from_args(&up_args(&["--broker", nodes])).unwrap();
    let repeated = dtwin::cmd::up::Stack::from_args(&up_args(&[
        "--broker",
        "mqtt://127.0.0.1:1891",
        "--broker",
        "mqtt://127.0.0.1:1892,mqtt://127.0.0.1:1893",
    ]))
    .unwrap();
    assert_eq!(listed.broker.to_string(), nodes);
    assert_eq!(repeated.broker, listed.broker, "both forms give one list");
    for common in [
        &listed.twin.common,
        &listed.feature.common,
        &listed.inference.common,
        &listed.alerter.common,
        &listed.dashboard.common,
        &listed.sparkplug.common,
    ] {
        assert_eq!(
            common.broker, listed.broker,
            "every service gets every node"
        );
    }
    let embedded = dtwin::cmd::up::Stack::from_args(&up_args(&["--port", "1999"])).unwrap();
    assert_eq!(embedded.broker.to_string(), "mqtt://127.0.0.1:1999");

    for service in ["twin", "feature", "inference", "alerter", "dashboard"] {
        let bus = match Cli::try_parse_from(["dtwin", service, "--broker", nodes])
            .unwrap()
            .command
        {
            Command::Twin(a) => a.bus,
            Command::Feature(a) => a.bus,
            Command::Inference(a) => a.bus,
            Command::Alerter(a) => a.bus,
            Command::Dashboard(a) => a.bus,
            other => panic!("parsed {other:?}"),
        };
        assert_eq!(bus.brokers(), listed.broker, "dtwin {service}");
    }
    let Command::Feature(f) = Cli::try_parse_from(["dtwin", "feature"]).unwrap().command else {
        unreachable!()
    };
    assert_eq!(
        f.config().unwrap().common.broker.to_string(),
        "mqtt://127.0.0.1:1883"
    );
    let bad = Cli::try_parse_from(["dtwin", "feature", "--broker", "mqtt://a,,mqtt://b"]);
    assert!(bad.is_err(), "an empty item is refused");
}
