//! Where each machine belongs and how much it matters, read from the alerter's routing file
//! (`--routes`, the file `dtwin alerter --alert-routes` reads; `dtwin up` passes its own):
//! its `[[machine]]` entries give machine id patterns a production line and a criticality.
//! The dashboard only reads those entries (recipients, channels and anything the alerter adds
//! later are the alerter's), so the fleet view shows lines as configured rather than guessed
//! from ids. Pure.

use dtwin_schema::glob_match;
use serde::Deserialize;

/// One `[[machine]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MachineEntry {
    /// Machine id patterns (`*` matches any run of characters).
    pub machines: Vec<String>,
    /// The production line.
    #[serde(default)]
    pub line: Option<String>,
    /// Weight of the machine (the alerter orders digests by risk x criticality).
    #[serde(default)]
    pub criticality: Option<f64>,
}

/// The lines and criticality of machines (first matching entry wins, as in the alerter).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Routes {
    /// The `[[machine]]` entries, in file order.
    #[serde(default, rename = "machine")]
    pub machines: Vec<MachineEntry>,
}

/// Why a routing file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("routing file: {0}")]
pub struct RoutesError(#[from] toml::de::Error);

impl Routes {
    /// Reads the `[[machine]]` entries of a routing file (everything else is ignored).
    ///
    /// # Errors
    /// Not TOML, or `[[machine]]` entries of the wrong shape (with line and column).
    pub fn parse(text: &str) -> Result<Self, RoutesError> {
        Ok(toml::from_str(text)?)
    }

    fn entry(&self, machine: &str) -> Option<&MachineEntry> {
        self.machines
            .iter()
            .find(|m| m.machines.iter().any(|p| glob_match(p, machine)))
    }

    /// The machine's line, when the file names one.
    pub fn line(&self, machine: &str) -> Option<&str> {
        self.entry(machine).and_then(|m| m.line.as_deref())
    }

    /// The machine's criticality, when the file gives one.
    pub fn criticality(&self, machine: &str) -> Option<f64> {
        self.entry(machine).and_then(|m| m.criticality)
    }

    /// Every line the file names, sorted.
    pub fn lines(&self) -> Vec<String> {
        let mut l: Vec<String> = self
            .machines
            .iter()
            .filter_map(|m| m.line.clone())
            .collect();
        l.sort();
        l.dedup();
        l
    }

    /// Whether the file gives any machine a line or criticality.
    pub fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alerter's own example, with a route and a channel the dashboard does not read.
    const FILE: &str = r#"
[[machine]]
machines = ["press-*"]
line = "line-a"
criticality = 3

[[machine]]
machines = ["mill-0*", "lathe-7"]
line = "line-b"

[[machine]]
machines = ["*"]
criticality = 0.5

[[route]]
lines = ["line-a"]
min_level = "CRITICAL"
to = ["Line A on call <oncall-a@example.com>"]
channels = ["slack"]
"#;

    #[test]
    fn lines_and_criticality_come_from_the_first_matching_entry() {
        let r = Routes::parse(FILE).unwrap();
        assert_eq!(r.line("press-07"), Some("line-a"));
        assert_eq!(r.criticality("press-07"), Some(3.0));
        assert_eq!(r.line("mill-01"), Some("line-b"));
        assert_eq!(r.criticality("mill-01"), None);
        assert_eq!(r.line("lathe-7"), Some("line-b"));
        assert_eq!(r.line("pump-01"), None, "not guessed from the id");
        assert_eq!(r.criticality("pump-01"), Some(0.5));
        assert_eq!(r.lines(), ["line-a", "line-b"]);
        assert!(Routes::default().line("press-07").is_none());
    }

    #[test]
    fn a_bad_file_says_where() {
        let e = Routes::parse("[[machine]]\nmachines = \"press-*\"\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
