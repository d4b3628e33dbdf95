//! `dtwin deploy` end to end: a running inference service swaps to a deployed model without a
//! restart (its verdicts name the new version), refuses a model trained on another feature set
//! with a `bad_model` dead letter and keeps the old one, and `deploy` itself refuses a corrupt
//! artifact before it reaches the broker.

use clap::Parser;
use dtwin::cli::{Cli, Command};
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::{
    from_json, to_json, DeadLetter, MachineId, RejectReason, Risk, Telemetry, Topics,
};
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SHIPPED: &[u8] = include_bytes!("../../../inference/models/default.json");

async fn deploy(url: &BrokerUrl, path: &std::path::Path) -> anyhow::Result<(String, String)> {
    let argv = [
        "dtwin",
        "deploy",
        path.to_str().unwrap(),
        "--broker",
        &url.to_string(),
    ];
    let Command::Deploy(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    dtwin::cmd::deploy::run(args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_swaps_to_a_deployed_model_and_refuses_a_mismatched_one() {
    let port = dtwin_broker::free_port().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(
        format!("127.0.0.1:{port}").parse().unwrap(),
    ))
    .unwrap();
    let url = BrokerUrl::new("127.0.0.1", port);
    let shutdown = CancellationToken::new();
    tokio::spawn(dtwin_inference::run(
        dtwin_inference::InferenceConfig::new(url.clone()),
        shutdown.clone(),
    ));

    let mut watch = dtwin_bus::connect(
        &BusConfig::new(url.clone(), "deploy-watch"),
        vec![
            Subscription::new("dtwin/v1/machines/+/risk", QoS::AtLeastOnce),
            Subscription::new("dtwin/v1/deadletter/inference", QoS::AtLeastOnce),
        ],
    );
    assert!(watch.client.wait_ready(Duration::from_secs(10)).await);

    // A steady feature stream, made by the feature service's own processor.
    let feeder = {
        let url = url.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let conn = dtwin_bus::connect(&BusConfig::new(url, "deploy-feeder"), vec![]);
            let mut p = dtwin_feature::Processor::new(Topics::default(), &Default::default());
            let mut seq = 0;
            while !stop.is_cancelled() {
                seq += 1;
                let mut t = Telemetry::new(
                    MachineId::parse("m-1").unwrap(),
                    dtwin_schema::time_fmt::now(),
                    seq,
                );
                t.temperature_c = Some(36.0);
                t.vibration_mm_s = Some(2.0);
                t.spindle_rpm = Some(1500.0);
                let mut out = Vec::new();
                p.handle(
                    "dtwin/v1/machines/m-1/telemetry",
                    &to_json(&t),
                    dtwin_schema::time_fmt::now(),
                    seq,
                    &mut out,
                );
                for o in out {
                    let (topic, payload) = o.into_parts();
                    let _ = conn
                        .client
                        .publish(topic, QoS::AtLeastOnce, false, payload)
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let shipped: Value = serde_json::from_slice(SHIPPED).unwrap();
    let shipped_version = shipped["version"].as_str().unwrap().to_owned();
    next_risk_version(&mut watch, &shipped_version).await;

    // A new version of the same model: swapped in without a restart.
    let dir = tempfile::tempdir().unwrap();
    let mut v2 = shipped.clone();
    v2["version"] = Value::from("2-test");
    let v2_path = dir.path().join("v2.json");
    std::fs::write(&v2_path, serde_json::to_vec(&v2).unwrap()).unwrap();
    let (_, version) = deploy(&url, &v2_path).await.unwrap();
    assert_eq!(version, "2-test");
    next_risk_version(&mut watch, "2-test").await;

    // A model trained on other features: refused with a dead letter, the old one kept.
    let mut other = shipped.clone();
    let names = other["feature_names"].as_array_mut().unwrap();
    let last = names.len() - 1;
    names[last] = Value::from("product_kind");
    let names: Vec<String> = names
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    other["feature_set_hash"] = Value::from(dtwin_schema::feature_set_hash(&names));
    // The training reference names the features too.
    if let Some(reference) = other["reference"]["features"].as_array_mut() {
        reference[last]["name"] = Value::from("product_kind");
    }
    other["version"] = Value::from("3-mismatch");
    let other_path = dir.path().join("other.json");
    std::fs::write(&other_path, serde_json::to_vec(&other).unwrap()).unwrap();
    deploy(&url, &other_path)
        .await
        .expect("valid artifact: deploy publishes it");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = tokio::time::timeout_at(deadline, watch.inbox.recv())
            .await
            .expect("a bad_model dead letter")
            .unwrap();
        if m.topic.ends_with("deadletter/inference") {
            let dl: DeadLetter = from_json(&m.payload).unwrap();
            assert_eq!(dl.reason, RejectReason::BadModel);
            break;
        }
    }
    next_risk_version(&mut watch, "2-test").await;

    // A corrupt artifact never leaves the machine.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{\"schema\":\"dtwin.model.v1\"}").unwrap();
    let err = deploy(&url, &bad).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("not a valid model artifact"),
        "{err:#}"
    );

    shutdown.cancel();
    let _ = feeder.await;
}

async fn next_risk_version(watch: &mut dtwin_bus::Connection, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = tokio::time::timeout_at(deadline, watch.inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("no verdict from model version {want}"))
            .unwrap();
        if let Ok(r) = from_json::<Risk>(&m.payload) {
            if r.model.version == want {
                return;
            }
        }
    }
}
