//! The ordered feature names. Window sizes are part of the names (`vibration_mm_s_mean_10`),
//! so the feature-set hash changes whenever the window configuration does, and a model trained
//! on other windows is refused.
//!
//! The default set ([`FeatureSetKind::Default`], 40 names) is what the shipped model is trained
//! on and never changes for a given [`WindowConfig`]. The extended set
//! ([`FeatureSetKind::Extended`]) is the default set followed by every statistic of every count
//! and time window, EWMA and delta per sensor, threshold flags and data-quality features; it
//! needs a model trained on it (`dtwin train` with the same window configuration).

use crate::window::{FeatureSetKind, WindowConfig};

/// The sensors that feed the model, in feature order.
pub const SENSORS: [&str; 7] = [
    "temperature_c",
    "ambient_temperature_c",
    "vibration_mm_s",
    "pressure_bar",
    "spindle_rpm",
    "torque_nm",
    "tool_wear_min",
];

/// Features computed per sensor in the default set, in order.
pub const PER_SENSOR: usize = 5;

/// Physical and interaction features after the per-sensor block, in order.
pub const DERIVED: [&str; 5] = [
    "temp_diff_c",
    "power_w",
    "strain_nm_min",
    "temp_x_vibration",
    "product_type",
];

/// Statistics of each window in the extended set, in order.
pub const WINDOW_STATS: [&str; 5] = ["mean", "std", "min", "max", "slope"];

/// The statistics of the short count window the extended set adds (its mean, std and slope
/// are already in the default set).
pub const SHORT_WINDOW_STATS: [&str; 2] = ["min", "max"];

/// Each extended window's name suffix and the statistics it contributes, in order.
pub fn window_layout(cfg: &WindowConfig) -> Vec<(String, &'static [&'static str])> {
    window_suffixes(cfg)
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let stats: &'static [&'static str] = if i == 0 {
                &SHORT_WINDOW_STATS
            } else {
                &WINDOW_STATS
            };
            (w, stats)
        })
        .collect()
}

/// Threshold flags of the extended set (1 = condition holds, 0 = not, missing when an input
/// is): AI4I's failure conditions and ISO 10816's vibration zone.
pub const FLAGS: [&str; 5] = [
    // temp_diff_c < 8.6 and spindle_rpm < 1380 (AI4I heat dissipation failure).
    "flag_heat_dissipation",
    // power_w outside 3500..=9000 (AI4I power failure).
    "flag_power_out_of_band",
    // strain above 11000 / 12000 / 13000 N·m·min for L / M / H (AI4I overstrain).
    "flag_overstrain",
    // tool_wear_min >= 200 (AI4I tool wear failures happen in 200..240).
    "flag_tool_wear_high",
    // vibration_mm_s > 7.1 (ISO 10816 zone C and above).
    "flag_vibration_high",
];

/// Data-quality features of the extended set.
pub const QUALITY: [&str; 3] = [
    // Readings missing (by seq) just before this one.
    "gap_readings",
    // Sensors whose value was carried forward from an earlier reading.
    "stale_sensors",
    // Sensors with no value at all (never reported, or carried forward too long).
    "missing_sensors",
];

/// The window suffixes of the extended set: count windows by readings (`10`), time windows by
/// seconds (`60s`).
pub fn window_suffixes(cfg: &WindowConfig) -> Vec<String> {
    let mut s: Vec<String> = cfg.count_windows().iter().map(|n| n.to_string()).collect();
    s.extend(cfg.time_windows_s.iter().map(|t| format!("{t}s")));
    s
}

/// The ordered feature names for `cfg`.
pub fn feature_names(cfg: &WindowConfig) -> Vec<String> {
    let (s, l) = (cfg.short, cfg.long);
    let mut names = Vec::with_capacity(SENSORS.len() * PER_SENSOR + DERIVED.len());
    for sensor in SENSORS {
        names.push(sensor.to_owned());
        names.push(format!("{sensor}_mean_{s}"));
        names.push(format!("{sensor}_std_{s}"));
        names.push(format!("{sensor}_slope_{s}"));
        names.push(format!("{sensor}_dev_{l}"));
    }
    names.extend(DERIVED.iter().map(|d| (*d).to_owned()));
    if cfg.feature_set == FeatureSetKind::Extended {
        let layout = window_layout(cfg);
        for sensor in SENSORS {
            names.push(format!("{sensor}_delta"));
            names.push(format!("{sensor}_ewma_{}", cfg.ewma_span));
            for (w, stats) in &layout {
                for stat in *stats {
                    names.push(format!("{sensor}_{stat}_{w}"));
                }
            }
        }
        names.extend(FLAGS.iter().map(|d| (*d).to_owned()));
        names.extend(QUALITY.iter().map(|d| (*d).to_owned()));
    }
    names
}

/// The names and their hash.
pub fn feature_set(cfg: &WindowConfig) -> (Vec<String>, String) {
    let names = feature_names(cfg);
    let hash = dtwin_schema::feature_set_hash(&names);
    (names, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_set_is_frozen() {
        // The shipped model is trained on exactly these names; changing them needs a retrain.
        let (names, hash) = feature_set(&WindowConfig::default());
        assert_eq!(names.len(), 40);
        assert_eq!(names[0], "temperature_c");
        assert_eq!(names[39], "product_type");
        assert_eq!(hash, dtwin_schema::feature_set_hash(&names));
        let frozen = dtwin_schema::feature_set_hash(&{
            let mut n = Vec::new();
            for s in SENSORS {
                n.push(s.to_owned());
                for x in ["mean_10", "std_10", "slope_10", "dev_60"] {
                    n.push(format!("{s}_{x}"));
                }
            }
            n.extend(DERIVED.iter().map(|d| d.to_string()));
            n
        });
        assert_eq!(hash, frozen);
    }

    #[test]
    fn the_extended_set_extends_the_default_one() {
        let cfg = WindowConfig::extended();
        let ext = feature_names(&cfg);
        let base = feature_names(&WindowConfig::default());
        assert_eq!(&ext[..base.len()], &base[..]);
        // 7 sensors x (delta + ewma + min/max of the short window + 3 windows x 5 stats)
        // + flags + quality.
        assert_eq!(ext.len(), 40 + 7 * (2 + 2 + 3 * 5) + 5 + 3);
        assert!(ext.contains(&"vibration_mm_s_max_600s".to_owned()));
        assert!(ext.contains(&"pressure_bar_min_60".to_owned()));
        let unique: std::collections::BTreeSet<_> = ext.iter().collect();
        assert_eq!(unique.len(), ext.len(), "names are unique");
        assert_ne!(feature_set(&cfg).1, feature_set(&WindowConfig::default()).1);
    }
}
