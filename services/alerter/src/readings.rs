//! A machine's latest readings as people read them: the machine profile's sensor labels and
//! units, in the profile's sensor order. Pure, so the e-mail templates only print strings.
//!
//! The profile comes from the verdict (`Risk::profile`, `None` = milling) and is looked up in
//! [`Profiles`], the profiles the alerter was given plus the built-in milling profile. A
//! reading the profile does not describe (or any reading of a profile the alerter does not
//! know) is still listed, by its sensor name: an e-mail never drops a value.

use dtwin_profile::Profile;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The id verdicts without a profile belong to.
pub const MILLING: &str = "milling";

/// The machine profiles the alerter knows, by id; milling always (a configured `milling`
/// replaces the built-in one). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Profiles {
    by_id: Arc<BTreeMap<String, Profile>>,
}

impl Default for Profiles {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Profiles {
    /// The built-in milling profile plus `profiles` (a later profile with the same id wins).
    pub fn new(profiles: &[Profile]) -> Self {
        let mut by_id = BTreeMap::new();
        let milling = Profile::milling();
        by_id.insert(milling.id.clone(), milling);
        for p in profiles {
            by_id.insert(p.id.clone(), p.clone());
        }
        Self {
            by_id: Arc::new(by_id),
        }
    }

    /// The profile a verdict names (`None` = milling), if known.
    pub fn get(&self, id: Option<&str>) -> Option<&Profile> {
        self.by_id.get(id.unwrap_or(MILLING))
    }
}

/// One reading, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// The sensor's label (its name when the profile does not describe it).
    pub label: String,
    /// The sensor's name in messages; shown beside the label so it can be matched with the
    /// factors and the dashboard.
    pub name: String,
    /// The value with at most 2 decimals and the unit, e.g. `176.2 V`.
    pub value: String,
}

/// `latest` in the profile's sensor order with its labels and units, then the readings the
/// profile does not describe, by name. `profile` is `None` for a profile the alerter does not
/// know (every reading by name).
pub fn readings(latest: &BTreeMap<String, f64>, profile: Option<&Profile>) -> Vec<Reading> {
    let sensors = profile.map_or(&[][..], |p| p.sensors.as_slice());
    let known = sensors.iter().filter_map(|s| {
        latest.get(&s.name).map(|v| Reading {
            label: s.label.clone(),
            name: s.name.clone(),
            value: with_unit(*v, &s.unit),
        })
    });
    let unknown = latest
        .iter()
        .filter(|(k, _)| !sensors.iter().any(|s| &s.name == *k))
        .map(|(k, v)| Reading {
            label: k.clone(),
            name: k.clone(),
            value: number(*v),
        });
    known.chain(unknown).collect()
}

/// What an e-mail says about the machine's profile: `None` for milling (today's e-mails name
/// no profile), else its label and id (`Water pump (pump)`), or just the id when unknown.
pub fn profile_name(id: Option<&str>, profile: Option<&Profile>) -> Option<String> {
    let id = id.filter(|id| *id != MILLING)?;
    Some(match profile {
        Some(p) if p.label != p.id => format!("{} ({id})", p.label),
        _ => id.to_owned(),
    })
}

/// `176.2 V`; just the number when the sensor has no unit.
fn with_unit(x: f64, unit: &str) -> String {
    if unit.is_empty() {
        number(x)
    } else {
        format!("{} {unit}", number(x))
    }
}

/// A reading with at most 2 decimals and no trailing zeros.
pub(crate) fn number(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUMP: &str = r#"
id = "pump"
label = "Water pump"

[[sensor]]
name = "volt"
label = "<b>Volt</b>"
unit = "V"
range = [0.0, 400.0]

[[sensor]]
name = "flow"
label = "Flow"
unit = "m3/h"
range = [0.0, 100.0]

[[sensor]]
name = "rotate"
range = [0.0, 5000.0]
"#;

    fn pump() -> Profile {
        Profile::parse(PUMP, "pump.toml").expect("valid profile")
    }

    #[test]
    fn profile_order_labels_and_units_then_unknown_by_name() {
        let latest = BTreeMap::from([
            ("rotate".to_owned(), 1500.0),
            ("volt".to_owned(), 176.2),
            ("zz_extra".to_owned(), 1.0),
            ("flow".to_owned(), 12.345),
        ]);
        let p = pump();
        let r = readings(&latest, Some(&p));
        let got: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.label.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("<b>Volt</b>", "176.2 V"),
                ("Flow", "12.35 m3/h"),
                ("rotate", "1500"),
                ("zz_extra", "1"),
            ]
        );
    }

    #[test]
    fn an_unknown_profile_lists_everything_by_name() {
        let latest = BTreeMap::from([("b".to_owned(), 2.0), ("a".to_owned(), 1.0)]);
        let r = readings(&latest, None);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].label.as_str(), r[0].value.as_str()), ("a", "1"));
    }

    #[test]
    fn milling_is_always_known_and_not_named() {
        let set = Profiles::new(&[pump()]);
        assert_eq!(set.get(None).map(|p| p.id.as_str()), Some("milling"));
        assert_eq!(set.get(Some("pump")).map(|p| p.id.as_str()), Some("pump"));
        assert!(set.get(Some("nope")).is_none());
        assert_eq!(profile_name(None, set.get(None)), None);
        assert_eq!(
            profile_name(Some("milling"), set.get(Some("milling"))),
            None
        );
        assert_eq!(
            profile_name(Some("pump"), set.get(Some("pump"))).as_deref(),
            Some("Water pump (pump)")
        );
        assert_eq!(profile_name(Some("nope"), None).as_deref(), Some("nope"));
    }
}
