//! Alerts as people act on them (ThingsBoard's states): active and unacknowledged, then
//! acknowledged (who, when, why), then ended: resolved automatically or cleared by hand (who,
//! when, why). [`OpenAlert`] is a machine's open alert as the dashboard knows it (from alert
//! events and the alerter's retained alert state), [`history`] turns the alert log into one
//! [`AlertRecord`] per alert, [`HistoryFilter`] picks some of them and [`csv`] exports them.
//! Pure.

use dtwin_schema::{
    Acknowledgement, AlertActionKind, AlertEvent, AlertEventKind, Firing, Level, MachineId,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::OffsetDateTime;

/// Why an alert fires, from its event's `cause`, else from its id (the alerter names an
/// anomaly alert `{machine}-anomaly-{time}`).
pub fn cause_of(
    machine: &str,
    alert_id: &str,
    cause: Option<dtwin_schema::AlertCause>,
) -> &'static str {
    match cause {
        Some(dtwin_schema::AlertCause::Anomaly) => "anomaly",
        Some(dtwin_schema::AlertCause::Failure) => "failure",
        None => crate::web::alert_cause(machine, alert_id),
    }
}

/// A machine's open alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenAlert {
    /// The alert's id.
    pub alert_id: String,
    /// When it fired.
    pub since: OffsetDateTime,
    /// Its level.
    pub level: Level,
    /// `failure` or `anomaly`.
    pub cause: &'static str,
    /// The latest risk probability (unknown when only the retained state told of it).
    pub probability: Option<f64>,
    /// The alerter's detail.
    pub detail: Option<String>,
    /// Who acknowledged it, when and why.
    pub acknowledged: Option<Acknowledgement>,
}

impl OpenAlert {
    /// From a firing or updated event.
    pub fn from_event(
        a: &AlertEvent,
        since: OffsetDateTime,
        acknowledged: Option<Acknowledgement>,
    ) -> Self {
        Self {
            alert_id: a.alert_id.clone(),
            since,
            level: a.level,
            cause: cause_of(a.machine_id.as_str(), &a.alert_id, a.cause),
            probability: Some(a.probability),
            detail: a.detail.clone(),
            acknowledged,
        }
    }

    /// From the alerter's retained state, keeping what events told of the same alert.
    pub fn from_firing(machine: &str, f: &Firing, known: Option<OpenAlert>) -> Self {
        Self {
            alert_id: f.alert_id.clone(),
            since: f.since,
            level: f.level,
            cause: known
                .as_ref()
                .map_or_else(|| cause_of(machine, &f.alert_id, None), |k| k.cause),
            probability: known.as_ref().and_then(|k| k.probability),
            detail: known.and_then(|k| k.detail),
            acknowledged: f.acknowledged.clone(),
        }
    }
}

/// An action this dashboard sent and the alerter has not confirmed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingAction {
    /// Acknowledge or clear.
    pub action: AlertActionKind,
    /// Who.
    pub by: String,
    /// When it was sent.
    pub at: OffsetDateTime,
}

/// How an alert ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ended {
    /// `resolved` (automatically) or `cleared` (by hand).
    pub how: &'static str,
    /// When.
    pub at: OffsetDateTime,
    /// Who cleared it.
    pub by: Option<String>,
    /// Their comment.
    pub comment: Option<String>,
}

/// One alert from firing to its end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRecord {
    /// The alert's id.
    pub alert_id: String,
    /// The machine.
    pub machine_id: String,
    /// `failure` or `anomaly`.
    pub cause: &'static str,
    /// The highest level it reached.
    pub level: Level,
    /// When it fired (the earliest event kept, when its firing fell off the log).
    pub fired_at: OffsetDateTime,
    /// Its highest risk probability (unknown when only the retained state told of it).
    pub probability: Option<f64>,
    /// The firing's detail.
    pub detail: Option<String>,
    /// Who acknowledged it.
    pub acknowledged: Option<Acknowledgement>,
    /// How it ended, if it did.
    pub ended: Option<Ended>,
}

impl AlertRecord {
    /// `unacknowledged`, `acknowledged`, `resolved` or `cleared`.
    pub fn state(&self) -> &'static str {
        match (&self.ended, &self.acknowledged) {
            (Some(e), _) => e.how,
            (None, Some(_)) => "acknowledged",
            (None, None) => "unacknowledged",
        }
    }

    /// How long it was (or has been, by `now`) open, in seconds.
    pub fn duration_s(&self, now: OffsetDateTime) -> f64 {
        let end = self.ended.as_ref().map_or(now, |e| e.at);
        (end - self.fired_at).as_seconds_f64().max(0.0)
    }
}

/// One record per alert of `log` (newest event first, as the fleet keeps it), plus the open
/// alerts the log does not hold (the alerter's retained state told of them); newest fired
/// first.
pub fn history<'a>(
    log: impl Iterator<Item = &'a AlertEvent>,
    open: &[(&str, &OpenAlert)],
) -> Vec<AlertRecord> {
    let events: Vec<&AlertEvent> = log.collect();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<AlertRecord> = Vec::new();
    for a in events.iter().rev() {
        let i = *by_id.entry(a.alert_id.as_str()).or_insert_with(|| {
            out.push(AlertRecord {
                alert_id: a.alert_id.clone(),
                machine_id: a.machine_id.to_string(),
                cause: cause_of(a.machine_id.as_str(), &a.alert_id, a.cause),
                level: a.level,
                fired_at: a.ts,
                probability: None,
                detail: None,
                acknowledged: None,
                ended: None,
            });
            out.len() - 1
        });
        let r = &mut out[i];
        r.level = r.level.max(a.level);
        match a.event {
            AlertEventKind::Firing => {
                r.fired_at = a.ts;
                r.detail.clone_from(&a.detail);
                r.probability = Some(
                    r.probability
                        .map_or(a.probability, |p| p.max(a.probability)),
                );
            }
            AlertEventKind::Updated => {
                r.probability = Some(
                    r.probability
                        .map_or(a.probability, |p| p.max(a.probability)),
                );
            }
            AlertEventKind::Acknowledged => {
                r.acknowledged = Some(Acknowledgement {
                    by: a.by.clone().unwrap_or_default(),
                    at: a.ts,
                    comment: a.comment.clone().unwrap_or_default(),
                });
            }
            AlertEventKind::Resolved | AlertEventKind::Cleared => {
                let cleared = a.event == AlertEventKind::Cleared;
                r.ended = Some(Ended {
                    how: if cleared { "cleared" } else { "resolved" },
                    at: a.ts,
                    by: if cleared { a.by.clone() } else { None },
                    comment: if cleared { a.comment.clone() } else { None },
                });
            }
            AlertEventKind::Sent | AlertEventKind::Failed | AlertEventKind::Silenced => {}
        }
    }
    for (machine, o) in open {
        match by_id.get(o.alert_id.as_str()) {
            Some(&i) => {
                let r = &mut out[i];
                if r.acknowledged.is_none() {
                    r.acknowledged.clone_from(&o.acknowledged);
                }
            }
            None => out.push(AlertRecord {
                alert_id: o.alert_id.clone(),
                machine_id: (*machine).to_owned(),
                cause: o.cause,
                level: o.level,
                fired_at: o.since,
                probability: o.probability,
                detail: o.detail.clone(),
                acknowledged: o.acknowledged.clone(),
                ended: None,
            }),
        }
    }
    out.sort_by(|a, b| {
        b.fired_at
            .cmp(&a.fired_at)
            .then_with(|| a.alert_id.cmp(&b.alert_id))
    });
    out
}

/// Which alerts the history shows (every field optional; the page's query string).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct HistoryFilter {
    /// Machine id: a part of it, or a pattern with `*`.
    #[serde(default)]
    pub machine: String,
    /// `failure` or `anomaly`.
    #[serde(default)]
    pub cause: String,
    /// `WARNING` or `CRITICAL` (the highest level reached).
    #[serde(default)]
    pub level: String,
    /// `open` (unacknowledged or acknowledged), `unacknowledged`, `acknowledged`, `resolved`,
    /// `cleared` or `ended` (resolved or cleared).
    #[serde(default)]
    pub state: String,
    /// Fired at or after (`2026-11-22T10:00`, UTC, or RFC 3339).
    #[serde(default)]
    pub from: String,
    /// Fired at or before.
    #[serde(default)]
    pub to: String,
}

/// A time as the filter takes it: RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` / `YYYY-MM-DD` in UTC
/// (what a browser's date and time inputs send).
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Some(t);
    }
    use time::macros::format_description as fd;
    let with_time: [&[time::format_description::BorrowedFormatItem<'_>]; 3] = [
        fd!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        fd!("[year]-[month]-[day]T[hour]:[minute]"),
        fd!("[year]-[month]-[day] [hour]:[minute]"),
    ];
    if let Some(t) = with_time
        .iter()
        .find_map(|f| time::PrimitiveDateTime::parse(s, f).ok())
    {
        return Some(t.assume_utc());
    }
    time::Date::parse(s, fd!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc())
}

impl HistoryFilter {
    /// The filter's mistakes, field by field (a bad time is ignored, and said so).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (name, v) in [("from", &self.from), ("to", &self.to)] {
            if !v.trim().is_empty() && parse_time(v).is_none() {
                p.push(format!(
                    "{name} {v:?} is not a time (write 2026-11-22T10:00, UTC)"
                ));
            }
        }
        p
    }

    /// Whether `r` passes.
    pub fn accepts(&self, r: &AlertRecord) -> bool {
        let machine = self.machine.trim();
        let machine_ok = machine.is_empty()
            || if machine.contains('*') {
                dtwin_schema::glob_match(machine, &r.machine_id)
            } else {
                r.machine_id
                    .to_lowercase()
                    .contains(&machine.to_lowercase())
            };
        let cause_ok = self.cause.is_empty() || self.cause == r.cause;
        let level_ok = self.level.is_empty() || self.level == crate::web::level_name(r.level);
        let state = r.state();
        let state_ok = match self.state.as_str() {
            "" => true,
            "open" => r.ended.is_none(),
            "ended" => r.ended.is_some(),
            s => s == state,
        };
        let from_ok = parse_time(&self.from).is_none_or(|t| r.fired_at >= t);
        let to_ok = parse_time(&self.to).is_none_or(|t| r.fired_at <= t);
        machine_ok && cause_ok && level_ok && state_ok && from_ok && to_ok
    }

    /// The filter as a query string (for the CSV link).
    pub fn query(&self) -> String {
        serde_urlencoded(self)
    }
}

fn serde_urlencoded(f: &HistoryFilter) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    [
        ("machine", &f.machine),
        ("cause", &f.cause),
        ("level", &f.level),
        ("state", &f.state),
        ("from", &f.from),
        ("to", &f.to),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}={}", enc(v)))
    .collect::<Vec<_>>()
    .join("&")
}

/// The CSV header of [`csv`].
pub const CSV_HEADER: &str = "alert_id,machine_id,cause,level,state,fired_at,probability,acknowledged_by,acknowledged_at,acknowledgement_comment,ended_at,ended_by,end_comment,duration_s,detail";

/// One CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`, `-`
/// or `@` (a formula to a spreadsheet) is prefixed with `'`.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `records` as CSV (RFC 4180, header first), durations counted to `now` for open alerts.
pub fn csv(records: &[AlertRecord], now: OffsetDateTime) -> String {
    let t = |t: OffsetDateTime| dtwin_schema::time_fmt::format(t);
    let mut out = String::from(CSV_HEADER);
    out.push_str("\r\n");
    for r in records {
        let ack = r.acknowledged.as_ref();
        let end = r.ended.as_ref();
        let cells = [
            r.alert_id.clone(),
            r.machine_id.clone(),
            r.cause.to_owned(),
            crate::web::level_name(r.level).to_owned(),
            r.state().to_owned(),
            t(r.fired_at),
            r.probability
                .map_or_else(String::new, |p| format!("{p:.3}")),
            ack.map_or_else(String::new, |a| a.by.clone()),
            ack.map_or_else(String::new, |a| t(a.at)),
            ack.map_or_else(String::new, |a| a.comment.clone()),
            end.map_or_else(String::new, |e| t(e.at)),
            end.and_then(|e| e.by.clone()).unwrap_or_default(),
            end.and_then(|e| e.comment.clone()).unwrap_or_default(),
            format!("{:.0}", r.duration_s(now)),
            r.detail.clone().unwrap_or_default(),
        ];
        out.push_str(&cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

/// A machine id from a form, checked.
pub fn machine(s: &str) -> Option<MachineId> {
    MachineId::parse(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_795_000_020 + secs).unwrap()
    }

    fn event(machine: &str, id: &str, kind: AlertEventKind, secs: i64) -> AlertEvent {
        AlertEvent {
            schema: dtwin_schema::ALERT_SCHEMA.to_owned(),
            machine_id: MachineId::parse(machine).unwrap(),
            ts: at(secs),
            alert_id: id.to_owned(),
            event: kind,
            level: if secs > 100 {
                Level::Critical
            } else {
                Level::Warning
            },
            probability: 0.5 + secs as f64 / 1000.0,
            actions: vec![],
            detail: (kind == AlertEventKind::Firing)
                .then(|| "risk 0.8, check the bearing".to_owned()),
            cause: None,
            by: matches!(kind, AlertEventKind::Acknowledged | AlertEventKind::Cleared)
                .then(|| "Ana, shift B".to_owned()),
            comment: matches!(kind, AlertEventKind::Acknowledged | AlertEventKind::Cleared)
                .then(|| "=HYPERLINK(\"x\")".to_owned()),
            channel: None,
        }
    }

    /// Newest first, as the fleet keeps them.
    fn log() -> Vec<AlertEvent> {
        use AlertEventKind as K;
        let mut v = vec![
            event("press-1", "press-1-a", K::Firing, 0),
            event("press-1", "press-1-a", K::Sent, 1),
            event("press-1", "press-1-a", K::Acknowledged, 50),
            event("press-1", "press-1-a", K::Updated, 120),
            event("press-1", "press-1-a", K::Cleared, 200),
            event("mill-2", "mill-2-anomaly-b", K::Firing, 300),
            event("mill-2", "mill-2-anomaly-b", K::Resolved, 400),
            event("mill-3", "mill-3-c", K::Firing, 500),
        ];
        v.reverse();
        v
    }

    #[test]
    fn the_log_becomes_one_record_per_alert_with_who_acted() {
        let log = log();
        let h = history(log.iter(), &[]);
        let ids: Vec<&str> = h.iter().map(|r| r.alert_id.as_str()).collect();
        assert_eq!(
            ids,
            ["mill-3-c", "mill-2-anomaly-b", "press-1-a"],
            "newest first"
        );
        let press = &h[2];
        assert_eq!(press.state(), "cleared");
        assert_eq!(press.level, Level::Critical, "the highest level");
        assert_eq!(press.fired_at, at(0));
        assert_eq!(press.acknowledged.as_ref().unwrap().by, "Ana, shift B");
        assert_eq!(
            press.ended.as_ref().unwrap().by.as_deref(),
            Some("Ana, shift B")
        );
        assert_eq!(press.duration_s(at(999)), 200.0);
        assert_eq!((h[1].state(), h[1].cause), ("resolved", "anomaly"));
        assert!(
            h[1].ended.as_ref().unwrap().by.is_none(),
            "resolved by itself"
        );
        assert_eq!(h[0].state(), "unacknowledged");
        assert_eq!(h[0].duration_s(at(560)), 60.0);
    }

    #[test]
    fn open_alerts_the_log_lacks_come_from_the_retained_state() {
        let log = log();
        let o = OpenAlert {
            alert_id: "lathe-9-x".into(),
            since: at(-5000),
            level: Level::Warning,
            cause: "failure",
            probability: None,
            detail: None,
            acknowledged: Some(Acknowledgement {
                by: "Bo".into(),
                at: at(-4000),
                comment: String::new(),
            }),
        };
        let h = history(log.iter(), &[("lathe-9", &o)]);
        let r = h.last().unwrap();
        assert_eq!(
            (r.alert_id.as_str(), r.state()),
            ("lathe-9-x", "acknowledged")
        );
    }

    #[test]
    fn filters_pick_by_machine_cause_level_state_and_time() {
        let log = log();
        let h = history(log.iter(), &[]);
        let pick = |f: HistoryFilter| -> Vec<String> {
            h.iter()
                .filter(|r| f.accepts(r))
                .map(|r| r.alert_id.clone())
                .collect()
        };
        let f = |machine: &str, cause: &str, level: &str, state: &str, from: &str, to: &str| {
            HistoryFilter {
                machine: machine.into(),
                cause: cause.into(),
                level: level.into(),
                state: state.into(),
                from: from.into(),
                to: to.into(),
            }
        };
        assert_eq!(pick(HistoryFilter::default()).len(), 3);
        assert_eq!(pick(f("PRESS", "", "", "", "", "")), ["press-1-a"]);
        assert_eq!(pick(f("m*-2", "", "", "", "", "")), ["mill-2-anomaly-b"]);
        assert_eq!(pick(f("", "anomaly", "", "", "", "")), ["mill-2-anomaly-b"]);
        assert_eq!(
            pick(f("", "", "CRITICAL", "", "", "")),
            ["mill-3-c", "mill-2-anomaly-b", "press-1-a"]
        );
        assert_eq!(pick(f("", "", "", "open", "", "")), ["mill-3-c"]);
        assert_eq!(
            pick(f("", "", "", "ended", "", "")),
            ["mill-2-anomaly-b", "press-1-a"]
        );
        assert_eq!(pick(f("", "", "", "cleared", "", "")), ["press-1-a"]);
        let from = dtwin_schema::time_fmt::format(at(250));
        assert_eq!(
            pick(f("", "", "", "", &from, "")),
            ["mill-3-c", "mill-2-anomaly-b"]
        );
        assert_eq!(
            pick(f("", "", "", "", "", "2026-11-18T11:12")),
            ["mill-2-anomaly-b", "press-1-a"]
        );
        let bad = f("", "", "", "", "yesterday", "");
        assert_eq!(bad.problems().len(), 1);
        assert_eq!(
            pick(bad).len(),
            3,
            "a bad time is ignored, not a filter for nothing"
        );
        assert_eq!(
            parse_time("2026-11-18"),
            Some(time::macros::datetime!(2026-11-18 00:00 UTC))
        );
        assert_eq!(
            f("press 1", "", "", "open", "", "").query(),
            "machine=press%201&state=open"
        );
    }

    #[test]
    fn csv_is_quoted_and_safe_for_spreadsheets() {
        let log = log();
        let h = history(log.iter(), &[]);
        let text = csv(&h, at(600));
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines.len(), 5, "header, three alerts, final line break");
        let press = lines[3];
        assert!(
            press.starts_with("press-1-a,press-1,failure,CRITICAL,cleared,"),
            "{press}"
        );
        assert!(
            press.contains(",\"Ana, shift B\","),
            "a comma is quoted: {press}"
        );
        assert!(
            press.contains(",\"'=HYPERLINK(\"\"x\"\")\","),
            "a formula is defused: {press}"
        );
        assert!(
            press.contains(",200,\"risk 0.8, check the bearing\""),
            "{press}"
        );
        assert!(lines[1].starts_with("mill-3-c,mill-3,failure,CRITICAL,unacknowledged,"));
    }
}
