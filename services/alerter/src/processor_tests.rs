use super::*;
use crate::lifecycle::AnomalyConfig;
use dtwin_schema::{Level, ModelRef, RiskStatus};
use std::collections::BTreeMap;
use time::macros::datetime;
use time::Duration;

fn topics() -> Topics {
    Topics::default()
}

fn processor() -> Processor {
    Processor::new(topics(), LifecycleConfig::default(), None)
}

fn risk(id: &str, status: RiskStatus, p: f64, secs: i64) -> Risk {
    Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: MachineId::parse(id).expect("valid id"),
        ts: datetime!(2026-11-22 10:00:00 UTC) + Duration::seconds(secs),
        source_ts: datetime!(2026-11-22 10:00:00 UTC),
        seq: 1,
        probability: p,
        status,
        level: if status == RiskStatus::AtRisk {
            Level::Critical
        } else {
            Level::Normal
        },
        health_score: 100.0 * (1.0 - p),
        actions: Vec::new(),
        factors: Vec::new(),
        model: ModelRef {
            id: "rf".to_owned(),
            version: "1".to_owned(),
        },
        cold: false,
        latest: BTreeMap::new(),
        profile: None,
        insights: Default::default(),
    }
}

fn feed(p: &mut Processor, r: &Risk) -> Outcome {
    let topic = topics().risk(&r.machine_id);
    p.handle(&topic, &dtwin_schema::to_json(r))
}

#[test]
fn confirmed_risk_fires_then_resolves_with_mails_and_events() {
    let mut p = processor();
    assert!(matches!(
        feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 0)),
        Outcome::Quiet
    ));
    let Outcome::Notify(n) = feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 1)) else {
        panic!("second at-risk verdict fires");
    };
    assert_eq!(n.topic, "dtwin/v1/alerts/m-1");
    assert_eq!(n.record.name(), "m-1-20261122T100001000Z.firing");
    assert!(
        n.record.firing.is_some(),
        "the record carries the firing alert"
    );
    assert_eq!(n.event.event, AlertEventKind::Firing);
    assert_eq!(n.event.level, Level::Critical);
    let mail = crate::email::render(
        &n.record.mail,
        &crate::MailConfig::default(),
        &crate::Profiles::default(),
    )
    .expect("renders")
    .formatted();
    let mail = String::from_utf8(mail).expect("ascii");
    assert!(mail.contains("Subject: [dtwin] AT RISK m-1: 90 % risk (CRITICAL)"));
    let sent = delivery_event(
        &n.event,
        AlertEventKind::Sent,
        "outbox/x.eml".to_owned(),
        n.event.ts,
    );
    assert_eq!(
        (sent.event, sent.alert_id.as_str()),
        (AlertEventKind::Sent, n.event.alert_id.as_str())
    );
    assert_eq!(sent.detail.as_deref(), Some("outbox/x.eml"));
    assert_eq!(p.stats().firing, 1);
    assert_eq!(n.state_topic, "dtwin/v1/alert-state/m-1");
    assert_eq!(
        n.state.firing, n.record.firing,
        "the retained state is the alert"
    );
    assert_eq!(n.state.ts, n.event.ts);

    let mut last = None;
    for s in 2..5 {
        last = Some(feed(&mut p, &risk("m-1", RiskStatus::Healthy, 0.1, s)));
    }
    let Some(Outcome::Notify(r)) = last else {
        panic!("three low verdicts resolve")
    };
    assert_eq!(r.event.event, AlertEventKind::Resolved);
    assert_eq!(r.event.alert_id, n.event.alert_id);
    assert!(r.record.firing.is_none(), "a resolution ends the alert");
    assert_eq!(r.state.firing, None, "the retained state says so");
    assert_eq!(p.stats().firing, 0);
    assert_eq!(p.stats().notifications, 2);
}

#[test]
fn an_adopted_alert_carries_on_under_its_id_and_a_forgotten_one_is_gone() {
    // Instance a fired m-1's alert, then died; instance b adopts it from the retained state.
    let mut a = processor();
    feed(&mut a, &risk("m-1", RiskStatus::AtRisk, 0.9, 0));
    let Outcome::Notify(fired) = feed(&mut a, &risk("m-1", RiskStatus::AtRisk, 0.9, 1)) else {
        panic!("fires");
    };
    let mut b = processor();
    b.adopt(fired.machine_id.clone(), fired.state.firing.clone());
    assert_eq!(b.stats().firing, 1);
    // Still AT_RISK: no second firing on b.
    assert!(matches!(
        feed(&mut b, &risk("m-1", RiskStatus::AtRisk, 0.9, 2)),
        Outcome::Quiet
    ));
    let mut last = None;
    for s in 3..6 {
        last = Some(feed(&mut b, &risk("m-1", RiskStatus::Healthy, 0.1, s)));
    }
    let Some(Outcome::Notify(resolved)) = last else {
        panic!("b resolves it");
    };
    assert_eq!(resolved.event.event, AlertEventKind::Resolved);
    assert_eq!(
        resolved.event.alert_id, fired.event.alert_id,
        "the same alert"
    );
    assert_eq!(b.stats().firing, 0);
    // Adopting "resolved" over a firing state, and forgetting, keep the count right.
    b.adopt(fired.machine_id.clone(), fired.state.firing.clone());
    b.adopt(fired.machine_id.clone(), None);
    assert_eq!(b.stats().firing, 0);
    b.adopt(fired.machine_id.clone(), fired.state.firing.clone());
    b.forget(&fired.machine_id);
    assert_eq!((b.stats().firing, b.machines().count()), (0, 0));
}

#[test]
fn machines_have_separate_state() {
    let mut p = processor();
    feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 0));
    assert!(matches!(
        feed(&mut p, &risk("m-2", RiskStatus::AtRisk, 0.9, 1)),
        Outcome::Quiet
    ));
    assert!(matches!(
        feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 2)),
        Outcome::Notify(_)
    ));
}

#[test]
fn bad_input_becomes_a_dead_letter() {
    let mut p = processor();
    let t = topics().risk(&MachineId::parse("m-1").expect("valid id"));
    let cases: Vec<(Vec<u8>, RejectReason)> = vec![
        (b"{not json".to_vec(), RejectReason::NotJson),
        (
            br#"{"schema":"dtwin.risk.v1"}"#.to_vec(),
            RejectReason::MissingField,
        ),
        (
            dtwin_schema::to_json(&risk("m-2", RiskStatus::AtRisk, 0.9, 0)),
            RejectReason::TopicMismatch,
        ),
        (
            dtwin_schema::to_json(&risk("m-1", RiskStatus::AtRisk, 1.5, 0)),
            RejectReason::OutOfRange,
        ),
        (vec![b' '; MAX_RISK_BYTES + 1], RejectReason::Oversize),
    ];
    for (payload, want) in cases {
        let Outcome::DeadLetter {
            topic,
            payload: dl,
            reason,
        } = p.handle(&t, &payload)
        else {
            panic!("{want:?} input is rejected");
        };
        assert_eq!(reason, want);
        assert_eq!(topic, "dtwin/v1/deadletter/alerter");
        let dl: DeadLetter = dtwin_schema::from_json(&dl).expect("dead letter decodes");
        assert_eq!(dl.service, SERVICE);
        assert_eq!(dl.machine_id.as_ref().map(MachineId::as_str), Some("m-1"));
    }
    assert_eq!(p.stats().rejected, 5);
    assert_eq!(p.stats().verdicts, 0);
}

#[test]
fn a_saved_confirmation_window_survives_a_restart() {
    let mut p = processor();
    feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 0));
    let saved = p.take_window_change().expect("the window changed");
    assert_eq!(saved.1, 1);
    assert_eq!(p.take_window_change(), None, "taken once");
    // A restarted alerter that restores the window fires on the next AT_RISK verdict.
    let mut restarted = processor();
    restarted.resume_windows(vec![saved]);
    assert!(matches!(
        feed(&mut restarted, &risk("m-1", RiskStatus::AtRisk, 0.9, 1)),
        Outcome::Notify(_)
    ));
    assert_eq!(
        restarted.take_window_change().map(|(_, w)| w),
        Some(0),
        "firing clears the window"
    );
    // Without it, one verdict is not enough.
    let mut forgetful = processor();
    assert!(matches!(
        feed(&mut forgetful, &risk("m-1", RiskStatus::AtRisk, 0.9, 1)),
        Outcome::Quiet
    ));
}

proptest::proptest! {
    /// The firing count kept step by step equals a scan of every machine's state.
    #[test]
    fn firing_count_matches_a_scan(
        input in proptest::collection::vec((0usize..4, proptest::bool::weighted(0.4), 0i64..=600), 0..200),
    ) {
        let mut p = processor();
        let mut secs = 0;
        for (machine, at_risk, gap) in input {
            secs += gap;
            let (status, prob) = if at_risk {
                (RiskStatus::AtRisk, 0.9)
            } else {
                (RiskStatus::Healthy, 0.1)
            };
            feed(&mut p, &risk(&format!("m-{machine}"), status, prob, secs));
            let scanned = p.states.values().filter(|s| s.firing().is_some()).count();
            proptest::prop_assert_eq!(p.stats().firing, scanned);
        }
    }
}

/// A processor with `cfg`, fed `m-1`'s verdicts at the given offsets from 10:00 (the
/// verdicts' own `ts` is the lifecycle's clock, so no real or tokio time is involved).
struct Clocked {
    p: Processor,
}

impl Clocked {
    fn new(cfg: LifecycleConfig) -> Self {
        cfg.validate().expect("valid lifecycle");
        Self {
            p: Processor::new(topics(), cfg, None),
        }
    }

    /// Feeds one verdict at `at`; returns the notification's tag, if any.
    fn at(&mut self, at: Duration, status: RiskStatus) -> Option<String> {
        let p = if status == RiskStatus::AtRisk {
            0.9
        } else {
            0.1
        };
        let mut r = risk("m-1", status, p, 0);
        r.ts += at;
        match feed(&mut self.p, &r) {
            Outcome::Quiet => None,
            Outcome::Notify(n) => Some(n.transition.tag()),
            Outcome::DeadLetter { reason, .. } => panic!("rejected: {reason:?}"),
        }
    }
}

#[test]
fn the_repeat_interval_runs_on_the_verdicts_clock() {
    let mut c = Clocked::new(LifecycleConfig {
        repeat_interval: Duration::minutes(10),
        ..LifecycleConfig::default()
    });
    let fired = Duration::seconds(1);
    assert_eq!(c.at(Duration::ZERO, RiskStatus::AtRisk), None);
    assert_eq!(c.at(fired, RiskStatus::AtRisk).as_deref(), Some("firing"));
    // Just short of the interval: nothing; at the interval exactly: the first repeat.
    let interval = Duration::minutes(10);
    let almost = fired + interval - Duration::milliseconds(1);
    assert_eq!(c.at(almost, RiskStatus::AtRisk), None);
    assert_eq!(
        c.at(fired + interval, RiskStatus::AtRisk).as_deref(),
        Some("repeat-1")
    );
    // The next interval counts from that repeat, not from the firing.
    assert_eq!(
        c.at(
            fired + interval * 2 - Duration::milliseconds(1),
            RiskStatus::AtRisk
        ),
        None
    );
    assert_eq!(
        c.at(fired + interval * 2, RiskStatus::AtRisk).as_deref(),
        Some("repeat-2")
    );
    // Silence from the machine for five intervals: one repeat when it speaks again, not five.
    let later = fired + interval * 7 + Duration::seconds(30);
    assert_eq!(c.at(later, RiskStatus::AtRisk).as_deref(), Some("repeat-3"));
    assert_eq!(c.at(later + Duration::seconds(1), RiskStatus::AtRisk), None);
    assert_eq!(c.p.stats().notifications, 4);
}

#[test]
fn the_confirmation_window_and_the_resolve_hold_count_verdicts_not_time() {
    let mut c = Clocked::new(LifecycleConfig {
        confirm_k: 2,
        confirm_n: 3,
        resolve_after: 3,
        // Long enough that no repeat falls inside this test.
        repeat_interval: Duration::weeks(1),
        ..LifecycleConfig::default()
    });
    let day = Duration::days(1);
    // One AT_RISK, then a day later two healthy ones push it out of the window of three.
    assert_eq!(c.at(Duration::ZERO, RiskStatus::AtRisk), None);
    assert_eq!(c.at(day, RiskStatus::Healthy), None);
    assert_eq!(
        c.at(day + Duration::milliseconds(1), RiskStatus::Healthy),
        None
    );
    assert_eq!(c.at(day * 2, RiskStatus::AtRisk), None, "1 of the last 3");
    // Two of three a millisecond apart fire, however close.
    assert_eq!(
        c.at(day * 2 + Duration::milliseconds(1), RiskStatus::AtRisk)
            .as_deref(),
        Some("firing")
    );
    // The hold: two low verdicts hours apart, a relapse resets the run, then three in a row
    // within two milliseconds resolve.
    let t = day * 3;
    assert_eq!(c.at(t, RiskStatus::Healthy), None);
    assert_eq!(c.at(t + Duration::hours(5), RiskStatus::Healthy), None);
    assert_eq!(c.at(t + Duration::hours(6), RiskStatus::AtRisk), None);
    let t = t + Duration::hours(7);
    assert_eq!(c.at(t, RiskStatus::Healthy), None);
    assert_eq!(
        c.at(t + Duration::milliseconds(1), RiskStatus::Healthy),
        None
    );
    assert_eq!(
        c.at(t + Duration::milliseconds(2), RiskStatus::Healthy)
            .as_deref(),
        Some("resolved")
    );
    assert_eq!(c.p.stats().firing, 0);
    assert_eq!(c.p.stats().notifications, 2);
}

/// `r` with the anomaly model's word: `score`, anomalous from 0.6 up.
fn scored(mut r: Risk, score: f64) -> Risk {
    r.insights.anomaly = Some(score);
    r.insights.anomalous = Some(score >= 0.6);
    r
}

fn anomaly_processor() -> Processor {
    processor().with_anomaly(AnomalyConfig {
        fire_after: 3,
        resolve_after: 2,
    })
}

fn notified(o: Outcome) -> Box<Notification> {
    match o {
        Outcome::Notify(n) => n,
        other => panic!("expected a notification, got {other:?}"),
    }
}

#[test]
fn a_sustained_anomaly_fires_its_own_alert_and_a_confirmed_failure_supersedes_it() {
    let mut p = anomaly_processor();
    let odd = |secs| scored(risk("m-1", RiskStatus::Healthy, 0.1, secs), 0.8);
    for s in 0..2 {
        assert!(matches!(feed(&mut p, &odd(s)), Outcome::Quiet));
    }
    let n = notified(feed(&mut p, &odd(2)));
    let anomaly_id = "m-1-anomaly-20261122T100002000Z";
    assert_eq!(n.record.name(), format!("{anomaly_id}.firing"));
    assert_eq!(n.event.event, AlertEventKind::Firing);
    assert_eq!(n.event.level, Level::Warning);
    assert_eq!(n.event.detail.as_deref(), Some("anomaly alert: score 0.80"));
    assert!(n.superseded.is_none());
    assert_eq!(n.record.mail.cause, Cause::Anomaly);
    assert_eq!(n.record.mail.insights.anomaly, Some(0.8));
    assert_eq!(
        n.state.firing.as_ref().map(|f| f.alert_id.as_str()),
        Some(anomaly_id)
    );
    assert_eq!(p.stats().firing, 1);

    // The failure risk is confirmed while the anomaly alert fires: one notification, the
    // failure alert's firing, which resolves the anomaly alert.
    let bad = |secs| scored(risk("m-1", RiskStatus::AtRisk, 0.9, secs), 0.9);
    assert!(matches!(feed(&mut p, &bad(3)), Outcome::Quiet));
    let f = notified(feed(&mut p, &bad(4)));
    let failure_id = "m-1-20261122T100004000Z";
    assert_eq!(f.record.name(), format!("{failure_id}.firing"));
    assert_eq!(f.event.event, AlertEventKind::Firing);
    assert_eq!(
        f.event.detail, None,
        "a failure alert's events carry no detail"
    );
    assert_eq!(f.record.mail.supersedes.as_deref(), Some(anomaly_id));
    let old = f.superseded.as_ref().expect("the anomaly alert resolves");
    assert_eq!(
        (old.alert_id.as_str(), old.event, old.level, old.ts),
        (
            anomaly_id,
            AlertEventKind::Resolved,
            Level::Warning,
            f.event.ts
        )
    );
    assert_eq!(
        old.detail.as_deref(),
        Some("anomaly alert: score 0.90; superseded by the failure alert m-1-20261122T100004000Z")
    );
    assert_eq!(f.state.firing, f.record.firing);
    assert_eq!(
        f.state.firing.as_ref().map(|x| x.alert_id.as_str()),
        Some(failure_id)
    );
    assert_eq!(p.stats().firing, 1, "still one alert on the machine");
    assert_eq!(p.stats().notifications, 2);
    assert_eq!(
        p.state(&f.machine_id).and_then(AlertState::cause),
        Some(Cause::Failure)
    );
}

#[test]
fn an_anomaly_alert_resolves_after_ordinary_verdicts_and_survives_a_restart_and_a_handover() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let spool = crate::Spool::open(tmp.path()).expect("opens");
    let mut p = anomaly_processor();
    let mut fired = None;
    for s in 0..3 {
        if let Outcome::Notify(n) = feed(
            &mut p,
            &scored(risk("m-1", RiskStatus::Healthy, 0.1, s), 0.7),
        ) {
            spool.put(&n.record).expect("queued");
            fired = Some(n);
        }
    }
    let fired = fired.expect("the anomaly alert fired");
    // A restarted alerter finds it firing in the spool; an instance it is handed over to, in
    // the retained state. Both carry on with an anomaly alert: two ordinary verdicts resolve
    // it, although the failure risk never was low enough to resolve a failure alert.
    let mut restarted = anomaly_processor();
    restarted.resume(spool.firing_states().expect("reads"));
    let mut adopted = anomaly_processor();
    adopted.adopt(fired.machine_id.clone(), fired.state.firing.clone());
    for p in [&mut restarted, &mut adopted] {
        assert_eq!(p.stats().firing, 1);
        let ordinary = |secs| scored(risk("m-1", RiskStatus::Healthy, 0.45, secs), 0.3);
        assert!(matches!(feed(p, &ordinary(10)), Outcome::Quiet));
        let r = notified(feed(p, &ordinary(11)));
        assert_eq!(r.event.event, AlertEventKind::Resolved);
        assert_eq!(r.event.alert_id, fired.event.alert_id);
        assert_eq!(r.event.detail.as_deref(), Some("anomaly alert: score 0.30"));
        assert_eq!(r.record.mail.cause, Cause::Anomaly);
        assert_eq!(p.stats().firing, 0);
    }
}

#[test]
fn verdicts_without_insights_never_fire_an_anomaly_alert() {
    let mut p = anomaly_processor();
    for s in 0..50 {
        assert!(matches!(
            feed(&mut p, &risk("m-1", RiskStatus::Healthy, 0.1, s)),
            Outcome::Quiet
        ));
    }
    // And with anomaly alerts off, anomalous verdicts fire nothing either.
    let mut off = processor().with_anomaly(AnomalyConfig::OFF);
    for s in 0..50 {
        let r = scored(risk("m-1", RiskStatus::Healthy, 0.1, s), 0.9);
        assert!(matches!(feed(&mut off, &r), Outcome::Quiet));
    }
}

#[test]
fn a_rules_only_verdict_at_risk_for_its_anomaly_raises_an_anomaly_alert_not_a_failure_alert() {
    // A profile without a failure classifier: the inference service makes its anomalous
    // verdicts AT_RISK (probability 0, model `none`).
    let stand_in = |secs| {
        let mut r = scored(risk("pump-1", RiskStatus::AtRisk, 0.0, secs), 0.8);
        r.level = Level::Warning;
        r.model.id = lifecycle::RULES_ONLY_MODEL.to_owned();
        r
    };
    assert!(lifecycle::anomaly_stands_in(&stand_in(0)));
    let mut p = anomaly_processor();
    let fired: Vec<String> = (0..3)
        .filter_map(|s| match feed(&mut p, &stand_in(s)) {
            Outcome::Notify(n) => Some(n.record.name()),
            _ => None,
        })
        .collect();
    assert_eq!(fired, ["pump-1-anomaly-20261122T100002000Z.firing"]);
    // A CRITICAL rule behind the status is a failure risk of its own.
    let mut critical = stand_in(0);
    critical.actions.push(dtwin_schema::Action {
        code: "OVERHEAT".to_owned(),
        text: "too hot".to_owned(),
        severity: Level::Critical,
    });
    assert!(!lifecycle::anomaly_stands_in(&critical));
    // With anomaly alerts off, the AT_RISK status is what the failure lifecycle sees.
    let mut off = processor().with_anomaly(AnomalyConfig::OFF);
    assert!(matches!(feed(&mut off, &stand_in(0)), Outcome::Quiet));
    let n = notified(feed(&mut off, &stand_in(1)));
    assert_eq!(n.record.name(), "pump-1-20261122T100001000Z.firing");
}

// ---------------------------------------------------------------- people's actions

fn act_on(
    p: &mut Processor,
    machine: &str,
    alert_id: &str,
    kind: AlertActionKind,
    by: &str,
    secs: i64,
) -> Outcome {
    let a = AlertAction {
        schema: ALERT_ACTION_SCHEMA.to_owned(),
        machine_id: MachineId::parse(machine).expect("valid id"),
        alert_id: alert_id.to_owned(),
        action: kind,
        by: by.to_owned(),
        comment: "bearing ordered".to_owned(),
        ts: datetime!(2026-11-22 10:00:00 UTC) + Duration::seconds(secs),
    };
    let topic = topics().alert_control(&a.machine_id);
    p.handle(&topic, &dtwin_schema::to_json(&a))
}

fn dead(o: Outcome) -> DeadLetter {
    match o {
        Outcome::DeadLetter { payload, topic, .. } => {
            assert_eq!(topic, "dtwin/v1/deadletter/alerter");
            dtwin_schema::from_json(&payload).expect("a dead letter")
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
}

use dtwin_schema::{AlertAction, AlertActionKind, ALERT_ACTION_SCHEMA};

#[test]
fn an_acknowledgement_is_an_event_a_record_and_a_state_with_who_and_no_more_repeats() {
    let mut p = processor();
    feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 0));
    let fired = notified(feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.87, 1)));
    let id = fired.event.alert_id.clone();
    let n = notified(act_on(
        &mut p,
        "m-1",
        &id,
        AlertActionKind::Acknowledge,
        "ops",
        120,
    ));
    assert_eq!(n.event.event, AlertEventKind::Acknowledged);
    assert_eq!(n.event.by.as_deref(), Some("ops"));
    assert_eq!(n.event.comment.as_deref(), Some("bearing ordered"));
    assert_eq!(
        n.event.ts,
        datetime!(2026-11-22 10:02:00 UTC),
        "the person's time"
    );
    assert_eq!(n.event.probability, 0.87, "the latest verdict's figures");
    assert_eq!(n.record.name(), format!("{id}.acknowledged"));
    assert_eq!(n.record.mail.kind, crate::MailKind::Acknowledged);
    // Ordered just after the latest verdict, whatever the person's clock says.
    let after = datetime!(2026-11-22 10:00:01 UTC) + Duration::nanoseconds(1);
    assert_eq!((n.record.mail.ts, n.state.ts), (after, after));
    let ack = n
        .state
        .firing
        .as_ref()
        .and_then(|f| f.acknowledged.clone())
        .expect("acknowledged");
    assert_eq!(
        (ack.by.as_str(), ack.comment.as_str()),
        ("ops", "bearing ordered")
    );
    assert_eq!(n.record.firing, n.state.firing);
    assert_eq!(p.stats().actions, 1);
    assert_eq!(p.stats().firing, 1, "still open");
    let mail = String::from_utf8(
        crate::email::render(
            &n.record.mail,
            &crate::MailConfig::default(),
            &crate::Profiles::default(),
        )
        .expect("renders")
        .formatted(),
    )
    .expect("ascii");
    assert!(
        mail.contains(
            "Subject: [dtwin] ACKNOWLEDGED m-1: 87 % risk (CRITICAL, acknowledged by ops)"
        ),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("In-Reply-To: <{id}.firing@dtwin>")),
        "threads under the alert"
    );
    assert!(mail.contains("Comment:  bearing ordered"));
    // Two hours of AT_RISK verdicts: no repeat.
    for s in 2..=7200 {
        if let Outcome::Notify(n) = feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, s)) {
            panic!("notified at {s} s: {:?}", n.transition);
        }
    }
}

#[test]
fn clearing_by_hand_closes_the_alert_apart_from_a_resolution() {
    let mut p = processor();
    feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 0));
    let id = notified(feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 1)))
        .event
        .alert_id;
    let n = notified(act_on(
        &mut p,
        "m-1",
        &id,
        AlertActionKind::Clear,
        "anna",
        30,
    ));
    assert_eq!(n.event.event, AlertEventKind::Cleared);
    assert!(n.event.event.closes());
    assert_eq!(n.event.by.as_deref(), Some("anna"));
    assert_eq!(n.record.name(), format!("{id}.cleared"));
    assert_eq!(n.record.firing, None);
    assert_eq!(n.state.firing, None);
    assert_eq!(p.stats().firing, 0);
    let mail = String::from_utf8(
        crate::email::render(
            &n.record.mail,
            &crate::MailConfig::default(),
            &crate::Profiles::default(),
        )
        .expect("renders")
        .formatted(),
    )
    .expect("ascii");
    assert!(
        mail.contains("Subject: [dtwin] CLEARED m-1: 90 % risk (was CRITICAL, cleared by anna)"),
        "{mail}"
    );
    assert!(mail.contains("CLEARED BY HAND"));
    // The same clearing again (a redelivery): nothing. Acting on it now: refused.
    assert!(matches!(
        act_on(&mut p, "m-1", &id, AlertActionKind::Clear, "anna", 30),
        Outcome::Quiet
    ));
    let dl = dead(act_on(
        &mut p,
        "m-1",
        &id,
        AlertActionKind::Acknowledge,
        "ops",
        40,
    ));
    assert_eq!(dl.reason, RejectReason::UnknownAlert);
    assert!(dl.detail.contains("was cleared by anna"), "{}", dl.detail);
    assert_eq!(dl.machine_id.as_ref().map(MachineId::as_str), Some("m-1"));
}

#[test]
fn bad_and_stale_actions_become_dead_letters_saying_why() {
    let mut p = processor();
    let m1 = MachineId::parse("m-1").unwrap();
    let topic = topics().alert_control(&m1);
    // Unknown alert on an idle machine.
    let dl = dead(act_on(
        &mut p,
        "m-1",
        "m-1-20261122T100001000Z",
        AlertActionKind::Acknowledge,
        "ops",
        0,
    ));
    assert_eq!(dl.reason, RejectReason::UnknownAlert);
    assert_eq!(
        dl.detail,
        "alert m-1-20261122T100001000Z is not open; m-1 has no open alert"
    );
    assert_eq!(dl.topic, topic);
    let good = AlertAction {
        schema: ALERT_ACTION_SCHEMA.to_owned(),
        machine_id: m1.clone(),
        alert_id: "a".to_owned(),
        action: AlertActionKind::Clear,
        by: "ops".to_owned(),
        comment: String::new(),
        ts: datetime!(2026-11-22 10:00:00 UTC),
    };
    let cases: Vec<(Vec<u8>, RejectReason)> = vec![
        (b"{oops".to_vec(), RejectReason::NotJson),
        (br#"{"schema":"dtwin.alert-action.v1"}"#.to_vec(), RejectReason::MissingField),
        (dtwin_schema::to_json(&AlertAction { schema: "dtwin.alert-action.v0".into(), ..good.clone() }), RejectReason::UnknownSchema),
        (dtwin_schema::to_json(&AlertAction { machine_id: MachineId::parse("m-2").unwrap(), ..good.clone() }), RejectReason::TopicMismatch),
        (dtwin_schema::to_json(&AlertAction { by: " ".into(), ..good.clone() }), RejectReason::MissingField),
        (dtwin_schema::to_json(&AlertAction { comment: "x".repeat(1001), ..good.clone() }), RejectReason::OutOfRange),
        (vec![b' '; MAX_ACTION_BYTES + 1], RejectReason::Oversize),
        (br#"{"schema":"dtwin.alert-action.v1","machine_id":"m-1","alert_id":"a","action":"snooze","by":"x","ts":"2026-11-22T10:00:00Z"}"#.to_vec(), RejectReason::WrongType),
    ];
    for (payload, reason) in cases {
        let dl = dead(p.handle(&topic, &payload));
        assert_eq!(dl.reason, reason, "{}", String::from_utf8_lossy(&payload));
    }
    // Acknowledged twice by different people.
    feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 0));
    let id = notified(feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 1)))
        .event
        .alert_id;
    notified(act_on(
        &mut p,
        "m-1",
        &id,
        AlertActionKind::Acknowledge,
        "ops",
        5,
    ));
    let dl = dead(act_on(
        &mut p,
        "m-1",
        &id,
        AlertActionKind::Acknowledge,
        "anna",
        6,
    ));
    assert_eq!(dl.reason, RejectReason::AlreadyAcknowledged);
    assert_eq!(
        dl.detail,
        format!("alert {id} was already acknowledged by ops at 2026-11-22T10:00:05Z")
    );
    // A stale id while another alert is open.
    let dl = dead(act_on(
        &mut p,
        "m-1",
        "m-1-old",
        AlertActionKind::Clear,
        "ops",
        7,
    ));
    assert_eq!(
        dl.detail,
        format!("alert m-1-old is not open; m-1's open alert is {id}")
    );
    assert_eq!(p.stats().actions, 1);
    assert_eq!(
        (p.stats().actions_rejected, p.stats().rejected),
        (11, 0),
        "verdicts' count apart"
    );
}

#[test]
fn an_acknowledgement_survives_a_restart_through_the_spool_records() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let spool = crate::Spool::open(tmp.path()).expect("opens");
    let mut p = processor();
    feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 0));
    let fired = notified(feed(&mut p, &risk("m-1", RiskStatus::AtRisk, 0.9, 1)));
    spool.put(&fired.record).expect("queues");
    let id = fired.event.alert_id.clone();
    let acked = notified(act_on(
        &mut p,
        "m-1",
        &id,
        AlertActionKind::Acknowledge,
        "ops",
        5,
    ));
    spool.put(&acked.record).expect("queues");
    // Restart: the acknowledgement is the alert's newest record.
    let mut q = processor();
    q.resume_records(spool.firing_records().expect("reads"));
    let f = q
        .state(&MachineId::parse("m-1").unwrap())
        .and_then(|s| s.firing())
        .expect("firing")
        .clone();
    assert_eq!(f.acknowledged.as_ref().map(|a| a.by.as_str()), Some("ops"));
    // Still no repeat, a second acknowledgement is refused, the figures came along.
    for s in 2..=7200 {
        assert!(!matches!(
            feed(&mut q, &risk("m-1", RiskStatus::AtRisk, 0.9, s)),
            Outcome::Notify(_)
        ));
    }
    let dl = dead(act_on(
        &mut q,
        "m-1",
        &id,
        AlertActionKind::Acknowledge,
        "anna",
        7300,
    ));
    assert_eq!(dl.reason, RejectReason::AlreadyAcknowledged);
    let mut r = processor();
    r.resume_records(spool.firing_records().expect("reads"));
    let cleared = notified(act_on(&mut r, "m-1", &id, AlertActionKind::Clear, "ops", 9));
    assert_eq!(
        cleared.event.probability, 0.9,
        "figures from the spool record"
    );
    assert!(
        cleared.record.mail.ts > acked.record.mail.ts,
        "ordered after the acknowledgement"
    );
    spool.put(&cleared.record).expect("queues");
    assert!(
        spool.firing_records().expect("reads").is_empty(),
        "cleared stays cleared"
    );
}

#[test]
fn a_handed_over_alert_can_be_acknowledged_before_its_next_verdict() {
    let mut p = processor();
    let m = MachineId::parse("m-1").unwrap();
    p.adopt(
        m.clone(),
        Some(Firing {
            alert_id: "m-1-20261122T100001000Z".into(),
            since: datetime!(2026-11-22 10:00:01 UTC),
            level: Level::Critical,
            last_notified: datetime!(2026-11-22 10:00:01 UTC),
            repeats: 0,
            healthy_run: 0,
            acknowledged: None,
        }),
    );
    let n = notified(act_on(
        &mut p,
        "m-1",
        "m-1-20261122T100001000Z",
        AlertActionKind::Acknowledge,
        "ops",
        60,
    ));
    assert_eq!(n.event.level, Level::Critical);
    assert_eq!(n.event.probability, 0.0, "no figures known yet");
    assert_eq!(
        n.state.ts,
        datetime!(2026-11-22 10:01:00 UTC),
        "the action's time"
    );
}
