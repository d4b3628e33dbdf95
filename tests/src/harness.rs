//! Test harness: real brokers on free ports, the stack in-process, and a recorder that
//! subscribes to everything under the prefix.
//!
//! Every test gets its own broker (embedded rumqttd or a Mosquitto child process) on a port it
//! reserved, its own temporary outbox, and stops what it started.

use anyhow::Context;
use dtwin_bus::{BrokerUrl, BusConfig, Message, QoS, Subscription};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running service: its task, with the service's error as anyhow so tests can keep tasks of
/// different services together.
pub type ServiceTask = tokio::task::JoinHandle<anyhow::Result<()>>;

/// How long a test waits for a service to subscribe before it fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Spawns a service's run future (see [`ServiceTask`]).
pub fn spawn<E>(
    run: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
) -> ServiceTask
where
    anyhow::Error: From<E>,
    E: 'static,
{
    tokio::spawn(async move { Ok(run.await?) })
}

/// Runs a built service until `stop` fires, returning once it is ready (connected and
/// subscribed): what a test waits for before it publishes, instead of a fixed sleep.
///
/// # Panics
/// When the service is not ready within [`READY_TIMEOUT`].
pub async fn start<S: dtwin_runtime::Service>(
    service: S,
    stop: &tokio_util::sync::CancellationToken,
) -> ServiceTask {
    let stop = stop.clone();
    let ready = service.ready();
    let task = tokio::spawn(async move { Ok(service.serve(stop).await?) });
    if let Err(e) = ready.wait_for(READY_TIMEOUT).await {
        panic!("service not ready: {e}");
    }
    task
}

/// Starts the feature service with `feature` and an inference service with the default
/// configuration on the same broker (the shipped milling model; a profile's model arrives
/// retained on its topic), returning once both are ready.
///
/// # Panics
/// When either service does not build or is not ready within [`READY_TIMEOUT`].
pub async fn start_scoring(
    feature: dtwin_feature::FeatureConfig,
    stop: &tokio_util::sync::CancellationToken,
) -> [ServiceTask; 2] {
    let inference = dtwin_inference::InferenceConfig::new(feature.common.broker.clone());
    [
        start(
            dtwin_feature::FeatureService::build(feature)
                .await
                .expect("feature service builds"),
            stop,
        )
        .await,
        start(
            dtwin_inference::InferenceService::build(inference)
                .await
                .expect("inference service builds"),
            stop,
        )
        .await,
    ]
}

/// Held by the tests that flood a broker as fast as it takes (the share-group afap stream, the
/// fuzzer's 20,000 payloads), so two of them never share this machine's two cores inside one
/// binary. drift.rs and fuzz_ingest.rs are binaries of their own: they count every message of
/// a flood, and beside any other test (on a broker of its own) a stalled subscriber lost QoS 1
/// messages in the embedded broker (drift: 5,573 and 5,655 of 6,000 readings in two runs; the
/// fuzzer: 10,028 of 12,404 dead letters), the broker's own limit under a stall (issue 22),
/// not those tests' subject.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Starts an embedded rumqttd on a free port and returns its URL.
///
/// # Panics
/// When no port is free or the broker does not start (the test cannot go on).
pub fn embedded_broker() -> BrokerUrl {
    let port = dtwin_broker::free_port().expect("a free port");
    let addr = format!("127.0.0.1:{port}")
        .parse()
        .expect("valid socket address");
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(addr)).expect("embedded broker starts");
    BrokerUrl::new("127.0.0.1", port)
}

/// A Mosquitto broker run as a child process; killed on drop.
pub struct Mosquitto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// Where Debian installs mosquitto.
pub fn mosquitto_binary() -> Option<PathBuf> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// `started`, or `None` (saying why) when Mosquitto is simply not installed on a developer's
/// machine; under CI (`CI` set) or when installed, a failure to start is a test failure.
///
/// # Panics
/// When Mosquitto is installed, or `CI` is set, and it did not start.
pub fn mosquitto_or_skip(started: anyhow::Result<Mosquitto>) -> Option<Mosquitto> {
    match started {
        Ok(m) => Some(m),
        Err(e) if std::env::var_os("CI").is_none() && mosquitto_binary().is_none() => {
            eprintln!("skipping: {e:#}");
            None
        }
        Err(e) => panic!("{e:#}"),
    }
}

impl Mosquitto {
    /// Starts Mosquitto on a free port with a config file written here.
    ///
    /// # Errors
    /// Mosquitto is not installed (run `bash tests/run.sh`, which installs it) or does not start.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(|port, _dir| {
            Ok(format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_packet_size 16777216\nmax_queued_messages 100000\n"
            ))
        })
    }

    /// Starts Mosquitto on a free port with the config `conf(port, dir)` returns; `dir` is a
    /// temporary folder (removed on drop) for password files, certificates and the like.
    ///
    /// # Errors
    /// As [`Mosquitto::start`], or what `conf` returns.
    pub fn start_with(
        conf: impl FnOnce(u16, &Path) -> anyhow::Result<String>,
    ) -> anyhow::Result<Self> {
        let bin = mosquitto_binary().context(
            "mosquitto is not installed: run `bash tests/run.sh` (it apt-get installs mosquitto)",
        )?;
        let port = dtwin_broker::free_port()?;
        let dir = tempfile::tempdir()?;
        let text = conf(port, dir.path())?;
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, text)?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn mosquitto")?;
        let me = Self {
            child,
            port,
            _dir: dir,
        };
        wait_for_port(port, Duration::from_secs(5)).context("mosquitto did not start listening")?;
        Ok(me)
    }

    /// Its URL.
    pub fn url(&self) -> BrokerUrl {
        BrokerUrl::new("127.0.0.1", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `risk` on its machine's risk topic under the default prefix (QoS 1).
///
/// # Panics
/// When the connection is closed.
pub async fn publish_verdict(client: &dtwin_bus::BusClient, risk: &dtwin_schema::Risk) {
    client
        .publish(
            dtwin_schema::Topics::default().risk(&risk.machine_id),
            QoS::AtLeastOnce,
            false,
            dtwin_schema::to_json(risk),
        )
        .await
        .expect("the verdict is queued");
}

/// Debian's aiosmtpd (`/usr/bin/python3 -m aiosmtpd`, package python3-aiosmtpd, installed by
/// `tests/run.sh`) on 127.0.0.1:`port`, storing every message it accepts in a maildir; killed
/// on drop.
pub struct Smtpd {
    child: Child,
}

impl Smtpd {
    /// Starts it and waits until it listens, or returns `None` (saying why) when aiosmtpd is not
    /// installed on a developer's machine.
    ///
    /// # Panics
    /// When aiosmtpd is missing under CI (`CI` set), or does not start.
    pub fn start(port: u16, maildir: &Path) -> Option<Self> {
        let python = "/usr/bin/python3";
        let installed = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3-aiosmtpd must be installed in CI"
            );
            eprintln!("no aiosmtpd: bash tests/run.sh installs Debian's python3-aiosmtpd");
            return None;
        }
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let me = Self { child };
        wait_for_port(port, Duration::from_secs(15)).expect("aiosmtpd listens");
        Some(me)
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
///
/// # Errors
/// When nothing does within `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("nothing listens on port {port} after {timeout:?}")
}

/// A connection subscribed (QoS 1) to every machine's feature vectors and risk verdicts under
/// the default prefix, with room for 65,536 waiting messages, ready when returned.
///
/// # Panics
/// When the subscription is not acknowledged within 10 s.
pub async fn watch_features_and_risk(broker: &BrokerUrl, client_id: &str) -> dtwin_bus::Connection {
    let mut cfg = BusConfig::new(broker.clone(), client_id);
    cfg.inbox_capacity = 1 << 16;
    let conn = dtwin_bus::connect(
        &cfg,
        vec![
            Subscription::new("dtwin/v1/machines/+/features", QoS::AtLeastOnce),
            Subscription::new("dtwin/v1/machines/+/risk", QoS::AtLeastOnce),
        ],
    );
    assert!(
        conn.client.wait_ready(Duration::from_secs(10)).await,
        "watcher subscribed"
    );
    conn
}

/// Milliseconds since the Unix epoch (Sparkplug timestamps, v2 `ts`).
pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since.as_millis()).expect("milliseconds fit u64")
}

/// Records every message under a filter.
pub struct Recorder {
    messages: Arc<Mutex<Vec<Message>>>,
    client: dtwin_bus::BusClient,
}

impl Recorder {
    /// Subscribes to `filter` on `broker` and waits until the subscription is active.
    ///
    /// # Panics
    /// When the subscription is not acknowledged within 10 s.
    pub async fn start(broker: &BrokerUrl, filter: &str) -> Self {
        let id = format!(
            "recorder-{}",
            std::process::id() as u64 * 1000 + u64::from(rand_suffix())
        );
        let mut conn = dtwin_bus::connect(
            &BusConfig::new(broker.clone(), id),
            vec![Subscription::new(filter, QoS::AtLeastOnce)],
        );
        assert!(
            conn.client.wait_ready(Duration::from_secs(10)).await,
            "recorder subscribed"
        );
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let client = conn.client.clone();
        tokio::spawn(async move {
            while let Some(m) = conn.inbox.recv().await {
                // The lock is never held across an await.
                sink.lock().expect("recorder lock").push(m);
            }
        });
        Self { messages, client }
    }

    /// A client on the recorder's connection, for publishing test input.
    pub fn client(&self) -> &dtwin_bus::BusClient {
        &self.client
    }

    /// A snapshot of everything recorded so far.
    pub fn all(&self) -> Vec<Message> {
        self.messages.lock().expect("recorder lock").clone()
    }

    /// Publishes `(topic, payload)` at QoS 1, not retained, on the recorder's connection.
    ///
    /// # Panics
    /// When the connection is closed.
    pub async fn send(&self, (topic, payload): (String, Vec<u8>)) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
    }

    /// Checks every message recorded so far against the contract (proto-schemas/), naming
    /// the first that breaks it; returns how many were checked.
    ///
    /// # Panics
    /// On the first message that breaks the contract.
    pub fn assert_contract(&self) -> usize {
        let contract = crate::contract::Contract::load().expect("proto-schemas load");
        let all = self.all();
        for m in &all {
            contract
                .check(&m.topic, &m.payload)
                .unwrap_or_else(|e| panic!("{}: {e}", m.topic));
        }
        all.len()
    }

    /// Waits until a recorded message satisfies `pred` and returns it, or `None` on timeout.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(m) = self
                .messages
                .lock()
                .expect("recorder lock")
                .iter()
                .find(|m| pred(m))
                .cloned()
            {
                return Some(m);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn rand_suffix() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish() as u16
}

/// Waits until a `.eml` file in `dir` satisfies `pred`; returns its path and text.
pub async fn wait_for_eml(
    dir: &Path,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> Option<(PathBuf, String)> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "eml") {
                    if let Ok(text) = std::fs::read_to_string(&p) {
                        if pred(&text) {
                            return Some((p, text));
                        }
                    }
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Undoes quoted-printable encoding (soft line breaks and `=XX` escapes) so a test can search
/// an e-mail's text as a person would read it.
pub fn unquote_printable(s: &str) -> String {
    let joined = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() && joined.is_char_boundary(i + 3) {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A risk verdict for `machine` at 2026-11-22 10:00:00 UTC + `seq` seconds, with probability
/// `p`: AT_RISK and CRITICAL from 0.5, else HEALTHY and NORMAL; warm, no actions. For feeding
/// the alerter directly.
///
/// # Panics
/// When `machine` is not a valid machine id.
pub fn verdict(machine: &str, seq: u64, p: f64) -> dtwin_schema::Risk {
    use dtwin_schema::{Level, RiskStatus};
    let ts = time::macros::datetime!(2026-11-22 10:00:00 UTC)
        + time::Duration::seconds(i64::try_from(seq).unwrap_or(i64::MAX));
    let at_risk = p >= 0.5;
    dtwin_schema::Risk {
        schema: dtwin_schema::RISK_SCHEMA.to_owned(),
        machine_id: dtwin_schema::MachineId::parse(machine).expect("a valid machine id"),
        ts,
        source_ts: ts,
        seq,
        probability: p,
        status: if at_risk {
            RiskStatus::AtRisk
        } else {
            RiskStatus::Healthy
        },
        level: if at_risk {
            Level::Critical
        } else {
            Level::Normal
        },
        health_score: 100.0 * (1.0 - p),
        actions: Vec::new(),
        factors: Vec::new(),
        model: dtwin_schema::ModelRef {
            id: "rf".to_owned(),
            version: "1".to_owned(),
        },
        cold: false,
        latest: std::collections::BTreeMap::new(),
        profile: None,
        insights: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_is_undone() {
        assert_eq!(
            unquote_printable("AT RI=\nSK a=3Db =C3=A9"),
            "AT RISK a=b é"
        );
        assert_eq!(unquote_printable("end="), "end=");
    }
}
