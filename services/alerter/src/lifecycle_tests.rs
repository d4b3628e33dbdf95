use super::*;
use proptest::prelude::*;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

fn v(status: RiskStatus, level: Level, probability: f64) -> VerdictInput {
    VerdictInput {
        status,
        level,
        probability,
        cold: false,
    }
}
fn at_risk(level: Level) -> VerdictInput {
    v(RiskStatus::AtRisk, level, 0.9)
}
fn healthy(p: f64) -> VerdictInput {
    v(RiskStatus::Healthy, Level::Normal, p)
}
fn machine() -> MachineId {
    MachineId::parse("m-1").expect("valid id")
}

/// Feeds verdicts one second apart; returns the final state and every transition.
fn run(verdicts: &[VerdictInput], cfg: &LifecycleConfig) -> (AlertState, Vec<Transition>) {
    let mut s = AlertState::new(machine());
    let mut out = Vec::new();
    for (i, vd) in verdicts.iter().enumerate() {
        let (n, t) = step(&s, vd, T0 + Duration::seconds(i as i64), cfg);
        s = n;
        out.extend(t);
    }
    (s, out)
}

#[test]
fn default_config_is_valid_and_bad_ones_are_named() {
    assert_eq!(LifecycleConfig::default().validate(), Ok(()));
    let bad = LifecycleConfig {
        confirm_k: 4,
        ..LifecycleConfig::default()
    };
    assert!(matches!(
        bad.validate(),
        Err(LifecycleConfigError::Confirm { k: 4, n: 3 })
    ));
    let bad = LifecycleConfig {
        resolve_below: f64::NAN,
        ..LifecycleConfig::default()
    };
    assert!(bad.validate().is_err());
}

#[test]
fn one_spike_does_not_fire_two_of_three_do() {
    let cfg = LifecycleConfig::default();
    let (_, t) = run(&[at_risk(Level::Warning), healthy(0.1), healthy(0.1)], &cfg);
    assert!(t.is_empty());
    let (s, t) = run(
        &[
            at_risk(Level::Warning),
            healthy(0.5),
            at_risk(Level::Warning),
        ],
        &cfg,
    );
    let id = alert_id(&machine(), T0 + Duration::seconds(2));
    assert_eq!(id, "m-1-20261122T100002000Z");
    assert_eq!(
        t,
        vec![Transition::Fire {
            alert_id: id.clone(),
            level: Level::Warning
        }]
    );
    assert_eq!(s.firing().map(|f| f.alert_id.as_str()), Some(id.as_str()));
}

#[test]
fn cold_verdicts_are_ignored() {
    let cfg = LifecycleConfig::default();
    let cold = VerdictInput {
        cold: true,
        ..at_risk(Level::Critical)
    };
    let (s, t) = run(&[cold, cold, cold, at_risk(Level::Warning)], &cfg);
    assert!(t.is_empty());
    assert!(s.firing().is_none());
}

#[test]
fn escalates_once_and_only_upwards() {
    let cfg = LifecycleConfig::default();
    let seq = [
        at_risk(Level::Warning),
        at_risk(Level::Warning),
        at_risk(Level::Critical),
        at_risk(Level::Warning),
        at_risk(Level::Critical),
    ];
    let (s, t) = run(&seq, &cfg);
    assert_eq!(t.len(), 2);
    assert!(matches!(
        t[1],
        Transition::Escalate {
            from: Level::Warning,
            to: Level::Critical,
            ..
        }
    ));
    assert_eq!(s.firing().map(|f| f.level), Some(Level::Critical));
}

#[test]
fn resolves_only_after_consecutive_low_healthy_verdicts() {
    let cfg = LifecycleConfig::default();
    let mut seq = vec![at_risk(Level::Critical), at_risk(Level::Critical)];
    // In the hysteresis band: healthy but not low enough.
    seq.extend([healthy(0.4), healthy(0.4), healthy(0.4), healthy(0.4)]);
    // Two low, then a relapse resets the run.
    seq.extend([healthy(0.1), healthy(0.1), at_risk(Level::Critical)]);
    let (s, t) = run(&seq, &cfg);
    assert_eq!(t.len(), 1);
    assert!(s.firing().is_some());
    seq.extend([healthy(0.1), healthy(0.1), healthy(0.1)]);
    let (s, t) = run(&seq, &cfg);
    assert_eq!(t.len(), 2);
    assert!(matches!(
        &t[1],
        Transition::Resolve { level: Level::Critical, since, .. } if *since == T0 + Duration::seconds(1)
    ));
    assert_eq!(t[0].alert_id(), t[1].alert_id());
    assert!(s.firing().is_none());
}

#[test]
fn long_firing_alert_repeats_every_interval() {
    let cfg = LifecycleConfig::default();
    let mut s = AlertState::new(machine());
    let mut tags = Vec::new();
    for minute in 0..=150 {
        let (n, t) = step(
            &s,
            &at_risk(Level::Warning),
            T0 + Duration::minutes(minute),
            &cfg,
        );
        s = n;
        tags.extend(t.map(|t| (minute, t.tag())));
    }
    let expect = [(1, "firing"), (61, "repeat-1"), (121, "repeat-2")];
    let expect: Vec<_> = expect.iter().map(|(m, t)| (*m, t.to_string())).collect();
    assert_eq!(tags, expect);
}

#[test]
fn alert_id_is_file_name_safe() {
    let id = alert_id(&machine(), datetime!(2026-01-02 03:04:05.678 +02:00));
    assert_eq!(id, "m-1-20260102T010405678Z");
    assert!(id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
}

fn arb_verdict() -> impl Strategy<Value = VerdictInput> {
    (
        any::<bool>(),
        prop_oneof![
            Just(Level::Normal),
            Just(Level::Warning),
            Just(Level::Critical)
        ],
        0.0f64..=1.0,
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(risk, level, probability, cold)| VerdictInput {
            status: if risk {
                RiskStatus::AtRisk
            } else {
                RiskStatus::Healthy
            },
            level,
            probability,
            cold,
        })
}

fn arb_config() -> impl Strategy<Value = LifecycleConfig> {
    (1u8..=5, 0u8..=3, 0.05f64..=1.0, 1u32..=4, 1i64..=120).prop_map(
        |(k, extra, resolve_below, resolve_after, mins)| LifecycleConfig {
            confirm_k: k,
            confirm_n: k + extra,
            resolve_below,
            resolve_after,
            repeat_interval: Duration::minutes(mins),
        },
    )
}

proptest! {
    #[test]
    fn transitions_follow_the_lifecycle(
        cfg in arb_config(),
        input in proptest::collection::vec((arb_verdict(), 0i64..=1800), 0..300),
    ) {
        prop_assert_eq!(cfg.validate(), Ok(()));
        let mut s = AlertState::new(machine());
        let mut now = T0;
        let mut current: Option<String> = None;
        let mut last_note: Option<OffsetDateTime> = None;
        let mut escalated = false;
        for (vd, gap) in input {
            now += Duration::seconds(gap);
            let (n, t) = step(&s, &vd, now, &cfg);
            s = n;
            let Some(t) = t else { continue };
            prop_assert!(!vd.cold, "a cold verdict caused {:?}", t);
            match &t {
                Transition::Fire { alert_id, .. } => {
                    prop_assert!(current.is_none(), "second Fire in one firing period");
                    current = Some(alert_id.clone());
                    escalated = false;
                }
                Transition::Escalate { alert_id, .. } => {
                    prop_assert_eq!(Some(alert_id), current.as_ref());
                    prop_assert!(!escalated, "escalated twice");
                    escalated = true;
                }
                Transition::Repeat { alert_id, .. } => {
                    prop_assert_eq!(Some(alert_id), current.as_ref());
                    let last = last_note.expect("a firing alert has notified");
                    prop_assert!(now - last >= cfg.repeat_interval);
                }
                Transition::Resolve { alert_id, .. } => {
                    prop_assert_eq!(Some(alert_id), current.as_ref(), "Resolve without Fire");
                    current = None;
                }
            }
            last_note = Some(now);
            prop_assert_eq!(s.firing().map(|f| f.alert_id.clone()), current.clone());
        }
    }

    #[test]
    fn flapping_notifies_at_most_once_per_repeat_interval(
        steps in 1usize..2000,
        gap_secs in 1i64..=600,
        low in 0.0f64..0.3,
        level in prop_oneof![Just(Level::Warning), Just(Level::Critical)],
    ) {
        let cfg = LifecycleConfig::default();
        let mut s = AlertState::new(machine());
        let mut notes: Vec<OffsetDateTime> = Vec::new();
        for i in 0..steps {
            let vd = if i % 2 == 0 { at_risk(level) } else { healthy(low) };
            let now = T0 + Duration::seconds(gap_secs * i as i64);
            let (n, t) = step(&s, &vd, now, &cfg);
            s = n;
            if t.is_some() {
                notes.push(now);
            }
        }
        for w in notes.windows(2) {
            prop_assert!(w[1] - w[0] >= cfg.repeat_interval, "notified at {} and {}", w[0], w[1]);
        }
    }
}
