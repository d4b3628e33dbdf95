//! Scale-out by the broker on Mosquitto: two feature instances in one MQTT shared-subscription
//! group (`--share-group`) and an inference instance in another. The broker hands each reading
//! to exactly one member, so no reading is featurised twice and none is skipped, and every
//! machine's verdicts come out. (Mosquitto takes turns between members; keeping one machine
//! on one member needs EMQX's `hash_topic`, see deploy/README.md. Here the two instances split
//! each machine's readings, which shows up as gaps, not as duplicates.)

use dtwin_bus::QoS;
use dtwin_schema::{from_json, Features, Risk};
use dtwin_tests::harness::{self, Mosquitto};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MACHINES: usize = 8;
const STEPS: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_group_members_split_the_stream_without_duplicates() {
    let _alone = harness::exclusive().await;
    let Some(mosquitto) = harness::mosquitto_or_skip(Mosquitto::start()) else {
        return;
    };
    let url = mosquitto.url();
    let stop = CancellationToken::new();

    let mut watch = harness::watch_features_and_risk(&url, "share-watch").await;

    for _ in 0..2 {
        let mut c = dtwin_feature::FeatureConfig::new(url.clone());
        c.common.share_group = Some("feature".to_owned());
        c.telemetry_qos = QoS::AtLeastOnce;
        let service = dtwin_feature::FeatureService::build(c).await.unwrap();
        harness::start(service, &stop).await;
    }
    let mut c = dtwin_inference::InferenceConfig::new(url.clone());
    c.common.share_group = Some("inference".to_owned());
    let service = dtwin_inference::InferenceService::build(c).await.unwrap();
    harness::start(service, &stop).await;
    // A member may not also be a named instance.
    let mut both = dtwin_feature::FeatureConfig::new(url.clone());
    both.common.share_group = Some("feature".to_owned());
    both.common.instance = Some("a".to_owned());
    let err = dtwin_feature::run(both, stop.clone()).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("--share-group and --instance"),
        "{err:#}"
    );

    let mut twin = dtwin_twin_publisher::TwinConfig::new(url.clone());
    twin.machines = MACHINES;
    twin.qos = QoS::AtLeastOnce;
    twin.afap = true;
    twin.steps = Some(STEPS);
    dtwin_twin_publisher::run(twin, stop.clone()).await.unwrap();

    let mut features: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut scored: BTreeSet<String> = BTreeSet::new();
    let expected = MACHINES * STEPS as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while features.len() < expected || scored.len() < MACHINES {
        let Ok(Some(m)) = tokio::time::timeout_at(deadline, watch.inbox.recv()).await else {
            break;
        };
        if m.topic.ends_with("/features") {
            let f: Features = from_json(&m.payload).unwrap();
            *features
                .entry((f.machine_id.to_string(), f.seq))
                .or_default() += 1;
        } else {
            let r: Risk = from_json(&m.payload).unwrap();
            scored.insert(r.machine_id.to_string());
        }
    }
    // Anything late would be a duplicate: give it a moment.
    while let Ok(Some(m)) =
        tokio::time::timeout(Duration::from_millis(500), watch.inbox.recv()).await
    {
        if m.topic.ends_with("/features") {
            let f: Features = from_json(&m.payload).unwrap();
            *features
                .entry((f.machine_id.to_string(), f.seq))
                .or_default() += 1;
        }
    }
    stop.cancel();
    let twice: Vec<_> = features.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "readings featurised twice: {twice:?}");
    assert_eq!(features.len(), expected, "every reading featurised once");
    assert_eq!(scored.len(), MACHINES, "every machine scored: {scored:?}");
}
