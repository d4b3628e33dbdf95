//! Forest and artifact tests on synthetic data.

use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::Array2;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::metrics::roc_auc;
use crate::*;

/// Feature 0 decides the label (with 5 % label noise), features 1..n are noise.
fn synthetic(n: usize, n_features: usize, seed: u64, nan_share: f64) -> (Array2<f32>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, n_features));
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        for j in 0..n_features {
            x[[i, j]] = rng.random_range(-1.0..1.0);
        }
        // Imbalanced like the real problem: ~15 % positive.
        let label = x[[i, 0]] > 0.7;
        y.push(if rng.random_bool(0.05) { !label } else { label });
        for j in 0..n_features {
            if rng.random_bool(nan_share) {
                x[[i, j]] = f32::NAN;
            }
        }
    }
    (x, y)
}

fn small_params() -> ForestParams {
    ForestParams {
        n_trees: 30,
        ..ForestParams::default()
    }
}

fn fit(x: &Array2<f32>, y: &[bool], params: &ForestParams) -> Forest {
    Forest::fit(x.view(), y, params, &|| {}).expect("valid synthetic data") // test data is valid
}

/// A separable problem: the label is exactly `x0 > 0.3`.
fn separable(n: usize, seed: u64) -> (Array2<f32>, Vec<bool>) {
    let (x, _) = synthetic(n, 4, seed, 0.0);
    let y = (0..n).map(|i| x[[i, 0]] > 0.3).collect();
    (x, y)
}

#[test]
fn separable_problem_is_learned() {
    let (x, y) = separable(2000, 1);
    let (xt, yt) = separable(1000, 2);
    let forest = fit(&x, &y, &small_params());
    let auc = roc_auc(&yt, &forest.predict_proba(xt.view())).expect("both classes");
    assert!(auc > 0.99, "auc {auc}");
    assert_eq!(forest.n_trees(), 30);
    assert_eq!(forest.n_features(), 4);
}

#[test]
fn progress_is_called_once_per_tree() {
    let (x, y) = separable(300, 3);
    let calls = AtomicUsize::new(0);
    let params = ForestParams {
        n_trees: 17,
        ..ForestParams::default()
    };
    Forest::fit(x.view(), &y, &params, &|| {
        calls.fetch_add(1, Ordering::Relaxed);
    })
    .expect("valid data"); // separable() has both classes
    assert_eq!(calls.load(Ordering::Relaxed), 17);
}

#[test]
fn identical_across_thread_counts() {
    let (x, y) = synthetic(1500, 6, 4, 0.1);
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool"); // building a small pool only fails if threads can't spawn
        pool.install(|| serde_json::to_string(&fit(&x, &y, &small_params())))
            .expect("forest serializes")
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn serde_round_trip_predicts_identically() {
    let (x, y) = synthetic(1000, 5, 5, 0.1);
    let forest = fit(&x, &y, &small_params());
    let json = serde_json::to_vec(&forest).expect("forest serializes");
    let back: Forest = serde_json::from_slice(&json).expect("round trip parses");
    let a = forest.predict_proba(x.view());
    let b = back.predict_proba(x.view());
    assert_eq!(a, b);
    assert_eq!(forest.feature_importance(), back.feature_importance());
}

#[test]
fn batch_matches_single_rows_and_handles_views() {
    let (x, y) = synthetic(1200, 5, 6, 0.0);
    let forest = fit(&x, &y, &small_params());
    let batch = forest.predict_proba(x.view());
    for (i, p) in batch.iter().enumerate() {
        let row: Vec<f32> = x.row(i).to_vec();
        assert_eq!(*p, forest.predict_proba_row(&row));
    }
    // A column-major copy has non-contiguous rows.
    let t = x.t().to_owned();
    assert_eq!(forest.predict_proba(t.t()), batch);
    assert!(batch.iter().all(|p| (0.0..=1.0).contains(p)));
}

#[test]
fn missing_values_in_prediction_and_training() {
    let (x, y) = synthetic(3000, 5, 7, 0.2);
    let (xt, yt) = synthetic(2000, 5, 8, 0.0);
    let forest = fit(&x, &y, &small_params());
    let auc = roc_auc(&yt, &forest.predict_proba(xt.view())).expect("both classes");
    let (xc, yc) = synthetic(3000, 5, 7, 0.0);
    let clean = roc_auc(
        &yt,
        &fit(&xc, &yc, &small_params()).predict_proba(xt.view()),
    )
    .expect("both classes");
    // 5 % label noise caps the clean AUC near 0.88; missing values should barely cost.
    assert!(
        auc > 0.85 && auc > clean - 0.02,
        "auc clean {clean}, with 20 % NaN {auc}"
    );
    let p = forest.predict_proba_row(&[f32::NAN; 5]);
    assert!((0.0..=1.0).contains(&p));
    // A short row reads as missing values.
    assert_eq!(
        forest.predict_proba_row(&[0.9]),
        forest.predict_proba_row(&[0.9, f32::NAN, f32::NAN, f32::NAN, f32::NAN])
    );
    assert!(
        forest.predict_proba_row(&[0.95, f32::NAN, 0.0, 0.0, 0.0])
            > forest.predict_proba_row(&[-0.9, f32::NAN, 0.0, 0.0, 0.0])
    );
}

#[test]
fn importance_sums_to_one_and_ranks_the_signal_first() {
    let (x, y) = synthetic(2000, 6, 9, 0.0);
    let imp = fit(&x, &y, &small_params()).feature_importance();
    assert_eq!(imp.len(), 6);
    assert!((imp.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let top = (0..6).max_by(|&a, &b| imp[a].total_cmp(&imp[b]));
    assert_eq!(top, Some(0), "{imp:?}");
}

#[test]
fn parameter_variants_train() {
    let (x, y) = synthetic(600, 4, 10, 0.05);
    for params in [
        ForestParams {
            bootstrap: false,
            max_features: MaxFeatures::All,
            ..small_params()
        },
        ForestParams {
            class_weight: ClassWeight::None,
            max_bins: 2,
            ..small_params()
        },
        ForestParams {
            max_features: MaxFeatures::Fraction(0.5),
            max_depth: 1,
            ..small_params()
        },
        ForestParams {
            max_features: MaxFeatures::Count(9),
            min_samples_leaf: 1,
            ..small_params()
        },
    ] {
        let forest = fit(&x, &y, &params);
        assert!(
            roc_auc(&y, &forest.predict_proba(x.view())).expect("both classes") > 0.8,
            "{params:?}"
        );
    }
}

#[test]
fn bad_inputs_are_errors() {
    let p = ForestParams::default();
    let x = Array2::<f32>::zeros((4, 2));
    let none =
        |x: &Array2<f32>, y: &[bool], p: &ForestParams| Forest::fit(x.view(), y, p, &|| {}).err();
    assert_eq!(
        none(&Array2::zeros((0, 2)), &[], &p),
        Some(MlError::EmptyData {
            rows: 0,
            features: 2
        })
    );
    assert_eq!(
        none(&x, &[true], &p),
        Some(MlError::LengthMismatch { rows: 4, labels: 1 })
    );
    assert_eq!(
        none(&x, &[true; 4], &p),
        Some(MlError::SingleClass {
            rows: 4,
            label: true
        })
    );
    let y = [true, false, true, false];
    for bad in [
        ForestParams {
            n_trees: 0,
            ..p.clone()
        },
        ForestParams {
            max_depth: 0,
            ..p.clone()
        },
        ForestParams {
            min_samples_leaf: 0,
            ..p.clone()
        },
        ForestParams {
            max_bins: 1,
            ..p.clone()
        },
        ForestParams {
            max_features: MaxFeatures::Fraction(1.5),
            ..p.clone()
        },
        ForestParams {
            max_features: MaxFeatures::Count(0),
            ..p.clone()
        },
    ] {
        assert!(
            matches!(none(&x, &y, &bad), Some(MlError::InvalidParams(_))),
            "{bad:?}"
        );
    }
    // Constant features: no split possible, still a valid (constant) model.
    let forest = fit(
        &x,
        &y,
        &ForestParams {
            bootstrap: false,
            ..p
        },
    );
    assert_eq!(forest.predict_proba_row(&[0.0, 0.0]), 0.5);
    assert_eq!(forest.feature_importance(), vec![0.5, 0.5]);
}

fn artifact() -> ModelArtifact {
    let (x, y) = synthetic(400, 3, 11, 0.0);
    let params = ForestParams {
        n_trees: 5,
        ..ForestParams::default()
    };
    let forest = fit(&x, &y, &params);
    let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let training = TrainingMeta {
        rows: 400,
        positives: 60,
        params,
        source: "synthetic".into(),
        seconds: 0.1,
    };
    ModelArtifact::new("m", names, 0.6, "x0 > 0.7", training, forest)
        .with_created_at("2025-01-01T00:00:00Z")
        .with_metrics(serde_json::json!({"roc_auc": 0.99}))
}

#[test]
fn artifact_round_trip() {
    let a = artifact();
    let back = ModelArtifact::from_json(&a.to_json()).expect("valid artifact parses");
    assert_eq!(
        back.feature_set_hash,
        dtwin_schema::feature_set_hash(&["a", "b", "c"])
    );
    let row = [0.9, -0.2, 0.1];
    assert_eq!(
        back.classifier().unwrap().predict_proba_row(&row),
        a.classifier().unwrap().predict_proba_row(&row)
    );
    assert_eq!(
        a.predict_named([("c", 0.1), ("a", 0.9), ("b", -0.2)]).ok(),
        Some(a.classifier().unwrap().predict_proba_row(&row))
    );
    assert!(matches!(
        a.predict_named([("zz", 1.0)]),
        Err(ArtifactError::UnknownFeature(_))
    ));
    assert_eq!(a.top_contributions(&row, 1)[0].0, "a");
    assert!(a.is_alarm(0.6) && !a.is_alarm(0.59));
}

#[test]
fn artifact_validation_rejects_mismatches() {
    let reject = |f: &dyn Fn(&mut ModelArtifact)| {
        let mut a = artifact();
        f(&mut a);
        ModelArtifact::from_json(&a.to_json()).err()
    };
    assert!(matches!(
        reject(&|a| a.feature_set_hash = "deadbeef".into()),
        Some(ArtifactError::FeatureHash { .. })
    ));
    assert!(matches!(
        reject(&|a| a.schema = "dtwin.model.v0".into()),
        Some(ArtifactError::Schema { .. })
    ));
    assert!(matches!(
        reject(&|a| a.threshold = 1.5),
        Some(ArtifactError::Threshold(_))
    ));
    let fewer = |a: &mut ModelArtifact| {
        a.feature_names.pop();
        a.feature_set_hash = dtwin_schema::feature_set_hash(&a.feature_names);
    };
    assert!(matches!(
        reject(&fewer),
        Some(ArtifactError::FeatureCount {
            forest: 3,
            names: 2
        })
    ));
    assert!(matches!(
        ModelArtifact::from_json(b"{}"),
        Err(ArtifactError::Json(_))
    ));
    assert!(matches!(
        reject(&|a| a.floor_rules = vec![FloorRule {
            feature: "zz".into(),
            above: 0.0
        }]),
        Some(ArtifactError::FloorRule(_))
    ));
}

#[test]
fn floor_rules_raise_the_probability_and_old_artifacts_have_none() {
    let plain = artifact();
    // An artifact written before floor rules existed has no such field: it still loads.
    let mut json: serde_json::Value = serde_json::from_slice(&plain.to_json()).unwrap();
    assert!(
        json.get("floor_rules").is_none(),
        "empty rules are not written"
    );
    json.as_object_mut().unwrap().remove("floor_rules");
    let old = ModelArtifact::from_json(&serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(old.floor_rules.is_empty());

    let a = artifact().with_floor_rules(vec![FloorRule {
        feature: "c".into(),
        above: 5.0,
    }]);
    let a = ModelArtifact::from_json(&a.to_json()).expect("rules survive the round trip");
    let (low, high) = ([0.1f32, 0.2, 1.0], [0.1f32, 0.2, 6.0]);
    assert_eq!(
        a.predict_row(&low),
        a.classifier().unwrap().predict_proba_row(&low)
    );
    assert!(a.classifier().unwrap().predict_proba_row(&high) < 1.0);
    assert_eq!(a.predict_row(&high), 1.0);
    let x = ndarray::Array2::from_shape_vec((2, 3), [low, high].concat()).unwrap();
    assert_eq!(a.predict(x.view()), vec![a.predict_row(&low), 1.0]);
}

#[test]
fn corrupted_trees_are_rejected() {
    let a = artifact();
    let mut v: serde_json::Value = serde_json::from_slice(&a.to_json()).expect("valid JSON");
    // Point the root's right child back at itself: would loop forever if accepted.
    v["forest"]["trees"]["right"][0] = 0.into();
    let bytes = serde_json::to_vec(&v).expect("value serializes");
    assert!(matches!(
        ModelArtifact::from_json(&bytes),
        Err(ArtifactError::Json(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn contributions_sum_to_probability(row in proptest::collection::vec(
        prop_oneof![4 => -1.5f32..1.5, 1 => Just(f32::NAN)], 5)) {
        thread_local! {
            static FOREST: Forest = {
                let (x, y) = synthetic(800, 5, 12, 0.1);
                fit(&x, &y, &small_params())
            };
        }
        FOREST.with(|forest| {
            let (bias, contrib) = forest.contributions(&row);
            let total = bias + contrib.iter().sum::<f32>();
            let p = forest.predict_proba_row(&row);
            prop_assert!((total - p).abs() < 1e-5, "bias {bias} + {contrib:?} != {p}");
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    /// The batched walk gives exactly the per-row numbers, for any batch size (lanes of 8 and a
    /// remainder) and rows with missing values or fewer values than features.
    #[test]
    fn explain_rows_equals_row_by_row(
        rows in proptest::collection::vec(proptest::collection::vec(
            prop_oneof![4 => -1.5f32..1.5, 1 => Just(f32::NAN)], 5), 0..21),
        short in any::<bool>(),
    ) {
        thread_local! {
            static FOREST: Forest = {
                let (x, y) = synthetic(800, 5, 12, 0.1);
                fit(&x, &y, &small_params())
            };
        }
        let width = if short { 4 } else { 5 };
        let flat: Vec<f32> = rows.iter().flat_map(|r| r[..width].iter().copied()).collect();
        FOREST.with(|forest| {
            let e = forest.explain_rows(&flat, width);
            prop_assert_eq!(e.len(), rows.len());
            for (i, row) in rows.iter().enumerate() {
                let row = &row[..width];
                prop_assert_eq!(e.probability[i].to_bits(), forest.predict_proba_row(row).to_bits());
                let (bias, contrib) = forest.contributions(row);
                prop_assert_eq!(e.bias, bias);
                prop_assert_eq!(e.row(i), &contrib[..]);
            }
            Ok(())
        })?;
    }
}

#[test]
fn training_reference_is_optional_and_checked() {
    let a = artifact();
    let json = a.to_json();
    assert!(
        !String::from_utf8_lossy(&json).contains("\"reference\""),
        "no reference, no field"
    );
    // An artifact written before references existed loads without one.
    assert!(ModelArtifact::from_json(&json).unwrap().reference.is_none());
    let (x, _) = synthetic(400, 3, 11, 0.0);
    let p: Vec<f32> = x
        .outer_iter()
        .map(|r| a.predict_row(r.as_slice().unwrap()))
        .collect();
    let reference = crate::TrainingReference::build(&a.feature_names, x.view(), &p, 10, "t");
    let with = a.clone().with_reference(reference);
    let back = ModelArtifact::from_json(&with.to_json()).unwrap();
    assert_eq!(back.reference, with.reference);
    // A reference that names other features is refused.
    let mut bad = with.clone();
    if let Some(r) = bad.reference.as_mut() {
        r.features[0].name = "zz".into();
    }
    assert!(matches!(
        ModelArtifact::from_json(&bad.to_json()),
        Err(ArtifactError::Reference(_))
    ));
}
