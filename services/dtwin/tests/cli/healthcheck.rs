//! `dtwin healthcheck URL`, the container healthcheck, as a process against a real
//! `/healthz` (dtwin-obs, as every service serves it): exit 0 while healthy, 1 with the reason
//! when the service answers 503, when nothing listens, and when a server accepts but never
//! answers (the timeout ends it).

use std::process::{Command, Output};
use std::sync::Arc;

fn healthcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dtwin"))
        .arg("healthcheck")
        .args(args)
        .env_clear()
        .output()
        .expect("dtwin runs")
}

async fn check(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        healthcheck(&args)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_follows_healthz() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = dtwin_obs::Health::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(dtwin_obs::serve_on(
        listener,
        Arc::new(dtwin_obs::Registry::default()),
        health.clone(),
        stop.clone(),
    ));
    let url = format!("http://{addr}/healthz");

    let ok = check(vec![url.clone()]).await;
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "200 ok");

    health.set_unhealthy("broker link Down");
    let down = check(vec![url.clone()]).await;
    assert_eq!(down.status.code(), Some(1), "{down:?}");
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(
        err.contains("answered 503") && err.contains("broker link Down"),
        "{err}"
    );

    // The URL can come from the environment too.
    health.set_healthy();
    let from_env = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_dtwin"))
                .arg("healthcheck")
                .env_clear()
                .env("DTWIN_HEALTHCHECK_URL", url)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(from_env.status.success(), "{from_env:?}");

    let missing = check(vec![format!("http://{addr}/nope")]).await;
    assert_eq!(missing.status.code(), Some(1), "404 is not healthy");

    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_or_a_silent_one_is_unhealthy() {
    let port = dtwin_broker::free_port().unwrap();
    let refused = check(vec![format!("http://127.0.0.1:{port}/healthz")]).await;
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot connect"));

    // Accepts the connection, never answers: the timeout ends the check.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = std::thread::spawn(move || silent.accept().map(|(s, _)| s));
    let hung = check(vec![
        format!("http://{addr}/healthz"),
        "--timeout-ms".into(),
        "300".into(),
    ])
    .await;
    assert_eq!(hung.status.code(), Some(1), "{hung:?}");
    assert!(
        String::from_utf8_lossy(&hung.stderr).contains("reading the answer"),
        "{hung:?}"
    );
    drop(hold.join());

    let bad = check(vec!["https://127.0.0.1/healthz".into()]).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("only http://"));
}
