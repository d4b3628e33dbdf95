//! docker-compose.yml, run without Docker: each service is started exactly as compose would
//! start it (same subcommand, same environment) as a local process, against a real Mosquitto
//! standing in for the `broker` container, and the pipeline has to work end to end: risk
//! verdicts for the fleet, an alert e-mail in the outbox volume, the dashboard healthy.

use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use std::collections::BTreeSet;
use std::io::{Read, Write};
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

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_runs_as_local_processes() {
    let Some(mosquitto) = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "mosquitto must be installed in CI"
        );
        eprintln!("skipping: mosquitto not installed (bash tests/run.sh installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = dtwin_broker::free_port().unwrap();
    std::fs::write(
        dir.path().join("mosquitto.conf"),
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"),
    )
    .unwrap();
    let mut children = Kill(vec![Command::new(mosquitto)
        .arg("-c")
        .arg(dir.path().join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()]);
    wait_for_port(port);
    let broker = format!("mqtt://127.0.0.1:{port}");
    let outbox = dir.path().join("outbox");
    let dash_port = dtwin_broker::free_port().unwrap();

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
    for (name, svc) in compose["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let Some(command) = svc["command"].as_sequence() else {
            continue;
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dtwin"));
        cmd.args(command.iter().map(|v| v.as_str().unwrap()));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        for (k, v) in svc["environment"].as_mapping().unwrap() {
            let (k, v) = (k.as_str().unwrap(), v.as_str().unwrap());
            // The only differences from the containers: where the broker, the outbox volume
            // and the dashboard's port are on this machine.
            let v = match k {
                "DTWIN_BROKER" => broker.clone(),
                "DTWIN_OUTBOX" => outbox.display().to_string(),
                "DTWIN_DASHBOARD_LISTEN" => format!("127.0.0.1:{dash_port}"),
                "DTWIN_DASHBOARD_TOKEN" => "compose-test-token".to_owned(),
                _ => v.to_owned(),
            };
            cmd.env(k, v);
        }
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
    // An alert e-mail lands in the outbox volume (x120 plant time: faults come quickly).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let eml = std::fs::read_dir(&outbox)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "eml"));
        if eml {
            break;
        }
        assert!(Instant::now() < deadline, "no alert e-mail in the outbox");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The dashboard answers its health check (what the compose healthcheck would call).
    wait_for_port(dash_port);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", dash_port)).unwrap();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    risk.close().await;
}
