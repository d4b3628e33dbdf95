//! docker-compose.yml, run without Docker: each service is started exactly as compose would
//! start it (same subcommand, same environment) as a local process, against a real Mosquitto
//! standing in for the `broker` container and Debian's aiosmtpd standing in for `mailpit`
//! (without python3-aiosmtpd the alerter writes its outbox volume instead), and the pipeline
//! has to work end to end: risk verdicts for the fleet, an alert e-mail at the SMTP server (or
//! in the outbox), and every service's compose healthcheck command (`dtwin healthcheck ...`)
//! exits 0.

use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use dtwin_tests::harness::{self, Mosquitto};
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Vec<Child>);
impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Files in `dir` that pass `keep`.
fn files(dir: &Path, keep: impl Fn(&Path) -> bool) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| keep(&e.path()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_runs_as_local_processes() {
    let Some(mosquitto) = harness::mosquitto_or_skip(Mosquitto::start()) else {
        return;
    };
    let port = mosquitto.port;
    let dir = tempfile::tempdir().unwrap();
    let mut children = Kill(Vec::new());
    let broker = format!("mqtt://127.0.0.1:{port}");
    let outbox = dir.path().join("outbox");
    let dash_port = dtwin_broker::free_port().unwrap();
    let maildir = dir.path().join("maildir");
    let smtp_port = dtwin_broker::free_port().unwrap();
    let smtpd = harness::Smtpd::start(smtp_port, &maildir);
    let mailing = smtpd.is_some();

    let mut risk = dtwin_bus::connect(
        &BusConfig::new(BrokerUrl::new("127.0.0.1", port), "compose-watch"),
        vec![Subscription::new(
            "dtwin/v1/machines/+/risk",
            QoS::AtLeastOnce,
        )],
    );
    assert!(risk.client.wait_ready(Duration::from_secs(10)).await);

    let compose: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docker-compose.yml"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut started = BTreeSet::new();
    // Each service's healthcheck command, with the port it listens on here.
    let mut probes: BTreeMap<String, (Vec<String>, u16)> = BTreeMap::new();
    for (name, svc) in compose["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let Some(command) = svc["command"].as_sequence() else {
            continue;
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dtwin"));
        cmd.args(command.iter().map(|v| v.as_str().unwrap()));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        let mut ports = BTreeMap::new();
        for (k, v) in svc["environment"].as_mapping().unwrap() {
            let (k, v) = (k.as_str().unwrap(), v.as_str().unwrap());
            // The only differences from the containers: where the broker, the mail server,
            // the outbox volume and the listening ports are on this machine (each container
            // has its own 9464; here every service needs its own port).
            let v = match k {
                "DTWIN_BROKER" => broker.clone(),
                "SMTP_URL" if mailing => format!("smtp://127.0.0.1:{smtp_port}"),
                "SMTP_URL" => continue,
                "DTWIN_OUTBOX" => outbox.display().to_string(),
                "DTWIN_DASHBOARD_LISTEN" | "DTWIN_METRICS_LISTEN" => {
                    let port = if k == "DTWIN_DASHBOARD_LISTEN" {
                        dash_port
                    } else {
                        dtwin_broker::free_port().unwrap()
                    };
                    let inside: std::net::SocketAddr = v.parse().unwrap();
                    ports.insert(inside.port(), port);
                    format!("127.0.0.1:{port}")
                }
                "DTWIN_DASHBOARD_TOKEN" => "compose-test-token".to_owned(),
                _ => v.to_owned(),
            };
            cmd.env(k, v);
        }
        // The healthcheck as compose runs it inside the container, pointed at this machine's
        // port for the one it names.
        let test: Vec<String> = svc["healthcheck"]["test"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} has no healthcheck"))
            .iter()
            .skip(1) // "CMD"
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(test[..2], ["dtwin", "healthcheck"], "{name}");
        let target = dtwin::cmd::healthcheck::parse_url(&test[2]).unwrap();
        let port = *ports.get(&target.port).unwrap_or_else(|| {
            panic!(
                "{name}'s healthcheck probes {}, a port it does not serve",
                target.port
            )
        });
        probes.insert(name.to_owned(), (test, port));
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
        cmd.stdout(Stdio::null()).stderr(log);
        children.0.push(cmd.spawn().unwrap());
        started.insert(name.to_owned());
    }
    assert_eq!(
        started,
        ["alerter", "dashboard", "feature", "inference", "twin"]
            .map(String::from)
            .into(),
    );

    // Verdicts for the whole fleet (compose runs 20 machines).
    let mut machines = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while machines.len() < 20 {
        let m = tokio::time::timeout_at(deadline, risk.inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("verdicts for only {machines:?}"))
            .unwrap();
        let r: dtwin_schema::Risk = dtwin_schema::from_json(&m.payload).unwrap();
        machines.insert(r.machine_id.to_string());
    }
    // An alert e-mail reaches the mail server (x120 plant time: faults come quickly), or
    // without one the outbox volume.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let arrived = if mailing {
            files(&maildir.join("new"), |_| true)
        } else {
            files(&outbox, |p| p.extension().is_some_and(|x| x == "eml"))
        };
        if arrived > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no alert e-mail {}",
            if mailing {
                "at the SMTP server"
            } else {
                "in the outbox"
            }
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if mailing {
        assert_eq!(
            files(&outbox, |p| p.extension().is_some_and(|x| x == "eml")),
            0,
            "with SMTP_URL set, mail goes to the server, not the outbox"
        );
    }
    // Every service passes its compose healthcheck: the command exits 0.
    assert_eq!(probes.len(), 5);
    for (name, (test, port)) in &probes {
        let url = test[2].replacen(
            &format!(
                ":{}/",
                dtwin::cmd::healthcheck::parse_url(&test[2]).unwrap().port
            ),
            &format!(":{port}/"),
            1,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(env!("CARGO_BIN_EXE_dtwin"))
                .arg(&test[1])
                .arg(&url)
                .args(&test[3..])
                .env_clear()
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: `dtwin healthcheck {url}` keeps failing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    risk.close().await;
}
