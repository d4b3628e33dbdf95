use super::*;
use proptest::prelude::*;

const FILE: &str = "plant/pump.toml";

const PUMP: &str = r#"id = "pump"
label = "Pump"

[[sensor]]
name = "volt"
unit = "V"
range = [0.0, 400.0]

[[sensor]]
name = "rotate"
range = [0.0, 1000.0]
key = "rotation"

[[derived]]
name = "volt_per_rev"
expr = "volt / rotate"

[windows]
long = 24
time = ["24h"]

[failures]
labels = ["comp1", "comp2", "comp3", "comp4"]
"#;

fn err(text: &str) -> ProfileError {
    Profile::parse(text, FILE).expect_err("refused")
}

proptest! {
    /// Whatever the text, parsing returns a profile or an error on a line of the file; it
    /// never panics.
    #[test]
    fn any_text_gives_a_profile_or_a_located_error(text in "\\PC{0,300}") {
        if let Err(e) = Profile::parse(&text, FILE) {
            prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1) + 1, "{e}");
        }
    }
}

#[test]
fn a_missing_sensor_makes_the_features_that_use_it_missing() {
    let p = Profile::milling();
    let d = p.derive(&[40.0, 25.0, f64::NAN, 1.0, 1500.0, 40.0, 10.0]);
    assert_eq!(d[0], 15.0);
    assert!(d[3].is_nan(), "temp_x_vibration without vibration");
}

#[test]
fn a_plant_profile_reads_with_keys_time_windows_and_free_labels() {
    let p = Profile::parse(PUMP, FILE).unwrap();
    assert_eq!(p.sensor("rotate").unwrap().key, "rotation");
    assert_eq!(
        p.sensor("volt").unwrap().label,
        "volt",
        "label defaults to the name"
    );
    assert_eq!(p.windows.time, [Duration::from_secs(86_400)]);
    assert_eq!(p.windows.short, None);
    assert_eq!(
        p.failures.counted, p.failures.labels,
        "all labels count by default"
    );
    assert_eq!(p.derive(&[230.0, 460.0]), [0.5]);
    assert!(p.sensor("volt").unwrap().accepts(400.0));
    assert!(!p.sensor("volt").unwrap().accepts(400.1));
    assert!(!p.sensor("volt").unwrap().accepts(f64::NAN));
}

/// The C-MAPSS FD001 profile (`benchmarks/cmapss/run.sh`) reads, and its sensors are NASA's 26
/// columns after unit and cycle, in order, with every value of the shipped data in range.
#[test]
fn the_cmapss_fd001_profile_reads_with_nasa_s_columns() {
    let p = Profile::parse(
        include_str!("../profiles/cmapss_fd001.toml"),
        "profiles/cmapss_fd001.toml",
    )
    .unwrap();
    let names: Vec<&str> = p.sensors.iter().map(|s| s.key.as_str()).collect();
    let nasa =
        "setting1 setting2 setting3 T2 T24 T30 T50 P2 P15 P30 Nf Nc epr Ps30 phi NRf NRc BPR \
                farB htBleed Nf_dmd PCNfR_dmd W31 W32";
    assert_eq!(names, nasa.split_whitespace().collect::<Vec<_>>());
    assert_eq!((p.windows.short, p.windows.long), (Some(10), Some(30)));
    assert_eq!(p.failures.counted, ["failure"]);
    // The extremes of FD001's train and test files, per column.
    let seen = [
        (-0.0087, 0.0087),
        (-0.0006, 0.0007),
        (100.0, 100.0),
        (518.67, 518.67),
        (641.13, 644.53),
        (1569.04, 1616.91),
        (1382.25, 1441.49),
        (14.62, 14.62),
        (21.60, 21.61),
        (549.85, 556.06),
        (2387.89, 2388.56),
        (9021.73, 9244.59),
        (1.30, 1.30),
        (46.80, 48.53),
        (518.69, 523.76),
        (2387.88, 2388.56),
        (8099.94, 8293.72),
        (8.3249, 8.5848),
        (0.03, 0.03),
        (388.0, 400.0),
        (2388.0, 2388.0),
        (100.0, 100.0),
        (38.14, 39.43),
        (22.8942, 23.6419),
    ];
    for (s, (lo, hi)) in p.sensors.iter().zip(seen) {
        assert!(s.accepts(lo) && s.accepts(hi), "{} {lo}..{hi}", s.name);
    }
}

#[test]
fn each_mistake_is_refused_with_its_line_and_reason() {
    type Is = fn(&ProfileErrorKind) -> bool;
    let cases: Vec<(String, usize, Is)> = vec![
        (
            PUMP.replace("range = [0.0, 400.0]", "range = [400.0, 0.0]"),
            7,
            |k| matches!(k, ProfileErrorKind::BadRange { .. }),
        ),
        (
            PUMP.replace("volt / rotate", "volt / pressure"),
            16,
            |k| matches!(k, ProfileErrorKind::UnknownVariable(v) if v == "pressure"),
        ),
        (PUMP.replace("volt / rotate", "volt / * rotate"), 16, |k| {
            matches!(k, ProfileErrorKind::BadExpression(_))
        }),
        (
            PUMP.replace("name = \"rotate\"", "name = \"volt\""),
            10,
            |k| matches!(k, ProfileErrorKind::DuplicateName(n) if n == "volt"),
        ),
        (
            PUMP.replace("name = \"rotate\"", "name = \"pi\""),
            10,
            |k| matches!(k, ProfileErrorKind::BadName(_)),
        ),
        (
            PUMP.replace("time = [\"24h\"]", "time = [\"a day\"]"),
            20,
            |k| matches!(k, ProfileErrorKind::BadDuration(_)),
        ),
        (PUMP.replace("long = 24", "long = 1"), 19, |k| {
            matches!(k, ProfileErrorKind::BadWindow(1))
        }),
        (
            PUMP.replace(
                "labels = [\"comp1\", \"comp2\", \"comp3\", \"comp4\"]",
                "labels = [\"comp1\"]\ncounted = [\"comp9\"]",
            ),
            24,
            |k| matches!(k, ProfileErrorKind::UnknownLabel(l) if l == "comp9"),
        ),
        (
            PUMP.replace("unit = \"V\"", "units = \"V\""),
            6,
            |k| matches!(k, ProfileErrorKind::Syntax(m) if m.contains("units")),
        ),
        (
            PUMP.replace("range = [0.0, 400.0]", "range = \"0-400\""),
            7,
            |k| matches!(k, ProfileErrorKind::Syntax(_)),
        ),
    ];
    for (text, line, kind) in cases {
        let e = err(&text);
        assert_eq!(e.file, FILE);
        assert!(kind(&e.kind), "{e}");
        assert_eq!(e.line, line, "{e}");
        assert!(
            e.to_string().starts_with(&format!("{FILE}:{line}: ")),
            "{e}"
        );
    }
    let none = err("id = \"x\"\nlabel = \"x\"\n");
    assert_eq!(none.kind, ProfileErrorKind::NoSensors);
}

#[test]
fn controls_and_advice_are_optional_and_the_milling_profile_declares_speed_and_torque() {
    let p = Profile::parse(PUMP, FILE).unwrap();
    assert!(p.controls.is_empty(), "an old profile still reads");
    assert_eq!(p.advice, AdviceSettings::default());
    assert_eq!(
        p.sensor("volt").unwrap().typical,
        [0.0, 400.0],
        "typical = range"
    );
    assert!(p.energy(&[230.0, 460.0]).is_nan());

    let m = Profile::milling();
    let names: Vec<&str> = m.controls.iter().map(|c| c.sensor.as_str()).collect();
    assert_eq!(names, ["spindle_rpm", "torque_nm"]);
    let rpm = &m.controls[0];
    assert_eq!((rpm.min, rpm.max, rpm.step), (1200.0, 2800.0, 10.0));
    assert_eq!(m.advice.energy.as_deref(), Some("power_w"));
    assert!(m.advice.downtime_cost > 0.0 && m.advice.energy_cost > 0.0);
    assert_eq!(m.sensor("spindle_rpm").unwrap().typical, [1000.0, 3000.0]);
    // power_w = torque x rpm x 2 pi / 60: 40 N·m at 1500 rpm is 6.28 kW.
    let e = m.energy(&[36.8, 26.9, 2.2, 6.0, 1500.0, 40.0, 60.0]);
    assert!((e - 6283.185).abs() < 0.01, "{e}");
}

#[test]
fn each_control_mistake_is_refused_with_its_line_and_reason() {
    let with = |control: &str| format!("{PUMP}\n[[control]]\n{control}\n");
    let good = "sensor = \"volt\"\nbounds = [100.0, 300.0]\nstep = 5.0\ncost_per_unit = 1.0";
    let p = Profile::parse(&with(good), FILE).unwrap();
    assert_eq!(p.controls[0].grid().len(), 41);
    type Is = fn(&ProfileErrorKind) -> bool;
    let cases: Vec<(String, Is)> = vec![
        (
            with(&good.replace("\"volt\"", "\"amps\"")),
            |k| matches!(k, ProfileErrorKind::UnknownControl(s) if s == "amps"),
        ),
        (
            with(&good.replace("[100.0, 300.0]", "[100.0, 500.0]")),
            |k| matches!(k, ProfileErrorKind::BadBounds { what: "bounds", .. }),
        ),
        (
            with(&good.replace("[100.0, 300.0]", "[300.0, 100.0]")),
            |k| matches!(k, ProfileErrorKind::BadBounds { .. }),
        ),
        (with(&good.replace("step = 5.0", "step = 0.0")), |k| {
            matches!(k, ProfileErrorKind::BadStep(_))
        }),
        (with(&good.replace("step = 5.0", "step = 500.0")), |k| {
            matches!(k, ProfileErrorKind::BadStep(_))
        }),
        (
            with(&good.replace("cost_per_unit = 1.0", "cost_per_unit = -1.0")),
            |k| matches!(k, ProfileErrorKind::BadCost("cost_per_unit", _)),
        ),
        (
            with(&good.replace("step = 5.0\n", "")),
            |k| matches!(k, ProfileErrorKind::Syntax(m) if m.contains("step")),
        ),
        (
            format!("{}\n[[control]]\n{good}\n", with(good)),
            |k| matches!(k, ProfileErrorKind::DuplicateName(s) if s == "volt"),
        ),
        (
            format!("{PUMP}\n[advice]\nenergy = \"watts\"\n"),
            |k| matches!(k, ProfileErrorKind::UnknownEnergy(s) if s == "watts"),
        ),
        (format!("{PUMP}\n[advice]\ndowntime_cost = -5.0\n"), |k| {
            matches!(k, ProfileErrorKind::BadCost("downtime_cost", _))
        }),
        (
            PUMP.replace(
                "range = [0.0, 400.0]",
                "range = [0.0, 400.0]\ntypical = [0.0, 500.0]",
            ),
            |k| {
                matches!(
                    k,
                    ProfileErrorKind::BadBounds {
                        what: "typical",
                        ..
                    }
                )
            },
        ),
    ];
    for (text, kind) in cases {
        let e = err(&text);
        assert!(kind(&e.kind), "{e}");
        assert!(e.line > 1, "located: {e}");
    }
    let p = Profile::parse(
        &format!("{PUMP}\n[advice]\nenergy = \"volt_per_rev\"\nenergy_cost = 2.0\n"),
        FILE,
    )
    .unwrap();
    assert_eq!(p.energy(&[230.0, 460.0]), 0.5, "a derived feature");
    assert_eq!(p.advice.downtime_cost, advice::DEFAULT_DOWNTIME_COST);
}
