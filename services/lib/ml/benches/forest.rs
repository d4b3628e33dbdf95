//! Training and prediction speed on a synthetic AI4I-sized problem (8,000 rows × 10 features).
//!
//! `cargo bench -p dtwin-ml --bench forest`. scikit-learn reference (n_jobs=2, same shapes):
//! fit 100 trees 1.22 s, 2,000-row `predict_proba` 61 ms.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dtwin_ml::{Forest, ForestParams};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Rows with two interacting signal features, one threshold feature and noise; ~5 % positive.
fn data(n: usize, seed: u64) -> (Array2<f32>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((n, 10), |_| rng.random_range(0.0f32..1.0));
    let y = (0..n)
        .map(|i| x[[i, 0]] * x[[i, 1]] > 0.6 || x[[i, 2]] > 0.97 || rng.random_bool(0.01))
        .collect();
    (x, y)
}

fn bench(c: &mut Criterion) {
    let (x, y) = data(8_000, 1);
    let (xt, _) = data(2_000, 2);
    let params = ForestParams::default();
    let forest = Forest::fit(x.view(), &y, &params, &|| {}).expect("bench data has both classes");

    let mut g = c.benchmark_group("forest");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.bench_function("fit_100_trees_8000x10", |b| {
        b.iter(|| Forest::fit(black_box(x.view()), &y, &params, &|| {}))
    });
    g.finish();

    let mut g = c.benchmark_group("predict");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let row = xt.row(0).to_vec();
    g.bench_function("one_row", |b| {
        b.iter(|| forest.predict_proba_row(black_box(&row)))
    });
    g.throughput(Throughput::Elements(2_000));
    g.bench_function("batch_2000_rows", |b| {
        b.iter(|| forest.predict_proba(black_box(xt.view())))
    });
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("1-thread pool");
    g.bench_function("batch_2000_rows_1_thread", |b| {
        b.iter(|| one_thread.install(|| forest.predict_proba(black_box(xt.view()))))
    });
    g.finish();

    // What the inference service does per verdict: probability plus per-feature contributions,
    // row by row (two walks per tree) or as a micro-batch (one tree-major walk for all rows).
    let mut g = c.benchmark_group("explain");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let rows: Vec<f32> = xt.rows().into_iter().take(64).flatten().copied().collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function("row_by_row_1", |b| {
        b.iter(|| {
            let row = black_box(&rows[..10]);
            (forest.predict_proba_row(row), forest.contributions(row))
        })
    });
    g.bench_function("explain_rows_1", |b| {
        b.iter(|| forest.explain_rows(black_box(&rows[..10]), 10))
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("row_by_row_64", |b| {
        b.iter(|| {
            black_box(&rows)
                .chunks(10)
                .map(|row| (forest.predict_proba_row(row), forest.contributions(row)))
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("explain_rows_64", |b| {
        b.iter(|| forest.explain_rows(black_box(&rows), 10))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
