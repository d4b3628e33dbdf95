//! Sparkplug B host application core, pure: bytes, topics and a clock in, decisions out. No
//! MQTT and no tokio: the ingest service subscribes [`topic::FILTER`], feeds every message to
//! [`HostState::handle`] and carries out the [`Action`]s it returns (readings into the
//! feature path, retained statuses, NCMD rebirth requests, dead letters, profile drafts).
//!
//! ```
//! use dtwin_sparkplug::{by_alias, Action, DataType, EdgeNode, EdgeNodeId, HostConfig, HostState, Metric, MetricValue};
//!
//! let mut host = HostState::new(HostConfig::default());
//! let mut edge = EdgeNode::new(EdgeNodeId::new("plant1", "line4"), 0);
//! let now = 1_700_000_000_000;
//! let (topic, payload) = edge.nbirth(&[], now);
//! assert!(host.handle(&topic, &payload, now).is_empty());
//! let birth = [Metric::named("temperature", Some(1), DataType::Double)];
//! let (topic, payload) = edge.dbirth("press2", &birth, now);
//! host.handle(&topic, &payload, now); // Birth and Online for plant1.line4.press2
//! let (topic, payload) = edge.ddata("press2", &[by_alias(1, MetricValue::DoubleValue(21.5))], now);
//! let actions = host.handle(&topic, &payload, now);
//! assert!(matches!(&actions[..], [Action::Reading { machine, values, .. }]
//!     if machine.as_str() == "plant1.line4.press2" && values == &[("temperature".to_owned(), 21.5)]));
//! ```
//!
//! # Layout
//! - [`proto`]: the Sparkplug B payload (hand-written prost structs of Eclipse Tahu's
//!   `sparkplug_b.proto`, kept in `third_party/sparkplug/`), [`decode_payload`] and
//!   [`encode_payload`], [`DataType`].
//! - [`topic`]: [`Topic::parse`] for `spBv1.0/...` topics and the machine id of an edge node
//!   or device ([`machine_id`]).
//! - [`host`]: [`HostState`], the per edge node state machine (births, aliases, `seq`,
//!   `bdSeq`, rebirth requests) and its [`Action`]s.
//! - [`messages`]: what the host publishes: the rebirth NCMD payload and the Sparkplug 3.0
//!   STATE birth and will.
//! - [`edge`]: the other side, [`EdgeNode`]: an edge node's births, data and death with its
//!   `seq` and `bdSeq` (for the twin and for tests).
//! - [`error`]: [`DecodeError`], [`TopicError`].

#![warn(missing_docs)]

pub mod edge;
pub mod error;
pub mod host;
pub mod messages;
pub mod proto;
pub mod topic;

pub use edge::{by_alias, EdgeNode};
pub use error::{DecodeError, TopicError};
pub use host::{Action, DeadLetterReason, HostConfig, HostState, RebirthReason};
pub use messages::{rebirth_request, HostAnnouncement, HostStateMessage};
pub use proto::{decode_payload, encode_payload, DataType, Metric, MetricValue, Payload};
pub use topic::{machine_id, EdgeNodeId, MessageType, Topic};
