//! The pure core of inference: a feature vector in, a risk verdict out.
//!
//! probability = the forest's share of trees voting risk (averaged leaf fractions);
//! status = AT_RISK when probability >= the model's threshold or a CRITICAL rule fires;
//! level = CRITICAL (probability >= `critical` or a critical rule), WARNING (AT_RISK or a
//! warning rule) or NORMAL; health score = 100 x (1 - probability), less 10 per warning and
//! 25 per critical rule, clamped to 0..100.

use crate::rules::RuleSet;
use dtwin_features::row_from_message;
use dtwin_ml::ModelArtifact;
use dtwin_schema::{
    Action, Factor, Features, Level, ModelRef, RejectReason, Rejection, Risk, RiskStatus,
    RISK_SCHEMA,
};
use std::sync::Arc;
use time::OffsetDateTime;

/// Probability at or above which a verdict is CRITICAL.
pub const DEFAULT_CRITICAL: f64 = 0.8;
/// How many contributing factors a verdict lists.
pub const TOP_FACTORS: usize = 3;

/// A loaded model with its rules.
#[derive(Clone)]
pub struct Scorer {
    model: Arc<ModelArtifact>,
    rules: Arc<RuleSet>,
    critical: f64,
}

/// The decision part of a verdict, from a probability and the fired rules.
pub fn decide(
    probability: f64,
    threshold: f64,
    critical: f64,
    actions: &[Action],
) -> (RiskStatus, Level, f64) {
    let critical_rule = actions.iter().any(|a| a.severity == Level::Critical);
    let warning_rules = actions
        .iter()
        .filter(|a| a.severity == Level::Warning)
        .count();
    let status = if probability >= threshold || critical_rule {
        RiskStatus::AtRisk
    } else {
        RiskStatus::Healthy
    };
    let level = if probability >= critical || critical_rule {
        Level::Critical
    } else if status == RiskStatus::AtRisk || warning_rules > 0 {
        Level::Warning
    } else {
        Level::Normal
    };
    let critical_rules = actions.len() - warning_rules;
    let health =
        100.0 * (1.0 - probability) - 10.0 * warning_rules as f64 - 25.0 * critical_rules as f64;
    (
        status,
        level,
        (health.clamp(0.0, 100.0) * 10.0).round() / 10.0,
    )
}

impl Scorer {
    /// A scorer for `model` with `rules` (already bound to the model's feature names).
    pub fn new(model: Arc<ModelArtifact>, rules: Arc<RuleSet>) -> Self {
        let critical = DEFAULT_CRITICAL.max(model_threshold(&model));
        Self {
            model,
            rules,
            critical,
        }
    }

    /// The model.
    pub fn model(&self) -> &ModelArtifact {
        &self.model
    }

    /// Scores a model input row (in the model's feature order).
    pub fn score_row(&self, row: &[f32]) -> (f64, Vec<Action>, Vec<Factor>) {
        let forest = &self.model.forest;
        let probability = f64::from(forest.predict_proba_row(row)).clamp(0.0, 1.0);
        let actions = self.rules.evaluate(row);
        let (_, contributions) = forest.contributions(row);
        let mut order: Vec<usize> = (0..contributions.len()).collect();
        order.sort_by(|&a, &b| contributions[b].total_cmp(&contributions[a]));
        let factors = order
            .into_iter()
            .filter(|&i| contributions[i] > 0.0)
            .take(TOP_FACTORS)
            .map(|i| Factor {
                feature: self.model.feature_names[i].clone(),
                value: row[i].is_finite().then_some(f64::from(row[i])),
                contribution: (f64::from(contributions[i]) * 1e4).round() / 1e4,
            })
            .collect();
        (probability, actions, factors)
    }

    /// Scores one features message.
    ///
    /// # Errors
    /// [`RejectReason::FeatureSetMismatch`] when the vector was computed with other features
    /// than the model was trained on.
    pub fn score(&self, f: &Features, now: OffsetDateTime) -> Result<Risk, Rejection> {
        self.score_with_row(f, now).map(|(risk, _)| risk)
    }

    /// Scores one features message and also returns the model input row (in the model's
    /// feature order) and the unrounded probability, for drift detection.
    ///
    /// # Errors
    /// As [`Scorer::score`].
    pub fn score_with_row(
        &self,
        f: &Features,
        now: OffsetDateTime,
    ) -> Result<(Risk, Scored), Rejection> {
        if f.feature_set != self.model.feature_set_hash {
            return Err(Rejection::new(
                RejectReason::FeatureSetMismatch,
                format!(
                    "features use set {}, the model {} uses {}",
                    f.feature_set, self.model.model_id, self.model.feature_set_hash
                ),
            ));
        }
        let row = row_from_message(f, &self.model.feature_names);
        let (probability, actions, factors) = self.score_row(&row);
        let (status, level, health_score) = decide(
            probability,
            model_threshold(&self.model),
            self.critical,
            &actions,
        );
        let risk = Risk {
            schema: RISK_SCHEMA.to_owned(),
            machine_id: f.machine_id.clone(),
            ts: now,
            source_ts: f.source_ts,
            seq: f.seq,
            probability: (probability * 1e4).round() / 1e4,
            status,
            level,
            health_score,
            actions,
            factors,
            model: ModelRef {
                id: self.model.model_id.clone(),
                version: self.model.version.clone(),
            },
            cold: f.cold,
            latest: f.latest.clone(),
        };
        Ok((risk, Scored { row, probability }))
    }
}

/// What a verdict was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The model input, in the model's feature order (NaN = missing).
    pub row: Vec<f32>,
    /// The probability before rounding.
    pub probability: f64,
}

fn model_threshold(m: &ModelArtifact) -> f64 {
    m.threshold.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(sev: Level) -> Action {
        Action {
            code: "X".into(),
            text: "x".into(),
            severity: sev,
        }
    }

    #[test]
    fn decide_follows_the_documented_table() {
        assert_eq!(
            decide(0.1, 0.5, 0.8, &[]),
            (RiskStatus::Healthy, Level::Normal, 90.0)
        );
        assert_eq!(
            decide(0.6, 0.5, 0.8, &[]),
            (RiskStatus::AtRisk, Level::Warning, 40.0)
        );
        assert_eq!(decide(0.9, 0.5, 0.8, &[]).1, Level::Critical);
        let (s, l, h) = decide(0.1, 0.5, 0.8, &[action(Level::Warning)]);
        assert_eq!((s, l, h), (RiskStatus::Healthy, Level::Warning, 80.0));
        let (s, l, h) = decide(0.1, 0.5, 0.8, &[action(Level::Critical)]);
        assert_eq!((s, l, h), (RiskStatus::AtRisk, Level::Critical, 65.0));
        assert_eq!(decide(1.0, 0.5, 0.8, &[action(Level::Critical)]).2, 0.0);
    }
}
