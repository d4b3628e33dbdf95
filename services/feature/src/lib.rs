//! The feature service: subscribes to every machine's telemetry, keeps a rolling window per
//! machine and publishes a feature vector per reading; anything it cannot use goes to
//! `{prefix}/deadletter/feature` with a machine-readable reason, and the stream goes on.
//!
//! # Layout
//! - [`order`]: [`order::Sequencer`], per-machine event order by `seq` (duplicates, reordering
//!   within a tolerance, gaps, too late, publisher restarts); pure.
//! - [`processor`]: [`Processor`], the pure core (bytes in, publishes out), tested without a
//!   broker.
//! - [`metrics`]: the service's Prometheus metrics (served by `dtwin-obs`).
//! - [`run`]: the async shell. The MQTT poll task hands messages to one dispatcher, which
//!   shards machines by a stable hash of their id over `workers` worker tasks through bounded
//!   queues; each worker owns its machines' windows, so one machine's readings are handled in
//!   order by one task and its state needs no lock.

pub mod metrics;
pub mod order;
pub mod processor;

pub use metrics::FeatureMetrics;
pub use order::OrderConfig;
pub use processor::{Outgoing, Processor, ProcessorConfig, ProcessorStats};

use dtwin_bus::{BrokerUrl, BusClient, BusConfig, QoS, Subscription};
use dtwin_cluster::Membership;
use dtwin_windows::WindowConfig;
use dtwin_schema::{TopicKind, Topics};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Messages queued per worker. When a worker falls behind, the dispatcher waits on its queue,
/// which stops the MQTT inbox and, through it, the socket: backpressure instead of memory.
pub const WORKER_QUEUE: usize = 1024;

/// How often workers release held readings and evict idle machines.
pub const TICK: Duration = Duration::from_millis(100);

/// Settings of the feature service.
#[derive(Debug, Clone)]
pub struct FeatureConfig {
    /// The broker.
    pub broker: BrokerUrl,
    /// Topic prefix.
    pub prefix: String,
    /// MQTT client id.
    pub client_id: String,
    /// QoS of the telemetry subscription (0 or 1).
    pub telemetry_qos: QoS,
    /// Window sizes and missing-value policy.
    pub window: WindowConfig,
    /// This instance's name when several feature services share the fleet (scale-out, see
    /// `dtwin-cluster`); `None`: the only instance, owning every machine.
    pub instance: Option<String>,
    /// Subscribe to telemetry as a member of this MQTT shared-subscription group (scale-out
    /// by the broker: needs a broker that keeps one machine on one member, such as EMQX with
    /// `hash_topic`); excludes `instance`.
    pub share_group: Option<String>,
    /// Worker tasks machines are sharded over (at least 1).
    pub workers: usize,
    /// Reorder tolerance.
    pub order: OrderConfig,
    /// Seconds a silent machine keeps its window.
    pub idle_evict: Duration,
    /// Drop (and count) readings further behind the clock than this on arrival; `None`: off.
    pub max_lag: Option<Duration>,
    /// Serve `/metrics` and `/healthz` here; `None`: no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Add the metrics to this shared endpoint instead (`dtwin up` serves every in-process
    /// service on one port); takes precedence over `metrics_listen`.
    pub metrics_shared: Option<dtwin_obs::Exposition>,
}

impl FeatureConfig {
    /// Defaults for a broker at `broker`.
    pub fn new(broker: BrokerUrl) -> Self {
        Self {
            broker,
            prefix: dtwin_schema::DEFAULT_PREFIX.to_owned(),
            client_id: "dtwin-feature".to_owned(),
            telemetry_qos: QoS::AtMostOnce,
            window: WindowConfig::default(),
            instance: None,
            share_group: None,
            workers: 2,
            order: OrderConfig::default(),
            idle_evict: Duration::from_secs(600),
            max_lag: None,
            metrics_listen: None,
            metrics_shared: None,
        }
    }

    fn processor_config(&self) -> ProcessorConfig {
        ProcessorConfig {
            window: self.window.clone(),
            order: self.order,
            idle_evict_ms: u64::try_from(self.idle_evict.as_millis()).unwrap_or(u64::MAX),
            max_lag_ms: self.max_lag.map_or(0, |d| {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
            }),
        }
    }
}

/// What the dispatcher sends a worker.
enum Work {
    /// A telemetry message.
    Telemetry {
        msg: dtwin_bus::Message,
        received: Instant,
    },
    /// The cluster changed: keep only machines this instance owns.
    Retain(Membership),
}

/// The worker index for a machine id (stable across restarts and instances).
pub fn shard(machine: &str, workers: usize) -> usize {
    (dtwin_cluster::stable_hash(&[machine.as_bytes()]) % workers.max(1) as u64) as usize
}

/// Runs the feature service until `shutdown` fires.
///
/// # Errors
/// The metrics port cannot be bound, or publishing fails because the connection was closed
/// under it.
pub async fn run(config: FeatureConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let topics = Topics::new(&config.prefix);
    let mut node = dtwin_cluster::Node::new(
        &config.prefix,
        processor::SERVICE,
        config.instance.as_deref(),
    );
    let workers = config.workers.max(1);
    let mut registry = dtwin_obs::Registry::with_prefix("dtwin_feature");
    let metrics = FeatureMetrics::register(&mut registry, workers);
    let health = dtwin_obs::Health::new();
    let mut tasks = JoinSet::new();
    if let Some(server) = dtwin_obs::expose(
        processor::SERVICE,
        registry,
        health.clone(),
        config.metrics_shared.as_ref(),
        config.metrics_listen,
        shutdown.clone(),
    )
    .await?
    {
        tasks.spawn(server);
    }
    anyhow::ensure!(
        config.share_group.is_none() || config.instance.is_none(),
        "--share-group and --instance are two ways to scale out; use one"
    );
    let telemetry = dtwin_bus::shared_filter(
        config.share_group.as_deref(),
        topics.all(TopicKind::Telemetry),
    )
    .map_err(anyhow::Error::msg)?;
    let mut subs = vec![Subscription::new(telemetry, config.telemetry_qos)];
    subs.extend(
        node.subscription()
            .map(|f| Subscription::new(f, QoS::AtLeastOnce)),
    );
    // Instances of one service need distinct MQTT client ids, or the broker drops one for the
    // other.
    let client_id = match &config.instance {
        Some(name) if config.client_id == "dtwin-feature" => format!("dtwin-feature-{name}"),
        // Members of a share group have no name of their own.
        None if config.share_group.is_some() && config.client_id == "dtwin-feature" => {
            dtwin_bus::unique_client_id("dtwin-feature")
        }
        _ => config.client_id.clone(),
    };
    let mut bus = BusConfig::new(config.broker.clone(), &client_id);
    bus.last_will = node.last_will().map_err(anyhow::Error::msg)?;
    let (mut conn, publisher) = dtwin_bus::connect_with_publisher(&bus, subs);
    tokio::spawn(health.clone().follow(
        conn.client.link_state(),
        dtwin_bus::LinkState::check_subscribed,
        shutdown.clone(),
    ));
    if let Some((topic, payload)) = node.online().map_err(anyhow::Error::msg)? {
        conn.client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await?;
    }
    let epoch = Instant::now();
    let mut queues = Vec::with_capacity(workers);
    for i in 0..workers {
        let (tx, rx) = mpsc::channel(WORKER_QUEUE);
        queues.push(tx);
        let processor = Processor::with_config(topics.clone(), config.processor_config());
        let ctx = WorkerCtx {
            index: i,
            client: publisher.client.clone(),
            metrics: metrics.clone(),
            epoch,
        };
        tasks.spawn(worker(ctx, processor, rx));
    }
    info!(broker = %config.broker, workers, feature_set = %dtwin_windows::feature_set(&config.window).1, "feature service started");
    let mut not_mine: u64 = 0;
    let mut failed = None;
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = conn.inbox.recv() => match msg { Some(m) => m, None => break },
            Some(done) = tasks.join_next() => {
                // A worker or the metrics server ended before shutdown: stop and report it.
                failed = Some(match done {
                    Ok(Ok(())) => anyhow::anyhow!("a feature worker stopped"),
                    Ok(Err(e)) => e,
                    Err(e) => anyhow::anyhow!("a feature worker panicked: {e}"),
                });
                break;
            }
        };
        if let Some(change) = node.handle(&msg.topic, &msg.payload) {
            if let Some(change) = change {
                info!(?change, members = ?node.membership().members().collect::<Vec<_>>(), "feature cluster changed");
                for q in &queues {
                    if q.send(Work::Retain(node.membership().clone()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
            continue;
        }
        // Topics that do not parse go to worker 0, which dead-letters them.
        let machine = topics.parse(&msg.topic).map(|(_, m)| m);
        if let Some(machine) = machine {
            if !node.owns(machine) {
                not_mine += 1;
                continue;
            }
        }
        let i = machine.map_or(0, |m| shard(m, workers));
        let work = Work::Telemetry {
            msg,
            received: Instant::now(),
        };
        if queues[i].send(work).await.is_err() {
            break;
        }
        metrics.queue_depth(i, WORKER_QUEUE - queues[i].capacity());
    }
    // Closing the queues lets each worker finish what it holds, then stop.
    drop(queues);
    let drained = tokio::time::timeout(Duration::from_millis(1500), async {
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Err(e)) if failed.is_none() => failed = Some(e),
                Err(e) if !e.is_cancelled() => warn!(error = %e, "feature task failed"),
                _ => {}
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!("feature workers did not finish in time");
        tasks.abort_all();
    }
    info!(not_mine, "feature service stopping");
    let close = async { tokio::join!(publisher.close(), conn.close()) };
    if tokio::time::timeout(dtwin_bus::CLOSE_DRAIN * 2, close)
        .await
        .is_err()
    {
        warn!("feature service did not disconnect in time");
    }
    match failed {
        Some(e) if !shutdown.is_cancelled() => Err(e),
        _ => Ok(()),
    }
}

struct WorkerCtx {
    index: usize,
    client: BusClient,
    metrics: FeatureMetrics,
    epoch: Instant,
}

impl WorkerCtx {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn publish(&self, out: &mut Vec<Outgoing>) -> anyhow::Result<()> {
        for o in out.drain(..) {
            match &o {
                Outgoing::DeadLetter { reason, .. } => {
                    debug!(reason = reason.as_str(), "telemetry rejected");
                    self.metrics.rejected(reason.as_str());
                }
                Outgoing::Features { .. } => {
                    self.metrics.messages_out.inc();
                }
            }
            let (topic, payload) = o.into_parts();
            self.client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await?;
        }
        Ok(())
    }
}

/// One shard: owns its machines' windows, handles their messages in arrival order.
async fn worker(
    ctx: WorkerCtx,
    mut processor: Processor,
    mut rx: mpsc::Receiver<Work>,
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = processor.stats();
    loop {
        tokio::select! {
            biased;
            work = rx.recv() => match work {
                Some(Work::Telemetry { msg, received }) => {
                    processor.handle(&msg.topic, &msg.payload, dtwin_schema::time_fmt::now(), ctx.now_ms(), &mut out);
                    ctx.publish(&mut out).await?;
                    ctx.metrics.processing.observe(received.elapsed().as_secs_f64());
                    ctx.metrics.queue_depth(ctx.index, rx.len());
                }
                Some(Work::Retain(membership)) => processor.retain_machines(|id| membership.owns(id)),
                None => break,
            },
            _ = tick.tick() => {
                processor.tick(dtwin_schema::time_fmt::now(), ctx.now_ms(), &mut out);
                ctx.publish(&mut out).await?;
                ctx.metrics.queue_depth(ctx.index, rx.len());
            }
        }
        let now = processor.stats();
        ctx.metrics.add(&last, &now);
        ctx.metrics.gauges(ctx.index, &now);
        last = now;
    }
    // Readings still held for reordering are released before stopping.
    processor.tick(dtwin_schema::time_fmt::now(), u64::MAX, &mut out);
    ctx.publish(&mut out).await?;
    let stats = processor.stats();
    info!(
        worker = ctx.index,
        processed = stats.processed,
        rejected = stats.rejected,
        duplicates = stats.duplicates,
        gaps = stats.gaps,
        machines = stats.machines,
        "feature worker stopping"
    );
    Ok(())
}
