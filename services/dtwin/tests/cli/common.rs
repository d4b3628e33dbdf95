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

/// The real AI4I 2020 CSV: `AI4I_CSV`, or `../shared/datasets/ai4i2020.csv` beside the
/// workspace; `None` (and a line saying the AI4I part is skipped) when it is absent.
pub fn ai4i_csv() -> Option<std::path::PathBuf> {
    const DEFAULT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/datasets/ai4i2020.csv"
    );
    let path =
        std::path::PathBuf::from(std::env::var("AI4I_CSV").unwrap_or_else(|_| DEFAULT.into()));
    if path.is_file() {
        Some(path)
    } else {
        println!("skipping the AI4I part: no CSV at {}", path.display());
        None
    }
}

/// Runs the built `dtwin` with `args` and asserts it succeeded (its stderr otherwise).
pub fn run(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dtwin"))
        .args(args)
        .output()
        .expect("the dtwin binary runs");
    assert!(
        out.status.success(),
        "dtwin {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A temporary path as the `&str` a command line takes.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Runs the built `dtwin` with `args` in `dir`, whatever its exit status (the test reads it).
pub fn dtwin_in(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dtwin"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the dtwin binary runs")
}

/// What a command wrote to stdout and stderr, in that order.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
