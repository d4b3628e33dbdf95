//! The embedded broker on a plant network: hashed passwords (`dtwin passwd`), refusal to run
//! anonymous beyond loopback, and MQTT over TLS with a CA the test generates.

use clap::Parser;
use dtwin::cli::{Cli, Command};
use dtwin_bus::{BrokerUrl, BusConfig, QoS, Subscription};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

fn dtwin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_dtwin"))
}

/// `dtwin passwd --file FILE USER`, the password on stdin.
fn passwd(file: &Path, user: &str, password: &str) {
    let mut child = dtwin()
        .args(["passwd", "--file"])
        .arg(file)
        .arg(user)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for `localhost` signed by it, as PEM files in `dir`.
/// Returns the CA's path.
fn make_ca(dir: &Path, name: &str) -> (std::path::PathBuf, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("dtwin test CA {name}"));
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let ca_path = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca_path, ca.pem()).unwrap();
    (ca_path, server.pem(), server_key.serialize_pem())
}

async fn ready(url: String, id: &str) -> bool {
    let url: BrokerUrl = url.parse().unwrap();
    let conn = dtwin_bus::connect(&BusConfig::new(url, id), vec![]);
    let ok = conn.client.wait_ready(Duration::from_secs(3)).await;
    conn.close().await;
    ok
}

#[test]
fn passwd_stores_argon2_hashes_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    passwd(&file, "gateway-line1", "first secret");
    passwd(&file, "dtwin-feature", "second secret");
    passwd(&file, "gateway-line1", "changed secret");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("secret"), "{text}");
    let parsed = dtwin_broker::auth::PasswordFile::parse(&text).unwrap();
    assert_eq!(
        parsed.users().collect::<Vec<_>>(),
        ["dtwin-feature", "gateway-line1"]
    );
    assert!(parsed.verify("gateway-line1", "changed secret"));
    assert!(!parsed.verify("gateway-line1", "first secret"));
}

#[test]
fn anonymous_broker_beyond_loopback_refuses_to_start() {
    let port = dtwin_broker::free_port().unwrap();
    let out = dtwin()
        .args(["broker", "--listen", &format!("0.0.0.0:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen") && err.contains("--password-file"),
        "{err}"
    );
    // Nothing was left listening.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_tls_on_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    passwd(&file, "gateway-line1", "gw-secret");
    let (ca, cert, key) = make_ca(dir.path(), "good");
    let (other_ca, _, _) = make_ca(dir.path(), "other");
    std::fs::write(dir.path().join("server.pem"), cert).unwrap();
    std::fs::write(dir.path().join("server.key"), key).unwrap();

    let port = dtwin_broker::free_port().unwrap();
    let tls_port = dtwin_broker::free_port().unwrap();
    let argv = [
        "dtwin".to_owned(),
        "broker".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--password-file".into(),
        file.display().to_string(),
        "--tls-listen".into(),
        format!("127.0.0.1:{tls_port}"),
        "--tls-cert".into(),
        dir.path().join("server.pem").display().to_string(),
        "--tls-key".into(),
        dir.path().join("server.key").display().to_string(),
    ];
    let Command::Broker(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let config = args.config().unwrap();
    tokio::task::spawn_blocking(move || dtwin_broker::start(&config))
        .await
        .unwrap()
        .expect("broker with passwords and TLS starts");

    let plain = |user: &str, pw: &str| format!("mqtt://{user}:{pw}@127.0.0.1:{port}");
    let tls = |pw: &str, ca: &Path| {
        format!(
            "mqtts://gateway-line1:{pw}@localhost:{tls_port}?ca={}",
            ca.display()
        )
    };
    let (anonymous, wrong, unknown, right, tls_right, tls_wrong_pw, tls_wrong_ca) = tokio::join!(
        ready(format!("mqtt://127.0.0.1:{port}"), "anon"),
        ready(plain("gateway-line1", "nope"), "wrong"),
        ready(plain("intruder", "gw-secret"), "unknown"),
        ready(plain("gateway-line1", "gw-secret"), "right"),
        ready(tls("gw-secret", &ca), "tls-right"),
        ready(tls("nope", &ca), "tls-wrong-pw"),
        ready(tls("gw-secret", &other_ca), "tls-wrong-ca"),
    );
    assert!(!anonymous, "anonymous refused");
    assert!(!wrong, "wrong password refused");
    assert!(!unknown, "unknown user refused");
    assert!(right, "right password accepted");
    assert!(tls_right, "TLS with the right CA and password works");
    assert!(!tls_wrong_pw, "TLS does not bypass the password");
    assert!(
        !tls_wrong_ca,
        "a broker certificate from another CA is not trusted"
    );

    // A message goes through over TLS.
    let url: BrokerUrl = tls("gw-secret", &ca).parse().unwrap();
    let mut sub = dtwin_bus::connect(
        &BusConfig::new(url.clone(), "tls-sub"),
        vec![Subscription::new(
            "dtwin/v1/machines/+/telemetry",
            QoS::AtLeastOnce,
        )],
    );
    assert!(sub.client.wait_ready(Duration::from_secs(5)).await);
    sub.client
        .publish(
            "dtwin/v1/machines/machine-001/telemetry",
            QoS::AtLeastOnce,
            false,
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), sub.inbox.recv())
        .await
        .expect("message over TLS")
        .unwrap();
    assert_eq!(got.topic, "dtwin/v1/machines/machine-001/telemetry");
    sub.close().await;
}
