//! The versioned model file: a forest plus everything needed to use it safely.

use serde::{Deserialize, Serialize};

use crate::forest::{Forest, ForestParams};
use crate::reference::{ReferenceError, TrainingReference};

/// Schema id of the artifact format this crate writes and reads.
pub const ARTIFACT_SCHEMA: &str = "dtwin.model.v1";

/// Why an artifact was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The bytes are not a JSON artifact (or its trees are malformed).
    #[error("artifact is not valid JSON for {ARTIFACT_SCHEMA}: {0}")]
    Json(#[from] serde_json::Error),
    /// The `schema` field names another format.
    #[error("artifact schema is {found:?}, expected {ARTIFACT_SCHEMA:?}")]
    Schema {
        /// The schema id found.
        found: String,
    },
    /// `feature_set_hash` does not match the hash of `feature_names`.
    #[error("feature_set_hash {stored} does not match the feature names (hash {computed})")]
    FeatureHash {
        /// Hash stored in the artifact.
        stored: String,
        /// Hash computed from the feature names.
        computed: String,
    },
    /// The forest expects a different number of features than there are names.
    #[error("forest takes {forest} features but {names} names are listed")]
    FeatureCount {
        /// Features the forest was trained on.
        forest: usize,
        /// Names listed.
        names: usize,
    },
    /// The threshold is not a probability.
    #[error("threshold {0} is not in [0, 1]")]
    Threshold(f64),
    /// A named value does not belong to this model's features.
    #[error("unknown feature {0:?}")]
    UnknownFeature(String),
    /// A floor rule names a feature the model does not have.
    #[error("floor rule on {0:?}, which is not one of the model's features")]
    FloorRule(String),
    /// The training reference does not fit the model (see [`TrainingReference::validate`]).
    #[error("training reference: {0}")]
    Reference(ReferenceError),
}

/// An expert rule that raises the probability to 1 when it fires: the row's value of
/// `feature` is above `above`. Used where a physical failure condition is known exactly (AI4I's
/// heat-dissipation, power and overstrain rules); the forest handles the rest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FloorRule {
    /// Feature name (one of the artifact's `feature_names`).
    pub feature: String,
    /// The rule fires when the value is strictly above this.
    pub above: f32,
}

/// How a model was trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingMeta {
    /// Training rows.
    pub rows: usize,
    /// Positive training rows.
    pub positives: usize,
    /// Parameters used.
    pub params: ForestParams,
    /// Where the data came from (file, simulator run, ...).
    pub source: String,
    /// Wall-clock training time in seconds.
    pub seconds: f64,
}

/// A trained model as shipped to the inference service (JSON, see [`ModelArtifact::to_json`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// Always [`ARTIFACT_SCHEMA`].
    pub schema: String,
    /// Identifier of this model.
    pub model_id: String,
    /// Version of this model.
    pub version: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Feature names in the order the forest expects them.
    pub feature_names: Vec<String>,
    /// `dtwin_schema::feature_set_hash(&feature_names)`.
    pub feature_set_hash: String,
    /// Alarm when the probability is at least this.
    pub threshold: f64,
    /// What a positive means, e.g. "failure or NOK within 30 steps".
    pub label: String,
    /// Evaluation metrics, free-form.
    pub metrics: serde_json::Value,
    /// How the model was trained.
    pub training: TrainingMeta,
    /// Expert rules that raise the probability to 1 (see [`ModelArtifact::predict_row`]);
    /// empty for the twin models. Absent in older artifacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub floor_rules: Vec<FloorRule>,
    /// The training data's distributions, for drift detection by the inference service.
    /// Absent in older artifacts (then drift is reported as `no_reference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<TrainingReference>,
    /// The trees.
    pub forest: Forest,
}

impl ModelArtifact {
    /// Assemble an artifact; the feature-set hash is computed from `feature_names`. Version
    /// defaults to "1", `created_at` and `model_id` to empty and metrics to null; use the
    /// `with_*` methods to set them. Call [`ModelArtifact::validate`] before shipping.
    pub fn new(
        model_id: impl Into<String>,
        feature_names: Vec<String>,
        threshold: f64,
        label: impl Into<String>,
        training: TrainingMeta,
        forest: Forest,
    ) -> Self {
        Self {
            schema: ARTIFACT_SCHEMA.to_string(),
            model_id: model_id.into(),
            version: "1".to_string(),
            created_at: String::new(),
            feature_set_hash: dtwin_schema::feature_set_hash(&feature_names),
            feature_names,
            threshold,
            label: label.into(),
            metrics: serde_json::Value::Null,
            training,
            floor_rules: Vec::new(),
            reference: None,
            forest,
        }
    }

    /// Set the floor rules.
    pub fn with_floor_rules(mut self, rules: Vec<FloorRule>) -> Self {
        self.floor_rules = rules;
        self
    }

    /// Set the training reference (drift detection).
    pub fn with_reference(mut self, reference: TrainingReference) -> Self {
        self.reference = Some(reference);
        self
    }

    /// Set the version.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Set the creation time (RFC 3339).
    pub fn with_created_at(mut self, created_at: impl Into<String>) -> Self {
        self.created_at = created_at.into();
        self
    }

    /// Set the metrics.
    pub fn with_metrics(mut self, metrics: serde_json::Value) -> Self {
        self.metrics = metrics;
        self
    }

    /// Check the schema id, the feature-set hash, the feature count, the threshold, the floor
    /// rules and the training reference.
    pub fn validate(&self) -> Result<(), ArtifactError> {
        if self.schema != ARTIFACT_SCHEMA {
            return Err(ArtifactError::Schema {
                found: self.schema.clone(),
            });
        }
        let computed = dtwin_schema::feature_set_hash(&self.feature_names);
        if computed != self.feature_set_hash {
            return Err(ArtifactError::FeatureHash {
                stored: self.feature_set_hash.clone(),
                computed,
            });
        }
        if self.forest.n_features() != self.feature_names.len() {
            return Err(ArtifactError::FeatureCount {
                forest: self.forest.n_features(),
                names: self.feature_names.len(),
            });
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(ArtifactError::Threshold(self.threshold));
        }
        if let Some(r) = self
            .floor_rules
            .iter()
            .find(|r| !self.feature_names.contains(&r.feature))
        {
            return Err(ArtifactError::FloorRule(r.feature.clone()));
        }
        if let Some(r) = &self.reference {
            r.validate(&self.feature_names)
                .map_err(ArtifactError::Reference)?;
        }
        Ok(())
    }

    /// The model's probability for one row in `feature_names` order: the forest's, raised to 1
    /// when a floor rule fires. Equals `forest.predict_proba_row` when there are no rules.
    pub fn predict_row(&self, row: &[f32]) -> f32 {
        let p = self.forest.predict_proba_row(row);
        if self.floor_fires(row) {
            1.0
        } else {
            p
        }
    }

    /// [`ModelArtifact::predict_row`] for every row of `x` (batched, parallel when large).
    pub fn predict(&self, x: ndarray::ArrayView2<f32>) -> Vec<f32> {
        let mut p = self.forest.predict_proba(x);
        if !self.floor_rules.is_empty() {
            for (pi, row) in p.iter_mut().zip(x.outer_iter()) {
                if row
                    .as_slice()
                    .map_or_else(|| self.floor_fires(&row.to_vec()), |r| self.floor_fires(r))
                {
                    *pi = 1.0;
                }
            }
        }
        p
    }

    /// Probabilities ([`ModelArtifact::predict_row`], floor rules included) and contributions
    /// for many rows at once; see [`Forest::explain_rows`](crate::Forest::explain_rows).
    pub fn explain_rows(&self, rows: &[f32], width: usize) -> crate::Explained {
        let mut e = self.forest.explain_rows(rows, width);
        if !self.floor_rules.is_empty() {
            for (i, p) in e.probability.iter_mut().enumerate() {
                if self.floor_fires(&rows[i * width..(i + 1) * width]) {
                    *p = 1.0;
                }
            }
        }
        e
    }

    fn floor_fires(&self, row: &[f32]) -> bool {
        self.floor_rules.iter().any(|r| {
            self.feature_names
                .iter()
                .position(|n| *n == r.feature)
                .and_then(|i| row.get(i))
                .is_some_and(|&v| v > r.above)
        })
    }

    /// Pretty JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain structs, strings, numbers and a serde_json::Value cannot fail
        // (no maps with non-string keys); non-finite floats become null.
        serde_json::to_vec(self).expect("artifact serializes to JSON")
    }

    /// Parse and [validate](ModelArtifact::validate) an artifact.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ArtifactError> {
        let artifact: Self = serde_json::from_slice(bytes)?;
        artifact.validate()?;
        Ok(artifact)
    }

    /// Probability for a row given as `(name, value)` pairs; absent features count as missing.
    pub fn predict_named<'a>(
        &self,
        values: impl IntoIterator<Item = (&'a str, f32)>,
    ) -> Result<f32, ArtifactError> {
        let mut row = vec![f32::NAN; self.feature_names.len()];
        for (name, v) in values {
            let i = self
                .feature_names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| ArtifactError::UnknownFeature(name.to_string()))?;
            row[i] = v;
        }
        Ok(self.forest.predict_proba_row(&row))
    }

    /// Whether probability `p` raises an alarm (`p >= threshold`).
    pub fn is_alarm(&self, p: f32) -> bool {
        f64::from(p) >= self.threshold
    }

    /// The `k` features with the largest absolute contribution to `row`'s probability, largest
    /// first, as `(name, contribution)`.
    pub fn top_contributions(&self, row: &[f32], k: usize) -> Vec<(&str, f32)> {
        let (_, contrib) = self.forest.contributions(row);
        let mut named: Vec<(&str, f32)> = self
            .feature_names
            .iter()
            .map(String::as_str)
            .zip(contrib)
            .collect();
        named.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        named.truncate(k);
        named
    }
}
