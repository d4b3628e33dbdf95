//! Isolation Forest tests on synthetic data.

use ndarray::Array2;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::metrics::roc_auc;

/// Standard normal by Box-Muller (no extra dependency).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// `n` rows of a standard Gaussian blob in `d` dimensions.
fn blob(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| normal(&mut rng))
}

/// `n` rows far from the blob: each at radius 4-6 in a random direction.
fn outliers(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::from_shape_fn((n, d), |_| normal(&mut rng));
    for mut row in x.rows_mut() {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
        let r = rng.random_range(4.0f32..6.0);
        row.mapv_inplace(|v| v / norm * r);
    }
    x
}

fn fit(x: &Array2<f32>, params: &IsolationParams) -> IsolationForest {
    IsolationForest::fit(x.view(), params, &|| {}).expect("valid synthetic data")
}

#[test]
fn average_path_length_matches_the_paper() {
    assert_eq!(average_path_length(0), 0.0);
    assert_eq!(average_path_length(1), 0.0);
    assert_eq!(average_path_length(2), 1.0);
    // c(256) = 2 (ln 255 + γ) - 2 · 255/256 ≈ 10.2448.
    assert!((average_path_length(256) - 10.2448).abs() < 1e-3);
}

#[test]
fn planted_outliers_score_higher_than_the_blob() {
    let d = 5;
    let train = blob(2000, d, 1);
    let forest = fit(&train, &IsolationParams::default());
    assert_eq!(forest.n_trees(), 100);
    assert_eq!(forest.n_features(), d);
    assert_eq!(forest.subsample(), 256);

    let inl = blob(500, d, 2);
    let out = outliers(50, d, 3);
    let mut scores = forest.score(inl.view());
    scores.extend(forest.score(out.view()));
    let y: Vec<bool> = (0..550).map(|i| i >= 500).collect();
    let auc = roc_auc(&y, &scores).unwrap();
    assert!(auc > 0.95, "ROC-AUC {auc}");
    assert!(scores.iter().all(|&s| s > 0.0 && s <= 1.0));
    // The usual reading: inliers well below 0.5 on average, outliers above.
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
    assert!(mean(&scores[..500]) < 0.5, "{}", mean(&scores[..500]));
    assert!(mean(&scores[500..]) > 0.55, "{}", mean(&scores[500..]));
    // The batch equals row by row, in parallel (> 512 rows) or not.
    let big = blob(1500, d, 4);
    let batch = forest.score(big.view());
    for (row, &s) in big.rows().into_iter().zip(&batch) {
        assert_eq!(forest.score_row(row.as_slice().unwrap()), s);
    }
    // A non-standard layout (a transposed view) scores the same.
    let t = big.t().to_owned();
    assert_eq!(forest.score(t.t()), batch);
}

#[test]
fn the_height_limit_and_subsample_follow_the_data() {
    let x = blob(100, 3, 5);
    let forest = fit(&x, &IsolationParams::default());
    assert_eq!(forest.subsample(), 100); // capped at the rows given
                                         // ceil(log2 100) = 7: no tree is deeper.
    assert!(forest.trees.0.depths.iter().all(|&d| d <= 7));
    let shallow = fit(
        &x,
        &IsolationParams {
            max_depth: Some(2),
            ..IsolationParams::default()
        },
    );
    assert!(shallow.trees.0.depths.iter().all(|&d| d <= 2));
    assert!(shallow.n_nodes() <= 7 * 100);
}

#[test]
fn training_is_deterministic_per_seed_and_thread_count() {
    let x = blob(1000, 4, 6);
    let p = IsolationParams {
        n_trees: 40,
        ..IsolationParams::default()
    };
    let a = fit(&x, &p);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let b = one.install(|| fit(&x, &p));
    let probe = blob(50, 4, 7);
    assert_eq!(a.score(probe.view()), b.score(probe.view()));
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    let c = fit(
        &x,
        &IsolationParams {
            seed: 7,
            ..p.clone()
        },
    );
    assert_ne!(a.score(probe.view()), c.score(probe.view()));
    // progress is called once per tree.
    let n = std::sync::atomic::AtomicUsize::new(0);
    IsolationForest::fit(x.view(), &p, &|| {
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(n.into_inner(), 40);
}

#[test]
fn bad_inputs_and_params_are_refused() {
    let x = blob(10, 2, 8);
    let err = |x: ArrayView2<f32>, p: IsolationParams| IsolationForest::fit(x, &p, &|| {});
    assert!(matches!(
        err(
            Array2::<f32>::zeros((0, 2)).view(),
            IsolationParams::default()
        ),
        Err(MlError::EmptyData { rows: 0, .. })
    ));
    assert!(matches!(
        err(
            Array2::<f32>::zeros((5, 0)).view(),
            IsolationParams::default()
        ),
        Err(MlError::EmptyData { features: 0, .. })
    ));
    assert!(matches!(
        err(blob(1, 2, 8).view(), IsolationParams::default()),
        Err(MlError::InvalidParams(_))
    ));
    for p in [
        IsolationParams {
            n_trees: 0,
            ..IsolationParams::default()
        },
        IsolationParams {
            max_samples: 1,
            ..IsolationParams::default()
        },
        IsolationParams {
            max_depth: Some(0),
            ..IsolationParams::default()
        },
    ] {
        assert!(matches!(err(x.view(), p), Err(MlError::InvalidParams(_))));
    }
}

#[test]
fn constant_data_gives_single_leaf_trees() {
    let x = Array2::from_elem((50, 3), 1.5f32);
    let forest = fit(&x, &IsolationParams::default());
    assert_eq!(forest.n_nodes(), 100);
    // Every row gets path c(50): score exactly 2^-1 = 0.5.
    assert!((forest.score_row(&[1.5, 1.5, 1.5]) - 0.5).abs() < 1e-6);
    assert!((forest.score_row(&[100.0, -3.0, 0.0]) - 0.5).abs() < 1e-6);
}

#[test]
fn nan_follows_the_larger_child_and_never_panics() {
    let mut x = blob(600, 3, 9);
    // A few training NaN too.
    for i in (0..600).step_by(37) {
        x[[i, 1]] = f32::NAN;
    }
    let forest = fit(&x, &IsolationParams::default());
    for row in [
        vec![f32::NAN; 3],
        vec![0.0, f32::NAN, 0.0],
        vec![f32::INFINITY, f32::NEG_INFINITY, f32::NAN],
        vec![],
        vec![0.0],
    ] {
        let s = forest.score_row(&row);
        assert!(s > 0.0 && s <= 1.0, "{row:?}: {s}");
    }
    // A NaN row takes the bulk's branches: it looks normal, not anomalous.
    let nan = forest.score_row(&[f32::NAN; 3]);
    let far = forest.score_row(&[8.0, 8.0, 8.0]);
    assert!(nan < 0.5 && nan < far, "NaN {nan}, far {far}");
    // A missing value in one feature scores like a typical value there.
    let typical = forest.score_row(&[0.0, 0.0, 0.0]);
    let one_nan = forest.score_row(&[0.0, f32::NAN, 0.0]);
    assert!((one_nan - typical).abs() < 0.1, "{one_nan} vs {typical}");
    // Batches with NaN rows equal row by row.
    let mut probe = blob(20, 3, 10);
    probe[[3, 0]] = f32::NAN;
    probe.row_mut(7).fill(f32::NAN);
    let batch = forest.score(probe.view());
    for (row, &s) in probe.rows().into_iter().zip(&batch) {
        assert_eq!(forest.score_row(row.as_slice().unwrap()), s);
    }
    // All-NaN training data: nothing to split, still a model.
    let all_nan = fit(
        &Array2::from_elem((10, 2), f32::NAN),
        &IsolationParams::default(),
    );
    assert_eq!(all_nan.n_nodes(), 100);
}

#[test]
fn threshold_for_rate_flags_the_requested_share() {
    let scores: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
    let t = threshold_for_rate(&scores, 0.05).unwrap();
    assert_eq!(t, 0.94);
    assert_eq!(scores.iter().filter(|&&s| s > t).count(), 5);
    assert_eq!(threshold_for_rate(&scores, 0.0).unwrap(), 0.99);
    assert_eq!(threshold_for_rate(&scores, 1.0).unwrap(), 0.0);
    assert_eq!(threshold_for_rate(&[0.3, f32::NAN, 0.7], 0.5).unwrap(), 0.3);
    assert!(threshold_for_rate(&scores, 1.5).is_err());
    assert!(threshold_for_rate(&scores, f64::NAN).is_err());
    assert!(threshold_for_rate(&[f32::NAN], 0.1).is_err());
    assert!(threshold_for_rate(&[], 0.1).is_err());
}

#[test]
fn serde_round_trip_and_validation() {
    let x = blob(300, 3, 11);
    let forest = fit(
        &x,
        &IsolationParams {
            n_trees: 10,
            ..IsolationParams::default()
        },
    );
    let json = serde_json::to_value(&forest).unwrap();
    let back: IsolationForest = serde_json::from_value(json.clone()).unwrap();
    let probe = blob(30, 3, 12);
    assert_eq!(forest.score(probe.view()), back.score(probe.view()));
    assert_eq!(back.validate(), Ok(()));
    assert_eq!(json["subsample"], 256);

    let refused = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut v = json.clone();
        change(&mut v);
        serde_json::from_value::<IsolationForest>(v)
            .expect_err("corrupted model refused")
            .to_string()
    };
    let e = refused(&|v| v["subsample"] = 1.into());
    assert!(e.contains("subsample size 1 is below 2"), "{e}");
    // A right child pointing outside the trees.
    let e = refused(&|v| v["trees"]["right"][0] = 1_000_000.into());
    assert!(
        e.contains("children outside") || e.contains("right child"),
        "{e}"
    );
    let e = refused(&|v| v["trees"]["feature"][0] = 99.into());
    assert!(e.contains("unknown feature"), "{e}");
    let e = refused(&|v| {
        v["trees"]["value"].as_array_mut().unwrap().pop();
    });
    assert!(e.contains("differ in length"), "{e}");
    let e = refused(&|v| v["trees"]["value"][1] = (-1.0).into());
    assert!(e.contains("path length -1"), "{e}");
    let e = refused(&|v| v["trees"]["value"][1] = 1e6.into());
    assert!(e.contains("outside [0, 100]"), "{e}");
    let e = refused(&|v| v["trees"]["roots"] = serde_json::json!([]));
    assert!(e.contains("no trees"), "{e}");
    // validate() on its own.
    let mut bad = back.clone();
    bad.subsample = 0;
    assert_eq!(bad.validate(), Err(IsolationModelError::Subsample(0)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_finite_row_scores_in_0_1_and_survives_a_round_trip(
        seed in 0u64..1000,
        rows in 2usize..60,
        row in proptest::collection::vec(-1e30f32..1e30, 4),
        scale in prop_oneof![Just(1e-6f32), Just(1.0f32), Just(1e6f32)],
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((rows, 4), |_| rng.random_range(-1.0f32..1.0) * scale);
        let forest = fit(&x, &IsolationParams { n_trees: 8, seed, ..IsolationParams::default() });
        let s = forest.score_row(&row);
        prop_assert!(s > 0.0 && s <= 1.0, "{}", s);
        let back: IsolationForest =
            serde_json::from_str(&serde_json::to_string(&forest).unwrap()).unwrap();
        prop_assert_eq!(back.score_row(&row), s);
        for r in x.rows() {
            let s = forest.score_row(r.as_slice().unwrap());
            prop_assert!(s > 0.0 && s <= 1.0);
        }
    }
}
