//! The message contract of dtwin: every payload, topic and id the services exchange.
//!
//! The JSON Schemas in `proto-schemas/` describe the same messages for integrators; the
//! workspace contract test validates live traffic against them, so the two cannot drift.
//!
//! # Layout
//! - [`machine_id`]: the [`MachineId`] newtype (parse, don't validate).
//! - [`topics`]: [`Topics`] builds every topic from the prefix and parses them back.
//! - [`telemetry`]: sensor readings and their fallible decoder with machine-readable reasons.
//! - [`telemetry_v2`]: the gateway payload (`dtwin.telemetry.v2`) and [`Telemetry::decode_on`].
//! - [`messages`]: features, risk verdicts, alert events, dead letters, machine status.
//! - [`time_fmt`]: RFC 3339 UTC timestamps.
//!
//! Nothing here does I/O; every conversion between bytes and types happens here, once.

pub mod machine_id;
pub mod messages;
pub mod telemetry;
pub mod telemetry_v2;
pub mod time_fmt;
pub mod topics;

pub use machine_id::{MachineId, MachineIdError};
pub use messages::*;
pub use telemetry::{RejectReason, Rejection, Telemetry, MAX_PAYLOAD_BYTES};
pub use telemetry_v2::{RawValue, Reading, TELEMETRY_V2_SCHEMA};
pub use topics::{TopicKind, Topics, DEFAULT_PREFIX};

use sha2::{Digest, Sha256};

/// A short, stable hash of an ordered list of feature names.
///
/// The feature service stamps it on every feature vector and the model artifact records the
/// one it was trained with; inference refuses a model whose hash differs.
pub fn feature_set_hash<S: AsRef<str>>(names: &[S]) -> String {
    let mut h = Sha256::new();
    for n in names {
        h.update(n.as_ref().as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_hash_depends_on_names_and_order() {
        let a = feature_set_hash(&["a", "b"]);
        assert_eq!(a.len(), 16);
        assert_ne!(a, feature_set_hash(&["b", "a"]));
        assert_ne!(a, feature_set_hash(&["ab"]));
        assert_eq!(a, feature_set_hash(&["a".to_string(), "b".to_string()]));
    }
}
