//! The alerter's pure core: one incoming risk verdict or alert action (topic + bytes) in, an
//! [`Outcome`] out. It owns every machine's [`AlertState`], decodes and checks the message,
//! steps the lifecycle (a verdict) or applies the person's action ([`lifecycle::act`]) and
//! builds the spool [`Record`]; the async shell in [`crate::run`] only queues and publishes
//! what it is told, in order.

use crate::email::AlertMail;
use crate::lifecycle::{
    self, ActionInput, AlertState, AnomalyConfig, Cause, Firing, LifecycleConfig, Transition,
    VerdictInput,
};
use crate::spool::Record;
use dtwin_schema::{
    AlertAction, AlertEvent, AlertEventKind, AlertSnapshot, DeadLetter, MachineId, ModelRef,
    RejectReason, Rejection, Risk, RiskStatus, TopicKind, Topics, ALERT_ACTION_BY_CHARS,
    ALERT_ACTION_COMMENT_CHARS, ALERT_ACTION_SCHEMA, ALERT_SCHEMA, ALERT_STATE_SCHEMA, RISK_SCHEMA,
};
use std::collections::HashMap;
use time::OffsetDateTime;

/// The name dead letters and logs use for this service.
pub const SERVICE: &str = "alerter";

/// Largest risk payload accepted. A verdict is ~1-2 KiB; the cap keeps one bad message from
/// making the worker parse megabytes.
pub const MAX_RISK_BYTES: usize = 256 * 1024;

/// Largest alert action accepted (one is ~300 bytes; a 1000-character comment fits easily).
pub const MAX_ACTION_BYTES: usize = 16 * 1024;

/// What the shell must do for one incoming message (always followed by the ack).
#[derive(Debug)]
pub enum Outcome {
    /// A valid verdict that changed nothing worth telling.
    Quiet,
    /// A rejected input: publish `payload` (a [`DeadLetter`]) to `topic`.
    DeadLetter {
        /// `{prefix}/deadletter/alerter`
        topic: String,
        /// The encoded dead letter.
        payload: Vec<u8>,
        /// Why it was rejected.
        reason: RejectReason,
    },
    /// A lifecycle transition: queue the record, then publish the event.
    Notify(Box<Notification>),
}

/// One alert notification, ready to write and publish.
#[derive(Debug)]
pub struct Notification {
    /// The machine.
    pub machine_id: MachineId,
    /// What happened.
    pub transition: Transition,
    /// `{prefix}/alerts/{machine_id}`
    pub topic: String,
    /// What goes into the spool (the e-mail's content and the alert after it).
    pub record: Record,
    /// The lifecycle event (firing, updated, resolved, acknowledged or cleared).
    pub event: AlertEvent,
    /// The `resolved` event of the anomaly alert a failure alert supersedes (published just
    /// before [`Notification::event`]; its e-mail is this notification's).
    pub superseded: Option<AlertEvent>,
    /// `{prefix}/alert-state/{machine_id}`
    pub state_topic: String,
    /// The machine's alert state after the transition, published retained.
    pub state: AlertSnapshot,
}

/// The follow-up of a lifecycle event: `sent`, `failed` or `silenced`, with a detail.
pub fn delivery_event(
    event: &AlertEvent,
    kind: AlertEventKind,
    detail: String,
    now: OffsetDateTime,
) -> AlertEvent {
    AlertEvent {
        ts: now,
        event: kind,
        detail: Some(detail),
        ..event.clone()
    }
}

/// Counters for the stop log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessorStats {
    /// Verdicts applied (cold ones included).
    pub verdicts: u64,
    /// Alert actions applied (acknowledgements and clearings; not the refused ones).
    pub actions: u64,
    /// Alert actions rejected to the dead-letter topic (not counted in `rejected`, which is
    /// about verdicts).
    pub actions_rejected: u64,
    /// Inputs rejected to the dead-letter topic.
    pub rejected: u64,
    /// Notifications produced.
    pub notifications: u64,
    /// Alerts firing now.
    pub firing: usize,
}

/// Every machine's alert state plus what is needed to render mails.
#[derive(Debug)]
pub struct Processor {
    topics: Topics,
    lifecycle: LifecycleConfig,
    anomaly: AnomalyConfig,
    dashboard_url: Option<String>,
    states: HashMap<MachineId, AlertState>,
    /// The latest verdict of each machine whose alert fires: the figures an acknowledgement's
    /// or clearing's notification shows.
    last: HashMap<MachineId, Risk>,
    stats: ProcessorStats,
    window_change: Option<(MachineId, u64)>,
}

impl Processor {
    /// A processor with no machine state and the default anomaly alerts
    /// ([`AnomalyConfig::default`]; see [`Processor::with_anomaly`]). `lifecycle` should be
    /// validated first.
    pub fn new(topics: Topics, lifecycle: LifecycleConfig, dashboard_url: Option<String>) -> Self {
        Self {
            topics,
            lifecycle,
            anomaly: AnomalyConfig::default(),
            dashboard_url,
            states: HashMap::new(),
            last: HashMap::new(),
            stats: ProcessorStats::default(),
            window_change: None,
        }
    }

    /// When sustained anomalies fire alerts ([`AnomalyConfig::OFF`]: never). `anomaly` should
    /// be validated first.
    pub fn with_anomaly(mut self, anomaly: AnomalyConfig) -> Self {
        self.anomaly = anomaly;
        self
    }

    /// Counters so far. O(1): the shell reads them after every message (the firing count
    /// used to be a scan of every machine's state, 10 % of the CPU at 10,000 machines).
    pub fn stats(&self) -> ProcessorStats {
        self.stats
    }

    /// Recounts firing alerts after states were replaced wholesale (restart only).
    fn recount_firing(&mut self) {
        self.stats.firing = self
            .states
            .values()
            .filter(|s| s.firing().is_some())
            .count();
    }

    /// Carries on alerts that were firing before a restart (from [`crate::Spool::firing_states`]).
    pub fn resume(&mut self, firing: Vec<(MachineId, Firing)>) {
        for (m, f) in firing {
            self.states.insert(m.clone(), AlertState::resume(m, f));
        }
        self.recount_firing();
    }

    /// [`Processor::resume`] from the newest spool record of each alert still firing
    /// ([`crate::Spool::firing_records`]): its mail gives the figures until the next verdict,
    /// and its time the machine's clock (actions take effect after it).
    pub fn resume_records(&mut self, firing: Vec<(MachineId, Firing, AlertMail)>) {
        for (m, f, mail) in firing {
            let state = AlertState::resume(m.clone(), f).with_clock(mail.ts);
            self.states.insert(m.clone(), state);
            self.last.insert(m, figures_of(&mail));
        }
        self.recount_firing();
    }

    /// Restores idle machines' confirmation windows saved before a restart (machines already
    /// resumed as firing keep firing).
    pub fn resume_windows(&mut self, windows: Vec<(MachineId, u64)>) {
        for (m, w) in windows {
            self.states
                .entry(m.clone())
                .or_insert_with(|| AlertState::resume_window(m, w));
        }
        self.recount_firing();
    }

    /// Takes over `machine` with the alert state another instance left for it (scale-out,
    /// see [`crate::handover`]): `Some` carries its firing alert on, `None` makes it idle. The
    /// confirmation window starts empty either way.
    pub fn adopt(&mut self, machine: MachineId, firing: Option<Firing>) {
        self.stats.firing += usize::from(firing.is_some());
        let state = match firing {
            Some(f) => AlertState::resume(machine.clone(), f),
            None => AlertState::new(machine.clone()),
        };
        self.forget(&machine);
        self.states.insert(machine, state);
    }

    /// Drops `machine`'s state: another instance handles it now.
    pub fn forget(&mut self, machine: &MachineId) {
        self.last.remove(machine);
        if let Some(old) = self.states.remove(machine) {
            self.stats.firing -= usize::from(old.firing().is_some());
        }
    }

    /// The machines with a state here.
    pub fn machines(&self) -> impl Iterator<Item = &MachineId> {
        self.states.keys()
    }

    /// The machine whose confirmation window the last [`Processor::handle`] changed, and the
    /// new window: the shell saves it before acking, so a restart keeps the evidence.
    pub fn take_window_change(&mut self) -> Option<(MachineId, u64)> {
        self.window_change.take()
    }

    /// The alert state of `machine`, if it has sent a verdict.
    pub fn state(&self, machine: &MachineId) -> Option<&AlertState> {
        self.states.get(machine)
    }

    /// Handles one message from `topic`. The verdict's own `ts` is the lifecycle clock, so
    /// replaying the same verdicts gives the same alert ids and file names.
    pub fn handle(&mut self, topic: &str, payload: &[u8]) -> Outcome {
        if let Some(raw) = self.topics.parse_alert_control(topic) {
            return self.action(topic, raw, payload);
        }
        let topic_id = match self.topics.parse(topic) {
            Some((TopicKind::Risk, id)) => MachineId::parse(id).ok(),
            _ => None,
        };
        let risk = match decode(topic_id.as_ref(), payload) {
            Ok(r) => r,
            Err(rej) => return self.dead_letter(topic, payload, topic_id, rej),
        };
        self.stats.verdicts += 1;
        let state = self
            .states
            .entry(risk.machine_id.clone())
            .or_insert_with(|| AlertState::new(risk.machine_id.clone()));
        let mut input = VerdictInput::from(&risk);
        if self.anomaly.enabled() && lifecycle::anomaly_stands_in(&risk) {
            input.status = RiskStatus::Healthy;
        }
        let (next, transition) =
            lifecycle::step(state, &input, risk.ts, &self.lifecycle, &self.anomaly);
        self.window_change =
            (next.window() != state.window()).then(|| (risk.machine_id.clone(), next.window()));
        let was_firing = state.firing().is_some();
        *state = next;
        let firing = state.firing().cloned();
        match (was_firing, firing.is_some()) {
            (false, true) => self.stats.firing += 1,
            (true, false) => self.stats.firing -= 1,
            _ => {}
        }
        let is_firing = firing.is_some();
        let outcome = match transition {
            None => Outcome::Quiet,
            Some(t) => {
                self.stats.notifications += 1;
                Outcome::Notify(Box::new(self.notification(&risk, t, firing)))
            }
        };
        // Moved, not cloned: the figures of a later acknowledgement or clearing.
        if is_firing {
            self.last.insert(risk.machine_id.clone(), risk);
        } else {
            self.last.remove(&risk.machine_id);
        }
        outcome
    }

    /// An alert action from `topic` (`raw` is its machine segment): acknowledge or clear the
    /// machine's open alert, or a dead letter saying why not.
    fn action(&mut self, topic: &str, raw: &str, payload: &[u8]) -> Outcome {
        let topic_id = MachineId::parse(raw).ok();
        let action = match decode_action(topic_id.as_ref(), payload) {
            Ok(a) => a,
            Err(rej) => return self.action_dead_letter(topic, payload, topic_id, rej),
        };
        let machine = action.machine_id.clone();
        let state = self
            .states
            .entry(machine.clone())
            .or_insert_with(|| AlertState::new(machine.clone()));
        let (next, transition) = match lifecycle::act(state, &ActionInput::from(&action)) {
            Ok(r) => r,
            Err(e) => {
                let rej = Rejection::new(e.reason(), e.to_string());
                return self.action_dead_letter(topic, payload, Some(machine), rej);
            }
        };
        let was_firing = state.firing().is_some();
        *state = next;
        let Some(t) = transition else {
            // The same action again (a redelivery): applied once.
            return Outcome::Quiet;
        };
        let at = state.clock().unwrap_or(action.ts);
        let firing = state.firing().cloned();
        if was_firing && firing.is_none() {
            self.stats.firing -= 1;
        }
        self.stats.actions += 1;
        self.stats.notifications += 1;
        let risk = match self.last.get(&machine) {
            Some(r) => r.clone(),
            // Taken over from another instance and no verdict since: the level is known, the
            // figures are not.
            None => Risk {
                level: t.level(),
                ..blank_risk(&machine, at)
            },
        };
        if firing.is_none() {
            self.last.remove(&machine);
        }
        let mut n = self.notification(&risk, t, firing);
        n.record.mail.ts = at;
        n.state.ts = at;
        n.event.ts = action.ts;
        n.event.by = Some(action.by.clone());
        n.event.comment = Some(action.comment.clone()).filter(|c| !c.is_empty());
        n.record.event = n.event.clone();
        Outcome::Notify(Box::new(n))
    }

    fn notification(
        &self,
        risk: &Risk,
        transition: Transition,
        firing: Option<Firing>,
    ) -> Notification {
        let dashboard = self
            .dashboard_url
            .as_ref()
            .map(|u| format!("{}/machine/{}", u.trim_end_matches('/'), risk.machine_id));
        let mail = AlertMail::new(risk, &transition, dashboard);
        let cause = Cause::of_alert(&risk.machine_id, transition.alert_id());
        let event = AlertEvent {
            schema: ALERT_SCHEMA.to_owned(),
            machine_id: risk.machine_id.clone(),
            ts: risk.ts,
            alert_id: transition.alert_id().to_owned(),
            event: match transition {
                Transition::Fire { .. } => AlertEventKind::Firing,
                Transition::Escalate { .. } | Transition::Repeat { .. } => AlertEventKind::Updated,
                Transition::Resolve { .. } => AlertEventKind::Resolved,
                Transition::Acknowledge { .. } => AlertEventKind::Acknowledged,
                Transition::Clear { .. } => AlertEventKind::Cleared,
            },
            level: transition.level(),
            probability: risk.probability,
            actions: risk.actions.clone(),
            // A failure alert's events carry no detail (as before causes); an anomaly
            // alert's say so, with the score.
            detail: (cause == Cause::Anomaly).then(|| anomaly_detail(risk)),
            cause: Some(cause.into()),
            by: None,
            comment: None,
            channel: None,
        };
        let superseded = match &transition {
            Transition::Fire {
                alert_id,
                supersedes: Some(old),
                ..
            } => Some(AlertEvent {
                alert_id: old.alert_id.clone(),
                event: AlertEventKind::Resolved,
                level: old.level,
                cause: Some(dtwin_schema::AlertCause::Anomaly),
                detail: Some(format!(
                    "{}; superseded by the failure alert {alert_id}",
                    anomaly_detail(risk)
                )),
                ..event.clone()
            }),
            _ => None,
        };
        Notification {
            machine_id: risk.machine_id.clone(),
            topic: self.topics.alert(&risk.machine_id),
            state_topic: self.topics.alert_state(&risk.machine_id),
            state: AlertSnapshot {
                schema: ALERT_STATE_SCHEMA.to_owned(),
                machine_id: risk.machine_id.clone(),
                ts: risk.ts,
                firing: firing.clone(),
            },
            record: Record {
                mail,
                event: event.clone(),
                firing,
            },
            event,
            superseded,
            transition,
        }
    }

    fn action_dead_letter(
        &mut self,
        topic: &str,
        payload: &[u8],
        machine: Option<MachineId>,
        rej: Rejection,
    ) -> Outcome {
        self.stats.actions_rejected += 1;
        let out = self.dead_letter(topic, payload, machine, rej);
        self.stats.rejected -= 1;
        out
    }

    fn dead_letter(
        &mut self,
        topic: &str,
        payload: &[u8],
        machine: Option<MachineId>,
        rej: Rejection,
    ) -> Outcome {
        self.stats.rejected += 1;
        let mut dl = DeadLetter::new(SERVICE, topic, payload, rej.reason, rej.detail);
        dl.machine_id = machine;
        Outcome::DeadLetter {
            topic: self.topics.deadletter(SERVICE),
            payload: dtwin_schema::to_json(&dl),
            reason: rej.reason,
        }
    }
}

/// The detail of an anomaly alert's lifecycle events: `anomaly alert: score 0.81`.
fn anomaly_detail(risk: &Risk) -> String {
    format!(
        "anomaly alert: score {}",
        crate::email::score(risk.insights.anomaly)
    )
}

/// The figures of a spool record's mail as a verdict (what an action's notification shows
/// until the machine's next verdict).
fn figures_of(mail: &AlertMail) -> Risk {
    Risk {
        probability: mail.probability,
        level: mail.level,
        health_score: (1.0 - mail.probability) * 100.0,
        actions: mail.actions.clone(),
        factors: mail.factors.clone(),
        latest: mail.latest.clone(),
        profile: mail.profile.clone(),
        insights: mail.insights.clone(),
        ..blank_risk(&mail.machine_id, mail.ts)
    }
}

/// A verdict with no figures: probability 0, no actions, factors or readings.
fn blank_risk(machine: &MachineId, ts: OffsetDateTime) -> Risk {
    Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: machine.clone(),
        ts,
        source_ts: ts,
        seq: 0,
        probability: 0.0,
        status: RiskStatus::AtRisk,
        level: dtwin_schema::Level::Warning,
        health_score: 100.0,
        actions: Vec::new(),
        factors: Vec::new(),
        model: ModelRef {
            id: String::new(),
            version: String::new(),
        },
        cold: false,
        latest: Default::default(),
        profile: None,
        insights: Default::default(),
    }
}

/// Decodes and checks an alert action that arrived on the topic of `topic_id`.
///
/// # Errors
/// A [`Rejection`]: oversize, not JSON or not an action (`not_json`, `missing_field`,
/// `wrong_type`), another schema, a machine other than the topic's, an empty `alert_id` or
/// `by` (`missing_field`), a `by` or `comment` too long (`out_of_range`).
pub fn decode_action(
    topic_id: Option<&MachineId>,
    payload: &[u8],
) -> Result<AlertAction, Rejection> {
    if payload.len() > MAX_ACTION_BYTES {
        let detail = format!(
            "payload is {} bytes; at most {MAX_ACTION_BYTES}",
            payload.len()
        );
        return Err(Rejection::new(RejectReason::Oversize, detail));
    }
    let a: AlertAction = dtwin_schema::from_json(payload).map_err(Rejection::from_json)?;
    if a.schema != ALERT_ACTION_SCHEMA {
        let detail = format!("schema is {:?}; expected {ALERT_ACTION_SCHEMA:?}", a.schema);
        return Err(Rejection::new(RejectReason::UnknownSchema, detail));
    }
    if topic_id != Some(&a.machine_id) {
        return Err(Rejection::new(
            RejectReason::TopicMismatch,
            format!("machine_id {} does not match the topic", a.machine_id),
        ));
    }
    for (field, value) in [("alert_id", &a.alert_id), ("by", &a.by)] {
        if value.trim().is_empty() {
            let detail = format!("{field} is empty: name the alert and who acts");
            return Err(Rejection::new(RejectReason::MissingField, detail));
        }
    }
    for (field, value, max) in [
        ("alert_id", &a.alert_id, ALERT_ACTION_BY_CHARS),
        ("by", &a.by, ALERT_ACTION_BY_CHARS),
        ("comment", &a.comment, ALERT_ACTION_COMMENT_CHARS),
    ] {
        let n = value.chars().count();
        if n > max {
            let detail = format!("{field} is {n} characters; at most {max}");
            return Err(Rejection::new(RejectReason::OutOfRange, detail));
        }
    }
    Ok(a)
}

/// Decodes and checks a verdict that arrived on the topic of `topic_id`.
///
/// # Errors
/// A [`Rejection`] with the reason a dead letter carries.
pub fn decode(topic_id: Option<&MachineId>, payload: &[u8]) -> Result<Risk, Rejection> {
    if payload.len() > MAX_RISK_BYTES {
        let detail = format!(
            "payload is {} bytes; at most {MAX_RISK_BYTES}",
            payload.len()
        );
        return Err(Rejection::new(RejectReason::Oversize, detail));
    }
    let risk: Risk = dtwin_schema::from_json(payload).map_err(Rejection::from_json)?;
    if risk.schema != RISK_SCHEMA {
        let detail = format!("schema is {:?}; expected {RISK_SCHEMA:?}", risk.schema);
        return Err(Rejection::new(RejectReason::UnknownSchema, detail));
    }
    if !(0.0..=1.0).contains(&risk.probability) {
        let detail = format!("probability {} is outside 0..1", risk.probability);
        return Err(Rejection::new(RejectReason::OutOfRange, detail));
    }
    match topic_id {
        Some(id) if *id == risk.machine_id => Ok(risk),
        _ => Err(Rejection::new(
            RejectReason::TopicMismatch,
            format!("machine_id {} does not match the topic", risk.machine_id),
        )),
    }
}

#[cfg(test)]
#[path = "processor_tests.rs"]
mod tests;
