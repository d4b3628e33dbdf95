//! Helpers shared by the CLI's integration tests.

use std::time::{Duration, Instant};

/// Waits until `http://127.0.0.1:{port}/healthz` answers 200: a service that is connected and
/// subscribed, so what is published now reaches it.
///
/// # Panics
/// When it is not healthy within 15 s (with the last answer).
pub async fn wait_healthy(port: u16) {
    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let u = url.clone();
        let got = tokio::task::spawn_blocking(move || {
            dtwin::cmd::healthcheck::get(&u, Duration::from_secs(1))
        })
        .await
        .expect("joins");
        match got {
            Ok((200, _)) => return,
            other => assert!(Instant::now() < deadline, "{url} is not healthy: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
