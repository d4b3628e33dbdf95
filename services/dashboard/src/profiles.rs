//! The machine profiles the dashboard knows (the configured ones plus the built-in milling
//! profile) and a machine's latest readings as people read them: the profile's sensor labels
//! and units, in the profile's sensor order. Pure.
//!
//! A reading the profile does not describe (or every reading of a profile the dashboard was
//! not given) is still shown, by its sensor name: nothing a machine reports is hidden.

use dtwin_profile::Profile;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The id of the built-in profile; verdicts without a profile are milling machines'.
pub const MILLING: &str = "milling";

/// Milling first, then the configured profiles in the order given (a configured `milling`
/// replaces the built-in one; a later duplicate id replaces an earlier one). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Profiles {
    list: Arc<Vec<Profile>>,
}

impl Default for Profiles {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Profiles {
    /// The built-in milling profile plus `profiles`.
    pub fn new(profiles: &[Profile]) -> Self {
        let mut list = vec![Profile::milling()];
        for p in profiles {
            match list.iter_mut().find(|q| q.id == p.id) {
                Some(q) => *q = p.clone(),
                None => list.push(p.clone()),
            }
        }
        Self {
            list: Arc::new(list),
        }
    }

    /// The profile a message names (`None` = milling), if known.
    pub fn get(&self, id: Option<&str>) -> Option<&Profile> {
        let id = id.unwrap_or(MILLING);
        self.list.iter().find(|p| p.id == id)
    }

    /// Every known profile, milling first.
    pub fn all(&self) -> &[Profile] {
        &self.list
    }

    /// Whether profiles other than milling are known (the what-if form then offers a choice).
    pub fn has_others(&self) -> bool {
        self.list.len() > 1
    }

    /// What to call a machine's profile: its label, or the id of one the dashboard does not
    /// know.
    pub fn label(&self, id: Option<&str>) -> String {
        self.get(id)
            .map_or_else(|| id.unwrap_or(MILLING).to_owned(), |p| p.label.clone())
    }
}

/// One reading, formatted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reading {
    /// The sensor's label (its name when the profile does not describe it).
    pub label: String,
    /// The sensor's name in messages.
    pub name: String,
    /// The value with at most 2 decimals and the unit, e.g. `176.2 V`.
    pub value: String,
}

/// `latest` in the profile's sensor order with its labels and units, then the readings the
/// profile does not describe, by name. `profile` is `None` for a profile the dashboard does
/// not know (every reading by name).
pub fn readings<'a>(
    latest: impl IntoIterator<Item = (&'a str, f64)>,
    profile: Option<&Profile>,
) -> Vec<Reading> {
    let sensors = profile.map_or(&[][..], |p| p.sensors.as_slice());
    let latest: BTreeMap<&str, f64> = latest.into_iter().collect();
    let known = sensors.iter().filter_map(|s| {
        latest.get(s.name.as_str()).map(|v| Reading {
            label: s.label.clone(),
            name: s.name.clone(),
            value: with_unit(*v, &s.unit),
        })
    });
    let unknown = latest
        .iter()
        .filter(|(k, _)| !sensors.iter().any(|s| s.name == **k))
        .map(|(k, v)| Reading {
            label: (*k).to_owned(),
            name: (*k).to_owned(),
            value: number(*v),
        });
    known.chain(unknown).collect()
}

/// `176.2 V`; just the number when the sensor has no unit.
pub fn with_unit(x: f64, unit: &str) -> String {
    if unit.is_empty() {
        number(x)
    } else {
        format!("{} {unit}", number(x))
    }
}

/// A value with at most 2 decimals and no trailing zeros.
pub fn number(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pump profile as a plant would write it.
    pub(crate) const PUMP: &str = r#"
id = "pump"
label = "Water pump"

[[sensor]]
name = "volt"
label = "Voltage"
unit = "V"
range = [0.0, 400.0]

[[sensor]]
name = "rotate"
label = "Rotation"
unit = "rpm"
range = [0.0, 5000.0]

[[sensor]]
name = "pressure"
label = "<b>Pressure</b>"
unit = "bar"
range = [0.0, 50.0]

[windows]
short = 3
short_stats = ["mean", "max"]
"#;

    pub(crate) fn pump() -> Profile {
        Profile::parse(PUMP, "pump.toml").expect("valid profile")
    }

    #[test]
    fn readings_follow_the_profile_then_unknown_names() {
        let p = pump();
        let r = readings(
            [
                ("zz", 1.0),
                ("pressure", 3.456),
                ("volt", 176.2),
                ("rotate", 1500.0),
            ],
            Some(&p),
        );
        let got: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.label.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Voltage", "176.2 V"),
                ("Rotation", "1500 rpm"),
                ("<b>Pressure</b>", "3.46 bar"),
                ("zz", "1"),
            ]
        );
        assert_eq!(readings([("volt", 1.0)], None)[0].label, "volt");
    }

    #[test]
    fn milling_is_always_known_and_listed_first() {
        let set = Profiles::new(&[pump()]);
        assert!(set.has_others());
        assert!(!Profiles::default().has_others());
        assert_eq!(set.all()[0].id, MILLING);
        assert_eq!(set.label(None), "Milling machine");
        assert_eq!(set.label(Some("pump")), "Water pump");
        assert_eq!(set.label(Some("nope")), "nope");
    }
}
