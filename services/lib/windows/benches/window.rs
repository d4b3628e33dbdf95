//! The feature service's per-reading work: the machine's window update, the vector turned into
//! a `dtwin.features.v1` message, that message encoded as JSON (and decoded, as inference does).
//!
//! `cargo bench -p dtwin-windows --bench window -- --warm-up-time 1 --measurement-time 3`.
//! Inputs are the twin's readings (`dtwin-twin-sim`, default config: faults and sensor
//! glitches included), windows warm (the long window full) before anything is measured.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dtwin_schema::{from_json, to_json, Features, Telemetry};
use dtwin_twin_sim::{Machine, SimConfig};
use dtwin_windows::{feature_set, FeatureVector, MachineWindow, WindowConfig};
use std::hint::black_box;
use time::{Duration, OffsetDateTime};

/// Readings `1..=steps` of twin machine `index` of a fleet of `fleet`, one second apart.
fn twin_readings(index: usize, fleet: usize, steps: usize) -> Vec<Telemetry> {
    let epoch = OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("valid time");
    let mut m = Machine::new(index, fleet, &SimConfig::default());
    (0..steps)
        .map(|_| {
            let r = m.step();
            r.to_telemetry(m.id(), epoch + Duration::seconds(r.seq as i64))
        })
        .collect()
}

/// A warm window for `cfg` and the readings that follow its warm-up. The bench cycles over
/// them, restamping `ts` and `seq` so time keeps moving forward.
fn warm(cfg: &WindowConfig, index: usize, fleet: usize) -> (MachineWindow, Vec<Telemetry>) {
    let mut all = twin_readings(index, fleet, 2 * cfg.long + 512);
    let next = all.split_off(2 * cfg.long);
    let mut w = MachineWindow::new(cfg);
    for t in &all {
        w.update(t);
    }
    (w, next)
}

/// Restamps reading `k` (counting from the start of the measured stream) in place.
fn restamp(t: &mut Telemetry, base: OffsetDateTime, k: u64) {
    t.seq = k;
    t.ts = base + Duration::seconds(k as i64);
}

fn bench_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("window");
    g.throughput(Throughput::Elements(1));
    for (label, cfg) in [
        ("update_default", WindowConfig::default()),
        ("update_extended", WindowConfig::extended()),
    ] {
        let (mut w, mut next) = warm(&cfg, 0, 1);
        let base = next[0].ts;
        let mut k = 0u64;
        g.bench_function(label, |b| {
            b.iter(|| {
                k += 1;
                let t = &mut next[k as usize % 512];
                restamp(t, base, k);
                w.update(black_box(t))
            })
        });
    }
    // The same update round-robin over 10,000 machines' windows (~40 MB of state), as at
    // 10,000 machines x 1 Hz: each update finds its window out of the CPU caches.
    let cfg = WindowConfig::default();
    let fleet = 10_000;
    let proto = twin_readings(0, 1, 2 * cfg.long + 64);
    let mut windows: Vec<MachineWindow> = (0..fleet)
        .map(|_| {
            let mut w = MachineWindow::new(&cfg);
            for t in &proto[..2 * cfg.long] {
                w.update(t);
            }
            w
        })
        .collect();
    let mut next = proto[2 * cfg.long..].to_vec();
    let base = next[0].ts;
    let mut k = 0u64;
    g.bench_function("update_default_10000_machines", |b| {
        b.iter(|| {
            k += 1;
            let t = &mut next[k as usize % 64];
            restamp(t, base, k);
            windows[k as usize % fleet].update(black_box(t))
        })
    });
    g.finish();
}

fn bench_message(c: &mut Criterion) {
    let cfg = WindowConfig::default();
    let (names, hash) = feature_set(&cfg);
    let (mut w, next) = warm(&cfg, 3, 10);
    let now = OffsetDateTime::from_unix_timestamp(1_795_001_000).expect("valid time");
    let pairs: Vec<(FeatureVector, &Telemetry)> =
        next.iter().take(64).map(|t| (w.update(t), t)).collect();
    let msgs: Vec<Features> = pairs
        .iter()
        .map(|(fv, t)| fv.to_message(&names, &hash, t, now))
        .collect();
    let encoded: Vec<Vec<u8>> = msgs.iter().map(to_json).collect();
    let bytes = encoded.iter().map(Vec::len).sum::<usize>() / encoded.len();
    println!("features message ({} features): {bytes} bytes", names.len());
    for (m, e) in msgs.iter().zip(&encoded) {
        assert_eq!(&from_json::<Features>(e).expect("decodes"), m);
    }

    let mut g = c.benchmark_group("features");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("to_message", |b| {
        b.iter(|| {
            i = (i + 1) % pairs.len();
            let (fv, t) = &pairs[i];
            black_box(fv).to_message(&names, &hash, t, now)
        })
    });
    g.bench_function("encode", |b| {
        b.iter(|| {
            i = (i + 1) % msgs.len();
            to_json(black_box(&msgs[i]))
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            i = (i + 1) % encoded.len();
            from_json::<Features>(black_box(&encoded[i]))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_update, bench_message);
criterion_main!(benches);
