//! The verdict subscriber: every answer (a risk verdict, or the telemetry itself when
//! measuring the broker alone) and, optionally, every feature vector, with the time it
//! arrived. It records telemetry -> answer latencies for readings of the measured window and
//! counts loss and duplicates by `seq`.

use super::template::machine_index;
use super::{Kind, Window};
use crate::loadstats::{LatencyHist, SeqLedger, Step};
use anyhow::Context;
use dtwin_bus::{Brokers, BusConfig, Connection, QoS, Subscription};
use dtwin_schema::{TopicKind, Topics};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Incoming messages buffered for the listener (it only decodes ids, seqs and timestamps).
const LISTENER_INBOX: usize = 1 << 16;

/// Only the fields the listener needs from a risk verdict, feature vector or reading.
#[derive(serde::Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    machine_id: &'a str,
    seq: u64,
    #[serde(borrow)]
    ts: &'a str,
    #[serde(borrow, default)]
    source_ts: Option<&'a str>,
}

/// What the listener heard: answers (risk, or telemetry for the broker alone), feature vectors
/// (when probed) and latencies.
#[derive(Debug, Clone)]
pub(super) struct Heard {
    answers: SeqLedger,
    features: Option<SeqLedger>,
    latency: LatencyHist,
}

impl Heard {
    /// Nothing heard yet from machines whose seqs start at `base[m]`, at most `span` each.
    pub(super) fn new(base: Vec<u64>, span: u64, probe_features: bool) -> Self {
        Self {
            features: probe_features.then(|| SeqLedger::new(base.clone(), span)),
            answers: SeqLedger::new(base, span),
            latency: LatencyHist::default(),
        }
    }

    /// One message on `topic`, received at `now`: a feature vector counts as delivered; an
    /// answer counts as answered, and its latency is recorded when its reading's `ts` (the
    /// verdict's `source_ts`) is in `window`. Anything else is ignored.
    pub(super) fn hear(
        &mut self,
        topics: &Topics,
        topic: &str,
        payload: &[u8],
        now: OffsetDateTime,
        window: Window,
    ) {
        let Some((topic_kind, _)) = topics.parse(topic) else {
            return;
        };
        let Ok(p) = serde_json::from_slice::<Probe>(payload) else {
            return;
        };
        let Some(i) = machine_index(p.machine_id) else {
            return;
        };
        if topic_kind == TopicKind::Features {
            if let Some(f) = self.features.as_mut() {
                f.received(i, p.seq);
            }
            return;
        }
        self.answers.received(i, p.seq);
        let origin = p.source_ts.unwrap_or(p.ts);
        if let Ok(origin) = OffsetDateTime::parse(origin, &Rfc3339) {
            if window.contains(origin) {
                self.latency
                    .record_ms((now - origin).as_seconds_f64() * 1000.0);
            }
        }
    }

    /// The readings published in the window, as (machine, (first seq, last seq)).
    pub(super) fn sent(&mut self, ranges: &[(usize, (u64, u64))]) {
        for &(m, (lo, hi)) in ranges {
            self.answers.sent_range(m, lo, hi);
            if let Some(f) = self.features.as_mut() {
                f.sent_range(m, lo, hi);
            }
        }
    }

    /// The step's figures over a window of `secs` seconds, and the (at most 10) machines that
    /// lost the most answers.
    pub(super) fn step(
        &self,
        machines: usize,
        target_per_s: f64,
        secs: f64,
    ) -> (Step, Vec<(usize, u64)>) {
        let answers = self.answers.tally();
        let delivered = self.features.as_ref().map(SeqLedger::tally);
        let step = Step::new(
            machines,
            target_per_s,
            &answers,
            delivered.as_ref(),
            &self.latency,
            secs,
        );
        (step, self.answers.worst(10))
    }
}

/// What the listener subscribes to: the answers of `kind` (risk verdicts at QoS 1, or the
/// telemetry itself at its own `qos`) and, with `probe_features`, feature vectors at QoS 0.
pub(super) fn subscriptions(
    topics: &Topics,
    kind: Kind,
    qos: QoS,
    probe_features: bool,
) -> Vec<Subscription> {
    let mut subs = vec![match kind {
        Kind::Pipeline => Subscription::new(topics.all(TopicKind::Risk), QoS::AtLeastOnce),
        Kind::BrokerAlone => Subscription::new(topics.all(TopicKind::Telemetry), qos),
    }];
    if probe_features {
        subs.push(Subscription::new(
            topics.all(TopicKind::Features),
            QoS::AtMostOnce,
        ));
    }
    subs
}

/// Connects the listener and waits until it is subscribed.
///
/// # Errors
/// Not subscribed within 10 s.
pub(super) async fn subscribe(
    url: &Brokers,
    subs: Vec<Subscription>,
) -> anyhow::Result<Connection> {
    let mut cfg = BusConfig::new(
        url.clone(),
        format!("dtwin-loadtest-sub-{}", std::process::id()),
    );
    cfg.inbox_capacity = LISTENER_INBOX;
    let sub = dtwin_bus::connect(&cfg, subs);
    anyhow::ensure!(
        sub.client.wait_ready(Duration::from_secs(10)).await,
        "cannot subscribe at {}",
        url
    );
    Ok(sub)
}

/// The listening task.
pub(super) struct Listener {
    stop: CancellationToken,
    task: JoinHandle<Heard>,
}

impl Listener {
    /// Hears every message of `sub` into `heard` until stopped.
    pub(super) fn spawn(
        mut sub: Connection,
        topics: Topics,
        mut heard: Heard,
        window: Window,
    ) -> Self {
        let stop = CancellationToken::new();
        let listening = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                let m = tokio::select! {
                    _ = listening.cancelled() => break,
                    m = sub.inbox.recv() => match m { Some(m) => m, None => break },
                };
                let now = OffsetDateTime::now_utc();
                heard.hear(&topics, &m.topic, &m.payload, now, window);
            }
            sub.close().await;
            heard
        });
        Self { stop, task }
    }

    /// Stops listening, closes the connection and returns what was heard.
    ///
    /// # Errors
    /// The task did not stop within 10 s, or panicked.
    pub(super) async fn stop(self) -> anyhow::Result<Heard> {
        self.stop.cancel();
        let heard = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .context("the listener did not stop")??;
        Ok(heard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 10:00:00 UTC);

    fn window() -> Window {
        Window {
            start: T0,
            end: T0 + Duration::from_secs(10),
        }
    }

    fn risk(machine: &str, seq: u64, source_ts: &str) -> Vec<u8> {
        format!(
            r#"{{"machine_id":"{machine}","seq":{seq},"ts":"2026-01-01T11:00:00Z","source_ts":"{source_ts}","risk":0.1}}"#
        )
        .into_bytes()
    }

    fn reading(machine: &str, seq: u64, ts: &str) -> Vec<u8> {
        format!(r#"{{"machine_id":"{machine}","seq":{seq},"ts":"{ts}"}}"#).into_bytes()
    }

    #[test]
    fn answers_count_by_seq_and_time_from_the_readings_ts() {
        let topics = Topics::new("dt");
        let mut h = Heard::new(vec![1, 1], 16, true);
        let at = |ms: u64| T0 + Duration::from_millis(ms);
        let inside = "2026-01-01T10:00:01Z";
        let risk_topic = "dt/machines/lt-000000/risk";
        h.hear(
            &topics,
            risk_topic,
            &risk("lt-000000", 1, inside),
            at(1005),
            window(),
        );
        // A duplicate counts, but only once as answered.
        h.hear(
            &topics,
            risk_topic,
            &risk("lt-000000", 1, inside),
            at(1010),
            window(),
        );
        // Before the window: answered, but no latency.
        let early = "2026-01-01T09:59:59Z";
        h.hear(
            &topics,
            risk_topic,
            &risk("lt-000001", 2, early),
            at(1000),
            window(),
        );
        // Ignored: not a load-test machine, not JSON, not one of our topics.
        h.hear(
            &topics,
            risk_topic,
            &risk("m-1", 1, inside),
            at(1005),
            window(),
        );
        h.hear(&topics, risk_topic, b"not json", at(1005), window());
        h.hear(
            &topics,
            "other/x",
            &risk("lt-000000", 2, inside),
            at(1005),
            window(),
        );
        // A feature vector is delivered, not answered.
        let features = "dt/machines/lt-000001/features";
        h.hear(
            &topics,
            features,
            &reading("lt-000001", 1, inside),
            at(1005),
            window(),
        );
        h.sent(&[(0, (1, 2)), (1, (1, 2))]);
        let (step, worst) = h.step(2, 2.0, 2.0);
        assert_eq!((step.offered_per_s, step.verdicts_per_s), (2.0, 1.0));
        assert_eq!(step.delivered_per_s, Some(0.5));
        assert_eq!((step.lost, step.loss_pct, step.duplicates), (2, 50.0, 1));
        assert_eq!(worst, vec![(0, 1), (1, 1)]);
        assert_eq!(h.latency.count(), 2);
        let l = step.latency.unwrap();
        assert!(
            (l.p50_ms - 5.0).abs() < 0.01 && (l.max_ms - 10.0).abs() < 0.01,
            "{l:?}"
        );
    }

    #[test]
    fn broker_alone_answers_are_the_readings_themselves() {
        let topics = Topics::new("raw");
        let mut h = Heard::new(vec![1], 16, false);
        let topic = "raw/machines/lt-000000/telemetry";
        let ts = "2026-01-01T10:00:09.999Z";
        let now = T0 + Duration::from_millis(10_002);
        h.hear(&topics, topic, &reading("lt-000000", 1, ts), now, window());
        // The end of the window is outside it.
        let late = "2026-01-01T10:00:10Z";
        h.hear(
            &topics,
            topic,
            &reading("lt-000000", 2, late),
            now,
            window(),
        );
        h.sent(&[(0, (1, 1))]);
        let (step, worst) = h.step(1, 1.0, 1.0);
        assert_eq!((step.verdicts_per_s, step.delivered_per_s), (1.0, None));
        assert!(worst.is_empty());
        assert_eq!(h.latency.count(), 1);
        assert!((step.latency.unwrap().max_ms - 3.0).abs() < 0.01);
    }

    #[test]
    fn subscriptions_follow_what_is_measured() {
        let topics = Topics::new("dt");
        let filters = |subs: Vec<Subscription>| -> Vec<(String, QoS)> {
            subs.into_iter().map(|s| (s.filter, s.qos)).collect()
        };
        assert_eq!(
            filters(subscriptions(
                &topics,
                Kind::Pipeline,
                QoS::AtMostOnce,
                true
            )),
            vec![
                ("dt/machines/+/risk".to_owned(), QoS::AtLeastOnce),
                ("dt/machines/+/features".to_owned(), QoS::AtMostOnce)
            ]
        );
        assert_eq!(
            filters(subscriptions(
                &topics,
                Kind::BrokerAlone,
                QoS::AtLeastOnce,
                false
            )),
            vec![("dt/machines/+/telemetry".to_owned(), QoS::AtLeastOnce)]
        );
    }
}
