//! How fast the twin simulates: one machine step, and a step turned into telemetry JSON.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dtwin_twin_sim::{Machine, SimConfig};
use time::OffsetDateTime;

fn bench(c: &mut Criterion) {
    let cfg = SimConfig::default();
    let mut m = Machine::new(0, 1, &cfg);
    c.bench_function("machine_step", |b| b.iter(|| black_box(m.step())));
    let mut m = Machine::new(1, 2, &cfg);
    c.bench_function("step_to_telemetry_json", |b| {
        b.iter(|| {
            let r = m.step();
            black_box(r.to_telemetry(m.id(), OffsetDateTime::UNIX_EPOCH).encode())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
