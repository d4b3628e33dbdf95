//! Isolation Forest scoring speed: one vector of 42 features (C-MAPSS-sized) through 100 trees
//! grown on 256-row subsamples, the inference service's per-verdict cost (target < 20 µs).
//!
//! `cargo bench -p dtwin-ml --bench isolation`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dtwin_ml::{IsolationForest, IsolationParams};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FEATURES: usize = 42;

fn data(n: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, FEATURES), |_| rng.random_range(0.0f32..1.0))
}

fn bench(c: &mut Criterion) {
    let x = data(5_000, 1);
    let xt = data(2_000, 2);
    let params = IsolationParams::default();
    let forest = IsolationForest::fit(x.view(), &params, &|| {}).expect("valid data");

    let mut g = c.benchmark_group("isolation");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("fit_100_trees_5000x42", |b| {
        b.iter(|| IsolationForest::fit(black_box(x.view()), &params, &|| {}))
    });
    let row = xt.row(0).to_vec();
    g.throughput(Throughput::Elements(1));
    g.bench_function("score_one_row_42_features", |b| {
        b.iter(|| forest.score_row(black_box(&row)))
    });
    g.throughput(Throughput::Elements(2_000));
    g.bench_function("score_batch_2000_rows", |b| {
        b.iter(|| forest.score(black_box(xt.view())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
