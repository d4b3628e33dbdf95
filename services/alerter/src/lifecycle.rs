//! The per-machine alert state machine, as one pure function: [`step`] takes the state, a
//! verdict and the time, and returns the next state plus the notification (if any) to send.
//!
//! An alert fires when `confirm_k` of the last `confirm_n` non-cold verdicts are AT_RISK (so a
//! single spike does not page anyone), escalates once from WARNING to CRITICAL, re-notifies
//! every `repeat_interval` while it keeps firing, and resolves only after `resolve_after`
//! consecutive HEALTHY verdicts below `resolve_below` (hysteresis, so a machine hovering at the
//! threshold does not flap). Cold verdicts (too little history to trust) are ignored.

pub use dtwin_schema::Firing;
use dtwin_schema::{Level, MachineId, Risk, RiskStatus};
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
}

impl From<&Risk> for VerdictInput {
    fn from(r: &Risk) -> Self {
        Self {
            status: r.status,
            level: r.level,
            probability: r.probability,
            cold: r.cold,
        }
    }
}

/// One machine's alert state. Start with [`AlertState::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct AlertState {
    machine: MachineId,
    /// Last non-cold verdicts while idle, newest in bit 0 (1 = AT_RISK).
    recent: u64,
    firing: Option<Firing>,
}

impl AlertState {
    /// An idle machine with no history.
    pub fn new(machine: MachineId) -> Self {
        Self {
            machine,
            recent: 0,
            firing: None,
        }
    }

    /// A machine whose alert was firing before a restart (see [`crate::spool`]): the alert
    /// carries on; the confirmation window starts empty.
    pub fn resume(machine: MachineId, firing: Firing) -> Self {
        Self {
            machine,
            recent: 0,
            firing: Some(firing),
        }
    }

    /// An idle machine whose confirmation window was `window` before a restart.
    pub fn resume_window(machine: MachineId, window: u64) -> Self {
        Self {
            machine,
            recent: window,
            firing: None,
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
}

impl Transition {
    /// The alert it is about.
    pub fn alert_id(&self) -> &str {
        match self {
            Self::Fire { alert_id, .. }
            | Self::Escalate { alert_id, .. }
            | Self::Repeat { alert_id, .. }
            | Self::Resolve { alert_id, .. } => alert_id,
        }
    }

    /// The alert's level after the transition.
    pub fn level(&self) -> Level {
        match self {
            Self::Fire { level, .. } | Self::Repeat { level, .. } | Self::Resolve { level, .. } => {
                *level
            }
            Self::Escalate { to, .. } => *to,
        }
    }

    /// A short, file-name-safe tag, unique within one alert: `firing`, `escalated`,
    /// `repeat-N`, `resolved`.
    pub fn tag(&self) -> String {
        match self {
            Self::Fire { .. } => "firing".to_owned(),
            Self::Escalate { .. } => "escalated".to_owned(),
            Self::Repeat { count, .. } => format!("repeat-{count}"),
            Self::Resolve { .. } => "resolved".to_owned(),
        }
    }
}

/// The alert id of `machine` firing at `since`: `{machine}-{YYYYMMDDTHHMMSSmmm}Z`. Only
/// `[A-Za-z0-9_.-]`, so it is safe in file names and Message-IDs.
pub fn alert_id(machine: &MachineId, since: OffsetDateTime) -> String {
    let t = since.to_offset(time::UtcOffset::UTC);
    format!(
        "{machine}-{:04}{:02}{:02}T{:02}{:02}{:02}{:03}Z",
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
/// Returns the next state and the notification to send, if any. `cfg` is assumed valid
/// (see [`LifecycleConfig::validate`]).
pub fn step(
    state: &AlertState,
    verdict: &VerdictInput,
    now: OffsetDateTime,
    cfg: &LifecycleConfig,
) -> (AlertState, Option<Transition>) {
    let mut next = state.clone();
    if verdict.cold {
        return (next, None);
    }
    let transition = match next.firing.take() {
        None => step_idle(&mut next, verdict, now, cfg),
        Some(f) => step_firing(&mut next, f, verdict, now, cfg),
    };
    (next, transition)
}

fn step_idle(
    s: &mut AlertState,
    v: &VerdictInput,
    now: OffsetDateTime,
    cfg: &LifecycleConfig,
) -> Option<Transition> {
    let n = cfg.confirm_n.clamp(1, MAX_CONFIRM_N);
    let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    s.recent = ((s.recent << 1) | u64::from(v.status == RiskStatus::AtRisk)) & mask;
    if v.status != RiskStatus::AtRisk || s.recent.count_ones() < u32::from(cfg.confirm_k) {
        return None;
    }
    let id = alert_id(&s.machine, now);
    let level = v.level.max(Level::Warning);
    s.recent = 0;
    s.firing = Some(Firing {
        alert_id: id.clone(),
        since: now,
        level,
        last_notified: now,
        repeats: 0,
        healthy_run: 0,
    });
    Some(Transition::Fire {
        alert_id: id,
        level,
    })
}

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
    } else if now - f.last_notified >= cfg.repeat_interval {
        f.repeats += 1;
        f.last_notified = now;
        Some(Transition::Repeat {
            alert_id: f.alert_id.clone(),
            level: f.level,
            count: f.repeats,
        })
    } else {
        None
    };
    s.firing = Some(f);
    transition
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
