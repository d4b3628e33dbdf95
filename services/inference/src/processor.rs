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
//! A payload on `models/{profile}/{kind}` deploys a quality, anomaly or rul model
//! ([`crate::kinds`]), whose fields every later verdict of that profile carries.
//! [`Processor::drift_status`] is the retained drift status the shell publishes on its tick
//! (of the milling model: its training reference is milling's);
//! [`Processor::kind_drift_statuses`] those of the other kinds' models, each against its own
//! training reference.

use crate::drift::{DriftConfig, DriftMonitor, Observed};
use crate::kinds::KindModels;
use crate::metrics::model_labels;
use crate::model;
use crate::profiles::{is_milling, rules_only, ProfileModels, CURRENT};
use crate::scorer::{Scored, Scorer};
use crate::SERVICE;
use dtwin_ml::{ModelArtifact, ModelKind};
use dtwin_obs::Labels;
use dtwin_schema::{
    from_json, to_json, DeadLetter, DriftState, DriftStatus, Features, Level, ModelRef,
    RejectReason, Rejection, RiskStatus, TopicKind, Topics,
};
use std::collections::BTreeMap;
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
        _ if topic == model_topic
            || topics.parse_model(topic).is_some()
            || topics.parse_model_kind(topic).is_some() =>
        {
            Route::Model
        }
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
    /// A profile's quality, anomaly or rul model was deployed, replaced or removed.
    KindModel {
        /// The profile.
        profile: String,
        /// The kind.
        kind: ModelKind,
        /// The model before, if any.
        old: Option<ModelRef>,
        /// The model now, if any.
        new: Option<ModelRef>,
    },
    /// A vector of `profile` was of another feature set than its `kind` model: its verdict
    /// has no field from that model.
    KindMismatch {
        /// The profile.
        profile: String,
        /// The kind.
        kind: ModelKind,
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
    /// Every profile's quality, anomaly and rul models.
    kinds: KindModels,
    /// A drift window per model in `kinds`, with its last reported state.
    kind_drift: BTreeMap<(String, ModelKind), (DriftMonitor, Option<DriftState>)>,
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
            kinds: KindModels::default(),
            kind_drift: BTreeMap::new(),
        }
    }

    /// Every profile's quality, anomaly and rul models.
    pub fn kind_models(&self) -> &KindModels {
        &self.kinds
    }

    /// The models of profiles other than milling.
    pub fn profile_models(&self) -> &ProfileModels {
        &self.profile_models
    }

    fn is_model(&self, topic: &str) -> bool {
        topic == self.model_topic
            || self.topics.parse_model(topic).is_some()
            || self.topics.parse_model_kind(topic).is_some()
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

    /// The drift status of each quality, anomaly and rul model at `now`, against its own
    /// training reference, to publish retained on `{prefix}/drift/{service}/{profile}/{kind}`.
    pub fn kind_drift_statuses(&mut self, now: OffsetDateTime) -> Vec<DriftReport> {
        let mut reports = Vec::with_capacity(self.kind_drift.len());
        for ((profile, kind), (monitor, last)) in &mut self.kind_drift {
            let Some(model) = self.kinds.get(profile, *kind) else {
                continue;
            };
            let model_ref = ModelRef {
                id: model.model_id.clone(),
                version: model.version.clone(),
            };
            let mut status = monitor.status(&self.drift_service, model_ref, now);
            status.profile = Some(profile.clone());
            status.kind = Some(kind.as_str().to_owned());
            let changed = last.replace(status.state) != Some(status.state);
            reports.push(DriftReport {
                publish: Outgoing::Drift {
                    topic: self
                        .topics
                        .drift_kind(&self.drift_service, profile, kind.as_str()),
                    payload: to_json(&status),
                },
                status,
                changed,
            });
        }
        reports
    }

    /// Loads a quality, anomaly or rul model at start (a shipped one or a file), as if it had
    /// been deployed on `models/{profile}/{kind}`.
    ///
    /// # Errors
    /// As a deployment on that topic ([`KindModels::deploy`]).
    pub fn preload_kind(
        &mut self,
        profile: &str,
        kind: &str,
        bytes: &[u8],
    ) -> Result<ModelRef, Rejection> {
        let topic = self.topics.model_kind(profile, kind);
        let mut out = Output::default();
        self.deployed_kind(
            Inbound::new(&topic, bytes),
            (profile, kind),
            time::OffsetDateTime::UNIX_EPOCH,
            &mut out,
        );
        match out.events.pop() {
            Some(Event::KindModel { new: Some(m), .. }) => Ok(m),
            Some(Event::Refused { rejection }) => Err(rejection),
            other => Err(Rejection::new(
                RejectReason::BadModel,
                format!("no model loaded: {other:?}"),
            )),
        }
    }

    /// A model on `models/{profile}/{kind}`: deploy it (a fresh drift window against its
    /// reference), remove it (an empty payload), or refuse it with a dead letter.
    fn deployed_kind(
        &mut self,
        msg: Inbound<'_>,
        (profile, kind): (&str, &str),
        now: OffsetDateTime,
        out: &mut Output,
    ) {
        // Milling's feature set is known here; another profile's is checked per vector.
        let expected = (profile == crate::profiles::MILLING).then_some(self.expected.as_str());
        match self.kinds.deploy(profile, kind, msg.payload, expected) {
            Ok((None, None)) => {}
            Ok((old, new)) => {
                let kind = ModelKind::parse(kind).expect("deployed kinds parse");
                let key = (profile.to_owned(), kind);
                match self.kinds.get(profile, kind) {
                    Some(m) => {
                        let monitor = DriftMonitor::new(m.reference.clone(), *self.drift.config());
                        self.kind_drift.insert(key, (monitor, None));
                    }
                    None => {
                        self.kind_drift.remove(&key);
                    }
                }
                out.events.push(Event::KindModel {
                    profile: profile.to_owned(),
                    kind,
                    old,
                    new,
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

    /// A model published on `models/current`: swap to it, or refuse it with a dead letter;
    /// on `models/{profile}`: that profile's model; on `models/{profile}/{kind}`: one of its
    /// other kinds.
    fn deployed(&mut self, msg: Inbound<'_>, now: OffsetDateTime, out: &mut Output) {
        if let Some(pk) = self.topics.parse_model_kind(msg.topic) {
            return self.deployed_kind(msg, pk, now, out);
        }
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
        let (mut milling_f, mut others_f) = (milling.iter(), others.iter());
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
                    let f = milling_f.next().expect("one milling vector per verdict");
                    verdicts
                        .next()
                        .expect("one verdict per milling vector")
                        .map(|(risk, scored)| (f, risk, Some((scored, window_len))))
                }
                // Other profiles stay out of the drift window (the reference is the
                // milling model's).
                None => {
                    let f = others_f.next().expect("one profile vector per verdict");
                    other_verdicts
                        .next()
                        .expect("one verdict per profile vector")
                        .map(|(risk, _)| (f, risk, None))
                }
            };
            match verdict {
                Ok((f, mut risk, scored)) => {
                    self.insights(f, &mut risk, out);
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

    /// Adds the profile's quality, anomaly and rul fields to `risk`, and feeds each model's
    /// drift window (warm vectors only, as for the classifier).
    fn insights(&mut self, f: &Features, risk: &mut dtwin_schema::Risk, out: &mut Output) {
        if self.kinds.is_empty() {
            return;
        }
        let done = self.kinds.annotate(f, risk);
        let profile = f.profile.as_deref().unwrap_or(crate::profiles::MILLING);
        for kind in done.mismatched {
            out.events.push(Event::KindMismatch {
                profile: profile.to_owned(),
                kind,
            });
        }
        for (kind, row) in done.rows {
            let Some((monitor, _)) = self.kind_drift.get_mut(&(profile.to_owned(), kind)) else {
                continue;
            };
            let i = &risk.insights;
            let output = match kind {
                ModelKind::Quality => i.quality_risk,
                ModelKind::Anomaly => i.anomaly,
                ModelKind::Rul => i.rul.as_ref().map(|r| r.value),
                ModelKind::Classifier => None,
            };
            monitor.observe(Observed {
                machine: risk.machine_id.as_str(),
                source_ts: risk.source_ts,
                window_len: f.window_len,
                cold: f.cold,
                row: &row,
                probability: output.unwrap_or(f64::NAN),
            });
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
#[path = "processor_tests.rs"]
mod tests;
