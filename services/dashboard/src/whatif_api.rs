//! `POST /api/whatif`: the what-if verdict as JSON for the page's live view (sliders move,
//! the browser asks again after a pause): the verdict of the values, the risk across each
//! input's span ([`crate::advice::sensitivity`]) and the advice on the profile's controllable
//! inputs ([`crate::advice::advise`]). The values are checked by the form's own code, so a
//! bad one gets the message the form would show next to its field.

use crate::advice::{self, Scoring, Sweep};
use crate::insights::Badge;
use crate::profile_whatif;
use crate::profiles::MILLING;
use crate::web::{status_text, AppState};
use crate::whatif::WhatIfForm;
use crate::whatif_page::{annotate, no_model_note};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dtwin_profile::Profile;
use dtwin_schema::{Action, Factor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the page sends.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WhatIfRequest {
    /// The profile (milling when absent).
    #[serde(default)]
    pub profile: Option<String>,
    /// Sensor values (numbers, or text as typed).
    #[serde(default)]
    pub values: BTreeMap<String, serde_json::Value>,
    /// Attribute values (`product_type`: `M`, a pump's `model`: `model2`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Whether to sweep each input (default yes).
    #[serde(default = "yes")]
    pub sensitivity: bool,
    /// Whether to advise (default yes).
    #[serde(default = "yes")]
    pub advice: bool,
}

fn yes() -> bool {
    true
}

/// A verdict for the page.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `AT_RISK` / `HEALTHY`.
    pub status: &'static str,
    /// `AT RISK` / `HEALTHY`.
    pub status_text: &'static str,
    /// `NORMAL` / `WARNING` / `CRITICAL`.
    pub level: &'static str,
    /// The model's probability (0 for a rules-only verdict).
    pub probability: f64,
    /// Health score 0..100.
    pub health: f64,
    /// The risk advice minimises ([`advice::risk_of`]).
    pub risk: f64,
    /// A rules-only verdict: what to say instead of a probability.
    pub no_model: Option<String>,
    /// Recommended actions.
    pub actions: Vec<Action>,
    /// Top contributing factors.
    pub factors: Vec<Factor>,
    /// The profile's other models' figures.
    pub insights: Vec<Badge>,
}

/// One control's change in the advice.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeView {
    /// The sensor (the field's name).
    pub sensor: String,
    /// Its label.
    pub label: String,
    /// Now.
    pub from: f64,
    /// Advised.
    pub to: f64,
    /// `1,420 rpm`.
    pub to_text: String,
}

/// The advice for the page.
#[derive(Debug, Clone, Serialize)]
pub struct AdviceView {
    /// One sentence.
    pub text: String,
    /// What changes.
    pub changes: Vec<ChangeView>,
    /// Risk now and advised.
    pub risk_before: f64,
    /// Advised risk.
    pub risk_after: f64,
    /// The energy measure's change, percent.
    pub energy_percent: Option<f64>,
    /// The objective now.
    pub cost_before: f64,
    /// The objective advised.
    pub cost_after: f64,
    /// The controllable inputs (names), advised or not.
    pub controls: Vec<String>,
    /// Their labels.
    pub control_labels: Vec<String>,
}

/// The answer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WhatIfResponse {
    /// Field name -> what is wrong (the verdict is then absent).
    pub errors: BTreeMap<String, String>,
    /// The profile's model cannot score these values.
    pub refused: Option<String>,
    /// The verdict.
    pub verdict: Option<Verdict>,
    /// Risk across each input's span.
    pub sensitivity: Vec<Sweep>,
    /// The advice on the controllable inputs (absent for a profile without any).
    pub advice: Option<AdviceView>,
}

fn text_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Sensor values and attribute codes in a profile's order.
type Values = (Vec<f64>, Vec<Option<usize>>);

/// Checks the values as the form does: the sensor values and attribute codes in the
/// profile's order, or a message per bad field.
fn checked(p: &Profile, req: &WhatIfRequest) -> Result<Values, BTreeMap<String, String>> {
    let mut form: BTreeMap<String, String> = req
        .values
        .iter()
        .map(|(k, v)| (k.clone(), text_of(v)))
        .collect();
    form.extend(req.attributes.clone());
    if p.id == MILLING {
        let json = form
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        let f: WhatIfForm =
            serde_json::from_value(serde_json::Value::Object(json)).unwrap_or_default();
        let reading = f.validate().map_err(|e| {
            e.into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<BTreeMap<_, _>>()
        })?;
        Ok(advice::milling_values(p, &reading))
    } else {
        profile_whatif::validate(p, &form).map(|e| (e.values, e.attributes))
    }
}

/// Everything the page shows for `req` (pure apart from the models' locks).
pub fn answer(s: &AppState, req: &WhatIfRequest) -> Result<WhatIfResponse, String> {
    let id = req.profile.clone().unwrap_or_else(|| MILLING.to_owned());
    let p = if id == MILLING {
        s.profiles
            .get(None)
            .cloned()
            .unwrap_or_else(Profile::milling)
    } else {
        s.profiles
            .get(Some(&id))
            .cloned()
            .ok_or_else(|| format!("no profile called {id}"))?
    };
    let (values, attributes) = match checked(&p, req) {
        Ok(v) => v,
        Err(errors) => {
            return Ok(WhatIfResponse {
                errors,
                ..WhatIfResponse::default()
            })
        }
    };
    // The profile's model, out of the lock: scoring many settings takes a while.
    let model = (id != MILLING)
        .then(|| {
            s.models
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&p.id)
                .cloned()
        })
        .flatten();
    let scoring = if id == MILLING {
        Scoring::Milling {
            scorer: &s.scorer,
            window: &s.window,
        }
    } else {
        Scoring::Profile {
            model: model.as_ref(),
        }
    };
    let now = dtwin_schema::time_fmt::now();
    let mut risk = match advice::score(&p, scoring, &values, &attributes, now) {
        Ok(r) => r,
        Err(e) => {
            return Ok(WhatIfResponse {
                refused: Some(format!(
                    "The model for profile {} cannot score these values: {e}",
                    p.id
                )),
                ..WhatIfResponse::default()
            })
        }
    };
    let features = if id == MILLING {
        crate::whatif::features(
            &s.window,
            &advice::milling_reading(&p, &values, &attributes),
            now,
        )
    } else {
        profile_whatif::features(
            &p,
            &profile_whatif::Entered {
                values: values.clone(),
                attributes: attributes.clone(),
            },
            now,
        )
    };
    annotate(s, &features, &mut risk);
    let insights = crate::insights::badges(&risk.insights);
    let no_model = (risk.model.id == dtwin_inference::profiles::NO_MODEL_ID)
        .then(|| no_model_note(&p.id, !insights.is_empty()));
    let (status, status_text) = status_text(risk.status);
    let verdict = Verdict {
        status,
        status_text,
        level: crate::web::level_name(risk.level),
        probability: risk.probability,
        health: risk.health_score,
        risk: advice::risk_of(&risk),
        no_model,
        actions: risk.actions.clone(),
        factors: risk.factors.clone(),
        insights,
    };
    let sensitivity = if req.sensitivity {
        advice::sensitivity(
            &p,
            scoring,
            &values,
            &attributes,
            advice::SENSITIVITY_POINTS,
            now,
        )
    } else {
        Vec::new()
    };
    let advice = req
        .advice
        .then(|| advice::advise(&p, scoring, &values, &attributes, now))
        .flatten()
        .map(|a| AdviceView {
            text: a.text,
            changes: a
                .changes
                .into_iter()
                .map(|c| ChangeView {
                    sensor: c.sensor,
                    label: c.label,
                    from: c.from,
                    to: c.to,
                    to_text: c.to_text,
                })
                .collect(),
            risk_before: a.risk_before,
            risk_after: a.risk_after,
            energy_percent: a.energy_percent,
            cost_before: a.cost_before,
            cost_after: a.cost_after,
            controls: p.controls.iter().map(|c| c.sensor.clone()).collect(),
            control_labels: p
                .controls
                .iter()
                .map(|c| {
                    p.sensor(&c.sensor)
                        .map_or_else(|| c.sensor.clone(), |s| s.label.to_lowercase())
                })
                .collect(),
        });
    Ok(WhatIfResponse {
        errors: BTreeMap::new(),
        refused: None,
        verdict: Some(verdict),
        sensitivity,
        advice,
    })
}

/// `POST /api/whatif` (JSON in, JSON out): 200 with the verdict, 422 with a message per bad
/// field, 404 for an unknown profile.
pub(crate) async fn whatif_api(
    State(s): State<AppState>,
    Json(req): Json<WhatIfRequest>,
) -> Response {
    // Dozens of scorings: off the async workers.
    let done = tokio::task::spawn_blocking(move || answer(&s, &req)).await;
    match done {
        Ok(Ok(r)) if !r.errors.is_empty() => {
            (StatusCode::UNPROCESSABLE_ENTITY, Json(r)).into_response()
        }
        Ok(Ok(r)) => Json(r).into_response(),
        Ok(Err(unknown)) => (StatusCode::NOT_FOUND, unknown).into_response(),
        Err(e) => crate::web::internal(&format!("what-if: {e}")),
    }
}
