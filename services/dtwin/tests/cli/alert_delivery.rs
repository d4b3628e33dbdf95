//! Alert e-mails are never lost and never sent twice, against a real SMTP server: Debian's
//! aiosmtpd (`/usr/bin/python3 -m aiosmtpd`, installed by `tests/run.sh`), started here on a
//! free port, its maildir read back and every message parsed.
//!
//! (a) SMTP down while 50 alerts fire, then back: all 50 arrive exactly once.
//! (b) `dtwin alerter` SIGKILLed mid-send and restarted: every alert arrives; at most one
//!     copy of each is unmarked, and a resend of a send the kill cut off is marked
//!     `X-Dtwin-Possible-Duplicate` with the same Message-ID.
//! (c) the broker restarted: the alerter reconnects, resubscribes and goes on.
//! Plus the message itself: headers, text and HTML parts, escaping, threading.

use dtwin_bus::{BrokerUrl, BusConfig};
use dtwin_schema::{Action, Level, MachineId, ModelRef, Risk, RiskStatus, RISK_SCHEMA};
use dtwin_tests::harness;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A received e-mail, parsed.
#[derive(Debug, Clone)]
struct Mail {
    message_id: String,
    subject: String,
    duplicate: bool,
    raw: Vec<u8>,
}

fn received(maildir: &Path) -> Vec<Mail> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(rd) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let raw = std::fs::read(e.path()).expect("reads mail");
            let parsed = mailparse::parse_mail(&raw).expect("a parseable e-mail");
            let header = |n: &str| {
                parsed
                    .headers
                    .iter()
                    .find(|h| h.get_key_ref().eq_ignore_ascii_case(n))
                    .map(|h| h.get_value())
            };
            out.push(Mail {
                message_id: header("Message-ID").unwrap_or_default(),
                subject: header("Subject").unwrap_or_default(),
                duplicate: header("X-Dtwin-Possible-Duplicate").is_some_and(|v| v == "yes"),
                raw,
            });
        }
    }
    out
}

fn wait_mails(maildir: &Path, n: usize, timeout: Duration) -> Vec<Mail> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = received(maildir);
        let unique: std::collections::HashSet<&str> =
            got.iter().map(|m| m.message_id.as_str()).collect();
        if unique.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count_json(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    })
}

struct Alerter {
    child: Child,
    /// Where it serves `/healthz`.
    metrics_port: u16,
}

impl Alerter {
    fn start(broker: &BrokerUrl, smtp_port: u16, spool: &Path, extra: &[&str]) -> Self {
        let metrics_port = dtwin_broker::free_port().expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_dtwin"))
            .arg("alerter")
            .arg("--broker")
            .arg(broker.to_string())
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .arg("--spool")
            .arg(spool)
            .arg("--smtp-url")
            .arg(format!("smtp://127.0.0.1:{smtp_port}"))
            .args(["--mail-to", "Maintenance <maintenance@example.com>"])
            .args(["--alert-digest-min", "1000", "--alert-group-wait-ms", "0"])
            .args(["--smtp-retry-ms", "100", "--smtp-retry-max-ms", "400"])
            .args(["--dashboard-url", "http://127.0.0.1:8080"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dtwin alerter starts");
        Self {
            child,
            metrics_port,
        }
    }

    /// Waits until `/healthz` answers 200: connected and subscribed, so a verdict published
    /// now reaches it.
    async fn ready(&self) {
        crate::common::wait_healthy(self.metrics_port).await;
    }

    fn kill(&mut self) {
        // SIGKILL: no shutdown code runs.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Alerter {
    fn drop(&mut self) {
        self.kill();
    }
}

fn risk(machine: &str, seq: u64, p: f64) -> Risk {
    let ts = time::macros::datetime!(2026-11-22 10:00:00 UTC) + time::Duration::seconds(seq as i64);
    Risk {
        schema: RISK_SCHEMA.to_owned(),
        machine_id: MachineId::parse(machine).expect("valid id"),
        ts,
        source_ts: ts,
        seq,
        probability: p,
        status: if p >= 0.5 {
            RiskStatus::AtRisk
        } else {
            RiskStatus::Healthy
        },
        level: if p >= 0.8 {
            Level::Critical
        } else {
            Level::Normal
        },
        health_score: 100.0 * (1.0 - p),
        actions: vec![Action {
            code: "vibration_high".to_owned(),
            severity: Level::Critical,
            text: r#"High vibration <script>alert("x")</script> & bearing: check imbalance"#
                .to_owned(),
        }],
        factors: Vec::new(),
        model: ModelRef {
            id: "rf".to_owned(),
            version: "2".to_owned(),
        },
        cold: false,
        latest: BTreeMap::from([("vibration_mm_s".to_owned(), 9.5)]),
        profile: None,
        insights: Default::default(),
    }
}

/// Publishes two AT_RISK verdicts (enough to fire with the default 2 of 3) per machine.
async fn fire(broker: &BrokerUrl, machines: &[String]) {
    let conn = dtwin_bus::connect(&BusConfig::new(broker.clone(), "verdict-feeder"), vec![]);
    assert!(conn.client.wait_ready(Duration::from_secs(10)).await);
    for seq in 1..=2 {
        for m in machines {
            harness::publish_verdict(&conn.client, &risk(m, seq, 0.9)).await;
        }
    }
    tokio::time::timeout(Duration::from_secs(10), conn.close())
        .await
        .expect("the broker takes the verdicts");
}

fn machines(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:02}")).collect()
}

/// Message-IDs received, and how many unmarked and marked copies each has.
fn tally(mails: &[Mail]) -> HashMap<String, (usize, usize)> {
    let mut t: HashMap<String, (usize, usize)> = HashMap::new();
    for m in mails {
        let e = t.entry(m.message_id.clone()).or_default();
        if m.duplicate {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_then_back_delivers_all_50_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let spool = dir.path().join("spool");
    let broker = harness::embedded_broker();
    let smtp_port = dtwin_broker::free_port().unwrap();
    // Nothing listens on smtp_port yet: the server is down.
    let alerter = Alerter::start(&broker, smtp_port, &spool, &[]);
    alerter.ready().await;
    let ms = machines("down", 50);
    fire(&broker, &ms).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while count_json(&spool.join("pending")) < 50 {
        assert!(
            Instant::now() < deadline,
            "50 alerts queued in the spool while SMTP is down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few retries fail against the closed port.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(received(&maildir).is_empty());
    assert_eq!(
        count_json(&spool.join("pending")),
        50,
        "nothing dropped while down"
    );

    let Some(_smtpd) = harness::Smtpd::start(smtp_port, &maildir) else {
        return;
    };
    wait_mails(&maildir, 50, Duration::from_secs(30));
    // Anything sent twice would arrive within this settle time.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails = received(&maildir);
    let t = tally(&mails);
    assert_eq!(
        t.len(),
        50,
        "50 distinct alerts arrived: {:?}",
        t.keys().collect::<Vec<_>>()
    );
    assert_eq!(mails.len(), 50, "each exactly once");
    assert!(
        mails.iter().all(|m| !m.duplicate),
        "no crash, so no duplicate marks"
    );
    for m in &ms {
        assert_eq!(
            mails
                .iter()
                .filter(|x| x.subject.contains(m.as_str()))
                .count(),
            1,
            "{m} once"
        );
    }
    assert_eq!(count_json(&spool.join("pending")), 0);
    assert_eq!(count_json(&spool.join("sent")), 50);
    check_message(&mails[0].raw);
}

/// Headers, both parts, escaping, the dashboard link.
fn check_message(raw: &[u8]) {
    let m = mailparse::parse_mail(raw).expect("parses");
    let h = |n: &str| {
        m.headers
            .iter()
            .find(|x| x.get_key_ref().eq_ignore_ascii_case(n))
            .map(|x| x.get_value())
            .unwrap_or_else(|| panic!("header {n}"))
    };
    assert!(h("From").contains("dtwin@localhost"));
    assert!(h("To").contains("maintenance@example.com"));
    assert!(
        h("Subject").starts_with("[dtwin] AT RISK down-"),
        "{}",
        h("Subject")
    );
    assert!(h("Subject").contains("90 % risk (CRITICAL)"));
    assert!(h("Message-ID").ends_with(".firing@dtwin>"));
    assert!(!h("Date").is_empty());
    assert_eq!(m.ctype.mimetype, "multipart/alternative");
    assert_eq!(m.subparts.len(), 2);
    let text = m.subparts[0].get_body().expect("text body");
    let html = m.subparts[1].get_body().expect("html body");
    assert_eq!(m.subparts[0].ctype.mimetype, "text/plain");
    assert_eq!(m.subparts[1].ctype.mimetype, "text/html");
    assert!(
        text.contains(r#"High vibration <script>alert("x")</script> & bearing"#),
        "{text}"
    );
    assert!(
        html.contains(
            "High vibration &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; bearing"
        ),
        "escaped in HTML"
    );
    assert!(!html.contains("<script>"), "no markup from the bus");
    assert!(html.contains("90 %"), "risk badge");
    assert!(
        html.contains("http://127.0.0.1:8080/machine/down-"),
        "link to the machine"
    );
    assert!(html.contains("vibration_mm_s"), "recent readings");
    assert!(html.contains("UTC"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_alerter_loses_nothing_and_marks_any_second_copy() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let spool = dir.path().join("spool");
    let broker = harness::embedded_broker();
    let smtp_port = dtwin_broker::free_port().unwrap();
    let Some(_smtpd) = harness::Smtpd::start(smtp_port, &maildir) else {
        return;
    };
    let mut alerter = Alerter::start(&broker, smtp_port, &spool, &[]);
    alerter.ready().await;
    let ms = machines("kill", 50);
    fire(&broker, &ms).await;
    // Kill it as soon as some mails went out: mid-send, with verdicts and records in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while received(&maildir).len() < 5 {
        assert!(Instant::now() < deadline, "mails start arriving");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    alerter.kill();
    let at_kill = received(&maildir).len();
    eprintln!(
        "killed with {at_kill} mails received, {} records pending",
        count_json(&spool.join("pending"))
    );
    assert!(at_kill < 50, "killed before it finished ({at_kill})");
    let _alerter = Alerter::start(&broker, smtp_port, &spool, &[]);
    wait_mails(&maildir, 50, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails = received(&maildir);
    let t = tally(&mails);
    assert_eq!(t.len(), 50, "every alert arrived");
    for (id, (plain, marked)) in &t {
        // A send cut by the kill may or may not have reached the server; the retry is then
        // marked, so an unmarked second copy never exists.
        assert!(*plain <= 1, "{id}: at most one unmarked copy");
        assert!(*marked <= 1, "{id}: at most one marked copy");
        assert!(plain + marked >= 1, "{id}: arrived");
    }
    let marked: usize = t.values().map(|(_, m)| m).sum();
    eprintln!(
        "{} mails for 50 alerts, {marked} marked as possible duplicates",
        mails.len()
    );
    assert_eq!(count_json(&spool.join("pending")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerter_rides_out_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let spool = dir.path().join("spool");
    let port = dtwin_broker::free_port().unwrap();
    let broker = BrokerUrl::new("127.0.0.1", port);
    let start_broker = || {
        Command::new(env!("CARGO_BIN_EXE_dtwin"))
            .args(["broker", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dtwin broker starts")
    };
    let mut b = start_broker();
    harness::wait_for_port(port, Duration::from_secs(10)).unwrap();
    let smtp_port = dtwin_broker::free_port().unwrap();
    let Some(_smtpd) = harness::Smtpd::start(smtp_port, &maildir) else {
        let _ = b.kill();
        let _ = b.wait();
        return;
    };
    let alerter = Alerter::start(&broker, smtp_port, &spool, &[]);
    alerter.ready().await;
    fire(&broker, &machines("before", 3)).await;
    assert_eq!(wait_mails(&maildir, 3, Duration::from_secs(15)).len(), 3);

    let _ = b.kill();
    let _ = b.wait();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut b = start_broker();
    harness::wait_for_port(port, Duration::from_secs(10)).unwrap();
    // The alerter must reconnect and resubscribe (the restarted broker forgot its session).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut round = 0;
    loop {
        round += 1;
        fire(&broker, &machines(&format!("after{round}"), 1)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if received(&maildir).len() > 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no alert after the broker restart"
        );
    }
    let mails = received(&maildir);
    assert!(mails.iter().any(|m| m.subject.contains("after")));
    let _ = b.kill();
    let _ = b.wait();
}
