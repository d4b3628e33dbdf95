use super::*;
use crate::lifecycle::{Firing, LifecycleConfig};
use dtwin_schema::{
    AlertSnapshot, Level, ModelRef, Presence, Risk, RiskStatus, ALERT_STATE_SCHEMA, RISK_SCHEMA,
};
use time::macros::datetime;
use time::OffsetDateTime;

const T0: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

fn topics() -> Topics {
    Topics::default()
}

fn id(s: &str) -> MachineId {
    MachineId::parse(s).expect("valid id")
}

/// A core for the only instance (`instance: None`) or one of several.
fn router(instance: Option<&str>) -> Router {
    let t = topics();
    let node = Node::new(t.prefix(), crate::processor::SERVICE, instance);
    let processor = Processor::new(t.clone(), LifecycleConfig::default(), None);
    Router::new(t, node, processor)
}

fn announce(r: &mut Router, instance: &str, state: Presence) -> Decision {
    let topic = dtwin_cluster::instance_topic(topics().prefix(), "alerter", instance);
    let payload = dtwin_cluster::announcement(instance, state, T0).expect("valid name");
    r.handle(&topic, &payload)
}

fn verdict(machine: &str, status: RiskStatus, secs: i64) -> (String, Vec<u8>) {
    let risk = Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: id(machine),
        ts: T0 + time::Duration::seconds(secs),
        source_ts: T0,
        seq: 1,
        probability: if status == RiskStatus::AtRisk {
            0.9
        } else {
            0.1
        },
        status,
        level: Level::Critical,
        health_score: 10.0,
        actions: Vec::new(),
        factors: Vec::new(),
        model: ModelRef {
            id: "rf".to_owned(),
            version: "1".to_owned(),
        },
        cold: false,
        latest: Default::default(),
        profile: None,
        insights: Default::default(),
    };
    (
        topics().risk(&risk.machine_id),
        dtwin_schema::to_json(&risk),
    )
}

fn silence_json(id: &str, machines: &[&str], lines: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "schema": SILENCE_SCHEMA,
        "silence_id": id,
        "machines": machines,
        "lines": lines,
        "until": "2026-11-22T12:00:00Z",
        "reason": "maintenance",
    })
}

fn set(r: &mut Router, id: &str, payload: &serde_json::Value) -> Decision {
    r.handle(
        &topics().silence(id),
        &serde_json::to_vec(payload).expect("json"),
    )
}

fn state(machine: &str, secs: i64, firing: Option<Firing>) -> (String, Vec<u8>) {
    let s = AlertSnapshot {
        schema: ALERT_STATE_SCHEMA.to_owned(),
        machine_id: id(machine),
        ts: T0 + time::Duration::seconds(secs),
        firing,
    };
    (
        topics().alert_state(&s.machine_id),
        dtwin_schema::to_json(&s),
    )
}

fn firing(machine: &str) -> Firing {
    Firing {
        alert_id: crate::lifecycle::alert_id(&id(machine), T0),
        since: T0,
        level: Level::Critical,
        last_notified: T0,
        repeats: 0,
        healthy_run: 0,
        acknowledged: None,
    }
}

fn ids(silences: &[Silence]) -> Vec<&str> {
    silences.iter().map(|s| s.silence_id.as_str()).collect()
}

#[test]
fn silences_are_set_replaced_and_removed_by_an_empty_payload() {
    let mut r = router(None);
    let Decision::SilenceSet { silence, silences } =
        set(&mut r, "maint", &silence_json("maint", &["press-*"], &[]))
    else {
        panic!("a good silence is set");
    };
    assert_eq!(silence.machines, ["press-*"]);
    assert_eq!(ids(&silences), ["maint"]);
    let Decision::SilenceSet { silences, .. } =
        set(&mut r, "line", &silence_json("line", &[], &["line-a"]))
    else {
        panic!("a silence of lines is set");
    };
    assert_eq!(ids(&silences), ["line", "maint"], "every silence, by id");
    let Decision::SilenceSet { silences, .. } =
        set(&mut r, "maint", &silence_json("maint", &["lathe-1"], &[]))
    else {
        panic!("the same id replaces");
    };
    assert_eq!(silences.len(), 2);
    assert_eq!(r.silences()[1].machines, ["lathe-1"]);

    let topic = topics().silence("maint");
    let Decision::SilenceRemoved {
        silence_id,
        silences,
    } = r.handle(&topic, b"")
    else {
        panic!("an empty payload removes");
    };
    assert_eq!(
        (silence_id.as_str(), ids(&silences)),
        ("maint", vec!["line"])
    );
    assert!(matches!(
        r.handle(&topic, b""),
        Decision::Ack(AckOnly::NoSuchSilence)
    ));
    assert_eq!(ids(&r.silences()), ["line"]);
}

#[test]
fn a_bad_silence_is_refused_with_its_reason_and_changes_nothing() {
    let mut r = router(None);
    set(&mut r, "maint", &silence_json("maint", &["press-*"], &[]));
    let before = r.silences();

    let mut wrong_schema = silence_json("maint", &["m-*"], &[]);
    wrong_schema["schema"] = "dtwin.silence.v0".into();
    let mut cases = vec![
        (wrong_schema, "schema is \"dtwin.silence.v0\"; expected"),
        (
            silence_json("other", &["m-*"], &[]),
            "silence_id \"other\" differs from the topic's \"maint\"",
        ),
        (
            silence_json("maint", &[], &[]),
            "a silence needs machines or lines",
        ),
        (
            serde_json::json!({"schema": SILENCE_SCHEMA}),
            "not a silence:",
        ),
    ];
    for (payload, message) in cases.drain(..) {
        let Decision::Ignored(Ignored::Silence(e)) = set(&mut r, "maint", &payload) else {
            panic!("{payload} is refused");
        };
        assert!(e.to_string().starts_with(message), "{e} / {message}");
        assert_eq!(r.silences(), before, "{e}: the silence list is unchanged");
    }
    let topic = topics().silence("maint");
    assert!(matches!(
        r.handle(&topic, b"{nope"),
        Decision::Ignored(Ignored::Silence(SilenceError::NotJson(_)))
    ));
    assert!(matches!(
        silence_update("maint", b"{\"schema\":\"x\"}"),
        Err(SilenceError::NotJson(_))
    ));
    let wrong: Vec<u8> = serde_json::to_vec(&silence_json("x", &["m"], &[])).expect("json");
    assert!(matches!(
        silence_update("maint", &wrong),
        Err(SilenceError::IdMismatch { found, topic }) if found == "x" && topic == "maint"
    ));
    assert_eq!(r.silences(), before);
}

#[test]
fn the_only_instance_handles_every_verdict_and_no_cluster_message() {
    let mut r = router(None);
    let (t, p) = verdict("m-1", RiskStatus::AtRisk, 0);
    let Decision::Verdict { outcome, window } = r.handle(&t, &p) else {
        panic!("a verdict goes to the processor");
    };
    assert!(matches!(outcome, Outcome::Quiet));
    assert_eq!(
        window,
        Some((id("m-1"), 1)),
        "the window to save before the ack"
    );
    let (t, p) = verdict("m-1", RiskStatus::AtRisk, 1);
    assert!(matches!(
        r.handle(&t, &p),
        Decision::Verdict {
            outcome: Outcome::Notify(_),
            window: Some((_, 0)),
        }
    ));
    // Not clustered: an alert state (e.g. its own, retained) is not an input.
    let (t, p) = state("m-1", 5, None);
    assert!(matches!(
        r.handle(&t, &p),
        Decision::Verdict {
            outcome: Outcome::DeadLetter { .. },
            ..
        }
    ));
    assert_eq!(r.stats().firing, 1);
}

#[test]
fn a_verdict_for_a_machine_another_instance_owns_is_skipped() {
    let mut r = router(Some("a"));
    let (t, p) = verdict("m-1", RiskStatus::AtRisk, 0);
    assert!(
        matches!(r.handle(&t, &p), Decision::Ack(AckOnly::NotOwned)),
        "not ready yet: owns nothing"
    );
    assert!(matches!(
        announce(&mut r, "a", Presence::Online),
        Decision::ClusterChanged {
            change: Change::Ready,
            adopted: 0,
            forgotten: 0
        }
    ));
    assert!(matches!(
        announce(&mut r, "b", Presence::Online),
        Decision::ClusterChanged {
            change: Change::Joined(_),
            ..
        }
    ));
    assert!(matches!(
        announce(&mut r, "b", Presence::Online),
        Decision::Ack(AckOnly::NoChange)
    ));
    let (mine, theirs): (Vec<String>, Vec<String>) = (0..20)
        .map(|i| format!("m-{i}"))
        .partition(|m| r.node().owns(m));
    assert!(!mine.is_empty() && !theirs.is_empty(), "both own some");
    for m in &theirs {
        let (t, p) = verdict(m, RiskStatus::AtRisk, 0);
        assert!(matches!(r.handle(&t, &p), Decision::Ack(AckOnly::NotOwned)));
    }
    assert_eq!(
        r.stats().verdicts,
        0,
        "skipped verdicts never reach the processor"
    );
    let (t, p) = verdict(&mine[0], RiskStatus::AtRisk, 0);
    assert!(matches!(r.handle(&t, &p), Decision::Verdict { .. }));
    assert_eq!(r.stats().verdicts, 1);
}

#[test]
fn an_alert_state_for_an_owned_machine_is_adopted_once() {
    let mut r = router(Some("a"));
    announce(&mut r, "a", Presence::Online);
    let (t, p) = state("m-1", 10, Some(firing("m-1")));
    let Decision::Adopted { machine_id, firing } = r.handle(&t, &p) else {
        panic!("a newer state of an owned machine is adopted");
    };
    assert_eq!((machine_id.as_str(), firing), ("m-1", true));
    assert_eq!(r.stats().firing, 1);
    assert!(
        matches!(r.handle(&t, &p), Decision::Ack(AckOnly::StateKept)),
        "the same state again is not adopted twice"
    );
    let (t, older) = state("m-1", 5, None);
    assert!(matches!(
        r.handle(&t, &older),
        Decision::Ack(AckOnly::StateKept)
    ));
    assert_eq!(r.stats().firing, 1, "an older state changes nothing");
    // The adopted alert carries on: still AT_RISK fires nothing new.
    let (t, p) = verdict("m-1", RiskStatus::AtRisk, 20);
    assert!(matches!(
        r.handle(&t, &p),
        Decision::Verdict {
            outcome: Outcome::Quiet,
            ..
        }
    ));
    let (t, p) = (topics().alert_state(&id("m-2")), b"{".to_vec());
    assert!(matches!(
        r.handle(&t, &p),
        Decision::Ignored(Ignored::AlertState(AlertStateError::NotJson(_)))
    ));
}

#[test]
fn a_peer_leaving_hands_over_its_machines_open_alerts() {
    let mut r = router(Some("a"));
    announce(&mut r, "a", Presence::Online);
    announce(&mut r, "b", Presence::Online);
    let theirs: Vec<String> = (0..20)
        .map(|i| format!("m-{i}"))
        .filter(|m| !r.node().owns(m))
        .collect();
    // b published their states; a keeps them for later.
    for m in &theirs {
        let (t, p) = state(m, 1, Some(firing(m)));
        assert!(matches!(
            r.handle(&t, &p),
            Decision::Ack(AckOnly::StateKept)
        ));
    }
    assert_eq!(r.stats().firing, 0);
    let Decision::ClusterChanged {
        change,
        adopted,
        forgotten,
    } = announce(&mut r, "b", Presence::Offline)
    else {
        panic!("b leaving changes the cluster");
    };
    assert_eq!(change, Change::Left("b".to_owned()));
    assert_eq!((adopted, forgotten), (theirs.len() as u64, 0));
    assert_eq!(r.stats().firing, theirs.len());
    // b comes back: a forgets b's share again.
    let Decision::ClusterChanged { forgotten, .. } = announce(&mut r, "b", Presence::Online) else {
        panic!("b joining changes the cluster");
    };
    assert_eq!(forgotten, theirs.len());
    assert_eq!(r.stats().firing, 0);
}

#[test]
fn a_clustered_instance_notes_its_own_transitions_for_the_handover() {
    let mut r = router(Some("a"));
    announce(&mut r, "a", Presence::Online);
    for s in 0..2 {
        let (t, p) = verdict("m-1", RiskStatus::AtRisk, s);
        r.handle(&t, &p);
    }
    assert_eq!(r.stats().firing, 1);
    // Its own retained state coming back is not newer than what it applied.
    let (t, p) = state("m-1", 1, Some(firing("m-1")));
    assert!(matches!(
        r.handle(&t, &p),
        Decision::Ack(AckOnly::StateKept)
    ));
}

#[test]
fn an_action_goes_to_the_instance_that_owns_the_machine_and_moves_with_its_state() {
    use dtwin_schema::{AlertAction, AlertActionKind, ALERT_ACTION_SCHEMA};
    let mut r = router(Some("a"));
    announce(&mut r, "a", Presence::Online);
    announce(&mut r, "b", Presence::Online);
    let (mine, theirs): (Vec<String>, Vec<String>) = (0..20)
        .map(|i| format!("m-{i}"))
        .partition(|m| r.node().owns(m));
    let action = |m: &str, alert_id: &str| {
        let a = AlertAction {
            schema: ALERT_ACTION_SCHEMA.into(),
            machine_id: id(m),
            alert_id: alert_id.into(),
            action: AlertActionKind::Acknowledge,
            by: "ops".into(),
            comment: String::new(),
            ts: T0,
        };
        (
            topics().alert_control(&a.machine_id),
            dtwin_schema::to_json(&a),
        )
    };
    // Another instance's machine: acked and left alone (not even a dead letter).
    let (t, p) = action(&theirs[0], "whatever");
    assert!(matches!(r.handle(&t, &p), Decision::Ack(AckOnly::NotOwned)));
    // Its own machine: applied, and the acknowledged state is what a peer adopts later.
    let m = &mine[0];
    for s in 0..2 {
        let (t, p) = verdict(m, RiskStatus::AtRisk, s);
        r.handle(&t, &p);
    }
    let alert_id = r
        .processor()
        .state(&id(m))
        .and_then(|s| s.firing())
        .map(|f| f.alert_id.clone())
        .expect("fired");
    let (t, p) = action(m, &alert_id);
    let Decision::Verdict {
        outcome: Outcome::Notify(n),
        ..
    } = r.handle(&t, &p)
    else {
        panic!("an owned machine's acknowledgement is applied");
    };
    let acked = n.state.firing.clone().expect("still firing");
    assert_eq!(
        acked.acknowledged.as_ref().map(|a| a.by.as_str()),
        Some("ops")
    );
    let mut peer = router(Some("b"));
    announce(&mut peer, "b", Presence::Online);
    let (t, p) = (
        topics().alert_state(&id(m)),
        dtwin_schema::to_json(&n.state),
    );
    peer.handle(&t, &p);
    announce(&mut peer, "a", Presence::Offline);
    let adopted = peer
        .processor()
        .state(&id(m))
        .and_then(|s| s.firing())
        .cloned();
    assert_eq!(
        adopted,
        Some(acked),
        "the acknowledgement moves with the machine"
    );
}
