//! The crate's errors: a payload that is not Sparkplug B protobuf, a topic outside the
//! `spBv1.0` namespace.

/// The bytes are not a well-formed Sparkplug B payload (prost's message, kept as text so the
/// error type does not leak prost into callers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Sparkplug B protobuf payload: {0}")]
pub struct DecodeError(pub String);

/// Why a topic is not a Sparkplug B topic this host understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The first level is not `spBv1.0`.
    #[error("topic {0:?} is not in the spBv1.0 namespace")]
    Namespace(String),
    /// The message type level is not one of NBIRTH, NDATA, NDEATH, DBIRTH, DDATA, DDEATH,
    /// NCMD, DCMD (or STATE).
    #[error("unknown Sparkplug message type {0:?}")]
    MessageType(String),
    /// The number of levels does not fit the message type.
    #[error("topic {0:?} has the wrong number of levels for its message type")]
    Levels(String),
    /// A group, edge node, device or host id is empty or holds `+` or `#`.
    #[error("bad Sparkplug id {0:?}: empty or holding + or #")]
    Id(String),
}
