//! `dtwin alert ack|clear` and `dtwin alerter --webhook-url` as processes: an alert fires, is
//! acknowledged (a second acknowledgement is refused with the alerter's reason), is cleared
//! (clearing again finds no open alert); a local HTTP receiver gets each notification in
//! Alertmanager's format with its delivery id, and the alerter's log never shows the URL's
//! secret.

use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_schema::{
    AlertEvent, AlertEventKind, Level, MachineId, ModelRef, Risk, RiskStatus, Topics, RISK_SCHEMA,
};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "S3CRETTOKEN";

fn verdict(secs: i64) -> Risk {
    Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: MachineId::parse("press-1").expect("valid id"),
        ts: dtwin_schema::time_fmt::now() + time::Duration::seconds(secs),
        source_ts: dtwin_schema::time_fmt::now(),
        seq: 1,
        probability: 0.9,
        status: RiskStatus::AtRisk,
        level: Level::Critical,
        health_score: 10.0,
        actions: Vec::new(),
        factors: Vec::new(),
        model: ModelRef {
            id: "rf".to_owned(),
            version: "1".to_owned(),
        },
        cold: false,
        latest: BTreeMap::new(),
        profile: None,
        insights: Default::default(),
    }
}

/// A minimal HTTP/1.1 receiver: answers 200 to every POST and keeps (delivery id, body).
async fn receiver() -> (u16, Arc<Mutex<Vec<(String, serde_json::Value)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let port = listener.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let head = text[..end].to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let id = head
                        .lines()
                        .find_map(|l| l.strip_prefix("x-dtwin-delivery-id:"))
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    let body = serde_json::from_slice(&buf[end + 4..end + 4 + len])
                        .unwrap_or(serde_json::Value::Null);
                    keep.lock().unwrap().push((id, body));
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    buf.clear();
                }
            });
        }
    });
    (port, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_ack_and_clear_alerts_from_the_cli_and_a_webhook_gets_them() {
    let port = dtwin_broker::free_port().expect("a free port");
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(
        ([127, 0, 0, 1], port).into(),
    ))
    .expect("broker starts");
    let broker = BrokerUrl::new("127.0.0.1", port).to_string();
    let (hook_port, got) = receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("alerter.log");
    let metrics_port = dtwin_broker::free_port().expect("a free port");
    let mut alerter = Command::new(env!("CARGO_BIN_EXE_dtwin"))
        .args(["alerter", "--broker", &broker, "--alert-group-wait-ms", "0"])
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .arg("--outbox")
        .arg(dir.path().join("outbox"))
        .env(
            "DTWIN_WEBHOOK_URL",
            format!("http://127.0.0.1:{hook_port}/hooks/{SECRET}"),
        )
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("dtwin alerter starts");
    crate::common::wait_healthy(metrics_port).await;

    let topics = Topics::default();
    let m = MachineId::parse("press-1").unwrap();
    let mut probe = dtwin_bus::connect(
        &BusConfig::new(BrokerUrl::new("127.0.0.1", port), "alert-cli-probe"),
        vec![Subscription::new(topics.alert(&m), QoS::AtLeastOnce)],
    );
    assert!(probe.client.wait_ready(Duration::from_secs(5)).await);
    for s in 0..2 {
        let p = dtwin_schema::to_json(&verdict(s));
        probe
            .client
            .publish(topics.risk(&m), QoS::AtLeastOnce, false, p)
            .await
            .expect("publish");
    }
    let alert_id = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), probe.inbox.recv())
            .await
            .expect("the alert fires")
            .expect("inbox open");
        let e: AlertEvent = dtwin_schema::from_json(&msg.payload).expect("an event");
        if e.event == AlertEventKind::Firing {
            break e.alert_id;
        }
    };

    let cli = |args: &[&str]| {
        let broker = broker.clone();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_dtwin"))
                    .arg("alert")
                    .args(&args)
                    .args(["--broker", &broker])
                    .output()
                    .expect("dtwin alert runs")
            })
            .await
            .expect("joins")
        }
    };
    let out = cli(&[
        "ack",
        "press-1",
        "--comment",
        "bearing ordered",
        "--by",
        "ops",
    ])
    .await;
    let text = crate::common::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("acknowledged {alert_id} on press-1 (by ops)")
    );
    let out = cli(&["ack", "press-1", "--by", "anna"]).await;
    let text = crate::common::output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("already_acknowledged"), "{text}");
    assert!(text.contains("already acknowledged by ops"), "{text}");
    let out = cli(&["clear", "press-1", "--by", "ops"]).await;
    let text = crate::common::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("cleared {alert_id} on press-1 (by ops)")
    );
    let out = cli(&["clear", "press-1"]).await;
    let text = crate::common::output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("press-1 has no open alert"), "{text}");
    let out = cli(&["ack", "no/such"]).await;
    assert!(!out.status.success());

    // The webhook got the firing and the clearing (nothing for the acknowledgement in
    // Alertmanager's format), each with its delivery id.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = got.lock().unwrap().clone();
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    // (The receiver reads the head lowercased.)
    let want = [format!("{alert_id}.firing"), format!("{alert_id}.cleared")];
    assert_eq!(ids, want.map(|w| w.to_ascii_lowercase()));
    assert_eq!(got[0].1["version"], "4");
    assert_eq!(got[0].1["status"], "firing");
    assert_eq!(got[1].1["status"], "resolved");

    let _ = alerter.kill();
    let _ = alerter.wait();
    probe.close().await;
    let text = std::fs::read_to_string(&log).expect("the log");
    assert!(text.contains("webhook delivered"), "{text}");
    assert!(
        !text.contains(SECRET),
        "the URL's secret is in the log:\n{text}"
    );
}
