//! Alert channels beyond e-mail, pure: which webhook channels a notification goes to, and the
//! JSON each one receives.
//!
//! A channel is a `[[channel]]` of the routing file (or `--webhook-url`, a channel called
//! `webhook` that gets every notification) of one kind:
//!
//! - `alertmanager`: Prometheus Alertmanager's webhook format (`version` "4", `status`
//!   firing/resolved, `alerts[]` with labels, annotations, startsAt, endsAt, fingerprint, and
//!   `groupKey`, `receiver`, ...), which the receivers people already run accept;
//! - `slack`: a Slack incoming webhook (`{"text": ...}`);
//! - `teams`: a Microsoft Teams incoming webhook (Workflows): a message with one Adaptive Card;
//! - `pagerduty`: PagerDuty Events API v2: `trigger`, `acknowledge`, `resolve`, with
//!   `dedup_key` = the alert id, so one alert is one PagerDuty alert.
//!
//! Not every notification means something to every kind ([`payload`] returns `None`): an
//! acknowledgement has no Alertmanager status; PagerDuty repeats its own reminders, so repeats
//! are not sent there. Every payload names its delivery (`{alert_id}.{tag}`, also the
//! `X-Dtwin-Delivery-Id` header), and a delivery that may have arrived before (the alerter died
//! or timed out mid-request) is marked `X-Dtwin-Possible-Duplicate: yes` (Slack and Teams:
//! `[possible duplicate]` in the text).
//!
//! URLs and keys are secrets (Slack's and Teams' URLs are their credentials): [`Secret`] never
//! prints them, and [`redact_url`] keeps only the scheme, host and port for logs and events.

use crate::email::{self, AlertMail, MailConfig, MailKind};
use crate::lifecycle::Cause;
use crate::plan::Routing;
use crate::spool::Record;
use dtwin_schema::{glob_match, Level};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// PagerDuty's Events API v2 endpoint, the default URL of a `pagerduty` channel.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The name of the channel `--webhook-url` adds.
pub const WEBHOOK_CHANNEL: &str = "webhook";

/// Header carrying a delivery's id (`{alert_id}.{tag}`): the same notification always has the
/// same id, so a receiver can drop a second copy.
pub const DELIVERY_HEADER: &str = "X-Dtwin-Delivery-Id";

/// Header marking a delivery that may have arrived before.
pub const DUPLICATE_HEADER: &str = email::DUPLICATE_HEADER;

/// A value that never shows in `Debug` output (webhook URLs, routing keys).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What a channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// Prometheus Alertmanager's webhook JSON (version 4).
    Alertmanager,
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams incoming webhook (Adaptive Card).
    Teams,
    /// PagerDuty Events API v2.
    Pagerduty,
}

impl ChannelKind {
    /// `alertmanager`, `slack`, `teams` or `pagerduty`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alertmanager => "alertmanager",
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::Pagerduty => "pagerduty",
        }
    }
}

/// One webhook channel (`[[channel]]` in the routing file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Its name (`[A-Za-z0-9_.-]`, 1-64): routes name it, events and logs show it.
    pub name: String,
    /// What it speaks.
    pub kind: ChannelKind,
    /// Where to POST (a secret; PagerDuty: [`PAGERDUTY_URL`] unless set).
    #[serde(default)]
    pub url: Option<Secret>,
    /// PagerDuty's integration (routing) key (a secret).
    #[serde(default)]
    pub routing_key: Option<Secret>,
    /// Every notification goes here, whatever the routes say (`--webhook-url`'s channel).
    #[serde(default)]
    pub every: bool,
}

/// Why a channel is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// A name that is not `[A-Za-z0-9_.-]{1,64}`.
    #[error("channel name {0:?} must be 1-64 of [A-Za-z0-9_.-]")]
    Name(String),
    /// Two channels of one name.
    #[error("two channels are called {0:?}")]
    Duplicate(String),
    /// No URL (Alertmanager, Slack, Teams).
    #[error("channel {0:?} needs a url")]
    NoUrl(String),
    /// A URL that is not http(s) (shown redacted).
    #[error("channel {name:?}: {url} is not an http:// or https:// URL")]
    BadUrl {
        /// The channel.
        name: String,
        /// Its URL, redacted.
        url: String,
    },
    /// A PagerDuty channel without its routing key.
    #[error("channel {0:?} (pagerduty) needs a routing_key")]
    NoRoutingKey(String),
    /// A route names a channel that is not defined.
    #[error("route {route} names the channel {name:?}, which no [[channel]] defines")]
    Unknown {
        /// The route (1-based).
        route: usize,
        /// The name.
        name: String,
    },
}

impl Channel {
    /// The `--webhook-url` channel: Alertmanager format, every notification.
    pub fn webhook(url: &str) -> Self {
        Self {
            name: WEBHOOK_CHANNEL.to_owned(),
            kind: ChannelKind::Alertmanager,
            url: Some(Secret::new(url)),
            routing_key: None,
            every: true,
        }
    }

    /// Where it POSTs.
    pub fn target(&self) -> &str {
        match (&self.url, self.kind) {
            (Some(u), _) => u.expose(),
            (None, ChannelKind::Pagerduty) => PAGERDUTY_URL,
            (None, _) => "",
        }
    }

    /// For logs and events: `name (kind, scheme://host:port/***)`; never the URL's secrets.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {})",
            self.name,
            self.kind.as_str(),
            redact_url(self.target())
        )
    }

    /// Checks the name, the URL and the key.
    ///
    /// # Errors
    /// [`ChannelError`] naming what is wrong (never the secret itself).
    pub fn validate(&self) -> Result<(), ChannelError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !name_ok {
            return Err(ChannelError::Name(self.name.clone()));
        }
        if self.url.is_none() && self.kind != ChannelKind::Pagerduty {
            return Err(ChannelError::NoUrl(self.name.clone()));
        }
        let url = self.target();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 9 {
            return Err(ChannelError::BadUrl {
                name: self.name.clone(),
                url: redact_url(url),
            });
        }
        if self.kind == ChannelKind::Pagerduty
            && self.routing_key.as_ref().is_none_or(|k| k.0.is_empty())
        {
            return Err(ChannelError::NoRoutingKey(self.name.clone()));
        }
        Ok(())
    }
}

/// `scheme://host[:port]`, plus `/***` when the URL had a path or query: the user info, path
/// and query (where webhook URLs keep their tokens) never show.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let more = if tail.trim_matches('/').is_empty() {
        ""
    } else {
        "/***"
    };
    format!("{scheme}://{host}{more}")
}

/// The channels `record` goes to: every `every` channel and those of every route that matches
/// its machine, line and level, that have something to say about it ([`payload`] is `Some`).
pub fn targets<'a>(routing: &'a Routing, record: &Record) -> Vec<&'a Channel> {
    let m = &record.mail;
    let machine = m.machine_id.as_str();
    let line = routing.line(machine);
    let mut names: Vec<&str> = Vec::new();
    for r in &routing.routes {
        let machine_ok = r.machines.is_empty() || r.machines.iter().any(|p| glob_match(p, machine));
        let line_ok =
            r.lines.is_empty() || line.is_some_and(|l| r.lines.iter().any(|p| glob_match(p, l)));
        let level_ok = r.min_level.is_none_or(|min| m.level >= min);
        if machine_ok && line_ok && level_ok {
            names.extend(r.channels.iter().map(String::as_str));
        }
    }
    routing
        .channels
        .iter()
        .filter(|c| c.every || names.contains(&c.name.as_str()))
        .filter(|c| speaks(c.kind, m.kind))
        .collect()
}

/// Whether a channel of `kind` has anything to say about a notification of `mail`.
pub fn speaks(kind: ChannelKind, mail: MailKind) -> bool {
    match kind {
        // No acknowledged state in Alertmanager's format.
        ChannelKind::Alertmanager => mail != MailKind::Acknowledged,
        // PagerDuty re-notifies on its own schedule.
        ChannelKind::Pagerduty => mail != MailKind::Repeat,
        ChannelKind::Slack | ChannelKind::Teams => true,
    }
}

/// What a payload needs besides the record.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// Subject prefix (the mail's).
    pub mail: &'a MailConfig,
    /// The machine's line, if the routing file names one.
    pub line: Option<&'a str>,
    /// A send of this delivery may have arrived before.
    pub possible_duplicate: bool,
}

/// The delivery id of a record: `{alert_id}.{tag}`.
pub fn delivery_id(record: &Record) -> String {
    record.name()
}

/// The JSON `channel` receives for `record`, or `None` when it has nothing to say about it.
pub fn payload(channel: &Channel, record: &Record, ctx: &Context) -> Option<Value> {
    let m = &record.mail;
    if !speaks(channel.kind, m.kind) {
        return None;
    }
    Some(match channel.kind {
        ChannelKind::Alertmanager => alertmanager(channel, record, ctx),
        ChannelKind::Slack => json!({ "text": text(record, ctx) }),
        ChannelKind::Teams => teams(record, ctx),
        ChannelKind::Pagerduty => pagerduty(channel, record, ctx),
    })
}

/// `firing` or `resolved` (resolved and cleared alerts).
fn status(kind: MailKind) -> &'static str {
    match kind {
        MailKind::Resolved | MailKind::Cleared => "resolved",
        _ => "firing",
    }
}

/// When the alert started firing, read from its id (`...-YYYYMMDDTHHMMSSmmmZ`); the mail's
/// time if the id has another shape.
pub fn since(m: &AlertMail) -> OffsetDateTime {
    let id = &m.alert_id;
    let parse = || -> Option<OffsetDateTime> {
        let s = id.get(id.len().checked_sub(19)?..)?;
        let n = |a: usize, b: usize| s.get(a..b)?.parse::<u32>().ok();
        let date = time::Date::from_calendar_date(
            i32::try_from(n(0, 4)?).ok()?,
            time::Month::try_from(u8::try_from(n(4, 6)?).ok()?).ok()?,
            u8::try_from(n(6, 8)?).ok()?,
        )
        .ok()?;
        let t = time::Time::from_hms_milli(
            u8::try_from(n(9, 11)?).ok()?,
            u8::try_from(n(11, 13)?).ok()?,
            u8::try_from(n(13, 15)?).ok()?,
            u16::try_from(n(15, 18)?).ok()?,
        )
        .ok()?;
        (s.as_bytes()[8] == b'T' && s.ends_with('Z')).then(|| date.with_time(t).assume_utc())
    };
    parse().unwrap_or(m.ts)
}

/// 16 hex digits identifying the alert (FNV-1a of its id), like Alertmanager's fingerprints.
pub fn fingerprint(alert_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in alert_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn rfc3339(t: OffsetDateTime) -> String {
    dtwin_schema::time_fmt::format(t)
}

fn summary(record: &Record, ctx: &Context) -> String {
    let subject = email::subject(&record.mail, ctx.mail);
    if ctx.possible_duplicate {
        format!("[possible duplicate] {subject}")
    } else {
        subject
    }
}

fn actions_line(m: &AlertMail) -> String {
    m.actions
        .iter()
        .map(|a| format!("[{}] {}", a.severity.as_str(), a.text))
        .collect::<Vec<_>>()
        .join("; ")
}

fn alertmanager(channel: &Channel, record: &Record, ctx: &Context) -> Value {
    let m = &record.mail;
    let status = status(m.kind);
    let alertname = match m.cause {
        Cause::Failure => "DtwinMachineAtRisk",
        Cause::Anomaly => "DtwinMachineAnomaly",
    };
    let mut labels = json!({
        "alertname": alertname,
        "machine_id": m.machine_id.as_str(),
        "alert_id": m.alert_id,
        "severity": m.level.as_str().to_ascii_lowercase(),
        "cause": m.cause.as_str(),
    });
    if let Some(line) = ctx.line {
        labels["line"] = json!(line);
    }
    let mut annotations = json!({
        "summary": email::subject(m, ctx.mail),
        "description": actions_line(m),
        "probability": format!("{:.3}", m.probability),
        "notification": m.tag,
        "delivery_id": delivery_id(record),
    });
    if let Some(p) = &m.acted {
        annotations["cleared_by"] = json!(p.by);
        if !p.comment.is_empty() {
            annotations["comment"] = json!(p.comment);
        }
    }
    if let Some(score) = m.insights.anomaly {
        annotations["anomaly_score"] = json!(format!("{score:.3}"));
    }
    let ends = if status == "resolved" {
        rfc3339(m.ts)
    } else {
        "0001-01-01T00:00:00Z".to_owned()
    };
    let dashboard = m.dashboard_url.clone().unwrap_or_default();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alert_id=\"{}\"}}", m.alert_id),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": channel.name,
        "groupLabels": { "alert_id": m.alert_id },
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": dashboard,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(since(m)),
            "endsAt": ends,
            "generatorURL": dashboard,
            "fingerprint": fingerprint(&m.alert_id),
        }],
    })
}

/// Slack's text: the subject in bold, what to do, who acted, the dashboard link.
fn text(record: &Record, ctx: &Context) -> String {
    let m = &record.mail;
    let mut out = format!("*{}*", summary(record, ctx));
    if let Some(p) = &m.acted {
        out.push_str(&format!("\n{} by {}", verb(m.kind), p.by));
        if !p.comment.is_empty() {
            out.push_str(&format!(": {}", p.comment));
        }
    }
    let actions = actions_line(m);
    if !actions.is_empty() && m.kind != MailKind::Resolved && m.kind != MailKind::Cleared {
        out.push_str(&format!("\nActions: {actions}"));
    }
    out.push_str(&format!("\nAlert {} ({})", m.alert_id, delivery_id(record)));
    if let Some(url) = &m.dashboard_url {
        out.push_str(&format!("\n{url}"));
    }
    out
}

fn verb(kind: MailKind) -> &'static str {
    if kind == MailKind::Cleared {
        "Cleared"
    } else {
        "Acknowledged"
    }
}

fn teams(record: &Record, ctx: &Context) -> Value {
    let m = &record.mail;
    let colour = match (m.kind, m.level) {
        (MailKind::Resolved | MailKind::Cleared, _) => "Good",
        (MailKind::Acknowledged, _) => "Default",
        (_, Level::Critical) => "Attention",
        _ => "Warning",
    };
    let mut facts = vec![
        json!({"title": "Machine", "value": m.machine_id.as_str()}),
        json!({"title": "Level", "value": m.level.as_str()}),
        json!({"title": "Risk", "value": email::percent(m.probability)}),
        json!({"title": "Alert", "value": m.alert_id}),
        json!({"title": "Delivery", "value": delivery_id(record)}),
    ];
    if let Some(p) = &m.acted {
        facts.push(json!({"title": verb(m.kind), "value": p.by}));
        if !p.comment.is_empty() {
            facts.push(json!({"title": "Comment", "value": p.comment}));
        }
    }
    let mut body = vec![
        json!({"type": "TextBlock", "text": summary(record, ctx), "weight": "Bolder",
               "size": "Medium", "wrap": true, "color": colour}),
        json!({"type": "FactSet", "facts": facts}),
    ];
    let actions = actions_line(m);
    if !actions.is_empty() {
        body.push(json!({"type": "TextBlock", "text": actions, "wrap": true}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(url) = &m.dashboard_url {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Dashboard", "url": url}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

fn pagerduty(channel: &Channel, record: &Record, ctx: &Context) -> Value {
    let m = &record.mail;
    let action = match m.kind {
        MailKind::Acknowledged => "acknowledge",
        MailKind::Resolved | MailKind::Cleared => "resolve",
        _ => "trigger",
    };
    let key = channel.routing_key.as_ref().map_or("", Secret::expose);
    let mut event = json!({
        "routing_key": key,
        "event_action": action,
        "dedup_key": m.alert_id,
        "client": "dtwin",
    });
    if action == "trigger" {
        let mut details = json!({
            "probability": m.probability,
            "level": m.level.as_str(),
            "cause": m.cause.as_str(),
            "notification": m.tag,
            "delivery_id": delivery_id(record),
            "actions": actions_line(m),
        });
        if let Some(line) = ctx.line {
            details["line"] = json!(line);
        }
        let summary: String = summary(record, ctx).chars().take(1024).collect();
        event["payload"] = json!({
            "summary": summary,
            "source": m.machine_id.as_str(),
            "severity": if m.level == Level::Critical { "critical" } else { "warning" },
            "timestamp": rfc3339(m.ts),
            "component": m.machine_id.as_str(),
            "group": ctx.line.or(m.profile.as_deref()).unwrap_or("milling"),
            "class": m.cause.as_str(),
            "custom_details": details,
        });
    }
    if let Some(url) = &m.dashboard_url {
        event["client_url"] = json!(url);
        event["links"] = json!([{"href": url, "text": "dtwin dashboard"}]);
    }
    event
}

#[cfg(test)]
#[path = "channels_tests.rs"]
mod tests;
