//! NASA's C-MAPSS FD001 (turbofan engines run to failure, data nobody here simulated) through
//! the live stack as a plant (issue 17, item 7): a model trained through the shipped
//! `cmapss_fd001` profile on the training engines ("fails within 30 cycles"), deployed
//! retained on `dtwin/v1/models/cmapss_fd001`; then test engines replayed as v2 telemetry on
//! the embedded broker through the feature, inference and alerter services. The three engines
//! nearest failure (by NASA's true remaining life) end AT_RISK with an alert e-mail in the
//! outbox; the three farthest from it end HEALTHY without one.
//!
//! Beside the classifier (issue 19), a remaining-useful-life forest (capped at 125 cycles) and
//! an Isolation Forest trained on each training engine's first 50 cycles as healthy are
//! deployed retained on `models/cmapss_fd001/rul` and `models/cmapss_fd001/anomaly`: every
//! verdict carries `rul` with its interval and `anomaly`, and the engines nearest failure
//! get less remaining life and higher anomaly scores than the farthest.
//!
//! The data set is not in the repository: the test finds it at `$CMAPSS_DIR` or
//! `../shared/datasets/cmapss` and says so and passes when it is absent (a fresh clone).

use dtwin_bus::{BusConfig, QoS};
use dtwin_ml::{
    threshold_for_rate, AnomalyMeta, ForestParams, IsolationForest, IsolationParams, ModelArtifact,
    RegressorParams, TrainingMeta,
};
use dtwin_pipeline::plant::{self, Columns, Event, Horizon};
use dtwin_pipeline::{rul as rul_model, train_on, TrainSpec};
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

    // Remaining useful life: every training engine runs to failure, the target is capped at 125.
    let rul_data = rul_model::dataset(&train, &profile, &events, 125.0, true);
    let rul_spec = rul_model::RulSpec {
        model_id: "cmapss-rul-e2e".into(),
        version: "1".into(),
        source: "train_FD001".into(),
        recipe: plant::recipe(PROFILE, &columns, Horizon::Readings(125)),
        params: RegressorParams {
            n_trees: 30,
            ..RegressorParams::default()
        },
    };
    let (rul_artifact, _) = rul_model::train(&rul_data, &rul_spec, &|| {}).unwrap();
    // Anomaly: an Isolation Forest on each engine's first 50 cycles, anomalous above the
    // score 1 % of those healthy rows reach.
    let healthy: Vec<usize> = (0..data.y.len()).filter(|&i| data.step[i] < 50).collect();
    let (x_healthy, _) = data.select(&healthy);
    let iso_params = IsolationParams::default();
    let iso = IsolationForest::fit(x_healthy.view(), &iso_params, &|| {}).unwrap();
    let threshold = threshold_for_rate(&iso.score(x_healthy.view()), 0.01).unwrap();
    let anomaly = ModelArtifact::new_anomaly(
        "cmapss-iforest-e2e",
        data.names.clone(),
        f64::from(threshold),
        "unlike the first 50 cycles",
        TrainingMeta {
            rows: healthy.len(),
            positives: 0,
            params: ForestParams::default(),
            source: "train_FD001, cycles 1-50".into(),
            seconds: 0.0,
        },
        AnomalyMeta {
            healthy: "each engine's first 50 cycles".into(),
            rate: 0.01,
            params: iso_params,
        },
        iso,
    );

    // The stack.
    let outbox = tempfile::tempdir().unwrap();
    let broker = harness::embedded_broker();
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/machines/+/risk").await;
    let drift = Recorder::start(&broker, "dtwin/v1/drift/#").await;
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
    for (kind, artifact) in [("rul", &rul_artifact), ("anomaly", &anomaly)] {
        publisher
            .client
            .publish(
                format!("dtwin/v1/models/cmapss_fd001/{kind}"),
                QoS::AtLeastOnce,
                true,
                artifact.to_json(),
            )
            .await
            .unwrap();
    }

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
        let life = r.insights.rul.as_ref().expect("every verdict carries rul");
        assert!(life.low <= life.value && life.value <= life.high && life.unit == "cycles");
        assert!(r.insights.anomaly.is_some() && r.insights.anomalous.is_some());
        assert_eq!(r.insights.models["rul"].id, "cmapss-rul-e2e");
        assert_eq!(r.insights.models["anomaly"].id, "cmapss-iforest-e2e");
        println!(
            "{machine}: p = {:.3}, {:?}, rul {:.0} [{:.0}, {:.0}], anomaly {:.3} ({})",
            r.probability,
            r.status,
            life.value,
            life.low,
            life.high,
            r.insights.anomaly.unwrap(),
            r.insights.anomalous.unwrap()
        );
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
    // The regressor and the anomaly score rank the engines as their true remaining life does.
    let of = |units: &[usize], f: &dyn Fn(&Risk) -> f64| -> Vec<f64> {
        units
            .iter()
            .map(|u| f(&verdicts[&format!("engine-{u:03}")]))
            .collect()
    };
    let life = |r: &Risk| r.insights.rul.as_ref().unwrap().value;
    let score = |r: &Risk| r.insights.anomaly.unwrap();
    let max = |v: Vec<f64>| v.into_iter().fold(f64::MIN, f64::max);
    let min = |v: Vec<f64>| v.into_iter().fold(f64::MAX, f64::min);
    assert!(
        max(of(&near, &life)) < min(of(&far, &life)),
        "rul near {:?} vs far {:?}",
        of(&near, &life),
        of(&far, &life)
    );
    assert!(
        min(of(&near, &score)) > max(of(&far, &score)),
        "anomaly near {:?} vs far {:?}",
        of(&near, &score),
        of(&far, &score)
    );
    assert!(recorder.assert_contract() > 0);
    // Each kind's drift status is published on its own topic.
    for kind in ["rul", "anomaly"] {
        let topic = format!("dtwin/v1/drift/inference/cmapss_fd001/{kind}");
        assert!(
            drift
                .wait_for(Duration::from_secs(20), |m| m.topic == topic)
                .await
                .is_some(),
            "no drift status on {topic}"
        );
    }
    assert!(drift.assert_contract() > 0);
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
