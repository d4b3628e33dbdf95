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
        anomalous: false,
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
        let (n, t) = step(
            &s,
            vd,
            T0 + Duration::seconds(i as i64),
            cfg,
            &AnomalyConfig::default(),
        );
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
            level: Level::Warning,
            supersedes: None,
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
            &AnomalyConfig::default(),
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
        proptest::bool::weighted(0.5),
    )
        .prop_map(|(risk, level, probability, cold, anomalous)| VerdictInput {
            status: if risk {
                RiskStatus::AtRisk
            } else {
                RiskStatus::Healthy
            },
            level,
            probability,
            cold,
            anomalous,
        })
}

fn arb_anomaly() -> impl Strategy<Value = AnomalyConfig> {
    prop_oneof![
        Just(AnomalyConfig::OFF),
        (1u32..=6, 1u32..=4).prop_map(|(fire_after, resolve_after)| AnomalyConfig {
            fire_after,
            resolve_after,
        }),
    ]
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
        anomaly in arb_anomaly(),
        input in proptest::collection::vec((arb_verdict(), 0i64..=1800), 0..300),
    ) {
        prop_assert_eq!(cfg.validate(), Ok(()));
        prop_assert_eq!(anomaly.validate(), Ok(()));
        let m = machine();
        let mut s = AlertState::new(m.clone());
        let mut now = T0;
        let mut current: Option<String> = None;
        let mut last_note: Option<OffsetDateTime> = None;
        let mut escalated = false;
        // The non-cold verdicts' anomalous flags, newest last.
        let mut flags: Vec<bool> = Vec::new();
        for (vd, gap) in input {
            now += Duration::seconds(gap);
            let (n, t) = step(&s, &vd, now, &cfg, &anomaly);
            s = n;
            if !vd.cold {
                flags.push(vd.anomalous);
            }
            let Some(t) = t else { continue };
            prop_assert!(!vd.cold, "a cold verdict caused {:?}", t);
            let cause = Cause::of_alert(&m, t.alert_id());
            let tail = |n: u32, anomalous: bool| {
                flags.len() >= n as usize
                    && flags[flags.len() - n as usize..].iter().all(|f| *f == anomalous)
            };
            match &t {
                Transition::Fire { alert_id, level, supersedes } => {
                    match (cause, supersedes) {
                        (Cause::Anomaly, None) => {
                            prop_assert!(current.is_none(), "anomaly Fire in a firing period");
                            prop_assert!(anomaly.enabled());
                            prop_assert!(tail(anomaly.fire_after, true), "anomaly Fire without the run");
                            prop_assert_eq!(*level, Level::Warning);
                        }
                        (Cause::Failure, None) => {
                            prop_assert!(current.is_none(), "second Fire in one firing period");
                            prop_assert_eq!(vd.status, RiskStatus::AtRisk);
                        }
                        (Cause::Failure, Some(old)) => {
                            prop_assert_eq!(Some(&old.alert_id), current.as_ref(), "supersedes another alert");
                            prop_assert_eq!(Cause::of_alert(&m, &old.alert_id), Cause::Anomaly);
                            prop_assert_eq!(vd.status, RiskStatus::AtRisk);
                        }
                        (Cause::Anomaly, Some(_)) => prop_assert!(false, "an anomaly alert superseded one"),
                    }
                    current = Some(alert_id.clone());
                    escalated = false;
                }
                Transition::Escalate { alert_id, .. } => {
                    prop_assert_eq!(Some(alert_id), current.as_ref());
                    prop_assert_eq!(cause, Cause::Failure, "an anomaly alert escalated");
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
                    if cause == Cause::Anomaly {
                        prop_assert!(tail(anomaly.resolve_after, false), "anomaly Resolve while anomalous");
                    }
                    current = None;
                }
                Transition::Acknowledge { .. } | Transition::Clear { .. } => {
                    prop_assert!(false, "a verdict acknowledged or cleared: {:?}", t);
                }
            }
            last_note = Some(now);
            prop_assert_eq!(s.firing().map(|f| f.alert_id.clone()), current.clone());
            prop_assert_eq!(s.cause(), current.as_ref().map(|id| Cause::of_alert(&m, id)));
        }
    }

    /// Verdicts that carry no anomaly (every verdict before anomaly models, and every verdict
    /// with anomaly alerts off) go through the lifecycle exactly as before anomaly alerts.
    #[test]
    fn without_anomalies_the_failure_lifecycle_is_unchanged(
        cfg in arb_config(),
        anomaly in arb_anomaly(),
        input in proptest::collection::vec((arb_verdict(), 0i64..=1800), 0..300),
    ) {
        let mut with = AlertState::new(machine());
        let mut off = AlertState::new(machine());
        let mut flagged_off = AlertState::new(machine());
        let mut now = T0;
        for (vd, gap) in input {
            now += Duration::seconds(gap);
            let plain = VerdictInput { anomalous: false, ..vd };
            let (a, ta) = step(&with, &plain, now, &cfg, &anomaly);
            let (b, tb) = step(&off, &plain, now, &cfg, &AnomalyConfig::OFF);
            // Anomaly alerts off: the flags change nothing either.
            let (c, tc) = step(&flagged_off, &vd, now, &cfg, &AnomalyConfig::OFF);
            prop_assert_eq!(&ta, &tb);
            prop_assert_eq!(&tb, &tc);
            prop_assert!(ta.iter().all(|t| Cause::of_alert(&machine(), t.alert_id()) == Cause::Failure));
            (with, off, flagged_off) = (a, b, c);
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
            let (n, t) = step(&s, &vd, now, &cfg, &AnomalyConfig::default());
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

fn anomalous(v: VerdictInput) -> VerdictInput {
    VerdictInput {
        anomalous: true,
        ..v
    }
}

/// Feeds verdicts one second apart with anomaly alerts on `anomaly`; returns the final state
/// and every transition with the index of the verdict that caused it.
fn run_with(
    verdicts: &[VerdictInput],
    anomaly: &AnomalyConfig,
) -> (AlertState, Vec<(usize, Transition)>) {
    let cfg = LifecycleConfig::default();
    let mut s = AlertState::new(machine());
    let mut out = Vec::new();
    for (i, vd) in verdicts.iter().enumerate() {
        let (n, t) = step(&s, vd, T0 + Duration::seconds(i as i64), &cfg, anomaly);
        s = n;
        out.extend(t.map(|t| (i, t)));
    }
    (s, out)
}

#[test]
fn anomaly_alert_fires_after_n_anomalous_in_a_row_and_resolves_after_m_ordinary() {
    let cfg = AnomalyConfig {
        fire_after: 5,
        resolve_after: 3,
    };
    let odd = anomalous(healthy(0.1));
    // Four anomalous, one ordinary: the run starts over; then five in a row fire.
    let mut seq = vec![odd; 4];
    seq.push(healthy(0.1));
    seq.extend([odd; 5]);
    let (s, t) = run_with(&seq, &cfg);
    let id = alert_id_for(&machine(), Cause::Anomaly, T0 + Duration::seconds(9));
    assert_eq!(id, "m-1-anomaly-20261122T100009000Z");
    assert_eq!(
        t,
        vec![(
            9,
            Transition::Fire {
                alert_id: id.clone(),
                level: Level::Warning,
                supersedes: None,
            }
        )]
    );
    assert_eq!(s.cause(), Some(Cause::Anomaly));
    assert_eq!(
        s.window(),
        0,
        "no failure window is saved while an alert fires"
    );
    // Two ordinary, an anomalous one (the run starts over), then three ordinary resolve it.
    seq.extend([healthy(0.1), healthy(0.1), odd]);
    seq.extend([healthy(0.1); 3]);
    let (s, t) = run_with(&seq, &cfg);
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[1].0, seq.len() - 1);
    assert!(matches!(
        &t[1].1,
        Transition::Resolve { alert_id, level: Level::Warning, since }
            if *alert_id == id && *since == T0 + Duration::seconds(9)
    ));
    assert_eq!((s.firing(), s.cause()), (None, None));
}

#[test]
fn an_anomaly_alert_never_escalates_and_repeats_like_any_alert() {
    let cfg = LifecycleConfig::default();
    let anomaly = AnomalyConfig::default();
    let mut s = AlertState::new(machine());
    let mut tags = Vec::new();
    // Anomalous but healthy (no failure risk), some verdicts CRITICAL-level: no escalation.
    for minute in 0..=130 {
        let level = if minute % 7 == 0 {
            Level::Critical
        } else {
            Level::Normal
        };
        let vd = anomalous(v(RiskStatus::Healthy, level, 0.2));
        let (n, t) = step(&s, &vd, T0 + Duration::minutes(minute), &cfg, &anomaly);
        s = n;
        tags.extend(t.map(|t| (minute, t.tag(), t.level())));
    }
    assert_eq!(
        tags,
        vec![
            (4, "firing".to_owned(), Level::Warning),
            (64, "repeat-1".to_owned(), Level::Warning),
            (124, "repeat-2".to_owned(), Level::Warning),
        ]
    );
}

#[test]
fn a_confirmed_failure_supersedes_the_anomaly_alert() {
    let anomaly = AnomalyConfig {
        fire_after: 3,
        resolve_after: 3,
    };
    let odd = anomalous(healthy(0.2));
    // An AT_RISK verdict among the anomalous ones counts towards the failure window; the
    // anomaly alert fires at 3; the next AT_RISK (2 of the last 3) confirms the failure.
    let seq = [
        odd,
        odd,
        anomalous(at_risk(Level::Warning)),
        odd,
        anomalous(at_risk(Level::Critical)),
    ];
    let (s, t) = run_with(&seq, &anomaly);
    let anomaly_id = alert_id_for(&machine(), Cause::Anomaly, T0 + Duration::seconds(2));
    let failure_id = alert_id(&machine(), T0 + Duration::seconds(4));
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[0].1.alert_id(), anomaly_id);
    assert_eq!(
        t[1],
        (
            4,
            Transition::Fire {
                alert_id: failure_id.clone(),
                level: Level::Critical,
                supersedes: Some(Superseded {
                    alert_id: anomaly_id,
                    level: Level::Warning,
                    since: T0 + Duration::seconds(2),
                }),
            }
        )
    );
    assert_eq!(s.cause(), Some(Cause::Failure));
    assert_eq!(
        s.firing().map(|f| f.alert_id.as_str()),
        Some(failure_id.as_str())
    );
}

#[test]
fn the_failure_alert_wins_a_tie_and_ignores_anomalies_while_it_fires() {
    let anomaly = AnomalyConfig {
        fire_after: 2,
        resolve_after: 1,
    };
    // Both conditions met by the second verdict: the failure alert fires.
    let mut seq = vec![anomalous(at_risk(Level::Warning)); 2];
    // While it fires, anomalies start no alert of their own.
    seq.extend([anomalous(at_risk(Level::Warning)); 5]);
    let (_, t) = run_with(&seq, &anomaly);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        Cause::of_alert(&machine(), t[0].1.alert_id()),
        Cause::Failure
    );
    // It resolves on healthy verdicts even while they are anomalous; the anomaly alert then
    // needs its own run of fresh verdicts.
    seq.extend([anomalous(healthy(0.1)); 3]);
    let (s, t) = run_with(&seq, &anomaly);
    assert_eq!(t.len(), 2);
    assert!(matches!(t[1].1, Transition::Resolve { .. }));
    assert_eq!(s.anomalous_run(), 0);
    seq.push(anomalous(healthy(0.1)));
    assert_eq!(run_with(&seq, &anomaly).1.len(), 2, "one fresh verdict");
    seq.push(anomalous(healthy(0.1)));
    let (s, t) = run_with(&seq, &anomaly);
    assert_eq!(t.len(), 3);
    assert_eq!(s.cause(), Some(Cause::Anomaly));
}

#[test]
fn anomaly_alerts_off_and_verdicts_without_a_score_fire_nothing() {
    let odd = anomalous(healthy(0.1));
    let (s, t) = run_with(&[odd; 20], &AnomalyConfig::OFF);
    assert!(t.is_empty());
    assert_eq!(s.anomalous_run(), 20, "counted, never fired");
    // A verdict without an anomaly model (anomalous: false) breaks the run.
    let mut seq = vec![odd; 4];
    seq.push(healthy(0.1));
    seq.extend([odd; 4]);
    assert!(run_with(&seq, &AnomalyConfig::default()).1.is_empty());
    // Cold verdicts neither count nor break it.
    let cold = VerdictInput { cold: true, ..odd };
    let seq = [odd, odd, cold, odd, cold, odd, odd];
    assert_eq!(run_with(&seq, &AnomalyConfig::default()).1.len(), 1);
}

#[test]
fn the_cause_is_read_back_from_the_alert_id() {
    let m = machine();
    let at = T0 + Duration::milliseconds(5);
    let anomaly = alert_id_for(&m, Cause::Anomaly, at);
    let failure = alert_id_for(&m, Cause::Failure, at);
    assert_eq!(failure, alert_id(&m, at), "failure ids are as before");
    assert_eq!(Cause::of_alert(&m, &anomaly), Cause::Anomaly);
    assert_eq!(Cause::of_alert(&m, &failure), Cause::Failure);
    assert!(anomaly
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    // A machine whose own id ends in "-anomaly": its failure alert is still a failure alert.
    let odd = MachineId::parse("press-anomaly").expect("valid id");
    assert_eq!(
        Cause::of_alert(&odd, &alert_id(&odd, at)),
        Cause::Failure,
        "{}",
        alert_id(&odd, at)
    );
    assert_eq!(
        Cause::of_alert(&odd, &alert_id_for(&odd, Cause::Anomaly, at)),
        Cause::Anomaly
    );
    // A resumed or handed-over alert keeps its cause.
    let (s, _) = run_with(&[anomalous(healthy(0.1)); 5], &AnomalyConfig::default());
    let f = s.firing().cloned().expect("fires");
    assert_eq!(AlertState::resume(m, f).cause(), Some(Cause::Anomaly));
    assert_eq!(Cause::Anomaly.as_str(), "anomaly");
}

#[test]
fn anomaly_config_is_checked() {
    assert_eq!(AnomalyConfig::default().validate(), Ok(()));
    assert_eq!(AnomalyConfig::OFF.validate(), Ok(()));
    assert!(!AnomalyConfig::OFF.enabled());
    let bad = AnomalyConfig {
        fire_after: 5,
        resolve_after: 0,
    };
    assert_eq!(
        bad.validate(),
        Err(LifecycleConfigError::AnomalyResolveAfter)
    );
}

// ---------------------------------------------------------------- people's actions

fn person(by: &str, secs: i64) -> Acknowledgement {
    Acknowledgement {
        by: by.to_owned(),
        at: T0 + Duration::seconds(secs),
        comment: format!("{by} is on it"),
    }
}

fn action(kind: AlertActionKind, alert_id: &str, by: &str, secs: i64) -> ActionInput {
    ActionInput {
        kind,
        alert_id: alert_id.to_owned(),
        person: person(by, secs),
    }
}

/// A machine whose failure alert fired at T0 + 1 s (WARNING); returns the state and the id.
fn firing_warning(cfg: &LifecycleConfig) -> (AlertState, String) {
    let (s, t) = run(&[at_risk(Level::Warning), at_risk(Level::Warning)], cfg);
    assert_eq!(t.len(), 1);
    let id = t[0].alert_id().to_owned();
    (s, id)
}

fn step_at(
    s: &AlertState,
    vd: VerdictInput,
    secs: i64,
    cfg: &LifecycleConfig,
) -> (AlertState, Option<Transition>) {
    step(
        s,
        &vd,
        T0 + Duration::seconds(secs),
        cfg,
        &AnomalyConfig::default(),
    )
}

#[test]
fn acknowledging_stops_repeats_but_not_the_escalation_or_the_resolution() {
    let cfg = LifecycleConfig {
        repeat_interval: Duration::minutes(10),
        ..LifecycleConfig::default()
    };
    let (s, id) = firing_warning(&cfg);
    let (s, t) = act(&s, &action(AlertActionKind::Acknowledge, &id, "ops", 60)).unwrap();
    assert_eq!(
        t,
        Some(Transition::Acknowledge {
            alert_id: id.clone(),
            level: Level::Warning,
            ack: person("ops", 60),
        })
    );
    assert_eq!(t.unwrap().tag(), "acknowledged");
    let f = s.firing().expect("still open");
    assert_eq!(f.acknowledged, Some(person("ops", 60)));
    // Hours of AT_RISK WARNING verdicts: no repeat.
    let mut s = s;
    for i in 2..=(6 * 60) {
        let (n, t) = step_at(&s, at_risk(Level::Warning), i * 60, &cfg);
        assert_eq!(t, None, "minute {i}");
        s = n;
    }
    // The escalation is news: it notifies, and the acknowledgement stays.
    let (s, t) = step_at(&s, at_risk(Level::Critical), 7 * 3600, &cfg);
    assert!(matches!(t, Some(Transition::Escalate { .. })), "{t:?}");
    assert!(s.firing().unwrap().acknowledged.is_some());
    let (s, t) = step_at(&s, at_risk(Level::Critical), 8 * 3600, &cfg);
    assert_eq!(t, None, "no repeat after the escalation either");
    // Resolution still notifies.
    let mut s = s;
    let mut last = None;
    for i in 1..=3 {
        let (n, t) = step_at(&s, healthy(0.1), 8 * 3600 + i, &cfg);
        s = n;
        last = t;
    }
    assert!(matches!(last, Some(Transition::Resolve { .. })), "{last:?}");
    assert_eq!(s.firing(), None);
}

#[test]
fn clearing_ends_the_alert_and_a_new_one_needs_fresh_evidence() {
    let cfg = LifecycleConfig::default();
    let (s, id) = firing_warning(&cfg);
    let (s, t) = act(&s, &action(AlertActionKind::Clear, &id, "ops", 30)).unwrap();
    let t = t.expect("a transition");
    assert_eq!(t.tag(), "cleared");
    assert_eq!(
        t,
        Transition::Clear {
            alert_id: id.clone(),
            level: Level::Warning,
            since: T0 + Duration::seconds(1),
            by: person("ops", 30),
        }
    );
    assert_eq!(s.firing(), None);
    assert_eq!(s.window(), 0, "the confirmation window starts empty");
    // One AT_RISK verdict is not enough; the second fires a new alert.
    let (s, t) = step_at(&s, at_risk(Level::Critical), 40, &cfg);
    assert_eq!(t, None);
    let (s, t) = step_at(&s, at_risk(Level::Critical), 41, &cfg);
    match t {
        Some(Transition::Fire {
            alert_id, level, ..
        }) => {
            assert_ne!(alert_id, id);
            assert_eq!(level, Level::Critical);
        }
        other => panic!("expected a new alert, got {other:?}"),
    }
    assert_eq!(
        s.firing().unwrap().acknowledged,
        None,
        "a new alert is unacknowledged"
    );
}

#[test]
fn actions_on_anything_but_the_open_alert_are_refused_saying_why() {
    let cfg = LifecycleConfig::default();
    let m = machine();
    // No alert ever.
    let idle = AlertState::new(m.clone());
    let e = act(
        &idle,
        &action(AlertActionKind::Acknowledge, "m-1-x", "ops", 0),
    )
    .unwrap_err();
    assert_eq!(e.reason(), RejectReason::UnknownAlert);
    assert_eq!(
        e.to_string(),
        "alert m-1-x is not open; m-1 has no open alert"
    );
    // Another alert than the open one.
    let (s, id) = firing_warning(&cfg);
    let e = act(&s, &action(AlertActionKind::Clear, "m-1-old", "ops", 5)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("alert m-1-old is not open; m-1's open alert is {id}")
    );
    // Acknowledged twice, by someone else.
    let (acked, _) = act(&s, &action(AlertActionKind::Acknowledge, &id, "ops", 5)).unwrap();
    let e = act(
        &acked,
        &action(AlertActionKind::Acknowledge, &id, "anna", 6),
    )
    .unwrap_err();
    assert_eq!(e.reason(), RejectReason::AlreadyAcknowledged);
    assert_eq!(
        e.to_string(),
        format!("alert {id} was already acknowledged by ops at 2026-11-22T10:00:05Z")
    );
    // Cleared, then acted on again.
    let (cleared, _) = act(&acked, &action(AlertActionKind::Clear, &id, "ops", 7)).unwrap();
    let e = act(
        &cleared,
        &action(AlertActionKind::Acknowledge, &id, "ops", 8),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("alert {id} was cleared by ops at 2026-11-22T10:00:07Z; m-1 has no open alert")
    );
    let e = act(&cleared, &action(AlertActionKind::Clear, &id, "anna", 8)).unwrap_err();
    assert_eq!(e.reason(), RejectReason::UnknownAlert);
    // Resolved.
    let mut s = s;
    for i in 2..5 {
        s = step_at(&s, healthy(0.1), i, &cfg).0;
    }
    assert_eq!(s.firing(), None);
    let e = act(&s, &action(AlertActionKind::Clear, &id, "ops", 9)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("alert {id} resolved; m-1 has no open alert")
    );
    // Superseded: an anomaly alert replaced by a failure alert.
    let anomaly = AnomalyConfig::default();
    let mut s = AlertState::new(m.clone());
    let mut fired = Vec::new();
    for i in 0..5 {
        let (n, t) = step(
            &s,
            &anomalous(healthy(0.1)),
            T0 + Duration::seconds(i),
            &cfg,
            &anomaly,
        );
        s = n;
        fired.extend(t);
    }
    let old = fired[0].alert_id().to_owned();
    for i in 5..7 {
        s = step(
            &s,
            &at_risk(Level::Warning),
            T0 + Duration::seconds(i),
            &cfg,
            &anomaly,
        )
        .0;
    }
    let new = s.firing().unwrap().alert_id.clone();
    let e = act(&s, &action(AlertActionKind::Acknowledge, &old, "ops", 9)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("alert {old} was superseded by the failure alert {new}; m-1's open alert is {new}")
    );
}

#[test]
fn the_same_action_twice_is_applied_once() {
    let cfg = LifecycleConfig::default();
    let (s, id) = firing_warning(&cfg);
    let ack = action(AlertActionKind::Acknowledge, &id, "ops", 5);
    let (acked, t) = act(&s, &ack).unwrap();
    assert!(t.is_some());
    let (again, t) = act(&acked, &ack).unwrap();
    assert_eq!(
        (again, t),
        (acked.clone(), None),
        "a redelivered acknowledgement"
    );
    let clear = action(AlertActionKind::Clear, &id, "ops", 6);
    let (cleared, t) = act(&acked, &clear).unwrap();
    assert!(t.is_some());
    let (again, t) = act(&cleared, &clear).unwrap();
    assert_eq!((again, t), (cleared, None), "a redelivered clearing");
}

#[test]
fn an_action_takes_effect_just_after_the_newest_verdict_whatever_its_clock() {
    let cfg = LifecycleConfig::default();
    let (s, id) = firing_warning(&cfg);
    assert_eq!(s.clock(), Some(T0 + Duration::seconds(1)));
    // A person's clock far ahead or behind: the alert's clock moves by 1 ns.
    for secs in [-3600, 3600] {
        let (n, _) = act(&s, &action(AlertActionKind::Acknowledge, &id, "ops", secs)).unwrap();
        assert_eq!(
            n.clock(),
            Some(T0 + Duration::seconds(1) + Duration::nanoseconds(1))
        );
        assert_eq!(
            n.firing().unwrap().acknowledged.as_ref().unwrap().at,
            T0 + Duration::seconds(secs)
        );
    }
    // No clock yet (a state taken over): the action's own time.
    let f = s.firing().unwrap().clone();
    let resumed = AlertState::resume(machine(), f);
    let (n, _) = act(&resumed, &action(AlertActionKind::Clear, &id, "ops", 99)).unwrap();
    assert_eq!(n.clock(), Some(T0 + Duration::seconds(99)));
    assert_eq!(
        resumed
            .with_clock(T0)
            .with_clock(T0 - Duration::seconds(1))
            .clock(),
        Some(T0),
        "the clock never goes back"
    );
}

/// What a person does in the property test below.
#[derive(Debug, Clone)]
enum Input {
    Verdict(VerdictInput),
    /// Act on the open alert (or a made-up id when none is open).
    Act(AlertActionKind, bool),
}

fn arb_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        8 => arb_verdict().prop_map(Input::Verdict),
        1 => (prop_oneof![Just(AlertActionKind::Acknowledge), Just(AlertActionKind::Clear)], any::<bool>())
            .prop_map(|(k, right)| Input::Act(k, right)),
    ]
}

proptest! {
    /// Verdicts and people's actions interleaved: an acknowledged alert never repeats, only
    /// the open alert can be acted on, a cleared alert is gone, and the clock never goes back.
    #[test]
    fn people_and_verdicts_keep_the_lifecycle_consistent(
        cfg in arb_config(),
        anomaly in arb_anomaly(),
        input in proptest::collection::vec((arb_input(), 0i64..=1800), 0..300),
    ) {
        let m = machine();
        let mut s = AlertState::new(m.clone());
        let mut now = T0;
        let mut current: Option<String> = None;
        let mut acked = false;
        let mut who = 0u32;
        for (inp, gap) in input {
            now += Duration::seconds(gap);
            let before = s.clock();
            match inp {
                Input::Verdict(vd) => {
                    let (n, t) = step(&s, &vd, now, &cfg, &anomaly);
                    s = n;
                    match &t {
                        Some(Transition::Repeat { .. }) => prop_assert!(!acked, "an acknowledged alert repeated"),
                        Some(Transition::Fire { alert_id, .. }) => {
                            current = Some(alert_id.clone());
                            acked = false;
                        }
                        Some(Transition::Resolve { .. }) => current = None,
                        Some(Transition::Acknowledge { .. } | Transition::Clear { .. }) => {
                            prop_assert!(false, "a verdict acted");
                        }
                        _ => {}
                    }
                }
                Input::Act(kind, right) => {
                    who += 1;
                    let id = match (&current, right) {
                        (Some(id), true) => id.clone(),
                        _ => "m-1-somebody-else".to_owned(),
                    };
                    let a = ActionInput { kind, alert_id: id.clone(), person: person(&format!("p{who}"), who.into()) };
                    match act(&s, &a) {
                        Ok((n, Some(t))) => {
                            prop_assert_eq!(Some(&id), current.as_ref());
                            prop_assert_eq!(t.alert_id(), id.as_str());
                            match kind {
                                AlertActionKind::Acknowledge => {
                                    prop_assert!(!acked);
                                    acked = true;
                                }
                                AlertActionKind::Clear => {
                                    current = None;
                                    prop_assert_eq!(n.window(), 0);
                                }
                            }
                            prop_assert!(n.clock() > before || before.is_none());
                            s = n;
                        }
                        Ok((_, None)) => prop_assert!(false, "a new person's action was a duplicate"),
                        Err(e @ ActionError::NotOpen { .. }) => {
                            prop_assert!(current.as_ref() != Some(&id), "{}", e);
                        }
                        Err(ActionError::AlreadyAcknowledged { .. }) => {
                            prop_assert!(acked && kind == AlertActionKind::Acknowledge);
                        }
                    }
                }
            }
            prop_assert!(s.clock() >= before, "the clock went back");
            prop_assert_eq!(s.firing().map(|f| f.alert_id.clone()), current.clone());
            prop_assert_eq!(s.firing().is_some_and(|f| f.acknowledged.is_some()), acked && current.is_some());
        }
    }
}
