//! The shipped Mosquitto access control (deploy/mosquitto/acl) on a real Mosquitto: hashed
//! passwords, anonymous access off, a wrong password refused, and a gateway that can publish
//! only its own machines' telemetry, so a spoofed machine never reaches the services. And the
//! services, scaled out under their own accounts, may do all they need: announce themselves,
//! follow their peers, hand alert state over, read silences.

use dtwin_bus::{BrokerUrl, BusConfig, QoS};
use dtwin_schema::{to_json, MachineId, Telemetry};
use dtwin_tests::harness::{self, Mosquitto, Recorder};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const ACL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/mosquitto/acl");
const WAIT: Duration = Duration::from_secs(20);

/// Users of this test and their passwords.
const USERS: [(&str, &str); 6] = [
    ("gateway-line1", "gw1-secret"),
    ("dtwin-feature", "feature-secret"),
    ("dtwin-dashboard", "dashboard-secret"),
    ("dtwin-inference", "inference-secret"),
    ("dtwin-alerter", "alerter-secret"),
    ("dtwin-operator", "operator-secret"),
];

fn url(port: u16, user: &str, password: &str) -> BrokerUrl {
    format!("mqtt://{user}:{password}@127.0.0.1:{port}")
        .parse()
        .expect("valid broker URL")
}

/// Mosquitto with the shipped ACL and a password file made by `mosquitto_passwd`.
fn secured_mosquitto() -> anyhow::Result<Mosquitto> {
    Mosquitto::start_with(|port, dir: &Path| {
        let passwd = dir.join("passwd");
        std::fs::write(&passwd, "")?;
        for (user, password) in USERS {
            let status = Command::new("mosquitto_passwd")
                .arg("-b")
                .arg(&passwd)
                .arg(user)
                .arg(password)
                .status()?;
            anyhow::ensure!(status.success(), "mosquitto_passwd failed for {user}");
        }
        let stored = std::fs::read_to_string(&passwd)?;
        for (user, password) in USERS {
            assert!(
                stored.contains(&format!("{user}:")),
                "{user} in the password file"
            );
            assert!(
                !stored.contains(password),
                "the password file stores hashes, not {password:?}"
            );
        }
        Ok(format!(
            "per_listener_settings false\nallow_anonymous false\npassword_file {}\nacl_file {ACL}\n\
             listener {port} 127.0.0.1\npersistence false\n",
            passwd.display()
        ))
    })
}

fn telemetry(machine: &str, seq: u64) -> Vec<u8> {
    let mut t = Telemetry::new(
        MachineId::parse(machine).expect("valid id"),
        time::OffsetDateTime::now_utc(),
        seq,
    );
    t.temperature_c = Some(36.5);
    t.vibration_mm_s = Some(2.1);
    t.spindle_rpm = Some(1500.0);
    to_json(&t)
}

async fn can_connect(url: BrokerUrl, id: &str) -> bool {
    let conn = dtwin_bus::connect(&BusConfig::new(url, id), vec![]);
    let ready = conn.client.wait_ready(Duration::from_secs(3)).await;
    conn.close().await;
    ready
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_publish_only_their_own_machines() {
    let Some(mosquitto) = harness::mosquitto_or_skip(secured_mosquitto()) else {
        return;
    };
    let port = mosquitto.port;

    // Authentication: no password, a wrong one and an unknown user are refused.
    let (anonymous, wrong, unknown, right) = tokio::join!(
        can_connect(BrokerUrl::new("127.0.0.1", port), "anonymous"),
        can_connect(url(port, "dtwin-dashboard", "wrong"), "wrong-password"),
        can_connect(url(port, "nobody", "dashboard-secret"), "unknown-user"),
        can_connect(
            url(port, "dtwin-dashboard", "dashboard-secret"),
            "right-password"
        ),
    );
    assert!(!anonymous, "anonymous access is off");
    assert!(!wrong, "a wrong password is refused");
    assert!(!unknown, "an unknown user is refused");
    assert!(right, "the right password is accepted");

    // The feature service with its own account, and a reader with the dashboard's.
    let shutdown = CancellationToken::new();
    let mut config =
        dtwin_feature::FeatureConfig::new(url(port, "dtwin-feature", "feature-secret"));
    config.common.client_id = Some("acl-test-feature".into());
    let feature = tokio::spawn(dtwin_feature::run(config, shutdown.clone()));
    let reader = Recorder::start(
        &url(port, "dtwin-dashboard", "dashboard-secret"),
        "dtwin/v1/#",
    )
    .await;

    // The dashboard account may read but not publish.
    reader
        .client()
        .publish(
            "dtwin/v1/machines/machine-001/telemetry",
            QoS::AtLeastOnce,
            false,
            telemetry("machine-001", 999),
        )
        .await
        .expect("queued");

    // gateway-line1 owns machine-001 and machine-002, not machine-003.
    let gateway = dtwin_bus::connect(
        &BusConfig::new(url(port, "gateway-line1", "gw1-secret"), "gateway-line1"),
        vec![],
    );
    assert!(gateway.client.wait_ready(WAIT).await, "gateway connected");
    let publish = |topic: String, payload: Vec<u8>| {
        let client = gateway.client.clone();
        async move {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .expect("queued")
        }
    };
    // Denied first, so that by the time the allowed ones come through, the denied ones would
    // have too (one connection: Mosquitto handles its publishes in order).
    for seq in 1..=3 {
        publish(
            "dtwin/v1/machines/machine-003/telemetry".into(),
            telemetry("machine-003", seq),
        )
        .await;
    }
    // Nor may a gateway forge a service's output for its own machine.
    publish(
        "dtwin/v1/machines/machine-001/features".into(),
        br#"{"forged":true}"#.to_vec(),
    )
    .await;
    publish(
        "dtwin/v1/models/current".into(),
        br#"{"schema":"dtwin.model.v1"}"#.to_vec(),
    )
    .await;
    // Allowed: readings of its own machines.
    for seq in 1..=3 {
        publish(
            "dtwin/v1/machines/machine-001/telemetry".into(),
            telemetry("machine-001", seq),
        )
        .await;
        publish(
            "dtwin/v1/machines/machine-002/telemetry".into(),
            telemetry("machine-002", seq),
        )
        .await;
    }

    for machine in ["machine-001", "machine-002"] {
        let features = format!("dtwin/v1/machines/{machine}/features");
        let seen = reader
            .wait_for(WAIT, |m| {
                m.topic == features
                    && dtwin_schema::from_json::<dtwin_schema::Features>(&m.payload)
                        .is_ok_and(|f| f.seq == 3)
            })
            .await;
        assert!(
            seen.is_some(),
            "the feature service (its own account) turned {machine}'s telemetry into features"
        );
    }
    // A last allowed message as a barrier for everything published before it.
    publish(
        "dtwin/v1/machines/machine-002/telemetry".into(),
        telemetry("machine-002", 4),
    )
    .await;
    assert!(reader
        .wait_for(WAIT, |m| m.topic
            == "dtwin/v1/machines/machine-002/telemetry"
            && dtwin_schema::from_json::<Telemetry>(&m.payload)
                .is_ok_and(|t| t.seq == 4))
        .await
        .is_some());

    let all = reader.all();
    let spoofed: Vec<&str> = all
        .iter()
        .filter(|m| {
            m.topic.contains("machine-003")
                || m.topic == "dtwin/v1/models/current"
                || m.payload.as_ref() == br#"{"forged":true}"#
                || (m.topic.ends_with("/telemetry")
                    && dtwin_schema::from_json::<Telemetry>(&m.payload).is_ok_and(|t| t.seq == 999))
        })
        .map(|m| m.topic.as_str())
        .collect();
    assert!(
        spoofed.is_empty(),
        "denied publishes never reach a subscriber: {spoofed:?}"
    );
    let telemetry_seen = all
        .iter()
        .filter(|m| m.topic.ends_with("/telemetry"))
        .count();
    assert_eq!(
        telemetry_seen, 7,
        "the gateway's allowed readings all arrived"
    );

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), feature).await;
    gateway.close().await;
}

/// Waits until the reader has a message on `topic` that `pred` accepts.
async fn seen(reader: &Recorder, topic: &str, pred: impl Fn(&[u8]) -> bool) -> bool {
    reader
        .wait_for(WAIT, |m| m.topic == topic && pred(&m.payload))
        .await
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_out_services_have_every_permission_they_need() {
    let Some(mosquitto) = harness::mosquitto_or_skip(secured_mosquitto()) else {
        return;
    };
    let port = mosquitto.port;
    let reader = Recorder::start(
        &url(port, "dtwin-dashboard", "dashboard-secret"),
        "dtwin/v1/#",
    )
    .await;
    // The operator silences machine-001 (retained) before the alerter starts.
    let operator = dtwin_bus::connect(
        &BusConfig::new(
            url(port, "dtwin-operator", "operator-secret"),
            "acl-operator",
        ),
        vec![],
    );
    assert!(operator.client.wait_ready(WAIT).await);
    let silence = dtwin_schema::Silence {
        schema: dtwin_schema::SILENCE_SCHEMA.into(),
        silence_id: "acl-test".into(),
        machines: vec!["machine-001".into()],
        lines: Vec::new(),
        until: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        reason: "maintenance".into(),
        created_by: "test".into(),
    };
    operator
        .client
        .publish(
            "dtwin/v1/control/silences/acl-test",
            QoS::AtLeastOnce,
            true,
            to_json(&silence),
        )
        .await
        .unwrap();
    assert!(seen(&reader, "dtwin/v1/control/silences/acl-test", |_| true).await);

    let shutdown = CancellationToken::new();
    let outbox = tempfile::tempdir().unwrap();
    let mut feature =
        dtwin_feature::FeatureConfig::new(url(port, "dtwin-feature", "feature-secret"));
    feature.common.instance = Some("feature-a".into());
    let mut inference =
        dtwin_inference::InferenceConfig::new(url(port, "dtwin-inference", "inference-secret"));
    inference.common.instance = Some("inference-a".into());
    let mut alerter =
        dtwin_alerter::AlerterConfig::new(url(port, "dtwin-alerter", "alerter-secret"));
    alerter.common.instance = Some("alerter-a".into());
    alerter.outbox_dir = outbox.path().to_path_buf();
    alerter.spool_dir = outbox.path().join(".spool");
    alerter.policy.digest_min = 1000;
    alerter.policy.group_wait = time::Duration::ZERO;
    let tasks = [
        harness::spawn(dtwin_feature::run(feature, shutdown.clone())),
        harness::spawn(dtwin_inference::run(inference, shutdown.clone())),
        harness::spawn(dtwin_alerter::run(alerter, shutdown.clone())),
    ];
    for (service, name) in [
        ("feature", "feature-a"),
        ("inference", "inference-a"),
        ("alerter", "alerter-a"),
    ] {
        let topic = format!("dtwin/v1/instances/{service}/{name}");
        assert!(
            seen(&reader, &topic, |p| String::from_utf8_lossy(p)
                .contains("online"))
            .await,
            "{name} may announce itself"
        );
    }

    // The operator may deploy a machine profile's model, and inference reads models/+: a
    // broken artifact on models/pump comes back as inference's bad_model dead letter.
    operator
        .client
        .publish(
            "dtwin/v1/models/pump",
            QoS::AtLeastOnce,
            true,
            br#"{"schema":"dtwin.model.v1"}"#.to_vec(),
        )
        .await
        .unwrap();
    assert!(
        seen(&reader, "dtwin/v1/deadletter/inference", |p| {
            dtwin_schema::from_json::<dtwin_schema::DeadLetter>(p).is_ok_and(|d| {
                d.reason == dtwin_schema::RejectReason::BadModel
                    && d.topic == "dtwin/v1/models/pump"
            })
        })
        .await,
        "inference may read a profile's model"
    );
    // And a model of another kind on models/{profile}/{kind} (dtwin deploy of an anomaly model).
    operator
        .client
        .publish(
            "dtwin/v1/models/milling/anomaly",
            QoS::AtLeastOnce,
            true,
            br#"{"schema":"dtwin.model.v1","kind":"anomaly"}"#.to_vec(),
        )
        .await
        .unwrap();
    assert!(
        seen(&reader, "dtwin/v1/models/milling/anomaly", |p| p
            .starts_with(b"{\"schema\""))
        .await,
        "the operator may deploy a model of another kind"
    );

    // Verdicts under the inference account: both machines fire; the silenced one is recorded,
    // the other mailed; both alert states are published.
    let scorer = dtwin_bus::connect(
        &BusConfig::new(
            url(port, "dtwin-inference", "inference-secret"),
            "acl-scorer",
        ),
        vec![],
    );
    assert!(scorer.client.wait_ready(WAIT).await);
    for seq in 1..=2 {
        for machine in ["machine-001", "machine-002"] {
            let r = harness::verdict(machine, seq, 0.9);
            scorer
                .client
                .publish(
                    format!("dtwin/v1/machines/{machine}/risk"),
                    QoS::AtLeastOnce,
                    false,
                    to_json(&r),
                )
                .await
                .unwrap();
        }
    }
    for machine in ["machine-001", "machine-002"] {
        let topic = format!("dtwin/v1/alert-state/{machine}");
        assert!(
            seen(&reader, &topic, |p| {
                dtwin_schema::from_json::<dtwin_schema::AlertSnapshot>(p)
                    .is_ok_and(|s| s.firing.is_some())
            })
            .await,
            "the alerter may publish {machine}'s alert state"
        );
    }
    let event = |kind: &'static str| {
        move |p: &[u8]| {
            dtwin_schema::from_json::<dtwin_schema::AlertEvent>(p)
                .is_ok_and(|e| serde_json::to_value(e.event).unwrap() == kind)
        }
    };
    assert!(
        seen(&reader, "dtwin/v1/alerts/machine-001", event("silenced")).await,
        "the alerter may read the operator's silence"
    );
    assert!(seen(&reader, "dtwin/v1/alerts/machine-002", event("sent")).await);

    shutdown.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    operator.close().await;
    scorer.close().await;
}
