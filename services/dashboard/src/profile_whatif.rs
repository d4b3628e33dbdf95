//! The what-if form for a machine profile other than milling: one field per sensor (label,
//! unit, range as input bounds), checked against the sensor's range as the feature service
//! checks readings, then scored the way the services would score a machine that reports the
//! values steadily: a `ProfileWindow` fed them until its windows are full gives the vector the
//! feature service would publish, and the profile's model (deployed retained on
//! `{prefix}/models/{profile}`) scores it; without one, the inference service's rules-only
//! verdict ("no model for profile X yet: rules only"). Pure.

use dtwin_inference::Scorer;
use dtwin_profile::Profile;
use dtwin_schema::{Features, MachineId, Rejection, Risk, FEATURES_SCHEMA};
use dtwin_windows::{profile_feature_set, ProfileWindow};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Field name -> what is wrong with it.
pub type FieldErrors = BTreeMap<String, String>;

/// The sensor values typed for `p`, in sensor order.
///
/// # Errors
/// Every bad field: missing, not a number, or outside the sensor's range (named with the
/// sensor's label, range and unit, as a person reads them).
pub fn validate(p: &Profile, form: &BTreeMap<String, String>) -> Result<Vec<f64>, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut values = Vec::with_capacity(p.sensors.len());
    for s in &p.sensors {
        let raw = form.get(&s.name).map_or("", |v| v.trim());
        let (unit, in_unit) = if s.unit.is_empty() {
            (String::new(), String::new())
        } else {
            (format!(" {}", s.unit), format!(" in {}", s.unit))
        };
        if raw.is_empty() {
            errors.insert(s.name.clone(), format!("{} is required", s.label));
            continue;
        }
        let Ok(v) = raw.replace(',', ".").parse::<f64>() else {
            errors.insert(
                s.name.clone(),
                format!("{} must be a number{in_unit}", s.label),
            );
            continue;
        };
        if !s.accepts(v) {
            errors.insert(
                s.name.clone(),
                format!("{} must be between {} and {}{unit}", s.label, s.min, s.max),
            );
            continue;
        }
        values.push(v);
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// The feature vector the feature service would publish for a machine of `p` that reported
/// `values` (sensor order) steadily: readings one second apart until the short and long
/// windows are full, so the vector is warm.
///
/// # Panics
/// When `values` does not have one value per sensor (a caller bug: [`validate`] gives that).
pub fn features(p: &Profile, values: &[f64], now: OffsetDateTime) -> Features {
    let (names, hash) = profile_feature_set(p);
    let mut w = ProfileWindow::new(p);
    let attributes = vec![None; p.attributes.len()];
    let n = p
        .windows
        .short
        .unwrap_or(1)
        .max(p.windows.long.unwrap_or(1));
    let start = (now - OffsetDateTime::UNIX_EPOCH).as_seconds_f64() - n as f64;
    let mut f = None;
    for i in 1..=n {
        f = Some(w.update(p, start + i as f64, values, &attributes));
    }
    let f = f.expect("at least one reading");
    Features {
        schema: FEATURES_SCHEMA.to_owned(),
        machine_id: MachineId::parse("what-if").expect("valid id"),
        ts: now,
        source_ts: now,
        seq: n as u64,
        feature_set: hash,
        window_len: n as u32,
        cold: f.cold,
        values: names
            .into_iter()
            .zip(&f.values)
            .map(|(n, v)| (n, v.is_finite().then_some(*v)))
            .collect(),
        latest: p
            .sensors
            .iter()
            .zip(values)
            .map(|(s, v)| (s.name.clone(), *v))
            .collect(),
        product_type: None,
        gap: 0,
        profile: Some(p.id.clone()),
    }
}

/// The verdict for `values` of `p`: the profile's model when the dashboard has one, else the
/// inference service's rules-only verdict (action `NO_MODEL`).
///
/// # Errors
/// The model's [`Rejection`] when it was trained on other features than the profile's
/// (`feature_set_mismatch`: the profile changed since the model was trained).
pub fn score(
    p: &Profile,
    values: &[f64],
    model: Option<&Scorer>,
    now: OffsetDateTime,
) -> Result<Risk, Rejection> {
    let f = features(p, values, now);
    match model {
        Some(s) => s.score(&f, now),
        None => Ok(dtwin_inference::profiles::rules_only(&f, now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::tests::pump;
    use dtwin_inference::profiles::NO_MODEL;

    fn form(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn values_are_checked_against_each_sensors_range() {
        let p = pump();
        let ok = validate(
            &p,
            &form(&[("volt", "176,2"), ("rotate", "1500"), ("pressure", "3")]),
        );
        assert_eq!(ok, Ok(vec![176.2, 1500.0, 3.0]));
        let e = validate(&p, &form(&[("volt", "999"), ("rotate", "fast")])).unwrap_err();
        assert_eq!(e["volt"], "Voltage must be between 0 and 400 V");
        assert_eq!(e["rotate"], "Rotation must be a number in rpm");
        assert_eq!(e["pressure"], "<b>Pressure</b> is required");
    }

    #[test]
    fn a_steady_window_is_warm_and_has_the_profiles_features() {
        let p = pump();
        let now = OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap();
        let f = features(&p, &[176.2, 1500.0, 3.0], now);
        let (names, hash) = profile_feature_set(&p);
        assert!(!f.cold);
        assert_eq!(f.feature_set, hash);
        assert_eq!(f.values.len(), names.len());
        assert_eq!(f.values["volt"], Some(176.2));
        assert_eq!(f.values["volt_mean_3"], Some(176.2));
        assert_eq!(f.latest["rotate"], 1500.0);
        assert_eq!(f.profile.as_deref(), Some("pump"));
    }

    #[test]
    fn without_a_model_the_verdict_is_rules_only() {
        let p = pump();
        let r = score(&p, &[176.2, 1500.0, 3.0], None, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(r.actions[0].code, NO_MODEL);
        assert!(r.actions[0]
            .text
            .contains("no model for profile pump yet: rules only"));
    }
}
