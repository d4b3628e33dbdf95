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

use crate::insights::{badges, Badge};
use crate::profiles::{readings, Profiles, Reading};
use dtwin_schema::{AlertEvent, Level, MachineStatus, Presence, Risk, RiskStatus, Telemetry};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use time::OffsetDateTime;

/// Recent points kept per machine for the trend charts.
pub const TREND_POINTS: usize = 240;
/// Alert events kept for the alert log.
pub const ALERT_LOG: usize = 500;
/// Rows per page of the fleet view.
pub const PAGE_ROWS: usize = 50;

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
    /// The active alert, if one is firing.
    pub alert: Option<AlertEvent>,
}

impl MachineView {
    fn push(&mut self, p: TrendPoint) {
        if self.trend.len() == TREND_POINTS {
            self.trend.pop_front();
        }
        self.trend.push_back(p);
    }
}

/// The whole fleet.
#[derive(Debug, Default)]
pub struct Fleet {
    machines: HashMap<String, MachineView>,
    alerts: VecDeque<AlertEvent>,
    version: u64,
}

/// A row of the fleet table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// Machine id.
    pub machine_id: String,
    /// Line (the id's prefix before its last `-`).
    pub line: String,
    /// HEALTHY / AT_RISK / UNKNOWN (no verdict yet).
    pub status: String,
    /// NORMAL / WARNING / CRITICAL.
    pub level: String,
    /// Risk probability.
    pub probability: Option<f64>,
    /// Health score 0-100.
    pub health: Option<f64>,
    /// Last update (RFC 3339).
    pub last_update: Option<String>,
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

/// The line a machine belongs to: its id up to the last `-` (`press-07` is on line `press`).
pub fn line_of(machine_id: &str) -> &str {
    machine_id.rsplit_once('-').map_or(machine_id, |(l, _)| l)
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
        m.risk = Some(r);
        self.version += 1;
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
        match a.event {
            K::Resolved => m.alert = None,
            K::Firing | K::Updated => m.alert = Some(a.clone()),
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

    fn row(id: &str, m: &MachineView, profiles: &Profiles) -> Row {
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
            line: line_of(id).to_owned(),
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
            last_update: m.last_update.map(dtwin_schema::time_fmt::format),
            online: m.presence.map(|p| p == Presence::Online),
            insights: m
                .risk
                .as_ref()
                .map_or_else(Vec::new, |r| badges(&r.insights)),
        }
    }

    /// A page of machines matching `filter`, riskiest first (then by id), their readings
    /// labelled with `profiles`.
    pub fn snapshot(&self, filter: &Filter, profiles: &Profiles) -> Snapshot {
        let mut at_risk = 0;
        let mut healthy = 0;
        let mut lines: Vec<String> = Vec::new();
        let mut matching: Vec<(&String, &MachineView)> = Vec::new();
        for (id, m) in &self.machines {
            let status = m.risk.as_ref().map(|r| r.status);
            match status {
                Some(RiskStatus::AtRisk) => at_risk += 1,
                Some(RiskStatus::Healthy) => healthy += 1,
                None => {}
            }
            let line = line_of(id);
            if !lines.iter().any(|l| l == line) {
                lines.push(line.to_owned());
            }
            let status_ok =
                filter.status.is_empty() || status.map(status_name) == Some(filter.status.as_str());
            let line_ok = filter.line.is_empty() || filter.line == line;
            if status_ok && line_ok {
                matching.push((id, m));
            }
        }
        lines.sort();
        let risk = |m: &MachineView| m.risk.as_ref().map_or(-1.0, |r| r.probability);
        matching.sort_by(|a, b| risk(b.1).total_cmp(&risk(a.1)).then_with(|| a.0.cmp(b.0)));
        let pages = matching.len().div_ceil(PAGE_ROWS).max(1);
        let page = filter.page.min(pages - 1);
        let rows: Vec<Row> = matching
            .iter()
            .skip(page * PAGE_ROWS)
            .take(PAGE_ROWS)
            .map(|(id, m)| Self::row(id, m, profiles))
            .collect();
        Snapshot {
            insights: rows.iter().any(|r| !r.insights.is_empty()),
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
    fn lines_come_from_ids() {
        assert_eq!(line_of("press-07"), "press");
        assert_eq!(line_of("line-a-machine-3"), "line-a-machine");
        assert_eq!(line_of("solo"), "solo");
    }

    #[test]
    fn snapshot_sorts_filters_and_pages() {
        let mut f = Fleet::default();
        for i in 0..120 {
            f.risk(risk(&format!("press-{i:03}"), f64::from(i) / 200.0));
        }
        f.risk(risk("mill-1", 0.99));
        let all = f.snapshot(&Filter::default(), &Profiles::default());
        assert_eq!(all.machines, 121);
        assert_eq!(all.rows.len(), PAGE_ROWS);
        assert_eq!(all.pages, 3);
        assert_eq!(all.rows[0].machine_id, "mill-1");
        assert_eq!(all.rows[1].machine_id, "press-119");
        assert!(all
            .rows
            .windows(2)
            .all(|w| w[0].probability >= w[1].probability));
        assert_eq!(all.lines, ["mill", "press"]);
        let risky = f.snapshot(
            &Filter {
                status: "AT_RISK".into(),
                ..Filter::default()
            },
            &Profiles::default(),
        );
        assert_eq!(risky.matching, 21);
        assert_eq!(risky.at_risk, 21);
        let mill = f.snapshot(
            &Filter {
                line: "mill".into(),
                ..Filter::default()
            },
            &Profiles::default(),
        );
        assert_eq!(mill.matching, 1);
        let last = f.snapshot(
            &Filter {
                page: 99,
                ..Filter::default()
            },
            &Profiles::default(),
        );
        assert_eq!(last.page, 2);
        assert_eq!(last.rows.len(), 21);
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
