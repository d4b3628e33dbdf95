//! Tests of the quality, anomaly and rul models beside the classifier.

use super::*;
use crate::profiles::rules_only;
use crate::rules::RuleSet;
use crate::scorer::Scorer;
use crate::SHIPPED_MODEL;
use dtwin_ml::{
    AnomalyMeta, ForestParams, ForestRegressor, IsolationForest, IsolationParams, RegressorParams,
    RulMeta, TrainingMeta,
};
use dtwin_schema::to_json;
use dtwin_twin_sim::{Machine, SimConfig};
use dtwin_windows::{feature_set, MachineWindow, WindowConfig};
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

fn epoch() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap()
}

/// `n` feature vectors of twin machine `machine` as the feature service computes them.
fn vectors(machine: usize, n: usize) -> Vec<Features> {
    let cfg = WindowConfig::default();
    let (names, hash) = feature_set(&cfg);
    let mut m = Machine::new(machine, 8, &SimConfig::default());
    let mut w = MachineWindow::new(&cfg);
    (0..n)
        .map(|_| {
            let r = m.step();
            let t = r.to_telemetry(m.id(), epoch() + Duration::seconds(r.seq as i64));
            w.update(&t).to_message(&names, &hash, &t, t.ts)
        })
        .collect()
}

fn meta(rows: usize) -> TrainingMeta {
    TrainingMeta {
        rows,
        positives: 0,
        params: ForestParams::default(),
        source: "test".into(),
        seconds: 0.0,
    }
}

fn names() -> Vec<String> {
    feature_set(&WindowConfig::default()).0
}

/// Warm twin rows in the model's feature order.
fn warm_rows() -> (Vec<Features>, ndarray::Array2<f32>) {
    let names = names();
    let warm: Vec<Features> = (0..4)
        .flat_map(|m| vectors(m, 120).into_iter().skip(60))
        .collect();
    let flat: Vec<f32> = warm
        .iter()
        .flat_map(|f| row_from_message(f, &names))
        .collect();
    let x = ndarray::Array2::from_shape_vec((warm.len(), names.len()), flat).unwrap();
    (warm, x)
}

fn anomaly_model(threshold: f64) -> Vec<u8> {
    let (_, x) = warm_rows();
    let params = IsolationParams {
        n_trees: 50,
        ..IsolationParams::default()
    };
    let forest = IsolationForest::fit(x.view(), &params, &|| {}).unwrap();
    let meta_a = AnomalyMeta {
        healthy: "warm twin readings".into(),
        rate: 0.01,
        params,
    };
    ModelArtifact::new_anomaly(
        "anom",
        names(),
        threshold,
        "unlike healthy",
        meta(x.nrows()),
        meta_a,
        forest,
    )
    .to_json()
}

fn quality_model(threshold: f64) -> Vec<u8> {
    let mut m = ModelArtifact::from_json(SHIPPED_MODEL)
        .unwrap()
        .into_quality();
    m.model_id = "quality".into();
    m.threshold = threshold;
    m.to_json()
}

fn rul_model() -> Vec<u8> {
    let (_, x) = warm_rows();
    let y: Vec<f32> = (0..x.nrows()).map(|i| (i % 60) as f32 + 10.0).collect();
    let params = RegressorParams {
        n_trees: 10,
        ..RegressorParams::default()
    };
    let r = ForestRegressor::fit(x.view(), &y, &params, &|| {}).unwrap();
    let rul = RulMeta {
        cap: 125.0,
        unit: "cycles".into(),
        params,
    };
    ModelArtifact::new_rul("life", names(), "cycles left", meta(x.nrows()), rul, r).to_json()
}

fn classifier_verdict(f: &Features) -> Risk {
    let model = ModelArtifact::from_json(SHIPPED_MODEL).unwrap();
    let rules = RuleSet::default_for(&model.feature_names).unwrap();
    Scorer::new(Arc::new(model), Arc::new(rules))
        .score(f, epoch())
        .unwrap()
}

fn expected() -> String {
    feature_set(&WindowConfig::default()).1
}

#[test]
fn deploys_by_kind_and_refuses_what_does_not_fit() {
    let mut k = KindModels::default();
    let (old, new) = k
        .deploy("milling", "anomaly", &anomaly_model(0.6), Some(&expected()))
        .unwrap();
    assert_eq!((old, new.unwrap().id), (None, "anom".to_owned()));
    let (old, _) = k
        .deploy("milling", "anomaly", &anomaly_model(0.7), None)
        .unwrap();
    assert_eq!(
        old.unwrap().id,
        "anom",
        "a redeploy replaces and names the old one"
    );
    let refusals = [
        ("tea", anomaly_model(0.6), "unknown model kind \"tea\""),
        ("classifier", SHIPPED_MODEL.to_vec(), "models/current"),
        ("quality", anomaly_model(0.6), "is an anomaly detector"),
        ("rul", b"{not json".to_vec(), "not valid JSON"),
    ];
    for (kind, bytes, says) in refusals {
        let e = k.deploy("milling", kind, &bytes, None).unwrap_err();
        assert_eq!(e.reason, RejectReason::BadModel);
        assert!(e.detail.contains(says), "{kind}: {}", e.detail);
    }
    let e = k
        .deploy("milling", "quality", &quality_model(0.5), Some("other-set"))
        .unwrap_err();
    assert!(e.detail.contains("retrain it"), "{}", e.detail);
    assert_eq!(k.iter().count(), 1, "refusals keep what was deployed");
    let (old, new) = k.deploy("milling", "anomaly", b"", None).unwrap();
    assert!(old.is_some() && new.is_none() && k.is_empty());
}

#[test]
fn a_verdict_carries_every_deployed_kind() {
    let mut k = KindModels::default();
    k.deploy("milling", "quality", &quality_model(0.0), None)
        .unwrap();
    k.deploy("milling", "anomaly", &anomaly_model(0.6), None)
        .unwrap();
    k.deploy("milling", "rul", &rul_model(), None).unwrap();
    let f = vectors(9, 80).pop().unwrap();
    let mut risk = classifier_verdict(&f);
    let before = risk.clone();
    let done = k.annotate(&f, &mut risk);
    assert!(done.mismatched.is_empty());
    assert_eq!(done.rows.len(), 3);
    let i = &risk.insights;
    let q = i.quality_risk.unwrap();
    assert!((0.0..=1.0).contains(&q));
    assert_eq!(q, before.probability, "the same forest");
    assert_eq!(i.quality_at_risk, Some(true), "threshold 0");
    assert!(risk.actions.iter().any(|a| a.code == QUALITY_RISK));
    assert!(risk.health_score <= before.health_score - 10.0 || risk.health_score == 0.0);
    let a = i.anomaly.unwrap();
    assert!(a > 0.0 && a < 1.0, "{a}");
    let rul = i.rul.as_ref().unwrap();
    assert!(rul.low <= rul.value && rul.value <= rul.high && rul.unit == "cycles");
    assert!((10.0..=70.0).contains(&rul.value), "{rul:?}");
    let kinds: Vec<&str> = i.models.keys().map(String::as_str).collect();
    assert_eq!(kinds, ["anomaly", "quality", "rul"]);
    // The failure classifier's part is untouched.
    assert_eq!(risk.probability, before.probability);
    assert_eq!(risk.status, before.status);
    assert_eq!(risk.model, before.model);
    let v: serde_json::Value = serde_json::from_slice(&to_json(&risk)).unwrap();
    assert_eq!(v["rul"]["unit"], "cycles");
    assert!(v["anomaly"].is_number() && v["quality_risk"].is_number());
}

#[test]
fn an_outlier_is_anomalous_and_decides_a_rules_only_verdict() {
    let mut k = KindModels::default();
    k.deploy("pump", "anomaly", &anomaly_model(0.6), None)
        .unwrap();
    let mut f = vectors(3, 90).pop().unwrap();
    f.profile = Some("pump".into());
    let mut ordinary = rules_only(&f, epoch());
    k.annotate(&f, &mut ordinary);
    assert_eq!(
        ordinary.insights.anomalous,
        Some(false),
        "{:?}",
        ordinary.insights
    );
    assert_eq!(ordinary.status, RiskStatus::Healthy);

    for v in f.values.values_mut() {
        *v = v.map(|x| x * 40.0 + 1e4);
    }
    let mut odd = rules_only(&f, epoch());
    k.annotate(&f, &mut odd);
    assert_eq!(odd.insights.anomalous, Some(true), "{:?}", odd.insights);
    assert!(odd.insights.anomaly.unwrap() >= 0.6);
    assert_eq!(
        odd.status,
        RiskStatus::AtRisk,
        "no classifier: the anomaly decides"
    );
    assert_eq!(odd.level, Level::Warning);
    assert_eq!(
        odd.actions[0].code, ANOMALY,
        "warning before the NORMAL NO_MODEL note"
    );

    // The same outlier on a cold window is scored but not called anomalous.
    f.cold = true;
    let mut cold = rules_only(&f, epoch());
    k.annotate(&f, &mut cold);
    assert_eq!(cold.insights.anomalous, Some(false));
    assert_eq!(cold.status, RiskStatus::Healthy);
}

#[test]
fn another_feature_set_gets_no_field_and_is_counted() {
    let mut k = KindModels::default();
    k.deploy("milling", "rul", &rul_model(), None).unwrap();
    let mut f = vectors(2, 70).pop().unwrap();
    f.feature_set = "not-the-models".into();
    let mut risk = rules_only(&f, epoch());
    let before = risk.clone();
    let done = k.annotate(&f, &mut risk);
    assert_eq!(done.mismatched, [ModelKind::Rul]);
    assert_eq!(risk, before);
    // No model for the profile: nothing at all, and the verdict's JSON is as before.
    let mut other = f.clone();
    other.profile = Some("press".into());
    let mut r = rules_only(&other, epoch());
    assert_eq!(k.annotate(&other, &mut r), Annotated::default());
    let v: serde_json::Value = serde_json::from_slice(&to_json(&r)).unwrap();
    for key in ["quality_risk", "anomaly", "anomalous", "rul", "models"] {
        assert!(v.get(key).is_none(), "{key}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any values, NaN and infinities included, give fields in their ranges and never panic.
    #[test]
    fn any_values_give_fields_in_range(
        values in proptest::collection::vec(
            prop_oneof![
                Just(None),
                Just(Some(f64::NAN)),
                Just(Some(f64::INFINITY)),
                Just(Some(f64::NEG_INFINITY)),
                (-1e9f64..1e9).prop_map(Some),
            ],
            64,
        ),
    ) {
        static MODELS: std::sync::OnceLock<KindModels> = std::sync::OnceLock::new();
        let k = MODELS.get_or_init(|| {
            let mut k = KindModels::default();
            k.deploy("milling", "quality", &quality_model(0.5), None).unwrap();
            k.deploy("milling", "anomaly", &anomaly_model(0.6), None).unwrap();
            k.deploy("milling", "rul", &rul_model(), None).unwrap();
            k
        });
        let mut f = vectors(1, 1).pop().unwrap();
        for (v, slot) in values.into_iter().zip(f.values.values_mut()) {
            *slot = v;
        }
        let mut risk = rules_only(&f, epoch());
        k.annotate(&f, &mut risk);
        let i = &risk.insights;
        prop_assert!((0.0..=1.0).contains(&i.quality_risk.unwrap()));
        prop_assert!((0.0..=1.0).contains(&i.anomaly.unwrap()));
        let rul = i.rul.as_ref().unwrap();
        prop_assert!(rul.value.is_finite() && rul.low <= rul.value && rul.value <= rul.high);
        prop_assert!((0.0..=100.0).contains(&risk.health_score));
    }
}
