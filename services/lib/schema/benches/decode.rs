//! Telemetry decode, the first thing the feature service does with every payload: v1 through
//! `Telemetry::decode` (v1 callers) and through `Telemetry::decode_on` (the feature service,
//! v1 or v2), and the same readings as v2 (`Telemetry::encode_v2`: values map, every field).
//!
//! `cargo bench -p dtwin-schema --bench decode -- --warm-up-time 1 --measurement-time 3`.
//! Inputs are hand-built readings shaped like the twin's (every sensor, values rounded to two
//! decimals, product type and ground truth; ~330 bytes), varied so no two payloads are equal.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dtwin_schema::{MachineId, ProductType, Telemetry};
use std::hint::black_box;
use time::OffsetDateTime;

/// A small deterministic generator (no rand dependency for one bench).
struct Lcg(u64);

impl Lcg {
    /// Uniform in `lo..hi`, rounded to two decimals like the twin's readings.
    fn next(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let u = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        ((lo + u * (hi - lo)) * 100.0).round() / 100.0
    }
}

/// `n` realistic readings of machine `machine-{i}` with seq `1..=n`, one second apart.
fn readings(n: usize) -> Vec<Telemetry> {
    let mut g = Lcg(42);
    let epoch = OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("valid time");
    (0..n)
        .map(|i| {
            let id = MachineId::parse(&format!("machine-{:05}", i % 1000)).expect("valid id");
            let ts = epoch + time::Duration::milliseconds(1000 * i as i64 + 137);
            let mut t = Telemetry::new(id, ts, i as u64 + 1);
            let torque = g.next(20.0, 60.0);
            let rpm = g.next(1200.0, 2000.0);
            t.temperature_c = Some(g.next(35.0, 39.0));
            t.ambient_temperature_c = Some(g.next(25.0, 28.0));
            t.vibration_mm_s = Some(g.next(1.0, 4.5));
            t.pressure_bar = Some(g.next(5.5, 6.5));
            t.spindle_rpm = Some(rpm);
            t.torque_nm = Some(torque);
            t.power_w =
                Some(((torque * rpm * std::f64::consts::TAU / 60.0) * 100.0).round() / 100.0);
            t.tool_wear_min = Some(g.next(0.0, 240.0).round());
            t.operating_hours = Some(g.next(0.0, 5000.0));
            t.product_type = Some([ProductType::L, ProductType::M, ProductType::H][i % 3]);
            t.quality_ok = Some(i % 50 != 0);
            t.failure = Some(false);
            t
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let many = readings(256);
    let payloads: Vec<Vec<u8>> = many.iter().map(Telemetry::encode).collect();
    let bytes = payloads.iter().map(Vec::len).sum::<usize>() / payloads.len();
    println!("telemetry payload: {bytes} bytes on average");
    for (t, p) in many.iter().zip(&payloads) {
        assert_eq!(&Telemetry::decode(p).expect("bench input decodes"), t);
    }

    let mut g = c.benchmark_group("telemetry");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("decode", |b| {
        b.iter(|| {
            i = (i + 1) % payloads.len();
            Telemetry::decode(black_box(&payloads[i]))
        })
    });
    g.bench_function("decode_many_single", |b| {
        b.iter(|| {
            i = (i + 1) % payloads.len();
            Telemetry::decode_many(black_box(&payloads[i]))
        })
    });
    // A gateway's backlog: 32 readings of one machine in one JSON array.
    let batch: Vec<u8> = {
        let parts: Vec<&[u8]> = payloads[..32].iter().map(Vec::as_slice).collect();
        let mut v = b"[".to_vec();
        v.extend(parts.join(&b","[..]));
        v.push(b']');
        v
    };
    assert!(Telemetry::decode_many(&batch)
        .expect("batch decodes")
        .iter()
        .all(Result::is_ok));
    g.throughput(Throughput::Elements(32));
    g.bench_function("decode_many_batch_32", |b| {
        b.iter(|| Telemetry::decode_many(black_box(&batch)))
    });
    // The feature service's entry point: topic machine and arrival time, v1 or v2.
    let arrival = OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("valid time");
    let v2: Vec<Vec<u8>> = many.iter().map(Telemetry::encode_v2).collect();
    let v2_bytes = v2.iter().map(Vec::len).sum::<usize>() / v2.len();
    println!("telemetry v2 payload: {v2_bytes} bytes on average");
    for (t, p) in many.iter().zip(&v2) {
        let r = Telemetry::decode_on(&t.machine_id, arrival, p).expect("v2 bench input decodes");
        assert_eq!(&r[0].as_ref().expect("v2 reading accepted").telemetry, t);
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_on_v1", |b| {
        b.iter(|| {
            i = (i + 1) % payloads.len();
            Telemetry::decode_on(&many[i].machine_id, arrival, black_box(&payloads[i]))
        })
    });
    g.bench_function("decode_on_v2", |b| {
        b.iter(|| {
            i = (i + 1) % v2.len();
            Telemetry::decode_on(&many[i].machine_id, arrival, black_box(&v2[i]))
        })
    });
    // A gateway's v2 backlog: 32 readings of one machine.
    let one_machine = many[0].machine_id.clone();
    let v2_batch: Vec<u8> = {
        let parts: Vec<Vec<u8>> = many[..32]
            .iter()
            .map(|t| {
                let mut t = t.clone();
                t.machine_id = one_machine.clone();
                t.encode_v2()
            })
            .collect();
        let mut v = b"[".to_vec();
        v.extend(parts.join(&b","[..]));
        v.push(b']');
        v
    };
    assert!(Telemetry::decode_on(&one_machine, arrival, &v2_batch)
        .expect("v2 batch decodes")
        .iter()
        .all(Result::is_ok));
    g.throughput(Throughput::Elements(32));
    g.bench_function("decode_on_v2_batch_32", |b| {
        b.iter(|| Telemetry::decode_on(&one_machine, arrival, black_box(&v2_batch)))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| {
        b.iter(|| {
            i = (i + 1) % many.len();
            black_box(&many[i]).encode()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
