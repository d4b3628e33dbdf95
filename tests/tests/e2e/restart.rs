//! Restart (issue 5, item 8): a feature service restarted mid-stream rebuilds its windows from
//! the live stream. Its first vectors for every machine are flagged cold (fewer readings than
//! the short window: `cold` in `dtwin-windows`), and so are the inference verdicts on them,
//! until the window has filled again; then they are warm again.

use dtwin_schema::{from_json, Features, Risk};
use dtwin_tests::harness::{self, Recorder};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MACHINES: usize = 5;
/// The default short window: readings before a window is warm.
const SHORT: usize = 10;

/// Per machine, the feature vectors (seq, cold) recorded from index `from` on.
fn vectors(recorder: &Recorder, from: usize) -> BTreeMap<String, Vec<(u64, bool)>> {
    let mut by_machine: BTreeMap<String, Vec<(u64, bool)>> = BTreeMap::new();
    for m in recorder.all().into_iter().skip(from) {
        if m.topic.ends_with("/features") {
            let f: Features = from_json(&m.payload).unwrap();
            by_machine
                .entry(f.machine_id.to_string())
                .or_default()
                .push((f.seq, f.cold));
        }
    }
    by_machine
}

async fn wait_for_vectors(recorder: &Recorder, from: usize, per_machine: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = vectors(recorder, from);
        if v.len() == MACHINES && v.values().all(|s| s.len() >= per_machine) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "too few vectors: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_feature_service_flags_cold_windows_then_warms_up() {
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/machines/#").await;
    let first = CancellationToken::new();
    let feature = harness::start(
        dtwin_feature::FeatureService::build(dtwin_feature::FeatureConfig::new(broker.clone()))
            .await
            .unwrap(),
        &first,
    )
    .await;
    let inference = harness::start(
        dtwin_inference::InferenceService::build(dtwin_inference::InferenceConfig::new(
            broker.clone(),
        ))
        .await
        .unwrap(),
        &stop,
    )
    .await;
    let mut twin = dtwin_twin_publisher::TwinConfig::new(broker.clone());
    twin.machines = MACHINES;
    twin.rate_hz = 20.0;
    let twin = harness::spawn(dtwin_twin_publisher::run(twin, stop.clone()));

    // Warm before the restart.
    wait_for_vectors(&recorder, 0, SHORT + 10).await;
    for (id, seqs) in vectors(&recorder, 0) {
        assert!(!seqs.last().unwrap().1, "{id} is warm before the restart");
    }

    // Restart: stop the service completely, then start a new one on the live stream.
    first.cancel();
    feature.await.unwrap().unwrap();
    let mark = recorder.all().len();
    let second = harness::start(
        dtwin_feature::FeatureService::build(dtwin_feature::FeatureConfig::new(broker.clone()))
            .await
            .unwrap(),
        &stop,
    )
    .await;
    wait_for_vectors(&recorder, mark, SHORT + 10).await;

    let after = vectors(&recorder, mark);
    for (id, seqs) in &after {
        let cold: Vec<bool> = seqs.iter().map(|&(_, c)| c).collect();
        // The first SHORT - 1 vectors of the new window are cold, every later one warm.
        let expected: Vec<bool> = (0..cold.len()).map(|i| i < SHORT - 1).collect();
        assert_eq!(cold, expected, "{id}: {seqs:?}");
        let first_seq = seqs[0].0;
        println!(
            "{id}: restarted at seq {first_seq}, cold for {} vectors, warm from seq {}",
            SHORT - 1,
            seqs[SHORT - 1].0
        );
    }
    // The verdicts carry the flag of the vector they were scored from.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut risks: BTreeMap<(String, u64), bool> = BTreeMap::new();
        for m in recorder.all().into_iter().skip(mark) {
            if m.topic.ends_with("/risk") {
                let r: Risk = from_json(&m.payload).unwrap();
                risks.insert((r.machine_id.to_string(), r.seq), r.cold);
            }
        }
        let all_scored = after.iter().all(|(id, seqs)| {
            seqs.iter()
                .all(|(seq, _)| risks.contains_key(&(id.clone(), *seq)))
        });
        if all_scored {
            for (id, seqs) in &after {
                for &(seq, cold) in seqs {
                    assert_eq!(risks[&(id.clone(), seq)], cold, "{id} seq {seq}");
                }
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "verdicts for every vector"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    for task in [second, inference, twin] {
        task.await.unwrap().unwrap();
    }
}
