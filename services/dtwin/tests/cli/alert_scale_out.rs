//! Two `dtwin alerter --instance` processes share the fleet on a real Mosquitto. Every
//! machine's alert fires exactly once, written by the instance that owns the machine; then one
//! instance is SIGKILLed, and the survivor takes its machines over with their open alerts (from
//! the retained `{prefix}/alert-state/{machine_id}`): verdicts that are still AT_RISK fire
//! nothing new, and the recovery resolves each alert once, under the alert id it fired with.

use dtwin_bus::{BrokerUrl, BusConfig, Connection, QoS, Subscription};
use dtwin_schema::{from_json, AlertSnapshot};
use dtwin_tests::harness::{self, Mosquitto};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const MACHINES: usize = 12;
const NAMES: [&str; 2] = ["alerter-a", "alerter-b"];

/// A `dtwin alerter` process and the port of its `/healthz`.
struct Alerter(Child, u16);

impl Alerter {
    fn start(broker: &BrokerUrl, name: &str, outbox: &Path) -> Self {
        let metrics_port = dtwin_broker::free_port().expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_dtwin"))
            .args([
                "alerter",
                "--broker",
                &broker.to_string(),
                "--instance",
                name,
            ])
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .arg("--outbox")
            .arg(outbox)
            // One e-mail per alert, at once (no digests), so the files can be counted.
            .args(["--alert-digest-min", "1000", "--alert-group-wait-ms", "0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dtwin alerter starts");
        Self(child, metrics_port)
    }

    /// Waits until `/healthz` answers 200: connected and subscribed, so a verdict published
    /// now reaches it.
    async fn ready(&self) {
        crate::common::wait_healthy(self.1).await;
    }

    fn kill(&mut self) {
        // SIGKILL: no shutdown code runs; the broker publishes the last will.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Alerter {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn publish_round(conn: &Connection, machines: &[String], seq: u64, p: f64) {
    for m in machines {
        harness::publish_verdict(&conn.client, &harness::verdict(m, seq, p)).await;
    }
}

/// `(machine, alert_id)` of every `.eml` in `dir` whose name ends with `.{tag}.eml`.
fn mails(dir: &Path, tag: &str) -> BTreeSet<(String, String)> {
    let suffix = format!(".{tag}.eml");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let alert_id = name.strip_suffix(&suffix)?.to_owned();
            let (machine, _) = alert_id.rsplit_once('-')?;
            Some((machine.to_owned(), alert_id))
        })
        .collect()
}

/// Reads the watch connection until `done` holds for the newest alert state of every machine,
/// or `timeout`; returns those states.
async fn states_until(
    watch: &mut Connection,
    states: &mut BTreeMap<String, AlertSnapshot>,
    presence: &mut BTreeMap<String, String>,
    done: impl Fn(&BTreeMap<String, AlertSnapshot>, &BTreeMap<String, String>) -> bool,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(states, presence) {
        let Ok(Some(m)) = tokio::time::timeout_at(deadline, watch.inbox.recv()).await else {
            return;
        };
        if let Some(name) = m.topic.strip_prefix("dtwin/v1/instances/alerter/") {
            let s: dtwin_schema::MachineStatus = from_json(&m.payload).unwrap();
            presence.insert(name.to_owned(), format!("{:?}", s.state).to_lowercase());
        } else {
            let s: AlertSnapshot = from_json(&m.payload).unwrap();
            states.insert(s.machine_id.to_string(), s);
        }
    }
}

async fn wait_files(dirs: &[&Path], tag: &str, n: usize) -> BTreeSet<(String, String)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let all: BTreeSet<_> = dirs.iter().flat_map(|d| mails(d, tag)).collect();
        if all.len() >= n || std::time::Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_alerters_share_the_fleet_and_a_survivor_resolves_the_killed_ones_alerts() {
    let Some(mosquitto) = harness::mosquitto_or_skip(Mosquitto::start()) else {
        return;
    };
    let url = mosquitto.url();
    let dir = tempfile::tempdir().unwrap();
    let outbox: Vec<_> = NAMES.iter().map(|n| dir.path().join(n)).collect();
    let mut watch = dtwin_bus::connect(
        &BusConfig::new(url.clone(), "alert-watch"),
        vec![
            Subscription::new("dtwin/v1/instances/alerter/+", QoS::AtLeastOnce),
            Subscription::new("dtwin/v1/alert-state/+", QoS::AtLeastOnce),
        ],
    );
    assert!(watch.client.wait_ready(Duration::from_secs(10)).await);
    let mut a = Alerter::start(&url, NAMES[0], &outbox[0]);
    let b = Alerter::start(&url, NAMES[1], &outbox[1]);
    a.ready().await;
    b.ready().await;
    let (mut states, mut presence) = (BTreeMap::new(), BTreeMap::new());
    states_until(
        &mut watch,
        &mut states,
        &mut presence,
        |_, p| {
            NAMES
                .iter()
                .all(|n| p.get(*n).is_some_and(|s| s == "online"))
        },
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(presence.len(), 2, "both instances announced: {presence:?}");

    let feeder = dtwin_bus::connect(&BusConfig::new(url.clone(), "verdict-feeder"), vec![]);
    assert!(feeder.client.wait_ready(Duration::from_secs(10)).await);
    let machines: Vec<String> = (0..MACHINES).map(|i| format!("m-{i:02}")).collect();
    let owner = |m: &str| dtwin_cluster::owner(m, NAMES).unwrap().to_owned();
    assert!(
        machines.iter().any(|m| owner(m) == NAMES[0])
            && machines.iter().any(|m| owner(m) == NAMES[1]),
        "both instances own machines"
    );

    // Phase 1: two AT_RISK verdicts each (the default 2 of 3 confirms): every alert fires once.
    for seq in 1..=2 {
        publish_round(&feeder, &machines, seq, 0.9).await;
    }
    states_until(
        &mut watch,
        &mut states,
        &mut presence,
        |s, _| s.len() == MACHINES && s.values().all(|s| s.firing.is_some()),
        Duration::from_secs(20),
    )
    .await;
    let dirs: Vec<&Path> = outbox.iter().map(|p| p.as_path()).collect();
    let fired = wait_files(&dirs, "firing", MACHINES).await;
    assert_eq!(
        fired.len(),
        MACHINES,
        "one firing mail per machine: {fired:?}"
    );
    for (i, name) in NAMES.iter().enumerate() {
        let here: BTreeSet<String> = mails(&outbox[i], "firing")
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        let owned: BTreeSet<String> = machines
            .iter()
            .filter(|m| owner(m) == *name)
            .cloned()
            .collect();
        assert_eq!(here, owned, "{name} mailed exactly its own machines");
    }
    let alert_ids: BTreeMap<String, String> = fired.into_iter().collect();

    // Phase 2: kill alerter-a; its machines move to alerter-b with their open alerts.
    a.kill();
    states_until(
        &mut watch,
        &mut states,
        &mut presence,
        |_, p| p.get(NAMES[0]).is_some_and(|s| s == "offline"),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        presence[NAMES[0]], "offline",
        "the broker published a's last will"
    );
    // Still AT_RISK (enough to fire, were the alerts not handed over): nothing new fires.
    // Then three healthy verdicts resolve every alert.
    for seq in 3..=4 {
        publish_round(&feeder, &machines, seq, 0.9).await;
    }
    for seq in 5..=7 {
        publish_round(&feeder, &machines, seq, 0.1).await;
    }
    states_until(
        &mut watch,
        &mut states,
        &mut presence,
        |s, _| s.values().all(|s| s.firing.is_none()),
        Duration::from_secs(20),
    )
    .await;
    assert!(
        states.values().all(|s| s.firing.is_none()),
        "every alert resolved: {states:?}"
    );
    let resolved = wait_files(&[&outbox[1]], "resolved", MACHINES).await;
    assert_eq!(
        resolved.into_iter().collect::<BTreeMap<_, _>>(),
        alert_ids,
        "the survivor resolved every alert, each under the id it fired with"
    );
    assert!(
        mails(&outbox[0], "resolved").is_empty(),
        "the killed one sent nothing more"
    );
    // A second firing would have been written before the resolution it precedes.
    let fired_again: BTreeSet<_> = dirs.iter().flat_map(|d| mails(d, "firing")).collect();
    assert_eq!(fired_again.len(), MACHINES, "no alert fired a second time");
}
