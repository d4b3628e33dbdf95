//! Live control of the twin over MQTT: `{prefix}/control/twin` takes JSON commands
//! (`proto-schemas/control.schema.json`). A command that cannot be applied is answered with a
//! dead letter on `{prefix}/deadletter/twin`, never by stopping the twin.
//!
//! ```json
//! {"command": "inject", "machine_id": "machine-003", "fault": "bearing"}
//! ```

use dtwin_schema::{RejectReason, Rejection};
use dtwin_twin_sim::Fault;
use serde::Deserialize;

/// Control schema id.
pub const CONTROL_SCHEMA: &str = "dtwin.control.twin.v1";

/// A decoded control command.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlCommand {
    /// Start `fault` on machine `machine_id` now.
    Inject {
        /// The machine.
        machine_id: String,
        /// The fault.
        fault: Fault,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(default)]
    schema: Option<String>,
    command: String,
    machine_id: String,
    fault: String,
}

/// Largest control message accepted.
pub const MAX_CONTROL_BYTES: usize = 4096;

/// Decodes a control message.
///
/// # Errors
/// A [`Rejection`] with the reason (not JSON, missing field, unknown command or fault, bad
/// machine id, oversize). Whether the machine exists is the caller's question.
pub fn decode(payload: &[u8]) -> Result<ControlCommand, Rejection> {
    if payload.len() > MAX_CONTROL_BYTES {
        return Err(Rejection::new(
            RejectReason::Oversize,
            format!("{} bytes; at most {MAX_CONTROL_BYTES}", payload.len()),
        ));
    }
    let w: Wire = serde_json::from_slice(payload).map_err(Rejection::from_json)?;
    if let Some(s) = &w.schema {
        if s != CONTROL_SCHEMA {
            return Err(Rejection::new(
                RejectReason::UnknownSchema,
                format!("schema {s:?}; expected {CONTROL_SCHEMA:?}"),
            ));
        }
    }
    dtwin_schema::MachineId::parse(&w.machine_id)
        .map_err(|e| Rejection::new(RejectReason::BadMachineId, e.to_string()))?;
    match w.command.as_str() {
        "inject" => {
            let fault = w
                .fault
                .parse::<Fault>()
                .map_err(|e| Rejection::new(RejectReason::WrongType, e.to_string()))?;
            Ok(ControlCommand::Inject {
                machine_id: w.machine_id,
                fault,
            })
        }
        other => Err(Rejection::new(
            RejectReason::WrongType,
            format!("unknown command {other:?}; known: inject"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_inject() {
        let c =
            decode(br#"{"command":"inject","machine_id":"machine-003","fault":"drift:vibration"}"#)
                .unwrap();
        assert_eq!(
            c,
            ControlCommand::Inject {
                machine_id: "machine-003".into(),
                fault: "drift:vibration".parse().unwrap()
            }
        );
    }

    #[test]
    fn rejects_with_reasons() {
        let r = |p: &[u8]| decode(p).unwrap_err().reason;
        assert_eq!(r(b"nope"), RejectReason::NotJson);
        assert_eq!(
            r(br#"{"command":"inject","machine_id":"m-1"}"#),
            RejectReason::MissingField
        );
        assert_eq!(
            r(br#"{"command":"inject","machine_id":"m/1","fault":"bearing"}"#),
            RejectReason::BadMachineId
        );
        assert_eq!(
            r(br#"{"command":"explode","machine_id":"m-1","fault":"bearing"}"#),
            RejectReason::WrongType
        );
        assert_eq!(
            r(br#"{"command":"inject","machine_id":"m-1","fault":"melt"}"#),
            RejectReason::WrongType
        );
        assert_eq!(
            r(br#"{"schema":"x","command":"inject","machine_id":"m-1","fault":"bearing"}"#),
            RejectReason::UnknownSchema
        );
        assert_eq!(r(&vec![b' '; 5000]), RejectReason::Oversize);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
        }
    }
}
