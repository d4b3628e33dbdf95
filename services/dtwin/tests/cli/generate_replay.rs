//! `dtwin generate` writes data sets from the twin's physics (telemetry CSV and AI4I format),
//! and `dtwin replay` plays them back as live telemetry on a real broker: every valid row
//! arrives, a bad row is skipped with its line number, the rest go on.

use clap::Parser;
use dtwin::cli::{Cli, Command};
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::Telemetry;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn parse(argv: &[&str]) -> Command {
    Cli::try_parse_from(argv).expect("flags parse").command
}

#[test]
fn generate_telemetry_is_reproducible_and_ai4i_has_the_exact_header() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    for out in [&a, &b] {
        let Command::Generate(args) = parse(&[
            "dtwin",
            "generate",
            "--machines",
            "3",
            "--days",
            "0.1",
            "--seed",
            "5",
            "--out",
            out.to_str().unwrap(),
        ]) else {
            unreachable!()
        };
        // 0.1 day at one reading a minute = 144 steps x 3 machines.
        assert_eq!(dtwin::cmd::generate::run(&args, false).unwrap(), 432);
    }
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(&b).unwrap(),
        "same seed, same bytes"
    );
    assert_eq!(
        text.lines().next().unwrap(),
        dtwin_twin_sim::TELEMETRY_CSV_HEADER.join(",")
    );
    assert_eq!(text.lines().count(), 433);

    let ai4i = dir.path().join("ai4i.csv");
    let Command::Generate(args) = parse(&[
        "dtwin",
        "generate",
        "--format",
        "ai4i",
        "--rows",
        "500",
        "--out",
        ai4i.to_str().unwrap(),
    ]) else {
        unreachable!()
    };
    assert_eq!(dtwin::cmd::generate::run(&args, false).unwrap(), 500);
    let text = std::fs::read_to_string(&ai4i).unwrap();
    assert_eq!(text.lines().next().unwrap(), dtwin_twin_sim::AI4I_HEADER);
    assert_eq!(dtwin_twin_sim::read_ai4i_csv(&text).unwrap().len(), 500);
}

async fn replay_and_collect(
    url: &BrokerUrl,
    argv: Vec<String>,
    expect: usize,
) -> (Vec<Telemetry>, u64) {
    let mut sub = dtwin_bus::connect(
        &BusConfig::new(url.clone(), format!("replay-sub-{expect}")),
        vec![Subscription::new(
            "dtwin/v1/machines/+/telemetry",
            QoS::AtLeastOnce,
        )],
    );
    assert!(sub.client.wait_ready(Duration::from_secs(10)).await);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let Command::Replay(args) = parse(&argv) else {
        unreachable!()
    };
    let summary = dtwin::cmd::replay::run(args, CancellationToken::new())
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < expect {
        match tokio::time::timeout(Duration::from_secs(10), sub.inbox.recv()).await {
            Ok(Some(m)) => got.push(Telemetry::decode(&m.payload).unwrap()),
            _ => break,
        }
    }
    sub.close().await;
    assert_eq!(summary.published as usize, got.len());
    (got, summary.skipped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_plays_telemetry_and_ai4i_csv_back() {
    let port = dtwin_broker::free_port().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(
        format!("127.0.0.1:{port}").parse().unwrap(),
    ))
    .unwrap();
    let url = BrokerUrl::new("127.0.0.1", port);
    let dir = tempfile::tempdir().unwrap();

    // A recorded stream with one bad row in the middle.
    let rec = dir.path().join("recorded.csv");
    let Command::Generate(args) = parse(&[
        "dtwin",
        "generate",
        "--machines",
        "2",
        "--days",
        "0.01",
        "--out",
        rec.to_str().unwrap(),
    ]) else {
        unreachable!()
    };
    let rows = dtwin::cmd::generate::run(&args, false).unwrap() as usize;
    let mut lines: Vec<String> = std::fs::read_to_string(&rec)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.insert(
        5,
        "machine-001,2026-01-01T00:00:00Z,7,L,hot,,,,,,,,,,,".to_owned(),
    );
    std::fs::write(&rec, lines.join("\n")).unwrap();
    let (got, skipped) = replay_and_collect(
        &url,
        [
            "dtwin",
            "replay",
            rec.to_str().unwrap(),
            "--broker",
            &url.to_string(),
            "--rate",
            "0",
            "--keep-ts",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    )
    .await;
    assert_eq!(skipped, 1, "the bad row is skipped");
    assert_eq!(got.len(), rows, "every valid row arrives");
    assert!(got.iter().any(|t| t.machine_id.as_str() == "machine-002"));
    assert_eq!(
        got[0].ts,
        time::macros::datetime!(2026-01-01 00:00:00 UTC),
        "--keep-ts"
    );

    // AI4I format, one machine, temperatures in Celsius.
    let ai4i = dir.path().join("ai4i.csv");
    std::fs::write(&ai4i, {
        let mut buf = Vec::new();
        dtwin_twin_sim::write_ai4i_csv(&dtwin_twin_sim::ai4i_rows(30, 1), &mut buf).unwrap();
        // AI4I's own file starts with a UTF-8 BOM.
        [b"\xef\xbb\xbf".as_slice(), &buf].concat()
    })
    .unwrap();
    let (got, skipped) = replay_and_collect(
        &url,
        [
            "dtwin",
            "replay",
            ai4i.to_str().unwrap(),
            "--broker",
            &url.to_string(),
            "--rate",
            "0",
            "--machine",
            "mill-7",
        ]
        .map(String::from)
        .to_vec(),
        30,
    )
    .await;
    assert_eq!((got.len(), skipped), (30, 0));
    assert!(got.iter().all(|t| t.machine_id.as_str() == "mill-7"));
    let t = got.iter().find(|t| t.seq == 1).unwrap();
    assert!(
        (20.0..40.0).contains(&t.ambient_temperature_c.unwrap()),
        "{t:?}"
    );
}

#[test]
fn predict_scores_every_row_at_the_models_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fleet.csv");
    let Command::Generate(args) = parse(&[
        "dtwin",
        "generate",
        "--machines",
        "3",
        "--days",
        "0.05",
        "--out",
        data.to_str().unwrap(),
    ]) else {
        unreachable!()
    };
    let rows = dtwin::cmd::generate::run(&args, false).unwrap() as usize;
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../inference/models/default.json"
    );
    let out = dir.path().join("scored.csv");
    let Command::Predict(args) = parse(&[
        "dtwin",
        "predict",
        model,
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]) else {
        unreachable!()
    };
    assert_eq!(dtwin::cmd::predict::run(&args).unwrap(), rows);
    let artifact = dtwin_ml::ModelArtifact::from_json(&std::fs::read(model).unwrap()).unwrap();
    let mut r = csv::Reader::from_path(&out).unwrap();
    let mut n = 0;
    for rec in r.records() {
        let rec = rec.unwrap();
        let p: f64 = rec[3].parse().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(&rec[4] == "1", p >= artifact.threshold - 1e-6, "{rec:?}");
        n += 1;
    }
    assert_eq!(n, rows);
    // A file that is neither format is a clear error.
    let junk = dir.path().join("junk.csv");
    std::fs::write(&junk, "a,b\n1,2\n").unwrap();
    let Command::Predict(args) = parse(&[
        "dtwin",
        "predict",
        model,
        junk.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]) else {
        unreachable!()
    };
    let e = dtwin::cmd::predict::run(&args).unwrap_err();
    assert!(format!("{e:#}").contains("cannot tell the format"), "{e:#}");
}
