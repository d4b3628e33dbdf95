//! `dtwin up`: the embedded broker (unless `--broker` names an external one) and every service
//! in one process, each on its own MQTT connection exactly as when run separately.

use crate::cli::UpArgs;
use anyhow::Context;
use dtwin_bus::BrokerUrl;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How long services get to finish after Ctrl-C before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1800);

/// Runs the stack until Ctrl-C or SIGTERM.
///
/// # Errors
/// The embedded broker cannot start (port taken), or a service fails at start.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal();
    run_until(args, shutdown).await
}

/// Runs the stack until `shutdown` is cancelled (tests pass their own token).
///
/// # Errors
/// As [`run`].
pub async fn run_until(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let broker = match &args.broker {
        Some(url) => url.clone(),
        None => BrokerUrl::new("127.0.0.1", args.port),
    };
    let prefix = args.prefix.clone();
    let outbox =
        std::path::absolute(&args.alerter.outbox).unwrap_or_else(|_| args.alerter.outbox.clone());
    // Build what can fail before anything starts, so a bad model or rules file stops `up` at once.
    let mut inference = args.inference.config(broker.clone(), &prefix)?;
    args.drift.apply(&mut inference)?;
    dtwin_inference::build_scorer(&inference).context("inference")?;
    let mut twin = args.twin.config(broker.clone(), &prefix)?;
    // One window configuration for the feature service, inference and the dashboard.
    let mut feature = dtwin_feature::FeatureConfig {
        prefix: prefix.clone(),
        window: inference.window.clone(),
        ..dtwin_feature::FeatureConfig::new(broker.clone())
    };
    let mut alerter = args.alerter.config(broker.clone(), &prefix)?;
    // The broker starts only now: the embedded one cannot be stopped inside this process, so
    // every check of the flags, the model and the rules comes first.
    match &args.broker {
        Some(url) => info!(broker = %url, "using external broker"),
        None => {
            let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
            let cfg = dtwin_broker::BrokerConfig::new(listen);
            tokio::task::spawn_blocking(move || dtwin_broker::start(&cfg)).await??;
        }
    }
    // One endpoint for every service's metrics and health.
    let metrics = match args.metrics_listen {
        Some(listen) => {
            let exposition = dtwin_obs::Exposition::new();
            twin.metrics_shared = Some(exposition.clone());
            feature.metrics_shared = Some(exposition.clone());
            inference.metrics_shared = Some(exposition.clone());
            alerter.metrics_shared = Some(exposition.clone());
            Some((dtwin_obs::bind(listen).await?, exposition))
        }
        None => None,
    };
    let mut dashboard = dtwin_dashboard::DashboardConfig::new(broker.clone());
    dashboard.prefix = prefix.clone();
    dashboard.listen = args.dashboard_listen;
    dashboard.token = args.dashboard_token.clone();
    dashboard.inference = inference.clone();
    let (dashboard_listener, dashboard_state) = dtwin_dashboard::bind(&dashboard).await?;
    let dashboard_url = format!("http://{}", dashboard_listener.local_addr()?);
    alerter
        .dashboard_url
        .get_or_insert_with(|| dashboard_url.clone());

    println!("dtwin up: broker {broker}, prefix {prefix}");
    println!(
        "dtwin up: {} machines at {} Hz, time x{}",
        twin.machines, twin.rate_hz, twin.accel
    );
    println!(
        "dtwin up: alert e-mails are written to {}",
        outbox.display()
    );
    println!("dtwin up: dashboard at {dashboard_url}");
    if let Some((listener, _)) = &metrics {
        println!(
            "dtwin up: metrics at http://{}/metrics",
            listener.local_addr()?
        );
    }
    println!("dtwin up: press Ctrl-C to stop");

    let mut tasks = JoinSet::new();
    if let Some((listener, exposition)) = metrics {
        tasks.spawn(named(
            "metrics",
            dtwin_obs::serve_exposition(listener, exposition, shutdown.clone()),
        ));
    }
    // Consumers first, so the first readings are not missed.
    tasks.spawn(named(
        "feature",
        dtwin_feature::run(feature, shutdown.clone()),
    ));
    tasks.spawn(named(
        "inference",
        dtwin_inference::run(inference, shutdown.clone()),
    ));
    tasks.spawn(named(
        "alerter",
        dtwin_alerter::run(alerter, shutdown.clone()),
    ));
    tasks.spawn(named(
        "dashboard",
        dtwin_dashboard::serve(
            dashboard,
            dashboard_listener,
            dashboard_state,
            shutdown.clone(),
        ),
    ));
    if args.summary_every > 0 {
        let every = Duration::from_secs(args.summary_every);
        let monitor = crate::monitor::run(broker.clone(), prefix.clone(), every, shutdown.clone());
        tasks.spawn(async move {
            monitor.await;
            ("monitor", Ok(()))
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    tasks.spawn(named(
        "twin",
        dtwin_twin_publisher::run(twin, shutdown.clone()),
    ));

    let mut result = Ok(());
    tokio::select! {
        _ = shutdown.cancelled() => {}
        Some(done) = tasks.join_next() => {
            // A service ended on its own: report it and stop the others.
            if let Ok((name, r)) = done {
                match r {
                    Ok(()) => warn!(service = name, "service exited"),
                    Err(e) => {
                        error!(service = name, error = %format!("{e:#}"), "service failed");
                        result = Err(e.context(name));
                    }
                }
            }
            shutdown.cancel();
        }
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(done) = tasks.join_next().await {
            if let Ok((name, Err(e))) = done {
                warn!(service = name, error = %format!("{e:#}"), "service failed while stopping");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!("some services did not stop within {SHUTDOWN_GRACE:?}; exiting anyway");
        tasks.abort_all();
    }
    println!("dtwin up: stopped");
    result
}

async fn named(
    name: &'static str,
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> (&'static str, anyhow::Result<()>) {
    (name, fut.await)
}
