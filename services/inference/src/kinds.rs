//! A profile's models beside its failure classifier: quality (NOK) risk, anomaly and remaining
//! useful life, each deployed retained on `{prefix}/models/{profile}/{kind}` (milling's too:
//! `models/milling/anomaly`). They score the same feature vector as the classifier and add
//! their fields to its verdict ([`KindModels::annotate`]); the failure classifier's probability
//! and status stay its own, except where a model speaks instead of a missing classifier. Pure.
//!
//! - quality: `quality_risk` (the forest's probability of a NOK part within its horizon) and
//!   `quality_at_risk` (at or above its threshold), plus an action `QUALITY_RISK` (WARNING);
//! - anomaly: `anomaly` (the Isolation Forest's score) and `anomalous` (at or above its
//!   threshold on a warm window: a cold window's short-window features are not what the
//!   forest was trained on), plus an action `ANOMALY` (WARNING). A profile that has no
//!   failure classifier (a rules-only verdict) is AT_RISK while anomalous: the anomaly model
//!   then stands in for the classifier, which is how a plant with no failure history starts;
//! - rul: `rul` with the 5-95 % spread of the trees, in the model's unit.
//!
//! A model is used only on vectors of its own feature set; a vector of another set gets no
//! field from it (counted by the caller as [`Annotated::mismatched`]) and keeps its verdict.

use crate::profiles::{MILLING, NO_MODEL_ID};
use dtwin_ml::{ModelArtifact, ModelKind};
use dtwin_schema::{
    Action, Features, Level, ModelRef, RejectReason, Rejection, Risk, RiskStatus, RulEstimate,
};
use dtwin_windows::row_from_message;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The action code of an anomalous verdict.
pub const ANOMALY: &str = "ANOMALY";
/// The action code of a verdict whose quality risk is at or above its model's threshold.
pub const QUALITY_RISK: &str = "QUALITY_RISK";
/// Health points an anomalous or quality-at-risk verdict loses (as a warning rule does).
const WARNING_PENALTY: f64 = 10.0;

/// The kinds deployed on `models/{profile}/{kind}` (every kind but the failure classifier,
/// which keeps `models/current` and `models/{profile}`).
pub const KINDS: [ModelKind; 3] = [ModelKind::Quality, ModelKind::Anomaly, ModelKind::Rul];

/// What [`KindModels::annotate`] did to one verdict.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotated {
    /// Kinds whose model was trained on another feature set than the vector's.
    pub mismatched: Vec<ModelKind>,
    /// The rows each model scored, by kind (model feature order), for drift monitoring.
    pub rows: Vec<(ModelKind, Vec<f32>)>,
}

/// The deployed models of every profile, by kind.
#[derive(Default, Clone)]
pub struct KindModels {
    models: BTreeMap<(String, ModelKind), Arc<ModelArtifact>>,
}

impl KindModels {
    /// The model of `kind` for `profile`, if deployed.
    pub fn get(&self, profile: &str, kind: ModelKind) -> Option<&Arc<ModelArtifact>> {
        self.models.get(&(profile.to_owned(), kind))
    }

    /// Every deployed model: `(profile, kind, model)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, ModelKind, &ModelArtifact)> {
        self.models
            .iter()
            .map(|((p, k), m)| (p.as_str(), *k, m.as_ref()))
    }

    /// Whether no model of these kinds is deployed.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// A payload on `{prefix}/models/{profile}/{kind}`: the new model (returning the one it
    /// replaces), or none any more for an empty payload (a cleared retained message).
    /// `expected` is the feature set the feature service computes for `profile`, when known
    /// (milling's): a model of another set is refused here rather than skipped per vector.
    ///
    /// # Errors
    /// [`RejectReason::BadModel`] for an unknown kind, an artifact that does not parse, one of
    /// another kind than its topic says, or (with `expected`) of another feature set; what
    /// was deployed stays.
    pub fn deploy(
        &mut self,
        profile: &str,
        kind: &str,
        payload: &[u8],
        expected: Option<&str>,
    ) -> Result<(Option<ModelRef>, Option<ModelRef>), Rejection> {
        let bad = |detail: String| Rejection::new(RejectReason::BadModel, detail);
        let kind = match ModelKind::parse(kind) {
            Some(k) if KINDS.contains(&k) => k,
            Some(_) => {
                return Err(bad(format!(
                    "models/{profile}/classifier is not a model topic: the failure classifier is deployed on models/current (milling) or models/{profile}"
                )))
            }
            None => {
                return Err(bad(format!(
                    "unknown model kind {kind:?} on models/{profile}/{kind}: use quality, anomaly or rul"
                )))
            }
        };
        let key = (profile.to_owned(), kind);
        if payload.is_empty() {
            let old = self.models.remove(&key).map(|m| model_ref(&m));
            return Ok((old, None));
        }
        let model = ModelArtifact::from_json(payload).map_err(|e| bad(e.to_string()))?;
        if model.kind != kind {
            return Err(bad(format!(
                "model {} is {}, but it was deployed on models/{profile}/{}: `dtwin deploy` picks the topic from the artifact",
                model.model_id, model.kind, kind.as_str()
            )));
        }
        if let Some(expected) = expected.filter(|e| *e != model.feature_set_hash) {
            return Err(bad(format!(
                "model {} {} was trained on feature set {}, but the feature service computes {expected}; retrain it with the current window settings",
                model.model_id, model.version, model.feature_set_hash
            )));
        }
        let new = model_ref(&model);
        let old = self
            .models
            .insert(key, Arc::new(model))
            .map(|m| model_ref(&m));
        Ok((old, Some(new)))
    }

    /// Adds what `f`'s profile's models say to its verdict `risk` (see the module docs).
    pub fn annotate(&self, f: &Features, risk: &mut Risk) -> Annotated {
        let mut done = Annotated::default();
        if self.models.is_empty() {
            return done;
        }
        let profile = f.profile.as_deref().unwrap_or(MILLING);
        for kind in KINDS {
            let Some(model) = self.get(profile, kind) else {
                continue;
            };
            if model.feature_set_hash != f.feature_set {
                done.mismatched.push(kind);
                continue;
            }
            let row = row_from_message(f, &model.feature_names);
            apply(kind, model, &row, f.cold, risk);
            risk.insights
                .models
                .insert(kind.as_str().to_owned(), model_ref(model));
            done.rows.push((kind, row));
        }
        done
    }
}

/// Refuses a model of another kind than the failure classifier on a classifier topic
/// (`models/current`, `models/{profile}`), naming the topic it belongs on.
///
/// # Errors
/// [`RejectReason::BadModel`] for a quality, anomaly or rul model.
pub fn only_classifier(model: &ModelArtifact) -> Result<(), Rejection> {
    if model.kind == ModelKind::Classifier {
        return Ok(());
    }
    let profile = model
        .recipe
        .as_ref()
        .and_then(|r| r.profile_id())
        .unwrap_or_else(|| MILLING.to_owned());
    Err(Rejection::new(
        RejectReason::BadModel,
        format!(
            "model {} is {}: the failure classifier's topic does not take it; deploy it on models/{profile}/{} (`dtwin deploy` picks the topic from the artifact)",
            model.model_id,
            model.kind,
            model.kind.as_str()
        ),
    ))
}

/// One model's fields and actions on the verdict.
fn apply(kind: ModelKind, model: &ModelArtifact, row: &[f32], cold: bool, risk: &mut Risk) {
    match kind {
        ModelKind::Quality => {
            let p = f64::from(model.predict_row(row)).clamp(0.0, 1.0);
            let at_risk = p >= model.threshold;
            risk.insights.quality_risk = Some(round(p, 1e4));
            risk.insights.quality_at_risk = Some(at_risk);
            if at_risk {
                warn(
                    risk,
                    QUALITY_RISK,
                    format!(
                        "NOK parts likely (quality risk {p:.2} >= {:.2}): check tool wear, vibration and process parameters; inspect the next parts",
                        model.threshold
                    ),
                );
            }
        }
        ModelKind::Anomaly => {
            let Ok(score) = model.anomaly_score_row(row) else {
                return;
            };
            let score = f64::from(score).clamp(0.0, 1.0);
            let anomalous = !cold && score >= model.threshold;
            risk.insights.anomaly = Some(round(score, 1e4));
            risk.insights.anomalous = Some(anomalous);
            if anomalous {
                warn(
                    risk,
                    ANOMALY,
                    format!(
                        "readings unlike the healthy reference (anomaly score {score:.2} >= {:.2}): inspect the machine and its sensors",
                        model.threshold
                    ),
                );
                if risk.model.id == NO_MODEL_ID {
                    // No failure classifier: the anomaly model decides the status.
                    risk.status = RiskStatus::AtRisk;
                }
            }
        }
        ModelKind::Rul => {
            let (Ok((est, lo, hi)), Some(meta)) = (model.predict_rul_row(row), model.rul.as_ref())
            else {
                return;
            };
            let v = |x: f32| round(f64::from(x).max(0.0), 10.0);
            risk.insights.rul = Some(RulEstimate {
                value: v(est),
                low: v(lo),
                high: v(hi),
                unit: meta.unit.clone(),
            });
        }
        ModelKind::Classifier => {}
    }
}

/// Adds a WARNING action: the level rises to WARNING at least and the health score drops as
/// for a warning rule; the status is the caller's to decide.
fn warn(risk: &mut Risk, code: &str, text: String) {
    risk.actions.push(Action {
        code: code.to_owned(),
        text,
        severity: Level::Warning,
    });
    // Most severe first, as the rules order them.
    risk.actions.sort_by_key(|a| std::cmp::Reverse(a.severity));
    if risk.level == Level::Normal {
        risk.level = Level::Warning;
    }
    risk.health_score = (risk.health_score - WARNING_PENALTY).clamp(0.0, 100.0);
}

fn round(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

fn model_ref(m: &ModelArtifact) -> ModelRef {
    ModelRef {
        id: m.model_id.clone(),
        version: m.version.clone(),
    }
}

#[cfg(test)]
#[path = "kinds_tests.rs"]
mod tests;
