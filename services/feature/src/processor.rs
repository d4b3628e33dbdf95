//! The pure core of the feature service: one telemetry payload in, publishes out.

use dtwin_features::{feature_set, MachineWindow, WindowConfig};
use dtwin_schema::{
    to_json, DeadLetter, MachineId, RejectReason, Rejection, Telemetry, TopicKind, Topics,
};
use std::collections::HashMap;
use time::OffsetDateTime;

/// The name under which this service dead-letters.
pub const SERVICE: &str = "feature";

/// Something to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A feature vector for `topic`.
    Features {
        /// `{prefix}/machines/{id}/features`
        topic: String,
        /// `dtwin.features.v1` JSON.
        payload: Vec<u8>,
    },
    /// A rejected input for `{prefix}/deadletter/feature`.
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
        /// Why.
        reason: RejectReason,
        /// `dtwin.deadletter.v1` JSON.
        payload: Vec<u8>,
    },
}

impl Outgoing {
    /// (topic, payload).
    pub fn into_parts(self) -> (String, Vec<u8>) {
        match self {
            Self::Features { topic, payload } | Self::DeadLetter { topic, payload, .. } => {
                (topic, payload)
            }
        }
    }
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessorStats {
    /// Readings turned into features.
    pub processed: u64,
    /// Inputs dead-lettered.
    pub rejected: u64,
    /// Machines with a window.
    pub machines: usize,
}

/// Every machine's window and the topic/feature-set context.
pub struct Processor {
    topics: Topics,
    cfg: WindowConfig,
    names: Vec<String>,
    hash: String,
    windows: HashMap<MachineId, MachineWindow>,
    stats: ProcessorStats,
}

impl Processor {
    /// A processor with no machines yet.
    pub fn new(topics: Topics, cfg: &WindowConfig) -> Self {
        let (names, hash) = feature_set(cfg);
        Self {
            topics,
            cfg: cfg.clone(),
            names,
            hash,
            windows: HashMap::new(),
            stats: ProcessorStats::default(),
        }
    }

    /// The feature-set hash stamped on every vector.
    pub fn feature_set(&self) -> &str {
        &self.hash
    }

    /// Counters since start.
    pub fn stats(&self) -> ProcessorStats {
        ProcessorStats {
            machines: self.windows.len(),
            ..self.stats
        }
    }

    /// Forgets the windows of machines `keep` rejects (they moved to another instance); if one
    /// comes back, its window starts again, cold.
    pub fn retain_machines(&mut self, keep: impl Fn(&str) -> bool) {
        self.windows.retain(|id, _| keep(id.as_str()));
    }

    /// Handles one payload received on `topic`, appending what to publish to `out`.
    pub fn handle(
        &mut self,
        topic: &str,
        payload: &[u8],
        now: OffsetDateTime,
        out: &mut Vec<Outgoing>,
    ) {
        match self.decode(topic, payload) {
            Ok(t) => {
                let window = self
                    .windows
                    .entry(t.machine_id.clone())
                    .or_insert_with(|| MachineWindow::new(&self.cfg));
                let fv = window.update(&t);
                let msg = fv.to_message(&self.names, &self.hash, &t, now);
                self.stats.processed += 1;
                out.push(Outgoing::Features {
                    topic: self.topics.features(&t.machine_id),
                    payload: to_json(&msg),
                });
            }
            Err((rejection, machine_id)) => {
                self.stats.rejected += 1;
                let mut dl =
                    DeadLetter::new(SERVICE, topic, payload, rejection.reason, rejection.detail);
                dl.machine_id = machine_id;
                out.push(Outgoing::DeadLetter {
                    topic: self.topics.deadletter(SERVICE),
                    reason: rejection.reason,
                    payload: to_json(&dl),
                });
            }
        }
    }

    fn decode(
        &self,
        topic: &str,
        payload: &[u8],
    ) -> Result<Telemetry, (Rejection, Option<MachineId>)> {
        let topic_id = match self.topics.parse(topic) {
            Some((TopicKind::Telemetry, raw)) => MachineId::parse(raw).map_err(|e| {
                (
                    Rejection::new(RejectReason::BadMachineId, format!("topic machine id: {e}")),
                    None,
                )
            })?,
            _ => {
                return Err((
                    Rejection::new(
                        RejectReason::TopicMismatch,
                        format!("not a telemetry topic: {topic}"),
                    ),
                    None,
                ))
            }
        };
        let t = Telemetry::decode(payload).map_err(|r| (r, Some(topic_id.clone())))?;
        if t.machine_id != topic_id {
            return Err((
                Rejection::new(
                    RejectReason::TopicMismatch,
                    format!(
                        "payload machine_id {} differs from topic machine id {topic_id}",
                        t.machine_id
                    ),
                ),
                Some(topic_id),
            ));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_schema::{from_json, Features};

    fn processor() -> Processor {
        Processor::new(Topics::default(), &WindowConfig::default())
    }

    fn good(id: &str, seq: u64) -> Vec<u8> {
        let mut t = Telemetry::new(
            MachineId::parse(id).unwrap(),
            OffsetDateTime::UNIX_EPOCH,
            seq,
        );
        t.temperature_c = Some(36.0);
        t.vibration_mm_s = Some(2.0);
        t.encode()
    }

    #[test]
    fn good_telemetry_becomes_features_on_the_machine_topic() {
        let mut p = processor();
        let mut out = Vec::new();
        p.handle(
            "dtwin/v1/machines/m-1/telemetry",
            &good("m-1", 1),
            OffsetDateTime::UNIX_EPOCH,
            &mut out,
        );
        let [Outgoing::Features { topic, payload }] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(topic, "dtwin/v1/machines/m-1/features");
        let f: Features = from_json(payload).unwrap();
        assert_eq!(f.seq, 1);
        assert_eq!(f.feature_set, p.feature_set());
        assert_eq!(f.values["temperature_c"], Some(36.0));
    }

    #[test]
    fn bad_inputs_are_dead_lettered_and_the_stream_goes_on() {
        let mut p = processor();
        let mut out = Vec::new();
        let cases: [(&str, &[u8], RejectReason); 5] = [
            (
                "dtwin/v1/machines/m-1/telemetry",
                b"{nope",
                RejectReason::NotJson,
            ),
            (
                "dtwin/v1/machines/m-1/telemetry",
                br#"{"schema":"dtwin.telemetry.v1"}"#,
                RejectReason::MissingField,
            ),
            (
                "dtwin/v1/machines/m-2/telemetry",
                &good("m-1", 1),
                RejectReason::TopicMismatch,
            ),
            (
                "dtwin/v1/machines/m%2/telemetry",
                &good("m-1", 1),
                RejectReason::BadMachineId,
            ),
            (
                "dtwin/v1/machines/m-1/telemetry",
                &String::from_utf8(good("m-1", 2))
                    .unwrap()
                    .replace("36.0", "-999")
                    .into_bytes(),
                RejectReason::OutOfRange,
            ),
        ];
        for (topic, payload, want) in cases {
            out.clear();
            p.handle(topic, payload, OffsetDateTime::UNIX_EPOCH, &mut out);
            let [Outgoing::DeadLetter {
                topic: dl_topic,
                reason,
                payload: dl,
            }] = &out[..]
            else {
                panic!("{out:?}")
            };
            assert_eq!(*reason, want, "{topic}");
            assert_eq!(dl_topic, "dtwin/v1/deadletter/feature");
            let d: DeadLetter = from_json(dl).unwrap();
            assert_eq!(d.reason, want);
            assert_eq!(d.topic, topic);
        }
        out.clear();
        p.handle(
            "dtwin/v1/machines/m-1/telemetry",
            &good("m-1", 3),
            OffsetDateTime::UNIX_EPOCH,
            &mut out,
        );
        assert!(matches!(out[..], [Outgoing::Features { .. }]));
        assert_eq!(
            p.stats(),
            ProcessorStats {
                processed: 1,
                rejected: 5,
                machines: 1
            }
        );
    }
}
