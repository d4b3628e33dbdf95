//! What the sender does next with the pending records: a pure function of the records, the
//! time, the routing, the silences and what was sent lately.
//!
//! - A record whose machine (or line) a live silence matches is recorded as silenced.
//! - Every other record is routed to recipients ([`Routing`]); records are then handled per
//!   recipient set.
//! - New alerts (firing) wait [`Policy::group_wait`] from the oldest one, so an incident that
//!   trips many machines at once becomes one digest (when at least [`Policy::digest_min`]
//!   fired) listing them by priority, risk x criticality; follow-ups (escalation, repeat,
//!   resolution) go out at once, threaded with their first e-mail.
//! - A recipient set that reached its rate limit waits; what piles up meanwhile goes out as
//!   one digest when the limit allows again. Nothing is dropped.

use crate::channels::{Channel, ChannelError};
use crate::email::MailKind;
use crate::spool::Pending;
use dtwin_schema::{glob_match, Level, MachineId, Silence};
use lettre::message::Mailbox;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use time::{Duration, OffsetDateTime};

/// Where a machine belongs and how much it matters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineInfo {
    /// Machine ids it applies to; `*` matches any run of characters.
    pub machines: Vec<String>,
    /// The production line.
    #[serde(default)]
    pub line: Option<String>,
    /// Weight in digest order (risk x criticality); 1 by default.
    #[serde(default = "one")]
    pub criticality: f64,
}

fn one() -> f64 {
    1.0
}

/// Who gets which alerts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Machine ids (patterns); empty: any.
    #[serde(default)]
    pub machines: Vec<String>,
    /// Lines (patterns); empty: any.
    #[serde(default)]
    pub lines: Vec<String>,
    /// Lowest level routed (WARNING by default: all).
    #[serde(default)]
    pub min_level: Option<Level>,
    /// E-mail recipients (may be empty when the route names channels).
    #[serde(default)]
    pub to: Vec<Mailbox>,
    /// Webhook channels (`[[channel]]` names) that get these alerts too.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// The routing file (TOML), e.g.
///
/// ```toml
/// [[machine]]
/// machines = ["press-*"]
/// line = "line-a"
/// criticality = 3
///
/// [[route]]
/// lines = ["line-a"]
/// min_level = "CRITICAL"
/// to = ["Line A on call <oncall-a@example.com>"]
/// ```
///
/// Every matching route adds its recipients; an alert whose matching routes name no
/// recipient goes to the default recipients (`--mail-to`). Routes may also name webhook
/// channels (`channels = ["oncall"]`, each a `[[channel]]`, see [`crate::channels`]): every
/// matching route's channels get the notification as well.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// Lines and criticality, first match wins.
    #[serde(default, rename = "machine")]
    pub machines: Vec<MachineInfo>,
    /// Routes, all matches apply.
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
    /// Webhook channels (Alertmanager, Slack, Teams, PagerDuty).
    #[serde(default, rename = "channel")]
    pub channels: Vec<Channel>,
}

/// Why a routing file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// Not TOML, or not shaped like a routing file (the message has the line and column).
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// A `[[route]]` (1-based) without recipients or channels.
    #[error("route {0} has no recipients (to = [...]) and no channels (channels = [...])")]
    NoRecipients(usize),
    /// A `[[channel]]` that cannot work, or a route naming an unknown one.
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

impl Routing {
    /// Parses a routing file.
    ///
    /// # Errors
    /// [`RoutingError::Toml`] with its line and column, or [`RoutingError::NoRecipients`].
    pub fn parse(text: &str) -> Result<Self, RoutingError> {
        let r: Self = toml::from_str(text)?;
        if let Some(i) = r
            .routes
            .iter()
            .position(|r| r.to.is_empty() && r.channels.is_empty())
        {
            return Err(RoutingError::NoRecipients(i + 1));
        }
        r.check_channels()?;
        Ok(r)
    }

    /// Adds a channel (`--webhook-url`'s), checking it against the others.
    ///
    /// # Errors
    /// [`ChannelError`]: a bad channel, or one of the same name.
    pub fn add_channel(&mut self, channel: Channel) -> Result<(), ChannelError> {
        self.channels.push(channel);
        let r = self.check_channels();
        if r.is_err() {
            self.channels.pop();
        }
        r
    }

    fn check_channels(&self) -> Result<(), ChannelError> {
        for (i, c) in self.channels.iter().enumerate() {
            c.validate()?;
            if self.channels[..i].iter().any(|o| o.name == c.name) {
                return Err(ChannelError::Duplicate(c.name.clone()));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(name) = r
                .channels
                .iter()
                .find(|n| !self.channels.iter().any(|c| c.name == **n))
            {
                return Err(ChannelError::Unknown {
                    route: i + 1,
                    name: name.clone(),
                });
            }
        }
        Ok(())
    }

    fn info(&self, machine: &str) -> Option<&MachineInfo> {
        self.machines
            .iter()
            .find(|m| m.machines.iter().any(|p| glob_match(p, machine)))
    }

    /// The machine's line, if the file names one.
    pub fn line(&self, machine: &str) -> Option<&str> {
        self.info(machine).and_then(|i| i.line.as_deref())
    }

    /// The machine's criticality (1 unless the file says otherwise).
    pub fn criticality(&self, machine: &str) -> f64 {
        self.info(machine).map_or(1.0, |i| i.criticality)
    }

    /// Recipients of an alert of `level` on `machine`: every matching route's, or `default`.
    pub fn recipients(&self, machine: &str, level: Level, default: &[Mailbox]) -> Vec<Mailbox> {
        let line = self.line(machine);
        let mut to: Vec<Mailbox> = Vec::new();
        for r in &self.routes {
            let machine_ok =
                r.machines.is_empty() || r.machines.iter().any(|p| glob_match(p, machine));
            let line_ok = r.lines.is_empty()
                || line.is_some_and(|l| r.lines.iter().any(|p| glob_match(p, l)));
            let level_ok = r.min_level.is_none_or(|min| level >= min);
            if machine_ok && line_ok && level_ok {
                for m in &r.to {
                    if !to.contains(m) {
                        to.push(m.clone());
                    }
                }
            }
        }
        if to.is_empty() {
            default.to_vec()
        } else {
            to
        }
    }
}

/// Grouping and rate limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// How long new alerts wait for others to join them.
    pub group_wait: Duration,
    /// New alerts in one group from which a digest is sent instead of one e-mail each.
    pub digest_min: usize,
    /// Most e-mails per recipient set per [`Policy::rate_window`] (0: no limit).
    pub rate_limit: usize,
    /// The rate-limit window.
    pub rate_window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            group_wait: Duration::seconds(2),
            digest_min: 3,
            rate_limit: 0,
            rate_window: Duration::hours(1),
        }
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Record as silenced by the silence `silence_id`.
    Silence {
        /// The record.
        name: String,
        /// The silence that matched.
        silence_id: String,
    },
    /// Send one e-mail: the record itself when `names` has one entry, else a digest of them,
    /// highest priority first.
    Send {
        /// Recipients.
        to: Vec<Mailbox>,
        /// Records, in the order the e-mail lists them.
        names: Vec<String>,
    },
}

/// The steps to take now, and when to look again if something waits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// In order.
    pub steps: Vec<Step>,
    /// Earliest time a waiting record becomes due.
    pub wake_at: Option<OffsetDateTime>,
}

/// Recent sends per recipient set, for rate limits. Lives in memory: after a restart the
/// limit starts over.
#[derive(Debug, Clone, Default)]
pub struct SendLog {
    sends: HashMap<String, VecDeque<OffsetDateTime>>,
}

impl SendLog {
    /// Notes an e-mail to `to` at `at`.
    pub fn record(&mut self, to: &[Mailbox], at: OffsetDateTime) {
        self.sends.entry(key(to)).or_default().push_back(at);
    }

    /// Sends to `to` after `since`: how many, and the oldest of them.
    fn since(&self, to: &[Mailbox], since: OffsetDateTime) -> (usize, Option<OffsetDateTime>) {
        let Some(q) = self.sends.get(&key(to)) else {
            return (0, None);
        };
        let mut recent = q.iter().filter(|t| **t > since);
        let oldest = recent.next().copied();
        (oldest.map_or(0, |_| 1 + recent.count()), oldest)
    }

    /// Forgets sends before `before`.
    pub fn forget_before(&mut self, before: OffsetDateTime) {
        for q in self.sends.values_mut() {
            while q.front().is_some_and(|t| *t < before) {
                q.pop_front();
            }
        }
        self.sends.retain(|_, q| !q.is_empty());
    }
}

fn key(to: &[Mailbox]) -> String {
    let mut v: Vec<String> = to.iter().map(ToString::to_string).collect();
    v.sort();
    v.join(", ")
}

/// Plans what to do with `pending` (oldest first) at `now`.
pub fn plan(
    pending: &[Pending],
    now: OffsetDateTime,
    routing: &Routing,
    default_to: &[Mailbox],
    silences: &[Silence],
    policy: &Policy,
    log: &SendLog,
) -> Plan {
    let mut out = Plan::default();
    let wake = |t: OffsetDateTime, out: &mut Plan| {
        out.wake_at = Some(out.wake_at.map_or(t, |w| w.min(t)));
    };
    // Recipient set -> (recipients, records).
    let mut groups: BTreeMap<String, (Vec<Mailbox>, Vec<&Pending>)> = BTreeMap::new();
    for p in pending {
        let m = &p.record.mail;
        let machine = m.machine_id.as_str();
        let line = routing.line(machine);
        if let Some(s) = silences.iter().find(|s| s.matches(machine, line, now)) {
            out.steps.push(Step::Silence {
                name: p.record.name(),
                silence_id: s.silence_id.clone(),
            });
            continue;
        }
        let to = routing.recipients(machine, m.level, default_to);
        groups
            .entry(key(&to))
            .or_insert_with(|| (to, Vec::new()))
            .1
            .push(p);
    }
    for (_, (to, records)) in groups {
        let (fresh, follow_ups): (Vec<&Pending>, Vec<&Pending>) = records
            .into_iter()
            .partition(|p| p.record.mail.kind == MailKind::Firing);
        let oldest_fresh = fresh.iter().map(|p| p.queued).min();
        let fresh_due = oldest_fresh.is_some_and(|t| t + policy.group_wait <= now);
        if let (Some(t), false) = (oldest_fresh, fresh_due) {
            wake(t + policy.group_wait, &mut out);
        }
        let mut mails: Vec<Vec<&Pending>> = follow_ups.into_iter().map(|p| vec![p]).collect();
        if fresh_due {
            if fresh.len() >= policy.digest_min.max(2) {
                mails.push(fresh);
            } else {
                mails.extend(fresh.into_iter().map(|p| vec![p]));
            }
        }
        if mails.is_empty() {
            continue;
        }
        if policy.rate_limit > 0 {
            let (sent, oldest) = log.since(&to, now - policy.rate_window);
            let room = policy.rate_limit.saturating_sub(sent);
            if room < mails.len() {
                if let Some(first) = oldest {
                    wake(first + policy.rate_window, &mut out);
                }
                // Send what fits; the last slot carries everything else as one digest.
                if room == 0 {
                    continue;
                }
                let rest: Vec<&Pending> = mails.drain(room - 1..).flatten().collect();
                mails.push(rest);
            }
        }
        for mut m in mails {
            if m.len() > 1 {
                m.sort_by(|a, b| {
                    let pa = priority(a, routing);
                    let pb = priority(b, routing);
                    pb.total_cmp(&pa)
                        .then_with(|| a.record.name().cmp(&b.record.name()))
                });
            }
            out.steps.push(Step::Send {
                to: to.clone(),
                names: m.iter().map(|p| p.record.name()).collect(),
            });
        }
    }
    out
}

/// Risk x criticality (an anomaly alert's risk is its anomaly score, see
/// [`crate::AlertMail::priority`]).
pub fn priority(p: &Pending, routing: &Routing) -> f64 {
    let m = &p.record.mail;
    m.priority() * routing.criticality(m.machine_id.as_str())
}

/// The machine of a record name's alert id, for logs.
pub fn machine_of(p: &Pending) -> &MachineId {
    &p.record.mail.machine_id
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
