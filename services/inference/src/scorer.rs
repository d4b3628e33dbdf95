//! The pure core of inference: a feature vector in, a risk verdict out.
//!
//! probability = the forest's share of trees voting risk (averaged leaf fractions);
//! status = AT_RISK when probability >= the model's threshold or a CRITICAL rule fires;
//! level = CRITICAL (probability >= `critical` or a critical rule), WARNING (AT_RISK or a
//! warning rule) or NORMAL; health score = 100 x (1 - probability), less 10 per warning and
//! 25 per critical rule, clamped to 0..100.

use crate::rules::RuleSet;
use dtwin_ml::ModelArtifact;
use dtwin_schema::{
    Action, Factor, Features, Level, ModelRef, RejectReason, Rejection, Risk, RiskStatus,
    RISK_SCHEMA,
};
use dtwin_windows::row_from_message;
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

    /// The expert rules scored beside the model.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Scores a model input row (in the model's feature order).
    pub fn score_row(&self, row: &[f32]) -> (f64, Vec<Action>, Vec<Factor>) {
        let missing;
        let row = if row.is_empty() {
            missing = vec![f32::NAN; self.model.feature_names.len()];
            &missing[..]
        } else {
            row
        };
        let explained = self.model.explain_rows(row, row.len());
        self.explain(row, explained.probability[0], explained.row(0))
    }

    /// Probability, fired rules and the top factors of one row from the model's numbers.
    fn explain(
        &self,
        row: &[f32],
        probability: f32,
        contributions: &[f32],
    ) -> (f64, Vec<Action>, Vec<Factor>) {
        let probability = f64::from(probability).clamp(0.0, 1.0);
        let actions = self.rules.evaluate(row);
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
        self.score_batch(std::slice::from_ref(f), now)
            .pop()
            .expect("one verdict per message")
    }

    /// Scores many features messages at once (a micro-batch): the same verdicts as
    /// [`Scorer::score_with_row`] on each, in order, but the trees are walked once for all
    /// rows, which costs less per row when several machines' vectors are waiting.
    pub fn score_batch(
        &self,
        msgs: &[Features],
        now: OffsetDateTime,
    ) -> Vec<Result<(Risk, Scored), Rejection>> {
        let names = &self.model.feature_names;
        let width = names.len();
        let mut rows = Vec::with_capacity(msgs.len() * width);
        let checked: Vec<Result<(), Rejection>> = msgs
            .iter()
            .map(|f| {
                self.check_set(f)?;
                rows.extend(row_from_message(f, names));
                Ok(())
            })
            .collect();
        let explained = self.model.explain_rows(&rows, width);
        let mut next = 0;
        msgs.iter()
            .zip(checked)
            .map(|(f, ok)| {
                ok?;
                let i = next;
                next += 1;
                let row = &rows[i * width..(i + 1) * width];
                let (probability, actions, factors) =
                    self.explain(row, explained.probability[i], explained.row(i));
                Ok((
                    self.verdict(f, now, probability, actions, factors),
                    Scored {
                        row: row.to_vec(),
                        probability,
                    },
                ))
            })
            .collect()
    }

    fn check_set(&self, f: &Features) -> Result<(), Rejection> {
        if f.feature_set == self.model.feature_set_hash {
            return Ok(());
        }
        Err(Rejection::new(
            RejectReason::FeatureSetMismatch,
            format!(
                "features use set {}, the model {} uses {}",
                f.feature_set, self.model.model_id, self.model.feature_set_hash
            ),
        ))
    }

    fn verdict(
        &self,
        f: &Features,
        now: OffsetDateTime,
        probability: f64,
        actions: Vec<Action>,
        factors: Vec<Factor>,
    ) -> Risk {
        let (status, level, health_score) = decide(
            probability,
            model_threshold(&self.model),
            self.critical,
            &actions,
        );
        Risk {
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
            profile: f.profile.clone(),
            insights: Default::default(),
        }
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

    fn shipped() -> Scorer {
        let model =
            ModelArtifact::from_json(crate::SHIPPED_MODEL).expect("the shipped model loads");
        let rules = RuleSet::default_for(&model.feature_names).unwrap();
        Scorer::new(Arc::new(model), Arc::new(rules))
    }

    /// A features message with `values` scaled around the training data's ranges; `None`
    /// entries are missing, and `foreign` gives it another feature set.
    fn message(scorer: &Scorer, seq: u64, values: &[Option<f64>], foreign: bool) -> Features {
        let m = scorer.model();
        let now = time::OffsetDateTime::UNIX_EPOCH;
        Features {
            schema: dtwin_schema::FEATURES_SCHEMA.to_owned(),
            machine_id: dtwin_schema::MachineId::parse(&format!("m-{seq}")).unwrap(),
            ts: now,
            source_ts: now,
            seq,
            feature_set: if foreign {
                "other".to_owned()
            } else {
                m.feature_set_hash.clone()
            },
            window_len: 10,
            cold: seq % 7 == 0,
            values: m
                .feature_names
                .iter()
                .zip(values.iter().cycle())
                .map(|(n, v)| (n.clone(), *v))
                .collect(),
            latest: Default::default(),
            product_type: None,
            gap: 0,
            profile: None,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// A micro-batch gives each message exactly the verdict it gets alone, in order, and
        /// rejects exactly the vectors of another feature set.
        #[test]
        fn batch_scoring_equals_one_at_a_time(
            msgs in proptest::collection::vec((
                proptest::collection::vec(proptest::option::weighted(0.9, -50.0f64..3000.0), 1..12),
                proptest::bool::weighted(0.15),
            ), 0..40)
        ) {
            thread_local! { static SCORER: Scorer = shipped(); }
            SCORER.with(|scorer| {
                let now = time::OffsetDateTime::UNIX_EPOCH;
                let batch: Vec<Features> = msgs
                    .iter()
                    .enumerate()
                    .map(|(i, (v, foreign))| message(scorer, i as u64, v, *foreign))
                    .collect();
                let together = scorer.score_batch(&batch, now);
                proptest::prop_assert_eq!(together.len(), batch.len());
                for (f, got) in batch.iter().zip(together) {
                    let alone = scorer.score_with_row(f, now);
                    let foreign = f.feature_set != scorer.model().feature_set_hash;
                    proptest::prop_assert_eq!(got.is_err(), foreign);
                    match (got, alone) {
                        (Ok((a, ra)), Ok((b, rb))) => {
                            proptest::prop_assert_eq!(a, b);
                            proptest::prop_assert_eq!(ra.probability, rb.probability);
                        }
                        (Err(a), Err(b)) => proptest::prop_assert_eq!(a.reason, b.reason),
                        (a, b) => proptest::prop_assert!(false, "{a:?} vs {b:?}"),
                    }
                }
                Ok(())
            })?;
        }
    }

    #[test]
    fn single_rows_match_the_forest() {
        let scorer = shipped();
        let m = scorer.model();
        let n = m.feature_names.len();
        for k in 0..50u32 {
            let row: Vec<f32> = (0..n)
                .map(|i| ((k * 37 + i as u32 * 11) % 300) as f32)
                .collect();
            let (p, _, factors) = scorer.score_row(&row);
            assert_eq!(p, f64::from(m.predict_row(&row)));
            let (_, contrib) = m.classifier().unwrap().contributions(&row);
            for f in &factors {
                let i = m
                    .feature_names
                    .iter()
                    .position(|x| *x == f.feature)
                    .unwrap();
                assert!(contrib[i] > 0.0);
                assert_eq!(f.contribution, (f64::from(contrib[i]) * 1e4).round() / 1e4);
            }
        }
        // An empty row reads as all missing.
        let (p, _, _) = scorer.score_row(&[]);
        assert_eq!(p, f64::from(m.predict_row(&vec![f32::NAN; n])));
    }
}
