//! The what-if page: the milling form ([`crate::whatif`]) or, when the person picks another
//! profile, a form built from that profile's sensors ([`crate::profile_whatif`]). A selector
//! offers the profiles when more than milling is known; `?profile=ID` (or `?from=MACHINE`,
//! which takes the machine's profile and latest readings) chooses one.

use crate::insights::Badge;
use crate::profile_whatif;
use crate::profiles::{number, MILLING};
use crate::web::{escape, page, status_text, AppState};
use crate::whatif::{self, WhatIfForm, FIELDS};
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dtwin_profile::Profile;
use dtwin_schema::{Features, Risk};
use std::collections::BTreeMap;

/// One input of the form.
pub(crate) struct FieldView {
    name: String,
    label: String,
    unit: String,
    required: bool,
    /// Input bounds (a profile sensor's range).
    min: Option<String>,
    max: Option<String>,
    value: String,
    error: Option<String>,
    /// A categorical attribute: its values (a choice instead of a number).
    options: Vec<String>,
    /// The slider: the sensor's typical span and a step (absent for a choice).
    slider: Option<Slider>,
    /// Whether the optimiser may advise a value for it (a profile's `[[control]]`).
    control: bool,
}

/// A numeric field's slider.
pub(crate) struct Slider {
    lo: String,
    hi: String,
    step: String,
}

/// A round step giving about 200 positions over `lo..hi`: 1, 2 or 5 times a power of ten.
fn nice_step(lo: f64, hi: f64) -> f64 {
    let raw = (hi - lo) / 200.0;
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

/// The slider of sensor `name` of `p` (its typical span; a control's own step), and whether
/// it is a control.
fn slider(p: &Profile, name: &str) -> (Option<Slider>, bool) {
    let Some(s) = p.sensor(name) else {
        return (None, false);
    };
    let control = p.controls.iter().find(|c| c.sensor == name);
    let [lo, hi] = s.typical;
    let step = control.map_or_else(|| nice_step(lo, hi), |c| c.step);
    (
        Some(Slider {
            lo: format!("{lo}"),
            hi: format!("{hi}"),
            step: format!("{step}"),
        }),
        control.is_some(),
    )
}

/// One choice of the profile selector.
pub(crate) struct ProfileChoice {
    id: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "whatif.html")]
pub(crate) struct WhatIfPage {
    /// The selector's choices; empty when only milling is known.
    profiles: Vec<ProfileChoice>,
    /// The chosen profile's id, and its label when it is not milling.
    profile: String,
    profile_label: Option<String>,
    fields: Vec<FieldView>,
    /// Milling only: the product type field.
    product: bool,
    product_type: String,
    product_error: Option<String>,
    from: Option<String>,
    result: Option<Risk>,
    result_status: &'static str,
    result_status_text: &'static str,
    /// A rules-only verdict: what to say instead of a probability.
    no_model: Option<String>,
    /// The profile's model could not score (e.g. trained on other features).
    refused: Option<String>,
    /// The result's other figures (quality risk, anomaly, remaining life), from the
    /// profile's models of other kinds, each with the model behind it.
    result_insights: Vec<(Badge, Option<String>)>,
    /// Kinds whose model could not score these values (trained on other features).
    mismatched: Vec<&'static str>,
}

/// Adds what the profile's models of other kinds say about `f` to its verdict `risk`, as the
/// inference service does; returns the kinds whose model was trained on other features.
pub(crate) fn annotate(s: &AppState, f: &Features, risk: &mut Risk) -> Vec<&'static str> {
    let kinds = s
        .kinds
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    kinds
        .annotate(f, risk)
        .mismatched
        .into_iter()
        .map(|k| k.as_str())
        .collect()
}

/// What a rules-only verdict says instead of a probability.
pub(crate) fn no_model_note(profile: &str, other_models: bool) -> String {
    if other_models {
        format!(
            "No failure classifier for profile {profile} yet: rules and the profile's other models below (an anomalous reading is AT RISK). Every value is within its sensor's range."
        )
    } else {
        format!(
            "No model for profile {profile} yet: rules only. Every value is within its sensor's range."
        )
    }
}

/// The figures of the verdict's other models, each with its model (`id vN`).
fn figures(risk: &Risk) -> Vec<(Badge, Option<String>)> {
    crate::insights::badges(&risk.insights)
        .into_iter()
        .map(|b| {
            let model = risk
                .insights
                .models
                .get(b.kind)
                .map(|m| format!("{} v{}", m.id, m.version));
            (b, model)
        })
        .collect()
}

fn choices(s: &AppState, chosen: &str) -> Vec<ProfileChoice> {
    if !s.profiles.has_others() {
        return Vec::new();
    }
    s.profiles
        .all()
        .iter()
        .map(|p| ProfileChoice {
            id: p.id.clone(),
            label: p.label.clone(),
            selected: p.id == chosen,
        })
        .collect()
}

fn base(s: &AppState, chosen: &Profile, from: Option<String>, result: Option<Risk>) -> WhatIfPage {
    let (result_status, result_status_text) =
        result.as_ref().map_or(("", ""), |r| status_text(r.status));
    WhatIfPage {
        result_insights: result.as_ref().map_or_else(Vec::new, figures),
        mismatched: Vec::new(),
        profiles: choices(s, &chosen.id),
        profile: chosen.id.clone(),
        profile_label: (chosen.id != MILLING).then(|| chosen.label.clone()),
        fields: Vec::new(),
        product: chosen.id == MILLING,
        product_type: String::new(),
        product_error: None,
        from,
        result,
        result_status,
        result_status_text,
        no_model: None,
        refused: None,
    }
}

/// The milling form.
fn milling_view(
    s: &AppState,
    form: &WhatIfForm,
    errors: &BTreeMap<&'static str, String>,
    from: Option<String>,
    result: Option<Risk>,
) -> WhatIfPage {
    let milling = s
        .profiles
        .get(None)
        .cloned()
        .unwrap_or_else(Profile::milling);
    WhatIfPage {
        fields: FIELDS
            .iter()
            .map(|&(name, label, unit, required)| {
                let (slider, control) = slider(&milling, name);
                FieldView {
                    name: name.to_owned(),
                    label: label.to_owned(),
                    unit: unit.to_owned(),
                    required,
                    min: None,
                    max: None,
                    value: form.get(name).to_owned(),
                    error: errors.get(name).cloned(),
                    options: Vec::new(),
                    slider,
                    control,
                }
            })
            .collect(),
        product_type: form.product_type.clone(),
        product_error: errors.get("product_type").cloned(),
        ..base(s, &milling, from, result)
    }
}

/// Another profile's form: one field per sensor, bounded by its range, then a choice per
/// attribute.
fn profile_view(
    s: &AppState,
    p: &Profile,
    values: &BTreeMap<String, String>,
    errors: &profile_whatif::FieldErrors,
    from: Option<String>,
) -> WhatIfPage {
    WhatIfPage {
        fields: p
            .sensors
            .iter()
            .map(|x| {
                let (slider, control) = slider(p, &x.name);
                FieldView {
                    name: x.name.clone(),
                    label: x.label.clone(),
                    unit: x.unit.clone(),
                    required: true,
                    min: Some(number(x.min)),
                    max: Some(number(x.max)),
                    value: values.get(&x.name).cloned().unwrap_or_default(),
                    error: errors.get(&x.name).cloned(),
                    options: Vec::new(),
                    slider,
                    control,
                }
            })
            .chain(p.attributes.iter().map(|a| FieldView {
                name: a.name.clone(),
                label: a.label.clone(),
                unit: String::new(),
                required: false,
                min: None,
                max: None,
                value: values.get(&a.name).cloned().unwrap_or_default(),
                error: errors.get(&a.name).cloned(),
                options: a.values.clone(),
                slider: None,
                control: false,
            }))
            .collect(),
        ..base(s, p, from, None)
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct Pick {
    from: Option<String>,
    profile: Option<String>,
}

fn unknown_profile(s: &AppState, id: &str) -> Response {
    let known: Vec<&str> = s.profiles.all().iter().map(|p| p.id.as_str()).collect();
    (
        StatusCode::NOT_FOUND,
        axum::response::Html(format!(
            "<!DOCTYPE html><p>No profile called <code>{}</code>; the dashboard knows {}. <a href=\"/whatif\">What-if</a></p>",
            escape(id),
            escape(&known.join(", "))
        )),
    )
        .into_response()
}

/// `GET /whatif`: the form, pre-filled from a machine (`?from=`) or for a profile
/// (`?profile=`).
pub(crate) async fn whatif_page(State(s): State<AppState>, Query(q): Query<Pick>) -> Response {
    let machine = q
        .from
        .as_deref()
        .and_then(|id| s.fleet().machine(id).cloned());
    let machine_profile = machine
        .as_ref()
        .and_then(|m| m.risk.as_ref())
        .and_then(|r| r.profile.clone());
    let id = q
        .profile
        .clone()
        .or(machine_profile)
        .unwrap_or_else(|| MILLING.to_owned());
    if id == MILLING {
        let (form, from) = match machine.and_then(|m| m.telemetry) {
            Some(t) => (WhatIfForm::from_telemetry(&t), q.from),
            None => (WhatIfForm::healthy(), None),
        };
        return page(milling_view(&s, &form, &Default::default(), from, None));
    }
    let Some(p) = s.profiles.get(Some(&id)).cloned() else {
        return unknown_profile(&s, &id);
    };
    let latest = machine
        .and_then(|m| m.risk)
        .filter(|r| r.profile.as_deref() == Some(p.id.as_str()))
        .map(|r| r.latest);
    let from = latest.as_ref().and(q.from);
    let values = latest
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, number(v)))
        .collect();
    page(profile_view(&s, &p, &values, &Default::default(), from))
}

/// `POST /whatif`: validates and scores; bad input gets a message next to its field (422).
pub(crate) async fn whatif_submit(
    State(s): State<AppState>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let mut form: BTreeMap<String, String> = fields.into_iter().collect();
    let id = form.remove("profile").unwrap_or_else(|| MILLING.to_owned());
    if id == MILLING {
        return milling_submit(&s, &form);
    }
    let Some(p) = s.profiles.get(Some(&id)).cloned() else {
        return unknown_profile(&s, &id);
    };
    let entered = match profile_whatif::validate(&p, &form) {
        Ok(v) => v,
        Err(errors) => {
            let mut r = page(profile_view(&s, &p, &form, &errors, None));
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            return r;
        }
    };
    let now = dtwin_schema::time_fmt::now();
    let f = profile_whatif::features(&p, &entered, now);
    let scored = {
        let models = s
            .models
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        profile_whatif::score_features(&f, models.get(&p.id), now)
    };
    let mut view = profile_view(&s, &p, &form, &Default::default(), None);
    match scored {
        Ok(mut risk) => {
            view.mismatched = annotate(&s, &f, &mut risk);
            view.result_insights = figures(&risk);
            if risk.model.id == dtwin_inference::profiles::NO_MODEL_ID {
                view.no_model = Some(no_model_note(&p.id, !view.result_insights.is_empty()));
            }
            let (status, text) = status_text(risk.status);
            view.result_status = status;
            view.result_status_text = text;
            view.result = Some(risk);
        }
        Err(e) => {
            view.refused = Some(format!(
                "The model for profile {} cannot score these values: {e}",
                p.id
            ));
        }
    }
    page(view)
}

fn milling_submit(s: &AppState, fields: &BTreeMap<String, String>) -> Response {
    // Every field of the milling form is a string with a default, so this cannot fail on
    // content; anything else is ignored.
    let json = fields
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let form: WhatIfForm =
        serde_json::from_value(serde_json::Value::Object(json)).unwrap_or_default();
    match form.validate() {
        Ok(reading) => {
            let now = dtwin_schema::time_fmt::now();
            let f = whatif::features(&s.window, &reading, now);
            let mut risk = s
                .scorer
                .score(&f, now)
                .expect("features computed with the scorer's own feature set");
            let mismatched = annotate(s, &f, &mut risk);
            let mut view = milling_view(s, &form, &Default::default(), None, Some(risk));
            view.mismatched = mismatched;
            page(view)
        }
        Err(errors) => {
            let mut r = page(milling_view(s, &form, &errors, None, None));
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    }
}
