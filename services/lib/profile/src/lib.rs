//! Machine profiles as data. A profile describes one kind of machine: its sensors (name, unit,
//! valid range, the payload key or CSV column a value comes from, a label for forms and
//! e-mails), derived features as expressions over the sensors, windows in readings or time,
//! statistics, categorical attributes with their values, the failure labels that exist and the
//! ones the model counts, and the expert rules. The shipped `milling` profile
//! ([`Profile::milling`], `profiles/milling.toml`) describes the simulated fleet.
//!
//! A profile is checked once, when it is read: a bad one is a [`ProfileError`] naming the
//! file, the line and the reason, so a service refuses it at start instead of misreading
//! readings later.
//!
//! # Layout
//! - this file: [`Profile`] and its parts, [`Profile::parse`].
//! - [`error`]: [`ProfileError`], located at a line of the source.
//! - [`expr`]: [`Expr`], a derived feature's formula, parsed once and evaluated per reading.
//! - [`duration`]: window spans such as `60s`, `10m`, `24h`, `7d`.
//! - [`draft`]: a profile drafted from an export's columns (`dtwin profile init`).

pub mod draft;
pub mod duration;
pub mod error;
pub mod expr;

pub use error::{ProfileError, ProfileErrorKind};
pub use expr::Expr;

use std::collections::BTreeSet;
use std::time::Duration;
use toml::Spanned;

/// The shipped profile of the simulated milling fleet.
pub const MILLING: &str = include_str!("../profiles/milling.toml");

/// Statistics a window can compute per sensor.
pub const STATS: [&str; 5] = ["mean", "std", "min", "max", "slope"];

/// One kind of machine.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Its id (`[A-Za-z0-9_.-]`), as machines and models name it.
    pub id: String,
    /// A name for people.
    pub label: String,
    /// The sensors, in feature order.
    pub sensors: Vec<Sensor>,
    /// Derived features over the sensors' latest values, in feature order.
    pub derived: Vec<Derived>,
    /// The windows.
    pub windows: Windows,
    /// Categorical attributes.
    pub attributes: Vec<Attribute>,
    /// Failure labels.
    pub failures: Failures,
    /// The expert rules: `default` (the shipped rules) or a path relative to the profile.
    pub rules: String,
}

/// A measured quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// Its name in features and messages.
    pub name: String,
    /// A label for forms and e-mails.
    pub label: String,
    /// Its unit, as printed.
    pub unit: String,
    /// Smallest valid value.
    pub min: f64,
    /// Largest valid value.
    pub max: f64,
    /// The payload key or CSV column it comes from.
    pub key: String,
}

impl Sensor {
    /// Whether `v` is a valid reading of this sensor (finite and within its range).
    pub fn accepts(&self, v: f64) -> bool {
        v.is_finite() && v >= self.min && v <= self.max
    }
}

/// A feature computed from the sensors' latest values.
#[derive(Debug, Clone)]
pub struct Derived {
    /// Its name in features.
    pub name: String,
    /// Its unit, if it has one.
    pub unit: String,
    /// The formula.
    pub expr: Expr,
}

/// Which windows a profile's features use.
#[derive(Debug, Clone, PartialEq)]
pub struct Windows {
    /// Readings in the short count window.
    pub short: Option<usize>,
    /// Readings in the long count window.
    pub long: Option<usize>,
    /// Time windows, in message time.
    pub time: Vec<Duration>,
    /// Statistics of the short window per sensor.
    pub short_stats: Vec<String>,
}

/// A categorical attribute: encoded as its value's position in `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// Its name in features and messages.
    pub name: String,
    /// A label for people.
    pub label: String,
    /// The values it may take, in code order.
    pub values: Vec<String>,
}

impl Attribute {
    /// The code of `value`: its position, or `None` for a value the profile does not list.
    pub fn code(&self, value: &str) -> Option<usize> {
        self.values.iter().position(|v| v == value)
    }
}

/// The failure labels of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Failures {
    /// Every label a reading or an event log may carry (free strings).
    pub labels: Vec<String>,
    /// The labels the model counts by default.
    pub counted: Vec<String>,
}

impl Profile {
    /// The shipped milling profile.
    ///
    /// # Panics
    /// Never: the file is checked by this crate's tests.
    pub fn milling() -> Self {
        // The file is part of the binary and parsed by the tests; a failure is a build defect.
        Self::parse(MILLING, "profiles/milling.toml").expect("the shipped milling profile")
    }

    /// Reads and checks a profile; `file` names it in errors.
    ///
    /// # Errors
    /// A [`ProfileError`] with the file, the line and the reason: TOML syntax, a missing or
    /// unknown field, a duplicate name, a bad range, an expression that does not parse or uses
    /// something that is not a sensor, a bad duration or statistic, a counted label that is
    /// not a label.
    pub fn parse(text: &str, file: &str) -> Result<Self, ProfileError> {
        let at = |span: std::ops::Range<usize>, kind| ProfileError::at(file, text, span, kind);
        let raw: raw::Profile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            at(span, ProfileErrorKind::Syntax(e.message().to_owned()))
        })?;
        if !valid_id(raw.id.get_ref()) {
            return Err(at(
                raw.id.span(),
                ProfileErrorKind::BadName(raw.id.into_inner()),
            ));
        }
        if raw.sensor.is_empty() {
            return Err(at(0..0, ProfileErrorKind::NoSensors));
        }
        let mut names = BTreeSet::new();
        let mut sensors = Vec::with_capacity(raw.sensor.len());
        for s in raw.sensor {
            let name = unique_name(&s.name, &mut names, &at)?;
            let [min, max] = *s.range.get_ref();
            if !(min.is_finite() && max.is_finite() && min < max) {
                return Err(at(s.range.span(), ProfileErrorKind::BadRange { min, max }));
            }
            sensors.push(Sensor {
                key: s.key.unwrap_or_else(|| name.clone()),
                label: s.label.unwrap_or_else(|| name.clone()),
                unit: s.unit.unwrap_or_default(),
                name,
                min,
                max,
            });
        }
        let sensor_names: Vec<&str> = sensors.iter().map(|s| s.name.as_str()).collect();
        let mut derived = Vec::with_capacity(raw.derived.len());
        for d in raw.derived {
            let name = unique_name(&d.name, &mut names, &at)?;
            let expr = Expr::parse(d.expr.get_ref(), &sensor_names)
                .map_err(|kind| at(d.expr.span(), kind))?;
            derived.push(Derived {
                name,
                unit: d.unit.unwrap_or_default(),
                expr,
            });
        }
        let windows = windows(raw.windows, &at)?;
        let mut attributes = Vec::with_capacity(raw.attribute.len());
        for a in raw.attribute {
            let name = unique_name(&a.name, &mut names, &at)?;
            if a.values.get_ref().is_empty() {
                return Err(at(a.values.span(), ProfileErrorKind::NoValues(name)));
            }
            attributes.push(Attribute {
                label: a.label.unwrap_or_else(|| name.clone()),
                name,
                values: a.values.into_inner(),
            });
        }
        let failures = match raw.failures {
            None => Failures {
                labels: Vec::new(),
                counted: Vec::new(),
            },
            Some(f) => {
                let labels = f.labels;
                let span = f.counted.as_ref().map_or(0..0, Spanned::span);
                let counted = f.counted.map(Spanned::into_inner);
                if let Some(c) = counted
                    .as_ref()
                    .and_then(|c| c.iter().find(|c| !labels.contains(c)))
                {
                    return Err(at(span, ProfileErrorKind::UnknownLabel(c.clone())));
                }
                Failures {
                    counted: counted.unwrap_or_else(|| labels.clone()),
                    labels,
                }
            }
        };
        Ok(Self {
            id: raw.id.into_inner(),
            label: raw.label,
            sensors,
            derived,
            windows,
            attributes,
            failures,
            rules: raw.rules.unwrap_or_else(|| "default".to_owned()),
        })
    }

    /// The sensor called `name`.
    pub fn sensor(&self, name: &str) -> Option<&Sensor> {
        self.sensors.iter().find(|s| s.name == name)
    }

    /// The derived features' values for one set of sensor values (in sensor order; NaN where
    /// a sensor is missing, which makes every feature that uses it NaN).
    pub fn derive(&self, sensors: &[f64]) -> Vec<f64> {
        self.derived.iter().map(|d| d.expr.eval(sensors)).collect()
    }
}

fn windows(
    raw: Option<raw::Windows>,
    at: &impl Fn(std::ops::Range<usize>, ProfileErrorKind) -> ProfileError,
) -> Result<Windows, ProfileError> {
    let Some(w) = raw else {
        return Ok(Windows {
            short: None,
            long: None,
            time: Vec::new(),
            short_stats: Vec::new(),
        });
    };
    for (size, span) in [&w.short, &w.long]
        .into_iter()
        .flatten()
        .map(|s| (*s.get_ref(), s.span()))
    {
        if size < 2 {
            return Err(at(span, ProfileErrorKind::BadWindow(size)));
        }
    }
    let mut time = Vec::new();
    for t in w.time.unwrap_or_default() {
        let d = duration::parse(t.get_ref())
            .ok_or_else(|| at(t.span(), ProfileErrorKind::BadDuration(t.get_ref().clone())))?;
        time.push(d);
    }
    let mut short_stats = Vec::new();
    for s in w.short_stats.unwrap_or_default() {
        if !STATS.contains(&s.get_ref().as_str()) {
            return Err(at(s.span(), ProfileErrorKind::UnknownStat(s.into_inner())));
        }
        short_stats.push(s.into_inner());
    }
    Ok(Windows {
        short: w.short.map(Spanned::into_inner),
        long: w.long.map(Spanned::into_inner),
        time,
        short_stats,
    })
}

/// `name` checked as an id and not used before in this profile.
fn unique_name(
    name: &Spanned<String>,
    seen: &mut BTreeSet<String>,
    at: &impl Fn(std::ops::Range<usize>, ProfileErrorKind) -> ProfileError,
) -> Result<String, ProfileError> {
    let n = name.get_ref();
    if !valid_id(n) || expr::RESERVED.contains(&n.as_str()) {
        return Err(at(name.span(), ProfileErrorKind::BadName(n.clone())));
    }
    if !seen.insert(n.clone()) {
        return Err(at(name.span(), ProfileErrorKind::DuplicateName(n.clone())));
    }
    Ok(n.clone())
}

/// Names of profiles, sensors and features: `[A-Za-z_][A-Za-z0-9_]*` (usable in expressions
/// and feature names), at most 64 characters. Profile ids may also hold `-` and `.`.
fn valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// The file as written, before checks.
mod raw {
    use serde::Deserialize;
    use toml::Spanned;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Profile {
        pub id: Spanned<String>,
        pub label: String,
        pub rules: Option<String>,
        #[serde(default)]
        pub sensor: Vec<Sensor>,
        #[serde(default)]
        pub derived: Vec<Derived>,
        pub windows: Option<Windows>,
        #[serde(default)]
        pub attribute: Vec<Attribute>,
        pub failures: Option<Failures>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Sensor {
        pub name: Spanned<String>,
        pub label: Option<String>,
        pub unit: Option<String>,
        pub range: Spanned<[f64; 2]>,
        pub key: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Derived {
        pub name: Spanned<String>,
        pub unit: Option<String>,
        pub expr: Spanned<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Windows {
        pub short: Option<Spanned<usize>>,
        pub long: Option<Spanned<usize>>,
        pub time: Option<Vec<Spanned<String>>>,
        pub short_stats: Option<Vec<Spanned<String>>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Attribute {
        pub name: Spanned<String>,
        pub label: Option<String>,
        pub values: Spanned<Vec<String>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Failures {
        pub labels: Vec<String>,
        pub counted: Option<Spanned<Vec<String>>>,
    }
}

#[cfg(test)]
mod tests;
