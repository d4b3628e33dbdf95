//! One implementation, not two (issue 4, item 2): the same telemetry through the offline path
//! (`dtwin train`'s data set, `dtwin_pipeline::dataset`) and through a running feature service
//! on the embedded broker gives bit-identical feature vectors, for the default feature set
//! (the shipped model's) and the extended one (time windows, EWMA, flags).

use dtwin_pipeline::dataset::from_telemetry;
use dtwin_pipeline::{LabelModes, LabelSpec};
use dtwin_schema::{from_json, to_json, Features, Telemetry, Topics};
use dtwin_tests::harness::{self, Recorder};
use dtwin_twin_sim::{Fleet, SimConfig};
use dtwin_windows::{row_from_message, FeatureSetKind, WindowConfig};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MACHINES: usize = 4;
const STEPS: usize = 150;

/// `MACHINES` simulated machines, `STEPS` readings each a plant minute apart, ending now (the
/// feature service takes readings of any age, in order per machine).
fn telemetry() -> Vec<Telemetry> {
    let sim = SimConfig {
        seed: 11,
        ..SimConfig::default()
    };
    let fleet = Fleet::new(MACHINES, &sim);
    let start = time::OffsetDateTime::now_utc() - time::Duration::minutes(STEPS as i64 + 1);
    let mut out = Vec::new();
    for mut m in fleet.machines {
        for s in 0..STEPS {
            let id = m.id().clone();
            let mut t = m
                .step()
                .to_telemetry(&id, start + time::Duration::minutes(s as i64));
            t.seq = s as u64 + 1;
            out.push(t);
        }
    }
    out
}

async fn identical_vectors(kind: FeatureSetKind) {
    let readings = telemetry();
    let window = WindowConfig {
        feature_set: kind,
        ..WindowConfig::default()
    };

    // Offline: what `dtwin train DATA` builds from a telemetry CSV. No label horizon, so every
    // warm reading is a row.
    let offline = from_telemetry(
        &readings,
        LabelSpec {
            horizon: 0,
            include_nok: false,
            modes: LabelModes::Degradation,
            window: window.clone(),
        },
    );
    assert!(offline.x.nrows() > MACHINES * (STEPS - 70), "warm rows");

    // Streaming: the same readings, in order, to a running feature service.
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/machines/+/features").await;
    let mut config = dtwin_feature::FeatureConfig::new(broker.clone());
    config.window = window;
    config.telemetry_qos = dtwin_bus::QoS::AtLeastOnce;
    let service = tokio::spawn(dtwin_feature::run(config, stop.clone()));
    // Wait for the service's subscription: a probe reading of a machine not in the test.
    let topics = Topics::default();
    let mut probe = readings[0].clone();
    probe.machine_id = dtwin_schema::MachineId::parse("probe").unwrap();
    let got_probe = async {
        for _ in 0..100 {
            recorder
                .client()
                .publish(
                    topics.telemetry(&probe.machine_id),
                    dtwin_bus::QoS::AtLeastOnce,
                    false,
                    to_json(&probe),
                )
                .await
                .unwrap();
            probe.seq += 1;
            if recorder
                .wait_for(Duration::from_millis(100), |m| m.topic.contains("/probe/"))
                .await
                .is_some()
            {
                return true;
            }
        }
        false
    };
    assert!(got_probe.await, "the feature service answers");
    for t in &readings {
        recorder
            .client()
            .publish(
                topics.telemetry(&t.machine_id),
                dtwin_bus::QoS::AtLeastOnce,
                false,
                to_json(t),
            )
            .await
            .unwrap();
    }
    let streamed = loop_until_complete(&recorder).await;
    stop.cancel();
    service.await.unwrap().unwrap();

    // Row by row: the streamed vector of the same machine and reading, in the offline
    // column order, equals the offline row bit for bit (NaN = missing on both sides).
    let mut compared = 0;
    for (r, row) in offline.x.outer_iter().enumerate() {
        let id = &offline.machine_ids[offline.machine[r] as usize];
        let step = offline.step[r] as usize;
        let f = &streamed[id][step];
        assert_eq!(f.seq, step as u64 + 1);
        assert!(!f.cold, "{id} step {step}: warm offline, cold streamed");
        assert_eq!(f.feature_set, offline.feature_set);
        let live = row_from_message(f, &offline.names);
        for (j, (a, b)) in row.iter().zip(&live).enumerate() {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{id} step {step} {}: offline {a} streamed {b}",
                offline.names[j]
            );
        }
        compared += 1;
    }
    // And the streamed cold vectors are exactly the readings the offline path left out.
    let cold: usize = streamed
        .values()
        .map(|v| v.iter().filter(|f| f.cold).count())
        .sum();
    assert_eq!(compared + cold, MACHINES * STEPS);
    println!(
        "{kind:?}: {compared} warm vectors x {} features identical, {cold} cold",
        offline.names.len()
    );
}

/// The recorded vectors per machine in arrival order, once every machine has all of them.
async fn loop_until_complete(recorder: &Recorder) -> BTreeMap<String, Vec<Features>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut by_machine: BTreeMap<String, Vec<Features>> = BTreeMap::new();
        for m in recorder.all() {
            if m.topic.contains("/probe/") {
                continue;
            }
            let f: Features = from_json(&m.payload).unwrap();
            by_machine
                .entry(f.machine_id.to_string())
                .or_default()
                .push(f);
        }
        if by_machine.len() == MACHINES && by_machine.values().all(|v| v.len() >= STEPS) {
            for (id, v) in &by_machine {
                assert_eq!(v.len(), STEPS, "{id}: one vector per reading");
            }
            return by_machine;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "vectors missing: {:?}",
            by_machine
                .iter()
                .map(|(k, v)| (k, v.len()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_features_are_identical_offline_and_streaming() {
    identical_vectors(FeatureSetKind::Default).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_features_are_identical_offline_and_streaming() {
    identical_vectors(FeatureSetKind::Extended).await;
}
