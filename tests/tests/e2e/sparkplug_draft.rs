//! A Sparkplug device no declared profile fits (issue 18, item 2): the host drafts a profile
//! from its birth (every numeric metric a sensor) and publishes it retained on
//! `dtwin/v1/profiles/spb_{machine}`; a feature service given no profile file at all serves
//! it from there, so the device's readings become feature vectors under the drafted profile
//! and rules-only verdicts (model `none`: no model is trained for it yet). A second device
//! with the same metrics shares the draft; a user saving the retained text gets a profile
//! that parses. A store-and-forward backlog (`is_historical` metrics) is taken as late data
//! in timestamp order before the message's live value; a backlog reading older than what was
//! processed is dead-lettered `too_late` with its payload. Every message on `dtwin/v1/#`
//! validates against the contract.

use dtwin_schema::{from_json, Features, Risk};
use dtwin_sparkplug::{by_alias, DataType, EdgeNode, EdgeNodeId, Metric, MetricValue};
use dtwin_tests::harness::{self, Recorder};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PRESS: &str = "plant1.line9.press2";
const PRESS3: &str = "plant1.line9.press3";
const DRAFT: &str = "spb_plant1.line9.press2";

async fn verdict(recorder: &Recorder, machine: &str, seq: u64) -> Risk {
    let topic = format!("dtwin/v1/machines/{machine}/risk");
    let m = recorder
        .wait_for(Duration::from_secs(20), |m| {
            m.topic == topic && from_json::<Risk>(&m.payload).is_ok_and(|r| r.seq == seq)
        })
        .await
        .unwrap_or_else(|| panic!("verdict {seq} of {machine}"));
    from_json(&m.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_no_profile_fits_gets_a_drafted_profile_and_verdicts() {
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let edge_side = Recorder::start(&broker, "spBv1.0/#").await;
    // No --profile file anywhere: the feature service knows milling only.
    let feature = dtwin_feature::FeatureConfig::new(broker.clone());
    let host = dtwin_sparkplug_host::SparkplugHostConfig::new(broker.clone());
    let [feature, inference] = harness::start_scoring(feature, &stop).await;
    let host = harness::start(
        dtwin_sparkplug_host::SparkplugHostService::build(host)
            .await
            .unwrap(),
        &stop,
    )
    .await;
    edge_side
        .wait_for(Duration::from_secs(10), |m| {
            m.topic == "spBv1.0/STATE/dtwin"
        })
        .await
        .expect("the host's STATE");

    let t0 = harness::now_ms();
    let mut edge = EdgeNode::new(EdgeNodeId::new("plant1", "line9"), 0);
    let birth = |pressure: f32| {
        [
            Metric::named("Hydraulic/Pressure [bar]", Some(1), DataType::Float)
                .with_value(MetricValue::FloatValue(pressure)),
            Metric::named("Cycle count", Some(2), DataType::UInt64)
                .with_value(MetricValue::LongValue(1000)),
            Metric::named("Operator", Some(3), DataType::String)
                .with_value(MetricValue::StringValue("A. Smith".into())),
        ]
    };
    edge_side.send(edge.nbirth(&[], t0)).await;
    edge_side
        .send(edge.dbirth("press2", &birth(150.0), t0))
        .await;
    for i in 1..4u64 {
        let data = [
            by_alias(1, MetricValue::FloatValue(150.0 + i as f32)),
            by_alias(2, MetricValue::LongValue(1000 + i)),
        ];
        edge_side
            .send(edge.ddata("press2", &data, t0 + 1000 * i))
            .await;
    }

    // The draft, retained: what a user saves and edits.
    let topic = format!("dtwin/v1/profiles/{DRAFT}");
    recorder
        .wait_for(Duration::from_secs(20), |m| m.topic == topic)
        .await
        .expect("the drafted profile");
    let late = Recorder::start(&broker, &format!("dtwin/v1/profiles/{DRAFT}")).await;
    let saved = late
        .wait_for(Duration::from_secs(10), |m| m.retain)
        .await
        .expect("the drafted profile, retained");
    let text = String::from_utf8(saved.payload.to_vec()).unwrap();
    let drafted = dtwin_profile::Profile::parse(&text, "saved.toml").unwrap();
    assert_eq!(drafted.id, DRAFT);
    let keys: Vec<&str> = drafted.sensors.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["Hydraulic/Pressure [bar]", "Cycle count"]);
    assert!(
        text.contains("spBv1.0/plant1/DBIRTH/line9/press2"),
        "{text}"
    );

    // The birth's values and three DDATA: four vectors under the draft, then verdicts.
    let (_, hash) = dtwin_windows::profile_feature_set(&drafted);
    let last = verdict(&recorder, PRESS, 4).await;
    assert_eq!(last.model.id, "none", "{last:?}");
    assert!(
        last.actions.iter().any(|a| a.code == "NO_MODEL"),
        "{last:?}"
    );
    let topic = format!("dtwin/v1/machines/{PRESS}/features");
    let vectors: Vec<Features> = recorder
        .all()
        .iter()
        .filter(|m| m.topic == topic)
        .map(|m| from_json(&m.payload).unwrap())
        .collect();
    assert_eq!(vectors.len(), 4, "{vectors:?}");
    let topic = topic.clone();
    for (i, v) in vectors.iter().enumerate() {
        assert_eq!(v.profile.as_deref(), Some(DRAFT));
        assert_eq!(v.feature_set, hash);
        assert_eq!(v.latest["hydraulic_pressure"], 150.0 + i as f64);
        assert_eq!(v.latest["cycle_count"], 1000.0 + i as f64);
    }

    // A store-and-forward backlog (is_historical) in one message, out of order, with a live
    // value: taken as late data in timestamp order before the live one, each with only its
    // own values; one older than what was processed is dead-lettered too_late, not lost.
    let hist = |ts: u64, v: f32| Metric {
        timestamp: Some(ts),
        is_historical: Some(true),
        ..by_alias(1, MetricValue::FloatValue(v))
    };
    let backlog = [
        by_alias(1, MetricValue::FloatValue(160.0)),
        hist(t0 + 3600, 156.0),
        hist(t0 + 3300, 155.0),
        hist(t0 + 2500, 154.0),
    ];
    edge_side
        .send(edge.ddata("press2", &backlog, t0 + 4000))
        .await;
    verdict(&recorder, PRESS, 7).await;
    let too_late = recorder
        .wait_for(Duration::from_secs(20), |m| {
            m.topic == "dtwin/v1/deadletter/feature"
                && from_json::<dtwin_schema::DeadLetter>(&m.payload)
                    .is_ok_and(|d| d.reason == dtwin_schema::RejectReason::TooLate)
        })
        .await
        .expect("the backlog reading older than the last processed: too_late");
    let dl: dtwin_schema::DeadLetter = from_json(&too_late.payload).unwrap();
    assert!(
        dl.payload.contains("\"historical\":true") && dl.payload.contains("154"),
        "{dl:?}"
    );
    let vectors: Vec<Features> = recorder
        .all()
        .iter()
        .filter(|m| m.topic == topic)
        .map(|m| from_json(&m.payload).unwrap())
        .collect();
    let got: Vec<(i64, f64)> = vectors[4..]
        .iter()
        .map(|v| {
            (
                (v.source_ts.unix_timestamp_nanos() / 1_000_000) as i64 - t0 as i64,
                v.latest["hydraulic_pressure"],
            )
        })
        .collect();
    assert_eq!(got, [(3300, 155.0), (3600, 156.0), (4000, 160.0)]);
    // The live reading carries the last live cycle count; the backlog changed no live state.
    assert_eq!(vectors[6].latest["cycle_count"], 1003.0);

    // Another press with the same metrics shares the draft: nothing new is drafted.
    edge_side
        .send(edge.dbirth("press3", &birth(140.0), t0 + 5000))
        .await;
    let first = verdict(&recorder, PRESS3, 1).await;
    assert_eq!(first.model.id, "none");
    let drafts: Vec<String> = recorder
        .all()
        .iter()
        .filter(|m| m.topic.starts_with("dtwin/v1/profiles/"))
        .map(|m| m.topic.clone())
        .collect();
    assert_eq!(drafts, [format!("dtwin/v1/profiles/{DRAFT}")]);

    recorder.assert_contract();
    stop.cancel();
    for s in [feature, inference, host] {
        s.await.unwrap().unwrap();
    }
}
