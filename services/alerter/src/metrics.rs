//! The alerter's Prometheus metrics (prefix `dtwin_alerter_`), updated by the service loop
//! and the sender as verdicts, spool writes and mail attempts happen.
//!
//! `/healthz` follows the broker link only: an SMTP server that is down does not make the
//! alerter unhealthy (the spool holds every mail until it is back, and restarting the
//! alerter would not bring the server back), so it is exported as the `smtp_up` gauge for
//! an alert rule instead.

use crate::processor::ProcessorStats;
use dtwin_obs::prometheus_client::metrics::counter::Counter;
use dtwin_obs::prometheus_client::metrics::gauge::Gauge;
use dtwin_obs::{label, CounterVec, Registry};
use dtwin_schema::AlertEventKind;

/// Every metric of the alerter. Cheap to clone (shared atomics).
#[derive(Clone, Debug)]
pub struct AlerterMetrics {
    /// `dtwin_alerter_verdicts_in_total`: risk verdicts received (good or bad).
    pub verdicts_in: Counter,
    /// `dtwin_alerter_rejected_total{reason}`: verdicts and alert actions dead-lettered, by
    /// reason.
    pub rejected: CounterVec,
    /// `dtwin_alerter_events_total{kind}`: alert events published, by kind (firing,
    /// updated, resolved, sent, failed, silenced).
    pub events: CounterVec,
    /// `dtwin_alerter_notifications_spooled_total`: notifications written to the spool.
    pub spooled: Counter,
    /// `dtwin_alerter_mails_sent_total`: e-mails accepted by the SMTP server or written to
    /// the outbox (a digest counts once).
    pub mails_sent: Counter,
    /// `dtwin_alerter_mails_failed_total`: e-mails given up on (refused for good, or not
    /// buildable); their records go to `failed/`.
    pub mails_failed: Counter,
    /// `dtwin_alerter_mails_retried_total`: send attempts that failed transiently and will be
    /// retried with backoff.
    pub mails_retried: Counter,
    /// `dtwin_alerter_spool_pending`: notifications waiting in the spool.
    pub spool_pending: Gauge,
    /// `dtwin_alerter_smtp_up`: 1 when the mail transport worked at the last attempt or
    /// probe, else 0.
    pub smtp_up: Gauge,
    /// `dtwin_alerter_firing`: alerts firing now.
    pub firing: Gauge,
    /// `dtwin_alerter_handovers_total`: machines whose alert state this instance took over
    /// from another (scale-out; see [`crate::handover`]).
    pub handovers: Counter,
    /// `dtwin_alerter_webhook_deliveries_total{channel,outcome}`: webhook deliveries by
    /// channel and outcome (`sent`, `retried`, `failed`, `silenced`).
    pub webhook: CounterVec,
}

/// The `kind` label of an alert event (as in `alert.schema.json`).
pub fn kind_label(kind: AlertEventKind) -> &'static str {
    kind.as_str()
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Default for AlerterMetrics {
    /// Metrics registered nowhere (a sender or test without an endpoint).
    fn default() -> Self {
        Self::register(&mut Registry::default())
    }
}

impl AlerterMetrics {
    /// Registers every metric in `registry` (give it the `dtwin_alerter` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            verdicts_in: Counter::default(),
            rejected: CounterVec::default(),
            events: CounterVec::default(),
            spooled: Counter::default(),
            mails_sent: Counter::default(),
            mails_failed: Counter::default(),
            mails_retried: Counter::default(),
            spool_pending: Gauge::default(),
            smtp_up: Gauge::default(),
            firing: Gauge::default(),
            handovers: Counter::default(),
            webhook: CounterVec::default(),
        };
        let r = registry;
        r.register(
            "verdicts_in",
            "Risk verdicts received",
            m.verdicts_in.clone(),
        );
        r.register(
            "rejected",
            "Risk verdicts and alert actions dead-lettered, by reason",
            m.rejected.clone(),
        );
        r.register(
            "events",
            "Alert events published, by kind",
            m.events.clone(),
        );
        r.register(
            "notifications_spooled",
            "Notifications written to the durable spool",
            m.spooled.clone(),
        );
        r.register(
            "mails_sent",
            "E-mails accepted by the SMTP server or written to the outbox (a digest counts once)",
            m.mails_sent.clone(),
        );
        r.register(
            "mails_failed",
            "E-mails given up on (refused for good by the server, or not buildable)",
            m.mails_failed.clone(),
        );
        r.register(
            "mails_retried",
            "Send attempts that failed transiently and are retried with backoff",
            m.mails_retried.clone(),
        );
        r.register(
            "spool_pending",
            "Notifications waiting in the spool",
            m.spool_pending.clone(),
        );
        r.register(
            "smtp_up",
            "1 when the mail transport (SMTP server or outbox) worked at the last attempt or probe",
            m.smtp_up.clone(),
        );
        r.register("firing", "Alerts firing now", m.firing.clone());
        r.register(
            "handovers",
            "Machines whose alert state this instance took over from another (scale-out)",
            m.handovers.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Webhook deliveries by channel and outcome (sent, retried, failed, silenced)",
            m.webhook.clone(),
        );
        m
    }

    /// Counts a webhook delivery attempt's `outcome` on `channel`.
    pub fn webhook(&self, channel: &str, outcome: &str) {
        self.webhook
            .get_or_create(&vec![
                ("channel".to_owned(), channel.to_owned()),
                ("outcome".to_owned(), outcome.to_owned()),
            ])
            .inc();
    }

    /// Counts a published alert event.
    pub fn event(&self, kind: AlertEventKind) {
        self.events
            .get_or_create(&label("kind", kind_label(kind)))
            .inc();
    }

    /// Counts a dead-lettered verdict.
    pub fn rejected(&self, reason: &str) {
        self.rejected.get_or_create(&label("reason", reason)).inc();
    }

    /// Brings the verdict counters and the firing gauge in step with the processor's stats.
    /// Counters only move forward: stats from a fresh processor never lower them.
    pub fn processor(&self, stats: &ProcessorStats) {
        let seen = stats.verdicts + stats.rejected;
        let counted = self.verdicts_in.get();
        if seen > counted {
            self.verdicts_in.inc_by(seen - counted);
        }
        self.firing
            .set(gauge_value(u64::try_from(stats.firing).unwrap_or(u64::MAX)));
    }

    /// Records whether the mail transport works.
    pub fn transport_up(&self, up: bool) {
        self.smtp_up.set(i64::from(up));
    }

    /// Sets the number of notifications waiting in the spool.
    pub fn pending(&self, n: usize) {
        self.spool_pending
            .set(gauge_value(u64::try_from(n).unwrap_or(u64::MAX)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(m: impl FnOnce(&AlerterMetrics)) -> String {
        let mut r = Registry::with_prefix("dtwin_alerter");
        let metrics = AlerterMetrics::register(&mut r);
        m(&metrics);
        dtwin_obs::render(&r)
    }

    #[test]
    fn counts_events_by_kind_and_follows_the_processor() {
        let text = render(|m| {
            m.event(AlertEventKind::Firing);
            m.event(AlertEventKind::Firing);
            m.event(AlertEventKind::Sent);
            m.rejected("not_json");
            let mut s = ProcessorStats {
                verdicts: 7,
                rejected: 1,
                notifications: 2,
                firing: 2,
                ..ProcessorStats::default()
            };
            m.processor(&s);
            s.verdicts = 9;
            s.firing = 1;
            m.processor(&s);
            // A processor that restarted its counts does not move a counter backwards.
            m.processor(&ProcessorStats::default());
            m.pending(3);
            m.transport_up(true);
        });
        for line in [
            "dtwin_alerter_events_total{kind=\"firing\"} 2",
            "dtwin_alerter_events_total{kind=\"sent\"} 1",
            "dtwin_alerter_rejected_total{reason=\"not_json\"} 1",
            "dtwin_alerter_verdicts_in_total 10",
            "dtwin_alerter_firing 0",
            "dtwin_alerter_spool_pending 3",
            "dtwin_alerter_smtp_up 1",
            "dtwin_alerter_mails_sent_total 0",
            "dtwin_alerter_mails_failed_total 0",
            "dtwin_alerter_mails_retried_total 0",
            "dtwin_alerter_notifications_spooled_total 0",
            "dtwin_alerter_handovers_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn every_event_kind_has_the_schema_name() {
        for kind in [
            AlertEventKind::Firing,
            AlertEventKind::Updated,
            AlertEventKind::Resolved,
            AlertEventKind::Sent,
            AlertEventKind::Failed,
            AlertEventKind::Silenced,
            AlertEventKind::Acknowledged,
            AlertEventKind::Cleared,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json.trim_matches('"'), kind_label(kind));
        }
    }
}
