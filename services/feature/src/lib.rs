//! The feature service: subscribes to every machine's telemetry, keeps a rolling window per
//! machine and publishes a feature vector per reading; anything it cannot use goes to
//! `{prefix}/deadletter/feature` with a machine-readable reason, and the stream goes on.
//!
//! # Layout
//! - [`order`]: [`order::Sequencer`], per-machine event order by `seq` (duplicates, reordering
//!   within a tolerance, gaps, too late, publisher restarts); pure.
//! - [`processor`]: [`Processor`], the pure core (bytes in, publishes out), tested without a
//!   broker.
//! - [`profiles`]: machine profiles: which profile a machine is ([`profiles::ProfileSet`],
//!   the `--profile-map` patterns), a reading's values checked against its profile, and the
//!   loaders the CLI calls ([`load_profiles`], [`parse_profile_map`]); pure but for reading
//!   the files. `machine` holds a machine's reading and window of either kind.
//! - [`metrics`]: the service's Prometheus metrics (served by `dtwin-obs`).
//! - [`FeatureService`]: the async shell on a `dtwin_runtime::Runtime` (connections, metrics
//!   endpoint, readiness, clean close). `build` connects; `serve` runs one dispatcher, which
//!   shards machines by a stable hash of their id over `workers` worker tasks through bounded
//!   queues; each worker owns its machines' windows, so one machine's readings are handled in
//!   order by one task and its state needs no lock.

mod machine;
pub mod metrics;
pub mod order;
pub mod processor;
pub mod profiles;

#[cfg(test)]
mod profile_tests;

pub use metrics::FeatureMetrics;
pub use order::OrderConfig;
pub use processor::{Outgoing, Processor, ProcessorConfig, ProcessorStats};
pub use profiles::{
    load_profiles, parse_profile_map, Adopt, ProfileConfigError, ProfileMapError, ProfileSet,
};

use dtwin_bus::{Brokers, BusClient, QoS};
use dtwin_cluster::Membership;
use dtwin_profile::Profile;
use dtwin_runtime::{CommonConfig, Ready, Runtime, RuntimeError, Service, Spec};
use dtwin_schema::{TopicKind, Topics};
use dtwin_windows::WindowConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
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
    /// Broker, prefix, client id, instance, share group, metrics endpoint.
    pub common: CommonConfig,
    /// QoS of the telemetry subscription (0 or 1).
    pub telemetry_qos: QoS,
    /// Window sizes and missing-value policy.
    pub window: WindowConfig,
    /// Worker tasks machines are sharded over (at least 1).
    pub workers: usize,
    /// Reorder tolerance.
    pub order: OrderConfig,
    /// Seconds a silent machine keeps its window.
    pub idle_evict: Duration,
    /// Drop (and count) readings further behind the clock than this on arrival; `None`: off.
    pub max_lag: Option<Duration>,
    /// The machine profiles served ([`load_profiles`] reads them from files). Milling is
    /// always served, by the built-in feature code; a `milling` entry here is that one.
    pub profiles: Vec<Profile>,
    /// Machine-id patterns to profile ids (`("pump-*", "pump")`, see [`parse_profile_map`]),
    /// first match wins, for readings that name no profile; unmatched machines are milling.
    /// Every id must be `milling` or one of `profiles` (checked by [`FeatureService::build`]).
    pub profile_map: Vec<(String, String)>,
}

impl FeatureConfig {
    /// Defaults for a broker at `broker`.
    pub fn new(broker: impl Into<Brokers>) -> Self {
        Self {
            common: CommonConfig::new(broker),
            telemetry_qos: QoS::AtMostOnce,
            window: WindowConfig::default(),
            workers: 2,
            order: OrderConfig::default(),
            idle_evict: Duration::from_secs(600),
            max_lag: None,
            profiles: vec![Profile::milling()],
            profile_map: Vec::new(),
        }
    }

    /// The profiles and the map as the processors use them.
    ///
    /// # Errors
    /// Two profiles with one id, or a map entry that does not read or names a profile that is
    /// not served.
    pub fn profile_set(&self) -> Result<ProfileSet, ProfileConfigError> {
        ProfileSet::new(self.profiles.clone(), &self.profile_map)
    }

    fn processor_config(&self, profiles: Arc<ProfileSet>) -> ProcessorConfig {
        ProcessorConfig {
            profiles,
            window: self.window.clone(),
            order: self.order,
            idle_evict_ms: u64::try_from(self.idle_evict.as_millis()).unwrap_or(u64::MAX),
            max_lag_ms: self.max_lag.map_or(0, |d| {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
            }),
        }
    }
}

/// Why the feature service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// The runtime could not start (bad scale-out settings, metrics address taken).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The connection closed under a publish.
    #[error(transparent)]
    Bus(#[from] dtwin_bus::BusError),
    /// A worker ended before shutdown.
    #[error("a feature worker stopped")]
    WorkerStopped,
    /// A worker panicked.
    #[error("a feature worker panicked: {0}")]
    WorkerPanicked(String),
    /// The profiles and the profile map do not fit together.
    #[error(transparent)]
    Profiles(#[from] ProfileConfigError),
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
    /// A profile published at run time joined the set: serve this one from now on.
    Profiles(Arc<ProfileSet>),
}

/// The worker index for a machine id (stable across restarts and instances).
pub fn shard(machine: &str, workers: usize) -> usize {
    (dtwin_cluster::stable_hash(&[machine.as_bytes()]) % workers.max(1) as u64) as usize
}

/// The feature service, built: connected (or connecting) and subscribed (or subscribing),
/// its metrics endpoint bound. [`Service::serve`] runs it.
pub struct FeatureService {
    config: FeatureConfig,
    profiles: Arc<ProfileSet>,
    runtime: Runtime,
    metrics: FeatureMetrics,
}

impl FeatureService {
    /// Starts the runtime: metrics endpoint, connections, instance announcement.
    ///
    /// # Errors
    /// Profiles that do not fit together (before anything starts), bad scale-out settings or
    /// a metrics address that cannot be bound.
    pub async fn build(config: FeatureConfig) -> Result<Self, FeatureError> {
        let profiles = Arc::new(config.profile_set()?);
        let mut registry = dtwin_obs::Registry::with_prefix("dtwin_feature");
        let metrics = FeatureMetrics::register(&mut registry, config.workers.max(1));
        let topics = Topics::new(&config.common.prefix);
        let spec = Spec::new(processor::SERVICE, registry)
            .subscribe_shared(topics.all(TopicKind::Telemetry), config.telemetry_qos)
            // Every instance serves every profile: not shared.
            .subscribe(topics.profiles(), QoS::AtLeastOnce)
            .with_publisher();
        let runtime = Runtime::start(&config.common, spec).await?;
        Ok(Self {
            config,
            profiles,
            runtime,
            metrics,
        })
    }
}

impl Service for FeatureService {
    type Error = FeatureError;

    fn ready(&self) -> Ready {
        self.runtime.ready()
    }

    /// Runs until `shutdown` fires, then lets the workers finish what they hold and closes.
    ///
    /// # Errors
    /// A worker failed (its publish found the connection closed) or stopped early.
    async fn serve(self, shutdown: CancellationToken) -> Result<(), FeatureError> {
        let Self {
            config,
            mut profiles,
            mut runtime,
            metrics,
        } = self;
        let workers = config.workers.max(1);
        let epoch = Instant::now();
        let mut tasks = JoinSet::new();
        let mut queues = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = mpsc::channel(WORKER_QUEUE);
            queues.push(tx);
            let processor = Processor::with_config(
                runtime.topics.clone(),
                config.processor_config(profiles.clone()),
            );
            let ctx = WorkerCtx {
                index: i,
                client: runtime.publisher.clone(),
                metrics: metrics.clone(),
                epoch,
            };
            tasks.spawn(worker(ctx, processor, rx));
        }
        let feature_set = dtwin_windows::feature_set(&config.window).1;
        let served: Vec<String> = profiles
            .profiles()
            .iter()
            .map(|s| format!("{} ({})", s.profile.id, s.hash))
            .collect();
        runtime.log_started(&format!(
            "workers {workers}, feature set {feature_set}, other profiles [{}], profile map {:?}",
            served.join(", "),
            config.profile_map
        ));
        let mut not_mine: u64 = 0;
        let mut failed = None;
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break,
                msg = runtime.inbox.recv() => match msg { Some(m) => m, None => break },
                Some(done) = tasks.join_next() => {
                    failed = Some(worker_failure(done));
                    break;
                }
            };
            if let Some(id) = runtime.topics.parse_profile(&msg.topic) {
                match profiles.adopt(id, &msg.payload) {
                    Adopt::Added(set) => {
                        info!(profile = id, "serving a profile published at run time");
                        profiles = Arc::new(set);
                        for q in &queues {
                            if q.send(Work::Profiles(profiles.clone())).await.is_err() {
                                break;
                            }
                        }
                    }
                    Adopt::Known => debug!(
                        profile = id,
                        "a profile published at run time is served already: kept as it is"
                    ),
                    Adopt::Ignored(why) => {
                        warn!(topic = %msg.topic, %why, "a profile published at run time is not served")
                    }
                }
                continue;
            }
            if let Some(change) = runtime.node.handle(&msg.topic, &msg.payload) {
                if let Some(change) = change {
                    info!(?change, members = ?runtime.node.membership().members().collect::<Vec<_>>(), "feature cluster changed");
                    for q in &queues {
                        if q.send(Work::Retain(runtime.node.membership().clone()))
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
            let machine = runtime.topics.parse(&msg.topic).map(|(_, m)| m);
            if let Some(machine) = machine {
                if !runtime.node.owns(machine) {
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
        runtime.close().await;
        match failed {
            Some(e) if !shutdown.is_cancelled() => Err(e),
            _ => Ok(()),
        }
    }
}

/// Runs the feature service until `shutdown` fires: [`FeatureService::build`], then
/// [`FeatureService::serve`].
///
/// # Errors
/// As those two.
pub async fn run(config: FeatureConfig, shutdown: CancellationToken) -> Result<(), FeatureError> {
    FeatureService::build(config).await?.serve(shutdown).await
}

/// What a worker that ended before shutdown means.
fn worker_failure(done: Result<Result<(), FeatureError>, tokio::task::JoinError>) -> FeatureError {
    match done {
        Ok(Ok(())) => FeatureError::WorkerStopped,
        Ok(Err(e)) => e,
        Err(e) => FeatureError::WorkerPanicked(e.to_string()),
    }
}

/// Where a worker's output goes: the broker in the service, a channel in tests.
trait Sink: Send + Sync + 'static {
    fn send(
        &self,
        topic: String,
        payload: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<(), FeatureError>> + Send;
}

impl Sink for BusClient {
    async fn send(&self, topic: String, payload: Vec<u8>) -> Result<(), FeatureError> {
        Ok(self
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?)
    }
}

struct WorkerCtx<S> {
    index: usize,
    client: S,
    metrics: FeatureMetrics,
    /// The worker's clock (tokio's, so tests can run it on paused time).
    epoch: Instant,
}

impl<S: Sink> WorkerCtx<S> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn publish(&self, out: &mut Vec<Outgoing>) -> Result<(), FeatureError> {
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
            self.client.send(topic, payload).await?;
        }
        Ok(())
    }
}

/// One shard: owns its machines' windows, handles their messages in arrival order.
async fn worker<S: Sink>(
    ctx: WorkerCtx<S>,
    mut processor: Processor,
    mut rx: mpsc::Receiver<Work>,
) -> Result<(), FeatureError> {
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
                Some(Work::Profiles(profiles)) => processor.set_profiles(profiles),
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

#[cfg(test)]
mod worker_tests {
    use super::*;
    use dtwin_schema::{Features, MachineId, Telemetry};

    /// A sink that hands the worker's output to the test.
    struct Channel(mpsc::UnboundedSender<(String, Vec<u8>)>);

    impl Sink for Channel {
        async fn send(&self, topic: String, payload: Vec<u8>) -> Result<(), FeatureError> {
            self.0
                .send((topic, payload))
                .map_err(|_| FeatureError::WorkerStopped)
        }
    }

    fn reading(seq: u64) -> Work {
        let mut t = Telemetry::new(
            MachineId::parse("m-1").unwrap(),
            dtwin_schema::time_fmt::now(),
            seq,
        );
        t.temperature_c = Some(36.0);
        Work::Telemetry {
            msg: dtwin_bus::Message::new("dtwin/v1/machines/m-1/telemetry", t.encode()),
            received: Instant::now(),
        }
    }

    fn seqs(out: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Ok((topic, payload)) = out.try_recv() {
            assert_eq!(topic, "dtwin/v1/machines/m-1/features");
            seqs.push(dtwin_schema::from_json::<Features>(&payload).unwrap().seq);
        }
        seqs
    }

    /// The worker's tick releases a reading held for a missing one once the hold time has
    /// passed on the worker's clock, and not before: on paused time, so nothing is timed.
    #[tokio::test(start_paused = true)]
    async fn a_held_reading_is_released_by_the_tick_once_the_hold_time_passed() {
        let mut registry = dtwin_obs::Registry::default();
        let (tx, mut out) = mpsc::unbounded_channel();
        let ctx = WorkerCtx {
            index: 0,
            client: Channel(tx),
            metrics: FeatureMetrics::register(&mut registry, 1),
            epoch: Instant::now(),
        };
        let config = ProcessorConfig {
            order: OrderConfig {
                tolerance: 4,
                max_hold_ms: 500,
            },
            ..ProcessorConfig::default()
        };
        let processor = Processor::with_config(Topics::default(), config);
        let (work, rx) = mpsc::channel(8);
        let task = tokio::spawn(worker(ctx, processor, rx));
        work.send(reading(1)).await.unwrap();
        work.send(reading(3)).await.unwrap(); // 2 is missing: 3 waits for it
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(seqs(&mut out), vec![1]);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(seqs(&mut out), Vec::<u64>::new(), "held for 410 ms of 500");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(seqs(&mut out), vec![3], "released by a tick after 500 ms");
        drop(work);
        task.await.unwrap().unwrap();
    }
}
