//! A three-node NATS cluster (MQTT + JetStream) started through `deploy/nats/cluster.sh`, the
//! script a user runs, on free loopback ports and a temporary folder; nodes can be killed
//! (SIGKILL) and restarted, and everything is stopped on drop.

use anyhow::Context;
use dtwin_bus::{BrokerUrl, Brokers};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where Debian installs nats-server.
pub fn nats_binary() -> Option<PathBuf> {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// `started`, or `None` (saying why) when nats-server is simply not installed on a developer's
/// machine; under CI (`CI` set) or when installed, a failure to start is a test failure.
///
/// # Panics
/// When nats-server is installed, or `CI` is set, and the cluster did not start.
pub fn nats_or_skip(started: anyhow::Result<NatsCluster>) -> Option<NatsCluster> {
    match started {
        Ok(c) => Some(c),
        Err(e) if std::env::var_os("CI").is_none() && nats_binary().is_none() => {
            eprintln!("skipping: {e:#}");
            None
        }
        Err(e) => panic!("{e:#}"),
    }
}

/// The three nodes; node `i` (0-2) is the script's node `i + 1`.
pub struct NatsCluster {
    nodes: [Option<Child>; 3],
    mqtt: [u16; 3],
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/nats/cluster.sh"
    ))
}

impl NatsCluster {
    /// Starts the three nodes and waits until each answers `/healthz` (JetStream has a meta
    /// leader), at most 30 s.
    ///
    /// # Errors
    /// nats-server is not installed (`bash tests/run.sh` installs it), no free ports, or a
    /// node that does not come up (its log is in the error).
    pub fn start() -> anyhow::Result<Self> {
        nats_binary().context(
            "nats-server is not installed: run `bash tests/run.sh` (it apt-get installs nats-server)",
        )?;
        let dir = tempfile::tempdir()?;
        let mut ports = [[0u16; 3]; 4];
        for group in &mut ports {
            for p in group.iter_mut() {
                *p = dtwin_broker::free_port()?;
            }
        }
        let list = |g: &[u16; 3]| format!("{} {} {}", g[0], g[1], g[2]);
        let env = vec![
            ("NATS_DIR".to_owned(), dir.path().display().to_string()),
            ("NATS_MQTT_PORTS".to_owned(), list(&ports[0])),
            ("NATS_CLIENT_PORTS".to_owned(), list(&ports[1])),
            ("NATS_CLUSTER_PORTS".to_owned(), list(&ports[2])),
            ("NATS_HTTP_PORTS".to_owned(), list(&ports[3])),
        ];
        let mut me = Self {
            nodes: [None, None, None],
            mqtt: ports[0],
            env,
            dir,
        };
        for i in 0..3 {
            me.spawn(i)?;
        }
        me.wait_healthy()?;
        Ok(me)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("bash");
        c.arg(script()).args(args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("n{}.log", i + 1)))?;
        // `cluster.sh node N` execs nats-server: the child is the server itself, so killing
        // the child is SIGKILL to the node.
        let child = self
            .command(&["node", &(i + 1).to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawn cluster.sh node")?;
        self.nodes[i] = Some(child);
        Ok(())
    }

    /// Waits until every running node answers `/healthz`.
    ///
    /// # Errors
    /// A node not healthy within 30 s (with the tail of its log).
    pub fn wait_healthy(&self) -> anyhow::Result<()> {
        let out = self
            .command(&["wait"])
            .output()
            .context("run cluster.sh wait")?;
        if out.status.success() {
            return Ok(());
        }
        let logs: String = (1..=3)
            .map(|n| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("n{n}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- n{n}\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect();
        anyhow::bail!(
            "NATS cluster not healthy: {}\n{logs}",
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Node `i`'s MQTT URL.
    pub fn url(&self, i: usize) -> BrokerUrl {
        BrokerUrl::new("127.0.0.1", self.mqtt[i])
    }

    /// Every node, starting with node `first` (then the others in order): what a service
    /// placed on node `first` is given.
    pub fn brokers(&self, first: usize) -> Brokers {
        let all =
            Brokers::new((0..3).map(|i| self.url(i)).collect()).expect("three nodes, never empty");
        all.rotated(first)
    }

    /// Kills node `i` with SIGKILL (a crash: no clean shutdown, no last wills sent by it).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again (with its JetStream data) and waits until its MQTT port listens.
    /// Not for `/healthz`: a restarted 2.9 node can report its own retained-message consumer
    /// "not current" for longer than 30 s while it already serves MQTT.
    ///
    /// # Errors
    /// The node does not listen within 15 s.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        self.spawn(i)?;
        crate::harness::wait_for_port(self.mqtt[i], Duration::from_secs(15))
    }

    /// Waits until MQTT works end to end at QoS 1 on every node: a subscription on node 1
    /// receives a message published on each node. `/healthz` answers before the MQTT streams
    /// exist (NATS creates them on the first MQTT connection, and refuses QoS 1 subscriptions
    /// until they have leaders).
    ///
    /// # Panics
    /// When that does not happen within 30 s.
    pub async fn wait_mqtt(&self) {
        use dtwin_bus::{BusConfig, QoS, Subscription};
        let mut sub = dtwin_bus::connect(
            &BusConfig::new(self.url(0), "nats-ready-sub"),
            vec![Subscription::new("dtwin-test/ready", QoS::AtLeastOnce)],
        );
        assert!(
            sub.client.wait_ready(Duration::from_secs(30)).await,
            "a QoS 1 subscription on node 1 within 30 s"
        );
        for i in 0..3 {
            let publisher =
                dtwin_bus::connect(&BusConfig::new(self.url(i), "nats-ready-pub"), vec![]);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let _ = publisher
                    .client
                    .publish("dtwin-test/ready", QoS::AtLeastOnce, false, vec![i as u8])
                    .await;
                let got = tokio::time::timeout(Duration::from_millis(500), sub.inbox.recv()).await;
                if matches!(got, Ok(Some(m)) if m.payload[..] == [i as u8]) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "MQTT through node {} within 30 s",
                    i + 1
                );
            }
            publisher.close().await;
        }
        sub.close().await;
    }

    /// The node's log so far (what nats-server wrote to stderr).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{}.log", i + 1))).unwrap_or_default()
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
    }
}
