//! The twin publisher's Prometheus metrics (prefix `dtwin_twin_`), updated by the control
//! loop and the workers. `/healthz` follows the control connection's broker link.

use dtwin_obs::prometheus_client::metrics::counter::Counter;
use dtwin_obs::prometheus_client::metrics::gauge::Gauge;
use dtwin_obs::{label, CounterVec, Registry};

/// Every metric of the twin publisher. Cheap to clone (shared atomics).
#[derive(Clone, Debug)]
pub struct TwinMetrics {
    /// `dtwin_twin_readings_published_total`: telemetry readings handed to the MQTT client.
    pub readings: Counter,
    /// `dtwin_twin_machines`: simulated machines.
    pub machines: Gauge,
    /// `dtwin_twin_publish_errors_total`: publishes refused by a closed connection
    /// (telemetry, statuses, dead letters).
    pub publish_errors: Counter,
    /// `dtwin_twin_control_commands_total{result}`: control commands applied or rejected.
    pub control: CounterVec,
}

impl Default for TwinMetrics {
    /// Metrics registered nowhere.
    fn default() -> Self {
        Self::register(&mut Registry::default())
    }
}

impl TwinMetrics {
    /// Registers every metric in `registry` (give it the `dtwin_twin` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            readings: Counter::default(),
            machines: Gauge::default(),
            publish_errors: Counter::default(),
            control: CounterVec::default(),
        };
        let r = registry;
        r.register(
            "readings_published",
            "Telemetry readings handed to the MQTT client",
            m.readings.clone(),
        );
        r.register("machines", "Simulated machines", m.machines.clone());
        r.register(
            "publish_errors",
            "Publishes refused by a closed connection (telemetry, statuses, dead letters)",
            m.publish_errors.clone(),
        );
        r.register(
            "control_commands",
            "Control commands applied or rejected",
            m.control.clone(),
        );
        m
    }

    /// Counts a control command: applied (`true`) or rejected.
    pub fn control(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.control.get_or_create(&label("result", result)).inc();
    }

    /// Counts a failed publish and passes the result on.
    ///
    /// # Errors
    /// The publish's own error.
    pub fn publish_result<E>(&self, r: Result<(), E>) -> Result<(), E> {
        if r.is_err() {
            self.publish_errors.inc();
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_it_is_told() {
        let mut r = Registry::with_prefix("dtwin_twin");
        let m = TwinMetrics::register(&mut r);
        m.machines.set(20);
        m.readings.inc_by(40);
        m.control(true);
        m.control(false);
        m.control(false);
        assert!(m.publish_result(Ok::<(), ()>(())).is_ok());
        assert!(m.publish_result(Err::<(), _>("closed")).is_err());
        let text = dtwin_obs::render(&r);
        for line in [
            "dtwin_twin_machines 20",
            "dtwin_twin_readings_published_total 40",
            "dtwin_twin_publish_errors_total 1",
            "dtwin_twin_control_commands_total{result=\"applied\"} 1",
            "dtwin_twin_control_commands_total{result=\"rejected\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
