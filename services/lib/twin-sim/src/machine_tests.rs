use super::*;
use proptest::prelude::*;

fn cfg() -> SimConfig {
    SimConfig {
        sensor_glitches: false,
        fault_rate_per_hour: 0.0,
        ..SimConfig::default()
    }
}

#[test]
fn ids_are_padded_to_the_fleet_size() {
    assert_eq!(Machine::new(6, 20, &cfg()).id().as_str(), "machine-007");
    assert_eq!(
        Machine::new(6, 100_000, &cfg()).id().as_str(),
        "machine-000007"
    );
}

#[test]
fn same_seed_same_stream_whatever_the_fleet_size() {
    let c = SimConfig::default();
    let mut a = Fleet::new(5, &c);
    let mut b = Fleet::new(50, &c);
    for _ in 0..300 {
        assert_eq!(a.machines[3].step(), b.machines[3].step());
    }
    let mut other = Machine::new(3, 5, &SimConfig { seed: 43, ..c });
    let mut again = Machine::new(3, 5, &SimConfig::default());
    assert_ne!(other.step(), again.step());
}

#[test]
fn a_default_fleet_fails_somewhere_within_120_steps() {
    let mut fleet = Fleet::new(20, &SimConfig::default());
    let failed = (0..120).any(|_| fleet.machines.iter_mut().any(|m| m.step().failure));
    assert!(failed);
}

#[test]
fn a_bearing_fault_raises_vibration_then_fails() {
    let mut m = Machine::new(0, 1, &cfg());
    let before: f64 = (0..10).filter_map(|_| m.step().vibration_mm_s).sum::<f64>() / 10.0;
    m.inject(Fault::Bearing);
    let mut peak = 0.0f64;
    let mut mode = None;
    for _ in 0..400 {
        let r = m.step();
        if r.failure_mode == Some(FailureMode::Bearing) {
            mode = r.failure_mode;
            break;
        }
        peak = peak.max(r.vibration_mm_s.unwrap_or(0.0));
    }
    assert_eq!(mode, Some(FailureMode::Bearing));
    assert!(
        peak > before + 5.0,
        "vibration rose from {before} to {peak} before failing"
    );
}

#[test]
fn coolant_heats_and_valve_moves_pressure() {
    let mut m = Machine::new(1, 2, &cfg());
    m.inject(Fault::Coolant);
    let modes: Vec<_> = (0..200).map(|_| m.step()).collect();
    assert!(modes
        .iter()
        .any(|r| r.failure_mode == Some(FailureMode::Coolant)));
    let mut v = Machine::new(2, 3, &cfg());
    v.inject(Fault::Valve);
    let rs: Vec<_> = (0..300).map(|_| v.step()).collect();
    assert!(rs
        .iter()
        .any(|r| r.failure_mode == Some(FailureMode::Valve)));
    assert!(rs
        .iter()
        .any(|r| r.pressure_bar.is_some_and(|p| !(4.5..=7.5).contains(&p))));
}

#[test]
fn a_dropout_reads_none_and_the_tool_is_changed_after_wear_out() {
    let mut m = Machine::new(0, 1, &cfg());
    m.inject(Fault::Dropout(Sensor::Pressure));
    assert_eq!(m.step().pressure_bar, None);
    m.inject(Fault::ToolWearOut);
    let failed = (0..100)
        .map(|_| m.step())
        .find(|r| r.failure)
        .expect("tool fails");
    assert_eq!(failed.failure_mode, Some(FailureMode::Twf));
    assert!(m.tool_wear() < 1.0, "tool changed after TWF");
}

proptest! {
    #[test]
    fn readings_are_sane(seed in any::<u64>(), index in 0usize..1000, steps in 1usize..300) {
        let mut m = Machine::new(index, 1000, &SimConfig { seed, ..SimConfig::default() });
        for _ in 0..steps {
            let r = m.step();
            prop_assert_eq!(r.failure, r.failure_mode.is_some());
            prop_assert!(!(r.failure && r.quality_ok));
            for v in [r.temperature_c, r.ambient_temperature_c, r.vibration_mm_s, r.pressure_bar, r.spindle_rpm, r.torque_nm, r.power_w, r.tool_wear_min].into_iter().flatten() {
                prop_assert!(v.is_finite());
            }
            prop_assert!(r.torque_nm.unwrap_or(0.0) >= 0.0);
            prop_assert!(r.vibration_mm_s.unwrap_or(0.0) >= 0.0);
            // The telemetry a reading becomes passes the decoder's range checks.
            let t = r.to_telemetry(m.id(), OffsetDateTime::UNIX_EPOCH);
            prop_assert!(dtwin_schema::Telemetry::decode(&t.encode()).is_ok());
        }
    }
}
