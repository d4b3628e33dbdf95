//! The inference service's Prometheus metrics (prefix `dtwin_inference_`), updated by the
//! service loop after each message.

use dtwin_obs::prometheus_client::metrics::counter::Counter;
use dtwin_obs::prometheus_client::metrics::family::Family;
use dtwin_obs::prometheus_client::metrics::gauge::Gauge;
use dtwin_obs::prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use dtwin_obs::{label, CounterVec, GaugeVec, Labels, Registry};
use dtwin_schema::{DriftState, DriftStatus, Level, RiskStatus};
use std::sync::atomic::AtomicU64;

/// Float gauges by label set.
pub type FloatGaugeVec = Family<Labels, Gauge<f64, AtomicU64>>;

/// Every metric of the inference service. Cheap to clone (shared atomics).
#[derive(Clone)]
pub struct InferenceMetrics {
    /// `dtwin_inference_messages_in_total`: feature vectors received.
    pub messages_in: Counter,
    /// `dtwin_inference_messages_out_total`: risk verdicts published.
    pub messages_out: Counter,
    /// `dtwin_inference_rejected_total{reason}`: inputs dead-lettered, by reason.
    pub rejected: CounterVec,
    /// `dtwin_inference_verdicts_total{status,level}`: verdicts by status and level.
    pub verdicts: CounterVec,
    /// `dtwin_inference_cold_verdicts_total`: verdicts on a cold (half-empty) window.
    pub cold: Counter,
    /// `dtwin_inference_model_info{model_id,version,feature_set}`: 1 for the running model.
    pub model_info: GaugeVec,
    /// `dtwin_inference_model_swaps_total{result}`: deployed models accepted or refused.
    pub swaps: CounterVec,
    /// `dtwin_inference_scoring_seconds`: decode + forest + rules, per feature vector.
    pub scoring: Histogram,
    /// `dtwin_inference_batch_size`: feature vectors scored together (micro-batches).
    pub batch: Histogram,
    /// `dtwin_inference_telemetry_age_seconds`: verdict time minus the telemetry's `ts`.
    pub age: Histogram,
    /// `dtwin_inference_inbox_depth`: messages waiting in the service's MQTT inbox.
    pub inbox: Gauge,
    /// `dtwin_inference_drift_state{state}`: 1 for the current drift verdict.
    pub drift_state: GaugeVec,
    /// `dtwin_inference_drift_ks{feature}`: KS statistic of `risk` and of every drifted
    /// feature at the last evaluation.
    pub drift_ks: FloatGaugeVec,
    /// `dtwin_inference_drift_window`: scored vectors in the drift window.
    pub drift_window: Gauge,
    /// Vectors a quality, anomaly or rul model could not score (another feature set), by kind.
    pub kind_mismatch: CounterVec,
}

/// The running model's labels for `model_info`.
pub fn model_labels(model_id: &str, version: &str, feature_set: &str) -> Labels {
    vec![
        ("model_id".to_owned(), model_id.to_owned()),
        ("version".to_owned(), version.to_owned()),
        ("feature_set".to_owned(), feature_set.to_owned()),
    ]
}

impl InferenceMetrics {
    /// Registers every metric in `registry` (give it the `dtwin_inference` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            rejected: CounterVec::default(),
            verdicts: CounterVec::default(),
            cold: Counter::default(),
            model_info: GaugeVec::default(),
            swaps: CounterVec::default(),
            scoring: Histogram::new(dtwin_obs::latency_buckets()),
            // 1, 2, 4, ... 4096.
            batch: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            // 1 ms to ~131 s, doubling: broker hops to a backlog after an outage.
            age: Histogram::new(exponential_buckets(1e-3, 2.0, 18)),
            inbox: Gauge::default(),
            drift_state: GaugeVec::default(),
            drift_ks: FloatGaugeVec::default(),
            drift_window: Gauge::default(),
            kind_mismatch: CounterVec::default(),
        };
        let r = registry;
        r.register(
            "messages_in",
            "Feature vectors received",
            m.messages_in.clone(),
        );
        r.register(
            "messages_out",
            "Risk verdicts published",
            m.messages_out.clone(),
        );
        r.register(
            "rejected",
            "Inputs dead-lettered, by reason",
            m.rejected.clone(),
        );
        r.register(
            "verdicts",
            "Risk verdicts by status and level",
            m.verdicts.clone(),
        );
        r.register(
            "cold_verdicts",
            "Verdicts on a cold window (flagged, not acted on by the alerter)",
            m.cold.clone(),
        );
        r.register(
            "model_info",
            "The running model (value 1)",
            m.model_info.clone(),
        );
        r.register(
            "model_swaps",
            "Deployed models accepted or refused",
            m.swaps.clone(),
        );
        r.register(
            "scoring_seconds",
            "Decoding and scoring one feature vector (forest and rules)",
            m.scoring.clone(),
        );
        r.register(
            "batch_size",
            "Feature vectors scored together (a micro-batch of what was already waiting)",
            m.batch.clone(),
        );
        r.register(
            "telemetry_age_seconds",
            "Verdict time minus the source telemetry's timestamp (end-to-end latency)",
            m.age.clone(),
        );
        r.register(
            "inbox_depth",
            "Messages waiting in the MQTT inbox",
            m.inbox.clone(),
        );
        r.register(
            "kind_mismatch",
            "Vectors a quality, anomaly or rul model skipped (trained on another feature set), by kind",
            m.kind_mismatch.clone(),
        );
        r.register(
            "drift_state",
            "Drift verdict against the model's training reference (value 1)",
            m.drift_state.clone(),
        );
        r.register(
            "drift_ks",
            "KS statistic of risk and of each drifted feature at the last drift evaluation",
            m.drift_ks.clone(),
        );
        r.register(
            "drift_window",
            "Scored vectors in the drift window",
            m.drift_window.clone(),
        );
        m
    }

    /// Counts a dead letter.
    pub fn rejected(&self, reason: &str) {
        self.rejected.get_or_create(&label("reason", reason)).inc();
    }

    /// Counts a verdict.
    pub fn verdict(&self, status: RiskStatus, level: Level, cold: bool) {
        let labels = vec![
            ("status".to_owned(), status.as_str().to_owned()),
            ("level".to_owned(), level.as_str().to_owned()),
        ];
        self.verdicts.get_or_create(&labels).inc();
        if cold {
            self.cold.inc();
        }
    }

    /// Makes `labels` the only running model.
    pub fn model(&self, labels: &Labels) {
        self.model_info.clear();
        self.model_info.get_or_create(labels).set(1);
    }

    /// Counts a deployed model, accepted or refused.
    pub fn swap(&self, accepted: bool) {
        let result = if accepted { "accepted" } else { "refused" };
        self.swaps.get_or_create(&label("result", result)).inc();
    }

    /// Records a drift status: its state, the window and the KS statistics worth watching.
    pub fn drift(&self, status: &DriftStatus) {
        let state = match status.state {
            DriftState::Ok => "ok",
            DriftState::Drift => "drift",
            DriftState::WarmingUp => "warming_up",
            DriftState::NoReference => "no_reference",
        };
        self.drift_state.clear();
        self.drift_state
            .get_or_create(&label("state", state))
            .set(1);
        self.drift_window
            .set(i64::try_from(status.window).unwrap_or(i64::MAX));
        self.drift_ks.clear();
        let watched = status
            .risk
            .iter()
            .chain(status.features.iter().filter(|s| s.drift));
        for s in watched {
            self.drift_ks
                .get_or_create(&label("feature", s.feature.clone()))
                .set(s.ks);
        }
    }
}
