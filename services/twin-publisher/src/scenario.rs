//! Scenario events: "machine X enters fault F at time T", written `machine-003:bearing@10s`.

use dtwin_twin_sim::{Fault, Fleet};
use std::time::Duration;

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioEvent {
    /// Machine id, e.g. `machine-003`.
    pub machine: String,
    /// The fault that starts.
    pub fault: Fault,
    /// Wall-clock time after start.
    pub at: Duration,
}

/// A scenario event that cannot be parsed or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// Not of the form `MACHINE:FAULT@SECONDSs`.
    #[error("scenario {0:?}: expected MACHINE:FAULT[@SECONDS], e.g. machine-003:bearing@10")]
    Syntax(String),
    /// The fault name is unknown.
    #[error("scenario {input:?}: {why}")]
    Fault {
        /// The event text.
        input: String,
        /// The parser's message (lists the valid faults).
        why: String,
    },
    /// No machine has that id.
    #[error("scenario names machine {0:?}, which is not in the fleet")]
    UnknownMachine(String),
}

impl std::str::FromStr for ScenarioEvent {
    type Err = ScenarioError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, at) = match s.rsplit_once('@') {
            Some((r, t)) => {
                let secs: f64 = t
                    .trim_end_matches('s')
                    .parse()
                    .map_err(|_| ScenarioError::Syntax(s.to_owned()))?;
                if !(secs.is_finite() && secs >= 0.0) {
                    return Err(ScenarioError::Syntax(s.to_owned()));
                }
                (r, Duration::from_secs_f64(secs))
            }
            None => (s, Duration::ZERO),
        };
        let (machine, fault) = rest
            .split_once(':')
            .ok_or_else(|| ScenarioError::Syntax(s.to_owned()))?;
        let fault: Fault =
            fault.parse().map_err(
                |e: <Fault as std::str::FromStr>::Err| ScenarioError::Fault {
                    input: s.to_owned(),
                    why: e.to_string(),
                },
            )?;
        Ok(Self {
            machine: machine.to_owned(),
            fault,
            at,
        })
    }
}

/// A scenario event bound to a fleet index.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Index in the fleet.
    pub index: usize,
    /// The fault.
    pub fault: Fault,
    /// When.
    pub at: Duration,
}

/// Binds events to fleet indices, sorted by time.
///
/// # Errors
/// [`ScenarioError::UnknownMachine`] for an id not in the fleet.
pub fn resolve(events: &[ScenarioEvent], fleet: &Fleet) -> Result<Vec<Resolved>, ScenarioError> {
    let mut out = events
        .iter()
        .map(|e| {
            let index = fleet
                .machines
                .iter()
                .position(|m| m.id().as_str() == e.machine)
                .ok_or_else(|| ScenarioError::UnknownMachine(e.machine.clone()))?;
            Ok(Resolved {
                index,
                fault: e.fault,
                at: e.at,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|r| r.at);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events() {
        let e: ScenarioEvent = "machine-003:bearing@10s".parse().unwrap();
        assert_eq!(e.machine, "machine-003");
        assert_eq!(e.at, Duration::from_secs(10));
        let e: ScenarioEvent = "machine-001:coolant".parse().unwrap();
        assert_eq!(e.at, Duration::ZERO);
        assert!(matches!(
            "nocolon".parse::<ScenarioEvent>(),
            Err(ScenarioError::Syntax(_))
        ));
        assert!(matches!(
            "m:bearing@-3".parse::<ScenarioEvent>(),
            Err(ScenarioError::Syntax(_))
        ));
        assert!(matches!(
            "m:nonsense".parse::<ScenarioEvent>(),
            Err(ScenarioError::Fault { .. })
        ));
    }
}
