//! The fleet summary `dtwin up` prints: a pure [`FleetView`] fed with verdicts and alert
//! events, and a subscriber that prints it every few seconds.

use dtwin_bus::{Brokers, BusConfig, QoS, Subscription};
use dtwin_schema::{
    from_json, AlertEvent, AlertEventKind, Level, MachineId, Risk, RiskStatus, TopicKind, Topics,
};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The latest verdict per machine and alert counts.
#[derive(Debug, Default)]
pub struct FleetView {
    latest: HashMap<MachineId, (RiskStatus, Level, f64)>,
    verdicts: u64,
    alerts_fired: u64,
    emails: u64,
}

impl FleetView {
    /// Records a verdict.
    pub fn on_risk(&mut self, r: &Risk) {
        self.verdicts += 1;
        self.latest
            .insert(r.machine_id.clone(), (r.status, r.level, r.probability));
    }

    /// Records an alert event.
    pub fn on_alert(&mut self, a: &AlertEvent) {
        match a.event {
            AlertEventKind::Firing => self.alerts_fired += 1,
            AlertEventKind::Sent => self.emails += 1,
            _ => {}
        }
    }

    /// One line: counts per status, alerts, and the riskiest machines.
    pub fn summary(&self) -> String {
        let at_risk = self
            .latest
            .values()
            .filter(|(s, _, _)| *s == RiskStatus::AtRisk)
            .count();
        let mut worst: Vec<_> = self.latest.iter().collect();
        worst.sort_by(|a, b| b.1 .2.total_cmp(&a.1 .2).then_with(|| a.0.cmp(b.0)));
        let mut line = format!(
            "fleet: {} machines | {} HEALTHY | {} AT RISK | {} verdicts | {} alerts fired | {} e-mails",
            self.latest.len(),
            self.latest.len() - at_risk,
            at_risk,
            self.verdicts,
            self.alerts_fired,
            self.emails
        );
        if !worst.is_empty() {
            line.push_str(" | riskiest:");
            for (id, (status, level, p)) in worst.into_iter().take(3) {
                let _ = write!(
                    line,
                    " {id} {:.0}% {}/{}",
                    p * 100.0,
                    status.as_str(),
                    level.as_str()
                );
            }
        }
        line
    }
}

/// Subscribes to risk and alerts and prints [`FleetView::summary`] every `every`.
pub async fn run(broker: Brokers, prefix: String, every: Duration, shutdown: CancellationToken) {
    let topics = Topics::new(&prefix);
    let subs = vec![
        Subscription::new(topics.all(TopicKind::Risk), QoS::AtMostOnce),
        Subscription::new(topics.all(TopicKind::Alert), QoS::AtMostOnce),
    ];
    let mut conn = dtwin_bus::connect(&BusConfig::new(broker, "dtwin-monitor"), subs);
    let mut view = FleetView::default();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => println!("{}", view.summary()),
            msg = conn.inbox.recv() => {
                let Some(msg) = msg else { break };
                match topics.parse(&msg.topic) {
                    Some((TopicKind::Risk, _)) => if let Ok(r) = from_json::<Risk>(&msg.payload) { view.on_risk(&r) },
                    Some((TopicKind::Alert, _)) => if let Ok(a) = from_json::<AlertEvent>(&msg.payload) { view.on_alert(&a) },
                    _ => {}
                }
            }
        }
    }
    conn.close().await;
}
