//! What the dashboard's fleet state costs at scale: memory for N machines with full trend rings,
//! and the time to build one page of the fleet view (what every browser gets per push).
//!
//! `cargo run --release -p dtwin-dashboard --example fleet_scale -- [machines]` (default 10,000).

use dtwin_dashboard::state::{Filter, Fleet, TREND_POINTS};
use dtwin_schema::{
    Action, Factor, Level, MachineId, ModelRef, Risk, RiskStatus, Telemetry, RISK_SCHEMA,
};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn risk(id: &MachineId, ts: OffsetDateTime, p: f64) -> Risk {
    Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: id.clone(),
        ts,
        source_ts: ts,
        seq: 1,
        probability: p,
        status: if p >= 0.5 {
            RiskStatus::AtRisk
        } else {
            RiskStatus::Healthy
        },
        level: Level::Normal,
        health_score: 100.0 * (1.0 - p),
        actions: vec![Action {
            code: "tool_wear".into(),
            text: "Tool wear high: schedule a tool change".into(),
            severity: Level::Warning,
        }],
        factors: (0..3)
            .map(|i| Factor {
                feature: format!("feature_{i}"),
                value: Some(1.0),
                contribution: 0.1,
            })
            .collect(),
        model: ModelRef {
            id: "dtwin-rf".into(),
            version: "1".into(),
        },
        cold: false,
        latest: Default::default(),
        profile: None,
        insights: Default::default(),
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let before = rss_kib();
    let mut fleet = Fleet::default();
    let t0 = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    for i in 0..n {
        let id = MachineId::parse(&format!("line{}-m{i:05}", i % 20)).expect("valid id");
        for k in 0..TREND_POINTS {
            let ts = t0 + time::Duration::seconds(k as i64);
            let mut t = Telemetry::new(id.clone(), ts, k as u64);
            t.temperature_c = Some(36.0 + (k % 7) as f64 * 0.1);
            t.vibration_mm_s = Some(2.0);
            t.pressure_bar = Some(6.0);
            t.spindle_rpm = Some(1500.0);
            t.tool_wear_min = Some(k as f64);
            t.torque_nm = Some(40.0);
            fleet.telemetry(t);
            fleet.risk(risk(&id, ts, ((i * 7919 + k) % 1000) as f64 / 1000.0));
        }
    }
    let after = rss_kib();
    let profiles = dtwin_dashboard::profiles::Profiles::default();
    let mut times: Vec<Duration> = (0..50)
        .map(|p| {
            let start = Instant::now();
            let snap = fleet.snapshot(
                &Filter {
                    page: p % 3,
                    ..Filter::default()
                },
                &profiles,
            );
            let json = serde_json::to_string(&snap).expect("serialisable");
            std::hint::black_box(json);
            start.elapsed()
        })
        .collect();
    times.sort();
    let json = serde_json::to_string(&fleet.snapshot(&Filter::default(), &profiles)).expect("json");
    println!(
        "{n} machines x {TREND_POINTS} readings + verdicts: {:.1} MiB RSS for the fleet state ({:.1} KiB per machine); one page (sorted, filtered, JSON): median {:.2} ms over 50, {} bytes",
        (after - before) as f64 / 1024.0,
        (after - before) as f64 / n as f64,
        times[times.len() / 2].as_secs_f64() * 1e3,
        json.len()
    );
}
