//! A plant's own data through the CLI, as an integrator runs it: an hourly export of machines
//! with four sensors and a separate failure log with component labels (the shape of a real
//! maintenance data set), `dtwin profile init`, then `train`, `predict`, `evaluate` and `eda`
//! with the flags the README gives, and the mistakes an integrator makes, each with an error
//! that says what to do.

use crate::common::{dtwin_in as dtwin, run, s};
use std::path::Path;
use std::process::{Command, Output};

pub(crate) const MACHINES: u32 = 10;
pub(crate) const HOURS: u32 = 24 * 40;

/// A deterministic uniform in [0, 1) (xorshift), so the export is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (sum of uniforms), mean 0, sd 1.
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.next()).sum::<f64>() - 6.0
    }
}

/// Writes telemetry.csv (datetime, machineID, volt, rotate, pressure, vibration) and
/// failures.csv (datetime, machineID, failure): each machine fails every 150-300 hours on one
/// of four components, whose sensor drifts over the 36 hours before. Machine 99 of the log is
/// not in the export.
pub(crate) fn export(dir: &Path) -> usize {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut tel = String::from("datetime,machineID,volt,rotate,pressure,vibration\n");
    let mut log = String::from("datetime,machineID,failure\n");
    let at = |h: u32| {
        format!(
            "2015-{:02}-{:02} {:02}:00:00",
            1 + h / (24 * 31),
            1 + (h / 24) % 31,
            h % 24
        )
    };
    let mut failures = 0;
    for m in 1..=MACHINES {
        let mut due = Vec::new();
        let mut h = 100 + (rng.next() * 150.0) as u32;
        while h < HOURS {
            due.push((h, 1 + (rng.next() * 4.0) as u32));
            h += 150 + (rng.next() * 150.0) as u32;
        }
        for h in 0..HOURS {
            let mut v = [
                170.0 + 12.0 * rng.normal(),
                450.0 + 40.0 * rng.normal(),
                100.0 + 8.0 * rng.normal(),
                40.0 + 4.0 * rng.normal(),
            ];
            for &(f, comp) in &due {
                if f >= h && f - h <= 36 {
                    let k = f64::from(36 - (f - h)) / 36.0;
                    let shift = [25.0, -70.0, 18.0, 9.0][comp as usize - 1];
                    v[comp as usize - 1] += shift * k;
                }
            }
            tel.push_str(&format!(
                "{},{m},{:.3},{:.3},{:.3},{:.3}\n",
                at(h),
                v[0],
                v[1],
                v[2],
                v[3]
            ));
        }
        for (f, comp) in due {
            log.push_str(&format!("{},{m},comp{comp}\n", at(f)));
            failures += 1;
        }
    }
    log.push_str("2015-01-05 06:00:00,99,comp1\n");
    std::fs::write(dir.join("telemetry.csv"), tel).unwrap();
    std::fs::write(dir.join("failures.csv"), log).unwrap();
    failures
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const PLANT: [&str; 12] = [
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
];

#[test]
fn an_hourly_export_and_a_failure_log_train_score_evaluate_and_explore() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let failures = export(dir);
    let init = dtwin(
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
    assert!(init.status.success(), "{}", stderr(&init));
    let profile = std::fs::read_to_string(dir.join("plant.toml")).unwrap();
    assert!(
        profile.contains("time = [\"24h\"]"),
        "hourly data: a 24 h window\n{profile}"
    );

    // Train.
    let mut train = vec!["train", "telemetry.csv"];
    train.extend(PLANT);
    train.extend(["--trees", "40", "--out", "model.json", "--json"]);
    let out = dtwin(&train, dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let auc = report["roc_auc"].as_f64().unwrap();
    assert!(
        auc > 0.85,
        "held-out ROC-AUC {auc}: the drift before a failure is plain"
    );
    assert!(report["events"]["failures"].as_u64().unwrap() > 0);
    let log = stderr(&out);
    assert!(
        log.contains("1 events of machines not in the data ignored"),
        "{log}"
    );
    assert!(
        log.contains(&format!("{} readings", MACHINES * HOURS)),
        "{log}"
    );
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["recipe"]["kind"], "profile");
    assert_eq!(model["recipe"]["horizon"], "24h");
    let names: Vec<&str> = model["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(names.contains(&"volt_mean_24h") && names.contains(&"vibration_dev_24"));
    let label = model["label"].as_str().unwrap();
    assert_eq!(
        label,
        "plant failure (comp1, comp2, comp3, comp4) within the next 24h"
    );

    // Predict: no flags, the model carries its profile and columns.
    let scored = dtwin(
        &[
            "predict",
            "model.json",
            "telemetry.csv",
            "--out",
            "scores.csv",
        ],
        dir,
    );
    assert!(scored.status.success(), "{}", stderr(&scored));
    let mut reader = csv::Reader::from_path(dir.join("scores.csv")).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "machine_id",
            "seq",
            "ts",
            "probability",
            "label",
            "cold",
            "failure"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len() as u32, MACHINES * HOURS, "one score per reading");
    assert_eq!(&rows[0][2], "2015-01-01T00:00:00Z");
    assert!(rows
        .iter()
        .all(|r| (0.0..=1.0).contains(&r[3].parse::<f64>().unwrap())));

    // Evaluate: the events flags label the data; the held-out metrics are train's.
    let out = dtwin(
        &[
            "evaluate",
            "model.json",
            "telemetry.csv",
            "--events",
            "failures.csv",
            "--event-label-column",
            "failure",
            "--folds",
            "0",
            "--out-dir",
            "card",
            "--json",
        ],
        dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let card: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(card["data"]["kind"], "plant export");
    assert_eq!(card["data"]["label"], label);
    let held_out = card["at_model_threshold"]["roc_auc"].as_f64().unwrap();
    assert!(
        (held_out - auc).abs() < 1e-9,
        "evaluate {held_out} vs train {auc}"
    );
    assert!(dir.join("card/model_card.html").exists());

    // EDA with the same flags.
    let mut eda = vec!["eda", "telemetry.csv"];
    eda.extend(PLANT);
    eda.extend(["--out-dir", "eda"]);
    let out = dtwin(&eda, dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(dir.join("eda/report.html")).unwrap();
    assert!(
        page.contains("volt") && page.contains("comp1"),
        "sensors and labels shown"
    );
    assert!(failures > 20);
}

#[test]
fn mistakes_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    export(dir);
    run(&[
        "profile",
        "init",
        s(&dir.join("telemetry.csv")),
        "--id-column",
        "machineID",
        "--time-column",
        "datetime",
        "--out",
        s(&dir.join("plant.toml")),
    ]);
    let train = |extra: &[&str]| {
        let mut a = vec!["train", "telemetry.csv", "--out", "m.json"];
        a.extend(extra);
        dtwin(&a, dir)
    };
    let cases: [(&[&str], &str); 6] = [
        (
            &[
                "--profile",
                "plant.toml",
                "--id-column",
                "machine",
                "--horizon",
                "24h",
            ],
            "no column \"machine\" (--id-column); its columns: datetime, machineID, volt",
        ),
        (
            &[
                "--profile",
                "plant.toml",
                "--id-column",
                "machineID",
                "--horizon",
                "soon",
            ],
            "neither a number of readings (30) nor a duration (24h",
        ),
        (
            &[
                "--profile",
                "plant.toml",
                "--id-column",
                "machineID",
                "--time-column",
                "datetime",
            ],
            "say how far ahead to predict: --horizon 24h",
        ),
        (&["--id-column", "machineID"], "add --profile PROFILE.toml"),
        (
            &[
                "--profile",
                "plant.toml",
                "--id-column",
                "machineID",
                "--time-column",
                "datetime",
                "--events",
                "failures.csv",
                "--horizon",
                "24h",
            ],
            "--events needs --event-label-column",
        ),
        (
            &[
                "--profile",
                "plant.toml",
                "--id-column",
                "machineID",
                "--time-column",
                "datetime",
                "--horizon",
                "24h",
            ],
            "no reading is followed by a counted failure",
        ),
    ];
    for (extra, want) in cases {
        let out = train(extra);
        assert!(!out.status.success(), "{extra:?} should fail");
        let e = stderr(&out);
        assert!(e.contains(want), "{extra:?}: {e}");
    }
}

#[test]
fn a_bad_profile_stops_the_stack_at_start_with_file_line_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("bad.toml"),
        "id = \"pump\"\nlabel = \"Pump\"\n\n[[sensor]]\nname = \"volt\"\nrange = [400.0, 0.0]\n",
    )
    .unwrap();
    let port = dtwin_broker::free_port().unwrap().to_string();
    let dashboard = format!("127.0.0.1:{}", dtwin_broker::free_port().unwrap());
    let mut child = Command::new(env!("CARGO_BIN_EXE_dtwin"))
        .args([
            "up",
            "--machines",
            "0",
            "--port",
            &port,
            "--dashboard-listen",
            &dashboard,
            "--profile",
            "bad.toml",
        ])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("dtwin up started with a bad profile");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("bad.toml:6"), "file and line: {e}");
    assert!(e.contains("400") && e.contains("range"), "the reason: {e}");
}
