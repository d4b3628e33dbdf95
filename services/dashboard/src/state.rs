//! What the dashboard knows of the fleet, built from the messages on the bus. Pure: the MQTT
//! task feeds it decoded messages, the web handlers read snapshots.
//!
//! Memory is bounded: per machine a ring of [`TREND_POINTS`] recent points, and at most
//! [`ALERT_LOG`] alert events in all.
//!
//! Rows name each machine's profile and show its latest readings with the profile's labels
//! and units ([`crate::profiles`]), so a plant's pumps read as pumps, not as sensor keys.
//! A verdict that carries the profile's other models (quality risk, anomaly, remaining useful
//! life) gives its row badges for them ([`crate::insights`]); a page none of whose rows has
//! any says so ([`Snapshot::insights`]), and the table leaves that column out.
//!
//! Lines and criticality come from the routing file ([`Routes`]), never from ids. Each row
//! carries a sparkline of its recent risk and how long ago the machine was last heard from;
//! the fleet keeps, per minute of the last hour, the peak number of machines AT RISK, and
//! when each machine was last AT RISK ([`Snapshot::hour`]).

use crate::alerts::{OpenAlert, PendingAction};
use crate::insights::{badges, Badge};
use crate::profiles::{readings, Profiles, Reading};
use crate::routes::Routes;
use dtwin_schema::{AlertEvent, Level, MachineStatus, Presence, Risk, RiskStatus, Telemetry};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use time::OffsetDateTime;

/// Recent points kept per machine for the trend charts.
pub const TREND_POINTS: usize = 240;
/// Alert events kept for the alert log and history (each alert makes a few: fired, sent,
/// acknowledged, resolved...).
pub const ALERT_LOG: usize = 5000;
/// Rows per page of the fleet view.
pub const PAGE_ROWS: usize = 50;
/// Risk points in a row's sparkline.
pub const SPARK_POINTS: usize = 40;
/// Minutes of status history kept (the fleet view's last hour).
pub const HISTORY_MINUTES: usize = 60;

/// One point of a machine's trend.
#[derive(Debug, Clone, Serialize)]
pub struct TrendPoint {
    /// When (telemetry or verdict time).
    pub ts: OffsetDateTime,
    /// Risk probability at that time, when a verdict came.
    pub risk: Option<f64>,
    /// Sensor values of the telemetry, when a reading came.
    pub sensors: Vec<(String, f64)>,
    /// What the verdict's other models said, when it carried any (boxed: most points have
    /// none, and a machine keeps [`TREND_POINTS`] of them).
    pub insights: Option<Box<TrendInsights>>,
}

/// The other models' figures at one point of a machine's trend.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TrendInsights {
    /// Quality (NOK) risk, 0..1.
    pub quality: Option<f64>,
    /// Anomaly score, 0..1.
    pub anomaly: Option<f64>,
    /// Remaining useful life, in `rul_unit`.
    pub rul: Option<f64>,
    /// The unit of `rul`.
    pub rul_unit: Option<String>,
}

/// What the fleet view shows of one machine.
#[derive(Debug, Clone, Default)]
pub struct MachineView {
    /// The latest verdict.
    pub risk: Option<Risk>,
    /// The latest reading.
    pub telemetry: Option<Telemetry>,
    /// Online / offline.
    pub presence: Option<Presence>,
    /// Last message of any kind.
    pub last_update: Option<OffsetDateTime>,
    /// Recent readings and verdicts.
    pub trend: VecDeque<TrendPoint>,
    /// The latest firing or updated event of the active alert, if one is firing.
    pub alert: Option<AlertEvent>,
    /// The open alert with its acknowledgement (from alert events and the alerter's retained
    /// alert state).
    pub open: Option<OpenAlert>,
    /// An action this dashboard sent on the open alert that the alerter has not confirmed yet.
    pub pending: Option<PendingAction>,
    /// When the dashboard last heard from it (its own clock: a machine's timestamps may be
    /// plant time).
    pub last_seen: Option<OffsetDateTime>,
    /// The last verdict time it was AT RISK.
    pub last_at_risk: Option<OffsetDateTime>,
}

impl MachineView {
    fn push(&mut self, p: TrendPoint) {
        if self.trend.len() == TREND_POINTS {
            self.trend.pop_front();
        }
        self.trend.push_back(p);
    }
}

/// The fleet's statuses in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusMinute {
    /// Unix time of the minute's start, in minutes.
    pub minute: i64,
    /// The most machines AT RISK at once during the minute.
    pub at_risk: usize,
    /// Machines HEALTHY at the minute's last verdict.
    pub healthy: usize,
    /// Machines AT RISK at the minute's last verdict (what a quiet minute after it shows).
    #[serde(skip)]
    pub at_risk_end: usize,
}

/// The whole fleet.
#[derive(Debug, Default)]
pub struct Fleet {
    machines: HashMap<String, MachineView>,
    alerts: VecDeque<AlertEvent>,
    version: u64,
    /// Machines AT RISK and HEALTHY now (kept as verdicts arrive, not counted per page).
    at_risk: usize,
    healthy: usize,
    /// The minutes with a verdict in the last [`HISTORY_MINUTES`] (and the one before them),
    /// oldest first.
    minutes: VecDeque<StatusMinute>,
    /// The newest time of any message (the clock of snapshots that are not given one).
    newest: Option<OffsetDateTime>,
}

/// What the fleet view needs besides the fleet: labels, lines, and the time now.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The machine profiles known.
    pub profiles: &'a Profiles,
    /// Lines and criticality.
    pub routes: &'a Routes,
    /// Now (relative times and the last hour count from it).
    pub now: OffsetDateTime,
}

/// The last hour of the fleet.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Hour {
    /// Machines that were AT RISK at some verdict in the last hour.
    pub were_at_risk: usize,
    /// Machines with a verdict that stayed HEALTHY all hour.
    pub stayed_healthy: usize,
    /// Per minute, oldest first, the last [`HISTORY_MINUTES`] minutes (a minute without
    /// verdicts repeats the one before).
    pub minutes: Vec<StatusMinute>,
    /// The most machines AT RISK at once.
    pub peak_at_risk: usize,
    /// Alerts that fired in the last hour.
    pub fired: usize,
    /// Alerts acknowledged in the last hour.
    pub acknowledged: usize,
    /// Alerts that ended in the last hour (resolved or cleared).
    pub ended: usize,
}

/// A row of the fleet table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// Machine id.
    pub machine_id: String,
    /// Its production line from the routing file (empty when the file does not say).
    pub line: String,
    /// Its criticality from the routing file.
    pub criticality: Option<f64>,
    /// HEALTHY / AT_RISK / UNKNOWN (no verdict yet).
    pub status: String,
    /// NORMAL / WARNING / CRITICAL.
    pub level: String,
    /// Risk probability.
    pub probability: Option<f64>,
    /// Health score 0-100.
    pub health: Option<f64>,
    /// Last heard from (RFC 3339).
    pub last_update: Option<String>,
    /// Seconds since then, at the snapshot's time.
    pub age_s: Option<f64>,
    /// The same for people: `4 s ago`.
    pub ago: String,
    /// When, for people (to the second, UTC): `2026-11-22 10:00:04 UTC`.
    pub heard_at: String,
    /// Its recent risk probabilities, oldest first (at most [`SPARK_POINTS`]).
    pub spark: Vec<f64>,
    /// Online / offline.
    pub online: Option<bool>,
    /// The machine's profile label (from its latest verdict; empty before one).
    pub profile: String,
    /// The latest readings with the profile's labels and units, in its sensor order.
    pub readings: Vec<Reading>,
    /// The latest verdict's other models: quality risk, anomaly, remaining life (empty when
    /// it carried none).
    pub insights: Vec<Badge>,
}

/// A page of the fleet, with totals: what the server pushes to browsers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    /// Change counter: a browser skips a snapshot it already has.
    pub version: u64,
    /// Machines known.
    pub machines: usize,
    /// Machines AT_RISK.
    pub at_risk: usize,
    /// Machines HEALTHY.
    pub healthy: usize,
    /// Machines matching the filter.
    pub matching: usize,
    /// Page shown (from 0) and page count.
    pub page: usize,
    /// Pages of the filtered list.
    pub pages: usize,
    /// The rows of this page, riskiest first.
    pub rows: Vec<Row>,
    /// Known lines, for the filter.
    pub lines: Vec<String>,
    /// Whether any row of this page has [`Row::insights`] (the table shows their column).
    pub insights: bool,
    /// Whether the routing file gives any machine a criticality (the table shows the column).
    pub criticality: bool,
    /// The snapshot's time (RFC 3339): a browser counts relative times on from it.
    pub now: String,
    /// The last hour.
    pub hour: Hour,
}

/// Which machines a view shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Filter {
    /// `AT_RISK`, `HEALTHY`, or empty for all.
    #[serde(default)]
    pub status: String,
    /// A line, or empty for all.
    #[serde(default)]
    pub line: String,
    /// Page, from 0.
    #[serde(default)]
    pub page: usize,
}

impl Row {
    /// The sparkline's points in a 100 x 24 box (risk 0 at the bottom, 1 at the top).
    pub fn spark_points(&self) -> String {
        spark_points(&self.spark)
    }
}

/// `x,y` points of `values` (0..1) across a 100 x 24 box, oldest on the left.
pub fn spark_points(values: &[f64]) -> String {
    let n = values.len().max(2) - 1;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                100.0 * i as f64 / n as f64,
                23.0 - 22.0 * v.clamp(0.0, 1.0)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Hour {
    /// The minutes as bars in a 240 x 40 box: the fleet with a verdict in grey, the machines
    /// AT RISK in red over it.
    pub fn bars_svg(&self) -> String {
        let most = self
            .minutes
            .iter()
            .map(|m| m.at_risk + m.healthy)
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let w = 240.0 / self.minutes.len().max(1) as f64;
        let mut out = String::new();
        for (i, m) in self.minutes.iter().enumerate() {
            let x = i as f64 * w;
            let all = 38.0 * (m.at_risk + m.healthy) as f64 / most;
            let risky = 38.0 * m.at_risk as f64 / most;
            out.push_str(&format!(
                "<rect class=\"all\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{all:.1}\"/><rect class=\"risky\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{risky:.1}\"/>",
                40.0 - all,
                (w - 0.5).max(0.5),
                40.0 - risky,
                (w - 0.5).max(0.5),
            ));
        }
        out
    }
}

/// How long ago, for people: `just now`, `4 s ago`, `3 min ago`, `2 h ago`, `3 days ago`.
pub fn ago(secs: f64) -> String {
    if !secs.is_finite() {
        return String::new();
    }
    let s = secs.max(0.0);
    if s < 1.0 {
        "just now".to_owned()
    } else if s < 120.0 {
        format!("{} s ago", s.floor())
    } else if s < 7200.0 {
        format!("{} min ago", (s / 60.0).floor())
    } else if s < 172_800.0 {
        format!("{} h ago", (s / 3600.0).floor())
    } else {
        format!("{} days ago", (s / 86_400.0).floor())
    }
}

/// `2026-11-22 10:00:04 UTC`.
pub fn clock(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn minute_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(60)
}

fn status_name(s: RiskStatus) -> &'static str {
    match s {
        RiskStatus::Healthy => "HEALTHY",
        RiskStatus::AtRisk => "AT_RISK",
    }
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Normal => "NORMAL",
        Level::Warning => "WARNING",
        Level::Critical => "CRITICAL",
    }
}

fn sensors(t: &Telemetry) -> Vec<(String, f64)> {
    [
        ("temperature_c", t.temperature_c),
        ("vibration_mm_s", t.vibration_mm_s),
        ("pressure_bar", t.pressure_bar),
        ("spindle_rpm", t.spindle_rpm),
        ("tool_wear_min", t.tool_wear_min),
        ("torque_nm", t.torque_nm),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.map(|v| (n.to_owned(), v)))
    .collect()
}

impl Fleet {
    /// Change counter, bumped by every applied message.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// One machine, if known.
    pub fn machine(&self, id: &str) -> Option<&MachineView> {
        self.machines.get(id)
    }

    /// Any message about `machine` arrived at `now` (the dashboard's clock).
    pub fn seen(&mut self, machine: &str, now: OffsetDateTime) {
        if let Some(m) = self.machines.get_mut(machine) {
            m.last_seen = Some(now);
        }
        self.newest = self.newest.max(Some(now));
    }

    /// A reading arrived.
    pub fn telemetry(&mut self, t: Telemetry) {
        let m = self.machines.entry(t.machine_id.to_string()).or_default();
        m.last_update = Some(t.ts);
        m.push(TrendPoint {
            ts: t.ts,
            risk: None,
            sensors: sensors(&t),
            insights: None,
        });
        m.telemetry = Some(t);
        self.version += 1;
    }

    /// A verdict arrived.
    pub fn risk(&mut self, r: Risk) {
        let m = self.machines.entry(r.machine_id.to_string()).or_default();
        m.last_update = Some(r.ts);
        // Another profile's readings reach the dashboard only through its verdicts (its
        // telemetry is keyed by the profile's payload keys); milling's come with telemetry.
        let sensors = match r.profile.as_deref() {
            Some(p) if p != crate::profiles::MILLING => {
                r.latest.iter().map(|(k, v)| (k.clone(), *v)).collect()
            }
            _ => Vec::new(),
        };
        let i = &r.insights;
        let insights =
            (i.quality_risk.is_some() || i.anomaly.is_some() || i.rul.is_some()).then(|| {
                Box::new(TrendInsights {
                    quality: i.quality_risk,
                    anomaly: i.anomaly,
                    rul: i.rul.as_ref().map(|x| x.value),
                    rul_unit: i.rul.as_ref().map(|x| x.unit.clone()),
                })
            });
        m.push(TrendPoint {
            ts: r.source_ts,
            risk: Some(r.probability),
            sensors,
            insights,
        });
        let before = m.risk.as_ref().map(|x| x.status);
        if r.status == RiskStatus::AtRisk {
            m.last_at_risk = Some(r.ts);
        }
        let (ts, now) = (r.ts, r.status);
        m.risk = Some(r);
        for (status, delta) in [(before, -1isize), (Some(now), 1)] {
            let counter = match status {
                Some(RiskStatus::AtRisk) => &mut self.at_risk,
                Some(RiskStatus::Healthy) => &mut self.healthy,
                None => continue,
            };
            *counter = counter.saturating_add_signed(delta);
        }
        self.count_minute(ts);
        self.newest = self.newest.max(Some(ts));
        self.version += 1;
    }

    /// Records the statuses now in the minute of `ts`.
    fn count_minute(&mut self, ts: OffsetDateTime) {
        let minute = minute_of(ts);
        match self.minutes.back_mut() {
            Some(last) if last.minute == minute => {
                last.at_risk = last.at_risk.max(self.at_risk);
                last.at_risk_end = self.at_risk;
                last.healthy = self.healthy;
            }
            // A late verdict of an earlier minute: the minute it lands in is already counted.
            Some(last) if last.minute > minute => {}
            _ => {
                self.minutes.push_back(StatusMinute {
                    minute,
                    at_risk: self.at_risk,
                    healthy: self.healthy,
                    at_risk_end: self.at_risk,
                });
                // The newest minute before the hour stays: quiet minutes after it repeat it.
                while self
                    .minutes
                    .get(1)
                    .is_some_and(|f| f.minute <= minute - HISTORY_MINUTES as i64)
                {
                    self.minutes.pop_front();
                }
            }
        }
    }

    /// The last hour before `now`.
    pub fn hour(&self, now: OffsetDateTime) -> Hour {
        let end = minute_of(now);
        let start = end - HISTORY_MINUTES as i64 + 1;
        let mut minutes = Vec::with_capacity(HISTORY_MINUTES);
        let mut carried = self
            .minutes
            .iter()
            .rev()
            .find(|m| m.minute < start)
            .copied()
            .unwrap_or_default();
        let mut known = self.minutes.iter().filter(|m| m.minute >= start).peekable();
        for minute in start..=end {
            match known.next_if(|m| m.minute == minute) {
                Some(m) => {
                    carried = *m;
                    minutes.push(*m);
                }
                // No verdict this minute: the statuses stay as the last one left them.
                None => minutes.push(StatusMinute {
                    minute,
                    at_risk: carried.at_risk_end,
                    ..carried
                }),
            }
        }
        let hour_ago = now - time::Duration::hours(1);
        let were_at_risk = self
            .machines
            .values()
            .filter(|m| m.last_at_risk.is_some_and(|t| t > hour_ago))
            .count();
        let with_verdict = self.machines.values().filter(|m| m.risk.is_some()).count();
        let recent = self.alerts.iter().take_while(|a| a.ts > hour_ago);
        let (mut fired, mut acknowledged, mut ended) = (0, 0, 0);
        for a in recent {
            use dtwin_schema::AlertEventKind as K;
            match a.event {
                K::Firing => fired += 1,
                K::Acknowledged => acknowledged += 1,
                k if k.closes() => ended += 1,
                _ => {}
            }
        }
        Hour {
            were_at_risk,
            stayed_healthy: with_verdict - were_at_risk.min(with_verdict),
            peak_at_risk: minutes.iter().map(|m| m.at_risk).max().unwrap_or(0),
            minutes,
            fired,
            acknowledged,
            ended,
        }
    }

    /// A presence change arrived.
    pub fn status(&mut self, s: MachineStatus) {
        let m = self.machines.entry(s.machine_id.to_string()).or_default();
        m.presence = Some(s.state);
        self.version += 1;
    }

    /// An alert event arrived.
    pub fn alert(&mut self, a: AlertEvent) {
        let m = self.machines.entry(a.machine_id.to_string()).or_default();
        use dtwin_schema::AlertEventKind as K;
        let same = |m: &MachineView| m.open.as_ref().is_some_and(|o| o.alert_id == a.alert_id);
        match a.event {
            // A close of another alert (one this alert superseded) leaves this one open.
            k if k.closes() && (m.open.is_none() || same(m)) => {
                m.alert = None;
                m.open = None;
                m.pending = None;
            }
            K::Firing | K::Updated => {
                let acknowledged = if same(m) {
                    m.open.as_ref().and_then(|o| o.acknowledged.clone())
                } else {
                    m.pending = None;
                    None
                };
                let since = m
                    .open
                    .as_ref()
                    .filter(|_| same(m))
                    .map_or(a.ts, |o| o.since);
                m.open = Some(OpenAlert::from_event(&a, since, acknowledged));
                m.alert = Some(a.clone());
            }
            K::Acknowledged => {
                if let Some(o) = m.open.as_mut().filter(|o| o.alert_id == a.alert_id) {
                    o.acknowledged = Some(dtwin_schema::Acknowledgement {
                        by: a.by.clone().unwrap_or_default(),
                        at: a.ts,
                        comment: a.comment.clone().unwrap_or_default(),
                    });
                    if m.pending
                        .as_ref()
                        .is_some_and(|p| p.action == dtwin_schema::AlertActionKind::Acknowledge)
                    {
                        m.pending = None;
                    }
                }
            }
            _ => {}
        }
        if self.alerts.len() == ALERT_LOG {
            self.alerts.pop_back();
        }
        self.alerts.push_front(a);
        self.version += 1;
    }

    /// Alert events, newest first.
    pub fn alert_log(&self) -> impl Iterator<Item = &AlertEvent> {
        self.alerts.iter()
    }

    /// The alerter's retained state of a machine arrived (`{prefix}/alert-state/{machine}`):
    /// the alert open after its latest transition, with its acknowledgement, or none. It
    /// tells a dashboard started after an alert fired what is open and who acknowledged it.
    pub fn alert_state(&mut self, s: dtwin_schema::AlertSnapshot) {
        let machine = s.machine_id.to_string();
        let m = self.machines.entry(machine.clone()).or_default();
        match s.firing {
            Some(f) => {
                let known = m.open.take().filter(|o| o.alert_id == f.alert_id);
                if known.is_none() {
                    m.pending = None;
                }
                if f.acknowledged.is_some()
                    && m.pending
                        .as_ref()
                        .is_some_and(|p| p.action == dtwin_schema::AlertActionKind::Acknowledge)
                {
                    m.pending = None;
                }
                m.open = Some(OpenAlert::from_firing(&machine, &f, known));
            }
            None => {
                // A state older than the open alert is about an earlier one.
                if m.open.as_ref().is_some_and(|o| o.since <= s.ts) {
                    m.open = None;
                    m.alert = None;
                    m.pending = None;
                }
            }
        }
        self.version += 1;
    }

    /// This dashboard sent `action` on `machine`'s open alert: shown as waiting for the
    /// alerter until its event arrives.
    pub fn pending(&mut self, machine: &str, action: PendingAction) {
        if let Some(m) = self.machines.get_mut(machine) {
            m.pending = Some(action);
            self.version += 1;
        }
    }

    /// Every machine's open alert, newest first.
    pub fn open_alerts(&self) -> Vec<(&str, &MachineView, &OpenAlert)> {
        let mut v: Vec<(&str, &MachineView, &OpenAlert)> = self
            .machines
            .iter()
            .filter_map(|(id, m)| m.open.as_ref().map(|o| (id.as_str(), m, o)))
            .collect();
        v.sort_by(|a, b| b.2.since.cmp(&a.2.since).then_with(|| a.0.cmp(b.0)));
        v
    }

    fn row(id: &str, m: &MachineView, ctx: &Context<'_>) -> Row {
        let profiles = ctx.profiles;
        // The verdict's readings are the machine's own sensors (any profile); before the first
        // verdict, a milling reading's.
        let profile = m.risk.as_ref().map(|r| r.profile.as_deref());
        let from_telemetry;
        let latest: Vec<(&str, f64)> = match &m.risk {
            Some(r) if !r.latest.is_empty() => {
                r.latest.iter().map(|(k, v)| (k.as_str(), *v)).collect()
            }
            _ => {
                from_telemetry = m.telemetry.as_ref().map(sensors).unwrap_or_default();
                from_telemetry
                    .iter()
                    .map(|(k, v)| (k.as_str(), *v))
                    .collect()
            }
        };
        Row {
            profile: profile.map_or_else(String::new, |p| profiles.label(p)),
            readings: readings(latest, profiles.get(profile.flatten())),
            machine_id: id.to_owned(),
            line: ctx.routes.line(id).unwrap_or_default().to_owned(),
            criticality: ctx.routes.criticality(id),
            status: m
                .risk
                .as_ref()
                .map_or("UNKNOWN", |r| status_name(r.status))
                .to_owned(),
            level: m
                .risk
                .as_ref()
                .map_or("", |r| level_name(r.level))
                .to_owned(),
            probability: m.risk.as_ref().map(|r| r.probability),
            health: m.risk.as_ref().map(|r| r.health_score),
            last_update: m
                .last_seen
                .or(m.last_update)
                .map(dtwin_schema::time_fmt::format),
            age_s: m
                .last_seen
                .or(m.last_update)
                .map(|t| (ctx.now - t).as_seconds_f64().max(0.0)),
            ago: m
                .last_seen
                .or(m.last_update)
                .map_or_else(String::new, |t| ago((ctx.now - t).as_seconds_f64())),
            heard_at: m
                .last_seen
                .or(m.last_update)
                .map_or_else(String::new, clock),
            spark: {
                let mut s: Vec<f64> = m
                    .trend
                    .iter()
                    .rev()
                    .filter_map(|p| p.risk)
                    .take(SPARK_POINTS)
                    .map(|r| (r * 1000.0).round() / 1000.0)
                    .collect();
                s.reverse();
                s
            },
            online: m.presence.map(|p| p == Presence::Online),
            insights: m
                .risk
                .as_ref()
                .map_or_else(Vec::new, |r| badges(&r.insights)),
        }
    }

    /// A page of machines matching `filter`, riskiest first (then by id), their readings
    /// labelled with `profiles`, without lines, at the newest message's time.
    pub fn snapshot(&self, filter: &Filter, profiles: &Profiles) -> Snapshot {
        let routes = Routes::default();
        self.snapshot_at(
            filter,
            &Context {
                profiles,
                routes: &routes,
                now: self.newest.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            },
        )
    }

    /// A page of machines matching `filter`, riskiest first (then by id), in `ctx`: readings
    /// labelled with its profiles, lines and criticality from its routes, times relative to
    /// its `now`.
    pub fn snapshot_at(&self, filter: &Filter, ctx: &Context<'_>) -> Snapshot {
        let (at_risk, healthy) = (self.at_risk, self.healthy);
        let lines = ctx.routes.lines();
        let mut matching: Vec<(&String, &MachineView)> = Vec::new();
        for (id, m) in &self.machines {
            let status = m.risk.as_ref().map(|r| r.status);
            let status_ok =
                filter.status.is_empty() || status.map(status_name) == Some(filter.status.as_str());
            let line_ok =
                filter.line.is_empty() || ctx.routes.line(id) == Some(filter.line.as_str());
            if status_ok && line_ok {
                matching.push((id, m));
            }
        }
        let risk = |m: &MachineView| m.risk.as_ref().map_or(-1.0, |r| r.probability);
        matching.sort_by(|a, b| risk(b.1).total_cmp(&risk(a.1)).then_with(|| a.0.cmp(b.0)));
        let pages = matching.len().div_ceil(PAGE_ROWS).max(1);
        let page = filter.page.min(pages - 1);
        let rows: Vec<Row> = matching
            .iter()
            .skip(page * PAGE_ROWS)
            .take(PAGE_ROWS)
            .map(|(id, m)| Self::row(id, m, ctx))
            .collect();
        Snapshot {
            insights: rows.iter().any(|r| !r.insights.is_empty()),
            criticality: ctx.routes.machines.iter().any(|m| m.criticality.is_some()),
            now: dtwin_schema::time_fmt::format(ctx.now),
            hour: self.hour(ctx.now),
            version: self.version,
            machines: self.machines.len(),
            at_risk,
            healthy,
            matching: matching.len(),
            page,
            pages,
            rows,
            lines,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_schema::{MachineId, ModelRef, RISK_SCHEMA};
    use std::collections::BTreeMap;

    pub(crate) fn risk(id: &str, p: f64) -> Risk {
        Risk {
            schema: RISK_SCHEMA.to_owned(),
            machine_id: MachineId::parse(id).unwrap(),
            ts: OffsetDateTime::UNIX_EPOCH,
            source_ts: OffsetDateTime::UNIX_EPOCH,
            seq: 1,
            probability: p,
            status: if p >= 0.5 {
                RiskStatus::AtRisk
            } else {
                RiskStatus::Healthy
            },
            level: Level::Normal,
            health_score: 100.0 * (1.0 - p),
            actions: vec![],
            factors: vec![],
            model: ModelRef {
                id: "m".into(),
                version: "1".into(),
            },
            cold: false,
            latest: BTreeMap::new(),
            profile: None,
            insights: Default::default(),
        }
    }

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(ago(0.4), "just now");
        assert_eq!(ago(4.7), "4 s ago");
        assert_eq!(ago(190.0), "3 min ago");
        assert_eq!(ago(7300.0), "2 h ago");
        assert_eq!(ago(3.0 * 86_400.0 + 5.0), "3 days ago");
    }

    fn routes() -> Routes {
        Routes::parse(
            "[[machine]]\nmachines = [\"press-*\"]\nline = \"presses\"\ncriticality = 2\n\n[[machine]]\nmachines = [\"mill-*\"]\nline = \"mills\"\n",
        )
        .unwrap()
    }

    #[test]
    fn snapshot_sorts_filters_and_pages() {
        let mut f = Fleet::default();
        for i in 0..120 {
            f.risk(risk(&format!("press-{i:03}"), f64::from(i) / 200.0));
        }
        f.risk(risk("mill-1", 0.99));
        f.risk(risk("pump-1", 0.0));
        let (profiles, routes) = (Profiles::default(), routes());
        let ctx = Context {
            profiles: &profiles,
            routes: &routes,
            now: OffsetDateTime::UNIX_EPOCH,
        };
        let snap = |filter: Filter| f.snapshot_at(&filter, &ctx);
        let all = snap(Filter::default());
        assert_eq!(all.machines, 122);
        assert_eq!(all.rows.len(), PAGE_ROWS);
        assert_eq!(all.pages, 3);
        assert_eq!(all.rows[0].machine_id, "mill-1");
        assert_eq!(all.rows[0].line, "mills");
        assert_eq!(all.rows[1].machine_id, "press-119");
        assert_eq!(
            (all.rows[1].line.as_str(), all.rows[1].criticality),
            ("presses", Some(2.0))
        );
        assert!(all
            .rows
            .windows(2)
            .all(|w| w[0].probability >= w[1].probability));
        assert_eq!(all.lines, ["mills", "presses"], "the routing file's lines");
        assert!(all.criticality);
        let risky = snap(Filter {
            status: "AT_RISK".into(),
            ..Filter::default()
        });
        assert_eq!(risky.matching, 21);
        assert_eq!(risky.at_risk, 21);
        assert_eq!(risky.healthy, 101);
        let mill = snap(Filter {
            line: "mills".into(),
            ..Filter::default()
        });
        assert_eq!(mill.matching, 1);
        let last = snap(Filter {
            page: 99,
            ..Filter::default()
        });
        assert_eq!(last.page, 2);
        assert_eq!(last.rows.len(), 22);
        let pump = last.rows.iter().find(|r| r.machine_id == "pump-1").unwrap();
        assert_eq!(
            (pump.line.as_str(), pump.criticality),
            ("", None),
            "not guessed"
        );
        // Without a routing file: no lines at all.
        let bare = f.snapshot(&Filter::default(), &profiles);
        assert!(bare.lines.is_empty() && bare.rows.iter().all(|r| r.line.is_empty()));
        assert!(!bare.criticality);
    }

    fn at(secs: i64) -> OffsetDateTime {
        // A whole minute, so minutes start at 0, 60, 120... seconds.
        OffsetDateTime::from_unix_timestamp(1_795_000_020 + secs).unwrap()
    }

    fn risk_at(id: &str, p: f64, secs: i64) -> Risk {
        let mut r = risk(id, p);
        r.ts = at(secs);
        r.source_ts = at(secs);
        r
    }

    #[test]
    fn rows_carry_a_sparkline_and_how_long_ago_the_machine_was_heard_from() {
        let mut f = Fleet::default();
        for k in 0..(SPARK_POINTS as i64 + 10) {
            f.risk(risk_at("m-1", k as f64 / 100.0, k));
        }
        f.seen("m-1", at(60));
        let (profiles, routes) = (Profiles::default(), Routes::default());
        let ctx = Context {
            profiles: &profiles,
            routes: &routes,
            now: at(64),
        };
        let snap = f.snapshot_at(&Filter::default(), &ctx);
        let row = &snap.rows[0];
        assert_eq!(row.spark.len(), SPARK_POINTS);
        assert_eq!(row.spark.last(), Some(&0.49), "newest last");
        assert_eq!(row.spark[0], 0.1);
        assert_eq!(row.age_s, Some(4.0));
        assert_eq!(row.ago, "4 s ago");
        assert_eq!(row.heard_at, "2026-11-18 11:08:00 UTC");
        assert_eq!(
            row.last_update.as_deref(),
            Some(dtwin_schema::time_fmt::format(at(60)).as_str())
        );
        assert_eq!(snap.now, dtwin_schema::time_fmt::format(at(64)));
    }

    #[test]
    fn the_last_hour_counts_statuses_per_minute_and_machines_that_were_at_risk() {
        let mut f = Fleet::default();
        // Minute 0: three healthy; minute 2: two at risk at once, then one recovers;
        // minute 70 (an hour later): m-1 at risk again.
        for m in ["m-1", "m-2", "m-3"] {
            f.risk(risk_at(m, 0.1, 0));
        }
        f.risk(risk_at("m-1", 0.9, 125));
        f.risk(risk_at("m-2", 0.9, 126));
        f.risk(risk_at("m-2", 0.1, 130));
        let h = f.hour(at(150));
        assert_eq!(h.minutes.len(), HISTORY_MINUTES);
        let last = h.minutes.last().unwrap();
        assert_eq!(
            (last.at_risk, last.healthy),
            (2, 2),
            "peak 2 at once, 2 healthy at the end"
        );
        let before = &h.minutes[h.minutes.len() - 2];
        assert_eq!(
            (before.at_risk, before.healthy),
            (0, 3),
            "minute 1 repeats minute 0"
        );
        assert_eq!(h.peak_at_risk, 2);
        assert_eq!((h.were_at_risk, h.stayed_healthy), (2, 1));
        f.risk(risk_at("m-1", 0.9, 70 * 60));
        let h = f.hour(at(70 * 60 + 5));
        assert_eq!(
            (h.were_at_risk, h.stayed_healthy),
            (1, 2),
            "m-2 was at risk over an hour ago"
        );
        assert_eq!(h.minutes[0].at_risk, 1, "carried from before the hour");
        assert_eq!(h.minutes.last().unwrap().at_risk, 1);
    }

    #[test]
    fn rows_name_the_profile_and_label_the_readings() {
        let mut f = Fleet::default();
        let profiles = Profiles::new(&[crate::profiles::tests::pump()]);
        let mut r = risk("pump-01", 0.0);
        r.profile = Some("pump".into());
        r.latest = BTreeMap::from([("rotate".into(), 1500.0), ("volt".into(), 176.2)]);
        f.risk(r);
        let mut m = risk("mill-01", 0.1);
        m.latest = BTreeMap::from([("vibration_mm_s".into(), 2.5)]);
        f.risk(m);
        let snap = f.snapshot(&Filter::default(), &profiles);
        let row = |id: &str| snap.rows.iter().find(|r| r.machine_id == id).unwrap();
        assert_eq!(row("pump-01").profile, "Water pump");
        let got: Vec<(&str, &str)> = row("pump-01")
            .readings
            .iter()
            .map(|r| (r.label.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(got, [("Voltage", "176.2 V"), ("Rotation", "1500 rpm")]);
        assert_eq!(row("mill-01").profile, "Milling machine");
        assert_eq!(row("mill-01").readings[0].value, "2.5 mm/s");
        assert_eq!(row("mill-01").readings[0].label, "Vibration");
    }

    #[test]
    fn rows_carry_the_other_models_badges_and_the_page_says_whether_any_has_them() {
        let mut f = Fleet::default();
        f.risk(risk("m-1", 0.2));
        let snap = f.snapshot(&Filter::default(), &Profiles::default());
        assert!(!snap.insights && snap.rows[0].insights.is_empty());
        assert!(f.machine("m-1").unwrap().trend[0].insights.is_none());
        let mut r = risk("m-2", 0.1);
        r.insights.anomaly = Some(0.81);
        r.insights.anomalous = Some(true);
        r.insights.rul = Some(dtwin_schema::RulEstimate {
            value: 42.0,
            low: 30.0,
            high: 55.0,
            unit: "cycles".into(),
        });
        f.risk(r);
        let snap = f.snapshot(&Filter::default(), &Profiles::default());
        assert!(snap.insights);
        let row = snap.rows.iter().find(|r| r.machine_id == "m-2").unwrap();
        let texts: Vec<&str> = row.insights.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(texts, ["anomaly 0.81", "life 42 cycles (5–95 %: 30–55)"]);
        let json = serde_json::to_value(row).unwrap();
        assert_eq!(json["insights"][0]["tone"], "flagged", "{json}");
        let point = f.machine("m-2").unwrap().trend[0].insights.clone().unwrap();
        assert_eq!(
            (point.anomaly, point.rul, point.quality),
            (Some(0.81), Some(42.0), None)
        );
    }

    fn event(id: &str, kind: &str, secs: i64) -> AlertEvent {
        serde_json::from_value(serde_json::json!({
            "schema": "dtwin.alert.v1", "machine_id": "m-1",
            "ts": dtwin_schema::time_fmt::format(at(secs)), "alert_id": id, "event": kind,
            "level": "WARNING", "probability": 0.7, "actions": [],
            "by": "Ana", "comment": "on it"
        }))
        .unwrap()
    }

    #[test]
    fn an_alert_is_open_until_it_ends_and_keeps_who_acknowledged_it() {
        let mut f = Fleet::default();
        f.alert(event("m-1-anomaly-a", "firing", 0));
        f.alert(event("m-1-anomaly-a", "acknowledged", 5));
        let open = f.machine("m-1").unwrap().open.clone().unwrap();
        assert_eq!(open.acknowledged.as_ref().unwrap().by, "Ana");
        assert_eq!((open.since, open.cause), (at(0), "anomaly"));
        f.alert(event("m-1-anomaly-a", "updated", 9));
        let open = f.machine("m-1").unwrap().open.clone().unwrap();
        assert!(
            open.acknowledged.is_some(),
            "an update keeps the acknowledgement"
        );
        assert_eq!(open.since, at(0));
        // A failure alert supersedes it: its firing comes before the anomaly's resolution,
        // which must not close the new one.
        f.alert(event("m-1-b", "firing", 10));
        f.alert(event("m-1-anomaly-a", "resolved", 10));
        let open = f.machine("m-1").unwrap().open.clone().unwrap();
        assert_eq!((open.alert_id.as_str(), open.cause), ("m-1-b", "failure"));
        assert!(open.acknowledged.is_none());
        f.alert(event("m-1-b", "cleared", 20));
        assert!(f.machine("m-1").unwrap().open.is_none());
        assert_eq!(f.open_alerts().len(), 0);
    }

    #[test]
    fn trends_and_alert_log_are_bounded() {
        let mut f = Fleet::default();
        for _ in 0..(TREND_POINTS + 50) {
            f.risk(risk("m-1", 0.1));
        }
        assert_eq!(f.machine("m-1").unwrap().trend.len(), TREND_POINTS);
        let v = f.version();
        f.risk(risk("m-1", 0.2));
        assert!(f.version() > v);
    }
}
