//! Training time at scale, for comparison with scikit-learn on the same shapes.
//!
//! `cargo run --release -p dtwin-ml --example fit_scale -- ROWS TREES` (defaults 800000 10).
//! Data: ROWS x 14 uniform features with two interacting signal features, one threshold
//! feature and 1 % label noise (~5 % positive), as in `benches/forest.rs`. Trees use the
//! seed's settings (max depth 10, min samples split 10, leaf 5, balanced weights) on both
//! cores. scikit-learn on 800,000 x 14 (issue 4): one depth-10 tree 31 s, 10 trees 37 s with
//! n_jobs=2.

use dtwin_ml::{Forest, ForestParams};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map_or(800_000, |a| a.parse().expect("ROWS is a number"));
    let trees: usize = args
        .next()
        .map_or(10, |a| a.parse().expect("TREES is a number"));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = Array2::from_shape_fn((rows, 14), |_| rng.random_range(0.0f32..1.0));
    let y: Vec<bool> = (0..rows)
        .map(|i| x[[i, 0]] * x[[i, 1]] > 0.6 || x[[i, 2]] > 0.97 || rng.random_bool(0.01))
        .collect();
    let params = ForestParams {
        n_trees: trees,
        ..ForestParams::default()
    };
    let start = Instant::now();
    let forest = Forest::fit(x.view(), &y, &params, &|| {}).expect("both classes present");
    let fit = start.elapsed();
    let start = Instant::now();
    let p = forest.predict_proba(x.view());
    let predict = start.elapsed();
    let positives = p.iter().filter(|&&v| v >= 0.5).count();
    println!(
        "{rows} rows x 14 features, {trees} trees: fit {:.2} s, predict all rows {:.2} s ({:.2} M rows/s), {positives} predicted positive",
        fit.as_secs_f64(),
        predict.as_secs_f64(),
        rows as f64 / predict.as_secs_f64() / 1e6
    );
}
