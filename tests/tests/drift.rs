//! Drift end to end on the embedded broker: the twin, the feature service and the inference
//! service with the shipped model (which carries its training reference). A fleet whose
//! temperature sensors drift (`drift:temperature` on every machine) trips the retained drift
//! status on `dtwin/v1/drift/inference` for the temperature features; the same fleet without
//! the fault does not flag them. Every status published matches `drift.schema.json`.

use dtwin_bus::QoS;
use dtwin_schema::{from_json, DriftState, DriftStatus};
use dtwin_tests::harness::{self, Recorder};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MACHINES: usize = 20;
const STEPS: u64 = 300;
const WINDOW: usize = 2000;

/// Runs the fleet to the end and returns the last drift status published after it.
async fn run_fleet(faults: &[&str]) -> DriftStatus {
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let mut f = dtwin_feature::FeatureConfig::new(broker.clone());
    f.telemetry_qos = QoS::AtLeastOnce;
    let mut i = dtwin_inference::InferenceConfig::new(broker.clone());
    i.drift = dtwin_inference::DriftConfig {
        window: WINDOW,
        min_samples: WINDOW / 4,
        ..Default::default()
    };
    i.drift_interval = Duration::from_millis(300);
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
        .wait_for(Duration::from_secs(20), |m| {
            m.topic == "dtwin/v1/drift/inference"
        })
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
    for m in 1..=MACHINES {
        for fault in faults {
            twin.scenario
                .push(format!("machine-{m:03}:{fault}@0").parse().unwrap());
        }
    }
    dtwin_twin_publisher::run(twin, stop.clone()).await.unwrap();
    // The stream is over once no verdict has come for a while (a few readings may be
    // dead-lettered, e.g. a drifted sensor out of range, so the count is not exact).
    let total = MACHINES * STEPS as usize;
    let started = tokio::time::Instant::now();
    let mut last_count = 0;
    let mut still_since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let scored = recorder
            .all()
            .iter()
            .filter(|m| m.topic.ends_with("/risk"))
            .count();
        if scored != last_count {
            (last_count, still_since) = (scored, tokio::time::Instant::now());
        } else if still_since.elapsed() > Duration::from_millis(1500) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "stream never ended"
        );
    }
    let dead: Vec<String> = recorder
        .all()
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
        "{last_count} of {total} readings scored in {:.1} s; {} dead letters {:?}",
        started.elapsed().as_secs_f64() - 1.5,
        dead.len(),
        dead.iter().take(3).collect::<Vec<_>>()
    );
    assert!(last_count * 100 >= total * 95, "{last_count} of {total}");
    let contract = dtwin_tests::contract::Contract::load().unwrap();
    let statuses: Vec<_> = recorder
        .all()
        .into_iter()
        .filter(|m| m.topic == "dtwin/v1/drift/inference")
        .collect();
    for m in &statuses {
        contract
            .check(&m.topic, &m.payload)
            .unwrap_or_else(|e| panic!("drift status breaks its schema: {e}"));
    }
    let status = statuses.last().unwrap().clone();
    stop.cancel();
    feature.await.unwrap().unwrap();
    inference.await.unwrap().unwrap();
    let status: DriftStatus = from_json(&status.payload).unwrap();
    println!(
        "faults {faults:?}: state {:?}, window {}, drifted {:?}",
        status.state, status.window, status.drifted
    );
    for s in status.features.iter().chain(status.risk.iter()) {
        println!(
            "  {:32} ks {:.3} js {:.3} missing {:.3} drift {}",
            s.feature, s.ks, s.js, s.missing, s.drift
        );
    }
    status
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
async fn a_drifting_temperature_sensor_trips_the_drift_status() {
    let drifting = run_fleet(&["drift:temperature"]).await;
    assert_eq!(drifting.state, DriftState::Drift, "{drifting:?}");
    assert_eq!(drifting.window, WINDOW as u64);
    let temps = temperature_features(&drifting);
    assert!(
        temps.contains(&"temperature_c") && temps.contains(&"temp_diff_c"),
        "{drifting:?}"
    );
    let baseline = run_fleet(&[]).await;
    assert_eq!(baseline.window, WINDOW as u64);
    assert!(
        temperature_features(&baseline).is_empty(),
        "the healthy fleet's temperatures match the reference: {baseline:?}"
    );
}
