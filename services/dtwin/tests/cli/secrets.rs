//! Secrets never reach the logs: the broker password in `--broker` / `DTWIN_BROKER` is left out
//! of everything a service prints, at every log level, whether the broker is up or down.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

const PASSWORD: &str = "S3cr3t-pa55word";

/// Runs `dtwin <args>` for `for_how_long`, then kills it and returns what it printed.
fn run_and_capture(args: &[&str], env: &[(&str, &str)], for_how_long: Duration) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dtwin"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dtwin starts");
    std::thread::sleep(for_how_long);
    child.kill().expect("kill dtwin");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    out
}

fn assert_no_secret(out: &str, what: &str) {
    assert!(
        !out.contains(PASSWORD),
        "{what}: the password leaked into the output:\n{}",
        out.lines()
            .filter(|l| l.contains(PASSWORD))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn broker_password_is_never_logged_when_connected() {
    let port = dtwin_broker::free_port().unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    dtwin_broker::start(&dtwin_broker::BrokerConfig::new(addr)).expect("embedded broker");
    let url = format!("mqtt://feature:{PASSWORD}@127.0.0.1:{port}");
    for format in ["pretty", "json"] {
        let out = run_and_capture(
            &["feature", "--broker", &url, "--log-format", format],
            &[],
            Duration::from_millis(1500),
        );
        assert!(
            out.contains(&format!("127.0.0.1:{port}")),
            "the service logs which broker it uses ({format}):\n{out}"
        );
        assert!(out.contains("feature"), "{out}");
        assert_no_secret(&out, format);
    }
}

#[test]
fn broker_password_is_never_logged_when_the_broker_is_down() {
    // Nothing listens here: the service retries and logs its connection errors.
    let port = dtwin_broker::free_port().unwrap();
    let url = format!("mqtt://inference:{PASSWORD}@127.0.0.1:{port}");
    let out = run_and_capture(
        &["inference", "--log-format", "json"],
        &[("DTWIN_BROKER", &url)],
        Duration::from_millis(1500),
    );
    assert!(
        out.contains(&port.to_string()),
        "the service says where it tried to connect:\n{out}"
    );
    assert_no_secret(&out, "broker down");
}
