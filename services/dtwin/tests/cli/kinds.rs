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

    // Held out in training, the readings before a degradation failure score above the others
    // (measured: ROC-AUC 0.94 on this fleet's 4 held-out machines).
    let test = &r["test"];
    assert!(f(&test["roc_auc"]) > 0.85, "{test}");

    // evaluate scores the same held-out machines: the same ROC-AUC, and the card.
    let card = dir.join("card");
    let out = run(&[
        "evaluate",
        s(&model),
        s(&data),
        "--out-dir",
        s(&card),
        "--json",
    ]);
    let e = json(&out);
    assert_eq!(e["kind"], "anomaly");
    assert!(
        (f(&e["metrics"]["roc_auc"]) - f(&test["roc_auc"])).abs() < 1e-9,
        "{e}"
    );
    assert_eq!(e["rows"], test["rows"]);
    assert!(f(&e["healthy_flagged"]) < 0.03, "{}", e["healthy_flagged"]);
    assert!(e["events"]["failures"].as_u64().is_some(), "the event view");
    for file in ANOMALY_CARD {
        let text = std::fs::read_to_string(card.join(file)).unwrap();
        assert!(!text.contains("plot failed"), "{file}");
    }
    let html = std::fs::read_to_string(card.join("model_card.html")).unwrap();
    assert!(html.contains("anomaly detector") && html.contains("healthy readings"));
    // Every reading of every machine, and the text summary.
    let out = run(&[
        "evaluate",
        s(&model),
        s(&data),
        "--out-dir",
        s(&card),
        "--all-rows",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ROC-AUC") && text.contains("events:"),
        "{text}"
    );

    // predict writes each reading's anomaly score and whether it is at the threshold.
    let scored = dir.join("scored.csv");
    run(&["predict", s(&model), s(&data), "--out", s(&scored)]);
    let text = std::fs::read_to_string(&scored).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "machine_id,seq,ts,anomaly_score,label,cold,failure"
    );
    let threshold = f(&artifact["threshold"]);
    let rows: Vec<(f64, bool)> = lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[3].parse().unwrap(), c[4] == "1")
        })
        .collect();
    assert_eq!(rows.len(), 20 * 1440);
    assert!(rows
        .iter()
        .all(|&(p, a)| (p >= threshold) == a && p > 0.0 && p <= 1.0));
    assert!(rows.iter().any(|r| r.1) && rows.iter().any(|r| !r.1));

    // A rul model of a profile goes to models/{profile}/rul; the anomaly model to
    // models/milling/anomaly.
    let rul = crate::rul::trained_rul_model(dir);
    deploy_by_kind(&[
        (&model, "dtwin/v1/models/milling/anomaly"),
        (&rul, "dtwin/v1/models/pumps/rul"),
    ])
    .await;
}

const ANOMALY_CARD: [&str; 6] = [
    "model_card.json",
    "model_card.html",
    "roc.svg",
    "pr.svg",
    "confusion.svg",
    "scores.svg",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_on_twin_telemetry_trains_evaluates_and_deploys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = fleet(dir);
    let model = dir.join("quality.json");
    let out = run(&[
        "train",
        s(&data),
        "--kind",
        "quality",
        "--trees",
        "30",
        "--out",
        s(&model),
        "--json",
    ]);
    let r = json(&out);
    // NOK parts are drawn at random, more often with tool wear and vibration: a weak signal,
    // but one (measured: 0.618 on this fleet's 4 held-out machines, 0.68 and 0.71 on fleets of
    // seeds 43 and 44, 0.679 with 100 trees on the 200-machine simulated fleet; docs/model.md).
    assert!(f(&r["roc_auc"]) > 0.58, "{r}");
    assert!(
        r.get("events").is_none(),
        "no event view for NOK parts: {r}"
    );
    assert_eq!(r["threshold_target"], "best F1");
    let artifact: Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(artifact["kind"], "quality");
    assert_eq!(artifact["label"], "NOK part within the next 30 readings");
    assert_eq!(artifact["recipe"]["kind"], "windows");
    // Same features as the failure classifier shipped for milling.
    let shipped: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../inference/models/default.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(artifact["feature_set_hash"], shipped["feature_set_hash"]);

    let card = dir.join("card");
    let out = run(&[
        "evaluate",
        s(&model),
        s(&data),
        "--folds",
        "2",
        "--out-dir",
        s(&card),
        "--json",
    ]);
    let e = json(&out);
    assert_eq!(e["model"]["kind"], "quality");
    assert_eq!(e["data"]["label"], "NOK part within the next 30 readings");
    let m = &e["at_model_threshold"];
    assert!((f(&m["roc_auc"]) - f(&r["roc_auc"])).abs() < 1e-9, "{m}");
    assert!(e.get("events").is_none());
    assert!(e["cross_validation"]["event_recall"].is_null());
    let html = std::fs::read_to_string(card.join("model_card.html")).unwrap();
    assert!(html.contains("<td>quality</td>"));

    deploy_by_kind(&[(&model, "dtwin/v1/models/milling/quality")]).await;
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

/// A deterministic uniform in [0, 1) (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

const PRESS: &str = r#"
id = "press"
label = "Test press"

[[sensor]]
name = "vib"
range = [-100.0, 1000.0]

[[sensor]]
name = "temp"
range = [-100.0, 1000.0]

[windows]
short = 5
long = 10
short_stats = ["mean", "slope"]
"#;

/// One press's cycles `1..=len` of a life `life`: vibration is noise until a fault grows in
/// the last few dozen cycles (as C-MAPSS's engines); a part is NOK at random, far more often
/// as the fault grows (column `result`, OK or NOK).
fn press(out: &mut String, rng: &mut Rng, id: u32, life: u32, len: u32) {
    for c in 1..=len {
        let fault = (-(f64::from(life) - f64::from(c)) / 10.0).exp();
        let vib = 2.0 + 0.4 * (rng.next() - 0.5) + 3.0 * fault;
        let temp = 60.0 + 10.0 * (rng.next() - 0.5) + 5.0 * fault;
        let nok = rng.next() < 0.02 + 0.6 * fault;
        let result = if nok { "NOK" } else { "OK" };
        out.push_str(&format!("{id},{c},{vib:.3},{temp:.3},{result}\n"));
    }
}

/// Writes press.toml, train.csv (30 presses run to failure, lives 80-160 cycles), test.csv
/// (20 others cut off before failure) and rul.txt (their remaining lives); returns those.
fn presses(dir: &Path) -> Vec<f64> {
    std::fs::write(dir.join("press.toml"), PRESS).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut train = String::from("unit,cycle,vib,temp,result\n");
    for id in 1..=30 {
        let life = 80 + (rng.next() * 80.0) as u32;
        press(&mut train, &mut rng, id, life, life);
    }
    std::fs::write(dir.join("train.csv"), train).unwrap();
    let mut test = String::from("unit,cycle,vib,temp,result\n");
    let mut truth = Vec::new();
    for id in 1..=20 {
        let life = 80 + (rng.next() * 80.0) as u32;
        let len = 40 + (rng.next() * f64::from(life - 41)) as u32;
        press(&mut test, &mut rng, id, life, len);
        truth.push(f64::from(life - len));
    }
    std::fs::write(dir.join("test.csv"), test).unwrap();
    let lines: String = truth.iter().map(|t| format!("{t}\n")).collect();
    std::fs::write(dir.join("rul.txt"), lines).unwrap();
    truth
}

#[test]
fn anomaly_and_quality_on_a_plant_export() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let truth = presses(dir);
    let (profile, train, test) = (
        dir.join("press.toml"),
        dir.join("train.csv"),
        dir.join("test.csv"),
    );
    let plant = ["--id-column", "unit", "--time-column", "cycle"];
    let model = dir.join("anomaly.json");
    let mut args = vec!["train", s(&train), "--profile", s(&profile)];
    args.extend(plant);
    args.extend([
        "--kind",
        "anomaly",
        "--healthy-first",
        "30",
        "--run-to-failure",
        "--horizon",
        "20",
        "--out",
        s(&model),
        "--json",
    ]);
    let r = json(&run(&args));
    assert_eq!(
        r["healthy"],
        "each machine's first 30 cycles (time-column units)"
    );
    assert_eq!(r["machines"]["test"], 6);
    // Measured: 0.97 on the 6 held-out presses' every reading, 0.96 on the 20 test presses'
    // last readings (9 fail within 30 cycles); the quality classifier 0.80.
    assert!(f(&r["test"]["roc_auc"]) > 0.9, "{r}");
    assert_eq!(r["events"]["failures"], 6, "each held-out press's failure");
    let artifact: Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(artifact["recipe"]["kind"], "profile");

    // The test presses' last readings: those that fail within 30 cycles score above the others.
    let card = dir.join("card");
    let e = json(&run(&[
        "evaluate",
        s(&model),
        s(&test),
        "--rul-truth",
        s(&dir.join("rul.txt")),
        "--out-dir",
        s(&card),
        "--json",
    ]));
    let units = e["units"].as_array().unwrap();
    assert_eq!(units.len(), 20);
    let failing = truth.iter().filter(|&&t| t <= 30.0).count();
    assert!((3..=17).contains(&failing), "both classes: {truth:?}");
    assert_eq!(e["positives"], failing);
    assert_eq!(e["within"], 30.0);
    let auc = f(&e["metrics"]["roc_auc"]);
    assert!(auc > 0.9, "last-reading ROC-AUC {auc}: {units:?}");
    for (u, t) in units.iter().zip(&truth) {
        assert_eq!(f(&u["truth"]), *t);
        assert_eq!(u["fails_within"], *t <= 30.0);
    }
    assert!(card.join("score_vs_life.svg").is_file());
    // --fails-within moves the cut.
    let e10 = json(&run(&[
        "evaluate",
        s(&model),
        s(&test),
        "--rul-truth",
        s(&dir.join("rul.txt")),
        "--fails-within",
        "10",
        "--out-dir",
        s(&card),
        "--json",
    ]));
    assert_eq!(
        e10["positives"],
        truth.iter().filter(|&&t| t <= 10.0).count()
    );

    // Quality: NOK parts (column result = NOK) within 5 cycles.
    let q = dir.join("quality.json");
    let mut args = vec!["train", s(&train), "--profile", s(&profile)];
    args.extend(plant);
    args.extend([
        "--kind",
        "quality",
        "--quality-column",
        "result",
        "--nok-values",
        "NOK",
        "--horizon",
        "5",
        "--trees",
        "30",
        "--out",
        s(&q),
        "--json",
    ]);
    let r = json(&run(&args));
    assert!(f(&r["roc_auc"]) > 0.7, "{r}");
    let artifact: Value = serde_json::from_slice(&std::fs::read(&q).unwrap()).unwrap();
    assert_eq!(artifact["kind"], "quality");
    assert_eq!(artifact["recipe"]["columns"]["quality"]["column"], "result");
    assert_eq!(artifact["label"], "NOK part within the next 5 readings");
    // evaluate reads the NOK column from the model.
    let e = json(&run(&[
        "evaluate",
        s(&q),
        s(&train),
        "--folds",
        "0",
        "--out-dir",
        s(&card),
        "--json",
    ]));
    assert!(
        (f(&e["at_model_threshold"]["roc_auc"]) - f(&r["roc_auc"])).abs() < 1e-9,
        "{e}"
    );

    // The mistakes.
    let x = dir.join("x.json");
    let base = |kind: &'static str| {
        let mut a = vec!["train", s(&train), "--profile", s(&profile)];
        a.extend(plant);
        a.extend(["--kind", kind, "--out", s(&x)]);
        a
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (base("quality"), "--quality-column COLUMN --nok-values"),
        (
            [base("quality"), vec!["--quality-column", "result"]].concat(),
            "needs --nok-values",
        ),
        (
            [
                base("quality"),
                vec![
                    "--quality-column",
                    "vib",
                    "--nok-values",
                    "1",
                    "--horizon",
                    "5",
                ],
            ]
            .concat(),
            "sensor vib",
        ),
        (
            [base("anomaly"), vec!["--healthy-first", "2d"]].concat(),
            "give a number such as 50",
        ),
        (
            [base("anomaly"), vec!["--run-to-failure"]].concat(),
            "--horizon 30",
        ),
        (
            vec!["train", s(&train), "--kind", "quality", "--out", s(&x)],
            "cannot tell the format",
        ),
    ];
    for (args, want) in cases {
        let out = dtwin_in(&args, dir);
        let text = output_text(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(text.contains(want), "{args:?}: {text}");
    }
    // --fails-within without --rul-truth.
    let out = dtwin_in(
        &[
            "evaluate",
            s(&model),
            s(&test),
            "--fails-within",
            "10",
            "--out-dir",
            s(&card),
        ],
        dir,
    );
    assert!(!out.status.success());
    assert!(output_text(&out).contains("--fails-within goes with --rul-truth"));
}

/// FD001 end to end (issue 19 item 1's measure): an anomaly model trained on each training
/// engine's first 50 cycles through the shipped C-MAPSS profile, its threshold flagging 1 % of
/// the validation engines' first 50 cycles; the held-out engines' every cycle and the 100 test
/// engines' last cycles ranked against "fails within 30 cycles". docs/cmapss.md has the
/// figures (seed 42: 0.975 and 0.977; scikit-learn on the same rows and features 0.973 and
/// 0.972, median of seeds 1-3). Ignored like `rul::cmapss_fd001_rul` (it reads NASA's files,
/// and skips without them); run it with (4 s in a debug build)
/// `cargo test -p dtwin --test cli kinds::cmapss -- --ignored --nocapture`.
#[test]
#[ignore = "reads NASA's C-MAPSS files; run with --ignored (docs/cmapss.md)"]
fn cmapss_fd001_anomaly() {
    use crate::rul::{cmapss_csv, cmapss_dir, CMAPSS_PROFILE};
    let Some(data) = cmapss_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let read = |f: &str| std::fs::read_to_string(data.join(f)).unwrap();
    cmapss_csv(&read("train_FD001.txt"), &dir.join("train.csv"));
    cmapss_csv(&read("test_FD001.txt"), &dir.join("test.csv"));
    std::fs::write(dir.join("cmapss_fd001.toml"), CMAPSS_PROFILE).unwrap();
    let model = dir.join("anomaly.json");
    let r = json(&run(&[
        "train",
        s(&dir.join("train.csv")),
        "--profile",
        s(&dir.join("cmapss_fd001.toml")),
        "--id-column",
        "unit",
        "--time-column",
        "cycle",
        "--kind",
        "anomaly",
        "--healthy-first",
        "50",
        "--run-to-failure",
        "--horizon",
        "30",
        "--out",
        s(&model),
        "--json",
    ]));
    assert_eq!(
        r["fit_rows"],
        60 * 41,
        "the warm cycles of 60 engines' first 50"
    );
    assert_eq!(r["events"]["failures"], 20);
    let held = f(&r["test"]["roc_auc"]);
    let e = json(&run(&[
        "evaluate",
        s(&model),
        s(&dir.join("test.csv")),
        "--rul-truth",
        s(&data.join("RUL_FD001.txt")),
        "--out-dir",
        s(&dir.join("card")),
        "--json",
    ]));
    let last = f(&e["metrics"]["roc_auc"]);
    println!(
        "FD001 anomaly: held-out every-cycle ROC-AUC {held:.4}, test last-cycle ROC-AUC {last:.4}"
    );
    assert_eq!(e["units"].as_array().unwrap().len(), 100);
    assert_eq!(e["positives"], 25);
    assert!(held > 0.95 && last > 0.95, "{held} {last}");
}
