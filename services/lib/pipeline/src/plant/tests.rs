use super::*;

const PUMP: &str = r#"id = "pump"
label = "Pump"

[[sensor]]
name = "volt"
unit = "V"
range = [0.0, 400.0]

[[sensor]]
name = "rotate"
range = [0.0, 1000.0]
key = "rot"

[windows]
short = 2

[[attribute]]
name = "model"
values = ["model1", "model2"]

[failures]
labels = ["comp1", "comp2", "maint"]
counted = ["comp1", "comp2"]
"#;

fn pump() -> Profile {
    Profile::parse(PUMP, "pump.toml").unwrap()
}

fn columns() -> Columns {
    Columns {
        id: "machineID".to_owned(),
        time: Some("datetime".to_owned()),
        label: None,
        time_zone: None,
    }
}

/// Two machines, hourly, written out of order for machine 2.
const DATA: &str = "\u{feff}datetime,machineID,volt,rot,model,extra\n\
2015-01-01 06:00:00,1,170.0,420,model1,x\n\
2015-01-01 07:00:00,1,171.0,421,model1,x\n\
2015-01-01 09:00:00,2,160.0,400,model2,x\n\
2015-01-01 08:00:00,1,,422,model1,x\n\
2015-01-01 06:00:00,2,161.0,401,model9,x\n\
2015-01-01 09:00:00,1,999.0,423,model1,x\n\
2015-01-01 10:00:00,1,173.0,oops,model1,x\n\
bad time,1,173.0,423,model1,x\n\
2015-01-01 11:00:00,1,174.0,424,model1,x\n";

#[test]
fn an_export_reads_by_machine_in_time_order_and_says_what_it_left_out() {
    let d = read(DATA, "data.csv", &pump(), &columns()).unwrap();
    assert_eq!(d.time, TimeKind::Instant);
    let ids: Vec<&str> = d.machines.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["1", "2"]);
    let m1 = &d.machines[0];
    let hour = |h: i64| (1_420_070_400 + h * 3600) as f64; // 2015-01-01T00:00:00Z + h
    assert_eq!(m1.t, [hour(6), hour(7), hour(8), hour(11)]);
    assert!(m1.values[4].is_nan(), "an empty cell is a missing value");
    assert_eq!(m1.values[5], 422.0, "rotate comes from its key, rot");
    assert_eq!(m1.attrs, [Some(0); 4]);
    let m2 = &d.machines[1];
    assert_eq!(m2.t, [hour(6), hour(9)], "sorted by time");
    assert_eq!(m2.values, [161.0, 401.0, 160.0, 400.0]);
    assert_eq!(m2.attrs, [None, Some(1)], "model9 is not a listed value");
    assert_eq!(d.unknown_attribute_values, 1);
    assert_eq!(d.unused_columns, ["extra"]);
    let why: Vec<(usize, &str)> = d
        .skipped
        .iter()
        .map(|(l, w)| (*l, w.split(':').next().unwrap()))
        .collect();
    assert_eq!(why.len(), 3, "{:?}", d.skipped);
    assert_eq!(why[0], (7, "out_of_range"));
    assert!(d.skipped[1].1.contains("not a number"), "{:?}", d.skipped);
    assert!(d.skipped[2].1.contains("does not parse"), "{:?}", d.skipped);
}

#[test]
fn a_missing_column_names_the_flag_and_the_file_s_columns() {
    let mut c = columns();
    c.id = "machine".to_owned();
    let e = read(DATA, "data.csv", &pump(), &c).unwrap_err().to_string();
    assert!(e.contains("no column \"machine\" (--id-column)"), "{e}");
    assert!(e.contains("machineID"), "{e}");
    let no_volt = DATA.replace("volt", "voltage");
    let e = read(&no_volt, "data.csv", &pump(), &columns())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sensor volt of profile pump"), "{e}");
}

#[test]
fn times_read_as_plants_write_them() {
    let utc = jiff::tz::TimeZone::UTC;
    let t = |s: &str| parse_time(s, &utc);
    let at = 1_420_092_000.0; // 2015-01-01T06:00:00Z
    for s in [
        "2015-01-01T06:00:00Z",
        "2015-01-01 06:00:00",
        "2015-01-01T06:00:00",
        "2015-01-01 06:00",
        "2015-01-01 07:00:00+01:00",
        "1/1/2015 6:00:00 AM",
        "01/01/2015 06:00",
    ] {
        assert_eq!(t(s), Some((at, TimeKind::Instant)), "{s}");
    }
    assert_eq!(t("2015-01-01 06:00:00.500").unwrap().0, at + 0.5);
    assert_eq!(t("42"), Some((42.0, TimeKind::Number)));
    assert_eq!(t("tomorrow"), None);
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    assert_eq!(
        parse_time("2015-01-01 07:00:00", &berlin),
        Some((at, TimeKind::Instant)),
        "07:00 in Berlin in winter is 06:00 UTC"
    );
    let mut c = columns();
    c.time_zone = Some("Mars/Olympus".to_owned());
    let e = read(DATA, "d.csv", &pump(), &c).unwrap_err().to_string();
    assert!(e.contains("IANA"), "{e}");
}

#[test]
fn horizons_are_readings_or_durations() {
    assert_eq!("30".parse(), Ok(Horizon::Readings(30)));
    assert_eq!("24h".parse(), Ok(Horizon::Time(86_400.0)));
    assert_eq!(Horizon::Time(86_400.0).to_string(), "24h");
    assert!("0".parse::<Horizon>().is_err());
    assert!("soon".parse::<Horizon>().unwrap_err().contains("24h"));
}

/// One machine, hourly for 10 hours, and an events log.
fn hourly(n: usize) -> String {
    let mut s = "machineID,datetime,volt,rot\n".to_owned();
    for h in 0..n {
        s.push_str(&format!("7,2015-01-01 {h:02}:00:00,{}.0,400\n", 170 + h));
    }
    s
}

#[test]
fn events_label_the_readings_within_the_horizon_before_them() {
    let p = pump();
    let d = read(&hourly(10), "d.csv", &p, &columns()).unwrap();
    let log = "machineID,datetime,failure\n\
               7,2015-01-01 06:00:00,comp1\n\
               7,2015-01-01 02:00:00,maint\n\
               99,2015-01-01 03:00:00,comp2\n";
    let events = read_events(log, "e.csv", &columns(), "failure", d.time).unwrap();
    assert_eq!(events.len(), 3);
    // 2 h ahead: readings at 4 h and 5 h precede the comp1 failure at 6 h; maint does not
    // count. Cold: reading 0 (short window 2). Unknown: 9 h (its 2 h run past the data).
    let (ds, report) = dataset(&d, &p, &events, Horizon::Time(7200.0));
    assert_eq!(ds.step, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(ds.y, [false, false, false, true, true, false, false]);
    assert_eq!(report.events_of_unknown_machines, 1);
    assert_eq!(report.failures.get("comp1"), Some(&1));
    assert_eq!(report.failures.get("maint"), Some(&1));
    assert_eq!(ds.failures.len(), 2);
    assert!(ds.failures.iter().any(|f| f.step == 6 && f.counted));
    assert!(ds.failures.iter().any(|f| f.step == 2 && !f.counted));
    assert_eq!(ds.labels.horizon, 2, "2 h at one reading an hour");
    assert_eq!(
        ds.description,
        "pump failure (comp1, comp2) within the next 2h"
    );
    // The same in readings.
    let (dr, _) = dataset(&d, &p, &events, Horizon::Readings(2));
    assert_eq!(dr.y, ds.y);
    assert_eq!(dr.step, ds.step);
}

#[test]
fn a_label_column_and_unlisted_labels_count_and_a_failure_at_the_end_labels_the_last_readings() {
    let p = pump();
    let mut text = hourly(6);
    text = text.replace(
        "machineID,datetime,volt,rot",
        "machineID,datetime,volt,rot,fail",
    );
    let text: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            0 => format!("{l}\n"),
            6 => format!("{l},comp9\n"),
            _ => format!("{l},0\n"),
        })
        .collect();
    let mut c = columns();
    c.label = Some("fail".to_owned());
    let d = read(&text, "d.csv", &p, &c).unwrap();
    let (ds, report) = dataset(&d, &p, &[], Horizon::Readings(2));
    assert_eq!(
        report.failures.get("comp9"),
        Some(&1),
        "a label the profile does not list"
    );
    // Readings 1..=4 are warm; 3 and 4 precede the failure at 5 within 2 readings.
    assert_eq!(ds.step, [1, 2, 3, 4]);
    assert_eq!(ds.y, [false, false, true, true]);
}

#[test]
fn a_label_column_the_profile_reads_as_input_is_refused() {
    let mut c = columns();
    c.label = Some("rot".to_owned());
    let e = read(DATA, "d.csv", &pump(), &c).unwrap_err().to_string();
    assert!(e.contains("also sensor rotate of profile pump"), "{e}");
    c.label = Some("model".to_owned());
    let e = read(DATA, "d.csv", &pump(), &c).unwrap_err().to_string();
    assert!(e.contains("also attribute model"), "{e}");
}

#[test]
fn cycles_are_plain_numbers_and_an_event_log_must_use_the_same_kind() {
    let p = pump();
    let mut c = columns();
    c.time = Some("cycle".to_owned());
    let text = "machineID,cycle,volt,rot\n1,1,170,400\n1,2,171,400\n1,3,172,400\n";
    let d = read(text, "d.csv", &p, &c).unwrap();
    assert_eq!(d.time, TimeKind::Number);
    assert_eq!(d.machines[0].t, [1.0, 2.0, 3.0]);
    let e = read_events(
        "machineID,cycle,label\n1,2015-01-01,comp1\n",
        "e.csv",
        &c,
        "label",
        d.time,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("e.csv:2"), "{e}");
    let e = read(
        "machineID,cycle,volt,rot\n1,1,170,400\n1,2015-01-01,1,1\n",
        "m.csv",
        &p,
        &c,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("m.csv:3") && e.contains("one kind"), "{e}");
}

#[test]
fn the_features_are_the_profile_window_s() {
    let p = pump();
    let d = read(&hourly(4), "d.csv", &p, &columns()).unwrap();
    let rows = features(&d, &p);
    assert_eq!(rows.len(), 4);
    let mut w = ProfileWindow::new(&p);
    for (i, (m, step, values, cold)) in rows.iter().enumerate() {
        assert_eq!((*m, *step, *cold), (0, i, i == 0));
        let want = w.update(
            &p,
            d.machines[0].t[i],
            &d.machines[0].values[i * 2..i * 2 + 2],
            &[None],
        );
        assert_eq!(values.len(), want.values.len());
        for (a, b) in values.iter().zip(&want.values) {
            assert!(a.to_bits() == b.to_bits(), "{a} vs {b}");
        }
    }
}

#[test]
fn the_eda_frame_has_the_profile_s_sensors_and_classes_every_reading() {
    let p = pump();
    let d = read(&hourly(10), "d.csv", &p, &columns()).unwrap();
    let events = [Event {
        machine: "7".to_owned(),
        t: 1_420_070_400.0 + 6.0 * 3600.0,
        label: Some("comp1".to_owned()),
    }];
    let f = frame(&d, &p, &events, Horizon::Time(7200.0));
    assert_eq!(f.rows(), 10);
    assert_eq!(f.columns[0].name, "volt [V]");
    assert_eq!(f.columns[1].name, "rotate");
    let positive: Vec<usize> = (0..10).filter(|&i| f.class[i]).collect();
    assert_eq!(positive, [4, 5], "the 2 h before the failure at 6 h");
    assert_eq!(f.machines.as_ref().unwrap().failures.len(), 1);
    let r = frame(&d, &p, &events, Horizon::Readings(2));
    assert_eq!(r.class, f.class);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a file holds (broken quoting, ragged rows, NaN, huge numbers, mixed time
        /// kinds), reading it gives data or an error, never a panic, and every kept reading
        /// has one value per sensor and one code per attribute.
        #[test]
        fn any_export_reads_or_fails_cleanly(
            rows in proptest::collection::vec(
                (
                    prop_oneof![Just("1"), Just("2"), Just(""), Just("m\"x")],
                    prop_oneof![
                        Just("2015-01-01 06:00:00".to_owned()),
                        (0u32..100).prop_map(|n| n.to_string()),
                        "\\PC{0,12}",
                    ],
                    prop_oneof![Just("170.5".to_owned()), Just("NaN".to_owned()), Just("1e308".to_owned()), Just(String::new()), "\\PC{0,6}"],
                    prop_oneof![Just("model1"), Just("zzz"), Just("")],
                ),
                0..40,
            )
        ) {
            let mut text = "machineID,datetime,volt,rot,model\n".to_owned();
            for (id, t, v, m) in &rows {
                text.push_str(&format!("{id},{t},{v},400,{m}\n"));
            }
            let p = pump();
            if let Ok(d) = read(&text, "f.csv", &p, &columns()) {
                for s in &d.machines {
                    prop_assert_eq!(s.values.len(), s.len() * 2);
                    prop_assert_eq!(s.attrs.len(), s.len());
                    prop_assert!(s.t.windows(2).all(|w| w[0] <= w[1]), "sorted by time");
                }
                let (ds, _) = dataset(&d, &p, &[], Horizon::Time(3600.0));
                prop_assert_eq!(ds.x.nrows(), ds.y.len());
            }
        }

        #[test]
        fn any_time_cell_parses_or_is_none(cell in "\\PC{0,30}") {
            let _ = parse_time(&cell, &jiff::tz::TimeZone::UTC);
        }
    }
}
