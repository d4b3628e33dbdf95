//! The inference service's per-vector work: one features message scored (forest probability,
//! expert rules, top contributions) into a risk verdict, and the verdict encoded as JSON.
//!
//! `cargo bench -p dtwin-inference --bench score -- --warm-up-time 1 --measurement-time 3`.
//! Inputs: 64 twin machines (`dtwin-twin-sim`, default config: faults and glitches included)
//! run through warm default windows; the shipped model and the default rules.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dtwin_inference::{RuleSet, Scorer, SHIPPED_MODEL};
use dtwin_ml::ModelArtifact;
use dtwin_schema::{to_json, Features, Risk};
use dtwin_twin_sim::{Machine, SimConfig};
use dtwin_windows::{feature_set, MachineWindow, WindowConfig};
use std::hint::black_box;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

const FLEET: usize = 64;
/// Readings per machine before the measured vectors: the long window (60) full, and two
/// plant hours of wear and fault onsets behind each machine.
const STEPS: usize = 150;

fn scorer() -> Scorer {
    let model = ModelArtifact::from_json(SHIPPED_MODEL).expect("the shipped model loads");
    let rules = RuleSet::default_for(&model.feature_names).expect("the default rules fit");
    Scorer::new(Arc::new(model), Arc::new(rules))
}

/// The last features message of each of `FLEET` twin machines after `STEPS` readings.
fn messages() -> Vec<Features> {
    let cfg = WindowConfig::default();
    let (names, hash) = feature_set(&cfg);
    let sim = SimConfig::default();
    let epoch = OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("valid time");
    (0..FLEET)
        .map(|i| {
            let mut m = Machine::new(i, FLEET, &sim);
            let mut w = MachineWindow::new(&cfg);
            let mut last = None;
            for _ in 0..STEPS {
                let r = m.step();
                let t = r.to_telemetry(m.id(), epoch + Duration::seconds(r.seq as i64));
                let fv = w.update(&t);
                last = Some(fv.to_message(&names, &hash, &t, t.ts));
            }
            last.expect("STEPS > 0")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let scorer = scorer();
    let msgs = messages();
    let now = OffsetDateTime::from_unix_timestamp(1_795_001_000).expect("valid time");
    let risks: Vec<Risk> = msgs
        .iter()
        .map(|f| scorer.score(f, now).expect("same feature set as the model"))
        .collect();
    let at_risk = risks.iter().filter(|r| r.probability >= 0.5).count();
    let actions: usize = risks.iter().map(|r| r.actions.len()).sum();
    let bytes = risks.iter().map(|r| to_json(r).len()).sum::<usize>() / risks.len();
    println!(
        "{FLEET} verdicts: {at_risk} with p >= 0.5, {actions} actions, risk message {bytes} bytes"
    );

    let mut g = c.benchmark_group("inference");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("score_one", |b| {
        b.iter(|| {
            i = (i + 1) % msgs.len();
            scorer.score(black_box(&msgs[i]), now)
        })
    });
    g.throughput(Throughput::Elements(FLEET as u64));
    g.bench_function("score_batch_64", |b| {
        b.iter(|| scorer.score_batch(black_box(&msgs), now))
    });
    g.finish();

    let mut g = c.benchmark_group("risk");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| {
        b.iter(|| {
            i = (i + 1) % risks.len();
            to_json(black_box(&risks[i]))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
