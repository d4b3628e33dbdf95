//! `dtwin up` fails fast and clearly when it cannot start.

use clap::Parser;
use dtwin::cli::{Cli, Command};
use tokio_util::sync::CancellationToken;

fn up_args(extra: &[&str]) -> dtwin::cli::UpArgs {
    let mut argv = vec!["dtwin", "up", "--summary-every", "0"];
    if !extra.contains(&"--dashboard-listen") {
        // Tests run in parallel: never the default port.
        argv.extend(["--dashboard-listen", "127.0.0.1:0"]);
    }
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("flags parse").command {
        Command::Up(a) => a,
        other => panic!("parsed {other:?}"),
    }
}

#[tokio::test]
async fn a_taken_port_is_a_one_line_error_naming_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let err = dtwin::cmd::up::run_until(up_args(&["--port", &port]), CancellationToken::new())
        .await
        .expect_err("the port is taken");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&port) && msg.contains("--port") && msg.contains("DTWIN_PORT"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
}

#[tokio::test]
async fn a_missing_model_file_stops_up_before_anything_starts() {
    let port = dtwin_broker::free_port().unwrap().to_string();
    let err = dtwin::cmd::up::run_until(
        up_args(&["--port", &port, "--model", "/nonexistent/model.json"]),
        CancellationToken::new(),
    )
    .await
    .expect_err("no such model");
    assert!(
        format!("{err:#}").contains("/nonexistent/model.json"),
        "{err:#}"
    );
}

#[test]
fn bad_flag_values_are_refused_by_the_parser() {
    for bad in [
        vec!["dtwin", "up", "--telemetry-qos", "2"],
        vec!["dtwin", "up", "--broker", "http://x"],
        vec!["dtwin", "up", "--scenario", "machine-001:melt"],
        vec!["dtwin", "up", "--mail-to", "not an address"],
    ] {
        assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?} was accepted");
    }
}

#[tokio::test]
async fn a_taken_dashboard_port_names_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let port = dtwin_broker::free_port().unwrap().to_string();
    let err = dtwin::cmd::up::run_until(
        up_args(&["--port", &port, "--dashboard-listen", &addr]),
        CancellationToken::new(),
    )
    .await
    .expect_err("the dashboard port is taken");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&addr)
            && msg.contains("--dashboard-listen")
            && msg.contains("DTWIN_DASHBOARD_LISTEN"),
        "{msg}"
    );
}

#[tokio::test]
async fn inconsistent_windows_stop_up_with_the_flags_named() {
    let port = dtwin_broker::free_port().unwrap().to_string();
    for (extra, expect) in [
        (
            vec!["--short-window", "20", "--long-window", "10"],
            "--long-window",
        ),
        (vec!["--time-windows-s", "60,60"], "--time-windows-s"),
        // Other windows than the shipped model's: refused, naming both feature sets.
        (vec!["--short-window", "5"], "feature set"),
    ] {
        let mut args = vec!["--port", port.as_str()];
        args.extend(extra.iter().copied());
        let err = dtwin::cmd::up::run_until(up_args(&args), CancellationToken::new())
            .await
            .expect_err("refused");
        assert!(format!("{err:#}").contains(expect), "{extra:?}: {err:#}");
    }
    assert!(Cli::try_parse_from(["dtwin", "feature", "--short-window", "1"]).is_err());
}
