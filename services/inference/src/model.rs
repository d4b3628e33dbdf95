//! Model artifacts: the shipped default, a file, or bytes deployed over MQTT.

use crate::rules::RuleSet;
use crate::scorer::Scorer;
use dtwin_ml::ModelArtifact;
use dtwin_schema::{RejectReason, Rejection};
use std::path::PathBuf;
use std::sync::Arc;

/// The model shipped with dtwin, trained on twin data by `dtwin train` (see docs/model.md), so
/// `dtwin up` predicts at once with no training step.
pub const SHIPPED_MODEL: &[u8] = include_bytes!("../models/default.json");

/// The milling models of the other kinds shipped with dtwin (trained on twin data like the
/// classifier, same windows; see docs/model.md), so `dtwin up` verdicts carry a quality risk
/// and an anomaly score at once: `(kind, artifact)`.
pub const SHIPPED_KINDS: [(&str, &[u8]); 2] = [
    ("quality", include_bytes!("../models/quality.json")),
    ("anomaly", include_bytes!("../models/anomaly.json")),
];

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The shipped default.
    Shipped,
    /// A JSON artifact file.
    File(PathBuf),
}

/// Why the model at start could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model file cannot be read.
    #[error("cannot read model {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        error: std::io::Error,
    },
    /// The artifact is invalid or was trained on another feature set.
    #[error("model {origin:?}: {}", rejection.detail)]
    Invalid {
        /// Where it came from.
        origin: ModelSource,
        /// What is wrong with it ([`RejectReason::BadModel`]).
        rejection: Rejection,
    },
}

/// Loads and validates a model, checking it was trained on the `expected` feature set.
///
/// # Errors
/// [`ModelError::Read`] when the file cannot be read, [`ModelError::Invalid`] when the artifact
/// is invalid or its feature set differs.
pub fn load_model(source: &ModelSource, expected: &str) -> Result<ModelArtifact, ModelError> {
    let bytes = match source {
        ModelSource::Shipped => SHIPPED_MODEL.to_vec(),
        ModelSource::File(p) => std::fs::read(p).map_err(|error| ModelError::Read {
            path: p.clone(),
            error,
        })?,
    };
    check(&bytes, expected).map_err(|rejection| ModelError::Invalid {
        origin: source.clone(),
        rejection,
    })
}

/// Parses an artifact and checks its feature set.
///
/// # Errors
/// [`RejectReason::BadModel`] with the reason.
pub fn check(bytes: &[u8], expected: &str) -> Result<ModelArtifact, Rejection> {
    let model = ModelArtifact::from_json(bytes)
        .map_err(|e| Rejection::new(RejectReason::BadModel, e.to_string()))?;
    // This topic takes the failure classifier; the other kinds have models/{profile}/{kind}.
    crate::kinds::only_classifier(&model)?;
    if model.feature_set_hash != expected {
        return Err(Rejection::new(
            RejectReason::BadModel,
            format!(
                "model {} {} was trained on feature set {}, but the feature service computes {}; retrain it with the current window settings",
                model.model_id, model.version, model.feature_set_hash, expected
            ),
        ));
    }
    Ok(model)
}

/// Builds a scorer for a deployed artifact, or says why it is refused.
///
/// # Errors
/// [`RejectReason::BadModel`] for an invalid or mismatched artifact or rules that do not fit it.
pub fn swap(bytes: &[u8], expected: &str, rules_text: &str) -> Result<Scorer, Rejection> {
    let model = check(bytes, expected)?;
    let rules = RuleSet::parse(rules_text, &model.feature_names)
        .map_err(|e| Rejection::new(RejectReason::BadModel, e.to_string()))?;
    Ok(Scorer::new(Arc::new(model), Arc::new(rules)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtwin_ml::artifact::RulMeta;
    use dtwin_ml::{ForestParams, ForestRegressor, RegressorParams, TrainingMeta};

    #[test]
    fn a_model_of_another_kind_is_refused_with_its_topic() {
        let x = ndarray::Array2::from_shape_fn((30, 2), |(i, j)| (i + j) as f32);
        let y: Vec<f32> = (0..30).map(|i| (30 - i) as f32).collect();
        let params = RegressorParams {
            n_trees: 3,
            ..RegressorParams::default()
        };
        let regressor = ForestRegressor::fit(x.view(), &y, &params, &|| {}).unwrap();
        let meta = TrainingMeta {
            rows: 30,
            positives: 0,
            params: ForestParams::default(),
            source: "test".into(),
            seconds: 0.0,
        };
        let rul = RulMeta {
            cap: 125.0,
            unit: "cycles".into(),
            params,
        };
        let names = vec!["a".to_owned(), "b".to_owned()];
        let a = ModelArtifact::new_rul("rul", names, "life", meta, rul, regressor);
        let bytes = a.to_json();
        let e = check(&bytes, &a.feature_set_hash).unwrap_err();
        assert_eq!(e.reason, RejectReason::BadModel);
        assert!(
            e.detail.contains("remaining-useful-life regressor")
                && e.detail.contains("deploy it on models/milling/rul"),
            "{}",
            e.detail
        );
        // A quality classifier has a forest, but not this topic's.
        let q = ModelArtifact::from_json(SHIPPED_MODEL)
            .unwrap()
            .into_quality();
        let e = check(&q.to_json(), &q.feature_set_hash).unwrap_err();
        assert!(e.detail.contains("models/milling/quality"), "{}", e.detail);
    }
}
