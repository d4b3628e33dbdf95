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
    /// A scenario file that is not valid TOML of the documented shape.
    #[error("scenario file: {0}")]
    File(String),
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

/// Parses a scenario file (TOML):
///
/// ```toml
/// [[event]]
/// machine = "machine-003"
/// fault = "bearing"      # as on the command line: bearing, coolant, valve, tool-wear, drift:SENSOR, ...
/// at_s = 10              # seconds of stream time after the start (default 0)
/// ```
///
/// # Errors
/// [`ScenarioError::File`] with the TOML error (it names line and column), or the event's
/// own error.
pub fn parse_file(text: &str) -> Result<Vec<ScenarioEvent>, ScenarioError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        event: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        machine: String,
        fault: String,
        #[serde(default)]
        at_s: f64,
    }
    let f: File = toml::from_str(text).map_err(|e| ScenarioError::File(e.to_string()))?;
    f.event
        .into_iter()
        .map(|e| format!("{}:{}@{}", e.machine, e.fault, e.at_s).parse())
        .collect()
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
    fn parses_files() {
        let ev = parse_file(
            "[[event]]\nmachine = \"machine-003\"\nfault = \"bearing\"\nat_s = 10\n\n[[event]]\nmachine = \"machine-001\"\nfault = \"drift:vibration\"\n",
        )
        .unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].at, Duration::from_secs(10));
        assert_eq!(ev[1].fault, "drift:vibration".parse().unwrap());
        let e = parse_file("[[event]]\nmachine = \"m\"\n").unwrap_err();
        assert!(e.to_string().contains("fault"), "{e}");
        let e = parse_file("[[event]]\nmachine = \"m\"\nfault = \"melt\"\n").unwrap_err();
        assert!(matches!(e, ScenarioError::Fault { .. }), "{e}");
        let e = parse_file("[[event]]\nmachine = \"m\"\nfault = \"bearing\"\ncolour = 1\n")
            .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

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
