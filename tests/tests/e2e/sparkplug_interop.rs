//! Sparkplug B interop with someone else's implementation (issue 18, item 5): an edge node
//! written with pysparkplug, a third-party Python library from PyPI (tests/sparkplug/
//! edge_node.py, the version pinned in tests/sparkplug/requirements.txt and installed into a
//! virtual environment by tests/run.sh), against dtwin's Sparkplug host, feature, inference and
//! alerter services, on the embedded broker and on Mosquitto.
//!
//! The node births a device whose metrics are the milling profile's sensor keys (with
//! aliases), sends DDATA by alias only (severe vibration: AT_RISK), then one DDATA whose `seq`
//! skips one. The host drops it and asks for a rebirth (NCMD `Node Control/Rebirth`); the
//! node honours it (NBIRTH and DBIRTH again on the same connection, then more data by
//! alias), and finally dies without an MQTT DISCONNECT, so the broker publishes its will: the
//! NDEATH with the NBIRTH's `bdSeq`.
//! Asserted: the device is a machine with milling feature vectors for every reading but the
//! lost one, AT_RISK verdicts and an alert e-mail naming it; one `seq_gap` dead letter; the
//! rebirth keeps the machine online (no flap) and the death takes it offline (retained);
//! every message on `dtwin/v1/#` validates against the contract.
//!
//! The interpreter is `DTWIN_SPARKPLUG_PYTHON`, or the virtual environment tests/run.sh makes.
//! Like Mosquitto, a developer machine without it skips with the reason; under CI it fails.

use dtwin_bus::BrokerUrl;
use dtwin_schema::{from_json, DeadLetter, Features, MachineStatus, Presence, Risk, RiskStatus};
use dtwin_sparkplug::{decode_payload, HostStateMessage, MetricValue, Payload};
use dtwin_tests::harness::{self, Mosquitto, Recorder};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);
/// DDATA before the gap and after the rebirth (the script's `--before` and `--after`).
const BEFORE: u64 = 12;
const AFTER: u64 = 3;
/// The script's tool wear at reading 0; reading i has `TOOL_WEAR + i`.
const TOOL_WEAR: f64 = 240.0;

/// The virtual environment's interpreter: `DTWIN_SPARKPLUG_PYTHON`, else where tests/run.sh
/// puts it.
fn python() -> Result<PathBuf, String> {
    let path = match std::env::var_os("DTWIN_SPARKPLUG_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .ok_or("neither DTWIN_SPARKPLUG_PYTHON nor HOME is set")?;
            cache.join("dtwin-sparkplug-venv/bin/python")
        }
    };
    let out = Command::new(&path)
        .args(["-c", "import pysparkplug; print(pysparkplug.__version__)"])
        .output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} cannot import pysparkplug: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    println!(
        "pysparkplug {} ({})",
        String::from_utf8_lossy(&out.stdout).trim(),
        path.display()
    );
    Ok(path)
}

/// As `harness::mosquitto_or_skip`: `None` (saying why) on a developer machine without the
/// library; under CI (`CI` set) its absence is a failure.
fn python_or_skip() -> Option<PathBuf> {
    match python() {
        Ok(p) => Some(p),
        Err(e) => {
            let why = format!(
                "pysparkplug is not installed ({e}): run `bash tests/run.sh`, which installs it \
                 into a virtual environment, or set DTWIN_SPARKPLUG_PYTHON"
            );
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipping: {why}");
            None
        }
    }
}

/// The Python edge node, its stdout read line by line; killed on drop.
struct Edge {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Edge {
    fn spawn(python: &PathBuf, broker: &BrokerUrl, group: &str, node: &str, device: &str) -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sparkplug/edge_node.py");
        let mut child = Command::new(python)
            .arg("-u")
            .arg(script)
            .args(["--host", &broker.host, "--port", &broker.port.to_string()])
            .args(["--group", group, "--node", node, "--device", device])
            .args([
                "--before",
                &BEFORE.to_string(),
                "--after",
                &AFTER.to_string(),
            ])
            .args(["--vibration", "15", "--tool-wear", &TOOL_WEAR.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the Python edge node starts");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Waits (off the async workers) for the next line starting with `prefix`, returning it.
    async fn expect(&mut self, prefix: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let got = tokio::task::block_in_place(|| self.lines.recv_timeout(left));
            match got {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                    if line.starts_with("ERROR") {
                        self.fail(&format!("waiting for {prefix}"));
                    }
                }
                Err(e) => self.fail(&format!("waiting for {prefix}: {e:?}")),
            }
        }
    }

    fn fail(&self, what: &str) -> ! {
        // Let the stderr reader catch up with a traceback.
        std::thread::sleep(Duration::from_millis(200));
        panic!(
            "edge node, {what}; its stdout: {:?}; its stderr:\n{}",
            self.seen,
            self.stderr.lock().unwrap()
        )
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("edge node's stdin");
        stdin.flush().unwrap();
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn of_topic<T: serde::de::DeserializeOwned>(recorder: &Recorder, topic: &str) -> Vec<T> {
    recorder
        .all()
        .iter()
        .filter(|m| m.topic == topic)
        .map(|m| from_json(&m.payload).unwrap())
        .collect()
}

fn sparkplug(recorder: &Recorder, topic: &str) -> Vec<Payload> {
    recorder
        .all()
        .iter()
        .filter(|m| m.topic == topic)
        .map(|m| decode_payload(&m.payload).unwrap())
        .collect()
}

/// Waits until `recorder` holds `n` messages on `topic`.
async fn wait_count(recorder: &Recorder, topic: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = recorder.all().iter().filter(|m| m.topic == topic).count();
        if got >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{got} of {n} messages on {topic}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bd_seq(p: &Payload) -> u64 {
    match p
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("bdSeq"))
    {
        Some(m) => match m.value {
            Some(MetricValue::LongValue(v)) => v,
            ref v => panic!("bdSeq {v:?}"),
        },
        None => panic!("no bdSeq in {p:?}"),
    }
}

async fn interop(broker: BrokerUrl, group: &str, node: &str, device: &str) {
    let Some(python) = python_or_skip() else {
        return;
    };
    let machine = format!("{group}.{node}.{device}");
    let status_topic = format!("dtwin/v1/machines/{machine}/status");
    let features_topic = format!("dtwin/v1/machines/{machine}/features");
    let risk_topic = format!("dtwin/v1/machines/{machine}/risk");
    let nbirth_topic = format!("spBv1.0/{group}/NBIRTH/{node}");
    let ncmd_topic = format!("spBv1.0/{group}/NCMD/{node}");

    // The stack: the Sparkplug host, feature and inference services, the alerter.
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let stop = CancellationToken::new();
    let recorder = Recorder::start(&broker, "dtwin/v1/#").await;
    let edge_side = Recorder::start(&broker, "spBv1.0/#").await;
    let mut alerter = dtwin_alerter::AlerterConfig::new(broker.clone());
    alerter.outbox_dir = outbox.clone();
    alerter.spool_dir = dir.path().join("spool");
    alerter.policy.group_wait = time::Duration::ZERO;
    let host = dtwin_sparkplug_host::SparkplugHostConfig::new(broker.clone());
    let [feature, inference] =
        harness::start_scoring(dtwin_feature::FeatureConfig::new(broker.clone()), &stop).await;
    let services = [
        feature,
        inference,
        harness::start(
            dtwin_alerter::AlerterService::build(alerter).await.unwrap(),
            &stop,
        )
        .await,
        harness::start(
            dtwin_sparkplug_host::SparkplugHostService::build(host)
                .await
                .unwrap(),
            &stop,
        )
        .await,
    ];
    edge_side
        .wait_for(WAIT, |m| {
            m.topic == "spBv1.0/STATE/dtwin"
                && HostStateMessage::decode(&m.payload).is_ok_and(|s| s.online)
        })
        .await
        .expect("the host's STATE, online");

    // Births and data by alias, the gap, the rebirth request honoured, more data.
    let mut edge = Edge::spawn(&python, &broker, group, node, device);
    edge.expect("BIRTH").await;
    for _ in 0..BEFORE {
        edge.expect("DATA").await;
    }
    let gap = edge.expect("GAP").await;
    edge.expect("REBIRTH_REQUESTED").await;
    edge.expect("REBIRTHED").await;
    for _ in 0..AFTER {
        edge.expect("DATA").await;
    }
    edge.expect("WAITING").await;

    // The host's request: NCMD `Node Control/Rebirth` = true, between the two NBIRTHs.
    let ddata_topic = format!("spBv1.0/{group}/DDATA/{node}/{device}");
    wait_count(&edge_side, &ddata_topic, (BEFORE + 1 + AFTER) as usize).await;
    let spb = edge_side.all();
    let at = |topic: &str| -> Vec<usize> {
        spb.iter()
            .enumerate()
            .filter(|(_, m)| m.topic == topic)
            .map(|(i, _)| i)
            .collect()
    };
    let (nbirths, ncmds) = (at(&nbirth_topic), at(&ncmd_topic));
    assert_eq!(ncmds.len(), 1, "one rebirth request: {ncmds:?}");
    assert_eq!(nbirths.len(), 2, "a birth and a rebirth: {nbirths:?}");
    assert!(nbirths[0] < ncmds[0] && ncmds[0] < nbirths[1]);
    let request = decode_payload(&spb[ncmds[0]].payload).unwrap();
    assert_eq!(
        request.metrics[0].name.as_deref(),
        Some("Node Control/Rebirth")
    );
    assert_eq!(
        request.metrics[0].value,
        Some(MetricValue::BooleanValue(true))
    );
    // The births: seq 0; the rebirth, on the same connection, keeps the bdSeq.
    let births = sparkplug(&edge_side, &nbirth_topic);
    assert!(births.iter().all(|b| b.seq == Some(0)), "{births:?}");
    assert_eq!(bd_seq(&births[0]), bd_seq(&births[1]));
    // The data went by alias only.
    let data = sparkplug(
        &edge_side,
        &format!("spBv1.0/{group}/DDATA/{node}/{device}"),
    );
    assert_eq!(data.len() as u64, BEFORE + 1 + AFTER);
    for d in &data {
        assert_eq!(d.metrics.len(), 7);
        assert!(
            d.metrics
                .iter()
                .all(|m| m.name.is_none() && m.alias.is_some()),
            "{d:?}"
        );
    }

    // Every reading but the lost one: the birth's, BEFORE, the rebirth's, AFTER.
    let readings = (1 + BEFORE + 1 + AFTER) as usize;
    let deadline = tokio::time::Instant::now() + WAIT;
    while of_topic::<Features>(&recorder, &features_topic).len() < readings {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{readings} vectors for {machine}: {:?}",
            of_topic::<Features>(&recorder, &features_topic)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let features = of_topic::<Features>(&recorder, &features_topic);
    assert_eq!(features.len(), readings);
    // No profile named: the built-in milling one.
    assert!(features.iter().all(|f| f.profile.is_none()), "{features:?}");
    let wear: Vec<f64> = features
        .iter()
        .map(|f| f.latest["tool_wear_min"] - TOOL_WEAR)
        .collect();
    let lost = (BEFORE + 1) as f64;
    let expected: Vec<f64> = (0..=BEFORE + 1 + AFTER + 1)
        .map(|i| i as f64)
        .filter(|&i| i != lost)
        .collect();
    assert_eq!(wear, expected, "readings in order, the gap's lost ({gap})");

    // Verdicts: AT_RISK once the short window is full, and an alert e-mail naming the machine.
    let risk = recorder
        .wait_for(WAIT, |m| {
            m.topic == risk_topic
                && from_json::<Risk>(&m.payload)
                    .is_ok_and(|r| r.status == RiskStatus::AtRisk && !r.cold)
        })
        .await
        .expect("an AT_RISK verdict");
    let risk: Risk = from_json(&risk.payload).unwrap();
    assert_eq!(risk.profile, None, "milling");
    assert!(
        risk.actions.iter().any(|a| a.code == "SEVERE_VIBRATION"),
        "{:?}",
        risk.actions
    );
    let (path, raw) = harness::wait_for_eml(&outbox, WAIT, |t| t.contains(&machine))
        .await
        .expect("an alert e-mail naming the machine");
    let eml = harness::unquote_printable(&raw);
    assert!(eml.contains("AT RISK"), "{}", path.display());

    // One dead letter: the message after the gap.
    let dead = of_topic::<DeadLetter>(&recorder, "dtwin/v1/deadletter/sparkplug");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].detail.starts_with("seq_gap"), "{dead:?}");
    let statuses = of_topic::<MachineStatus>(&recorder, &status_topic);
    assert!(
        statuses.iter().all(|s| s.state == Presence::Online),
        "the rebirth keeps the machine online: {statuses:?}"
    );
    assert!(!statuses.is_empty());

    // The death: the broker sends the will, the NDEATH with the live session's bdSeq.
    edge.say("die");
    edge.expect("DEATH").await;
    let ndeath = edge_side
        .wait_for(WAIT, |m| {
            m.topic == format!("spBv1.0/{group}/NDEATH/{node}")
        })
        .await
        .expect("the node's will, NDEATH");
    assert_eq!(
        bd_seq(&decode_payload(&ndeath.payload).unwrap()),
        bd_seq(&births[1])
    );
    recorder
        .wait_for(WAIT, |m| {
            m.topic == status_topic
                && from_json::<MachineStatus>(&m.payload)
                    .is_ok_and(|s| s.state == Presence::Offline)
        })
        .await
        .expect("offline after the death");
    let late = Recorder::start(&broker, &status_topic).await;
    let retained = late
        .wait_for(WAIT, |m| m.retain)
        .await
        .expect("the retained status");
    let retained: MachineStatus = from_json(&retained.payload).unwrap();
    assert_eq!(retained.state, Presence::Offline);
    assert_eq!(retained.machine_id.as_str(), machine);

    recorder.assert_contract();
    stop.cancel();
    for s in services {
        s.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparkplug_interop_pysparkplug_on_the_embedded_broker() {
    interop(harness::embedded_broker(), "plant2", "cell3", "mill9").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparkplug_interop_pysparkplug_on_mosquitto() {
    let Some(mosquitto) = harness::mosquitto_or_skip(Mosquitto::start()) else {
        return;
    };
    interop(mosquitto.url(), "plant3", "cell4", "mill5").await;
}
