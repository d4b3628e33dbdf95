//! The messages the services publish: feature vectors, risk verdicts, alert events, dead
//! letters and machine status. Telemetry lives in [`crate::telemetry`].

use crate::machine_id::MachineId;
use crate::telemetry::RejectReason;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

pub use crate::telemetry::{FailureMode, ProductType, TELEMETRY_SCHEMA};

/// Schema id of feature vectors.
pub const FEATURES_SCHEMA: &str = "dtwin.features.v1";
/// Schema id of risk verdicts.
pub const RISK_SCHEMA: &str = "dtwin.risk.v1";
/// Schema id of alert events.
pub const ALERT_SCHEMA: &str = "dtwin.alert.v1";
/// Schema id of dead letters.
pub const DEADLETTER_SCHEMA: &str = "dtwin.deadletter.v1";
/// Schema id of machine and publisher status messages.
pub const STATUS_SCHEMA: &str = "dtwin.status.v1";
/// Schema id of drift status messages.
pub const DRIFT_SCHEMA: &str = "dtwin.drift.v1";
/// Schema id of a silence.
pub const SILENCE_SCHEMA: &str = "dtwin.silence.v1";
/// Schema id of [`AlertSnapshot`].
pub const ALERT_STATE_SCHEMA: &str = "dtwin.alertstate.v1";
/// Schema id of [`AlertAction`].
pub const ALERT_ACTION_SCHEMA: &str = "dtwin.alert-action.v1";

/// Rolling-window features of one machine after one reading (`dtwin.features.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// Always [`FEATURES_SCHEMA`].
    pub schema: String,
    /// The machine.
    pub machine_id: MachineId,
    /// When the features were computed.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// The `ts` of the telemetry that produced them (for end-to-end latency).
    #[serde(with = "time::serde::rfc3339")]
    pub source_ts: OffsetDateTime,
    /// The `seq` of that telemetry.
    pub seq: u64,
    /// Hash of the ordered feature names (see [`crate::feature_set_hash`]).
    pub feature_set: String,
    /// Readings in the window; a window holding fewer than it needs is `cold`.
    pub window_len: u32,
    /// True while the window is too short for the model to be trusted.
    pub cold: bool,
    /// Feature name -> value; `null` means missing.
    pub values: BTreeMap<String, Option<f64>>,
    /// The latest raw sensor values, for people reading alerts and dashboards.
    pub latest: BTreeMap<String, f64>,
    /// Product variant, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<ProductType>,
    /// Readings missing (by `seq`) just before this one; absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gap: u64,
    /// The machine's profile when it is not the built-in milling one (absent: milling), so
    /// inference picks that profile's model and people see what kind of machine it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Whether a machine is healthy or at risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RiskStatus {
    /// Risk below the decision threshold and no rule fired.
    Healthy,
    /// Risk at or above the threshold, or a critical rule fired.
    AtRisk,
}

impl RiskStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "HEALTHY",
            Self::AtRisk => "AT_RISK",
        }
    }
    /// How a person reads it ("AT RISK").
    pub fn label(self) -> &'static str {
        match self {
            Self::Healthy => "HEALTHY",
            Self::AtRisk => "AT RISK",
        }
    }
}

/// How urgent a verdict, action or alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// Nothing to do.
    Normal,
    /// Plan maintenance.
    Warning,
    /// Act now.
    Critical,
}

impl Level {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
        }
    }
}

/// A maintenance recommendation from the expert rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Stable code, e.g. `HIGH_VIBRATION`.
    pub code: String,
    /// What to do, for a person.
    pub text: String,
    /// How urgent.
    pub severity: Level,
}

/// One feature's contribution to a prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// Feature name.
    pub feature: String,
    /// Its value (`null` when missing).
    pub value: Option<f64>,
    /// Its contribution to the probability (positive raises risk).
    pub contribution: f64,
}

/// Which model produced a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Model id.
    pub id: String,
    /// Model version.
    pub version: String,
}

/// A machine's risk verdict (`dtwin.risk.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// Always [`RISK_SCHEMA`].
    pub schema: String,
    /// The machine.
    pub machine_id: MachineId,
    /// When the verdict was made.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// The `ts` of the telemetry behind it (end-to-end latency = receive time - source_ts).
    #[serde(with = "time::serde::rfc3339")]
    pub source_ts: OffsetDateTime,
    /// The `seq` of that telemetry.
    pub seq: u64,
    /// Probability of failure or a NOK part within the model's horizon, 0..1.
    pub probability: f64,
    /// HEALTHY or AT_RISK.
    pub status: RiskStatus,
    /// NORMAL, WARNING or CRITICAL.
    pub level: Level,
    /// 0 (failing) to 100 (healthy).
    pub health_score: f64,
    /// Recommended maintenance actions, most severe first.
    pub actions: Vec<Action>,
    /// Features that pushed this prediction most.
    pub factors: Vec<Factor>,
    /// The model behind the probability.
    pub model: ModelRef,
    /// True when the window behind it was cold (too short to trust).
    pub cold: bool,
    /// Latest raw sensor values.
    pub latest: BTreeMap<String, f64>,
    /// The machine's profile, copied from its features (absent: milling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// What the profile's other models say (quality risk, anomaly, remaining useful life):
    /// each field present only when such a model is deployed for the profile.
    #[serde(flatten)]
    pub insights: Insights,
}

/// The verdicts of a profile's models beside the failure classifier, carried in a [`Risk`]
/// (flattened: `quality_risk`, `anomaly`, `rul`, ... are top-level fields of the verdict).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Insights {
    /// Probability of a NOK part within the quality model's horizon, 0..1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_risk: Option<f64>,
    /// Whether `quality_risk` is at or above the quality model's threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_at_risk: Option<bool>,
    /// The anomaly model's score, 0..1 (Isolation Forest: about 0.5 and below is ordinary,
    /// near 1 is unlike anything in the healthy training data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<f64>,
    /// Whether `anomaly` is at or above the anomaly model's threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomalous: Option<bool>,
    /// Remaining useful life with an interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rul: Option<RulEstimate>,
    /// The models behind these fields, by kind (`quality`, `anomaly`, `rul`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelRef>,
}

impl Insights {
    /// Whether no other model spoke.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A remaining-useful-life estimate: the forest's mean and the spread of its trees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulEstimate {
    /// The estimate.
    pub value: f64,
    /// The 5th percentile of the trees' predictions.
    pub low: f64,
    /// The 95th percentile of the trees' predictions.
    pub high: f64,
    /// `cycles`, `readings` or `seconds` (the unit the model was trained in).
    pub unit: String,
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEventKind {
    /// The alert started firing.
    Firing,
    /// A firing alert changed level or was re-notified.
    Updated,
    /// The alert resolved.
    Resolved,
    /// Its e-mail was accepted by the mail server or written to the outbox.
    Sent,
    /// Its e-mail could not be delivered (`detail` says whether it is retried).
    Failed,
    /// A silence matched: recorded, not sent (`detail` names the silence).
    Silenced,
    /// A person acknowledged the firing alert (`by`, `comment`): no more repeat notifications.
    Acknowledged,
    /// A person cleared the alert by hand (`by`, `comment`): it ended without resolving.
    Cleared,
}

impl AlertEventKind {
    /// The wire name (`firing`, `acknowledged`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Updated => "updated",
            Self::Resolved => "resolved",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Silenced => "silenced",
            Self::Acknowledged => "acknowledged",
            Self::Cleared => "cleared",
        }
    }

    /// Whether it ends the alert (resolved or cleared).
    pub fn closes(self) -> bool {
        matches!(self, Self::Resolved | Self::Cleared)
    }
}

/// What raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertCause {
    /// The failure risk (the classifier's probability or a critical rule).
    Failure,
    /// A sustained anomaly (the profile's anomaly model, anomalous verdicts in a row).
    Anomaly,
}

/// An alert lifecycle event (`dtwin.alert.v1`), on `{prefix}/alerts/{machine_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Always [`ALERT_SCHEMA`].
    pub schema: String,
    /// The machine.
    pub machine_id: MachineId,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// Stable id of the alert (one per firing period).
    pub alert_id: String,
    /// What happened.
    pub event: AlertEventKind,
    /// The alert's level.
    pub level: Level,
    /// Latest risk probability.
    pub probability: f64,
    /// Recommended actions.
    pub actions: Vec<Action>,
    /// Free-form detail (e.g. the file an e-mail was written to, or an SMTP error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What raised the alert: the failure risk or a sustained anomaly. Absent in events
    /// written before anomaly alerts existed (a failure alert's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<AlertCause>,
    /// Who acknowledged or cleared the alert (on `acknowledged` and `cleared` events, and the
    /// deliveries of their notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Their comment, when they left one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The channel a `sent`, `failed` or `silenced` event is about: the name of a webhook
    /// channel (`webhook`, or one from the routing file); absent for e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// A firing alert: what the alerter remembers of it between verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    /// Stable id: machine id + firing start time.
    pub alert_id: String,
    /// When it started firing.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Its level (never below WARNING; only rises).
    pub level: Level,
    /// When it last notified (fire, escalate or repeat).
    #[serde(with = "time::serde::rfc3339")]
    pub last_notified: OffsetDateTime,
    /// Repeats sent so far.
    pub repeats: u32,
    /// Consecutive HEALTHY verdicts below the resolve threshold.
    pub healthy_run: u32,
    /// Who acknowledged it, when and why; absent while unacknowledged (and in states written
    /// before acknowledgements existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Acknowledgement>,
}

/// A person's acknowledgement of a firing alert: it stays open, its repeats stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// Who.
    pub by: String,
    /// When they acknowledged it (the action's `ts`).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Their comment (may be empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

/// What a person does to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertActionKind {
    /// "I have seen it": the alert stays open, its repeat notifications stop.
    Acknowledge,
    /// "It is dealt with": the alert ends now, recorded apart from an automatic resolution.
    Clear,
}

impl AlertActionKind {
    /// The wire name (`acknowledge`, `clear`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledge => "acknowledge",
            Self::Clear => "clear",
        }
    }
}

/// Longest `by` of an [`AlertAction`], in characters.
pub const ALERT_ACTION_BY_CHARS: usize = 200;
/// Longest `comment` of an [`AlertAction`], in characters.
pub const ALERT_ACTION_COMMENT_CHARS: usize = 1000;

/// A person's action on one alert (`dtwin.alert-action.v1`), published (QoS 1, not retained)
/// on `{prefix}/control/alerts/{machine_id}` by the dashboard or `dtwin alert ack|clear`. The
/// alerter that handles the machine applies it and publishes an `acknowledged` or `cleared`
/// [`AlertEvent`]; an action it cannot apply (unknown or closed alert, already acknowledged,
/// malformed) is answered on `{prefix}/deadletter/alerter` with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAction {
    /// Always [`ALERT_ACTION_SCHEMA`].
    pub schema: String,
    /// The machine; equals the topic's.
    pub machine_id: MachineId,
    /// The alert acted on: it must be the machine's open alert.
    pub alert_id: String,
    /// Acknowledge or clear.
    pub action: AlertActionKind,
    /// Who (a user name; 1-200 characters).
    pub by: String,
    /// Why, or what is being done (at most 1000 characters; may be empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// When the person acted.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
}

/// A machine's alert state after its latest lifecycle transition (`dtwin.alertstate.v1`),
/// retained on `{prefix}/alert-state/{machine_id}`: which alert is firing now (or none).
/// Alerter instances hand machines over through it when they scale out, and anyone can read
/// the fleet's open alerts from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSnapshot {
    /// Always [`ALERT_STATE_SCHEMA`].
    pub schema: String,
    /// The machine.
    pub machine_id: MachineId,
    /// The verdict time of the transition.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// The alert firing after it; `None` once resolved.
    pub firing: Option<Firing>,
}

/// An input a service rejected (`dtwin.deadletter.v1`), on `{prefix}/deadletter/{service}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Always [`DEADLETTER_SCHEMA`].
    pub schema: String,
    /// The service that rejected it.
    pub service: String,
    /// When it was rejected.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Human-readable detail.
    pub detail: String,
    /// The topic it arrived on.
    pub topic: String,
    /// The machine, when it could be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<MachineId>,
    /// The payload (lossy UTF-8), cut at [`DEADLETTER_PAYLOAD_CHARS`] characters.
    pub payload: String,
    /// The payload's full size in bytes.
    pub payload_bytes: usize,
}

/// How much of a rejected payload a dead letter keeps.
pub const DEADLETTER_PAYLOAD_CHARS: usize = 2048;

impl DeadLetter {
    /// A dead letter for `payload` received on `topic`.
    pub fn new(
        service: &str,
        topic: &str,
        payload: &[u8],
        reason: RejectReason,
        detail: String,
    ) -> Self {
        let text = String::from_utf8_lossy(payload);
        Self {
            schema: DEADLETTER_SCHEMA.to_owned(),
            service: service.to_owned(),
            ts: crate::time_fmt::now(),
            reason,
            detail,
            topic: topic.to_owned(),
            machine_id: None,
            payload: text.chars().take(DEADLETTER_PAYLOAD_CHARS).collect(),
            payload_bytes: payload.len(),
        }
    }
}

/// Online or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Publishing.
    Online,
    /// Stopped or disconnected.
    Offline,
}

/// A machine's or a publisher's presence (`dtwin.status.v1`, retained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineStatus {
    /// Always [`STATUS_SCHEMA`].
    pub schema: String,
    /// The machine, or the publisher's client id for publisher status.
    pub machine_id: MachineId,
    /// When it changed.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// Online or offline.
    pub state: Presence,
    /// Product variant, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<ProductType>,
}

/// Overall drift verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftState {
    /// Live distributions match the training reference.
    Ok,
    /// At least one feature, or the predicted risk, drifted past its threshold.
    Drift,
    /// Too few live values yet to compare.
    WarmingUp,
    /// The deployed model carries no training reference to compare with.
    NoReference,
}

/// How far one live distribution is from its training reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftScore {
    /// Feature name, or `risk` for the predicted probability.
    pub feature: String,
    /// Kolmogorov-Smirnov statistic (largest CDF gap, 0..1) at the reference's bin edges.
    pub ks: f64,
    /// Jensen-Shannon divergence (base 2, 0..1) of the binned distributions.
    pub js: f64,
    /// Share of live values that are missing.
    pub missing: f64,
    /// True when `ks` or `js` is past its threshold.
    pub drift: bool,
}

/// Drift status of a service's live inputs against the model's training reference
/// (`dtwin.drift.v1`), retained on `{prefix}/drift/{service}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftStatus {
    /// Always [`DRIFT_SCHEMA`].
    pub schema: String,
    /// The service that computed it.
    pub service: String,
    /// When it was computed.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// The model whose reference was used.
    pub model: ModelRef,
    /// The verdict.
    pub state: DriftState,
    /// Live values per feature in the rolling window.
    pub window: u64,
    /// KS threshold.
    pub ks_threshold: f64,
    /// JS threshold.
    pub js_threshold: f64,
    /// Features that drifted, worst first.
    pub drifted: Vec<String>,
    /// The predicted risk's score, once there is a reference and enough values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<DriftScore>,
    /// The worst-scoring features (at most 10), worst first.
    pub features: Vec<DriftScore>,
    /// The profile of the model watched, for a quality, anomaly or rul model (absent: the
    /// failure classifier of milling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The kind of the model watched (`quality`, `anomaly`, `rul`; absent: the failure
    /// classifier). Its `risk` score is then of the model's output: the quality risk, the
    /// anomaly score or the predicted remaining life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// An operator's silence (`dtwin.silence.v1`), retained on
/// `{prefix}/control/silences/{silence_id}`; an empty retained message removes it. While it
/// lasts, alert e-mails for the machines it matches are recorded, not sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Always [`SILENCE_SCHEMA`].
    pub schema: String,
    /// Its id (the topic's last segment): `[A-Za-z0-9_.-]`, 1-64 characters.
    pub silence_id: String,
    /// Machine ids it matches; `*` matches any run of characters (`press-*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<String>,
    /// Lines it matches (lines come from the alerter's routing file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// Why (shown in logs and events).
    #[serde(default)]
    pub reason: String,
    /// Who set it.
    #[serde(default)]
    pub created_by: String,
}

impl Silence {
    /// True when it lasts at `now` and names `machine` (or its `line`).
    pub fn matches(&self, machine: &str, line: Option<&str>, now: OffsetDateTime) -> bool {
        now < self.until
            && (self.machines.iter().any(|p| glob_match(p, machine))
                || line.is_some_and(|l| self.lines.iter().any(|p| glob_match(p, l))))
    }
}

/// `*` matches any run of characters (possibly empty); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Encodes any message as JSON.
pub fn to_json<T: Serialize>(msg: &T) -> Vec<u8> {
    // Our messages are plain structs with string keys and finite-checked numbers; a NaN would
    // become `null`, never an error.
    serde_json::to_vec(msg).expect("message serializes")
}

/// Decodes a message of type `T`.
///
/// # Errors
/// The serde_json error when the payload is not a `T`.
pub fn from_json<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(payload)
}
