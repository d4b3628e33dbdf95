//! The what-if form for a machine profile other than milling: one field per sensor (label,
//! unit, range as input bounds) and a choice per categorical attribute, checked against the sensor's range as the feature service
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

/// What a person entered for a profile: one value per sensor and one code per attribute (the
/// value's position in the attribute's list; `None` when left open), in profile order.
#[derive(Debug, Clone, PartialEq)]
pub struct Entered {
    /// Sensor values.
    pub values: Vec<f64>,
    /// Attribute codes.
    pub attributes: Vec<Option<usize>>,
}

/// The values typed for `p`.
///
/// # Errors
/// Every bad field: a missing sensor, not a number, or outside the sensor's range (named with
/// the sensor's label, range and unit, as a person reads them), or an attribute value the
/// profile does not list.
pub fn validate(p: &Profile, form: &BTreeMap<String, String>) -> Result<Entered, FieldErrors> {
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
    let mut attributes = Vec::with_capacity(p.attributes.len());
    for a in &p.attributes {
        let raw = form.get(&a.name).map_or("", |v| v.trim());
        if raw.is_empty() {
            attributes.push(None);
            continue;
        }
        match a.code(raw) {
            Some(c) => attributes.push(Some(c)),
            None => {
                errors.insert(
                    a.name.clone(),
                    format!("{} must be one of {}", a.label, a.values.join(", ")),
                );
            }
        }
    }
    if errors.is_empty() {
        Ok(Entered { values, attributes })
    } else {
        Err(errors)
    }
}

/// The feature vector the feature service would publish for a machine of `p` that reported
/// `entered` steadily: readings one second apart until the short and long windows are full,
/// so the vector is warm.
///
/// # Panics
/// When `entered` does not fit the profile (a caller bug: [`validate`] gives one that does).
pub fn features(p: &Profile, entered: &Entered, now: OffsetDateTime) -> Features {
    let (names, hash) = profile_feature_set(p);
    let mut w = ProfileWindow::new(p);
    let (values, attributes) = (&entered.values, &entered.attributes);
    let n = p
        .windows
        .short
        .unwrap_or(1)
        .max(p.windows.long.unwrap_or(1));
    let start = (now - OffsetDateTime::UNIX_EPOCH).as_seconds_f64() - n as f64;
    let mut f = None;
    for i in 1..=n {
        f = Some(w.update(p, start + i as f64, values, attributes));
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
    entered: &Entered,
    model: Option<&Scorer>,
    now: OffsetDateTime,
) -> Result<Risk, Rejection> {
    score_features(&features(p, entered, now), model, now)
}

/// The verdict for the feature vector `f` (see [`features`]): `model`'s, or the rules-only
/// verdict without one.
///
/// # Errors
/// As [`score`].
pub fn score_features(
    f: &Features,
    model: Option<&Scorer>,
    now: OffsetDateTime,
) -> Result<Risk, Rejection> {
    match model {
        Some(s) => s.score(f, now),
        None => Ok(dtwin_inference::profiles::rules_only(f, now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::tests::pump;
    use dtwin_inference::profiles::NO_MODEL;

    fn entered(values: &[f64]) -> Entered {
        Entered {
            values: values.to_vec(),
            attributes: Vec::new(),
        }
    }

    #[test]
    fn attributes_are_chosen_from_their_values() {
        let p = Profile::parse(
            &format!(
                "{}\n[[attribute]]\nname = \"model\"\nlabel = \"Model\"\nvalues = [\"model1\", \"model2\"]\n",
                crate::profiles::tests::PUMP
            ),
            "pump.toml",
        )
        .unwrap();
        let base = [("volt", "176"), ("rotate", "1500"), ("pressure", "3")];
        let mut pairs = base.to_vec();
        pairs.push(("model", "model2"));
        let e = validate(&p, &form(&pairs)).unwrap();
        assert_eq!(e.attributes, [Some(1)]);
        let f = features(&p, &e, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(f.values["model"], Some(1.0));
        assert_eq!(validate(&p, &form(&base)).unwrap().attributes, [None]);
        pairs.pop();
        pairs.push(("model", "model9"));
        let err = validate(&p, &form(&pairs)).unwrap_err();
        assert_eq!(err["model"], "Model must be one of model1, model2");
    }

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
        assert_eq!(ok.map(|e| e.values), Ok(vec![176.2, 1500.0, 3.0]));
        let e = validate(&p, &form(&[("volt", "999"), ("rotate", "fast")])).unwrap_err();
        assert_eq!(e["volt"], "Voltage must be between 0 and 400 V");
        assert_eq!(e["rotate"], "Rotation must be a number in rpm");
        assert_eq!(e["pressure"], "<b>Pressure</b> is required");
    }

    #[test]
    fn a_steady_window_is_warm_and_has_the_profiles_features() {
        let p = pump();
        let now = OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap();
        let f = features(&p, &entered(&[176.2, 1500.0, 3.0]), now);
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
        let r = score(
            &p,
            &entered(&[176.2, 1500.0, 3.0]),
            None,
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(r.actions[0].code, NO_MODEL);
        assert!(r.actions[0]
            .text
            .contains("no model for profile pump yet: rules only"));
    }
}
