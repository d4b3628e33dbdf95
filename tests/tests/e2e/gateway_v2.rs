//! A real gateway's reading end to end (issue 17, item 3): a `dtwin.telemetry.v2` reading
//! without `schema`, `seq` or `ts`, published on the embedded broker, reaches a running feature
//! service and comes out as a feature vector of the topic's machine, in order (ordered by the
//! arrival time, with the service's own sequence); a reading naming another machine than its
//! topic is dead-lettered. Every other message seen validates against the contract.

use dtwin_bus::QoS;
use dtwin_schema::{from_json, DeadLetter, Features, RejectReason};
use dtwin_tests::contract::Contract;
use dtwin_tests::harness::{self, Recorder};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "dtwin/v1/machines/pump-07/telemetry";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minimal_v2_reading_becomes_a_feature_vector() {
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let feature = harness::start(
        dtwin_feature::FeatureService::build(dtwin_feature::FeatureConfig::new(broker.clone()))
            .await
            .unwrap(),
        &stop,
    )
    .await;

    let readings = [
        r#"{"values":{"temperature_c":36.5,"vibration_mm_s":2.1}}"#,
        r#"{"values":{"temperature_c":36.7,"vibration_mm_s":2.2,"humidity_pct":41}}"#,
        r#"{"machine_id":"pump-08","values":{"temperature_c":36.9}}"#,
        r#"{"values":{"temperature_c":36.8,"vibration_mm_s":2.3}}"#,
    ];
    for r in readings {
        recorder
            .client()
            .publish(TOPIC, QoS::AtLeastOnce, false, r.as_bytes().to_vec())
            .await
            .unwrap();
    }
    let third = recorder
        .wait_for(Duration::from_secs(20), |m| {
            m.topic.ends_with("/features")
                && from_json::<Features>(&m.payload).is_ok_and(|f| f.seq == 3)
        })
        .await;
    assert!(
        third.is_some(),
        "three feature vectors: {:?}",
        recorder.all().len()
    );
    let dead = recorder
        .wait_for(Duration::from_secs(5), |m| m.topic.contains("/deadletter/"))
        .await
        .expect("the mismatched reading is dead-lettered");
    let dl: DeadLetter = from_json(&dead.payload).unwrap();
    assert_eq!(dl.reason, RejectReason::TopicMismatch);
    assert!(dl.detail.contains("pump-08"), "{}", dl.detail);

    let contract = Contract::load().unwrap();
    let mut features = Vec::new();
    for m in recorder.all() {
        let checked = contract.check(&m.topic, &m.payload);
        if m.payload == readings[2].as_bytes() {
            assert!(checked.is_err(), "the contract refuses the mismatch too");
        } else {
            checked.unwrap_or_else(|e| panic!("{}: {e}", m.topic));
        }
        if m.topic.ends_with("/features") {
            features.push(from_json::<Features>(&m.payload).unwrap());
        }
    }
    let got: Vec<(String, u64, Option<f64>)> = features
        .iter()
        .map(|f| {
            (
                f.machine_id.to_string(),
                f.seq,
                f.latest.get("temperature_c").copied(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("pump-07".to_owned(), 1, Some(36.5)),
            ("pump-07".to_owned(), 2, Some(36.7)),
            ("pump-07".to_owned(), 3, Some(36.8)),
        ]
    );
    stop.cancel();
    feature.await.unwrap().unwrap();
}
