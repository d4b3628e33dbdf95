//! The README's "Connecting your own machines", run as written: `dtwin profile init`, `dtwin
//! train`, `dtwin up --machines 0 --profile`, `dtwin deploy`, `dtwin replay --profile` on a
//! generated hourly export with a failure log. Every replayed machine gets verdicts from the
//! deployed plant model (its id, the profile on the verdict), the machines drifting into a
//! failure end up AT_RISK, and the alerter writes an e-mail naming the profile.

use crate::common::s;
use crate::plant::{export, HOURS, MACHINES};
use clap::Parser;
use dtwin::cli::{Cli, Command};
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::{from_json, Risk, RiskStatus};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn dtwin(args: &[&str], dir: &std::path::Path) {
    let out = crate::common::dtwin_in(args, dir);
    assert!(
        out.status.success(),
        "dtwin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn parse(argv: &[&str]) -> Command {
    Cli::try_parse_from(argv).expect("flags parse").command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_s_five_commands_give_live_verdicts_from_the_plant_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    export(dir);
    dtwin(
        &[
            "profile",
            "init",
            "telemetry.csv",
            "--id-column",
            "machineID",
            "--time-column",
            "datetime",
            "--out",
            "plant.toml",
        ],
        dir,
    );
    dtwin(
        &[
            "train",
            "telemetry.csv",
            "--profile",
            "plant.toml",
            "--id-column",
            "machineID",
            "--time-column",
            "datetime",
            "--events",
            "failures.csv",
            "--event-label-column",
            "failure",
            "--horizon",
            "24h",
            "--trees",
            "30",
            "--out",
            "plant-model.json",
        ],
        dir,
    );

    let port = dtwin_broker::free_port().unwrap().to_string();
    let url = format!("mqtt://127.0.0.1:{port}");
    let profile = s(&dir.join("plant.toml")).to_owned();
    let outbox = dir.join("outbox");
    let Command::Up(up) = parse(&[
        "dtwin",
        "up",
        "--summary-every",
        "0",
        "--dashboard-listen",
        "127.0.0.1:0",
        "--port",
        &port,
        "--machines",
        "0",
        "--profile",
        &profile,
        "--outbox",
        s(&outbox),
    ]) else {
        unreachable!()
    };
    let stop = CancellationToken::new();
    let stack = tokio::spawn(dtwin::cmd::up::run_until(up, stop.clone()));
    let broker = BrokerUrl::new("127.0.0.1", port.parse().unwrap());
    let watch = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let conn = dtwin_bus::connect(
                &BusConfig::new(broker.clone(), "plant-watch"),
                vec![Subscription::new(
                    "dtwin/v1/machines/+/risk".to_owned(),
                    QoS::AtLeastOnce,
                )],
            );
            if conn.client.wait_ready(Duration::from_secs(2)).await {
                break conn;
            }
            assert!(tokio::time::Instant::now() < deadline, "no broker");
        }
    };

    let model = s(&dir.join("plant-model.json")).to_owned();
    let Command::Deploy(deploy) = parse(&["dtwin", "deploy", &model, "--broker", &url]) else {
        unreachable!()
    };
    dtwin::cmd::deploy::run(deploy).await.unwrap();
    // The retained model reaches inference before the first vector is warm (3 readings).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data = s(&dir.join("telemetry.csv")).to_owned();
    let Command::Replay(replay) = parse(&[
        "dtwin",
        "replay",
        &data,
        "--profile",
        &profile,
        "--id-column",
        "machineID",
        "--time-column",
        "datetime",
        "--rate",
        "0",
        "--broker",
        &url,
    ]) else {
        unreachable!()
    };
    let summary = dtwin::cmd::replay::run(replay, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.published, u64::from(MACHINES * HOURS));

    // Every machine's last reading gets its verdict.
    let mut last: BTreeMap<String, Risk> = BTreeMap::new();
    let mut at_risk = 0;
    let mut watch = watch;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while last.values().filter(|r| r.seq == u64::from(HOURS)).count() < MACHINES as usize {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(Some(m)) = tokio::time::timeout(left, watch.inbox.recv()).await else {
            panic!(
                "verdicts on the last reading of {} of {MACHINES} machines",
                last.values().filter(|r| r.seq == u64::from(HOURS)).count()
            );
        };
        let r: Risk = from_json(&m.payload).unwrap();
        assert_eq!(r.profile.as_deref(), Some("plant"));
        if !r.cold {
            assert_eq!(r.model.id, "dtwin-rf", "scored by the deployed plant model");
        }
        at_risk += usize::from(r.status == RiskStatus::AtRisk);
        last.insert(r.machine_id.to_string(), r);
    }
    assert!(
        at_risk > 0,
        "the drift before failures raises some verdicts"
    );
    let mail = dtwin_tests_free_wait_for_eml(&outbox).await;
    assert!(mail.contains("plant"), "the e-mail names the profile");
    stop.cancel();
    stack.await.unwrap().unwrap();
}

/// The first .eml in `dir` within 30 s.
async fn dtwin_tests_free_wait_for_eml(dir: &std::path::Path) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "eml") {
                    return std::fs::read_to_string(e.path()).unwrap();
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no alert e-mail in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
