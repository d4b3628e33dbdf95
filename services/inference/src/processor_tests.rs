//! Tests of the inference core.

use super::*;
use crate::rules::RuleSet;
use crate::SHIPPED_MODEL;
use dtwin_schema::{MachineId, Risk};
use dtwin_twin_sim::{Machine, SimConfig};
use dtwin_windows::{feature_set, MachineWindow, WindowConfig};
use proptest::prelude::*;
use std::sync::Arc;
use time::Duration;

fn epoch() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap()
}

fn scorer(model: &[u8]) -> Scorer {
    let model = ModelArtifact::from_json(model).unwrap();
    let rules = RuleSet::default_for(&model.feature_names).unwrap();
    Scorer::new(Arc::new(model), Arc::new(rules))
}

fn processor_with(drift: DriftConfig) -> Processor {
    let (_, expected) = feature_set(&WindowConfig::default());
    let config = ProcessorConfig {
        expected,
        rules_text: crate::rules::expand_windows(crate::DEFAULT_RULES, &WindowConfig::default()),
        drift,
        drift_service: SERVICE.to_owned(),
    };
    Processor::new(Topics::default(), scorer(SHIPPED_MODEL), config)
}

fn processor() -> Processor {
    processor_with(DriftConfig::default())
}

/// `n` feature vectors of twin machine `machine`, the way the feature service computes
/// them (the first ones on a cold window).
fn vectors(machine: usize, n: usize) -> Vec<Features> {
    let cfg = WindowConfig::default();
    let (names, hash) = feature_set(&cfg);
    let mut m = Machine::new(machine, 8, &SimConfig::default());
    let mut w = MachineWindow::new(&cfg);
    (0..n)
        .map(|_| {
            let r = m.step();
            let t = r.to_telemetry(m.id(), epoch() + Duration::seconds(r.seq as i64));
            w.update(&t).to_message(&names, &hash, &t, t.ts)
        })
        .collect()
}

/// (topic, payload) of a features message.
fn wire(f: &Features) -> (String, Vec<u8>) {
    (Topics::default().features(&f.machine_id), to_json(f))
}

fn inbound(msgs: &[(String, Vec<u8>)]) -> Vec<Inbound<'_>> {
    msgs.iter().map(|(t, p)| Inbound::new(t, p)).collect()
}

fn later() -> OffsetDateTime {
    epoch() + Duration::hours(1)
}

fn risk(o: &Outgoing) -> Risk {
    match o {
        Outgoing::Verdict { payload, .. } => from_json(payload).unwrap(),
        other => panic!("not a verdict: {other:?}"),
    }
}

fn dead_letter(o: &Outgoing) -> DeadLetter {
    match o {
        Outgoing::DeadLetter {
            payload, rejection, ..
        } => {
            let dl: DeadLetter = from_json(payload).unwrap();
            assert_eq!(dl.reason, rejection.reason);
            dl
        }
        other => panic!("not a dead letter: {other:?}"),
    }
}

/// The shipped model under another version (same features: it fits).
fn redeployed(version: &str) -> Vec<u8> {
    let mut m = ModelArtifact::from_json(SHIPPED_MODEL).unwrap();
    m.version = version.to_owned();
    m.to_json()
}

#[test]
fn routes_by_topic_and_ownership() {
    let p = processor();
    let t = Topics::default();
    let id = MachineId::parse("m-1").unwrap();
    let mine = |_: &str| true;
    let theirs = |_: &str| false;
    assert_eq!(p.route(&t.features(&id), mine), Route::Features);
    assert_eq!(p.route(&t.features(&id), theirs), Route::NotMine);
    assert_eq!(p.route(&t.telemetry(&id), theirs), Route::NotMine);
    assert_eq!(p.route(&t.telemetry(&id), mine), Route::Other);
    assert_eq!(p.route(&t.model_current(), theirs), Route::Model);
    assert_eq!(p.route("elsewhere/x", mine), Route::Other);
}

#[test]
fn a_valid_vector_gives_one_verdict_on_its_risk_topic() {
    let mut p = processor();
    let f = vectors(0, 70).pop().unwrap();
    let msgs = [wire(&f)];
    let out = p.handle(&inbound(&msgs), later());
    assert_eq!(out.events, vec![Event::Batch { messages: 1 }]);
    assert_eq!(out.publishes.len(), 1);
    let o = &out.publishes[0];
    assert_eq!(
        o.topic(),
        format!("dtwin/v1/machines/{}/risk", f.machine_id)
    );
    assert!(!o.retained());
    let r = risk(o);
    assert_eq!(
        (&r.machine_id, r.seq, r.ts),
        (&f.machine_id, f.seq, later())
    );
    let Outgoing::Verdict {
        status,
        level,
        cold,
        age,
        ..
    } = o
    else {
        unreachable!()
    };
    assert_eq!((*status, *level, *cold), (r.status, r.level, f.cold));
    assert_eq!(*age, Some((later() - f.source_ts).as_seconds_f64()));
    // The verdict is the scorer's, exactly.
    assert_eq!(r, scorer(SHIPPED_MODEL).score(&f, later()).unwrap());
}

#[test]
fn telemetry_from_the_future_has_no_age() {
    let mut p = processor();
    let f = vectors(0, 1).pop().unwrap();
    let out = p.handle(&inbound(&[wire(&f)]), epoch() - Duration::hours(1));
    assert!(matches!(
        out.publishes[0],
        Outgoing::Verdict { age: None, .. }
    ));
}

#[test]
fn bad_vectors_give_one_dead_letter_and_no_verdict() {
    let mut p = processor();
    let mut foreign = vectors(1, 1).pop().unwrap();
    foreign.feature_set = "other".to_owned();
    let (topic, _) = wire(&foreign);
    let cases = [
        (b"{not json".to_vec(), RejectReason::WrongType),
        (
            b"{\"schema\":\"dtwin.features.v1\"}".to_vec(),
            RejectReason::WrongType,
        ),
        (to_json(&foreign), RejectReason::FeatureSetMismatch),
    ];
    for (payload, reason) in cases {
        let msgs = [(topic.clone(), payload.clone())];
        let out = p.handle(&inbound(&msgs), later());
        assert_eq!(out.publishes.len(), 1, "{reason:?}");
        let o = &out.publishes[0];
        assert_eq!(o.topic(), "dtwin/v1/deadletter/inference");
        let dl = dead_letter(o);
        assert_eq!((dl.reason, &dl.topic, dl.ts), (reason, &topic, later()));
        assert_eq!(dl.payload_bytes, payload.len());
    }
    assert_eq!(
        p.drift_window(),
        0,
        "nothing rejected reaches the drift window"
    );
}

#[test]
fn a_matching_model_swaps_and_restarts_the_drift_window() {
    let mut p = processor();
    let warm: Vec<_> = vectors(2, 80).iter().skip(60).map(wire).collect();
    p.handle(&inbound(&warm), later());
    assert_eq!(p.drift_window(), 20);
    let before = p.model().version.clone();
    let model = [(Topics::default().model_current(), redeployed("v-next"))];
    let out = p.handle(&inbound(&model), later());
    assert!(out.publishes.is_empty());
    let [Event::Swapped { old, new, labels }] = &out.events[..] else {
        panic!("{:?}", out.events)
    };
    assert_eq!((&old.version, new.version.as_str()), (&before, "v-next"));
    assert_eq!(labels, &p.model_labels());
    assert_eq!(p.model().version, "v-next");
    assert_eq!(p.drift_window(), 0);
    let out = p.handle(&inbound(&warm[..1]), later());
    assert_eq!(risk(&out.publishes[0]).model.version, "v-next");
}

#[test]
fn a_mismatching_model_is_refused_and_the_old_one_kept() {
    let mut p = processor();
    let warm: Vec<_> = vectors(3, 70).iter().skip(60).map(wire).collect();
    p.handle(&inbound(&warm), later());
    let before = p.model().version.clone();
    let mut other = ModelArtifact::from_json(SHIPPED_MODEL).unwrap();
    other.feature_set_hash = "another-set".to_owned();
    other.version = "v-other".to_owned();
    let topic = Topics::default().model_current();
    for payload in [other.to_json(), b"{\"not\":\"a model\"}".to_vec()] {
        let msgs = [(topic.clone(), payload)];
        let out = p.handle(&inbound(&msgs), later());
        let [Event::Refused { rejection }] = &out.events[..] else {
            panic!("{:?}", out.events)
        };
        assert_eq!(rejection.reason, RejectReason::BadModel);
        assert_eq!(out.publishes.len(), 1);
        let dl = dead_letter(&out.publishes[0]);
        assert_eq!(
            (dl.reason, dl.topic.as_str()),
            (RejectReason::BadModel, topic.as_str())
        );
    }
    assert_eq!(p.model().version, before);
    assert_eq!(
        p.drift_window(),
        10,
        "a refused model keeps the drift window"
    );
    let out = p.handle(&inbound(&warm[..1]), later());
    assert_eq!(risk(&out.publishes[0]).model.version, before);
}

#[test]
fn an_empty_retained_model_is_ignored() {
    let mut p = processor();
    let msgs = [(Topics::default().model_current(), Vec::new())];
    assert_eq!(p.handle(&inbound(&msgs), later()), Output::default());
}

#[test]
fn a_model_inside_a_run_applies_to_the_vectors_after_it() {
    let mut p = processor();
    let v: Vec<_> = vectors(4, 64).iter().skip(60).map(wire).collect();
    let msgs = vec![
        v[0].clone(),
        v[1].clone(),
        (Topics::default().model_current(), redeployed("v2")),
        v[2].clone(),
        v[3].clone(),
    ];
    let out = p.handle(&inbound(&msgs), later());
    let sizes: Vec<_> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Batch { messages } => Some(*messages),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![2, 2]);
    assert_eq!(out.scored_messages(), 4);
    let versions: Vec<_> = out
        .publishes
        .iter()
        .map(|o| risk(o).model.version)
        .collect();
    assert_eq!(versions[2..], ["v2", "v2"]);
    assert_ne!(versions[0], "v2");
}

#[test]
fn drift_status_is_reported_once_enough_warm_vectors_are_scored() {
    let cfg = DriftConfig {
        min_samples: 30,
        ..DriftConfig::default()
    };
    let mut p = processor_with(cfg);
    let first = p.drift_status(later());
    assert!(first.changed);
    assert_eq!(first.status.state, DriftState::WarmingUp);
    assert!(first.publish.retained());
    assert_eq!(first.publish.topic(), "dtwin/v1/drift/inference");
    assert!(!p.drift_status(later()).changed, "same state, no change");
    // Only warm vectors (a full long window, 60 readings) are counted: not the cold ones,
    // nor those of a window still filling.
    let all = vectors(5, 200);
    let warm = all.iter().filter(|f| !f.cold && f.window_len >= 60).count();
    assert_eq!(warm, 141);
    let msgs: Vec<_> = all.iter().map(wire).collect();
    p.handle(&inbound(&msgs), later());
    assert_eq!(p.drift_window(), warm);
    let report = p.drift_status(later());
    assert!(report.changed);
    assert!(matches!(
        report.status.state,
        DriftState::Ok | DriftState::Drift
    ));
    assert_eq!(report.status.window, warm as u64);
    assert!(report.status.risk.is_some());
    let (_, payload) = report.publish.into_parts();
    let published: DriftStatus = from_json(&payload).unwrap();
    assert_eq!(published, report.status);
}

/// A vector, or garbage of some kind.
#[derive(Debug, Clone)]
enum Input {
    Vector(usize),
    NotJson(Vec<u8>),
    ForeignSet(usize),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        6 => (0..40usize).prop_map(Input::Vector),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Input::NotJson),
        1 => (0..40usize).prop_map(Input::ForeignSet),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// N vectors interleaved with garbage give exactly N verdicts, in input order, and one
    /// dead letter per bad input, in its place; scoring them as one batch publishes the
    /// same bytes as one at a time.
    #[test]
    fn interleaved_garbage_never_costs_a_verdict(inputs in proptest::collection::vec(input(), 0..30)) {
        thread_local! { static POOL: Vec<Features> = vectors(6, 40); }
        let msgs: Vec<(String, Vec<u8>)> = POOL.with(|pool| {
            inputs
                .iter()
                .map(|i| match i {
                    Input::Vector(k) => wire(&pool[*k]),
                    Input::NotJson(bytes) => (wire(&pool[0]).0, [b"#".as_slice(), bytes].concat()),
                    Input::ForeignSet(k) => {
                        let mut f = pool[*k].clone();
                        f.feature_set = "foreign".to_owned();
                        wire(&f)
                    }
                })
                .collect()
        });
        let mut batched = processor();
        let together = batched.handle(&inbound(&msgs), later());
        let batches = if msgs.is_empty() { vec![] } else { vec![Event::Batch { messages: msgs.len() }] };
        prop_assert_eq!(together.events.clone(), batches);
        prop_assert_eq!(together.publishes.len(), inputs.len());
        let mut alone = processor();
        for (i, (input, out)) in inputs.iter().zip(&together.publishes).enumerate() {
            let one = alone.handle(&inbound(&msgs[i..=i]), later());
            prop_assert_eq!(&one.publishes, &vec![out.clone()], "bit-identical to one at a time");
            match input {
                Input::Vector(k) => {
                    let r = risk(out);
                    let expected = POOL.with(|pool| (pool[*k].machine_id.clone(), pool[*k].seq));
                    prop_assert_eq!((r.machine_id, r.seq), expected);
                }
                Input::NotJson(_) => prop_assert_eq!(dead_letter(out).reason, RejectReason::WrongType),
                Input::ForeignSet(_) => {
                    prop_assert_eq!(dead_letter(out).reason, RejectReason::FeatureSetMismatch);
                }
            }
        }
        prop_assert_eq!(batched.drift_window(), alone.drift_window());
    }
}

#[test]
fn a_quality_model_on_its_topic_adds_its_risk_and_its_own_drift_status() {
    let cfg = DriftConfig {
        min_samples: 30,
        ..DriftConfig::default()
    };
    let mut p = processor_with(cfg);
    let t = Topics::default();
    let mut quality = ModelArtifact::from_json(SHIPPED_MODEL)
        .unwrap()
        .into_quality();
    quality.model_id = "nok-rf".into();
    assert!(
        quality.reference.is_some(),
        "the shipped model has a reference"
    );
    let deploy = [(t.model_kind("milling", "quality"), quality.to_json())];
    let out = p.handle(&inbound(&deploy), later());
    assert!(
        matches!(&out.events[..], [Event::KindModel { profile, kind: ModelKind::Quality, old: None, new: Some(m) }] if profile == "milling" && m.id == "nok-rf"),
        "{:?}",
        out.events
    );
    assert!(out.publishes.is_empty());
    // On the wrong kind's topic it is refused with a dead letter, and nothing changes.
    let wrong = [(t.model_kind("milling", "anomaly"), quality.to_json())];
    let out = p.handle(&inbound(&wrong), later());
    assert!(matches!(&out.events[..], [Event::Refused { .. }]));
    assert_eq!(
        dead_letter(&out.publishes[0]).reason,
        RejectReason::BadModel
    );
    assert_eq!(p.kind_models().iter().count(), 1);

    let msgs: Vec<_> = vectors(6, 200).iter().map(wire).collect();
    let out = p.handle(&inbound(&msgs), later());
    assert_eq!(out.publishes.len(), 200);
    for o in &out.publishes {
        let r = risk(o);
        let q = r
            .insights
            .quality_risk
            .expect("every verdict carries quality_risk");
        assert_eq!(q, r.probability, "the same forest under another kind");
        assert_eq!(r.insights.models["quality"].id, "nok-rf");
    }
    let reports = p.kind_drift_statuses(later());
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(
        r.publish.topic(),
        "dtwin/v1/drift/inference/milling/quality"
    );
    assert!(r.publish.retained() && r.changed);
    assert_eq!(r.status.kind.as_deref(), Some("quality"));
    assert_eq!(r.status.profile.as_deref(), Some("milling"));
    assert_eq!(r.status.model.id, "nok-rf");
    assert_eq!(
        r.status.window,
        p.drift_window() as u64,
        "the same warm vectors"
    );
    assert!(matches!(r.status.state, DriftState::Ok | DriftState::Drift));
    assert!(!p.kind_drift_statuses(later())[0].changed);

    // A cleared retained message takes the model (and its drift status) away.
    let cleared = [(t.model_kind("milling", "quality"), Vec::new())];
    let out = p.handle(&inbound(&cleared), later());
    assert!(matches!(
        &out.events[..],
        [Event::KindModel { new: None, .. }]
    ));
    assert!(p.kind_drift_statuses(later()).is_empty());
    let msgs: Vec<_> = vectors(6, 3).iter().map(wire).collect();
    let out = p.handle(&inbound(&msgs), later());
    assert!(out.publishes.iter().all(|o| risk(o).insights.is_empty()));
}

#[test]
fn kind_model_topics_route_as_models() {
    let p = processor();
    let t = Topics::default();
    let mine = |_: &str| true;
    assert_eq!(p.route(&t.model_kind("pump", "rul"), mine), Route::Model);
    assert_eq!(p.route("dtwin/v1/models/a/b/c", mine), Route::Other);
}
