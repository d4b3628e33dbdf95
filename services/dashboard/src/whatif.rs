//! The what-if form: a person enters sensor values and sees the verdict the inference service
//! would give. One code path: the values become telemetry, the feature service's
//! [`MachineWindow`] turns a steady window of them into the feature vector, and the inference
//! service's [`Scorer`] scores it with the same model and rules.

use dtwin_inference::Scorer;
use dtwin_schema::telemetry::SENSOR_SPECS;
use dtwin_schema::{Features, MachineId, ProductType, Risk, Telemetry};
use dtwin_windows::{MachineWindow, WindowConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The form as submitted: every field is text, checked here.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct WhatIfForm {
    /// Process temperature, °C.
    #[serde(default)]
    pub temperature_c: String,
    /// Vibration, mm/s.
    #[serde(default)]
    pub vibration_mm_s: String,
    /// Pressure, bar.
    #[serde(default)]
    pub pressure_bar: String,
    /// Spindle speed, rpm.
    #[serde(default)]
    pub spindle_rpm: String,
    /// Tool wear, min.
    #[serde(default)]
    pub tool_wear_min: String,
    /// Torque, N·m (optional).
    #[serde(default)]
    pub torque_nm: String,
    /// Ambient temperature, °C (optional).
    #[serde(default)]
    pub ambient_temperature_c: String,
    /// Product type L/M/H (optional).
    #[serde(default)]
    pub product_type: String,
}

/// The fields of the form: (name, label, unit, required).
pub const FIELDS: [(&str, &str, &str, bool); 7] = [
    ("temperature_c", "Temperature", "°C", true),
    ("vibration_mm_s", "Vibration", "mm/s", true),
    ("pressure_bar", "Pressure", "bar", true),
    ("spindle_rpm", "Spindle speed", "rpm", true),
    ("tool_wear_min", "Tool wear", "min", true),
    ("torque_nm", "Torque", "N·m", false),
    ("ambient_temperature_c", "Ambient temperature", "°C", false),
];

impl WhatIfForm {
    /// A healthy machine's values (the form's pre-fill).
    pub fn healthy() -> Self {
        Self {
            temperature_c: "36.8".into(),
            vibration_mm_s: "2.2".into(),
            pressure_bar: "6.0".into(),
            spindle_rpm: "1540".into(),
            tool_wear_min: "60".into(),
            torque_nm: "40".into(),
            ambient_temperature_c: "26.9".into(),
            product_type: "M".into(),
        }
    }

    /// Pre-filled from a machine's latest reading (fields it did not send stay empty).
    pub fn from_telemetry(t: &Telemetry) -> Self {
        let s = |v: Option<f64>| {
            v.map(|v| format!("{}", (v * 100.0).round() / 100.0))
                .unwrap_or_default()
        };
        Self {
            temperature_c: s(t.temperature_c),
            vibration_mm_s: s(t.vibration_mm_s),
            pressure_bar: s(t.pressure_bar),
            spindle_rpm: s(t.spindle_rpm),
            tool_wear_min: s(t.tool_wear_min),
            torque_nm: s(t.torque_nm),
            ambient_temperature_c: s(t.ambient_temperature_c),
            product_type: t.product_type.map(|p| format!("{p:?}")).unwrap_or_default(),
        }
    }

    /// The value of field `name` as typed.
    pub fn get(&self, name: &str) -> &str {
        match name {
            "temperature_c" => &self.temperature_c,
            "vibration_mm_s" => &self.vibration_mm_s,
            "pressure_bar" => &self.pressure_bar,
            "spindle_rpm" => &self.spindle_rpm,
            "tool_wear_min" => &self.tool_wear_min,
            "torque_nm" => &self.torque_nm,
            "ambient_temperature_c" => &self.ambient_temperature_c,
            "product_type" => &self.product_type,
            _ => "",
        }
    }

    /// Checks every field; returns the telemetry to score, or a message per bad field.
    ///
    /// # Errors
    /// Field name -> what is wrong, for every bad field.
    pub fn validate(&self) -> Result<Telemetry, BTreeMap<&'static str, String>> {
        let mut errors = BTreeMap::new();
        let mut values: BTreeMap<&'static str, f64> = BTreeMap::new();
        for (name, label, unit, required) in FIELDS {
            let raw = self.get(name).trim();
            if raw.is_empty() {
                if required {
                    errors.insert(name, format!("{label} is required"));
                }
                continue;
            }
            let Ok(v) = raw.replace(',', ".").parse::<f64>() else {
                errors.insert(name, format!("{label} must be a number in {unit}"));
                continue;
            };
            if !v.is_finite() {
                errors.insert(name, format!("{label} must be a finite number"));
                continue;
            }
            if let Some(spec) = SENSOR_SPECS.iter().find(|s| s.name == name) {
                if v < spec.min || v > spec.max {
                    errors.insert(
                        name,
                        format!(
                            "{label} must be between {} and {} {unit}",
                            spec.min, spec.max
                        ),
                    );
                    continue;
                }
            }
            values.insert(name, v);
        }
        let product = match self.product_type.trim() {
            "" => None,
            "L" => Some(ProductType::L),
            "M" => Some(ProductType::M),
            "H" => Some(ProductType::H),
            _ => {
                errors.insert("product_type", "Product type must be L, M or H".into());
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let id = MachineId::parse("what-if").expect("valid id");
        let mut t = Telemetry::new(id, OffsetDateTime::UNIX_EPOCH, 1);
        t.temperature_c = values.get("temperature_c").copied();
        t.vibration_mm_s = values.get("vibration_mm_s").copied();
        t.pressure_bar = values.get("pressure_bar").copied();
        t.spindle_rpm = values.get("spindle_rpm").copied();
        t.tool_wear_min = values.get("tool_wear_min").copied();
        t.torque_nm = values.get("torque_nm").copied();
        t.ambient_temperature_c = values.get("ambient_temperature_c").copied();
        if let (Some(tq), Some(rpm)) = (t.torque_nm, t.spindle_rpm) {
            t.power_w = Some(tq * rpm * std::f64::consts::TAU / 60.0);
        }
        t.product_type = product;
        Ok(t)
    }
}

/// Scores `reading` as a machine that has reported it steadily for a full window: the feature
/// service's window code ([`features`]), then the inference service's scorer.
pub fn score(
    scorer: &Scorer,
    window: &WindowConfig,
    reading: &Telemetry,
    now: OffsetDateTime,
) -> Risk {
    let features = features(window, reading, now);
    scorer
        .score(&features, now)
        .expect("features computed with the scorer's own feature set")
}

/// The feature vector of a machine that has reported `reading` steadily for a full window
/// (warm), as the feature service computes it.
pub fn features(window: &WindowConfig, reading: &Telemetry, now: OffsetDateTime) -> Features {
    let (names, hash) = dtwin_windows::feature_set(window);
    let mut w = MachineWindow::new(window);
    let mut fv = None;
    for seq in 1..=window.long.max(window.short) as u64 {
        let mut t = reading.clone();
        t.seq = seq;
        t.ts = now;
        fv = Some(w.update(&t));
    }
    let fv = fv.expect("a window has at least one reading");
    let mut t = reading.clone();
    t.ts = now;
    fv.to_message(&names, &hash, &t, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_prefill_validates() {
        let t = WhatIfForm::healthy().validate().unwrap();
        assert_eq!(t.vibration_mm_s, Some(2.2));
        assert!(t.power_w.unwrap() > 5000.0);
    }

    #[test]
    fn bad_input_gets_a_message_per_field() {
        let mut f = WhatIfForm::healthy();
        f.temperature_c = String::new();
        f.vibration_mm_s = "loud".into();
        f.pressure_bar = "-5".into();
        f.spindle_rpm = "1e12".into();
        f.tool_wear_min = "NaN".into();
        f.product_type = "X".into();
        let e = f.validate().unwrap_err();
        assert!(e["temperature_c"].contains("required"));
        assert!(e["vibration_mm_s"].contains("number"));
        assert!(e["pressure_bar"].contains("between"));
        assert!(e["spindle_rpm"].contains("between"));
        assert!(e["tool_wear_min"].contains("finite"));
        assert!(e["product_type"].contains("L, M or H"));
        // Optional fields may stay empty; a decimal comma is fine.
        let mut f = WhatIfForm::healthy();
        f.torque_nm.clear();
        f.ambient_temperature_c.clear();
        f.vibration_mm_s = "2,5".into();
        assert_eq!(f.validate().unwrap().vibration_mm_s, Some(2.5));
    }
}
