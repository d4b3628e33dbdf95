//! The processor with machine profiles: resolution (payload, pattern, milling), value mapping,
//! rejections, unknown keys, ordering of held profile readings, and the milling path beside.

use crate::processor::{Outgoing, Processor, ProcessorConfig};
use crate::profiles::ProfileSet;
use dtwin_profile::Profile;
use dtwin_schema::{from_json, DeadLetter, Features, MachineId, RejectReason, Telemetry, Topics};
use std::sync::Arc;
use time::OffsetDateTime;

const PUMP: &str = r#"
id = "pump"
label = "Pump"

[[sensor]]
name = "volt"
unit = "V"
range = [100.0, 300.0]

[[sensor]]
name = "rotate"
key = "rpm"
range = [0.0, 1000.0]

[[derived]]
name = "volt_per_rpm"
expr = "volt / rotate"

[[attribute]]
name = "model"
values = ["m1", "m2", "m3"]

[windows]
short = 3
"#;

fn pump() -> Profile {
    Profile::parse(PUMP, "pump.toml").unwrap()
}

fn processor(map: &[(&str, &str)]) -> Processor {
    let map: Vec<(String, String)> = map
        .iter()
        .map(|(p, i)| (p.to_string(), i.to_string()))
        .collect();
    let set = ProfileSet::new(vec![Profile::milling(), pump()], &map).unwrap();
    Processor::with_config(
        Topics::default(),
        ProcessorConfig {
            profiles: Arc::new(set),
            ..ProcessorConfig::default()
        },
    )
}

fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)
}

fn send(p: &mut Processor, machine: &str, payload: &str) -> Vec<Outgoing> {
    let mut out = Vec::new();
    let topic = format!("dtwin/v1/machines/{machine}/telemetry");
    p.handle(&topic, payload.as_bytes(), now(), 0, &mut out);
    out
}

fn features(out: &[Outgoing]) -> Vec<Features> {
    out.iter()
        .filter_map(|o| match o {
            Outgoing::Features { payload, .. } => Some(from_json(payload).unwrap()),
            Outgoing::DeadLetter { .. } => None,
        })
        .collect()
}

fn dead(out: &[Outgoing]) -> Vec<DeadLetter> {
    out.iter()
        .filter_map(|o| match o {
            Outgoing::DeadLetter { payload, .. } => Some(from_json(payload).unwrap()),
            Outgoing::Features { .. } => None,
        })
        .collect()
}

#[test]
fn a_mapped_machine_gets_its_profile_features() {
    let mut p = processor(&[("pump-*", "pump")]);
    let (names, hash) = dtwin_windows::profile_feature_set(&pump());
    let out = send(
        &mut p,
        "pump-01",
        r#"{"seq":1,"values":{"volt":200,"rpm":400,"model":"m2"}}"#,
    );
    let [f] = &features(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(f.profile.as_deref(), Some("pump"));
    assert_eq!(f.feature_set, hash);
    assert_eq!(
        f.values
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        names.iter().cloned().collect()
    );
    assert_eq!(f.values["volt"], Some(200.0));
    assert_eq!(f.values["volt_per_rpm"], Some(0.5));
    assert_eq!(f.values["model"], Some(1.0));
    assert_eq!(f.latest["volt"], 200.0);
    assert_eq!(f.latest["rotate"], 400.0, "latest is by sensor name");
    assert!(f.cold && f.window_len == 1);
    // An unmapped machine is milling, as before: no profile on the wire.
    let out = send(
        &mut p,
        "mill-1",
        r#"{"seq":1,"values":{"temperature_c":36}}"#,
    );
    let [f] = &features(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(f.profile, None);
    assert_eq!(
        f.feature_set,
        dtwin_windows::feature_set(&Default::default()).1
    );
}

#[test]
fn the_payload_profile_wins_and_an_unknown_one_is_dead_lettered() {
    let mut p = processor(&[("pump-*", "pump")]);
    let out = send(
        &mut p,
        "other-1",
        r#"{"profile":"pump","values":{"volt":150}}"#,
    );
    assert_eq!(features(&out)[0].profile.as_deref(), Some("pump"));
    let out = send(
        &mut p,
        "pump-01",
        r#"{"profile":"nope","values":{"volt":150}}"#,
    );
    let [d] = &dead(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(d.reason, RejectReason::UnknownProfile);
    assert!(
        d.detail.contains("\"nope\"") && d.detail.contains("milling, pump"),
        "{}",
        d.detail
    );
    assert_eq!(
        d.machine_id.as_ref().map(MachineId::as_str),
        Some("pump-01")
    );
    // v1 is the milling payload, even for a machine the map calls a pump.
    let mut t = Telemetry::new(MachineId::parse("pump-02").unwrap(), now(), 1);
    t.temperature_c = Some(36.0);
    let out = send(&mut p, "pump-02", &String::from_utf8(t.encode()).unwrap());
    assert_eq!(features(&out)[0].profile, None);
    assert_eq!(features(&out)[0].values["temperature_c"], Some(36.0));
}

#[test]
fn out_of_range_and_wrong_types_are_dead_lettered_and_unknown_keys_counted() {
    let mut p = processor(&[("pump-*", "pump")]);
    let out = send(&mut p, "pump-01", r#"{"values":{"volt":999,"rpm":1}}"#);
    let [d] = &dead(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(d.reason, RejectReason::OutOfRange);
    assert!(
        d.detail.contains("values.volt = 999") && d.detail.contains("[100, 300] V"),
        "{}",
        d.detail
    );
    let out = send(&mut p, "pump-01", r#"{"values":{"rpm":"fast"}}"#);
    assert_eq!(dead(&out)[0].reason, RejectReason::WrongType);
    // Milling's ranges do not apply to a pump (temperature_c is not one of its sensors).
    let out = send(
        &mut p,
        "pump-01",
        r#"{"values":{"volt":120,"temperature_c":-999,"humidity":3,"model":"m9"}}"#,
    );
    assert_eq!(features(&out).len(), 1, "{out:?}");
    let s = p.stats();
    assert_eq!(
        (s.unknown_values, s.rejected, s.processed),
        (3, 2, 1),
        "temperature_c, humidity and the unknown model value"
    );
}

#[test]
fn held_profile_readings_keep_their_values_through_reordering() {
    let mut p = processor(&[("pump-*", "pump")]);
    let mut out = Vec::new();
    for (seq, volt) in [(1, 110), (3, 130), (2, 120)] {
        out.extend(send(
            &mut p,
            "pump-01",
            &format!(r#"{{"seq":{seq},"values":{{"volt":{volt},"rpm":10}}}}"#),
        ));
    }
    let got: Vec<(u64, Option<f64>)> = features(&out)
        .iter()
        .map(|f| (f.seq, f.values["volt"]))
        .collect();
    assert_eq!(got, [(1, Some(110.0)), (2, Some(120.0)), (3, Some(130.0))]);
    assert!(
        !features(&out)[2].cold,
        "three readings fill the short window"
    );
}

#[test]
fn a_machine_that_switches_profile_restarts_its_window_cold() {
    let mut p = processor(&[("pump-*", "pump")]);
    for seq in 1..=3 {
        send(
            &mut p,
            "pump-01",
            &format!(r#"{{"seq":{seq},"values":{{"volt":110}}}}"#),
        );
    }
    let out = send(
        &mut p,
        "pump-01",
        r#"{"seq":4,"profile":"milling","values":{"temperature_c":36}}"#,
    );
    let f = &features(&out)[0];
    assert_eq!((f.profile.as_deref(), f.window_len, f.seq), (None, 1, 4));
    // Readings naming none are still the machine's mapped profile.
    let out = send(&mut p, "pump-01", r#"{"seq":5,"values":{"volt":110}}"#);
    let f = &features(&out)[0];
    assert_eq!((f.profile.as_deref(), f.window_len), (Some("pump"), 1));
}
