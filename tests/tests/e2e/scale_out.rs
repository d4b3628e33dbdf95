//! Scale-out on Mosquitto: two feature and two inference instances share the fleet. Every
//! machine's verdicts come out, each reading is handled by exactly one instance (no reading
//! is featurised or scored twice, none is skipped), and killing a feature instance moves its
//! machines to the survivor, whose first vector for each of them is flagged cold.

use dtwin_bus::{Message, QoS};
use dtwin_schema::{from_json, Features, Risk};
use dtwin_tests::harness::{self, Mosquitto};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MACHINES: usize = 12;

async fn collect(conn: &mut dtwin_bus::Connection, for_how_long: Duration) -> Vec<Message> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + for_how_long;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, conn.inbox.recv()).await {
        got.push(m);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_fleet_and_survive_a_kill() {
    let Some(mosquitto) = harness::mosquitto_or_skip(Mosquitto::start()) else {
        return;
    };
    let url = mosquitto.url();
    let stop = CancellationToken::new();

    let mut watch = harness::watch_features_and_risk(&url, "scale-watch").await;

    let feature = |name: &str| {
        let mut c = dtwin_feature::FeatureConfig::new(url.clone());
        c.common.instance = Some(name.to_owned());
        c.telemetry_qos = QoS::AtLeastOnce;
        dtwin_feature::FeatureService::build(c)
    };
    let killed = harness::start(feature("feature-a").await.unwrap(), &stop).await;
    let _b = harness::start(feature("feature-b").await.unwrap(), &stop).await;
    for name in ["inference-a", "inference-b"] {
        let mut c = dtwin_inference::InferenceConfig::new(url.clone());
        c.common.instance = Some(name.to_owned());
        let service = dtwin_inference::InferenceService::build(c).await.unwrap();
        harness::start(service, &stop).await;
    }
    // Every instance is subscribed; their announcements (retained) still take one broker hop
    // to reach the peers that subscribed before them. Nothing observable from outside says
    // that hop is done, so this one wait stays.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut twin = dtwin_twin_publisher::TwinConfig::new(url.clone());
    twin.machines = MACHINES;
    twin.rate_hz = 5.0;
    twin.qos = QoS::AtLeastOnce;
    tokio::spawn(dtwin_twin_publisher::run(twin, stop.clone()));

    // Phase 1: both instances up.
    let phase1 = collect(&mut watch, Duration::from_secs(4)).await;
    let mut features: HashMap<String, BTreeMap<u64, usize>> = HashMap::new();
    let mut verdicts: HashMap<String, BTreeMap<u64, usize>> = HashMap::new();
    for m in &phase1 {
        if m.topic.ends_with("/features") {
            let f: Features = from_json(&m.payload).unwrap();
            *features
                .entry(f.machine_id.to_string())
                .or_default()
                .entry(f.seq)
                .or_default() += 1;
        } else {
            let r: Risk = from_json(&m.payload).unwrap();
            *verdicts
                .entry(r.machine_id.to_string())
                .or_default()
                .entry(r.seq)
                .or_default() += 1;
        }
    }
    assert_eq!(features.len(), MACHINES, "every machine featurised");
    assert_eq!(verdicts.len(), MACHINES, "every machine scored");
    for (id, seqs) in features.iter().chain(verdicts.iter()) {
        assert!(
            seqs.values().all(|&n| n == 1),
            "{id}: a reading handled twice: {seqs:?}"
        );
        let (first, last) = (*seqs.keys().next().unwrap(), *seqs.keys().last().unwrap());
        assert_eq!(
            seqs.len() as u64,
            last - first + 1,
            "{id}: readings skipped: {seqs:?}"
        );
    }
    // Both feature instances took a share: the split is by rendezvous hashing.
    let owners: BTreeSet<&str> = features
        .keys()
        .map(|id| dtwin_cluster::owner(id, ["feature-a", "feature-b"]).unwrap())
        .collect();
    assert_eq!(owners.len(), 2, "both instances own machines");

    // Phase 2: kill feature-a without a clean disconnect; its last will hands its machines over.
    killed.abort();
    let moved: BTreeSet<String> = features
        .keys()
        .filter(|id| dtwin_cluster::owner(id, ["feature-a", "feature-b"]) == Some("feature-a"))
        .cloned()
        .collect();
    assert!(!moved.is_empty());
    let phase2 = collect(&mut watch, Duration::from_secs(6)).await;
    let mut cold_after_move: BTreeSet<String> = BTreeSet::new();
    let mut cold_elsewhere: BTreeSet<String> = BTreeSet::new();
    let mut seen_after: BTreeSet<String> = BTreeSet::new();
    let mut dup: HashMap<(String, u64), usize> = HashMap::new();
    for m in phase2.iter().filter(|m| m.topic.ends_with("/features")) {
        let f: Features = from_json(&m.payload).unwrap();
        let id = f.machine_id.to_string();
        *dup.entry((id.clone(), f.seq)).or_default() += 1;
        if moved.contains(&id) {
            // The killed instance may still have sent a vector or two; the survivor's
            // restart of the window shows as cold vectors.
            if f.cold {
                cold_after_move.insert(id.clone());
            }
            seen_after.insert(id);
        } else if f.cold {
            cold_elsewhere.insert(id);
        }
    }
    assert_eq!(
        seen_after, moved,
        "the survivor took over every machine of the killed instance"
    );
    assert_eq!(
        cold_after_move, moved,
        "their state was lost, and the new vectors say so (cold)"
    );
    assert!(
        cold_elsewhere.is_empty(),
        "the survivor's own machines kept their windows: {cold_elsewhere:?}"
    );
    assert!(
        dup.values().all(|&n| n == 1),
        "still one instance per reading after the move"
    );

    stop.cancel();
}
