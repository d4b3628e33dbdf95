//! The versioned model file: a forest plus everything needed to use it safely.

use serde::{Deserialize, Serialize};

use crate::forest::{Forest, ForestParams};
use crate::isolation::{IsolationForest, IsolationParams};
use crate::reference::{ReferenceError, TrainingReference};
use crate::regressor::{ForestRegressor, RegressorParams};

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
    /// The model is of another kind than the caller needs (a remaining-useful-life regressor
    /// where a failure classifier is expected, or the other way round).
    #[error("model {model_id} is {found}, not {expected}")]
    Kind {
        /// The model's id.
        model_id: String,
        /// Its kind.
        found: ModelKind,
        /// The kind asked for.
        expected: ModelKind,
    },
    /// The trees stored do not match the kind (`forest` for a classifier, `regressor` and
    /// `rul` for a remaining-useful-life model).
    #[error("a {kind} artifact {what}")]
    KindFields {
        /// The artifact's kind.
        kind: ModelKind,
        /// What is wrong.
        what: &'static str,
    },
    /// The remaining-useful-life cap is not a positive number.
    #[error("rul cap {0} is not a positive number")]
    RulCap(f64),
    /// The anomaly model's trees are invalid.
    #[error("anomaly model: {0}")]
    Isolation(#[from] crate::IsolationModelError),
}

/// What a model predicts. Artifacts written before kinds existed are classifiers.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// The failure classifier: a probability that a failure follows within the horizon
    /// ([`ModelArtifact::forest`]).
    #[default]
    Classifier,
    /// The quality classifier: a probability that a NOK part follows within the horizon (the
    /// seed's `quality_risk`); a forest like the failure classifier's, another label.
    Quality,
    /// Anomaly detection without labels: an Isolation Forest trained on healthy readings
    /// ([`ModelArtifact::isolation`]); `threshold` is the anomaly score at or above which a
    /// vector is anomalous.
    Anomaly,
    /// Remaining useful life: the time (cycles, readings or seconds) to the next failure,
    /// capped ([`ModelArtifact::regressor`], [`ModelArtifact::rul`]).
    Rul,
}

impl ModelKind {
    /// Every kind, failure classifier first.
    pub const ALL: [ModelKind; 4] = [Self::Classifier, Self::Quality, Self::Anomaly, Self::Rul];

    fn is_classifier(&self) -> bool {
        *self == Self::Classifier
    }

    /// The name used on the command line (`--kind`), in artifacts and in topics
    /// (`{prefix}/models/{profile}/{kind}` for every kind but the failure classifier).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Classifier => "classifier",
            Self::Quality => "quality",
            Self::Anomaly => "anomaly",
            Self::Rul => "rul",
        }
    }

    /// The kind named `s` ([`ModelKind::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Classifier => "a failure classifier (kind classifier)",
            Self::Quality => "a quality (NOK) classifier (kind quality)",
            Self::Anomaly => "an anomaly detector (kind anomaly)",
            Self::Rul => "a remaining-useful-life regressor (kind rul)",
        })
    }
}

/// How an anomaly model was trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyMeta {
    /// Which readings counted as healthy (e.g. "readings with no failure within 30 readings",
    /// "each machine's first 50 cycles").
    pub healthy: String,
    /// The share of healthy readings the threshold lets through as anomalous (the chosen
    /// false-alarm rate on the data it was set on).
    pub rate: f64,
    /// The Isolation Forest's parameters.
    pub params: IsolationParams,
}

/// How a remaining-useful-life model's target was made and its forest trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RulMeta {
    /// Targets above this were set to it (in `unit`): early in a machine's life the sensors do
    /// not tell how far away the failure is, so "this much or more" is all a model can learn.
    pub cap: f64,
    /// The target's unit: `cycles` (a plain-number time column: cycles, hours, ...),
    /// `readings` (no time column) or `seconds` (instants).
    pub unit: String,
    /// The regressor's parameters (`training.params` holds the classifier defaults, unused).
    pub params: RegressorParams,
}

/// Quantiles of the trees' predictions that [`ModelArtifact::predict_rul_row`] gives as the
/// interval (the spread of the trees, not a calibrated interval).
pub const RUL_INTERVAL: (f64, f64) = (0.05, 0.95);

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

/// Which feature pipeline produced an artifact's `feature_names`, so a scorer can rebuild the
/// same features from raw data without being told (`dtwin predict`, `dtwin evaluate`).
/// Artifacts written before recipes existed have none (see [`ModelArtifact::recipe`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureRecipe {
    /// Twin telemetry through the feature service's rolling windows: `window` is the
    /// `dtwin_windows::WindowConfig` as its JSON (feature set kind, short and long window, time
    /// windows, carry-forward, EWMA span), kept as JSON because this crate does not depend on
    /// the windows crate; `dtwin_pipeline::train::features_of` reads it back.
    Windows {
        /// The window configuration (`dtwin_windows::WindowConfig` serialized).
        window: serde_json::Value,
    },
    /// AI4I 2020 as a table (`dtwin_pipeline::tabular`): each row's own values plus the
    /// physical rules; the artifact's floor rules apply.
    Ai4iTabular,
    /// A plant's export through a machine profile (`dtwin_pipeline::plant`): the profile's
    /// TOML text, as trained on (so the model scores without the file), the columns of the
    /// export (`dtwin_pipeline::plant::Columns` as JSON) and the label horizon.
    Profile {
        /// The profile (TOML).
        profile: String,
        /// The id, time, label columns and time zone of the export.
        columns: serde_json::Value,
        /// The label horizon (`30` readings or a duration such as `24h`).
        horizon: String,
    },
}

impl FeatureRecipe {
    /// The machine profile the features are of: `milling` for the twin's windows and AI4I,
    /// the profile's id otherwise (None when the profile text has no readable id).
    pub fn profile_id(&self) -> Option<String> {
        match self {
            Self::Windows { .. } | Self::Ai4iTabular => Some("milling".to_owned()),
            Self::Profile { profile, .. } => profile.lines().find_map(|l| {
                let v = l
                    .trim()
                    .strip_prefix("id")?
                    .trim_start()
                    .strip_prefix('=')?;
                Some(v.trim().trim_matches('"').to_owned())
            }),
        }
    }
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
    /// Which feature pipeline produced `feature_names`. Absent in older artifacts (then a
    /// scorer infers it from `feature_set_hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<FeatureRecipe>,
    /// What the model predicts; absent (a classifier) in older artifacts and in classifiers.
    #[serde(default, skip_serializing_if = "ModelKind::is_classifier")]
    pub kind: ModelKind,
    /// The classifier's trees (kind classifier; None for a rul model). Classifier-only
    /// methods such as [`ModelArtifact::predict_row`] panic without them: check
    /// [`ModelArtifact::classifier`] first when the kind is not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forest: Option<Forest>,
    /// The regressor's trees (kind rul).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regressor: Option<ForestRegressor>,
    /// The rul target's cap, unit and the regressor's parameters (kind rul).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rul: Option<RulMeta>,
    /// The Isolation Forest (kind anomaly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<IsolationForest>,
    /// How the anomaly model was trained (kind anomaly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<AnomalyMeta>,
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
            recipe: None,
            kind: ModelKind::Classifier,
            forest: Some(forest),
            regressor: None,
            rul: None,
            isolation: None,
            anomaly: None,
        }
    }

    /// Make this classifier a quality (NOK) classifier: the same forest, kind
    /// [`ModelKind::Quality`].
    pub fn into_quality(mut self) -> Self {
        self.kind = ModelKind::Quality;
        self
    }

    /// Assemble an anomaly artifact (kind anomaly): an Isolation Forest, anomalous at a score
    /// of `threshold` or more.
    pub fn new_anomaly(
        model_id: impl Into<String>,
        feature_names: Vec<String>,
        threshold: f64,
        label: impl Into<String>,
        training: TrainingMeta,
        meta: AnomalyMeta,
        isolation: IsolationForest,
    ) -> Self {
        Self {
            kind: ModelKind::Anomaly,
            forest: None,
            isolation: Some(isolation),
            anomaly: Some(meta),
            ..Self::bare(model_id, feature_names, label, training)
        }
        .with_threshold(threshold)
    }

    fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// The fields every kind shares, with no trees.
    fn bare(
        model_id: impl Into<String>,
        feature_names: Vec<String>,
        label: impl Into<String>,
        training: TrainingMeta,
    ) -> Self {
        Self {
            schema: ARTIFACT_SCHEMA.to_string(),
            model_id: model_id.into(),
            version: "1".to_string(),
            created_at: String::new(),
            feature_set_hash: dtwin_schema::feature_set_hash(&feature_names),
            feature_names,
            threshold: 0.0,
            label: label.into(),
            metrics: serde_json::Value::Null,
            training,
            floor_rules: Vec::new(),
            reference: None,
            recipe: None,
            kind: ModelKind::Classifier,
            forest: None,
            regressor: None,
            rul: None,
            isolation: None,
            anomaly: None,
        }
    }

    /// Assemble a remaining-useful-life artifact (kind rul): as [`ModelArtifact::new`], with
    /// the regressor and its target instead of a classifier forest. The threshold is unused
    /// (0); `training.params` are the classifier defaults, `rul.params` the ones used.
    pub fn new_rul(
        model_id: impl Into<String>,
        feature_names: Vec<String>,
        label: impl Into<String>,
        training: TrainingMeta,
        rul: RulMeta,
        regressor: ForestRegressor,
    ) -> Self {
        Self {
            kind: ModelKind::Rul,
            regressor: Some(regressor),
            rul: Some(rul),
            ..Self::bare(model_id, feature_names, label, training)
        }
    }

    /// The Isolation Forest and how it was trained, or [`ArtifactError::Kind`] for another
    /// kind.
    pub fn isolation(&self) -> Result<(&IsolationForest, &AnomalyMeta), ArtifactError> {
        match (&self.isolation, &self.anomaly) {
            (Some(i), Some(m)) => Ok((i, m)),
            _ => Err(self.kind_error(ModelKind::Anomaly)),
        }
    }

    /// The anomaly score of one row in `feature_names` order (0..1, higher is more unusual;
    /// anomalous at [`ModelArtifact::threshold`] or more). [`ArtifactError::Kind`] for
    /// another kind.
    pub fn anomaly_score_row(&self, row: &[f32]) -> Result<f32, ArtifactError> {
        let (i, _) = self.isolation()?;
        Ok(i.score_row(row))
    }

    /// The classifier's forest (a failure or a quality classifier), or
    /// [`ArtifactError::Kind`] for a model of another kind.
    pub fn classifier(&self) -> Result<&Forest, ArtifactError> {
        self.forest
            .as_ref()
            .ok_or_else(|| self.kind_error(ModelKind::Classifier))
    }

    /// The remaining-useful-life regressor and its target, or [`ArtifactError::Kind`] for a
    /// classifier.
    pub fn regressor(&self) -> Result<(&ForestRegressor, &RulMeta), ArtifactError> {
        match (&self.regressor, &self.rul) {
            (Some(r), Some(m)) => Ok((r, m)),
            _ => Err(self.kind_error(ModelKind::Rul)),
        }
    }

    fn kind_error(&self, expected: ModelKind) -> ArtifactError {
        ArtifactError::Kind {
            model_id: self.model_id.clone(),
            found: self.kind,
            expected,
        }
    }

    /// The remaining useful life for one row in `feature_names` order, with the
    /// [`RUL_INTERVAL`] quantiles of the trees: `(estimate, lo, hi)`, `lo <= estimate <= hi`,
    /// in the unit of [`RulMeta::unit`]. [`ArtifactError::Kind`] for a classifier.
    pub fn predict_rul_row(&self, row: &[f32]) -> Result<(f32, f32, f32), ArtifactError> {
        let (r, _) = self.regressor()?;
        Ok(r.predict_interval_row(row, RUL_INTERVAL.0, RUL_INTERVAL.1))
    }

    fn clf(&self) -> &Forest {
        self.forest.as_ref().unwrap_or_else(|| {
            panic!(
                "model {} is {}: check ModelArtifact::classifier() before scoring it as a classifier",
                self.model_id, self.kind
            )
        })
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

    /// Set the feature recipe.
    pub fn with_recipe(mut self, recipe: FeatureRecipe) -> Self {
        self.recipe = Some(recipe);
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
        let other_trees = |of: [bool; 3]| {
            let has = [
                self.forest.is_some(),
                self.regressor.is_some() || self.rul.is_some(),
                self.isolation.is_some() || self.anomaly.is_some(),
            ];
            has.iter().zip(of).any(|(&h, allowed)| h && !allowed)
        };
        let n_features = match self.kind {
            ModelKind::Classifier | ModelKind::Quality => {
                let Some(forest) = &self.forest else {
                    return Err(ArtifactError::KindFields {
                        kind: self.kind,
                        what: "has no forest",
                    });
                };
                if other_trees([true, false, false]) {
                    return Err(ArtifactError::KindFields {
                        kind: self.kind,
                        what: "carries a regressor, rul target or isolation forest",
                    });
                }
                forest.n_features()
            }
            ModelKind::Anomaly => {
                let (Some(isolation), Some(_)) = (&self.isolation, &self.anomaly) else {
                    return Err(ArtifactError::KindFields {
                        kind: self.kind,
                        what: "needs both isolation and anomaly",
                    });
                };
                if other_trees([false, false, true]) || !self.floor_rules.is_empty() {
                    return Err(ArtifactError::KindFields {
                        kind: self.kind,
                        what: "carries a forest, regressor or floor rules",
                    });
                }
                isolation.validate()?;
                isolation.n_features()
            }
            ModelKind::Rul => {
                let (Some(regressor), Some(rul)) = (&self.regressor, &self.rul) else {
                    return Err(ArtifactError::KindFields {
                        kind: self.kind,
                        what: "needs both regressor and rul",
                    });
                };
                if other_trees([false, true, false]) || !self.floor_rules.is_empty() {
                    return Err(ArtifactError::KindFields {
                        kind: self.kind,
                        what: "carries a classifier forest, isolation forest or floor rules",
                    });
                }
                if !(rul.cap.is_finite() && rul.cap > 0.0) {
                    return Err(ArtifactError::RulCap(rul.cap));
                }
                regressor.n_features()
            }
        };
        if n_features != self.feature_names.len() {
            return Err(ArtifactError::FeatureCount {
                forest: n_features,
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
    ///
    /// # Panics
    /// On a rul model (see [`ModelArtifact::classifier`]); so do the other probability and
    /// contribution methods.
    pub fn predict_row(&self, row: &[f32]) -> f32 {
        let p = self.clf().predict_proba_row(row);
        if self.floor_fires(row) {
            1.0
        } else {
            p
        }
    }

    /// [`ModelArtifact::predict_row`] for every row of `x` (batched, parallel when large).
    pub fn predict(&self, x: ndarray::ArrayView2<f32>) -> Vec<f32> {
        let mut p = self.clf().predict_proba(x);
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
        let mut e = self.clf().explain_rows(rows, width);
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
        Ok(self.clf().predict_proba_row(&row))
    }

    /// Whether probability `p` raises an alarm (`p >= threshold`).
    pub fn is_alarm(&self, p: f32) -> bool {
        f64::from(p) >= self.threshold
    }

    /// The `k` features with the largest absolute contribution to `row`'s probability, largest
    /// first, as `(name, contribution)`.
    pub fn top_contributions(&self, row: &[f32], k: usize) -> Vec<(&str, f32)> {
        let (_, contrib) = self.clf().contributions(row);
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

#[cfg(test)]
#[path = "artifact_tests.rs"]
mod tests;
