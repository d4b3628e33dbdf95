//! docker-compose.yml must use only commands and environment variables the CLI really has:
//! no Docker engine runs in CI, so this static check is what keeps compose from rotting when a
//! flag is renamed. Every service has a healthcheck; a dtwin service's is `dtwin healthcheck`
//! on the `/healthz` of the port it really serves; `depends_on` waits only for services that
//! have a healthcheck. The Kubernetes manifests get the same checks for their probes.
//! Debian's docker-compose validates the file (and its `nats` profile) as compose itself reads
//! it, without an engine; .dockerignore keeps build output out of the image's build context.

use clap::CommandFactory;
use dtwin::cli::Cli;
use std::collections::BTreeSet;

fn compose() -> serde_yaml::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker-compose.yml");
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("docker-compose.yml"))
            .expect("valid YAML");
    // `<<: *anchor` merge keys, as compose applies them.
    doc.apply_merge().expect("valid merge keys");
    doc
}

/// A value as compose reads it with nothing set in the environment: `${NAME:-default}` is
/// `default`.
fn compose_default(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${...}") + start;
        let inner = &rest[start + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, d)| d));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The port of a `host:port` listen address.
fn listen_port(addr: &str) -> u16 {
    addr.parse::<std::net::SocketAddr>()
        .unwrap_or_else(|e| panic!("{addr:?} is not host:port: {e}"))
        .port()
}

/// Where a dtwin service serves `/healthz`: the dashboard on its page port, every other
/// service on its metrics port.
fn health_port(sub: &str, env: &dyn Fn(&str) -> Option<String>) -> u16 {
    let var = if sub == "dashboard" {
        "DTWIN_DASHBOARD_LISTEN"
    } else {
        "DTWIN_METRICS_LISTEN"
    };
    let addr = env(var).unwrap_or_else(|| panic!("`dtwin {sub}` sets no {var}: no /healthz"));
    listen_port(&addr)
}

/// A `dtwin healthcheck URL` command must parse with the CLI and name `/healthz` on loopback.
fn check_healthcheck_argv(who: &str, argv: &[&str], port: u16) {
    assert_eq!(argv[0], "dtwin", "{who}: the probe is the dtwin binary");
    assert_eq!(argv[1], "healthcheck", "{who}: {argv:?}");
    let cli = <Cli as clap::Parser>::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{who}: {argv:?} does not parse: {e}"));
    let dtwin::cli::Command::Healthcheck(args) = cli.command else {
        unreachable!()
    };
    let target = dtwin::cmd::healthcheck::parse_url(&args.url).unwrap();
    assert_eq!(
        target.host, "127.0.0.1",
        "{who}: probe the container itself"
    );
    assert_eq!(target.port, port, "{who}: probes a port it does not serve");
    assert_eq!(target.path, "/healthz", "{who}");
}

/// Environment variables (and long flags) a subcommand accepts, including global ones.
fn accepted(sub: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let cmd = Cli::command();
    let sub = cmd
        .find_subcommand(sub)
        .unwrap_or_else(|| panic!("no subcommand {sub:?}"));
    let mut env = BTreeSet::new();
    let mut flags = BTreeSet::new();
    for arg in sub.get_arguments().chain(cmd.get_arguments()) {
        if let Some(e) = arg.get_env() {
            env.insert(e.to_string_lossy().into_owned());
        }
        if let Some(l) = arg.get_long() {
            flags.insert(format!("--{l}"));
        }
    }
    (env, flags)
}

#[test]
fn every_compose_service_matches_the_cli() {
    let doc = compose();
    let services = doc["services"].as_mapping().expect("services");
    let mut checked = 0;
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        let test: Vec<&str> = svc["healthcheck"]["test"]
            .as_sequence()
            .unwrap_or_else(|| panic!("service {name} has no healthcheck test"))
            .iter()
            .map(|v| v.as_str().expect("string args"))
            .collect();
        assert_eq!(test[0], "CMD", "service {name}: exec-form healthcheck");
        assert!(
            svc["restart"].as_str().is_some(),
            "service {name} has no restart policy"
        );
        if let Some(deps) = svc["depends_on"].as_mapping() {
            for (dep, how) in deps {
                let dep = dep.as_str().unwrap();
                assert!(
                    services.contains_key(dep),
                    "service {name} depends on unknown {dep}"
                );
                if how["condition"].as_str() == Some("service_healthy") {
                    assert!(
                        services[dep]["healthcheck"]["test"].as_sequence().is_some(),
                        "service {name} waits for {dep} to be healthy, which has no healthcheck"
                    );
                }
            }
        }
        let Some(command) = svc["command"].as_sequence() else {
            assert!(
                matches!(name, "broker" | "mailpit" | "nats1" | "nats2" | "nats3"),
                "only the brokers and mailpit run another image"
            );
            continue;
        };
        let argv: Vec<&str> = command
            .iter()
            .map(|v| v.as_str().expect("string args"))
            .collect();
        let (env, flags) = accepted(argv[0]);
        for a in &argv[1..] {
            if a.starts_with("--") {
                let flag = a.split('=').next().unwrap();
                assert!(
                    flags.contains(flag),
                    "service {name}: flag {flag} is not a flag of `dtwin {}`",
                    argv[0]
                );
            }
        }
        let vars = svc["environment"].as_mapping().expect("environment map");
        for (k, v) in vars {
            let k = k.as_str().unwrap();
            assert!(
                env.contains(k),
                "service {name}: {k} is not read by `dtwin {}` (it reads {env:?})",
                argv[0]
            );
            assert!(
                v.as_str().is_some(),
                "service {name}: quote the value of {k}"
            );
        }
        // The whole command line with the environment applied must parse.
        let mut full = vec!["dtwin".to_owned()];
        full.extend(argv.iter().map(|s| s.to_string()));
        for (k, v) in vars {
            let k = k.as_str().unwrap();
            let value = compose_default(v.as_str().unwrap());
            let arg = Cli::command()
                .find_subcommand(argv[0])
                .unwrap()
                .get_arguments()
                .chain(Cli::command().get_arguments())
                .find(|a| a.get_env().is_some_and(|e| e == k))
                .and_then(|a| a.get_long().map(str::to_owned))
                .unwrap();
            full.push(format!("--{arg}={value}"));
        }
        <Cli as clap::Parser>::try_parse_from(&full)
            .unwrap_or_else(|e| panic!("service {name}: {full:?} does not parse: {e}"));
        let env_of = |k: &str| vars.get(k).and_then(|v| v.as_str()).map(compose_default);
        let port = health_port(argv[0], &env_of);
        check_healthcheck_argv(&format!("service {name}"), &test[1..], port);
        checked += 1;
    }
    assert_eq!(
        checked, 5,
        "twin, feature, inference, alerter and dashboard are checked"
    );
}

/// `docker-compose ARGS config` on docker-compose.yml with `env` set, as YAML; `None` (saying
/// why) when Debian's docker-compose is not installed outside CI.
///
/// # Panics
/// When compose refuses the file, or docker-compose is missing under CI.
fn compose_config(args: &[&str], env: &[(&str, &str)]) -> Option<serde_yaml::Value> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker-compose.yml");
    let out = match std::process::Command::new("docker-compose")
        .args(["-f", file])
        .args(args)
        .arg("config")
        .env_remove("DTWIN_BROKER")
        .envs(env.iter().copied())
        .output()
    {
        Ok(out) => out,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: no docker-compose ({e}); bash tests/run.sh installs it");
            return None;
        }
        Err(e) => panic!("docker-compose must be installed in CI: {e}"),
    };
    assert!(
        out.status.success(),
        "docker-compose {args:?} config refuses the file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_yaml::from_slice(&out.stdout).expect("compose prints YAML"))
}

#[test]
fn docker_compose_accepts_the_file_and_the_nats_profile() {
    let Some(plain) = compose_config(&[], &[]) else {
        return;
    };
    for svc in ["twin", "feature", "inference", "alerter", "dashboard"] {
        assert_eq!(
            plain["services"][svc]["environment"]["DTWIN_BROKER"].as_str(),
            Some("mqtt://broker:1883"),
            "{svc}: Mosquitto unless told otherwise"
        );
    }
    let nodes = "mqtt://nats1:1883,mqtt://nats2:1883,mqtt://nats3:1883";
    let nats = compose_config(&["--profile", "nats"], &[("DTWIN_BROKER", nodes)]).unwrap();
    for svc in ["twin", "feature", "inference", "alerter", "dashboard"] {
        let value = nats["services"][svc]["environment"]["DTWIN_BROKER"]
            .as_str()
            .unwrap();
        let brokers = dtwin_bus::Brokers::parse(value)
            .unwrap_or_else(|e| panic!("{svc}: DTWIN_BROKER {value:?}: {e}"));
        assert_eq!(brokers.len(), 3, "{svc}: every node");
    }
    let mut names = BTreeSet::new();
    for node in ["nats1", "nats2", "nats3"] {
        let svc = &nats["services"][node];
        let env = &svc["environment"];
        names.insert(env["NATS_NAME"].as_str().unwrap().to_owned());
        let routes = env["NATS_ROUTES"].as_str().unwrap();
        for peer in ["nats1", "nats2", "nats3"] {
            assert!(
                routes.contains(&format!("nats://{peer}:6222")),
                "{node}: {routes}"
            );
        }
        assert_eq!(env["NATS_MQTT"].as_str(), Some("0.0.0.0:1883"), "{node}");
        let mounts: Vec<String> = svc["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| serde_yaml::to_string(v).unwrap())
            .collect();
        assert!(
            mounts.iter().any(|m| m.contains("deploy/nats/node.conf")),
            "{node} runs deploy/nats/node.conf: {mounts:?}"
        );
    }
    assert_eq!(names.len(), 3, "one server name per node");
}

#[test]
fn the_docker_build_context_leaves_build_output_out() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let text = std::fs::read_to_string(format!("{root}/.dockerignore")).expect(".dockerignore");
    let patterns: BTreeSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target", "**/target", ".git"] {
        assert!(patterns.contains(must), ".dockerignore leaves out {must}");
    }
    // What `cargo build --release --locked -p dtwin` in deploy/Dockerfile reads stays in.
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "services",
        "third_party",
        "tests",
    ] {
        assert!(
            !patterns
                .iter()
                .any(|p| p.trim_start_matches("**/").trim_end_matches('/') == needed),
            ".dockerignore must not leave out {needed}"
        );
    }
}

#[test]
fn a_renamed_variable_would_fail() {
    let (env, _) = accepted("feature");
    assert!(env.contains("DTWIN_BROKER"));
    assert!(!env.contains("DTWIN_BROKER_URL"));
}

#[test]
fn every_kubernetes_container_matches_the_cli() {
    use serde::Deserialize;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/k8s/dtwin.yaml");
    let text = std::fs::read_to_string(path).expect("deploy/k8s/dtwin.yaml");
    let mut checked = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let doc = serde_yaml::Value::deserialize(doc).expect("valid YAML");
        let kind = doc["kind"].as_str().unwrap_or_default();
        if !matches!(kind, "Deployment" | "StatefulSet") {
            continue;
        }
        for c in doc["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .expect("containers")
        {
            let sub = c["args"][0].as_str().expect("a subcommand as first arg");
            let (env, _) = accepted(sub);
            for e in c["env"].as_sequence().expect("env list") {
                let name = e["name"].as_str().unwrap();
                assert!(
                    env.contains(name),
                    "k8s {sub}: {name} is not a variable of `dtwin {sub}`"
                );
            }
            let env_of = |k: &str| {
                c["env"]
                    .as_sequence()?
                    .iter()
                    .find(|e| e["name"].as_str() == Some(k))?["value"]
                    .as_str()
                    .map(str::to_owned)
            };
            let port = health_port(sub, &env_of);
            for probe in ["readinessProbe", "livenessProbe"] {
                let get = &c[probe]["httpGet"];
                assert_eq!(
                    get["path"].as_str(),
                    Some("/healthz"),
                    "k8s {sub}: {probe} on /healthz"
                );
                assert_eq!(
                    get["port"].as_u64(),
                    Some(u64::from(port)),
                    "k8s {sub}: {probe} on a port it does not serve"
                );
            }
            checked.push(sub.to_owned());
        }
    }
    checked.sort();
    assert_eq!(checked, ["alerter", "dashboard", "feature", "inference"]);
}

/// The `$NATS_...` variables deploy/nats/node.conf reads.
fn node_conf_variables() -> BTreeSet<String> {
    let conf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/nats/node.conf"
    ))
    .expect("deploy/nats/node.conf");
    conf.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split('$').skip(1))
        .map(|v| {
            v.chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect::<String>()
        })
        .collect()
}

#[test]
fn every_nats_node_sets_what_node_conf_reads() {
    use serde::Deserialize;
    let wanted = node_conf_variables();
    assert!(
        wanted.contains("NATS_ROUTES") && wanted.len() == 7,
        "{wanted:?}"
    );
    // Compose: each node's environment.
    let doc = compose();
    for node in ["nats1", "nats2", "nats3"] {
        let set: BTreeSet<String> = doc["services"][node]["environment"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(set, wanted, "compose {node}");
    }
    // Kubernetes: the StatefulSet's container.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/k8s/nats.yaml"
    ))
    .expect("deploy/k8s/nats.yaml");
    let mut checked = false;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let doc = serde_yaml::Value::deserialize(doc).expect("valid YAML");
        if doc["kind"].as_str() != Some("StatefulSet") {
            continue;
        }
        let c = &doc["spec"]["template"]["spec"]["containers"][0];
        let set: BTreeSet<String> = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(set, wanted, "k8s nats");
        assert_eq!(doc["spec"]["replicas"].as_u64(), Some(3));
        checked = true;
    }
    assert!(checked, "deploy/k8s/nats.yaml has the StatefulSet");
    // The script exports the same names.
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/nats/cluster.sh"
    ))
    .expect("deploy/nats/cluster.sh");
    for v in &wanted {
        assert!(script.contains(&format!("{v}=")), "cluster.sh sets {v}");
    }
}
