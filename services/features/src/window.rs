//! Per-machine window state and the feature vector built from it.

use crate::names::{feature_names, PER_SENSOR, SENSORS};
use crate::ring::RollingStats;
use dtwin_schema::{Features, ProductType, Telemetry, FEATURES_SCHEMA};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Window sizes and the missing-value policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowConfig {
    /// Readings in the short window (mean, std, slope).
    pub short: usize,
    /// Readings in the long window (deviation of the last value from its mean).
    pub long: usize,
    /// Readings a missing sensor carries its last value forward before it counts as missing.
    pub carry_forward: u32,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            short: 10,
            long: 60,
            carry_forward: 5,
        }
    }
}

#[derive(Debug, Clone)]
struct SensorState {
    short: RollingStats,
    long: RollingStats,
    last: Option<f64>,
    /// Readings since the sensor last reported a real value.
    stale_for: u32,
}

/// The rolling state of one machine. Update it with every reading, in order.
#[derive(Debug, Clone)]
pub struct MachineWindow {
    cfg: WindowConfig,
    sensors: Vec<SensorState>,
    readings: u64,
    product_type: Option<ProductType>,
}

/// The features after one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureVector {
    /// Values in [`crate::feature_names`] order; NaN means missing.
    pub values: Vec<f64>,
    /// True until the short window has filled.
    pub cold: bool,
    /// Readings seen so far (capped at the long window).
    pub window_len: u32,
    /// The latest value of every sensor after carry-forward.
    pub latest: BTreeMap<String, f64>,
}

fn sensor_value(t: &Telemetry, i: usize) -> Option<f64> {
    match i {
        0 => t.temperature_c,
        1 => t.ambient_temperature_c,
        2 => t.vibration_mm_s,
        3 => t.pressure_bar,
        4 => t.spindle_rpm,
        5 => t.torque_nm,
        6 => t.tool_wear_min,
        _ => None,
    }
}

impl MachineWindow {
    /// An empty window.
    pub fn new(cfg: &WindowConfig) -> Self {
        let sensor = SensorState {
            short: RollingStats::new(cfg.short),
            long: RollingStats::new(cfg.long),
            last: None,
            stale_for: 0,
        };
        Self {
            cfg: cfg.clone(),
            sensors: vec![sensor; SENSORS.len()],
            readings: 0,
            product_type: None,
        }
    }

    /// Readings seen so far.
    pub fn readings(&self) -> u64 {
        self.readings
    }

    /// Adds one reading and returns the features after it.
    pub fn update(&mut self, t: &Telemetry) -> FeatureVector {
        self.readings += 1;
        if t.product_type.is_some() {
            self.product_type = t.product_type;
        }
        let carry = self.cfg.carry_forward;
        let mut values = Vec::with_capacity(SENSORS.len() * PER_SENSOR + 5);
        let mut latest = BTreeMap::new();
        let mut now = [f64::NAN; SENSORS.len()];
        for (i, s) in self.sensors.iter_mut().enumerate() {
            let value = match sensor_value(t, i) {
                Some(v) => {
                    s.last = Some(v);
                    s.stale_for = 0;
                    Some(v)
                }
                None => {
                    s.stale_for = s.stale_for.saturating_add(1);
                    s.last.filter(|_| s.stale_for <= carry)
                }
            };
            match value {
                Some(v) => {
                    s.short.push(v);
                    s.long.push(v);
                    now[i] = v;
                    latest.insert(SENSORS[i].to_owned(), v);
                    values.extend([
                        v,
                        s.short.mean(),
                        s.short.std(),
                        s.short.slope(),
                        v - s.long.mean(),
                    ]);
                }
                None => values.extend([f64::NAN; PER_SENSOR]),
            }
        }
        let [temp, ambient, vib, _pressure, rpm, torque, wear] = now;
        values.push(temp - ambient);
        values.push(torque * rpm * std::f64::consts::TAU / 60.0);
        values.push(wear * torque);
        values.push(temp * vib);
        values.push(match self.product_type {
            Some(ProductType::L) => 0.0,
            Some(ProductType::M) => 1.0,
            Some(ProductType::H) => 2.0,
            None => f64::NAN,
        });
        FeatureVector {
            values,
            cold: self.readings < self.cfg.short as u64,
            window_len: self.readings.min(self.cfg.long as u64) as u32,
            latest,
        }
    }
}

impl FeatureVector {
    /// The `dtwin.features.v1` message for this vector.
    pub fn to_message(
        &self,
        names: &[String],
        feature_set: &str,
        source: &Telemetry,
        now: OffsetDateTime,
    ) -> Features {
        let values = names
            .iter()
            .zip(&self.values)
            .map(|(n, v)| (n.clone(), v.is_finite().then_some(*v)))
            .collect();
        Features {
            schema: FEATURES_SCHEMA.to_owned(),
            machine_id: source.machine_id.clone(),
            ts: now,
            source_ts: source.ts,
            seq: source.seq,
            feature_set: feature_set.to_owned(),
            window_len: self.window_len,
            cold: self.cold,
            values,
            latest: self.latest.clone(),
            product_type: source.product_type,
        }
    }
}

/// Reads a model input row from a features message in `names` order (missing → NaN).
pub fn row_from_message(features: &Features, names: &[String]) -> Vec<f32> {
    names
        .iter()
        .map(|n| {
            features
                .values
                .get(n)
                .copied()
                .flatten()
                .map_or(f32::NAN, |v| v as f32)
        })
        .collect()
}

/// The number of features for `cfg` (checked against the names in tests).
pub fn feature_count(cfg: &WindowConfig) -> usize {
    feature_names(cfg).len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_schema::MachineId;

    fn reading(seq: u64, temp: Option<f64>, vib: f64) -> Telemetry {
        let mut t = Telemetry::new(
            MachineId::parse("m").unwrap(),
            OffsetDateTime::UNIX_EPOCH,
            seq,
        );
        t.temperature_c = temp;
        t.ambient_temperature_c = Some(25.0);
        t.vibration_mm_s = Some(vib);
        t.spindle_rpm = Some(1500.0);
        t.torque_nm = Some(40.0);
        t.tool_wear_min = Some(100.0);
        t.product_type = Some(ProductType::M);
        t
    }

    #[test]
    fn vector_matches_names_and_flags_cold() {
        let cfg = WindowConfig::default();
        let names = feature_names(&cfg);
        let mut w = MachineWindow::new(&cfg);
        let f = w.update(&reading(1, Some(35.0), 2.0));
        assert_eq!(f.values.len(), names.len());
        assert!(f.cold);
        for i in 2..=10 {
            let f = w.update(&reading(i, Some(35.0), 2.0 + i as f64));
            assert_eq!(f.cold, i < 10);
        }
        let f = w.update(&reading(11, Some(35.0), 13.0));
        let idx = |n: &str| names.iter().position(|x| x == n).unwrap();
        assert!((f.values[idx("vibration_mm_s_slope_10")] - 1.0).abs() < 1e-9);
        assert_eq!(f.values[idx("temp_diff_c")], 10.0);
        assert!(
            (f.values[idx("power_w")] - 40.0 * 1500.0 * std::f64::consts::TAU / 60.0).abs() < 1e-6
        );
        assert_eq!(f.values[idx("strain_nm_min")], 4000.0);
        assert_eq!(f.values[idx("product_type")], 1.0);
        assert!(
            f.values[idx("pressure_bar")].is_nan(),
            "never reported → missing"
        );
    }

    #[test]
    fn missing_sensor_carries_forward_then_goes_missing() {
        let cfg = WindowConfig {
            carry_forward: 2,
            ..WindowConfig::default()
        };
        let mut w = MachineWindow::new(&cfg);
        w.update(&reading(1, Some(40.0), 2.0));
        assert_eq!(w.update(&reading(2, None, 2.0)).values[0], 40.0);
        assert_eq!(w.update(&reading(3, None, 2.0)).values[0], 40.0);
        let f = w.update(&reading(4, None, 2.0));
        assert!(f.values[0].is_nan());
        assert!(!f.latest.contains_key("temperature_c"));
        assert_eq!(w.update(&reading(5, Some(41.0), 2.0)).values[0], 41.0);
    }

    #[test]
    fn message_round_trips_to_a_model_row() {
        let cfg = WindowConfig::default();
        let (names, hash) = crate::feature_set(&cfg);
        let mut w = MachineWindow::new(&cfg);
        let t = reading(1, Some(35.0), 2.0);
        let f = w.update(&t);
        let msg = f.to_message(&names, &hash, &t, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(msg.values["temperature_c"], Some(35.0));
        assert_eq!(msg.values["pressure_bar"], None);
        let row = row_from_message(&msg, &names);
        assert_eq!(row.len(), feature_count(&cfg));
        assert_eq!(row[0], 35.0);
        assert!(row[15].is_nan());
    }
}
