//! The edge node side, for the twin and for tests: [`EdgeNode`] builds the topics and
//! payloads of one edge node's MQTT session (NBIRTH with its `bdSeq`, DBIRTH, NDATA, DDATA,
//! DDEATH with a running `seq`, and the NDEATH to set as its will).

use crate::host::BD_SEQ_METRIC;
use crate::proto::{encode_payload, DataType, Metric, MetricValue, Payload};
use crate::topic::{EdgeNodeId, MessageType, Topic};

/// One edge node's MQTT session: its `bdSeq` and the `seq` of its next message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeNode {
    node: EdgeNodeId,
    bd_seq: u64,
    seq: u8,
}

/// A message to publish: topic and payload.
pub type Message = (String, Vec<u8>);

impl EdgeNode {
    /// The session of `node` for an MQTT connection numbered `bd_seq` (0-255; increment it
    /// on every new connection).
    pub fn new(node: EdgeNodeId, bd_seq: u64) -> Self {
        Self {
            node,
            bd_seq,
            seq: 0,
        }
    }

    /// The edge node.
    pub fn node(&self) -> &EdgeNodeId {
        &self.node
    }

    /// The session's `bdSeq`.
    pub fn bd_seq(&self) -> u64 {
        self.bd_seq
    }

    /// The `seq` the next message will carry.
    pub fn seq(&self) -> u8 {
        self.seq
    }

    /// Skips `n` sequence numbers, as if messages were lost (for tests).
    pub fn skip(&mut self, n: u8) {
        self.seq = self.seq.wrapping_add(n);
    }

    fn topic(&self, kind: MessageType, device: Option<&str>) -> String {
        Topic::Edge {
            kind,
            node: self.node.clone(),
            device: device.map(str::to_owned),
        }
        .topic()
    }

    fn bd_seq_metric(&self) -> Metric {
        Metric::named(BD_SEQ_METRIC, None, DataType::Int64)
            .with_value(MetricValue::LongValue(self.bd_seq))
    }

    fn next(
        &mut self,
        kind: MessageType,
        device: Option<&str>,
        metrics: Vec<Metric>,
        ts: u64,
    ) -> Message {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let payload = Payload {
            timestamp: Some(ts),
            metrics,
            seq: Some(u64::from(seq)),
            ..Payload::default()
        };
        (self.topic(kind, device), encode_payload(&payload))
    }

    /// The NBIRTH: `seq` restarts at 0, `bdSeq` is added to `metrics` (each should have a
    /// name, a datatype and, for data by alias later, an alias).
    pub fn nbirth(&mut self, metrics: &[Metric], ts: u64) -> Message {
        self.seq = 0;
        let mut all = vec![self.bd_seq_metric()];
        all.extend_from_slice(metrics);
        self.next(MessageType::NBirth, None, all, ts)
    }

    /// The NDEATH, to set as the connection's will (no `seq`, only `bdSeq`).
    pub fn ndeath(&self) -> Message {
        let payload = Payload {
            metrics: vec![self.bd_seq_metric()],
            ..Payload::default()
        };
        (
            self.topic(MessageType::NDeath, None),
            encode_payload(&payload),
        )
    }

    /// A DBIRTH of `device`.
    pub fn dbirth(&mut self, device: &str, metrics: &[Metric], ts: u64) -> Message {
        self.next(MessageType::DBirth, Some(device), metrics.to_vec(), ts)
    }

    /// An NDATA.
    pub fn ndata(&mut self, metrics: &[Metric], ts: u64) -> Message {
        self.next(MessageType::NData, None, metrics.to_vec(), ts)
    }

    /// A DDATA of `device`.
    pub fn ddata(&mut self, device: &str, metrics: &[Metric], ts: u64) -> Message {
        self.next(MessageType::DData, Some(device), metrics.to_vec(), ts)
    }

    /// A DDEATH of `device`.
    pub fn ddeath(&mut self, device: &str, ts: u64) -> Message {
        self.next(MessageType::DDeath, Some(device), Vec::new(), ts)
    }
}

/// A data metric by alias only, as NDATA and DDATA should carry them.
pub fn by_alias(alias: u64, value: MetricValue) -> Metric {
    Metric {
        alias: Some(alias),
        value: Some(value),
        ..Metric::default()
    }
}
