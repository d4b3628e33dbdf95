//! Drift end to end on the embedded broker: the twin, the feature service and the inference
//! service with the shipped model (which carries its training reference), 20 machines for 300
//! readings each, as fast as possible: 5 hours of plant time (60 plant seconds a reading, as
//! the model was trained), 150 s of message time.
//!
//! - A fleet that is merely starting up is not drift: without any injected fault, no drift
//!   status published at any time says `drift` (every one is checked, not only the last); the
//!   first ones say `warming_up`, until the window represents the fleet (warm vectors, enough
//!   machines, enough message time), and then `ok`.
//! - A fleet whose temperature sensors drift (`drift:temperature` on every machine) trips the
//!   retained status on `dtwin/v1/drift/inference` for the temperature features.
//!
//! Every status published matches `drift.schema.json`.

use dtwin_bus::QoS;
use dtwin_schema::{from_json, DriftState, DriftStatus};
use dtwin_tests::harness::{self, Recorder};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MACHINES: usize = 20;
const STEPS: u64 = 300;
const WINDOW: usize = 2000;
const DRIFT_TOPIC: &str = "dtwin/v1/drift/inference";

/// Every drift status published during the run, in order, the last one computed after the
/// whole stream was scored.
async fn run_fleet(faults: &[&str]) -> Vec<DriftStatus> {
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let mut f = dtwin_feature::FeatureConfig::new(broker.clone());
    f.telemetry_qos = QoS::AtLeastOnce;
    let mut i = dtwin_inference::InferenceConfig::new(broker.clone());
    // The service's defaults but for the window size: warm vectors only (60 readings), 10
    // machines (the fleet is 20), 60 s of message time.
    i.drift = dtwin_inference::DriftConfig {
        window: WINDOW,
        min_samples: WINDOW / 4,
        ..Default::default()
    };
    assert_eq!(i.drift.min_machines, 10);
    assert_eq!(i.drift.min_span_s, 60.0);
    i.drift_interval = Duration::from_millis(100);
    let feature = harness::start(
        dtwin_feature::FeatureService::build(f).await.unwrap(),
        &stop,
    )
    .await;
    let inference = harness::start(
        dtwin_inference::InferenceService::build(i).await.unwrap(),
        &stop,
    )
    .await;
    let first = recorder
        .wait_for(Duration::from_secs(20), |m| m.topic == DRIFT_TOPIC)
        .await
        .expect("a drift status at start");
    let first: DriftStatus = from_json(&first.payload).unwrap();
    assert_eq!(first.state, DriftState::WarmingUp, "{first:?}");
    assert_eq!(first.model.version, "2");

    let mut twin = dtwin_twin_publisher::TwinConfig::new(broker.clone());
    twin.machines = MACHINES;
    twin.afap = true;
    twin.steps = Some(STEPS);
    twin.qos = QoS::AtLeastOnce;
    let plant_s = twin.sim().plant_seconds_per_step * STEPS as f64;
    assert!(plant_s >= 3600.0, "at least an hour of plant time");
    for m in 1..=MACHINES {
        for fault in faults {
            twin.scenario
                .push(format!("machine-{m:03}:{fault}@0").parse().unwrap());
        }
    }
    let started = tokio::time::Instant::now();
    dtwin_twin_publisher::run(twin, stop.clone()).await.unwrap();
    // Every reading ends as a verdict or a dead letter (e.g. a drifted sensor out of range):
    // wait until all are accounted for (or, should a reading be lost, nothing more comes).
    let total = MACHINES * STEPS as usize;
    let accounted = |all: &[dtwin_bus::Message]| {
        all.iter()
            .filter(|m| {
                m.topic.ends_with("/risk")
                    || m.topic == "dtwin/v1/deadletter/feature"
                    || m.topic == "dtwin/v1/deadletter/inference"
            })
            .count()
    };
    let (mut last_count, mut still_since) = (0, tokio::time::Instant::now());
    let end = loop {
        let all = recorder.all();
        let n = accounted(&all);
        if n >= total {
            break all.len();
        }
        if n != last_count {
            (last_count, still_since) = (n, tokio::time::Instant::now());
        } else if still_since.elapsed() > Duration::from_secs(10) {
            break all.len();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "stream never ended: {n} of {total}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let all = recorder.all();
    let scored = all.iter().filter(|m| m.topic.ends_with("/risk")).count();
    let dead: Vec<String> = all
        .iter()
        .filter(|m| m.topic.starts_with("dtwin/v1/deadletter/"))
        .map(|m| {
            String::from_utf8_lossy(&m.payload)
                .chars()
                .take(300)
                .collect()
        })
        .collect();
    println!(
        "{scored} of {total} readings scored ({:.1} plant hours) in {:.1} s; {} dead letters {:?}",
        plant_s / 3600.0,
        started.elapsed().as_secs_f64(),
        dead.len(),
        dead.iter().take(3).collect::<Vec<_>>()
    );
    assert!(scored * 100 >= total * 95, "{scored} of {total}");
    // A status computed after the last verdict.
    let mut tail = None;
    for _ in 0..100 {
        tail = recorder
            .all()
            .into_iter()
            .skip(end)
            .find(|m| m.topic == DRIFT_TOPIC);
        if tail.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tail.is_some(), "a drift status after the stream");
    let contract = dtwin_tests::contract::Contract::load().unwrap();
    let statuses: Vec<DriftStatus> = recorder
        .all()
        .into_iter()
        .filter(|m| m.topic == DRIFT_TOPIC)
        .map(|m| {
            contract
                .check(&m.topic, &m.payload)
                .unwrap_or_else(|e| panic!("drift status breaks its schema: {e}"));
            from_json(&m.payload).unwrap()
        })
        .collect();
    stop.cancel();
    feature.await.unwrap().unwrap();
    inference.await.unwrap().unwrap();
    let states = statuses.iter().fold(Vec::new(), |mut v, s| {
        if v.last().map(|(st, _)| *st) != Some(s.state) {
            v.push((s.state, s.window));
        }
        v
    });
    let status = statuses.last().unwrap();
    println!(
        "faults {faults:?}: {} statuses, state changes (state, window) {states:?}; last: \
         state {:?}, window {}, drifted {:?}",
        statuses.len(),
        status.state,
        status.window,
        status.drifted
    );
    for s in status.features.iter().chain(status.risk.iter()) {
        println!(
            "  {:32} ks {:.3} js {:.3} missing {:.3} drift {}",
            s.feature, s.ks, s.js, s.missing, s.drift
        );
    }
    statuses
}

fn temperature_features(status: &DriftStatus) -> Vec<&str> {
    status
        .drifted
        .iter()
        .map(String::as_str)
        .filter(|f| f.starts_with("temperature_c") || *f == "temp_diff_c")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_fleet_is_not_drift_a_drifting_temperature_sensor_is() {
    // No injected fault: no drift at any time over five plant hours.
    let baseline = run_fleet(&[]).await;
    let drifted: Vec<&DriftStatus> = baseline
        .iter()
        .filter(|s| s.state == DriftState::Drift)
        .collect();
    assert!(
        drifted.is_empty(),
        "{} of {} statuses of a healthy fleet say drift, the first: {:?}",
        drifted.len(),
        baseline.len(),
        drifted.first()
    );
    assert_eq!(baseline[0].state, DriftState::WarmingUp);
    let last = baseline.last().unwrap();
    assert_eq!(last.state, DriftState::Ok, "a verdict was given: {last:?}");
    assert_eq!(last.window, WINDOW as u64);
    // Once a verdict is given, it stays one (the window only grows).
    let first_verdict = baseline
        .iter()
        .position(|s| s.state != DriftState::WarmingUp)
        .unwrap();
    assert!(
        baseline[first_verdict..]
            .iter()
            .all(|s| s.state == DriftState::Ok),
        "{baseline:?}"
    );
    // Injected drift is still found.
    let drifting = run_fleet(&["drift:temperature"]).await;
    let last = drifting.last().unwrap();
    assert_eq!(last.state, DriftState::Drift, "{last:?}");
    assert_eq!(last.window, WINDOW as u64);
    let temps = temperature_features(last);
    assert!(
        temps.contains(&"temperature_c") && temps.contains(&"temp_diff_c"),
        "{last:?}"
    );
}
