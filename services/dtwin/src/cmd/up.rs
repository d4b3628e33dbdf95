//! `dtwin up`: the embedded broker (unless `--broker` names an external one) and every service
//! in one process (the Sparkplug B host too), each on its own MQTT connection exactly as when
//! run separately. With `--machines 0` the twin is left out: the stack serves real gateways
//! only.

use crate::cli::UpArgs;
use anyhow::Context;
use dtwin_bus::{BrokerUrl, Brokers};
use dtwin_runtime::{CommonConfig, Ready, Service};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How long services get to finish after Ctrl-C before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1800);

/// How long `up` waits for the consumers to subscribe before it starts the twin anyway (an
/// external broker that is down: the services keep retrying, and the twin's readings wait
/// in its own connection until the broker is back).
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the stack until Ctrl-C or SIGTERM.
///
/// # Errors
/// The embedded broker cannot start (port taken), or a service fails at start.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal();
    run_until(args, shutdown).await
}

/// Every service's config for `up`, built by the same flag groups as the service's own
/// subcommand (`dtwin feature`, `dtwin inference`, ...), so every service flag means the same
/// under `up`. Pure: nothing is started.
#[derive(Debug, Clone)]
pub struct Stack {
    /// The broker every service connects to (the nodes of a cluster, or one).
    pub broker: Brokers,
    /// The twin publisher.
    pub twin: dtwin_twin_publisher::TwinConfig,
    /// The feature service (its windows are inference's, its telemetry QoS the twin's).
    pub feature: dtwin_feature::FeatureConfig,
    /// The inference service.
    pub inference: dtwin_inference::InferenceConfig,
    /// The alerter.
    pub alerter: dtwin_alerter::AlerterConfig,
    /// The dashboard (with inference's model, rules and windows).
    pub dashboard: dtwin_dashboard::DashboardConfig,
    /// The Sparkplug B host (with the feature service's profiles).
    pub sparkplug: dtwin_sparkplug_host::SparkplugHostConfig,
}

impl Stack {
    /// The stack `args` describe.
    ///
    /// # Errors
    /// A flag value a service cannot use.
    pub fn from_args(args: &UpArgs) -> anyhow::Result<Self> {
        let broker = if args.broker.is_empty() {
            Brokers::from(BrokerUrl::new("127.0.0.1", args.port))
        } else {
            Brokers::new(args.broker.clone())?
        };
        let common = CommonConfig {
            prefix: args.prefix.clone(),
            ..CommonConfig::new(broker.clone())
        };
        let mut inference = args.inference.config(common.clone())?;
        args.drift.apply(&mut inference)?;
        let twin = args.twin.config(common.clone())?;
        // One window configuration for the feature service, inference and the dashboard.
        let mut feature = dtwin_feature::FeatureConfig {
            common: common.clone(),
            window: inference.window.clone(),
            telemetry_qos: twin.qos,
            ..dtwin_feature::FeatureConfig::new(broker.clone())
        };
        args.feature.apply(&mut feature)?;
        // The profiles the feature service serves label the e-mails and the dashboard too.
        let mut alerter = args.alerter.config(common.clone())?;
        alerter.profiles.clone_from(&feature.profiles);
        let mut dashboard = dtwin_dashboard::DashboardConfig::new(broker.clone());
        dashboard.common = common.clone();
        dashboard.listen = args.dashboard_listen;
        dashboard.token = args.dashboard_token.clone();
        dashboard.inference = inference.clone();
        dashboard.profiles.clone_from(&feature.profiles);
        // The alerter's routing file gives the fleet view its lines and criticality.
        if let Some(path) = &args.alerter.alert_routes {
            dashboard.routes = crate::cli::read_routes(path)?;
        }
        let sparkplug = args
            .sparkplug
            .config(common.clone(), feature.profiles.clone());
        Ok(Self {
            broker,
            twin,
            feature,
            inference,
            alerter,
            dashboard,
            sparkplug,
        })
    }

    /// Serves every service's metrics and health on one endpoint.
    fn share_metrics(&mut self, exposition: &dtwin_obs::Exposition) {
        for common in [
            &mut self.twin.common,
            &mut self.feature.common,
            &mut self.inference.common,
            &mut self.alerter.common,
            &mut self.sparkplug.common,
        ] {
            common.metrics_shared = Some(exposition.clone());
        }
    }
}

/// Runs the stack until `shutdown` is cancelled (tests pass their own token).
///
/// # Errors
/// As [`run`].
pub async fn run_until(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut stack = Stack::from_args(&args)?;
    let broker = stack.broker.clone();
    let prefix = args.prefix.clone();
    let outbox =
        std::path::absolute(&args.alerter.outbox).unwrap_or_else(|_| args.alerter.outbox.clone());
    // Build what can fail before anything starts, so a bad model or rules file stops `up` at once.
    dtwin_inference::build_scorer(&stack.inference).context("inference")?;
    // The broker starts only now: the embedded one cannot be stopped inside this process, so
    // every check of the flags, the model and the rules comes first.
    if args.broker.is_empty() {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
        let cfg = dtwin_broker::BrokerConfig::new(listen).with_backlog(
            args.backlog_s,
            dtwin_broker::DEFAULT_FLEET_RATE,
            dtwin_broker::DEFAULT_MESSAGE_BYTES,
        );
        tokio::task::spawn_blocking(move || dtwin_broker::start(&cfg)).await??;
    } else {
        info!(broker = %broker, "using external broker");
    }
    // One endpoint for every service's metrics and health.
    let metrics = match args.metrics_listen {
        Some(listen) => {
            let exposition = dtwin_obs::Exposition::new();
            stack.share_metrics(&exposition);
            Some((dtwin_obs::bind(listen).await?, exposition))
        }
        None => None,
    };
    let dashboard = dtwin_dashboard::DashboardService::build(stack.dashboard).await?;
    let dashboard_url = format!("http://{}", dashboard.local_addr()?);
    stack
        .alerter
        .dashboard_url
        .get_or_insert_with(|| dashboard_url.clone());

    println!("dtwin up: broker {broker}, prefix {prefix}");
    let simulated = stack.twin.machines > 0;
    if simulated {
        println!(
            "dtwin up: {} machines at {} Hz, time x{}",
            stack.twin.machines, stack.twin.rate_hz, stack.twin.accel
        );
    } else {
        println!(
            "dtwin up: no simulated machines (--machines 0); gateways publish telemetry on {}",
            dtwin_schema::Topics::new(&prefix).all(dtwin_schema::TopicKind::Telemetry)
        );
    }
    println!(
        "dtwin up: alert e-mails are written to {}",
        outbox.display()
    );
    println!("dtwin up: dashboard at {dashboard_url}");
    println!(
        "dtwin up: Sparkplug B host {} on {}",
        stack.sparkplug.host_id,
        dtwin_sparkplug::topic::FILTER
    );
    if let Some((listener, _)) = &metrics {
        println!(
            "dtwin up: metrics at http://{}/metrics",
            listener.local_addr()?
        );
    }
    println!("dtwin up: press Ctrl-C to stop");

    let mut tasks = JoinSet::new();
    if let Some((listener, exposition)) = metrics {
        let stop = shutdown.clone();
        tasks.spawn(named("metrics", async move {
            dtwin_obs::serve_exposition(listener, exposition, stop)
                .await
                .map_err(anyhow::Error::from)
        }));
    }
    // Consumers first, each built (connected, subscribed) before the twin publishes, so the
    // first readings are not missed.
    let feature = dtwin_feature::FeatureService::build(stack.feature).await?;
    let mut ready: Ready = feature.ready();
    tasks.spawn(named("feature", serve(feature, shutdown.clone())));
    let inference = dtwin_inference::InferenceService::build(stack.inference).await?;
    ready = ready.and(inference.ready());
    tasks.spawn(named("inference", serve(inference, shutdown.clone())));
    let alerter = dtwin_alerter::AlerterService::build(stack.alerter).await?;
    ready = ready.and(alerter.ready());
    tasks.spawn(named("alerter", serve(alerter, shutdown.clone())));
    let sparkplug = dtwin_sparkplug_host::SparkplugHostService::build(stack.sparkplug).await?;
    ready = ready.and(sparkplug.ready());
    tasks.spawn(named("sparkplug", serve(sparkplug, shutdown.clone())));
    tasks.spawn(named("dashboard", serve(dashboard, shutdown.clone())));
    if args.summary_every > 0 {
        let every = Duration::from_secs(args.summary_every);
        let monitor = crate::monitor::run(broker.clone(), prefix.clone(), every, shutdown.clone());
        tasks.spawn(async move {
            monitor.await;
            ("monitor", Ok(()))
        });
    }
    tokio::select! {
        () = ready.wait() => {}
        () = tokio::time::sleep(READY_TIMEOUT) => {
            warn!("services not subscribed after {READY_TIMEOUT:?}; starting the twin anyway (is the broker reachable?)");
        }
        () = shutdown.cancelled() => {}
    }
    // With --machines 0 there is no twin: the stack serves real gateways only.
    if simulated {
        let twin = dtwin_twin_publisher::TwinService::build(stack.twin).await?;
        tasks.spawn(named("twin", serve(twin, shutdown.clone())));
    }

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

/// Runs a built service, its error as anyhow.
async fn serve<S: Service>(service: S, shutdown: CancellationToken) -> anyhow::Result<()> {
    Ok(service.serve(shutdown).await?)
}

async fn named(
    name: &'static str,
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> (&'static str, anyhow::Result<()>) {
    (name, fut.await)
}
