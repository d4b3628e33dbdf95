//! `dtwin profile init` drafts a profile from a plant's hourly export (the shape of a real
//! maintenance data set: datetime, machine id, four sensors, a model column, failures in a
//! label column), `dtwin profile check` reads it back, and mistakes are named with their line.

use crate::common::{dtwin_in as dtwin, output_text as text};
use std::path::Path;

fn export(dir: &Path) {
    let mut csv = String::from("datetime,machineID,volt,rotate,pressure,vibration,model,failure\n");
    for h in 0..48 {
        for m in 1..=3 {
            let failure = if h == 40 && m == 2 { "comp2" } else { "" };
            csv.push_str(&format!(
                "2015-01-{:02} {:02}:00:00,{m},{:.1},{:.1},{:.1},{:.1},model{m},{failure}\n",
                1 + h / 24,
                h % 24,
                160.0 + f64::from(h % 7) * 3.0,
                400.0 + f64::from(m) * 20.0,
                100.0 + f64::from(h % 5),
                40.0 + f64::from(h % 3) * 0.5,
            ));
        }
    }
    std::fs::write(dir.join("telemetry.csv"), csv).unwrap();
}

#[test]
fn a_plant_export_becomes_a_profile_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    export(dir.path());
    let init = [
        "profile",
        "init",
        "telemetry.csv",
        "--id-column",
        "machineID",
        "--time-column",
        "datetime",
        "--label-column",
        "failure",
        "--out",
        "pump.toml",
    ];
    let o = dtwin(&init, dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("4 sensors (volt, rotate, pressure, vibration)"),
        "{}",
        text(&o)
    );
    let drafted = std::fs::read_to_string(dir.path().join("pump.toml")).unwrap();
    let p = dtwin_profile::Profile::parse(&drafted, "pump.toml").unwrap();
    assert_eq!(p.id, "pump");
    assert!(p.sensor("machineid").is_none() && p.sensor("datetime").is_none());
    assert_eq!(p.attributes[0].values, ["model1", "model2", "model3"]);
    assert_eq!(p.failures.labels, ["comp2"]);
    for v in [160.0, 178.0] {
        assert!(p.sensor("volt").unwrap().accepts(v), "{v} was seen");
    }

    let o = dtwin(&["profile", "check", "pump.toml"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("4 sensors"), "{}", text(&o));

    // A hand-edited profile is not overwritten by accident.
    let o = dtwin(&init, dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("--force"), "{}", text(&o));

    // A mistake is named with its file and line.
    let broken = drafted.replacen("range = [", "range = [1e9, ", 1);
    std::fs::write(dir.path().join("broken.toml"), &broken).unwrap();
    let line = broken
        .lines()
        .position(|l| l.starts_with("range = [1e9"))
        .unwrap()
        + 1;
    let o = dtwin(&["profile", "check", "broken.toml"], dir.path());
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("broken.toml:{line}:")),
        "{}",
        text(&o)
    );
}

#[test]
fn a_column_that_is_not_there_is_named_with_the_columns_that_are() {
    let dir = tempfile::tempdir().unwrap();
    export(dir.path());
    let o = dtwin(
        &[
            "profile",
            "init",
            "telemetry.csv",
            "--id-column",
            "machine",
            "--out",
            "p.toml",
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("--id-column \"machine\"") && t.contains("machineID"),
        "{t}"
    );
}

/// Without --label-column, the `failure` column is still read as failure labels (drafted as an
/// attribute it would give the model the answer as an input), and the output says so.
#[test]
fn a_failure_column_is_read_as_labels_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    export(dir.path());
    let o = dtwin(
        &[
            "profile",
            "init",
            "telemetry.csv",
            "--id-column",
            "machineID",
            "--time-column",
            "datetime",
            "--out",
            "pump.toml",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Column \"failure\" looks like failure labels"),
        "{}",
        text(&o)
    );
    let drafted = std::fs::read_to_string(dir.path().join("pump.toml")).unwrap();
    let p = dtwin_profile::Profile::parse(&drafted, "pump.toml").unwrap();
    assert_eq!(p.failures.labels, ["comp2"]);
    assert!(
        p.attributes.iter().all(|a| a.name != "failure"),
        "not an input"
    );
    assert!(p.sensor("failure").is_none(), "not an input");
}
