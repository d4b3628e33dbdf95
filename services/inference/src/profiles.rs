//! One model per machine profile. Milling machines (feature vectors without `profile`) are
//! scored by the model on `{prefix}/models/current`, as always; a vector whose `profile` is
//! another id is scored by the model deployed retained on `{prefix}/models/{profile}`, and
//! until there is one it gets a rules-only verdict ([`rules_only`]). Pure.
//!
//! The shipped expert rules name milling features, so a profile's model runs without rules
//! (its probability alone decides); the artifact's feature-set hash is checked against each
//! vector's, as for milling (`feature_set_mismatch`), since this service does not read the
//! profiles and cannot know their hash at deploy time.

use crate::rules::RuleSet;
use crate::scorer::{decide, Scorer, DEFAULT_CRITICAL};
use dtwin_ml::ModelArtifact;
use dtwin_schema::{Action, Features, Level, ModelRef, RejectReason, Rejection, Risk, RISK_SCHEMA};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// The topic segment of the milling model (`{prefix}/models/current`).
pub const CURRENT: &str = "current";

/// The built-in profile, whose model is [`CURRENT`].
pub const MILLING: &str = "milling";

/// The action code of a rules-only verdict.
pub const NO_MODEL: &str = "NO_MODEL";

/// The model id of a rules-only verdict.
pub const NO_MODEL_ID: &str = "none";

/// Whether a feature vector is a milling machine's (no `profile`, or `milling`).
pub fn is_milling(f: &Features) -> bool {
    f.profile.as_deref().is_none_or(|p| p == MILLING)
}

/// The deployed models of profiles other than milling.
#[derive(Default)]
pub struct ProfileModels {
    scorers: HashMap<String, Scorer>,
}

impl ProfileModels {
    /// The scorer of `profile`, if a model was deployed for it.
    pub fn get(&self, profile: &str) -> Option<&Scorer> {
        self.scorers.get(profile)
    }

    /// Profiles with a model, and the model.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ModelArtifact)> {
        self.scorers.iter().map(|(p, s)| (p.as_str(), s.model()))
    }

    /// A payload on `{prefix}/models/{profile}`: the profile's new model (returning the one it
    /// replaces), or, for an empty payload (a cleared retained message), none any more.
    ///
    /// # Errors
    /// [`RejectReason::BadModel`] for an artifact that does not parse, or `milling` (whose
    /// model is deployed on `models/current`); the profile keeps its model.
    pub fn deploy(
        &mut self,
        profile: &str,
        payload: &[u8],
    ) -> Result<(Option<ModelRef>, Option<ModelRef>), Rejection> {
        if profile == MILLING {
            return Err(Rejection::new(
                RejectReason::BadModel,
                "the milling model is deployed on models/current, not models/milling",
            ));
        }
        if payload.is_empty() {
            let old = self.scorers.remove(profile).map(|s| model_ref(s.model()));
            return Ok((old, None));
        }
        let model = ModelArtifact::from_json(payload)
            .map_err(|e| Rejection::new(RejectReason::BadModel, e.to_string()))?;
        // This topic takes the failure classifier; the other kinds have models/{profile}/{kind}.
        crate::kinds::only_classifier(&model)?;
        let new = model_ref(&model);
        let scorer = Scorer::new(Arc::new(model), Arc::new(RuleSet::none()));
        let old = self
            .scorers
            .insert(profile.to_owned(), scorer)
            .map(|s| model_ref(s.model()));
        Ok((old, Some(new)))
    }
}

fn model_ref(m: &ModelArtifact) -> ModelRef {
    ModelRef {
        id: m.model_id.clone(),
        version: m.version.clone(),
    }
}

/// The verdict for a vector of a profile with no model yet: probability 0, so the status
/// comes from the rules alone (none apply to other profiles yet: the shipped rules name
/// milling features, and a sensor outside its profile's range never gets here, the feature
/// service rejects it), model id [`NO_MODEL_ID`], and an action [`NO_MODEL`] of severity
/// NORMAL saying so, so a person reading the verdict knows why there is no probability.
pub fn rules_only(f: &Features, now: OffsetDateTime) -> Risk {
    let profile = f.profile.as_deref().unwrap_or(MILLING);
    let rules: Vec<Action> = Vec::new();
    let (status, level, health_score) = decide(0.0, 1.0, DEFAULT_CRITICAL, &rules);
    let mut actions = rules;
    actions.push(Action {
        code: NO_MODEL.to_owned(),
        text: format!(
            "no model for profile {profile} yet: rules only (deploy one retained on models/{profile})"
        ),
        severity: Level::Normal,
    });
    Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: f.machine_id.clone(),
        ts: now,
        source_ts: f.source_ts,
        seq: f.seq,
        probability: 0.0,
        status,
        level,
        health_score,
        actions,
        factors: Vec::new(),
        model: ModelRef {
            id: NO_MODEL_ID.to_owned(),
            version: "rules-only".to_owned(),
        },
        cold: f.cold,
        latest: f.latest.clone(),
        profile: f.profile.clone(),
        insights: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::DriftConfig;
    use crate::processor::{Event, Inbound, Outgoing, Processor, ProcessorConfig, Route};
    use dtwin_ml::{Forest, ForestParams, TrainingMeta};
    use dtwin_schema::{
        feature_set_hash, from_json, to_json, DeadLetter, MachineId, RiskStatus, Topics,
        FEATURES_SCHEMA,
    };
    use std::collections::BTreeMap;

    const NAMES: [&str; 2] = ["volt", "volt_mean_3"];

    fn names() -> Vec<String> {
        NAMES.iter().map(|n| n.to_string()).collect()
    }

    /// A tiny pump model: risk when volt is high.
    fn pump_model() -> ModelArtifact {
        let x = ndarray::array![
            [110.0f32, 110.0],
            [120.0, 118.0],
            [280.0, 270.0],
            [290.0, 285.0]
        ];
        let y = [false, false, true, true];
        let params = ForestParams {
            n_trees: 3,
            bootstrap: false,
            min_samples_split: 2,
            min_samples_leaf: 1,
            ..ForestParams::default()
        };
        let forest = Forest::fit(x.view(), &y, &params, &|| {}).unwrap();
        let meta = TrainingMeta {
            rows: 4,
            positives: 2,
            params,
            source: "test".into(),
            seconds: 0.0,
        };
        ModelArtifact::new("pump-rf", names(), 0.5, "failure", meta, forest)
    }

    fn pump_features(seq: u64, volt: f64, set: &str) -> Features {
        let now = OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap();
        Features {
            schema: FEATURES_SCHEMA.to_owned(),
            machine_id: MachineId::parse("pump-01").unwrap(),
            ts: now,
            source_ts: now,
            seq,
            feature_set: set.to_owned(),
            window_len: 3,
            cold: false,
            values: NAMES.iter().map(|n| (n.to_string(), Some(volt))).collect(),
            latest: BTreeMap::from([("volt".to_owned(), volt)]),
            product_type: None,
            gap: 0,
            profile: Some("pump".into()),
        }
    }

    fn processor() -> Processor {
        let model = ModelArtifact::from_json(crate::SHIPPED_MODEL).unwrap();
        let rules = RuleSet::default_for(&model.feature_names).unwrap();
        let expected = model.feature_set_hash.clone();
        Processor::new(
            Topics::default(),
            Scorer::new(Arc::new(model), Arc::new(rules)),
            ProcessorConfig {
                expected,
                rules_text: crate::rules::expand_windows(crate::DEFAULT_RULES, &Default::default()),
                drift: DriftConfig::default(),
                drift_service: crate::SERVICE.to_owned(),
            },
        )
    }

    fn verdicts(out: &[Outgoing]) -> Vec<Risk> {
        out.iter()
            .filter_map(|o| match o {
                Outgoing::Verdict { payload, .. } => Some(from_json(payload).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn dead(out: &[Outgoing]) -> Vec<DeadLetter> {
        out.iter()
            .filter_map(|o| match o {
                Outgoing::DeadLetter { payload, .. } => Some(from_json(payload).unwrap()),
                _ => None,
            })
            .collect()
    }

    const FEATURES_TOPIC: &str = "dtwin/v1/machines/pump-01/features";

    #[test]
    fn every_models_topic_is_a_model() {
        let p = processor();
        for (topic, want) in [
            ("dtwin/v1/models/current", Route::Model),
            ("dtwin/v1/models/pump", Route::Model),
            ("dtwin/v1/models/a/b", Route::Model),
            ("dtwin/v1/models/a/b/c", Route::Other),
            (FEATURES_TOPIC, Route::Features),
        ] {
            assert_eq!(p.route(topic, |_| true), want, "{topic}");
        }
    }

    #[test]
    fn a_profile_without_a_model_gets_a_rules_only_verdict_saying_so() {
        let mut p = processor();
        let hash = feature_set_hash(&names());
        let f = to_json(&pump_features(1, 280.0, &hash));
        let out = p.handle(
            &[Inbound::new(FEATURES_TOPIC, &f)],
            OffsetDateTime::UNIX_EPOCH,
        );
        let [r] = &verdicts(&out.publishes)[..] else {
            panic!("{out:?}")
        };
        assert_eq!(r.profile.as_deref(), Some("pump"));
        assert_eq!((r.probability, r.status), (0.0, RiskStatus::Healthy));
        assert_eq!(r.health_score, 100.0);
        assert_eq!(r.model.id, NO_MODEL_ID);
        assert_eq!(r.actions.len(), 1);
        assert_eq!(r.actions[0].code, NO_MODEL);
        assert_eq!(r.actions[0].severity, Level::Normal);
        assert!(
            r.actions[0]
                .text
                .contains("no model for profile pump yet: rules only"),
            "{}",
            r.actions[0].text
        );
        assert_eq!(
            p.drift_window(),
            0,
            "not in the milling model's drift window"
        );
    }

    #[test]
    fn a_deployed_profile_model_scores_its_profile_and_checks_the_feature_set() {
        let mut p = processor();
        let milling_before = p.model().model_id.clone();
        let model = pump_model().to_json();
        let hash = feature_set_hash(&names());
        let high = to_json(&pump_features(1, 285.0, &hash));
        let low = to_json(&pump_features(2, 112.0, &hash));
        let other_set = to_json(&pump_features(3, 285.0, "0000000000000000"));
        let out = p.handle(
            &[
                Inbound::new("dtwin/v1/models/pump", &model),
                Inbound::new(FEATURES_TOPIC, &high),
                Inbound::new(FEATURES_TOPIC, &low),
                Inbound::new(FEATURES_TOPIC, &other_set),
            ],
            OffsetDateTime::UNIX_EPOCH,
        );
        assert!(matches!(
            &out.events[0],
            Event::ProfileModel { profile, old: None, new: Some(m) } if profile == "pump" && m.id == "pump-rf"
        ));
        let v = verdicts(&out.publishes);
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|r| r.model.id == "pump-rf"));
        assert_eq!(v[0].status, RiskStatus::AtRisk, "{:?}", v[0]);
        assert_eq!(v[1].status, RiskStatus::Healthy, "{:?}", v[1]);
        assert!(v[0].actions.is_empty(), "no milling rules on a pump");
        let [d] = &dead(&out.publishes)[..] else {
            panic!("{out:?}")
        };
        assert_eq!(d.reason, RejectReason::FeatureSetMismatch);
        assert_eq!(
            p.model().model_id,
            milling_before,
            "milling keeps its model"
        );
        assert_eq!(p.profile_models().iter().count(), 1);
        // A cleared retained message takes the model away: rules only again.
        let out = p.handle(
            &[
                Inbound::new("dtwin/v1/models/pump", b""),
                Inbound::new(FEATURES_TOPIC, &high),
            ],
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(verdicts(&out.publishes)[0].model.id, NO_MODEL_ID);
    }

    #[test]
    fn bad_profile_models_are_refused_and_milling_is_on_current() {
        let mut p = processor();
        for (topic, payload) in [
            ("dtwin/v1/models/pump", b"{not a model".to_vec()),
            ("dtwin/v1/models/milling", pump_model().to_json()),
        ] {
            let out = p.handle(&[Inbound::new(topic, &payload)], OffsetDateTime::UNIX_EPOCH);
            assert!(matches!(out.events[0], Event::Refused { .. }), "{topic}");
            assert_eq!(dead(&out.publishes)[0].reason, RejectReason::BadModel);
        }
        assert_eq!(p.profile_models().iter().count(), 0);
    }
}
