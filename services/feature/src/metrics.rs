//! The feature service's Prometheus metrics (prefix `dtwin_feature_`), fed from the pure
//! processor's counters after each message.

use crate::processor::ProcessorStats;
use dtwin_obs::prometheus_client::metrics::counter::Counter;
use dtwin_obs::prometheus_client::metrics::histogram::Histogram;
use dtwin_obs::{label, CounterVec, GaugeVec, Registry};

/// Every metric of the feature service. Cheap to clone (shared atomics).
#[derive(Clone)]
pub struct FeatureMetrics {
    /// `dtwin_feature_messages_in_total`: telemetry payloads received.
    pub messages_in: Counter,
    /// `dtwin_feature_readings_in_total`: readings decoded (a batch counts each).
    pub readings_in: Counter,
    /// `dtwin_feature_messages_out_total`: feature vectors published.
    pub messages_out: Counter,
    /// `dtwin_feature_rejected_total{reason}`: inputs dead-lettered, by reason.
    pub rejected: CounterVec,
    /// `dtwin_feature_duplicates_total`: readings dropped as duplicates.
    pub duplicates: Counter,
    /// `dtwin_feature_gaps_total`: readings missing by `seq`.
    pub gaps: Counter,
    /// `dtwin_feature_reordered_total`: readings put back in order.
    pub reordered: Counter,
    /// `dtwin_feature_restarts_total`: publishers that restarted their sequence.
    pub restarts: Counter,
    /// `dtwin_feature_evicted_total`: idle machines whose window was dropped.
    pub evicted: Counter,
    /// `dtwin_feature_stale_dropped_total`: readings shed for arriving later than --max-lag-s.
    pub stale: Counter,
    /// `dtwin_feature_unknown_values_total`: v2 `values` keys that are not sensors of the
    /// reading's profile (the reading is processed without them; the keys are logged at debug).
    pub unknown_values: Counter,
    /// `dtwin_feature_machines{worker}`: machines with a window.
    pub machines: GaugeVec,
    /// `dtwin_feature_held{worker}`: readings held for reordering.
    pub held: GaugeVec,
    /// `dtwin_feature_queue_depth{worker}`: messages waiting in a worker's queue.
    pub queue: GaugeVec,
    /// `dtwin_feature_processing_seconds`: dispatch to published, per message.
    pub processing: Histogram,
}

impl FeatureMetrics {
    /// Registers every metric in `registry` (give it the `dtwin_feature` prefix).
    pub fn register(registry: &mut Registry, workers: usize) -> Self {
        let m = Self {
            messages_in: Counter::default(),
            readings_in: Counter::default(),
            messages_out: Counter::default(),
            rejected: CounterVec::default(),
            duplicates: Counter::default(),
            gaps: Counter::default(),
            reordered: Counter::default(),
            restarts: Counter::default(),
            evicted: Counter::default(),
            stale: Counter::default(),
            unknown_values: Counter::default(),
            machines: GaugeVec::default(),
            held: GaugeVec::default(),
            queue: GaugeVec::default(),
            processing: Histogram::new(dtwin_obs::latency_buckets()),
        };
        let r = registry;
        r.register(
            "messages_in",
            "Telemetry payloads received",
            m.messages_in.clone(),
        );
        r.register(
            "readings_in",
            "Readings decoded (a gateway batch counts each reading)",
            m.readings_in.clone(),
        );
        r.register(
            "messages_out",
            "Feature vectors published",
            m.messages_out.clone(),
        );
        r.register(
            "rejected",
            "Inputs dead-lettered, by reason",
            m.rejected.clone(),
        );
        r.register(
            "duplicates",
            "Readings dropped as duplicates by seq",
            m.duplicates.clone(),
        );
        r.register(
            "gaps",
            "Readings missing by seq (lost or given up on)",
            m.gaps.clone(),
        );
        r.register(
            "reordered",
            "Readings that arrived out of order and were put back in order",
            m.reordered.clone(),
        );
        r.register(
            "restarts",
            "Publishers that restarted their sequence",
            m.restarts.clone(),
        );
        r.register(
            "evicted",
            "Idle machines whose window was dropped",
            m.evicted.clone(),
        );
        r.register(
            "stale_dropped",
            "Readings shed unprocessed for arriving later than --max-lag-s",
            m.stale.clone(),
        );
        r.register(
            "unknown_values",
            "Telemetry values ignored for not being sensors of the reading's profile",
            m.unknown_values.clone(),
        );
        r.register(
            "machines",
            "Machines with a window, per worker",
            m.machines.clone(),
        );
        r.register(
            "held",
            "Readings held for reordering, per worker",
            m.held.clone(),
        );
        r.register(
            "queue_depth",
            "Messages waiting in a worker's queue",
            m.queue.clone(),
        );
        r.register(
            "processing_seconds",
            "Time from dispatch to the last publish of a telemetry message",
            m.processing.clone(),
        );
        for w in 0..workers {
            m.queue_depth(w, 0);
        }
        m
    }

    /// Counts a dead letter.
    pub fn rejected(&self, reason: &str) {
        self.rejected.get_or_create(&label("reason", reason)).inc();
    }

    /// Sets a worker's queue depth.
    pub fn queue_depth(&self, worker: usize, depth: usize) {
        self.queue
            .get_or_create(&label("worker", worker.to_string()))
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Adds what changed between two snapshots of one worker's processor.
    pub fn add(&self, before: &ProcessorStats, now: &ProcessorStats) {
        let d = |a: u64, b: u64| b.saturating_sub(a);
        self.messages_in.inc_by(d(before.messages, now.messages));
        self.readings_in.inc_by(d(before.readings, now.readings));
        self.duplicates.inc_by(d(before.duplicates, now.duplicates));
        self.gaps.inc_by(d(before.gaps, now.gaps));
        self.reordered.inc_by(d(before.reordered, now.reordered));
        self.restarts.inc_by(d(before.restarts, now.restarts));
        self.evicted.inc_by(d(before.evicted, now.evicted));
        self.stale.inc_by(d(before.stale, now.stale));
        self.unknown_values
            .inc_by(d(before.unknown_values, now.unknown_values));
    }

    /// Sets a worker's gauges from its processor's counters.
    pub fn gauges(&self, worker: usize, now: &ProcessorStats) {
        let w = label("worker", worker.to_string());
        self.machines
            .get_or_create(&w)
            .set(i64::try_from(now.machines).unwrap_or(i64::MAX));
        self.held
            .get_or_create(&w)
            .set(i64::try_from(now.held).unwrap_or(i64::MAX));
    }
}
