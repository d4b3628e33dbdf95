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
//! - [`advice`]: the controllable inputs (`[[control]]`: bounds, step, cost of a change), the
//!   economics of advice (`[advice]`) and the optimiser that finds the setting to advise.

pub mod advice;
pub mod draft;
pub mod duration;
pub mod error;
pub mod expr;

pub use advice::{AdviceSettings, Control};
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
    /// The settings an operator can change (`[[control]]`), for the what-if optimiser; none
    /// in profiles that do not declare any.
    pub controls: Vec<Control>,
    /// What a failure and energy cost (`[advice]`), for the optimiser.
    pub advice: AdviceSettings,
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
    /// The span a person explores in the what-if form (`typical = [lo, hi]`, within the
    /// range; the range when not given).
    pub typical: [f64; 2],
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
            let typical = match s.typical {
                None => [min, max],
                Some(t) => {
                    let [lo, hi] = *t.get_ref();
                    if !(lo.is_finite() && hi.is_finite() && min <= lo && lo < hi && hi <= max) {
                        return Err(at(
                            t.span(),
                            ProfileErrorKind::BadBounds {
                                what: "typical",
                                min: lo,
                                max: hi,
                            },
                        ));
                    }
                    [lo, hi]
                }
            };
            sensors.push(Sensor {
                typical,
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
        let controls = controls(raw.control, &sensors, &at)?;
        let advice = match raw.advice {
            None => AdviceSettings::default(),
            Some(a) => advice_settings(a, &sensors, &derived, &at)?,
        };
        Ok(Self {
            controls,
            advice,
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

fn controls(
    raw: Vec<raw::Control>,
    sensors: &[Sensor],
    at: &impl Fn(std::ops::Range<usize>, ProfileErrorKind) -> ProfileError,
) -> Result<Vec<Control>, ProfileError> {
    let mut out: Vec<Control> = Vec::with_capacity(raw.len());
    for c in raw {
        let name = c.sensor.get_ref();
        let Some(s) = sensors.iter().find(|s| s.name == *name) else {
            return Err(at(
                c.sensor.span(),
                ProfileErrorKind::UnknownControl(name.clone()),
            ));
        };
        if out.iter().any(|o| o.sensor == *name) {
            return Err(at(
                c.sensor.span(),
                ProfileErrorKind::DuplicateName(name.clone()),
            ));
        }
        let [min, max] = *c.bounds.get_ref();
        if !(min.is_finite() && max.is_finite() && min < max && s.min <= min && max <= s.max) {
            return Err(at(
                c.bounds.span(),
                ProfileErrorKind::BadBounds {
                    what: "bounds",
                    min,
                    max,
                },
            ));
        }
        let step = *c.step.get_ref();
        if !(step.is_finite() && step > 0.0 && step <= max - min) {
            return Err(at(c.step.span(), ProfileErrorKind::BadStep(step)));
        }
        let cost = *c.cost_per_unit.get_ref();
        if !(cost.is_finite() && cost >= 0.0) {
            return Err(at(
                c.cost_per_unit.span(),
                ProfileErrorKind::BadCost("cost_per_unit", cost),
            ));
        }
        out.push(Control {
            sensor: name.clone(),
            min,
            max,
            step,
            cost_per_unit: cost,
        });
    }
    Ok(out)
}

fn advice_settings(
    a: raw::Advice,
    sensors: &[Sensor],
    derived: &[Derived],
    at: &impl Fn(std::ops::Range<usize>, ProfileErrorKind) -> ProfileError,
) -> Result<AdviceSettings, ProfileError> {
    let mut settings = AdviceSettings::default();
    if let Some(d) = a.downtime_cost {
        let v = *d.get_ref();
        if !(v.is_finite() && v >= 0.0) {
            return Err(at(d.span(), ProfileErrorKind::BadCost("downtime_cost", v)));
        }
        settings.downtime_cost = v;
    }
    if let Some(e) = a.energy_cost {
        let v = *e.get_ref();
        if !(v.is_finite() && v >= 0.0) {
            return Err(at(e.span(), ProfileErrorKind::BadCost("energy_cost", v)));
        }
        settings.energy_cost = v;
    }
    if let Some(e) = a.energy {
        let name = e.get_ref();
        let known =
            sensors.iter().any(|s| s.name == *name) || derived.iter().any(|d| d.name == *name);
        if !known {
            return Err(at(e.span(), ProfileErrorKind::UnknownEnergy(name.clone())));
        }
        settings.energy = Some(name.clone());
    }
    Ok(settings)
}

impl Profile {
    /// The value of the energy measure (`[advice] energy`, a sensor or a derived feature) for
    /// one set of sensor values in sensor order; NaN without one.
    pub fn energy(&self, sensors: &[f64]) -> f64 {
        let Some(name) = self.advice.energy.as_deref() else {
            return f64::NAN;
        };
        if let Some(i) = self.sensors.iter().position(|s| s.name == name) {
            return sensors.get(i).copied().unwrap_or(f64::NAN);
        }
        self.derived
            .iter()
            .find(|d| d.name == name)
            .map_or(f64::NAN, |d| d.expr.eval(sensors))
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
        #[serde(default)]
        pub control: Vec<Control>,
        pub advice: Option<Advice>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Control {
        pub sensor: Spanned<String>,
        pub bounds: Spanned<[f64; 2]>,
        pub step: Spanned<f64>,
        pub cost_per_unit: Spanned<f64>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Advice {
        pub downtime_cost: Option<Spanned<f64>>,
        pub energy: Option<Spanned<String>>,
        pub energy_cost: Option<Spanned<f64>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Sensor {
        pub name: Spanned<String>,
        pub label: Option<String>,
        pub unit: Option<String>,
        pub range: Spanned<[f64; 2]>,
        pub key: Option<String>,
        pub typical: Option<Spanned<[f64; 2]>>,
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
