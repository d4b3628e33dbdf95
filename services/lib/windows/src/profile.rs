//! Rolling-window features of a machine described by a [`Profile`] (any sensors, any
//! windows). The feature service runs [`ProfileWindow::update`] per reading of a machine whose
//! profile is not the built-in milling one, and `dtwin train --profile` runs the very same
//! function over a CSV export, so a plant's model sees in training what it is served.
//!
//! The feature set, per sensor in profile order:
//! - `{s}`: the latest value (a missing value is carried forward for up to
//!   [`CARRY_FORWARD`] readings, then it is NaN);
//! - `{s}_{stat}_{short}` for each of the short window's statistics (default mean, std,
//!   slope; slope per reading);
//! - `{s}_dev_{long}`: the latest value minus its mean over the long window;
//! - `{s}_mean_{span}` and `{s}_std_{span}` per time window (`24h`), in message time;
//!
//! then the derived features (the profile's expressions over the latest values), then the
//! attributes (the value's position in the profile's list, NaN when unknown). A row is cold
//! until the short window is full.
//!
//! The built-in milling set ([`crate::MachineWindow`]) keeps its own code: its 40 features and
//! hash are frozen by the shipped model.

use crate::stats::{Span, WindowStats};
use dtwin_profile::Profile;

/// Readings a missing sensor value is carried forward (as the milling window's default).
pub const CARRY_FORWARD: u32 = 5;

/// Statistics of the short window when the profile names none.
pub const DEFAULT_SHORT_STATS: [&str; 3] = ["mean", "std", "slope"];

/// Values a time window holds at most (a machine reporting faster sees a shorter window).
pub const TIME_WINDOW_POINTS: usize = 4096;

/// A span as feature names write it: `24h`, `10m`, `90s`, `1d`.
pub fn span_name(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    let whole = |unit: f64| s >= unit && (s / unit).fract() == 0.0;
    // Up to three days read best in hours (`24h`, `48h`), longer spans in days (`7d`).
    if whole(86_400.0) && s > 3.0 * 86_400.0 {
        format!("{}d", s / 86_400.0)
    } else if whole(3600.0) {
        format!("{}h", s / 3600.0)
    } else if whole(60.0) {
        format!("{}m", s / 60.0)
    } else {
        format!("{s}s")
    }
}

fn short_stats(p: &Profile) -> Vec<&str> {
    if p.windows.short_stats.is_empty() {
        DEFAULT_SHORT_STATS.to_vec()
    } else {
        p.windows.short_stats.iter().map(String::as_str).collect()
    }
}

/// The profile's feature names, in vector order.
pub fn profile_feature_names(p: &Profile) -> Vec<String> {
    let mut names = Vec::new();
    let stats = short_stats(p);
    for s in &p.sensors {
        names.push(s.name.clone());
        if let Some(n) = p.windows.short {
            for stat in &stats {
                names.push(format!("{}_{stat}_{n}", s.name));
            }
        }
        if let Some(n) = p.windows.long {
            names.push(format!("{}_dev_{n}", s.name));
        }
        for d in &p.windows.time {
            let w = span_name(*d);
            names.push(format!("{}_mean_{w}", s.name));
            names.push(format!("{}_std_{w}", s.name));
        }
    }
    names.extend(p.derived.iter().map(|d| d.name.clone()));
    names.extend(p.attributes.iter().map(|a| a.name.clone()));
    names
}

/// The names and their hash (as [`crate::feature_set`] for the milling set).
pub fn profile_feature_set(p: &Profile) -> (Vec<String>, String) {
    let names = profile_feature_names(p);
    let hash = dtwin_schema::feature_set_hash(&names);
    (names, hash)
}

#[derive(Debug, Clone)]
struct SensorState {
    last: Option<f64>,
    stale_for: u32,
    short: Option<WindowStats>,
    long: Option<WindowStats>,
    time: Vec<WindowStats>,
}

/// One machine's window state under a profile.
#[derive(Debug, Clone)]
pub struct ProfileWindow {
    sensors: Vec<SensorState>,
    attributes: Vec<Option<usize>>,
    stats: Vec<Stat>,
    short: usize,
    readings: u64,
    width: usize,
}

#[derive(Debug, Clone, Copy)]
enum Stat {
    Mean,
    Std,
    Min,
    Max,
    Slope,
}

impl Stat {
    fn of(self, w: &WindowStats) -> f64 {
        match self {
            Self::Mean => w.mean(),
            Self::Std => w.std(),
            Self::Min => w.min(),
            Self::Max => w.max(),
            Self::Slope => w.slope(),
        }
    }
}

/// The features after one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileFeatures {
    /// In [`profile_feature_names`] order; NaN where unknown.
    pub values: Vec<f64>,
    /// The short window is not full yet (the alerter and training leave such rows out).
    pub cold: bool,
}

impl ProfileWindow {
    /// An empty window for a machine of profile `p`.
    pub fn new(p: &Profile) -> Self {
        let stats = short_stats(p)
            .iter()
            .map(|s| match *s {
                "std" => Stat::Std,
                "min" => Stat::Min,
                "max" => Stat::Max,
                "slope" => Stat::Slope,
                // Profile::parse admits only dtwin_profile::STATS.
                _ => Stat::Mean,
            })
            .collect();
        let sensors = p
            .sensors
            .iter()
            .map(|_| SensorState {
                last: None,
                stale_for: 0,
                short: p.windows.short.map(|n| WindowStats::new(Span::Count(n))),
                long: p.windows.long.map(|n| WindowStats::new(Span::Count(n))),
                time: p
                    .windows
                    .time
                    .iter()
                    .map(|d| {
                        WindowStats::new(Span::Time {
                            seconds: d.as_secs_f64(),
                            max_points: TIME_WINDOW_POINTS,
                        })
                    })
                    .collect(),
            })
            .collect();
        Self {
            sensors,
            attributes: vec![None; p.attributes.len()],
            stats,
            short: p.windows.short.unwrap_or(1),
            readings: 0,
            width: profile_feature_names(p).len(),
        }
    }

    /// Adds one reading taken at `t_seconds` (message time; any monotonic clock such as a
    /// cycle count works) and returns the features after it. `values` holds one value per
    /// profile sensor, in profile order, NaN where the reading lacks it; `attributes` one code
    /// per profile attribute (`None`: not in this reading, the last known code stays).
    ///
    /// # Panics
    /// When `values` or `attributes` does not have the profile's length (a caller bug).
    pub fn update(
        &mut self,
        p: &Profile,
        t_seconds: f64,
        values: &[f64],
        attributes: &[Option<usize>],
    ) -> ProfileFeatures {
        assert_eq!(values.len(), self.sensors.len(), "one value per sensor");
        assert_eq!(attributes.len(), self.attributes.len(), "one per attribute");
        self.readings += 1;
        for (have, new) in self.attributes.iter_mut().zip(attributes) {
            if new.is_some() {
                *have = *new;
            }
        }
        let mut out = Vec::with_capacity(self.width);
        let mut now = Vec::with_capacity(values.len());
        let per_sensor =
            1 + if p.windows.short.is_some() {
                self.stats.len()
            } else {
                0
            } + usize::from(p.windows.long.is_some())
                + 2 * p.windows.time.len();
        for (s, &v) in self.sensors.iter_mut().zip(values) {
            let value = if v.is_finite() {
                s.last = Some(v);
                s.stale_for = 0;
                Some(v)
            } else {
                s.stale_for = s.stale_for.saturating_add(1);
                s.last.filter(|_| s.stale_for <= CARRY_FORWARD)
            };
            let Some(v) = value else {
                now.push(f64::NAN);
                out.extend(std::iter::repeat_n(f64::NAN, per_sensor));
                continue;
            };
            now.push(v);
            out.push(v);
            if let Some(w) = &mut s.short {
                w.push(t_seconds, v);
                out.extend(self.stats.iter().map(|stat| stat.of(w)));
            }
            if let Some(w) = &mut s.long {
                w.push(t_seconds, v);
                out.push(v - w.mean());
            }
            for w in &mut s.time {
                w.push(t_seconds, v);
                out.push(w.mean());
                out.push(w.std());
            }
        }
        out.extend(p.derive(&now));
        out.extend(
            self.attributes
                .iter()
                .map(|c| c.map_or(f64::NAN, |c| c as f64)),
        );
        debug_assert_eq!(out.len(), self.width);
        ProfileFeatures {
            values: out,
            cold: self.readings < self.short as u64,
        }
    }

    /// Readings seen.
    pub fn readings(&self) -> u64 {
        self.readings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PUMP: &str = r#"id = "pump"
label = "Pump"

[[sensor]]
name = "volt"
unit = "V"
range = [0.0, 400.0]

[[sensor]]
name = "rotate"
range = [0.0, 1000.0]

[[derived]]
name = "volt_per_rev"
expr = "volt / rotate"

[windows]
short = 3
long = 4
time = ["2h"]
short_stats = ["mean", "max"]

[[attribute]]
name = "model"
values = ["model1", "model2"]
"#;

    fn pump() -> Profile {
        Profile::parse(PUMP, "pump.toml").unwrap()
    }

    #[test]
    fn names_follow_the_profile() {
        let (names, hash) = profile_feature_set(&pump());
        assert_eq!(
            names,
            [
                "volt",
                "volt_mean_3",
                "volt_max_3",
                "volt_dev_4",
                "volt_mean_2h",
                "volt_std_2h",
                "rotate",
                "rotate_mean_3",
                "rotate_max_3",
                "rotate_dev_4",
                "rotate_mean_2h",
                "rotate_std_2h",
                "volt_per_rev",
                "model"
            ]
        );
        assert_eq!(hash.len(), dtwin_schema::feature_set_hash(&names).len());
        assert_eq!(span_name(std::time::Duration::from_secs(90)), "90s");
        assert_eq!(span_name(std::time::Duration::from_secs(600)), "10m");
        assert_eq!(span_name(std::time::Duration::from_secs(86_400)), "24h");
        assert_eq!(span_name(std::time::Duration::from_secs(7 * 86_400)), "7d");
    }

    #[test]
    fn values_are_the_window_statistics_by_hand() {
        let p = pump();
        let mut w = ProfileWindow::new(&p);
        let hour = 3600.0;
        let rows = [(100.0, 10.0), (110.0, 20.0), (130.0, 40.0), (160.0, 80.0)];
        let mut last = None;
        for (i, (v, r)) in rows.iter().enumerate() {
            let f = w.update(&p, i as f64 * hour, &[*v, *r], &[Some(1)]);
            assert_eq!(f.cold, i < 2, "cold until the short window (3) is full");
            last = Some(f);
        }
        let f = last.unwrap().values;
        assert_eq!(f[0], 160.0);
        assert!(
            (f[1] - (110.0 + 130.0 + 160.0) / 3.0).abs() < 1e-9,
            "mean_3"
        );
        assert_eq!(f[2], 160.0, "max_3");
        assert!(
            (f[3] - (160.0 - 125.0)).abs() < 1e-9,
            "dev_4: 160 - mean(100..160)"
        );
        // 2 h window at t = 3 h holds the readings at 1, 2 and 3 h.
        assert!(
            (f[4] - (110.0 + 130.0 + 160.0) / 3.0).abs() < 1e-9,
            "mean_2h"
        );
        assert_eq!(f[12], 2.0, "volt / rotate");
        assert_eq!(f[13], 1.0, "model2 is code 1");
    }

    #[test]
    fn a_missing_value_is_carried_forward_then_unknown() {
        let p = pump();
        let mut w = ProfileWindow::new(&p);
        w.update(&p, 0.0, &[100.0, 10.0], &[None]);
        for i in 1..=CARRY_FORWARD {
            let f = w.update(&p, f64::from(i), &[f64::NAN, 10.0], &[None]);
            assert_eq!(f.values[0], 100.0, "carried forward at {i}");
            assert!(f.values[13].is_nan(), "no attribute seen yet");
        }
        let f = w.update(&p, 99.0, &[f64::NAN, 10.0], &[None]);
        assert!(f.values[..6].iter().all(|v| v.is_nan()), "{:?}", f.values);
        assert!(f.values[12].is_nan(), "derived from an unknown sensor");
        assert_eq!(f.values[6], 10.0, "the other sensor is unaffected");
    }

    #[test]
    fn a_profile_without_windows_gives_the_latest_values() {
        let p = Profile::parse(
            "id = \"bare\"\nlabel = \"B\"\n[[sensor]]\nname = \"a\"\nrange = [0.0, 1.0]\n",
            "bare.toml",
        )
        .unwrap();
        let mut w = ProfileWindow::new(&p);
        let f = w.update(&p, 0.0, &[0.5], &[]);
        assert_eq!(
            f,
            ProfileFeatures {
                values: vec![0.5],
                cold: false
            }
        );
    }

    proptest! {
        /// Whatever arrives (NaN, out-of-order times), the vector has the names' length and
        /// nothing panics.
        #[test]
        fn the_vector_always_has_the_names_length(
            rows in proptest::collection::vec(
                (-1e6f64..1e6, prop_oneof![Just(f64::NAN), -1e3f64..1e3], 0usize..3), 1..60)
        ) {
            let p = pump();
            let width = profile_feature_names(&p).len();
            let mut w = ProfileWindow::new(&p);
            for (t, v, code) in rows {
                let f = w.update(&p, t, &[v, v * 2.0], &[(code < 2).then_some(code)]);
                prop_assert_eq!(f.values.len(), width);
            }
        }
    }

    // The shipped milling profile against the compiled-in feature code (it lives here, not
    // in the profile crate, which this crate depends on).
    #[test]
    fn the_shipped_milling_profile_describes_the_built_in_feature_set() {
        let p = Profile::milling();
        assert_eq!(p.id, "milling");
        let sensors: Vec<&str> = p.sensors.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(sensors, crate::SENSORS, "sensors in feature order");
        let derived: Vec<&str> = p.derived.iter().map(|d| d.name.as_str()).collect();
        let attributes: Vec<&str> = p.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            [derived, attributes].concat(),
            crate::names::DERIVED,
            "derived features, then product type"
        );
        for s in &p.sensors {
            let spec = dtwin_schema::telemetry::SENSOR_SPECS
                .iter()
                .find(|x| x.name == s.name)
                .unwrap();
            assert_eq!((s.min, s.max), (spec.min, spec.max), "{}", s.name);
            assert_eq!(s.key, s.name);
        }
        let w = crate::WindowConfig::default();
        assert_eq!(
            (p.windows.short, p.windows.long),
            (Some(w.short), Some(w.long))
        );
        let secs: Vec<u64> = p
            .windows
            .time
            .iter()
            .map(std::time::Duration::as_secs)
            .collect();
        assert_eq!(secs, w.time_windows_s);
        assert_eq!(p.attributes[0].code("M"), Some(1));
        assert_eq!(p.failures.counted, ["BEARING", "COOLANT", "VALVE"]);
        assert_eq!(p.rules, "default");
    }

    proptest! {
        /// The derived features are bit for bit what the window code computes today, so a
        /// profile-driven feature service can keep the shipped model's features and hash.
        #[test]
        fn milling_derived_features_match_the_window_code(
            temp in -60.0f64..600.0, ambient in -60.0f64..150.0, vib in 0.0f64..200.0,
            pressure in 0.0f64..1000.0, rpm in 0.0f64..100_000.0, torque in 0.0f64..100_000.0,
            wear in 0.0f64..100_000.0,
        ) {
            let p = Profile::milling();
            let got = p.derive(&[temp, ambient, vib, pressure, rpm, torque, wear]);
            let want = [
                temp - ambient,
                torque * rpm * std::f64::consts::TAU / 60.0,
                wear * torque,
                temp * vib,
            ];
            for (g, w) in got.iter().zip(want) {
                prop_assert_eq!(g.to_bits(), w.to_bits(), "{} vs {}", g, w);
            }
        }
    }
}
