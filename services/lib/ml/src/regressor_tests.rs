//! Regressor tests on synthetic data.

use ndarray::Array2;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::metrics::rmse;
use crate::*;

/// `n` rows of `n_features` uniform values in `[0, 10)`.
fn uniform(n: usize, n_features: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, n_features), |_| rng.random_range(0.0..10.0))
}

fn fit(x: &Array2<f32>, y: &[f32], params: &RegressorParams) -> ForestRegressor {
    ForestRegressor::fit(x.view(), y, params, &|| {}).expect("valid synthetic data")
}

fn small() -> RegressorParams {
    RegressorParams {
        n_trees: 30,
        ..RegressorParams::default()
    }
}

#[test]
fn a_noiseless_step_is_learned_exactly() {
    // y = 100 when x0 > 4 else 20; x1, x2 are noise.
    let x = uniform(1000, 3, 1);
    let y: Vec<f32> = x
        .rows()
        .into_iter()
        .map(|r| if r[0] > 4.0 { 100.0 } else { 20.0 })
        .collect();
    // Every feature considered at every split: x0 always wins, so no leaf straddles the step.
    let all = RegressorParams {
        max_features: MaxFeatures::All,
        ..small()
    };
    let forest = fit(&x, &y, &all);
    assert_eq!(forest.n_trees(), 30);
    assert_eq!(forest.n_features(), 3);
    // Away from the step every tree has a pure leaf.
    for (v, want) in [(1.0, 20.0), (3.8, 20.0), (4.3, 100.0), (9.0, 100.0)] {
        let p = forest.predict_row(&[v, 5.0, 5.0]);
        assert!((p - want).abs() < 1e-3, "x0 {v}: {p} (want {want})");
        let (e, lo, hi) = forest.predict_interval_row(&[v, 5.0, 5.0], 0.05, 0.95);
        assert_eq!(e, p);
        assert!((lo - want).abs() < 1e-3 && (hi - want).abs() < 1e-3);
    }
    let imp = forest.feature_importance();
    assert!(imp[0] > 0.95, "{imp:?}");
    assert!((imp.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    // With a third of the features per split (here one), splits on noise come first in some
    // nodes and leave small mixed leaves (RMSE about 5.4; a constant gets about 39).
    let forest = fit(&x, &y, &small());
    let xt = uniform(1000, 3, 11);
    let yt: Vec<f32> = xt
        .rows()
        .into_iter()
        .map(|r| if r[0] > 4.0 { 100.0 } else { 20.0 })
        .collect();
    let err = rmse(&forest.predict(xt.view()), &yt);
    assert!(err < 8.0, "rmse {err}");
}

#[test]
fn a_linear_function_is_approximated() {
    // y = 3 x0 - 2 x1 + 0 x2, range about [-20, 30]; tested on fresh rows.
    let f = |r: ndarray::ArrayView1<f32>| 3.0 * r[0] - 2.0 * r[1];
    let x = uniform(4000, 3, 2);
    let y: Vec<f32> = x.rows().into_iter().map(f).collect();
    let xt = uniform(500, 3, 3);
    let yt: Vec<f32> = xt.rows().into_iter().map(f).collect();
    let forest = fit(&x, &y, &small());
    let pred = forest.predict(xt.view());
    let err = rmse(&pred, &yt);
    // The target's standard deviation is about 10.4 (a constant's RMSE); one split leaves
    // about 7. Piecewise constants on 4,000 rows get close to 1.
    println!("linear: rmse {err}");
    assert!(err < 1.5, "rmse {err}");
    let all = RegressorParams {
        max_features: MaxFeatures::All,
        ..small()
    };
    let err_all = rmse(&fit(&x, &y, &all).predict(xt.view()), &yt);
    println!("linear, all features: rmse {err_all}");
    assert!(err_all < 1.0, "rmse {err_all}");
    // Batch and row by row agree exactly.
    for (i, r) in xt.rows().into_iter().enumerate() {
        assert_eq!(pred[i], forest.predict_row(r.as_slice().unwrap()));
    }
}

#[test]
fn training_is_deterministic_per_seed() {
    let x = uniform(600, 4, 4);
    let y: Vec<f32> = x.rows().into_iter().map(|r| r[0] * r[1]).collect();
    let a = fit(&x, &y, &small());
    let b = fit(&x, &y, &small());
    let c = fit(&x, &y, &RegressorParams { seed: 7, ..small() });
    let json = |f: &ForestRegressor| serde_json::to_string(f).unwrap();
    assert_eq!(json(&a), json(&b));
    assert_ne!(json(&a), json(&c));
    // The same forest on one thread.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let d = pool.install(|| fit(&x, &y, &small()));
    assert_eq!(json(&a), json(&d));
}

#[test]
fn serde_round_trips_like_the_classifier() {
    let x = uniform(300, 2, 5);
    let y: Vec<f32> = x.rows().into_iter().map(|r| 50.0 + r[0] * 10.0).collect();
    let forest = fit(&x, &y, &small());
    let v = serde_json::to_value(&forest).unwrap();
    // The same shape as a Forest: trees as parallel arrays, and the importance.
    for key in [
        "n_features",
        "roots",
        "feature",
        "threshold",
        "missing_left",
        "right",
        "value",
    ] {
        assert!(v["trees"].get(key).is_some(), "trees.{key} missing");
    }
    assert!(v["importance"].is_array());
    let back: ForestRegressor = serde_json::from_value(v.clone()).unwrap();
    for r in x.rows() {
        let r = r.as_slice().unwrap();
        assert_eq!(back.predict_row(r), forest.predict_row(r));
    }
    // Values outside [0, 1] are fine here, but the classifier refuses them.
    assert!(serde_json::from_value::<Forest>(v.clone()).is_err());
    let mut bad = v;
    bad["trees"]["value"][0] = serde_json::Value::Null;
    assert!(serde_json::from_value::<ForestRegressor>(bad).is_err());
}

#[test]
fn missing_values_are_handled() {
    // y follows x0; a quarter of x0 is missing, and missing x0 means y = 200.
    let mut x = uniform(2000, 2, 6);
    let mut y = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for i in 0..x.nrows() {
        if rng.random_bool(0.25) {
            x[[i, 0]] = f32::NAN;
            y.push(200.0);
        } else {
            y.push(if x[[i, 0]] > 5.0 { 10.0 } else { 0.0 });
        }
    }
    let forest = fit(&x, &y, &small());
    let nan = forest.predict_row(&[f32::NAN, 3.0]);
    assert!((nan - 200.0).abs() < 1.0, "missing x0: {nan}");
    // A short row reads as missing values.
    assert_eq!(
        forest.predict_row(&[]),
        forest.predict_row(&[f32::NAN, f32::NAN])
    );
    assert!(forest.predict_row(&[8.0, 3.0]) < 15.0);
    assert!(forest.predict_row(&[1.0, 3.0]) < 5.0);
}

#[test]
fn bad_input_is_refused() {
    let x = uniform(10, 2, 1);
    let y = vec![1.0; 10];
    let p = RegressorParams::default();
    assert!(matches!(
        ForestRegressor::fit(x.view(), &y[..9], &p, &|| {}),
        Err(MlError::LengthMismatch {
            rows: 10,
            labels: 9
        })
    ));
    let mut nan = y.clone();
    nan[3] = f32::NAN;
    let e = ForestRegressor::fit(x.view(), &nan, &p, &|| {}).unwrap_err();
    assert!(matches!(e, MlError::NonFiniteTarget { row: 3, .. }));
    assert_eq!(e.to_string(), "target of row 3 is NaN, not a finite number");
    let empty = Array2::<f32>::zeros((0, 2));
    assert!(matches!(
        ForestRegressor::fit(empty.view(), &[], &p, &|| {}),
        Err(MlError::EmptyData { .. })
    ));
    for bad in [
        RegressorParams {
            n_trees: 0,
            ..p.clone()
        },
        RegressorParams {
            min_samples_leaf: 0,
            ..p.clone()
        },
        RegressorParams {
            max_features: MaxFeatures::Fraction(0.0),
            ..p.clone()
        },
    ] {
        assert!(matches!(
            ForestRegressor::fit(x.view(), &y, &bad, &|| {}),
            Err(MlError::InvalidParams(_))
        ));
    }
    // A constant target is a valid model: it predicts the constant.
    let forest = ForestRegressor::fit(x.view(), &y, &p, &|| {}).unwrap();
    assert_eq!(forest.predict_row(&[1.0, 2.0]), 1.0);
}

#[test]
fn interval_quantiles_follow_the_trees() {
    let x = uniform(500, 2, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let y: Vec<f32> = x
        .rows()
        .into_iter()
        .map(|r| r[0] + rng.random_range(-5.0..5.0))
        .collect();
    let forest = fit(&x, &y, &small());
    let row = [5.0, 5.0];
    let mut trees = forest.tree_predictions(&row);
    assert_eq!(trees.len(), 30);
    trees.sort_unstable_by(f32::total_cmp);
    let (e, lo, hi) = forest.predict_interval_row(&row, 0.0, 1.0);
    assert_eq!((lo, hi), (trees[0], trees[29]));
    let mean = trees.iter().map(|&v| f64::from(v)).sum::<f64>() / 30.0;
    assert!((f64::from(e) - mean).abs() < 1e-4);
    // Median of 30 values: halfway between the 15th and 16th.
    let (_, m_lo, m_hi) = forest.predict_interval_row(&row, 0.5, 0.5);
    let median = (trees[14] + trees[15]) / 2.0;
    assert!((m_lo - median.min(e)).abs() < 1e-4, "{m_lo} {median} {e}");
    assert!((m_hi - median.max(e)).abs() < 1e-4, "{m_hi} {median} {e}");
    // Swapped quantiles give the same interval.
    assert_eq!(
        forest.predict_interval_row(&row, 0.9, 0.1),
        forest.predict_interval_row(&row, 0.1, 0.9)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Predictions never leave the training targets' range, and the interval holds the
    /// estimate, for any data (with missing values) and any query row.
    #[test]
    fn predictions_stay_in_range_and_intervals_hold_them(
        seed in 0u64..1000,
        n in 20usize..200,
        scale in prop::sample::select(vec![1e-3f32, 1.0, 125.0, 1e6]),
        offset in prop::sample::select(vec![0.0f32, -50.0, 1e4]),
        query in prop::collection::vec(prop::option::weighted(0.9, -20.0f32..20.0), 3),
        qs in (0.0f64..1.0, 0.0f64..1.0),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, 3), |_| {
            if rng.random_bool(0.1) { f32::NAN } else { rng.random_range(-10.0..10.0) }
        });
        let y: Vec<f32> = (0..n)
            .map(|i| offset + scale * (x[[i, 0]].max(0.0) + rng.random_range(0.0f32..3.0)))
            .map(|v| if v.is_finite() { v } else { offset })
            .collect();
        let params = RegressorParams { n_trees: 10, min_samples_leaf: 1, seed, ..RegressorParams::default() };
        let forest = ForestRegressor::fit(x.view(), &y, &params, &|| {}).unwrap();
        let (lo_y, hi_y) = y.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let row: Vec<f32> = query.iter().map(|v| v.unwrap_or(f32::NAN)).collect();
        let p = forest.predict_row(&row);
        prop_assert!(lo_y <= p && p <= hi_y, "{} not in [{}, {}]", p, lo_y, hi_y);
        let (e, lo, hi) = forest.predict_interval_row(&row, qs.0, qs.1);
        prop_assert_eq!(e, p);
        prop_assert!(lo <= e && e <= hi, "{} not in [{}, {}]", e, lo, hi);
        prop_assert!(lo_y <= lo && hi <= hi_y);
    }
}
