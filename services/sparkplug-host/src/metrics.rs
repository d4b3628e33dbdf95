//! The Sparkplug host's Prometheus metrics (prefix `dtwin_sparkplug_`), counted from what the
//! pure core publishes ([`OutKind`]).

use crate::translate::OutKind;
use dtwin_obs::prometheus_client::metrics::counter::Counter;
use dtwin_obs::{label, CounterVec, Registry};

/// Every metric of the Sparkplug host. Cheap to clone (shared atomics).
#[derive(Clone, Debug)]
pub struct SparkplugMetrics {
    /// `dtwin_sparkplug_messages_total`: Sparkplug messages received.
    pub messages: Counter,
    /// `dtwin_sparkplug_readings_total`: readings published as v2 telemetry.
    pub readings: Counter,
    /// `dtwin_sparkplug_rebirths_total`: rebirth requests sent to edge nodes.
    pub rebirths: Counter,
    /// `dtwin_sparkplug_dead_letters_total{reason}`: dead letters, by the specific reason
    /// (`not_protobuf`, `seq_gap`, `unknown_profile`, ...).
    pub dead_letters: CounterVec,
    /// `dtwin_sparkplug_publish_errors_total`: publishes refused by a closed connection.
    pub publish_errors: Counter,
    /// `dtwin_sparkplug_drafted_profiles_total`: profiles drafted from births no known
    /// profile fits.
    pub drafted_profiles: Counter,
}

impl Default for SparkplugMetrics {
    /// Metrics registered nowhere.
    fn default() -> Self {
        Self::register(&mut Registry::default())
    }
}

impl SparkplugMetrics {
    /// Registers every metric in `registry` (give it the `dtwin_sparkplug` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            messages: Counter::default(),
            readings: Counter::default(),
            rebirths: Counter::default(),
            dead_letters: CounterVec::default(),
            publish_errors: Counter::default(),
            drafted_profiles: Counter::default(),
        };
        registry.register(
            "messages",
            "Sparkplug messages received",
            m.messages.clone(),
        );
        registry.register(
            "readings",
            "Readings published as v2 telemetry",
            m.readings.clone(),
        );
        registry.register(
            "rebirths",
            "Rebirth requests sent to edge nodes",
            m.rebirths.clone(),
        );
        registry.register(
            "dead_letters",
            "Dead letters, by reason",
            m.dead_letters.clone(),
        );
        registry.register(
            "publish_errors",
            "Publishes refused by a closed connection",
            m.publish_errors.clone(),
        );
        registry.register(
            "drafted_profiles",
            "Profiles drafted from births no known profile fits",
            m.drafted_profiles.clone(),
        );
        m
    }

    /// Counts one publish of the core.
    pub fn count(&self, kind: OutKind) {
        match kind {
            OutKind::Telemetry => {
                self.readings.inc();
            }
            OutKind::Rebirth => {
                self.rebirths.inc();
            }
            OutKind::DeadLetter(reason) => {
                self.dead_letters
                    .get_or_create(&label("reason", reason))
                    .inc();
            }
            OutKind::Profile => {
                self.drafted_profiles.inc();
            }
            OutKind::Status => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_the_core_publishes() {
        let mut r = Registry::with_prefix("dtwin_sparkplug");
        let m = SparkplugMetrics::register(&mut r);
        m.messages.inc();
        for kind in [
            OutKind::Telemetry,
            OutKind::Telemetry,
            OutKind::Rebirth,
            OutKind::Status,
            OutKind::DeadLetter("seq_gap"),
            OutKind::DeadLetter("unknown_profile"),
            OutKind::DeadLetter("seq_gap"),
        ] {
            m.count(kind);
        }
        let text = dtwin_obs::render(&r);
        for line in [
            "dtwin_sparkplug_messages_total 1",
            "dtwin_sparkplug_readings_total 2",
            "dtwin_sparkplug_rebirths_total 1",
            "dtwin_sparkplug_dead_letters_total{reason=\"seq_gap\"} 2",
            "dtwin_sparkplug_dead_letters_total{reason=\"unknown_profile\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
