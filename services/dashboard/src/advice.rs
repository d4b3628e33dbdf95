//! What-if that advises: a machine's sensor values scored the way the services score them
//! ([`Scoring`]: milling through the feature windows and the inference scorer, another
//! profile through its window and model, or its rules alone), the risk across each input's
//! span with the others held ([`sensitivity`]), and the setting of the profile's controllable
//! inputs that minimises downtime cost x risk + the cost of the change + its energy cost
//! ([`advise`], the optimiser of [`dtwin_profile::advice`]). Pure.
//!
//! The risk minimised is the verdict's health score read as a risk, `1 - health / 100`
//! ([`risk_of`]): the model's probability plus 0.10 per WARNING and 0.25 per CRITICAL rule
//! that fires (the inference service's health formula), so advice also clears the rules an
//! operating point trips (overstrain, power out of band, heat dissipation), which a failure
//! classifier of degradation faults does not see.
//!
//! # For other services
//! [`advise_verdict`] is the whole thing from a published verdict (its `latest` readings and
//! profile): the alerter can put its sentence in an alert e-mail with the model and windows it
//! loads like the inference service does.

use dtwin_inference::Scorer;
use dtwin_profile::advice::{optimise, Advice, Outcome};
use dtwin_profile::Profile;
use dtwin_schema::{MachineId, ProductType, Rejection, Risk, Telemetry};
use dtwin_windows::WindowConfig;
use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Points of a sensitivity curve.
pub const SENSITIVITY_POINTS: usize = 21;

/// How a machine's values are scored: the same code as the services.
#[derive(Clone, Copy)]
pub enum Scoring<'a> {
    /// A milling machine: its readings through the feature service's windows
    /// ([`crate::whatif::features`]), then the inference service's scorer and rules.
    Milling {
        /// The inference service's scorer.
        scorer: &'a Scorer,
        /// The feature service's windows.
        window: &'a WindowConfig,
    },
    /// A machine of another profile: its window, then its model, or the rules-only verdict
    /// without one ([`crate::profile_whatif`]).
    Profile {
        /// The profile's model, when one is deployed.
        model: Option<&'a Scorer>,
    },
}

/// The risk advice minimises: `1 - health / 100` of the verdict (probability plus the rules'
/// penalties), 0..1.
pub fn risk_of(r: &Risk) -> f64 {
    (1.0 - r.health_score / 100.0).clamp(0.0, 1.0)
}

/// A milling reading from sensor values in the profile's order (NaN = not given), as the
/// what-if form makes it: power from torque and speed.
pub fn milling_reading(p: &Profile, values: &[f64], attributes: &[Option<usize>]) -> Telemetry {
    let id = MachineId::parse("what-if").expect("valid id");
    let mut t = Telemetry::new(id, OffsetDateTime::UNIX_EPOCH, 1);
    for (s, v) in p.sensors.iter().zip(values) {
        let v = v.is_finite().then_some(*v);
        match s.name.as_str() {
            "temperature_c" => t.temperature_c = v,
            "vibration_mm_s" => t.vibration_mm_s = v,
            "pressure_bar" => t.pressure_bar = v,
            "spindle_rpm" => t.spindle_rpm = v,
            "tool_wear_min" => t.tool_wear_min = v,
            "torque_nm" => t.torque_nm = v,
            "ambient_temperature_c" => t.ambient_temperature_c = v,
            _ => {}
        }
    }
    if let (Some(tq), Some(rpm)) = (t.torque_nm, t.spindle_rpm) {
        t.power_w = Some(tq * rpm * std::f64::consts::TAU / 60.0);
    }
    t.product_type = p
        .attributes
        .iter()
        .zip(attributes)
        .find(|(a, _)| a.name == "product_type")
        .and_then(|(a, code)| code.and_then(|c| a.values.get(c)))
        .and_then(|v| match v.as_str() {
            "L" => Some(ProductType::L),
            "M" => Some(ProductType::M),
            "H" => Some(ProductType::H),
            _ => None,
        });
    t
}

/// The milling profile's values of a reading (NaN where it sent none).
pub fn milling_values(p: &Profile, t: &Telemetry) -> (Vec<f64>, Vec<Option<usize>>) {
    let values = p
        .sensors
        .iter()
        .map(|s| {
            match s.name.as_str() {
                "temperature_c" => t.temperature_c,
                "vibration_mm_s" => t.vibration_mm_s,
                "pressure_bar" => t.pressure_bar,
                "spindle_rpm" => t.spindle_rpm,
                "tool_wear_min" => t.tool_wear_min,
                "torque_nm" => t.torque_nm,
                "ambient_temperature_c" => t.ambient_temperature_c,
                _ => None,
            }
            .unwrap_or(f64::NAN)
        })
        .collect();
    let attributes = p
        .attributes
        .iter()
        .map(|a| {
            (a.name == "product_type")
                .then(|| t.product_type.map(|pt| format!("{pt:?}")))
                .flatten()
                .and_then(|v| a.code(&v))
        })
        .collect();
    (values, attributes)
}

/// The verdict for sensor `values` (profile order) and attribute codes of a machine of `p`
/// that reports them steadily.
///
/// # Errors
/// A profile's model trained on other features refuses them ([`Rejection`]).
pub fn score(
    p: &Profile,
    scoring: Scoring<'_>,
    values: &[f64],
    attributes: &[Option<usize>],
    now: OffsetDateTime,
) -> Result<Risk, Rejection> {
    match scoring {
        Scoring::Milling { scorer, window } => {
            let reading = milling_reading(p, values, attributes);
            scorer.score(&crate::whatif::features(window, &reading, now), now)
        }
        Scoring::Profile { model } => {
            let entered = crate::profile_whatif::Entered {
                values: values.to_vec(),
                attributes: attributes.to_vec(),
            };
            crate::profile_whatif::score(p, &entered, model, now)
        }
    }
}

/// The risk across one input's span with the others held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// The sensor.
    pub sensor: String,
    /// Its value now.
    pub current: f64,
    /// `(value, risk)` from the low end of its typical span to the high end.
    pub points: Vec<(f64, f64)>,
}

/// `n` values from `lo` to `hi`, both included.
pub fn span(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let n = n.max(2);
    (0..n)
        .map(|k| lo + (hi - lo) * k as f64 / (n - 1) as f64)
        .collect()
}

/// For each sensor with a value, the risk ([`risk_of`]) at `points` values across its
/// typical span, the others held; a sensor whose values the scorer refuses is left out.
pub fn sensitivity(
    p: &Profile,
    scoring: Scoring<'_>,
    values: &[f64],
    attributes: &[Option<usize>],
    points: usize,
    now: OffsetDateTime,
) -> Vec<Sweep> {
    p.sensors
        .iter()
        .enumerate()
        .filter(|(i, _)| values[*i].is_finite())
        .filter_map(|(i, s)| {
            let [lo, hi] = s.typical;
            let mut x = values.to_vec();
            let pts: Option<Vec<(f64, f64)>> = span(lo, hi, points)
                .into_iter()
                .map(|v| {
                    x[i] = v;
                    score(p, scoring, &x, attributes, now)
                        .ok()
                        .map(|r| (v, risk_of(&r)))
                })
                .collect();
            Some(Sweep {
                sensor: s.name.clone(),
                current: values[i],
                points: pts?,
            })
        })
        .collect()
}

/// The advice for a machine of `p` at sensor `values` (profile order): the setting of the
/// profile's controls that minimises downtime cost x risk + change and energy costs, in
/// words. `None` when the profile declares no controls, a control's sensor has no value, or
/// the scorer refuses the values.
pub fn advise(
    p: &Profile,
    scoring: Scoring<'_>,
    values: &[f64],
    attributes: &[Option<usize>],
    now: OffsetDateTime,
) -> Option<Advice> {
    if p.controls.is_empty() {
        return None;
    }
    let index: Vec<usize> = p
        .controls
        .iter()
        .map(|c| p.sensors.iter().position(|s| s.name == c.sensor))
        .collect::<Option<_>>()?;
    let current: Vec<f64> = index.iter().map(|&i| values[i]).collect();
    if current.iter().any(|v| !v.is_finite()) {
        return None;
    }
    score(p, scoring, values, attributes, now).ok()?;
    let optimum = optimise(&p.controls, &p.advice, &current, |setting| {
        let mut x = values.to_vec();
        for (&i, v) in index.iter().zip(setting) {
            x[i] = *v;
        }
        let risk = score(p, scoring, &x, attributes, now).map_or(f64::INFINITY, |r| risk_of(&r));
        Outcome {
            risk,
            energy: p.energy(&x),
        }
    });
    Some(dtwin_profile::advice::advise(p, &p.controls, &optimum))
}

/// [`advise`] for a published verdict: its `latest` readings (a sensor it lacks makes its
/// controls' advice impossible: `None`) in `p`'s order, no attribute values.
pub fn advise_verdict(risk: &Risk, p: &Profile, scoring: Scoring<'_>) -> Option<Advice> {
    let values = values_of(p, &risk.latest);
    let attributes = vec![None; p.attributes.len()];
    advise(p, scoring, &values, &attributes, risk.ts)
}

/// `latest` in `p`'s sensor order (NaN where missing).
pub fn values_of(p: &Profile, latest: &BTreeMap<String, f64>) -> Vec<f64> {
    p.sensors
        .iter()
        .map(|s| latest.get(&s.name).copied().unwrap_or(f64::NAN))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatif::WhatIfForm;

    fn scorer() -> Scorer {
        let cfg = dtwin_inference::InferenceConfig::new(dtwin_bus::BrokerUrl::new("127.0.0.1", 1));
        dtwin_inference::build_scorer(&cfg).unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap()
    }

    /// A worn tool cutting hard: overstrain and power overload fire.
    fn hard_cut() -> WhatIfForm {
        WhatIfForm {
            tool_wear_min: "210".into(),
            torque_nm: "62".into(),
            ..WhatIfForm::healthy()
        }
    }

    #[test]
    fn values_round_trip_through_a_milling_reading_and_score_as_the_form_does() {
        let p = Profile::milling();
        let reading = hard_cut().validate().unwrap();
        let (values, attributes) = milling_values(&p, &reading);
        assert_eq!(attributes, [Some(1)], "product M");
        let again = milling_reading(&p, &values, &attributes);
        assert_eq!(again.power_w, reading.power_w);
        assert_eq!(again.product_type, reading.product_type);
        let s = scorer();
        let w = WindowConfig::default();
        let scoring = Scoring::Milling {
            scorer: &s,
            window: &w,
        };
        let a = score(&p, scoring, &values, &attributes, now()).unwrap();
        let b = crate::whatif::score(&s, &w, &reading, now());
        assert_eq!(a, b);
    }

    #[test]
    fn a_hard_cut_is_advised_a_lighter_one_that_clears_its_rules() {
        let p = Profile::milling();
        let s = scorer();
        let w = WindowConfig::default();
        let scoring = Scoring::Milling {
            scorer: &s,
            window: &w,
        };
        let (values, attributes) = milling_values(&p, &hard_cut().validate().unwrap());
        let before = score(&p, scoring, &values, &attributes, now()).unwrap();
        let codes: Vec<&str> = before.actions.iter().map(|a| a.code.as_str()).collect();
        assert!(
            codes.contains(&"OVERSTRAIN") && codes.contains(&"POWER_OVERLOAD"),
            "{codes:?}"
        );
        let a = advise(&p, scoring, &values, &attributes, now()).unwrap();
        assert!(a.risk_after < a.risk_before, "{a:?}");
        assert!(a.text.starts_with("run at "), "{}", a.text);
        assert!(
            a.text.contains("N·m"),
            "torque is what overstrains: {}",
            a.text
        );
        assert!(
            a.energy_percent.is_some_and(|e| e < 0.0),
            "a lighter cut uses less: {a:?}"
        );
        // Re-scored at the advised setting, the verdict is what the advice says.
        let mut x = values.clone();
        for c in &a.changes {
            let i = p.sensors.iter().position(|s| s.name == c.sensor).unwrap();
            x[i] = c.to;
        }
        let after = score(&p, scoring, &x, &attributes, now()).unwrap();
        assert!((risk_of(&after) - a.risk_after).abs() < 1e-12);
        assert!(!after.actions.iter().any(|a| a.code == "OVERSTRAIN"));
        // Reproducible.
        assert_eq!(advise(&p, scoring, &values, &attributes, now()), Some(a));
    }

    #[test]
    fn sensitivity_sweeps_each_input_across_its_typical_span() {
        let p = Profile::milling();
        let s = scorer();
        let w = WindowConfig::default();
        let scoring = Scoring::Milling {
            scorer: &s,
            window: &w,
        };
        let (values, attributes) = milling_values(&p, &WhatIfForm::healthy().validate().unwrap());
        let sweeps = sensitivity(&p, scoring, &values, &attributes, 5, now());
        assert_eq!(sweeps.len(), p.sensors.len());
        let vib = sweeps
            .iter()
            .find(|s| s.sensor == "vibration_mm_s")
            .unwrap();
        assert_eq!(vib.points.len(), 5);
        assert_eq!((vib.points[0].0, vib.points[4].0), (0.0, 15.0));
        assert!(
            vib.points[4].1 > vib.points[0].1,
            "high vibration is riskier: {vib:?}"
        );
        assert_eq!(vib.current, 2.2);
    }

    #[test]
    fn a_profile_without_controls_gets_no_advice() {
        let p = crate::profiles::tests::pump();
        let values = [176.0, 1500.0, 3.0];
        let scoring = Scoring::Profile { model: None };
        assert!(advise(&p, scoring, &values, &[], now()).is_none());
        let sweeps = sensitivity(&p, scoring, &values, &[], 3, now());
        assert!(
            sweeps
                .iter()
                .all(|s| s.points.iter().all(|(_, r)| *r == 0.0)),
            "rules only, none fire"
        );
    }
}
