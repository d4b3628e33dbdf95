//! Configurable windows end to end (issue 5, item 1): a model trained on the extended feature
//! set with non-default windows is served by a feature and an inference service configured
//! with the same windows, and every reading gets a verdict; an inference service with other
//! windows refuses the model at start, naming both feature sets.

use dtwin_ml::ForestParams;
use dtwin_pipeline::{LabelModes, TrainSpec, TwinDataSpec};
use dtwin_schema::{from_json, Risk};
use dtwin_tests::harness::{self, Recorder};
use dtwin_windows::{feature_set, FeatureSetKind, WindowConfig};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MACHINES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_model_on_custom_windows_is_served_end_to_end() {
    let window = WindowConfig {
        feature_set: FeatureSetKind::Extended,
        short: 5,
        long: 20,
        time_windows_s: vec![30],
        ..WindowConfig::default()
    };
    let (names, hash) = feature_set(&window);
    assert!(names.contains(&"vibration_mm_s_max_30s".to_owned()));
    let spec = TrainSpec {
        data: TwinDataSpec {
            machines: 12,
            steps: 400,
            modes: LabelModes::All,
            include_nok: true,
            window: window.clone(),
            ..TwinDataSpec::default()
        },
        params: ForestParams {
            n_trees: 8,
            max_depth: 6,
            ..ForestParams::default()
        },
        model_id: "extended-test".into(),
        version: "1".into(),
        target: None,
        source: None,
    };
    let (model, _) = dtwin_pipeline::train_twin_model(&spec, &|_| {}, &|| {}).unwrap();
    assert_eq!(model.feature_set_hash, hash);
    assert_eq!(model.feature_names, names);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extended.json");
    std::fs::write(&path, model.to_json()).unwrap();

    // Other windows: refused at start with both hashes in the message.
    let mut wrong = dtwin_inference::InferenceConfig::new(harness::embedded_broker());
    wrong.model = dtwin_inference::ModelSource::File(path.clone());
    let err = dtwin_inference::build_scorer(&wrong)
        .err()
        .expect("a model on other windows is refused")
        .to_string();
    let (_, default_hash) = feature_set(&WindowConfig::default());
    assert!(err.contains(&hash) && err.contains(&default_hash), "{err}");

    // The same windows everywhere: verdicts for every machine, from this model.
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let mut feature = dtwin_feature::FeatureConfig::new(broker.clone());
    feature.window = window.clone();
    let mut inference = dtwin_inference::InferenceConfig::new(broker.clone());
    inference.window = window;
    inference.model = dtwin_inference::ModelSource::File(path);
    let services = [
        harness::start(
            dtwin_feature::FeatureService::build(feature).await.unwrap(),
            &stop,
        )
        .await,
        harness::start(
            dtwin_inference::InferenceService::build(inference)
                .await
                .unwrap(),
            &stop,
        )
        .await,
    ];
    let mut twin = dtwin_twin_publisher::TwinConfig::new(broker.clone());
    twin.machines = MACHINES;
    twin.rate_hz = 20.0;
    let twin = tokio::spawn(dtwin_twin_publisher::run(twin, stop.clone()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let warm = loop {
        let mut warm: BTreeMap<String, usize> = BTreeMap::new();
        for m in recorder.all() {
            assert!(
                !m.topic.contains("/deadletter/"),
                "dead letter: {}",
                String::from_utf8_lossy(&m.payload)
            );
            if m.topic.ends_with("/risk") {
                let r: Risk = from_json(&m.payload).unwrap();
                assert_eq!(r.model.id, "extended-test");
                if !r.cold {
                    *warm.entry(r.machine_id.to_string()).or_default() += 1;
                }
            }
        }
        if warm.len() == MACHINES && warm.values().all(|&n| n >= 10) {
            break warm;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "too few warm verdicts: {warm:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("warm verdicts per machine: {warm:?}");
    stop.cancel();
    twin.await.unwrap().unwrap();
    for s in services {
        s.await.unwrap().unwrap();
    }
}
