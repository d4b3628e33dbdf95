//! The pure core of the inference service: routed inbox messages and a clock in, publishes
//! out. No I/O, no tokio, no metrics registry: what the shell records comes back as data.
//!
//! [`route`] says what the loop does with a message (batch it, skip it, or hand it over on
//! its own). [`Processor::handle`] takes a run of routed messages: consecutive feature vectors
//! are decoded and scored together (a micro-batch; the verdicts are the ones scoring each alone
//! gives), a payload on `models/current` swaps the model or is refused, one on
//! `models/{profile}` deploys that profile's model (see [`crate::profiles`]: vectors whose
//! `profile` names another profile than milling are scored by it, or get a rules-only verdict
//! until it comes). Every vector gives exactly one verdict or one dead letter, in input order.
//! [`Processor::drift_status`] is the retained drift status the shell publishes on its tick
//! (of the milling model: its training reference is milling's).

use crate::drift::{DriftConfig, DriftMonitor, Observed};
use crate::metrics::model_labels;
use crate::model;
use crate::profiles::{is_milling, rules_only, ProfileModels, CURRENT};
use crate::scorer::{Scored, Scorer};
use crate::SERVICE;
use dtwin_ml::ModelArtifact;
use dtwin_obs::Labels;
use dtwin_schema::{
    from_json, to_json, DeadLetter, DriftState, DriftStatus, Features, Level, ModelRef,
    RejectReason, Rejection, RiskStatus, TopicKind, Topics,
};
use time::OffsetDateTime;

/// What the service loop does with an inbox message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A feature vector of a machine this instance owns: scored, possibly in a batch.
    Features,
    /// A feature vector (or any machine topic) of a machine another instance owns: skipped.
    NotMine,
    /// A deployed model on `models/current` or `models/{profile}`: handled on its own, in
    /// order.
    Model,
    /// Anything else (a topic that is not ours): handled on its own, and dead-lettered when it
    /// is not a feature vector.
    Other,
}

/// Routes a message on `topic`: `owns` says whether this instance owns a machine, and
/// `model_topic` is `{prefix}/models/current` (every `{prefix}/models/{segment}` is a model).
pub fn route(
    topics: &Topics,
    model_topic: &str,
    topic: &str,
    owns: impl Fn(&str) -> bool,
) -> Route {
    match topics.parse(topic) {
        Some((_, machine)) if !owns(machine) => Route::NotMine,
        Some((TopicKind::Features, _)) => Route::Features,
        _ if topic == model_topic || topics.parse_model(topic).is_some() => Route::Model,
        _ => Route::Other,
    }
}

/// An inbox message as the core sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inbound<'a> {
    /// The topic it arrived on.
    pub topic: &'a str,
    /// Its payload.
    pub payload: &'a [u8],
}

impl<'a> Inbound<'a> {
    /// A message received on `topic`.
    pub fn new(topic: &'a str, payload: &'a [u8]) -> Self {
        Self { topic, payload }
    }
}

/// Something to publish, with what the shell records about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A risk verdict (not retained).
    Verdict {
        /// `{prefix}/machines/{id}/risk`
        topic: String,
        /// `dtwin.risk.v1` JSON.
        payload: Vec<u8>,
        /// The verdict's status.
        status: RiskStatus,
        /// Its level.
        level: Level,
        /// Whether it was computed on a cold window.
        cold: bool,
        /// Seconds from the source telemetry's `ts` to the verdict; `None` when the telemetry
        /// is stamped in the future (a clock ahead of ours).
        age: Option<f64>,
    },
    /// A rejected input (not retained).
    DeadLetter {
        /// `{prefix}/deadletter/inference`
        topic: String,
        /// Why.
        rejection: Rejection,
        /// The topic the input arrived on.
        source: String,
        /// `dtwin.deadletter.v1` JSON.
        payload: Vec<u8>,
    },
    /// The drift status (retained).
    Drift {
        /// `{prefix}/drift/{service}`
        topic: String,
        /// `dtwin.drift.v1` JSON.
        payload: Vec<u8>,
    },
}

impl Outgoing {
    /// Whether the broker keeps it for late subscribers.
    pub fn retained(&self) -> bool {
        matches!(self, Self::Drift { .. })
    }

    /// The topic it goes to.
    pub fn topic(&self) -> &str {
        match self {
            Self::Verdict { topic, .. }
            | Self::DeadLetter { topic, .. }
            | Self::Drift { topic, .. } => topic,
        }
    }

    /// (topic, payload).
    pub fn into_parts(self) -> (String, Vec<u8>) {
        match self {
            Self::Verdict { topic, payload, .. }
            | Self::DeadLetter { topic, payload, .. }
            | Self::Drift { topic, payload } => (topic, payload),
        }
    }
}

/// What happened besides the publishes, for the shell's logs and metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `messages` inputs were decoded and scored together (one micro-batch).
    Batch {
        /// How many (verdicts and dead letters together).
        messages: usize,
    },
    /// A deployed model replaced the running one; the drift window started again.
    Swapped {
        /// The model before.
        old: ModelRef,
        /// The model now.
        new: ModelRef,
        /// The new model's `model_info` labels.
        labels: Labels,
    },
    /// A profile's model was deployed, replaced or (`new: None`, a cleared retained
    /// message) removed.
    ProfileModel {
        /// The profile.
        profile: String,
        /// Its model before, if any.
        old: Option<ModelRef>,
        /// Its model now, if any.
        new: Option<ModelRef>,
    },
    /// A deployed model was refused (a dead letter says why); the running one stays.
    Refused {
        /// Why.
        rejection: Rejection,
    },
}

/// What one call to [`Processor::handle`] produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    /// What to publish, in order.
    pub publishes: Vec<Outgoing>,
    /// What happened, in order.
    pub events: Vec<Event>,
}

impl Output {
    /// Inputs scored (the sum of [`Event::Batch`] sizes).
    pub fn scored_messages(&self) -> usize {
        self.events
            .iter()
            .map(|e| match e {
                Event::Batch { messages } => *messages,
                _ => 0,
            })
            .sum()
    }
}

/// A drift status to publish, and whether its state changed since the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    /// The retained publish.
    pub publish: Outgoing,
    /// The status itself (for the metrics).
    pub status: DriftStatus,
    /// Whether `status.state` differs from the previous report's (the first report counts as
    /// a change).
    pub changed: bool,
}

/// Settings of the core besides its model.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// The feature-set hash the feature service computes: deployed models must match it.
    pub expected: String,
    /// The rules text (windows already expanded), bound to each deployed model's features.
    pub rules_text: String,
    /// Drift window and thresholds.
    pub drift: DriftConfig,
    /// The `{service}` segment of the drift topic (see `crate::drift_service`).
    pub drift_service: String,
}

/// The running model and rules, the drift window, and the topic context.
pub struct Processor {
    topics: Topics,
    model_topic: String,
    scorer: Scorer,
    expected: String,
    rules_text: String,
    drift: DriftMonitor,
    drift_service: String,
    /// The last reported drift verdict.
    drift_state: Option<DriftState>,
    /// The models of profiles other than milling.
    profile_models: ProfileModels,
}

impl Processor {
    /// A core running `scorer`, with an empty drift window.
    pub fn new(topics: Topics, scorer: Scorer, config: ProcessorConfig) -> Self {
        let drift = DriftMonitor::new(scorer.model().reference.clone(), config.drift);
        Self {
            model_topic: topics.model_current(),
            topics,
            scorer,
            expected: config.expected,
            rules_text: config.rules_text,
            drift,
            drift_service: config.drift_service,
            drift_state: None,
            profile_models: ProfileModels::default(),
        }
    }

    /// The models of profiles other than milling.
    pub fn profile_models(&self) -> &ProfileModels {
        &self.profile_models
    }

    fn is_model(&self, topic: &str) -> bool {
        topic == self.model_topic || self.topics.parse_model(topic).is_some()
    }

    /// The running model.
    pub fn model(&self) -> &ModelArtifact {
        self.scorer.model()
    }

    /// The running model's `model_info` labels.
    pub fn model_labels(&self) -> Labels {
        let m = self.scorer.model();
        model_labels(&m.model_id, &m.version, &m.feature_set_hash)
    }

    /// Scored vectors in the drift window.
    pub fn drift_window(&self) -> usize {
        self.drift.len()
    }

    /// [`route`] with this core's topics; `owns` says whether this instance owns a machine.
    pub fn route(&self, topic: &str, owns: impl Fn(&str) -> bool) -> Route {
        route(&self.topics, &self.model_topic, topic, owns)
    }

    /// Handles routed messages received by `now`: runs of feature vectors are scored together,
    /// a `models/current` payload on its own, all in order.
    pub fn handle(&mut self, batch: &[Inbound<'_>], now: OffsetDateTime) -> Output {
        let mut out = Output::default();
        let mut rest = batch;
        while let Some(first) = rest.first() {
            if self.is_model(first.topic) {
                self.deployed(*first, now, &mut out);
                rest = &rest[1..];
            } else {
                let run = rest
                    .iter()
                    .position(|m| self.is_model(m.topic))
                    .unwrap_or(rest.len());
                self.features(&rest[..run], now, &mut out);
                rest = &rest[run..];
            }
        }
        out
    }

    /// The drift status at `now`, to publish retained.
    pub fn drift_status(&mut self, now: OffsetDateTime) -> DriftReport {
        let m = self.scorer.model();
        let model = ModelRef {
            id: m.model_id.clone(),
            version: m.version.clone(),
        };
        let status = self.drift.status(&self.drift_service, model, now);
        let changed = self.drift_state.replace(status.state) != Some(status.state);
        DriftReport {
            publish: Outgoing::Drift {
                topic: self.topics.drift(&self.drift_service),
                payload: to_json(&status),
            },
            status,
            changed,
        }
    }

    /// A model published on `models/current`: swap to it, or refuse it with a dead letter;
    /// on `models/{profile}`: that profile's model.
    fn deployed(&mut self, msg: Inbound<'_>, now: OffsetDateTime, out: &mut Output) {
        let segment = self.topics.parse_model(msg.topic).unwrap_or(CURRENT);
        if segment != CURRENT {
            match self.profile_models.deploy(segment, msg.payload) {
                Ok((None, None)) => {}
                Ok((old, new)) => out.events.push(Event::ProfileModel {
                    profile: segment.to_owned(),
                    old,
                    new,
                }),
                Err(rejection) => {
                    out.events.push(Event::Refused {
                        rejection: rejection.clone(),
                    });
                    self.dead_letter(msg, rejection, now, out);
                }
            }
            return;
        }
        if msg.payload.is_empty() {
            return; // a cleared retained message
        }
        match model::swap(msg.payload, &self.expected, &self.rules_text) {
            Ok(next) => {
                let (old, new) = (model_ref(self.scorer.model()), model_ref(next.model()));
                self.scorer = next;
                // Another model, another reference: the window starts again.
                self.drift =
                    DriftMonitor::new(self.scorer.model().reference.clone(), *self.drift.config());
                out.events.push(Event::Swapped {
                    old,
                    new,
                    labels: self.model_labels(),
                });
            }
            Err(rejection) => {
                out.events.push(Event::Refused {
                    rejection: rejection.clone(),
                });
                self.dead_letter(msg, rejection, now, out);
            }
        }
    }

    /// Feature vectors (one, or a micro-batch): scored together, a verdict for each in order,
    /// or a dead letter for the ones that do not parse or fit the model.
    fn features(&mut self, run: &[Inbound<'_>], now: OffsetDateTime, out: &mut Output) {
        out.events.push(Event::Batch {
            messages: run.len(),
        });
        let mut parsed = Vec::with_capacity(run.len());
        let mut outcomes: Vec<Option<Rejection>> = Vec::with_capacity(run.len());
        for msg in run {
            match from_json::<Features>(msg.payload) {
                Ok(f) => {
                    parsed.push(f);
                    outcomes.push(None);
                }
                Err(e) => {
                    outcomes.push(Some(Rejection::new(RejectReason::WrongType, e.to_string())))
                }
            }
        }
        // Milling vectors are scored together by the running model; the others one by one by
        // their profile's model (or rules only), in the same order.
        let mut kinds = parsed
            .iter()
            .map(is_milling)
            .collect::<Vec<_>>()
            .into_iter();
        let (milling, others): (Vec<Features>, Vec<Features>) =
            parsed.into_iter().partition(is_milling);
        // How full each milling vector's window is, for the drift window.
        let mut window_lens = milling
            .iter()
            .map(|f| f.window_len)
            .collect::<Vec<_>>()
            .into_iter();
        let mut verdicts = self.scorer.score_batch(&milling, now).into_iter();
        let mut other_verdicts = others
            .iter()
            .map(|f| self.score_profile(f, now))
            .collect::<Vec<_>>()
            .into_iter();
        for (msg, outcome) in run.iter().zip(outcomes) {
            let verdict = match outcome {
                Some(rejection) => Err(rejection),
                // One result per parsed vector, in order, from the batch of its kind; `None`
                // outcomes are exactly the parsed ones.
                None if kinds.next() == Some(true) => {
                    let window_len = window_lens.next().unwrap_or(0);
                    verdicts
                        .next()
                        .expect("one verdict per milling vector")
                        .map(|(risk, scored)| (risk, Some((scored, window_len))))
                }
                // Other profiles stay out of the drift window (the reference is the
                // milling model's).
                None => other_verdicts
                    .next()
                    .expect("one verdict per profile vector")
                    .map(|(risk, _)| (risk, None)),
            };
            match verdict {
                Ok((risk, scored)) => {
                    // Other profiles are left out (the reference is the milling model's);
                    // the monitor keeps only warm vectors (full windows) in its window.
                    if let Some((scored, window_len)) = scored {
                        self.drift.observe(Observed {
                            machine: risk.machine_id.as_str(),
                            source_ts: risk.source_ts,
                            window_len,
                            cold: risk.cold,
                            row: &scored.row,
                            probability: scored.probability,
                        });
                    }
                    let age = (now - risk.source_ts).as_seconds_f64();
                    out.publishes.push(Outgoing::Verdict {
                        topic: self.topics.risk(&risk.machine_id),
                        status: risk.status,
                        level: risk.level,
                        cold: risk.cold,
                        age: (age >= 0.0).then_some(age),
                        payload: to_json(&risk),
                    });
                }
                Err(rejection) => self.dead_letter(*msg, rejection, now, out),
            }
        }
    }

    /// A vector of another profile than milling: its model's verdict, or rules only.
    fn score_profile(
        &self,
        f: &Features,
        now: OffsetDateTime,
    ) -> Result<(dtwin_schema::Risk, Option<Scored>), Rejection> {
        let profile = f.profile.as_deref().unwrap_or_default();
        match self.profile_models.get(profile) {
            Some(scorer) => scorer.score(f, now).map(|risk| (risk, None)),
            None => Ok((rules_only(f, now), None)),
        }
    }

    fn dead_letter(
        &self,
        msg: Inbound<'_>,
        rejection: Rejection,
        now: OffsetDateTime,
        out: &mut Output,
    ) {
        let mut dl = DeadLetter::new(
            SERVICE,
            msg.topic,
            msg.payload,
            rejection.reason,
            rejection.detail.clone(),
        );
        dl.ts = now;
        out.publishes.push(Outgoing::DeadLetter {
            topic: self.topics.deadletter(SERVICE),
            rejection,
            source: msg.topic.to_owned(),
            payload: to_json(&dl),
        });
    }
}

fn model_ref(m: &ModelArtifact) -> ModelRef {
    ModelRef {
        id: m.model_id.clone(),
        version: m.version.clone(),
    }
}

#[cfg(test)]
mod tests {
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
            rules_text: crate::rules::expand_windows(
                crate::DEFAULT_RULES,
                &WindowConfig::default(),
            ),
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
}
