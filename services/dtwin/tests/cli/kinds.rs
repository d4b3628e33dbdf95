//! The anomaly and quality kinds through the CLI (issue 19 items 1, 2 and 4): `dtwin train
//! --kind anomaly|quality`, `dtwin evaluate` of each, and `dtwin deploy` publishing each kind
//! retained on its own topic of the embedded broker; on a generated twin fleet, on a generated
//! run-to-failure plant export (`--healthy-first`, `--rul-truth`), and the mistakes, each with
//! an error that says what to do.

use crate::common::{dtwin_in, output_text, run, s};
use clap::Parser;
use dtwin::cli::{Cli, Command};
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A twin fleet: 20 machines, one plant day each (1,440 readings), seed 42.
fn fleet(dir: &Path) -> PathBuf {
    let csv = dir.join("fleet.csv");
    run(&[
        "generate",
        "--machines",
        "20",
        "--days",
        "1",
        "--seed",
        "42",
        "--out",
        s(&csv),
    ]);
    csv
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("--json prints only JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Deploys `model` with the CLI's own code to the embedded broker at `url`.
async fn deploy(url: &BrokerUrl, model: &Path) -> anyhow::Result<(String, String)> {
    let argv = ["dtwin", "deploy", s(model), "--broker", &url.to_string()];
    let Command::Deploy(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    dtwin::cmd::deploy::run(args).await
}

/// The retained messages under `dtwin/v1/models/#`, by topic, as a fresh subscriber sees them.
async fn retained_models(url: &BrokerUrl, expect: usize) -> Vec<(String, Value)> {
    let mut cfg = BusConfig::new(url.clone(), "kinds-watch");
    cfg.max_packet_bytes = 16 << 20;
    let mut watch = dtwin_bus::connect(
        &cfg,
        vec![Subscription::new("dtwin/v1/models/#", QoS::AtLeastOnce)],
    );
    assert!(watch.client.wait_ready(Duration::from_secs(10)).await);
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while got.len() < expect {
        let m = tokio::time::timeout_at(deadline, watch.inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {expect} retained models: {got:?}", got.len()))
            .unwrap();
        assert!(m.retain, "{} is retained", m.topic);
        got.push((m.topic.clone(), serde_json::from_slice(&m.payload).unwrap()));
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    got
}

/// Every kind goes to its own retained topic; a corrupt file never leaves the machine.
pub async fn deploy_by_kind(models: &[(&Path, &str)]) {
    let port = dtwin_broker::free_port().unwrap();
    let mut broker = dtwin_broker::BrokerConfig::new(format!("127.0.0.1:{port}").parse().unwrap());
    broker.max_payload_bytes = 16 << 20;
    dtwin_broker::start(&broker).unwrap();
    let url = BrokerUrl::new("127.0.0.1", port);
    for (model, _) in models {
        deploy(&url, model).await.unwrap();
    }
    let got = retained_models(&url, models.len()).await;
    let mut want: Vec<(&str, &Path)> = models.iter().map(|(m, t)| (*t, *m)).collect();
    want.sort_by(|a, b| a.0.cmp(b.0));
    for ((topic, payload), (want_topic, path)) in got.iter().zip(&want) {
        assert_eq!(topic, want_topic);
        let file: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(payload, &file, "{topic} carries {}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomaly_on_twin_telemetry_trains_and_deploys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = fleet(dir);
    let model = dir.join("anomaly.json");
    let out = run(&[
        "train",
        s(&data),
        "--kind",
        "anomaly",
        "--out",
        s(&model),
        "--json",
    ]);
    let r = json(&out);
    assert_eq!(r["kind"], "anomaly");
    assert_eq!(r["machines"]["test"], 4);
    assert!(
        r["healthy"]
            .as_str()
            .unwrap()
            .starts_with("readings with no degradation failure"),
        "{r}"
    );
    // The threshold flags the rate asked of the validation machines' healthy readings.
    assert!(f(&r["validation_healthy_flagged"]) <= 0.01 + 1e-9, "{r}");
    let artifact: Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(artifact["kind"], "anomaly");
    assert_eq!(artifact["recipe"]["kind"], "windows");
    assert!(artifact["isolation"].is_object() && artifact.get("forest").is_none());
    assert!(
        artifact["reference"]["features"].is_array(),
        "drift reference"
    );
    assert_eq!(artifact["anomaly"]["rate"], 0.01);

    // A rul model of a profile goes to models/{profile}/rul; the anomaly model to
    // models/milling/anomaly.
    let rul = crate::rul::trained_rul_model(dir);
    deploy_by_kind(&[
        (&model, "dtwin/v1/models/milling/anomaly"),
        (&rul, "dtwin/v1/models/pumps/rul"),
    ])
    .await;
}

#[test]
fn anomaly_mistakes_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = fleet(dir);
    let two = dir.join("two.csv");
    // The first two machines only.
    let text = std::fs::read_to_string(&data).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_owned();
    let id_col = header.split(',').position(|c| c == "machine_id").unwrap();
    let keep: String = lines
        .filter(|l| {
            let id = l.split(',').nth(id_col).unwrap();
            id.ends_with("-001") || id.ends_with("-002")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&two, format!("{header}\n{keep}")).unwrap();
    let out_model = dir.join("x.json");
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec!["train", s(&two), "--kind", "anomaly"],
            "needs at least 3",
        ),
        (
            vec![
                "train",
                s(&data),
                "--kind",
                "anomaly",
                "--target-recall",
                "0.9",
            ],
            "--anomaly-rate",
        ),
        (
            vec![
                "train",
                s(&data),
                "--kind",
                "anomaly",
                "--healthy-first",
                "2d5",
            ],
            "neither a number",
        ),
        (
            vec!["train", s(&data), "--anomaly-rate", "0.05"],
            "belong to --kind anomaly",
        ),
    ];
    for (mut args, want) in cases {
        args.extend(["--out", s(&out_model)]);
        let out = dtwin_in(&args, dir);
        let text = output_text(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(text.contains(want), "{args:?}: {text}");
    }
    if let Some(ai4i) = crate::common::ai4i_csv() {
        let out = dtwin_in(
            &[
                "train",
                s(&ai4i),
                "--kind",
                "anomaly",
                "--out",
                s(&out_model),
            ],
            dir,
        );
        assert!(!out.status.success());
        assert!(output_text(&out).contains("no machines and no history"));
    }
}
