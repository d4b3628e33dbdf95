//! Machine profiles end to end (issue 17, items 2 and 4): a feature service given a pump
//! profile (a file, read with `load_profiles`) and the map `pump-*=pump`, and an inference
//! service with only the shipped milling model, on the embedded broker. v2 readings of
//! `pump-01` that name no profile come out as feature vectors with the pump's feature names
//! and hash, and as rules-only verdicts saying there is no pump model yet; a reading naming an
//! unknown profile is dead-lettered `unknown_profile`, one with a value outside the pump's
//! range `out_of_range`. Then a pump model deployed retained on `dtwin/v1/models/pump` scores
//! the next vectors (its id in the verdicts). Every message seen validates against the
//! contract.

use dtwin_bus::QoS;
use dtwin_ml::{Forest, ForestParams, ModelArtifact, TrainingMeta};
use dtwin_schema::{from_json, DeadLetter, Features, RejectReason, Risk};
use dtwin_tests::harness::{self, Recorder};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "dtwin/v1/machines/pump-01/telemetry";

const PUMP: &str = r#"
id = "pump"
label = "Centrifugal pump"

[[sensor]]
name = "volt"
unit = "V"
range = [100.0, 300.0]

[[sensor]]
name = "rotate"
key = "rpm"
unit = "rpm"
range = [0.0, 3000.0]

[[derived]]
name = "volt_per_krpm"
expr = "volt / rotate * 1000"

[windows]
short = 3
long = 6
"#;

/// A tiny forest over the pump's features: risk when the voltage is high.
fn pump_model(names: &[String]) -> Vec<u8> {
    let rows = 40;
    let mut data = Vec::with_capacity(rows * names.len());
    let mut y = Vec::with_capacity(rows);
    for i in 0..rows {
        let volt = 110.0 + 4.5 * i as f32;
        data.extend(std::iter::repeat_n(volt, names.len()));
        y.push(volt > 200.0);
    }
    let x = ndarray::ArrayView2::from_shape((rows, names.len()), &data).unwrap();
    let params = ForestParams {
        n_trees: 5,
        min_samples_split: 2,
        min_samples_leaf: 1,
        ..ForestParams::default()
    };
    let forest = Forest::fit(x, &y, &params, &|| {}).unwrap();
    let meta = TrainingMeta {
        rows,
        positives: y.iter().filter(|&&p| p).count(),
        params,
        source: "e2e synthetic".into(),
        seconds: 0.0,
    };
    ModelArtifact::new(
        "pump-e2e",
        names.to_vec(),
        0.5,
        "failure within 10",
        meta,
        forest,
    )
    .to_json()
}

async fn publish(recorder: &Recorder, topic: &str, payload: &str, retain: bool) {
    recorder
        .client()
        .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
        .await
        .unwrap();
}

fn risks(recorder: &Recorder) -> Vec<Risk> {
    recorder
        .all()
        .iter()
        .filter(|m| m.topic == "dtwin/v1/machines/pump-01/risk")
        .map(|m| from_json(&m.payload).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pump_profile_runs_end_to_end_with_its_own_model() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pump.toml");
    std::fs::write(&file, PUMP).unwrap();
    let profiles = dtwin_feature::load_profiles(&[&file]).unwrap();
    let (names, hash) = dtwin_windows::profile_feature_set(&profiles[0]);

    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let mut feature = dtwin_feature::FeatureConfig::new(broker.clone());
    feature.profiles.extend(profiles);
    feature.profile_map = vec![dtwin_feature::parse_profile_map("pump-*=pump").unwrap()];
    let services = harness::start_scoring(feature, &stop).await;

    // No profile in the payload: pump-01 is a pump by the map.
    for (volt, rpm) in [(120.0, 1500), (121.5, 1490), (119.0, 1510), (120.5, 1500)] {
        publish(
            &recorder,
            TOPIC,
            &format!(r#"{{"values":{{"volt":{volt},"rpm":{rpm},"humidity_pct":40}}}}"#),
            false,
        )
        .await;
    }
    publish(
        &recorder,
        TOPIC,
        r#"{"profile":"nope","values":{"volt":120}}"#,
        false,
    )
    .await;
    publish(
        &recorder,
        TOPIC,
        r#"{"values":{"volt":999,"rpm":1500}}"#,
        false,
    )
    .await;

    let fourth = recorder
        .wait_for(Duration::from_secs(20), |m| {
            m.topic == "dtwin/v1/machines/pump-01/risk"
                && from_json::<Risk>(&m.payload).is_ok_and(|r| r.seq == 4)
        })
        .await;
    assert!(fourth.is_some(), "four verdicts: {:?}", risks(&recorder));
    let features: Vec<Features> = recorder
        .all()
        .iter()
        .filter(|m| m.topic == "dtwin/v1/machines/pump-01/features")
        .map(|m| from_json(&m.payload).unwrap())
        .collect();
    assert_eq!(features.len(), 4, "the two bad readings make no vector");
    for f in &features {
        assert_eq!(f.profile.as_deref(), Some("pump"));
        assert_eq!(f.feature_set, hash);
        assert_eq!(
            f.values.keys().cloned().collect::<Vec<_>>(),
            {
                let mut n = names.clone();
                n.sort();
                n
            },
            "the pump's feature names"
        );
    }
    assert_eq!(features[0].latest["volt"], 120.0);
    assert_eq!(features[0].latest["rotate"], 1500.0);
    let derived = features[0].values["volt_per_krpm"].unwrap();
    assert!((derived - 80.0).abs() < 1e-9, "{derived}");
    for r in risks(&recorder) {
        assert_eq!(r.profile.as_deref(), Some("pump"));
        assert_eq!((r.model.id.as_str(), r.probability), ("none", 0.0));
        let no_model = r.actions.iter().find(|a| a.code == "NO_MODEL").unwrap();
        assert!(
            no_model
                .text
                .contains("no model for profile pump yet: rules only"),
            "{}",
            no_model.text
        );
    }

    let dead: Vec<DeadLetter> = recorder
        .all()
        .iter()
        .filter(|m| m.topic == "dtwin/v1/deadletter/feature")
        .map(|m| from_json(&m.payload).unwrap())
        .collect();
    let reasons: Vec<RejectReason> = dead.iter().map(|d| d.reason).collect();
    assert_eq!(
        reasons,
        [RejectReason::UnknownProfile, RejectReason::OutOfRange]
    );
    assert!(dead[0].detail.contains("\"nope\""), "{}", dead[0].detail);
    assert!(
        dead[1].detail.contains("values.volt = 999"),
        "{}",
        dead[1].detail
    );

    // A pump model, deployed retained: the next verdicts use it.
    let model = pump_model(&names);
    recorder
        .client()
        .publish("dtwin/v1/models/pump", QoS::AtLeastOnce, true, model)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let scored = loop {
        publish(
            &recorder,
            TOPIC,
            r#"{"values":{"volt":290,"rpm":1500}}"#,
            false,
        )
        .await;
        let found = recorder
            .wait_for(Duration::from_millis(300), |m| {
                m.topic == "dtwin/v1/machines/pump-01/risk"
                    && from_json::<Risk>(&m.payload).is_ok_and(|r| r.model.id == "pump-e2e")
            })
            .await;
        if let Some(m) = found {
            break from_json::<Risk>(&m.payload).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a verdict of the pump model"
        );
    };
    assert_eq!(scored.profile.as_deref(), Some("pump"));
    assert!(scored.actions.iter().all(|a| a.code != "NO_MODEL"));

    recorder.assert_contract();
    stop.cancel();
    for s in services {
        s.await.unwrap().unwrap();
    }
}
