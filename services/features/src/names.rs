//! The ordered feature names. Window sizes are part of the names (`vibration_mm_s_mean_10`),
//! so the feature-set hash changes whenever the window configuration does, and a model trained
//! on other windows is refused.

use crate::window::WindowConfig;

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

/// Features computed per sensor, in order.
pub const PER_SENSOR: usize = 5;

/// Physical and interaction features after the per-sensor block, in order.
pub const DERIVED: [&str; 5] = [
    "temp_diff_c",
    "power_w",
    "strain_nm_min",
    "temp_x_vibration",
    "product_type",
];

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
    names
}

/// The names and their hash.
pub fn feature_set(cfg: &WindowConfig) -> (Vec<String>, String) {
    let names = feature_names(cfg);
    let hash = dtwin_schema::feature_set_hash(&names);
    (names, hash)
}
