//! The per-machine alert state machine, as one pure function: [`step`] takes the state, a
//! verdict and the time, and returns the next state plus the notification (if any) to send.
//!
//! An alert fires when `confirm_k` of the last `confirm_n` non-cold verdicts are AT_RISK (so a
//! single spike does not page anyone), escalates once from WARNING to CRITICAL, re-notifies
//! every `repeat_interval` while it keeps firing, and resolves only after `resolve_after`
//! consecutive HEALTHY verdicts below `resolve_below` (hysteresis, so a machine hovering at the
//! threshold does not flap). Cold verdicts (too little history to trust) are ignored.
//!
//! An alert has a [`Cause`]. A **failure** alert is the one above. An **anomaly** alert fires
//! when [`AnomalyConfig::fire_after`] consecutive non-cold verdicts are `anomalous` (the
//! profile's anomaly model flags them), repeats like any alert, never escalates (it stays
//! WARNING) and resolves after [`AnomalyConfig::resolve_after`] consecutive verdicts that are
//! not anomalous. The cause is part of the alert id (`{machine}-anomaly-{time}` for an anomaly
//! alert, [`Cause::of_alert`]), so it survives restarts and handovers with the alert.
//!
//! A machine has **one alert at a time**: its alert state (the spool's memory, the retained
//! `alert-state` snapshot the instances hand machines over with) holds one firing alert. The
//! failure risk takes precedence: when both conditions are met by one verdict the failure
//! alert fires; a failure alert does not watch anomalies (its e-mails show the anomaly score);
//! and while an anomaly alert fires, the failure confirmation window keeps counting, so a
//! machine whose failure risk is confirmed gets its failure alert at once, which **supersedes**
//! the anomaly alert ([`Transition::Fire`] with `supersedes`: the anomaly alert resolves in
//! the same step, its e-mail is the failure alert's firing e-mail).
//!
//! People act on a firing alert ([`act`], ThingsBoard's states: active unacknowledged ->
//! acknowledged -> cleared). **Acknowledging** keeps the alert open and stops its repeats (an
//! escalation to CRITICAL and the resolution still notify: they are news); **clearing** ends
//! it at once ([`Transition::Clear`], recorded apart from an automatic [`Transition::Resolve`]):
//! the machine is idle with an empty confirmation window, so a machine still at risk fires a
//! new alert after `confirm_k` fresh AT_RISK verdicts. An action on anything but the
//! machine's open alert is refused ([`ActionError`]); the same action twice is applied once.
//!
//! A profile without a failure classifier gets rules-only verdicts, which the inference
//! service makes AT_RISK while anomalous (the anomaly model stands in for the classifier).
//! With anomaly alerts on, the processor counts such a verdict as anomalous and not AT_RISK
//! ([`anomaly_stands_in`]), so the alert it raises is an anomaly alert.

pub use dtwin_schema::{Acknowledgement, Firing};
use dtwin_schema::{AlertActionKind, Level, MachineId, RejectReason, Risk, RiskStatus};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// Most verdicts the confirmation window can hold (it is a bit set in a `u64`).
pub const MAX_CONFIRM_N: u8 = 64;

/// How alerts fire, repeat and resolve.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleConfig {
    /// AT_RISK verdicts needed among the last [`Self::confirm_n`] to fire.
    pub confirm_k: u8,
    /// Size of the confirmation window, in non-cold verdicts.
    pub confirm_n: u8,
    /// A firing alert counts a HEALTHY verdict towards resolution only below this probability.
    pub resolve_below: f64,
    /// Consecutive such verdicts that resolve the alert.
    pub resolve_after: u32,
    /// A firing alert re-notifies after this long without a notification.
    pub repeat_interval: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            confirm_k: 2,
            confirm_n: 3,
            resolve_below: 0.3,
            resolve_after: 3,
            repeat_interval: Duration::hours(1),
        }
    }
}

/// Why a [`LifecycleConfig`] is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LifecycleConfigError {
    /// `confirm_k` is 0 or above `confirm_n`, or `confirm_n` above [`MAX_CONFIRM_N`].
    #[error("confirm must be k of n with 1 <= k <= n <= 64, not {k} of {n}")]
    Confirm {
        /// The configured k.
        k: u8,
        /// The configured n.
        n: u8,
    },
    /// `resolve_below` is not in (0, 1].
    #[error("resolve_below must be in (0, 1], not {0}")]
    ResolveBelow(f64),
    /// `resolve_after` is 0.
    #[error("resolve_after must be at least 1")]
    ResolveAfter,
    /// `repeat_interval` is not positive.
    #[error("repeat_interval must be positive, not {0}")]
    RepeatInterval(Duration),
    /// [`AnomalyConfig::resolve_after`] is 0.
    #[error("the anomaly alert's resolve_after must be at least 1")]
    AnomalyResolveAfter,
}

impl LifecycleConfig {
    /// Checks the settings once, before the alerter starts.
    ///
    /// # Errors
    /// [`LifecycleConfigError`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), LifecycleConfigError> {
        let (k, n) = (self.confirm_k, self.confirm_n);
        if k == 0 || k > n || n > MAX_CONFIRM_N {
            return Err(LifecycleConfigError::Confirm { k, n });
        }
        if !(self.resolve_below > 0.0 && self.resolve_below <= 1.0) {
            return Err(LifecycleConfigError::ResolveBelow(self.resolve_below));
        }
        if self.resolve_after == 0 {
            return Err(LifecycleConfigError::ResolveAfter);
        }
        if !self.repeat_interval.is_positive() {
            return Err(LifecycleConfigError::RepeatInterval(self.repeat_interval));
        }
        Ok(())
    }
}

/// When sustained anomalies fire an alert of their own ([`Cause::Anomaly`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnomalyConfig {
    /// Consecutive anomalous non-cold verdicts that fire an anomaly alert; 0 turns anomaly
    /// alerts off (firing ones still resolve).
    pub fire_after: u32,
    /// Consecutive non-cold verdicts that are not anomalous (or carry no anomaly score) that
    /// resolve it.
    pub resolve_after: u32,
}

impl Default for AnomalyConfig {
    /// Fire after 5 anomalous verdicts in a row, resolve after 3 ordinary ones.
    fn default() -> Self {
        Self {
            fire_after: 5,
            resolve_after: 3,
        }
    }
}

impl AnomalyConfig {
    /// No anomaly alerts.
    pub const OFF: Self = Self {
        fire_after: 0,
        resolve_after: 1,
    };

    /// Checks the settings once, before the alerter starts.
    ///
    /// # Errors
    /// [`LifecycleConfigError::AnomalyResolveAfter`] when `resolve_after` is 0.
    pub fn validate(&self) -> Result<(), LifecycleConfigError> {
        if self.resolve_after == 0 {
            return Err(LifecycleConfigError::AnomalyResolveAfter);
        }
        Ok(())
    }

    /// Whether anomaly alerts fire at all.
    pub fn enabled(&self) -> bool {
        self.fire_after > 0
    }
}

/// Why an alert fires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The failure risk: `confirm_k` of the last `confirm_n` verdicts AT_RISK.
    #[default]
    Failure,
    /// A sustained anomaly: [`AnomalyConfig::fire_after`] anomalous verdicts in a row.
    Anomaly,
}

impl From<Cause> for dtwin_schema::AlertCause {
    fn from(c: Cause) -> Self {
        match c {
            Cause::Failure => Self::Failure,
            Cause::Anomaly => Self::Anomaly,
        }
    }
}

impl Cause {
    /// `failure` or `anomaly`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failure => "failure",
            Self::Anomaly => "anomaly",
        }
    }

    /// The cause of `machine`'s alert `alert_id`: [`Cause::Anomaly`] for an id made by
    /// [`alert_id_for`] with that cause (`{machine}-anomaly-{time}`), else failure (every
    /// alert id from before anomaly alerts existed).
    pub fn of_alert(machine: &MachineId, alert_id: &str) -> Self {
        let anomaly = alert_id
            .strip_prefix(machine.as_str())
            .is_some_and(|rest| rest.starts_with(ANOMALY_ID));
        if anomaly {
            Self::Anomaly
        } else {
            Self::Failure
        }
    }

    /// Whether it is [`Cause::Failure`] (serialized fields of that cause are left out, so
    /// records of failure alerts read as they did before causes existed).
    pub fn is_failure(&self) -> bool {
        *self == Self::Failure
    }
}

/// What follows the machine id in an anomaly alert's id.
const ANOMALY_ID: &str = "-anomaly-";

/// The parts of a verdict the state machine looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerdictInput {
    /// HEALTHY or AT_RISK.
    pub status: RiskStatus,
    /// The verdict's level.
    pub level: Level,
    /// Probability of failure, 0..1.
    pub probability: f64,
    /// True when the verdict came from a cold window; such verdicts are ignored.
    pub cold: bool,
    /// The anomaly model flagged it (`anomalous: true`); false when it did not, or when the
    /// profile has no anomaly model.
    pub anomalous: bool,
}

impl From<&Risk> for VerdictInput {
    fn from(r: &Risk) -> Self {
        Self {
            status: r.status,
            level: r.level,
            probability: r.probability,
            cold: r.cold,
            anomalous: r.insights.anomalous == Some(true),
        }
    }
}

/// The model id of a rules-only verdict: its profile has no failure classifier
/// (`risk.schema.json`).
pub const RULES_ONLY_MODEL: &str = "none";

/// Whether `risk` is AT_RISK only because it is anomalous: a rules-only verdict (no failure
/// classifier for its profile) that the inference service made AT_RISK because the anomaly
/// model flagged it, with no CRITICAL rule behind it. With anomaly alerts on, such a verdict
/// is the anomaly alert's to tell, not a failure alert's (whose mail would say "0 % risk").
pub fn anomaly_stands_in(risk: &Risk) -> bool {
    risk.status == RiskStatus::AtRisk
        && risk.insights.anomalous == Some(true)
        && risk.model.id == RULES_ONLY_MODEL
        && !risk.actions.iter().any(|a| a.severity == Level::Critical)
}

/// One machine's alert state. Start with [`AlertState::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct AlertState {
    machine: MachineId,
    /// Last non-cold verdicts while idle or firing an anomaly alert, newest in bit 0
    /// (1 = AT_RISK).
    recent: u64,
    /// Anomalous non-cold verdicts in a row while idle.
    anomalous_run: u32,
    firing: Option<Firing>,
    /// The firing alert's cause (failure while idle).
    cause: Cause,
    /// The newest time applied (verdicts and actions): actions take effect just after it, so
    /// their records and snapshots order after everything before them.
    clock: Option<OffsetDateTime>,
    /// How the machine's last alert ended, for precise refusals of late actions.
    closed: Option<Closed>,
}

/// How an alert that is no longer open ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// Resolved by healthy verdicts.
    Resolved {
        /// The alert.
        alert_id: String,
    },
    /// Cleared by a person.
    Cleared {
        /// The alert.
        alert_id: String,
        /// Who.
        by: String,
        /// The action's time.
        at: OffsetDateTime,
    },
    /// An anomaly alert replaced by a failure alert.
    Superseded {
        /// The anomaly alert.
        alert_id: String,
        /// The failure alert that replaced it.
        by: String,
    },
}

impl Closed {
    /// The alert that ended.
    pub fn alert_id(&self) -> &str {
        match self {
            Self::Resolved { alert_id }
            | Self::Cleared { alert_id, .. }
            | Self::Superseded { alert_id, .. } => alert_id,
        }
    }
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Resolved { alert_id } => write!(f, "alert {alert_id} resolved"),
            Self::Cleared { alert_id, by, at } => write!(
                f,
                "alert {alert_id} was cleared by {by} at {}",
                dtwin_schema::time_fmt::format(*at)
            ),
            Self::Superseded { alert_id, by } => {
                write!(
                    f,
                    "alert {alert_id} was superseded by the failure alert {by}"
                )
            }
        }
    }
}

impl AlertState {
    /// An idle machine with no history.
    pub fn new(machine: MachineId) -> Self {
        Self::resume_window(machine, 0)
    }

    /// A machine whose alert was firing before a restart (see [`crate::spool`]), or that
    /// another instance handed over: the alert carries on, with its cause (read from its id);
    /// the confirmation window and the anomalous run start empty.
    pub fn resume(machine: MachineId, firing: Firing) -> Self {
        let cause = Cause::of_alert(&machine, &firing.alert_id);
        Self {
            machine,
            recent: 0,
            anomalous_run: 0,
            firing: Some(firing),
            cause,
            clock: None,
            closed: None,
        }
    }

    /// The same state with `at` as the newest time applied (e.g. the time of the spool record
    /// it was resumed from), so actions take effect after it.
    pub fn with_clock(mut self, at: OffsetDateTime) -> Self {
        self.clock = Some(self.clock.map_or(at, |c| c.max(at)));
        self
    }

    /// The newest time applied: verdicts' times, and the times actions took effect.
    pub fn clock(&self) -> Option<OffsetDateTime> {
        self.clock
    }

    /// How the machine's last alert ended, if it ended while this state was kept.
    pub fn closed(&self) -> Option<&Closed> {
        self.closed.as_ref()
    }

    /// An idle machine whose confirmation window was `window` before a restart (its anomalous
    /// run is not kept: it starts empty).
    pub fn resume_window(machine: MachineId, window: u64) -> Self {
        Self {
            machine,
            recent: window,
            anomalous_run: 0,
            firing: None,
            cause: Cause::Failure,
            clock: None,
            closed: None,
        }
    }

    /// The confirmation window of an idle machine (bit 0: the newest verdict; 1 = AT_RISK);
    /// 0 while firing.
    pub fn window(&self) -> u64 {
        if self.firing.is_some() {
            0
        } else {
            self.recent
        }
    }

    /// The machine.
    pub fn machine(&self) -> &MachineId {
        &self.machine
    }

    /// The firing alert, if any.
    pub fn firing(&self) -> Option<&Firing> {
        self.firing.as_ref()
    }

    /// The firing alert's cause, if one fires.
    pub fn cause(&self) -> Option<Cause> {
        self.firing.as_ref().map(|_| self.cause)
    }

    /// Anomalous verdicts in a row while idle (0 while an alert fires).
    pub fn anomalous_run(&self) -> u32 {
        self.anomalous_run
    }
}

/// A notification the state machine asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The alert started firing.
    Fire {
        /// The new alert's id.
        alert_id: String,
        /// Its level.
        level: Level,
        /// The anomaly alert this failure alert replaces (it resolves with this transition).
        supersedes: Option<Superseded>,
    },
    /// A firing WARNING alert became CRITICAL.
    Escalate {
        /// The alert.
        alert_id: String,
        /// Always WARNING.
        from: Level,
        /// Always CRITICAL.
        to: Level,
    },
    /// A long-firing alert re-notifies.
    Repeat {
        /// The alert.
        alert_id: String,
        /// Its level.
        level: Level,
        /// 1 for the first repeat, then 2, ...
        count: u32,
    },
    /// The alert resolved.
    Resolve {
        /// The alert.
        alert_id: String,
        /// The level it had while firing.
        level: Level,
        /// When it started firing.
        since: OffsetDateTime,
    },
    /// A person acknowledged the alert: it stays open, its repeats stop.
    Acknowledge {
        /// The alert.
        alert_id: String,
        /// Its level.
        level: Level,
        /// Who, when (the action's time) and why.
        ack: Acknowledgement,
    },
    /// A person cleared the alert: it ended without resolving.
    Clear {
        /// The alert.
        alert_id: String,
        /// The level it had while firing.
        level: Level,
        /// When it started firing.
        since: OffsetDateTime,
        /// Who, when (the action's time) and why.
        by: Acknowledgement,
    },
}

/// An anomaly alert that a failure alert replaced (see [`Transition::Fire`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    /// The anomaly alert's id.
    pub alert_id: String,
    /// Its level while firing.
    pub level: Level,
    /// When it started firing.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl Transition {
    /// The alert it is about.
    pub fn alert_id(&self) -> &str {
        match self {
            Self::Fire { alert_id, .. }
            | Self::Escalate { alert_id, .. }
            | Self::Repeat { alert_id, .. }
            | Self::Resolve { alert_id, .. }
            | Self::Acknowledge { alert_id, .. }
            | Self::Clear { alert_id, .. } => alert_id,
        }
    }

    /// The person behind an acknowledgement or a clearing.
    pub fn person(&self) -> Option<&Acknowledgement> {
        match self {
            Self::Acknowledge { ack, .. } => Some(ack),
            Self::Clear { by, .. } => Some(by),
            _ => None,
        }
    }

    /// The alert's level after the transition.
    pub fn level(&self) -> Level {
        match self {
            Self::Fire { level, .. }
            | Self::Repeat { level, .. }
            | Self::Resolve { level, .. }
            | Self::Acknowledge { level, .. }
            | Self::Clear { level, .. } => *level,
            Self::Escalate { to, .. } => *to,
        }
    }

    /// A short, file-name-safe tag, unique within one alert: `firing`, `escalated`,
    /// `repeat-N`, `resolved`, `acknowledged`, `cleared`.
    pub fn tag(&self) -> String {
        match self {
            Self::Fire { .. } => "firing".to_owned(),
            Self::Escalate { .. } => "escalated".to_owned(),
            Self::Repeat { count, .. } => format!("repeat-{count}"),
            Self::Resolve { .. } => "resolved".to_owned(),
            Self::Acknowledge { .. } => "acknowledged".to_owned(),
            Self::Clear { .. } => "cleared".to_owned(),
        }
    }
}

/// The id of `machine`'s failure alert firing at `since`: `{machine}-{YYYYMMDDTHHMMSSmmm}Z`.
/// Only `[A-Za-z0-9_.-]`, so it is safe in file names and Message-IDs.
pub fn alert_id(machine: &MachineId, since: OffsetDateTime) -> String {
    alert_id_for(machine, Cause::Failure, since)
}

/// The id of `machine`'s alert of `cause` firing at `since`: [`alert_id`] for a failure,
/// `{machine}-anomaly-{YYYYMMDDTHHMMSSmmm}Z` for an anomaly ([`Cause::of_alert`] reads it
/// back).
pub fn alert_id_for(machine: &MachineId, cause: Cause, since: OffsetDateTime) -> String {
    let t = since.to_offset(time::UtcOffset::UTC);
    let sep = match cause {
        Cause::Failure => "-",
        Cause::Anomaly => ANOMALY_ID,
    };
    format!(
        "{machine}{sep}{:04}{:02}{:02}T{:02}{:02}{:02}{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Applies one verdict at time `now` to `state`.
///
/// Returns the next state and the notification to send, if any. `cfg` and `anomaly` are
/// assumed valid (see [`LifecycleConfig::validate`], [`AnomalyConfig::validate`]).
pub fn step(
    state: &AlertState,
    verdict: &VerdictInput,
    now: OffsetDateTime,
    cfg: &LifecycleConfig,
    anomaly: &AnomalyConfig,
) -> (AlertState, Option<Transition>) {
    let mut next = state.clone();
    next.clock = Some(next.clock.map_or(now, |c| c.max(now)));
    if verdict.cold {
        return (next, None);
    }
    let transition = match next.firing.take() {
        None => step_idle(&mut next, verdict, now, cfg, anomaly),
        Some(f) if next.cause == Cause::Anomaly => {
            step_anomaly(&mut next, f, verdict, now, cfg, anomaly)
        }
        Some(f) => step_firing(&mut next, f, verdict, now, cfg),
    };
    (next, transition)
}

/// Shifts the verdict into the failure confirmation window; whether the window now holds
/// `confirm_k` AT_RISK verdicts with this one AT_RISK (the failure alert fires).
fn confirm(s: &mut AlertState, v: &VerdictInput, cfg: &LifecycleConfig) -> bool {
    let n = cfg.confirm_n.clamp(1, MAX_CONFIRM_N);
    let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    let at_risk = v.status == RiskStatus::AtRisk;
    s.recent = ((s.recent << 1) | u64::from(at_risk)) & mask;
    at_risk && s.recent.count_ones() >= u32::from(cfg.confirm_k)
}

/// Starts an alert of `cause` at `now`: both windows start over.
fn fire(
    s: &mut AlertState,
    cause: Cause,
    level: Level,
    now: OffsetDateTime,
    supersedes: Option<Superseded>,
) -> Transition {
    let id = alert_id_for(&s.machine, cause, now);
    if cause == Cause::Failure {
        s.recent = 0;
    }
    s.anomalous_run = 0;
    s.cause = cause;
    s.firing = Some(Firing {
        alert_id: id.clone(),
        since: now,
        level,
        last_notified: now,
        repeats: 0,
        healthy_run: 0,
        acknowledged: None,
    });
    Transition::Fire {
        alert_id: id,
        level,
        supersedes,
    }
}

fn step_idle(
    s: &mut AlertState,
    v: &VerdictInput,
    now: OffsetDateTime,
    cfg: &LifecycleConfig,
    anomaly: &AnomalyConfig,
) -> Option<Transition> {
    let confirmed = confirm(s, v, cfg);
    s.anomalous_run = if v.anomalous {
        s.anomalous_run.saturating_add(1)
    } else {
        0
    };
    if confirmed {
        return Some(fire(
            s,
            Cause::Failure,
            v.level.max(Level::Warning),
            now,
            None,
        ));
    }
    if anomaly.enabled() && s.anomalous_run >= anomaly.fire_after {
        return Some(fire(s, Cause::Anomaly, Level::Warning, now, None));
    }
    None
}

/// A firing failure alert: escalate, repeat or resolve.
fn step_firing(
    s: &mut AlertState,
    mut f: Firing,
    v: &VerdictInput,
    now: OffsetDateTime,
    cfg: &LifecycleConfig,
) -> Option<Transition> {
    let healthy = v.status == RiskStatus::Healthy && v.probability < cfg.resolve_below;
    f.healthy_run = if healthy { f.healthy_run + 1 } else { 0 };
    if f.healthy_run >= cfg.resolve_after {
        // Firing stays taken: the machine is idle again with an empty confirmation window.
        s.closed = Some(Closed::Resolved {
            alert_id: f.alert_id.clone(),
        });
        return Some(Transition::Resolve {
            alert_id: f.alert_id,
            level: f.level,
            since: f.since,
        });
    }
    let transition = if v.status == RiskStatus::AtRisk
        && f.level == Level::Warning
        && v.level == Level::Critical
    {
        f.level = Level::Critical;
        f.last_notified = now;
        Some(Transition::Escalate {
            alert_id: f.alert_id.clone(),
            from: Level::Warning,
            to: Level::Critical,
        })
    } else {
        repeat(&mut f, now, cfg)
    };
    s.firing = Some(f);
    transition
}

/// A firing anomaly alert: superseded by a confirmed failure alert, resolved, or repeated.
fn step_anomaly(
    s: &mut AlertState,
    mut f: Firing,
    v: &VerdictInput,
    now: OffsetDateTime,
    cfg: &LifecycleConfig,
    anomaly: &AnomalyConfig,
) -> Option<Transition> {
    if confirm(s, v, cfg) {
        let old = Superseded {
            alert_id: f.alert_id,
            level: f.level,
            since: f.since,
        };
        let level = v.level.max(Level::Warning);
        let t = fire(s, Cause::Failure, level, now, Some(old.clone()));
        s.closed = Some(Closed::Superseded {
            alert_id: old.alert_id,
            by: t.alert_id().to_owned(),
        });
        return Some(t);
    }
    f.healthy_run = if v.anomalous { 0 } else { f.healthy_run + 1 };
    if f.healthy_run >= anomaly.resolve_after {
        // Idle again: the failure window keeps what it counted meanwhile.
        s.cause = Cause::Failure;
        s.closed = Some(Closed::Resolved {
            alert_id: f.alert_id.clone(),
        });
        return Some(Transition::Resolve {
            alert_id: f.alert_id,
            level: f.level,
            since: f.since,
        });
    }
    let transition = repeat(&mut f, now, cfg);
    s.firing = Some(f);
    transition
}

/// The repeat of a firing alert, when `repeat_interval` has passed since it last notified;
/// never for an acknowledged alert.
fn repeat(f: &mut Firing, now: OffsetDateTime, cfg: &LifecycleConfig) -> Option<Transition> {
    if f.acknowledged.is_some() || now - f.last_notified < cfg.repeat_interval {
        return None;
    }
    f.repeats += 1;
    f.last_notified = now;
    Some(Transition::Repeat {
        alert_id: f.alert_id.clone(),
        level: f.level,
        count: f.repeats,
    })
}

/// A person's action on an alert, as the state machine sees it (from a
/// [`dtwin_schema::AlertAction`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionInput {
    /// Acknowledge or clear.
    pub kind: AlertActionKind,
    /// The alert acted on.
    pub alert_id: String,
    /// Who, when (the action's `ts`) and why.
    pub person: Acknowledgement,
}

impl From<&dtwin_schema::AlertAction> for ActionInput {
    fn from(a: &dtwin_schema::AlertAction) -> Self {
        Self {
            kind: a.action,
            alert_id: a.alert_id.clone(),
            person: Acknowledgement {
                by: a.by.clone(),
                at: a.ts,
                comment: a.comment.clone(),
            },
        }
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The alert is not the machine's open alert.
    #[error("{}", not_open(.machine, .alert_id, .open.as_deref(), .closed.as_deref()))]
    NotOpen {
        /// The machine.
        machine: MachineId,
        /// The alert named.
        alert_id: String,
        /// The machine's open alert, if one is.
        open: Option<String>,
        /// How the machine's last alert ended, when that is known.
        closed: Option<Box<Closed>>,
    },
    /// The alert was acknowledged before (by another action).
    #[error(
        "alert {alert_id} was already acknowledged by {} at {}",
        .earlier.by,
        dtwin_schema::time_fmt::format(.earlier.at)
    )]
    AlreadyAcknowledged {
        /// The alert.
        alert_id: String,
        /// The acknowledgement it has.
        earlier: Acknowledgement,
    },
}

fn not_open(
    machine: &MachineId,
    alert_id: &str,
    open: Option<&str>,
    closed: Option<&Closed>,
) -> String {
    let why = match closed {
        Some(c) if c.alert_id() == alert_id => c.to_string(),
        _ => format!("alert {alert_id} is not open"),
    };
    match open {
        Some(open) => format!("{why}; {machine}'s open alert is {open}"),
        None => format!("{why}; {machine} has no open alert"),
    }
}

impl ActionError {
    /// The dead letter's reason: `unknown_alert` or `already_acknowledged`.
    pub fn reason(&self) -> RejectReason {
        match self {
            Self::NotOpen { .. } => RejectReason::UnknownAlert,
            Self::AlreadyAcknowledged { .. } => RejectReason::AlreadyAcknowledged,
        }
    }
}

/// Applies a person's action to `state`. It takes effect just after the newest time the state
/// applied ([`AlertState::clock`]; the action's own time when there is none), so its record
/// and snapshot order after the transition before it whatever the person's clock says.
///
/// Returns the next state and the transition; `None` when the same action was applied
/// before (a redelivery: same alert, by and time).
///
/// # Errors
/// [`ActionError::NotOpen`] when `action.alert_id` is not the machine's firing alert,
/// [`ActionError::AlreadyAcknowledged`] for a second acknowledgement.
pub fn act(
    state: &AlertState,
    action: &ActionInput,
) -> Result<(AlertState, Option<Transition>), ActionError> {
    let p = &action.person;
    let open = state
        .firing
        .as_ref()
        .filter(|f| f.alert_id == action.alert_id);
    let Some(f) = open else {
        let again = matches!(
            (&state.closed, action.kind),
            (Some(Closed::Cleared { alert_id, by, at }), AlertActionKind::Clear)
                if *alert_id == action.alert_id && *by == p.by && *at == p.at
        );
        if again {
            return Ok((state.clone(), None));
        }
        return Err(ActionError::NotOpen {
            machine: state.machine.clone(),
            alert_id: action.alert_id.clone(),
            open: state.firing.as_ref().map(|f| f.alert_id.clone()),
            closed: state.closed.clone().map(Box::new),
        });
    };
    let mut next = state.clone();
    let at = state.clock.map_or(p.at, |c| c + Duration::nanoseconds(1));
    next.clock = Some(at);
    match action.kind {
        AlertActionKind::Acknowledge => {
            if let Some(earlier) = &f.acknowledged {
                if earlier.by == p.by && earlier.at == p.at {
                    return Ok((state.clone(), None));
                }
                return Err(ActionError::AlreadyAcknowledged {
                    alert_id: f.alert_id.clone(),
                    earlier: earlier.clone(),
                });
            }
            let mut f = f.clone();
            f.acknowledged = Some(p.clone());
            let t = Transition::Acknowledge {
                alert_id: f.alert_id.clone(),
                level: f.level,
                ack: p.clone(),
            };
            next.firing = Some(f);
            Ok((next, Some(t)))
        }
        AlertActionKind::Clear => {
            next.firing = None;
            next.cause = Cause::Failure;
            next.recent = 0;
            next.anomalous_run = 0;
            next.closed = Some(Closed::Cleared {
                alert_id: f.alert_id.clone(),
                by: p.by.clone(),
                at: p.at,
            });
            let t = Transition::Clear {
                alert_id: f.alert_id.clone(),
                level: f.level,
                since: f.since,
                by: p.clone(),
            };
            Ok((next, Some(t)))
        }
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
