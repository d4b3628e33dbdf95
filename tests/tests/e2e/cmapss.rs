//! NASA's C-MAPSS FD001 (turbofan engines run to failure, data nobody here simulated) through
//! the live stack as a plant (issue 17, item 7): a model trained through the shipped
//! `cmapss_fd001` profile on the training engines ("fails within 30 cycles"), deployed
//! retained on `dtwin/v1/models/cmapss_fd001`; then test engines replayed as v2 telemetry on
//! the embedded broker through the feature, inference and alerter services. The three engines
//! nearest failure (by NASA's true remaining life) end AT_RISK with an alert e-mail in the
//! outbox; the three farthest from it end HEALTHY without one.
//!
//! The data set is not in the repository: the test finds it at `$CMAPSS_DIR` or
//! `../shared/datasets/cmapss` and says so and passes when it is absent (a fresh clone).

use dtwin_bus::{BusConfig, QoS};
use dtwin_ml::ForestParams;
use dtwin_pipeline::plant::{self, Columns, Event, Horizon};
use dtwin_pipeline::{train_on, TrainSpec};
use dtwin_schema::{from_json, Risk, RiskStatus};
use dtwin_tests::harness::{self, Recorder};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PROFILE: &str = include_str!("../../../services/lib/profile/profiles/cmapss_fd001.toml");

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CMAPSS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/cmapss"),
        PathBuf::from,
    );
    if dir.join("train_FD001.txt").exists() {
        Some(dir)
    } else {
        println!(
            "skipping: no C-MAPSS FD001 at {} (set CMAPSS_DIR; NASA's Prognostics Data Repository has it)",
            dir.display()
        );
        None
    }
}

/// NASA's whitespace-separated rows as a CSV with the profile's keys as header.
fn to_csv(text: &str, keys: &[String]) -> String {
    let mut out = format!("unit,cycle,{}\n", keys.join(","));
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.len(), 2 + keys.len(), "a C-MAPSS row: {line}");
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_engines_nearest_failure_are_at_risk_with_an_alert_e_mail() {
    let Some(dir) = data_dir() else { return };
    let profile = dtwin_profile::Profile::parse(PROFILE, "cmapss_fd001.toml").unwrap();
    let keys: Vec<String> = profile.sensors.iter().map(|s| s.key.clone()).collect();
    let columns = Columns {
        id: "unit".into(),
        time: Some("cycle".into()),
        label: None,
        time_zone: None,
    };
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();

    // Train: each training engine fails at its last cycle.
    let train = plant::read(
        &to_csv(&read("train_FD001.txt"), &keys),
        "train",
        &profile,
        &columns,
    )
    .unwrap();
    let events: Vec<Event> = train
        .machines
        .iter()
        .map(|s| Event {
            machine: s.id.clone(),
            t: *s.t.last().unwrap(),
            label: Some("failure".into()),
        })
        .collect();
    let horizon = Horizon::Readings(30);
    let (mut data, _) = plant::dataset(&train, &profile, &events, horizon);
    data.recipe = Some(Box::new(plant::recipe(PROFILE, &columns, horizon)));
    let spec = TrainSpec {
        data: dtwin_pipeline::TwinDataSpec::default(),
        params: ForestParams {
            n_trees: 30,
            ..ForestParams::default()
        },
        model_id: "cmapss-e2e".into(),
        version: "1".into(),
        target: None,
        source: Some("train_FD001".into()),
    };
    let (model, report) = train_on(&data, &spec, &|| {}).unwrap();
    println!(
        "trained: held-out ROC-AUC {:.3}, threshold {:.3}",
        report.roc_auc, model.threshold
    );

    // The stack.
    let outbox = tempfile::tempdir().unwrap();
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/machines/+/risk").await;
    let mut feature = dtwin_feature::FeatureConfig::new(broker.clone());
    feature.profiles.push(profile.clone());
    let mut alerter = dtwin_alerter::AlerterConfig::new(broker.clone());
    alerter.outbox_dir = outbox.path().join("outbox");
    alerter.spool_dir = outbox.path().join("spool");
    alerter.policy.group_wait = time::Duration::ZERO;
    let [feature, inference] = harness::start_scoring(feature, &stop).await;
    let services = [
        feature,
        inference,
        harness::start(
            dtwin_alerter::AlerterService::build(alerter).await.unwrap(),
            &stop,
        )
        .await,
    ];
    let publisher = dtwin_bus::connect(&BusConfig::new(broker.clone(), "cmapss-replay"), vec![]);
    assert!(publisher.client.wait_ready(Duration::from_secs(10)).await);
    publisher
        .client
        .publish(
            "dtwin/v1/models/cmapss_fd001",
            QoS::AtLeastOnce,
            true,
            model.to_json(),
        )
        .await
        .unwrap();

    // The test engines: the three nearest failure and the three farthest from it.
    let rul: Vec<u32> = read("RUL_FD001.txt")
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let mut by_rul: Vec<(u32, usize)> = rul.iter().enumerate().map(|(i, &r)| (r, i + 1)).collect();
    by_rul.sort_unstable();
    let near: Vec<usize> = by_rul[..3].iter().map(|p| p.1).collect();
    let far: Vec<usize> = by_rul[by_rul.len() - 3..].iter().map(|p| p.1).collect();
    let test = plant::read(
        &to_csv(&read("test_FD001.txt"), &keys),
        "test",
        &profile,
        &columns,
    )
    .unwrap();
    // Give the model a moment to arrive before the first vectors (retained, QoS 1).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut last = BTreeMap::new();
    for s in &test.machines {
        let unit: usize = s.id.parse().unwrap();
        if !near.contains(&unit) && !far.contains(&unit) {
            continue;
        }
        let machine = format!("engine-{unit:03}");
        for i in 0..s.len() {
            let values: serde_json::Map<String, serde_json::Value> = keys
                .iter()
                .enumerate()
                .map(|(k, key)| (key.clone(), s.values[i * keys.len() + k].into()))
                .collect();
            let payload = serde_json::json!({
                "schema": "dtwin.telemetry.v2",
                "profile": "cmapss_fd001",
                "seq": s.t[i] as u64,
                "values": values,
            });
            publisher
                .client
                .publish(
                    format!("dtwin/v1/machines/{machine}/telemetry"),
                    QoS::AtLeastOnce,
                    false,
                    serde_json::to_vec(&payload).unwrap(),
                )
                .await
                .unwrap();
        }
        last.insert(machine, s.t[s.len() - 1] as u64);
    }

    // The verdict on each engine's last cycle.
    let mut verdicts = BTreeMap::new();
    for (machine, seq) in &last {
        let topic = format!("dtwin/v1/machines/{machine}/risk");
        let m = recorder
            .wait_for(Duration::from_secs(60), |m| {
                m.topic == topic && from_json::<Risk>(&m.payload).is_ok_and(|r| r.seq == *seq)
            })
            .await
            .unwrap_or_else(|| panic!("no verdict on {machine}'s last cycle {seq}"));
        let r: Risk = from_json(&m.payload).unwrap();
        assert_eq!(r.profile.as_deref(), Some("cmapss_fd001"));
        assert_eq!(r.model.id, "cmapss-e2e", "scored by the deployed model");
        println!("{machine}: p = {:.3}, {:?}", r.probability, r.status);
        verdicts.insert(machine.clone(), r);
    }
    for unit in &near {
        let r = &verdicts[&format!("engine-{unit:03}")];
        assert_eq!(
            r.status,
            RiskStatus::AtRisk,
            "engine {unit}, RUL {}",
            rul[unit - 1]
        );
    }
    for unit in &far {
        let r = &verdicts[&format!("engine-{unit:03}")];
        assert_eq!(
            r.status,
            RiskStatus::Healthy,
            "engine {unit}, RUL {}",
            rul[unit - 1]
        );
    }
    // An alert e-mail for each engine nearest failure, none for the others.
    for unit in &near {
        let name = format!("engine-{unit:03}");
        let mail = harness::wait_for_eml(
            &outbox.path().join("outbox"),
            Duration::from_secs(30),
            |text| text.contains(&name),
        )
        .await;
        assert!(mail.is_some(), "no alert e-mail for {name}");
    }
    let mails: Vec<String> = std::fs::read_dir(outbox.path().join("outbox"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    for unit in &far {
        let name = format!("engine-{unit:03}");
        assert!(
            !mails.iter().any(|m| m.contains(&name)),
            "an alert for {name}, far from failure"
        );
    }
    stop.cancel();
    for s in services {
        s.await.unwrap().unwrap();
    }
}
