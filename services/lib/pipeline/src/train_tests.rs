//! Training on tiny deterministic data sets, and the split by machine.

use super::*;
use crate::tabular::AI4I_FEATURES;
use crate::test_support::{machines, twin, unit, MachineSpec};
use dtwin_ml::MaxFeatures;
use ndarray::Array2;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn spec(target: Option<ThresholdTarget>) -> TrainSpec {
    TrainSpec {
        data: TwinDataSpec::default(),
        params: ForestParams {
            n_trees: 15,
            max_features: MaxFeatures::All,
            ..ForestParams::default()
        },
        model_id: "test-model".into(),
        version: "7".into(),
        target,
        source: Some("hand-made".into()),
    }
}

/// 10 machines × 100 readings (rows at steps 0..90); the label is `signal > 0.7`, `noise`
/// carries nothing.
fn signal_fleet() -> Dataset {
    twin(&["signal", "noise"], &machines(10, 100, 0..90), |m, s| {
        let v = unit(m, s);
        (vec![v, unit(s + 1000, m)], v > 0.7)
    })
}

#[test]
fn a_threshold_on_one_feature_is_learned_and_carried_by_the_artifact() {
    let data = signal_fleet();
    let positives = data.y.iter().filter(|&&b| b).count();
    assert!((200..=340).contains(&positives), "{positives} of 900");
    let (artifact, rep) = train_on(&data, &spec(Some(ThresholdTarget::BestF1)), &|| {}).unwrap();
    // Split by machine: 2, 3, 4, 7, 8, 9 train; 1, 6 validation; 0, 5 test.
    assert_eq!((rep.train_rows, rep.test_rows), (6 * 90, 2 * 90));
    assert_eq!(artifact.training.rows, 6 * 90);
    assert!(rep.roc_auc > 0.99, "ROC-AUC {}", rep.roc_auc);
    assert!(rep.pr_auc > 0.97, "PR-AUC {}", rep.pr_auc);
    assert!(rep.f1 > 0.9, "F1 {}", rep.f1);
    // The artifact: feature names in column order, the chosen threshold, the label.
    assert_eq!(artifact.feature_names, ["signal", "noise"]);
    assert_eq!(artifact.threshold, rep.threshold);
    assert_eq!(rep.test.threshold, rep.threshold);
    // Leaves are pure on this data, so the best threshold may be the top score, 1.
    assert!(
        rep.threshold > 0.5 && rep.threshold <= 1.0,
        "{}",
        rep.threshold
    );
    assert_eq!(rep.threshold_target, "best F1");
    assert_eq!(artifact.label, data.description);
    assert_eq!(
        (&*artifact.model_id, &*artifact.version),
        ("test-model", "7")
    );
    assert_eq!(artifact.training.source, "hand-made");
    assert!(artifact.is_alarm(artifact.predict_row(&[0.95, 0.5])));
    assert!(!artifact.is_alarm(artifact.predict_row(&[0.2, 0.5])));
    let importance = artifact.classifier().unwrap().feature_importance();
    assert!(importance[0] > 0.9, "{importance:?}");
    // The drift reference names the features in the same order; it all survives a round trip.
    let reference = artifact
        .reference
        .as_ref()
        .expect("train_on builds a reference");
    let names: Vec<&str> = reference.features.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["signal", "noise"]);
    let back = ModelArtifact::from_json(&artifact.to_json()).expect("a valid artifact");
    assert_eq!(back.feature_names, artifact.feature_names);
    assert_eq!(back.threshold, artifact.threshold);
    // No failures: the event view has nothing to recall.
    let events = rep.events.as_ref().expect("twin data has an event view");
    assert_eq!(events.failures, 0);
    assert!(events.event_recall.is_nan());
}

#[test]
fn an_event_recall_target_out_of_reach_falls_back_to_best_f1() {
    // Without failures no threshold reaches any event recall (the default target).
    let data = signal_fleet();
    let (default, rep) = train_on(&data, &spec(None), &|| {}).unwrap();
    assert_eq!(rep.threshold_target, "event recall >= 0.95");
    let (best_f1, _) = train_on(&data, &spec(Some(ThresholdTarget::BestF1)), &|| {}).unwrap();
    assert!(default.threshold.is_finite());
    assert_eq!(default.threshold, best_f1.threshold);
}

#[test]
fn one_class_twin_data_is_refused() {
    let data = twin(&["v"], &machines(5, 30, 0..20), |_, s| {
        (vec![s as f32], false)
    });
    let err = train_on(&data, &spec(None), &|| {}).unwrap_err();
    assert!(matches!(err, MlError::SingleClass { label: false, .. }));
}

/// An AI4I-shaped table: `torque_nm` (0..100) decides the label (above 70), the physical rule
/// columns are 0 so the floor rules never fire, the other columns are noise.
fn ai4i_table(rows: usize) -> Tabular {
    let (names, feature_set) = crate::tabular::ai4i_feature_set();
    let torque = AI4I_FEATURES
        .iter()
        .position(|&n| n == "torque_nm")
        .unwrap();
    let x = Array2::from_shape_fn((rows, AI4I_FEATURES.len()), |(i, j)| match j {
        9..=11 => 0.0,
        _ => 100.0 * unit(i as u32, j as u32),
    });
    let y = (0..rows).map(|i| x[[i, torque]] > 70.0).collect::<Vec<_>>();
    Tabular {
        x,
        mode: vec![None; rows],
        y,
        names,
        feature_set,
    }
}

#[test]
fn tabular_training_carries_the_features_threshold_and_floor_rules() {
    let table = ai4i_table(200);
    let params = ForestParams {
        n_trees: 10,
        ..spec(None).params
    };
    let (artifact, rep) = train_tabular(
        &table,
        &TrainSpec {
            params,
            ..spec(None)
        },
        &|| {},
    )
    .unwrap();
    assert_eq!(artifact.feature_names, AI4I_FEATURES);
    assert_eq!(artifact.floor_rules, crate::tabular::ai4i_floor_rules());
    assert_eq!(artifact.threshold, rep.threshold);
    assert_eq!(rep.threshold_target, "best F1");
    // Stratified 80/20 and 5-fold CV on the 80 %.
    let (train, test) = EvalData::Tabular(table.clone()).holdout();
    assert!((39..=41).contains(&test.len()), "{}", test.len());
    assert_eq!((rep.train_rows, rep.test_rows), (train.len(), test.len()));
    let cv = rep
        .cross_validation
        .as_ref()
        .expect("AI4I training cross-validates");
    assert_eq!(cv.folds.len(), 5);
    assert_eq!(
        cv.folds.iter().map(|f| f.metrics.rows).sum::<usize>(),
        train.len()
    );
    assert!(rep.roc_auc > 0.98, "ROC-AUC {}", rep.roc_auc);
    assert!(cv.roc_auc.mean > 0.95, "CV ROC-AUC {}", cv.roc_auc.mean);
    artifact.validate().expect("a valid artifact");
    assert_eq!(artifact.recipe, Some(FeatureRecipe::Ai4iTabular));
    let (features, from) = features_of(&artifact, &WindowConfig::default()).unwrap();
    assert_eq!(
        (features, from),
        (Features::Ai4iTabular, FeaturesFrom::Recipe)
    );
}

#[test]
fn features_come_from_the_recipe_or_the_hash() {
    let windows = WindowConfig {
        short: 5,
        long: 20,
        ..WindowConfig::default()
    };
    let (names, _) = dtwin_windows::feature_set(&windows);
    let meta = || dtwin_ml::TrainingMeta {
        rows: 0,
        positives: 0,
        params: ForestParams::default(),
        source: String::new(),
        seconds: 0.0,
    };
    let fit = |width: usize| {
        let x = Array2::from_shape_fn((4, width), |(i, _)| i as f32);
        Forest::fit(
            x.view(),
            &[false, true, false, true],
            &ForestParams {
                n_trees: 1,
                ..ForestParams::default()
            },
            &|| {},
        )
        .unwrap()
    };
    let model = |names: Vec<String>| {
        let n = names.len();
        ModelArtifact::new("m", names, 0.5, "y", meta(), fit(n))
    };
    let defaults = WindowConfig::default();
    // With a recipe: its windows, whatever the caller's flags say.
    let with = model(names.clone()).with_recipe(window_recipe(&windows));
    let with = ModelArtifact::from_json(&with.to_json()).unwrap();
    assert_eq!(
        features_of(&with, &defaults).unwrap(),
        (Features::Windows(windows.clone()), FeaturesFrom::Recipe)
    );
    // Without one: the flags when they match, else a clear error naming them.
    let without = model(names.clone());
    assert_eq!(
        features_of(&without, &windows).unwrap(),
        (Features::Windows(windows.clone()), FeaturesFrom::Given)
    );
    let err = features_of(&without, &defaults).unwrap_err().to_string();
    assert!(err.contains("--short-window, --long-window"), "{err}");
    // Without one, the default windows and AI4I are recognised by their hash.
    let default_model = model(dtwin_windows::feature_set(&defaults).0);
    assert_eq!(
        features_of(&default_model, &windows).unwrap(),
        (
            Features::Windows(defaults.clone()),
            FeaturesFrom::DefaultWindows
        )
    );
    let ai4i = model(crate::tabular::ai4i_feature_set().0);
    assert_eq!(
        features_of(&ai4i, &defaults).unwrap(),
        (Features::Ai4iTabular, FeaturesFrom::Ai4iHash)
    );
    // A recipe that does not give the model's names is refused.
    let wrong = model(names).with_recipe(window_recipe(&defaults));
    assert!(matches!(
        features_of(&wrong, &windows),
        Err(RecipeError::Mismatch { .. })
    ));
}

#[test]
fn tabular_training_needs_a_row_per_fold_and_both_classes() {
    // 4 rows, of which the 20 % test part takes none: 4 rows for 5 folds.
    let mut tiny = ai4i_table(4);
    tiny.y = vec![true, false, true, false];
    let err = train_tabular(&tiny, &spec(None), &|| {}).unwrap_err();
    assert!(matches!(
        err,
        TrainError::CrossValidation(CvError::TooFewRows { rows: 4, folds: 5 })
    ));
    assert!(err
        .to_string()
        .starts_with("cross-validation: 4 rows for 5 folds"));
    let mut one_class = ai4i_table(30);
    one_class.y = vec![false; 30];
    let err = train_tabular(&one_class, &spec(None), &|| {}).unwrap_err();
    assert!(matches!(
        err,
        TrainError::CrossValidation(CvError::Fit {
            source: MlError::SingleClass { label: false, .. },
            ..
        })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The split `train_on` uses never puts a machine's rows in two parts, covers every machine,
    /// and its test part is the held-out part `evaluate` reports on.
    #[test]
    fn twin_split_never_shares_a_machine(
        specs in prop::collection::vec((5u32..40, 0u32..3), 1..25)
    ) {
        let specs: Vec<MachineSpec> = specs
            .into_iter()
            .map(|(readings, first)| MachineSpec { readings, rows: first..readings - 2 })
            .collect();
        let data = twin(&["v"], &specs, |m, s| (vec![0.0], (m + s) % 3 == 0));
        let split = twin_split(&data);
        let of = |rows: &[usize]| rows.iter().map(|&i| data.machine[i]).collect::<BTreeSet<u32>>();
        let (train, val, test) = (of(&split.train), of(&split.validation), of(&split.test));
        prop_assert!(train.is_disjoint(&val) && train.is_disjoint(&test) && val.is_disjoint(&test));
        let all: BTreeSet<u32> = (0..specs.len() as u32).collect();
        let union: BTreeSet<u32> = train.iter().chain(&val).chain(&test).copied().collect();
        prop_assert_eq!(union, all);
        prop_assert_eq!(
            split.train.len() + split.validation.len() + split.test.len(),
            data.y.len()
        );
        let (rest, held) = EvalData::Twin(data.clone()).holdout();
        prop_assert_eq!(&split.test, &held);
        let mut fit_and_threshold: Vec<usize> = split.train.iter().chain(&split.validation).copied().collect();
        fit_and_threshold.sort_unstable();
        prop_assert_eq!(fit_and_threshold, rest);
    }
}
