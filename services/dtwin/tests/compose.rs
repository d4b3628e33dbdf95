//! docker-compose.yml must use only commands and environment variables the CLI really has:
//! no Docker engine runs in CI, so this static check is what keeps compose from rotting when a
//! flag is renamed.

use clap::CommandFactory;
use dtwin::cli::Cli;
use std::collections::BTreeSet;

fn compose() -> serde_yaml::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker-compose.yml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("docker-compose.yml"))
        .expect("valid YAML")
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
        let Some(command) = svc["command"].as_sequence() else {
            assert_eq!(name, "broker", "only the broker runs another image");
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
            let value = v.as_str().unwrap();
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
        checked += 1;
    }
    assert_eq!(
        checked, 5,
        "twin, feature, inference, alerter and dashboard are checked"
    );
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
            checked.push(sub.to_owned());
        }
    }
    checked.sort();
    assert_eq!(checked, ["alerter", "dashboard", "feature", "inference"]);
}
