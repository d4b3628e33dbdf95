//! Bad input, fuzzed (issue 5, item 6). A seeded generator (`dtwin_tests::fuzz`) makes
//! hostile telemetry (random bytes, truncated JSON, huge numbers, deep nesting, long strings,
//! unicode and wildcard characters in ids, oversize payloads, wrong types, bad batches,
//! duplicates) interleaved with valid readings of 50 well-behaved machines.
//!
//! - 100,000 cases go through `Telemetry::decode`, `Telemetry::decode_many`,
//!   `Telemetry::decode_on` (v1 and v2; about a third of the valid readings are v2) and the feature
//!   service's pure `Processor`: nothing panics, every bad payload (or bad reading of a batch)
//!   gives exactly one dead letter with a reason, duplicates give nothing, and every valid
//!   reading comes out as a feature vector, in `seq` order per machine.
//! - 20,000 cases of the same generator go over MQTT to a running feature service on the
//!   embedded broker; the dead letters and feature vectors received on the broker are counted
//!   against the same expectations.
//!
//! Both print their counts (`-- --nocapture`).
//!
//! A test binary of its own (as drift.rs): beside the end-to-end binary's other tests, on two
//! busy cores, the embedded broker lost QoS 1 dead letters to the stalled recorder (10,028 of
//! 12,404 in one run), the broker's limit under a stall (issue 22), not this test's subject.

use dtwin_bus::QoS;
use dtwin_feature::{Outgoing, Processor};
use dtwin_schema::{from_json, DeadLetter, Features, Telemetry, Topics};
use dtwin_tests::fuzz::{Case, Expect, Generator, KINDS};
use dtwin_tests::harness::{self, Recorder};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const SEED: u64 = 0x5eed_f022;
const MACHINES: usize = 50;
const PURE_CASES: usize = 100_000;
const BROKER_CASES: usize = 20_000;

fn preview(c: &Case) -> String {
    let text = String::from_utf8_lossy(&c.payload);
    format!(
        "{} on {:?}: {:?}",
        c.kind,
        c.topic.chars().take(80).collect::<String>(),
        text.chars().take(160).collect::<String>()
    )
}

#[derive(Default)]
struct Tally {
    cases: BTreeMap<&'static str, usize>,
    reasons: BTreeMap<String, usize>,
    features: usize,
    dead: usize,
    duplicates: usize,
    valid_readings: usize,
    decode_errors: usize,
    bytes: usize,
}

impl Tally {
    fn print(&self, title: &str, elapsed: Duration) {
        let total: usize = self.cases.values().sum();
        println!(
            "{title}: {total} payloads ({:.1} MB) in {:.2} s: {} valid readings -> {} feature vectors, {} dead letters, {} duplicates dropped",
            self.bytes as f64 / 1e6,
            elapsed.as_secs_f64(),
            self.valid_readings,
            self.features,
            self.dead,
            self.duplicates
        );
        println!("  payloads by kind: {:?}", self.cases);
        println!("  dead letters by reason: {:?}", self.reasons);
        if self.decode_errors > 0 {
            println!("  Telemetry::decode rejected {}", self.decode_errors);
        }
    }
}

#[test]
fn pure_ingest_survives_100k_generated_payloads() {
    let started = Instant::now();
    let mut gen = Generator::new(SEED, MACHINES, false);
    let mut processor = Processor::new(Topics::default(), &Default::default());
    let contract = dtwin_tests::contract::Contract::load().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let any_machine = dtwin_schema::MachineId::parse("fuzz-000").unwrap();
    let mut next_seq: HashMap<String, u64> = HashMap::new();
    let mut tally = Tally::default();
    let mut out = Vec::new();
    for i in 0..PURE_CASES {
        let case = gen.case();
        *tally.cases.entry(case.kind).or_default() += 1;
        tally.bytes += case.payload.len();
        tally.valid_readings += case.expect.features;
        // The parsers on their own: never a panic.
        match Telemetry::decode(&case.payload) {
            // decode_on takes whatever v1's decode takes, as the same reading.
            Ok(t) => {
                let on = Telemetry::decode_on(&t.machine_id, now, &case.payload)
                    .map(|mut r| r.pop().map(|r| r.map(|r| r.telemetry)));
                assert_eq!(on, Ok(Some(Ok(t))), "{}", preview(&case));
            }
            Err(e) => {
                tally.decode_errors += 1;
                // A v1-shaped single reading: decode_on rejects it for the same reason.
                let text = String::from_utf8_lossy(&case.payload);
                if !text.contains("values") && case.payload.first() != Some(&b'[') {
                    let on_topic = case
                        .topic
                        .split('/')
                        .nth(3)
                        .and_then(|m| dtwin_schema::MachineId::parse(m).ok())
                        .unwrap_or_else(|| any_machine.clone());
                    let on = Telemetry::decode_on(&on_topic, now, &case.payload);
                    assert_eq!(
                        on.map(|_| ()).map_err(|r| r.reason),
                        Err(e.reason),
                        "{}",
                        preview(&case)
                    );
                }
            }
        }
        let _ = Telemetry::decode_many(&case.payload);
        let _ = Telemetry::decode_on(&any_machine, now, &case.payload);

        let before = processor.stats();
        out.clear();
        processor.handle(&case.topic, &case.payload, now, i as u64, &mut out);
        let mut got = Expect {
            features: 0,
            dead: 0,
            duplicates: (processor.stats().duplicates - before.duplicates) as usize,
        };
        for o in &out {
            match o {
                Outgoing::Features { topic, payload } => {
                    got.features += 1;
                    let f: Features = from_json(payload).unwrap();
                    assert!(topic.ends_with(&format!("/{}/features", f.machine_id)));
                    let expected = next_seq.entry(f.machine_id.to_string()).or_insert(1);
                    assert_eq!(f.seq, *expected, "{}: out of order", preview(&case));
                    *expected += 1;
                }
                Outgoing::DeadLetter {
                    topic,
                    reason,
                    payload,
                } => {
                    got.dead += 1;
                    let dl: DeadLetter = from_json(payload).unwrap();
                    assert_eq!(dl.reason, *reason);
                    assert_eq!(dl.service, "feature");
                    assert!(!dl.detail.is_empty(), "a reason without detail");
                    assert_eq!(dl.payload_bytes, case.payload.len());
                    *tally.reasons.entry(reason.as_str().to_owned()).or_default() += 1;
                    // The schema check is slow in a debug build: every 25th dead letter.
                    if tally.dead % 25 == 0 {
                        contract.check(topic, payload).unwrap();
                    }
                }
            }
        }
        assert_eq!(got, case.expect, "{}", preview(&case));
        tally.features += got.features;
        tally.dead += got.dead;
        tally.duplicates += got.duplicates;
    }
    let stats = processor.stats();
    assert_eq!(stats.processed as usize, tally.features);
    assert_eq!(stats.rejected as usize, tally.dead);
    assert_eq!(
        tally.features, tally.valid_readings,
        "every valid reading came through"
    );
    assert_eq!(stats.held, 0, "nothing left waiting");
    assert!(KINDS.iter().all(|k| tally.cases.contains_key(k)));
    assert!(tally.cases.values().sum::<usize>() >= 100_000);
    tally.print("pure processor", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_feature_service_dead_letters_generated_payloads() {
    let _alone = harness::exclusive().await;
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let mut config = dtwin_feature::FeatureConfig::new(broker.clone());
    config.telemetry_qos = QoS::AtLeastOnce;
    let feature = tokio::spawn(dtwin_feature::run(config, stop.clone()));
    // The service is up once a probe reading comes back as features.
    let probe = br#"{"schema":"dtwin.telemetry.v1","machine_id":"probe","ts":"2026-11-22T10:00:00Z","seq":1}"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while recorder
        .all()
        .iter()
        .all(|m| m.topic != "dtwin/v1/machines/probe/features")
    {
        assert!(tokio::time::Instant::now() < deadline, "feature service up");
        let topic = "dtwin/v1/machines/probe/telemetry";
        let _ = recorder
            .client()
            .publish(topic, QoS::AtLeastOnce, false, probe.to_vec())
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let started = Instant::now();
    let mut gen = Generator::new(SEED ^ 1, MACHINES, true);
    let mut tally = Tally::default();
    let mut expected = Expect {
        features: 0,
        dead: 0,
        duplicates: 0,
    };
    let dead_before = count(&recorder, |t| t == "dtwin/v1/deadletter/feature");
    for _ in 0..BROKER_CASES {
        let case = gen.case();
        *tally.cases.entry(case.kind).or_default() += 1;
        tally.bytes += case.payload.len();
        expected.features += case.expect.features;
        expected.dead += case.expect.dead;
        expected.duplicates += case.expect.duplicates;
        recorder
            .client()
            .publish(case.topic.clone(), QoS::AtLeastOnce, false, case.payload)
            .await
            .unwrap_or_else(|e| panic!("publish on {:?}: {e}", case.topic));
    }
    tally.valid_readings = expected.features;
    let fuzz_features =
        |t: &str| t.starts_with("dtwin/v1/machines/fuzz-") && t.ends_with("/features");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        tally.features = count(&recorder, fuzz_features);
        tally.dead = count(&recorder, |t| t == "dtwin/v1/deadletter/feature") - dead_before;
        if (tally.features >= expected.features && tally.dead >= expected.dead)
            || tokio::time::Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Anything extra would show up now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tally.features = count(&recorder, fuzz_features);
    tally.dead = count(&recorder, |t| t == "dtwin/v1/deadletter/feature") - dead_before;
    for m in recorder.all() {
        if m.topic == "dtwin/v1/deadletter/feature" {
            let dl: DeadLetter = from_json(&m.payload).unwrap();
            *tally
                .reasons
                .entry(dl.reason.as_str().to_owned())
                .or_default() += 1;
        }
    }
    tally.duplicates = expected.duplicates;
    tally.print("feature service over MQTT", started.elapsed());
    assert_eq!(tally.dead, expected.dead, "one dead letter per bad payload");
    assert_eq!(tally.features, expected.features, "every valid reading");
    stop.cancel();
    feature.await.unwrap().unwrap();
}

fn count(recorder: &Recorder, pred: impl Fn(&str) -> bool) -> usize {
    recorder.all().iter().filter(|m| pred(&m.topic)).count()
}
