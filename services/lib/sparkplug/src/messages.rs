//! What the host application publishes: the rebirth request (NCMD `Node Control/Rebirth`)
//! and its Sparkplug 3.0 STATE birth and will on `spBv1.0/STATE/{host_id}`.

use crate::proto::{encode_payload, DataType, Metric, MetricValue, Payload};
use crate::topic::state_topic;
use serde::{Deserialize, Serialize};

/// The node control metric that asks an edge node to publish its births again.
pub const REBIRTH_METRIC: &str = "Node Control/Rebirth";

/// The payload of an NCMD asking an edge node to rebirth (`Node Control/Rebirth` = true),
/// stamped `now_ms` (milliseconds since the Unix epoch). Publish it on
/// [`EdgeNodeId::ncmd_topic`](crate::EdgeNodeId::ncmd_topic), QoS 0, not retained.
pub fn rebirth_request(now_ms: u64) -> Vec<u8> {
    let mut metric = Metric::named(REBIRTH_METRIC, None, DataType::Boolean)
        .with_value(MetricValue::BooleanValue(true));
    metric.timestamp = Some(now_ms);
    encode_payload(&Payload {
        timestamp: Some(now_ms),
        metrics: vec![metric],
        ..Payload::default()
    })
}

/// The JSON body of a Sparkplug 3.0 STATE message: `{"online":true,"timestamp":...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStateMessage {
    /// Whether the host application is online.
    pub online: bool,
    /// Milliseconds since the Unix epoch of the host's connection (the same in its birth and
    /// its will, so an edge node can tell a late will from the current birth).
    pub timestamp: u64,
}

impl HostStateMessage {
    /// The JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of a bool and a u64 always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses another host's STATE message.
    ///
    /// # Errors
    /// The JSON error when the bytes are not such an object.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The host application's STATE announcement for one MQTT connection: publish
/// [`birth`](Self::birth) retained at QoS 1 on [`topic`](Self::topic) once connected, and set
/// [`will`](Self::will) as the connection's last will (retained, QoS 1). Build a new one, with
/// a new timestamp, for every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAnnouncement {
    host_id: String,
    timestamp: u64,
}

impl HostAnnouncement {
    /// The announcement of `host_id` for a connection made at `now_ms`.
    pub fn new(host_id: &str, now_ms: u64) -> Self {
        Self {
            host_id: host_id.to_owned(),
            timestamp: now_ms,
        }
    }

    /// `spBv1.0/STATE/{host_id}`.
    pub fn topic(&self) -> String {
        state_topic(&self.host_id)
    }

    /// `{"online":true,"timestamp":now_ms}`.
    pub fn birth(&self) -> Vec<u8> {
        HostStateMessage {
            online: true,
            timestamp: self.timestamp,
        }
        .encode()
    }

    /// `{"online":false,"timestamp":now_ms}`, the same timestamp as the birth.
    pub fn will(&self) -> Vec<u8> {
        HostStateMessage {
            online: false,
            timestamp: self.timestamp,
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::decode_payload;

    #[test]
    fn rebirth_request_is_node_control_rebirth_true() {
        let p = decode_payload(&rebirth_request(1_700_000_000_000)).unwrap();
        assert_eq!(p.timestamp, Some(1_700_000_000_000));
        assert_eq!(p.seq, None);
        assert_eq!(p.metrics.len(), 1);
        let m = &p.metrics[0];
        assert_eq!(m.name.as_deref(), Some("Node Control/Rebirth"));
        assert_eq!(m.datatype, Some(DataType::Boolean.as_u32()));
        assert_eq!(m.value, Some(MetricValue::BooleanValue(true)));
    }

    #[test]
    fn state_birth_and_will() {
        let a = HostAnnouncement::new("dtwin", 42);
        assert_eq!(a.topic(), "spBv1.0/STATE/dtwin");
        assert_eq!(a.birth(), br#"{"online":true,"timestamp":42}"#);
        assert_eq!(a.will(), br#"{"online":false,"timestamp":42}"#);
        assert_eq!(
            HostStateMessage::decode(&a.will()).unwrap(),
            HostStateMessage {
                online: false,
                timestamp: 42
            }
        );
        assert!(HostStateMessage::decode(b"ONLINE").is_err());
    }
}
